"""CreatePartitions, which kengine.admin adds to the codec with register_api(): its schema
(written here from Kafka's JSON) against kafka-python's generated classes, and the
registration rules."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_values import body_strategy, expected

from kengine.admin import CREATE_PARTITIONS_REQUEST, CREATE_PARTITIONS_RESPONSE
from kengine_ext import (
    decode_message,
    decode_response,
    encode_message,
    encode_request,
    pick_version,
    register_api,
    supported_versions,
)
from kengine_ext.schemas import MESSAGES, REQUESTS, Message

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin as kp_admin

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
VERSIONS = range(4)


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_create_partitions_request_matches_kafka_python(version: int,
                                                        data: st.DataObject) -> None:
    value = data.draw(body_strategy(CREATE_PARTITIONS_REQUEST.fields, version))
    ours = encode_message(CREATE_PARTITIONS_REQUEST, version, value)
    theirs = kp_admin.CreatePartitionsRequest.decode(ours, version=version)
    assert theirs.to_dict(json=False) == expected(CREATE_PARTITIONS_REQUEST.fields, version,
                                                  value)
    theirs._header = None
    assert theirs.encode(version=version) == ours


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_create_partitions_response_matches_kafka_python(version: int,
                                                         data: st.DataObject) -> None:
    value = data.draw(body_strategy(CREATE_PARTITIONS_RESPONSE.fields, version))
    ours = encode_message(CREATE_PARTITIONS_RESPONSE, version, value)
    theirs = kp_admin.CreatePartitionsResponse.decode(ours, version=version)
    assert theirs.to_dict(json=False) == expected(CREATE_PARTITIONS_RESPONSE.fields, version,
                                                  value)
    assert decode_message(CREATE_PARTITIONS_RESPONSE, version, ours) == \
        expected(CREATE_PARTITIONS_RESPONSE.fields, version, value)


def test_registered_api_is_framed_and_negotiated_like_a_generated_one() -> None:
    assert supported_versions(37) == (0, 3)
    assert pick_version(37, 0, 7) == 3
    frame = encode_request(37, 3, 7, "client", {"topics": [{"name": "t", "count": 4}],
                                               "timeout_ms": 100})
    # size, api key 37, version 3, correlation 7, then the flexible header's client id
    assert frame[4:12] == b"\x00\x25\x00\x03\x00\x00\x00\x07"
    body = encode_message(CREATE_PARTITIONS_RESPONSE, 3, {
        "results": [{"name": "t", "error_code": 37, "error_message": "no"}]})
    correlation, decoded = decode_response(37, 3, b"\x00\x00\x00\x07\x00" + body)
    assert correlation == 7
    assert decoded["results"] == [{"name": "t", "error_code": 37, "error_message": "no"}]


def test_registration_is_idempotent_and_leaves_the_generated_table_alone() -> None:
    register_api(CREATE_PARTITIONS_REQUEST, CREATE_PARTITIONS_RESPONSE)
    assert 37 not in REQUESTS
    assert "CreatePartitionsRequest" not in MESSAGES


def test_registration_refuses_clashes_and_mismatched_pairs() -> None:
    with pytest.raises(ValueError, match="already"):   # api key 0 is Produce's
        register_api(MESSAGES["ProduceRequest"]._replace(name="MyProduceRequest"),
                     MESSAGES["ProduceResponse"]._replace(name="MyProduceResponse"))
    renamed = CREATE_PARTITIONS_REQUEST._replace(name="OtherRequest")
    with pytest.raises(ValueError, match="already"):
        register_api(renamed, CREATE_PARTITIONS_RESPONSE._replace(name="OtherResponse"))
    with pytest.raises(ValueError, match="one api key"):
        register_api(CREATE_PARTITIONS_REQUEST, MESSAGES["ProduceResponse"])
    lonely: Message = CREATE_PARTITIONS_REQUEST._replace(api_key=None)
    with pytest.raises(ValueError, match="one api key"):
        register_api(lonely, CREATE_PARTITIONS_RESPONSE)
