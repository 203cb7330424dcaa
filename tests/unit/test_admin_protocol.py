"""CreatePartitions, the admin client's one API beyond the producer's: its schema is generated
from spec/ like every other message (Kafka's CreatePartitionsRequest/Response.json), checked
here against kafka-python's independently written classes, and negotiated like the rest."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_values import body_strategy, expected

from kengine.errors import InvalidPartitionsError, error_for_code
from kengine_ext import (
    decode_message,
    decode_response,
    encode_message,
    encode_request,
    pick_version,
    supported_versions,
)
from kengine_ext.schemas import MESSAGES, REQUESTS, RESPONSES, ApiKey

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import kafka.protocol.admin as kp_admin

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
REQUEST = MESSAGES["CreatePartitionsRequest"]
RESPONSE = MESSAGES["CreatePartitionsResponse"]
VERSIONS = range(supported_versions(ApiKey.CREATE_PARTITIONS)[1] + 1)


def test_create_partitions_is_in_the_generated_table():
    assert REQUESTS[ApiKey.CREATE_PARTITIONS] is REQUEST
    assert RESPONSES[ApiKey.CREATE_PARTITIONS] is RESPONSE
    assert REQUEST.api_key == RESPONSE.api_key == ApiKey.CREATE_PARTITIONS
    assert list(VERSIONS) == [0, 1, 2, 3]    # Kafka 4.x: 0-3, flexible from 2


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_create_partitions_request_matches_kafka_python(version: int,
                                                        data: st.DataObject) -> None:
    value = data.draw(body_strategy(REQUEST.fields, version))
    ours = encode_message(REQUEST, version, value)
    theirs = kp_admin.CreatePartitionsRequest.decode(ours, version=version)
    assert theirs.to_dict(json=False) == expected(REQUEST.fields, version, value)
    theirs._header = None
    assert theirs.encode(version=version) == ours


@pytest.mark.parametrize("version", VERSIONS)
@SETTINGS
@given(data=st.data())
def test_create_partitions_response_matches_kafka_python(version: int,
                                                         data: st.DataObject) -> None:
    value = data.draw(body_strategy(RESPONSE.fields, version))
    ours = encode_message(RESPONSE, version, value)
    theirs = kp_admin.CreatePartitionsResponse.decode(ours, version=version)
    assert theirs.to_dict(json=False) == expected(RESPONSE.fields, version, value)
    assert decode_message(RESPONSE, version, ours) == expected(RESPONSE.fields, version, value)


def test_create_partitions_is_framed_and_negotiated_like_the_producer_apis() -> None:
    key = ApiKey.CREATE_PARTITIONS
    top = supported_versions(key)[1]
    assert pick_version(key, 0, top + 4) == top
    frame = encode_request(key, top, 7, "client", {"topics": [{"name": "t", "count": 4}],
                                                   "timeout_ms": 100})
    # size, api key, version, correlation 7, then the flexible header's client id
    assert frame[4:12] == (int(key).to_bytes(2, "big") + top.to_bytes(2, "big")
                           + (7).to_bytes(4, "big"))
    code = InvalidPartitionsError.code
    body = encode_message(RESPONSE, top, {
        "results": [{"name": "t", "error_code": code, "error_message": "no"}]})
    correlation, decoded = decode_response(key, top, b"\x00\x00\x00\x07\x00" + body)
    assert correlation == 7
    assert decoded["results"] == [{"name": "t", "error_code": code, "error_message": "no"}]
    assert isinstance(error_for_code(decoded["results"][0]["error_code"]),
                      InvalidPartitionsError)
