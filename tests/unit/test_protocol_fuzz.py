"""Property tests over every message and version of the schema table: random values round
trip (modulo defaults), and truncated, corrupted or random input only ever raises
ProtocolError (no other exception, no crash, no hang on huge length prefixes)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_values import all_message_versions, expected_message, message_strategy, valid_versions

from kengine.errors import ProtocolError, UnsupportedVersionError
from kengine_ext import (
    decode_message,
    decode_request,
    decode_response,
    encode_message,
    encode_request,
    encode_response,
)
from kengine_ext.schemas import MESSAGES, REQUESTS, RESPONSES

MESSAGE_VERSIONS = list(all_message_versions())
REQUEST_VERSIONS = [(k, v) for k, m in REQUESTS.items() for v in valid_versions(m)]
RESPONSE_VERSIONS = [(k, v) for k, m in RESPONSES.items() for v in valid_versions(m)]

# ~250 (message, version) pairs: a modest number of examples each keeps the run short
FEW = settings(max_examples=12, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# A count or length that no input here can satisfy, as every width Kafka uses.
HUGE_PREFIXES = [bytes.fromhex(h) for h in (
    "7fffffff",      # int32 length/count 2^31-1
    "ffffffff0f",    # uvarint 2^32-1 (compact length 2^32-2)
    "7fff",          # int16 string length 32767
    "fffffffe",      # int32 -2: a negative length that is not the null marker
)]


def test_the_table_covers_every_request_and_response() -> None:
    assert len(MESSAGE_VERSIONS) > 200
    assert set(REQUESTS) == set(RESPONSES)


@pytest.mark.parametrize("name,version", MESSAGE_VERSIONS)
@FEW
@given(data=st.data())
def test_random_values_round_trip(name: str, version: int, data: st.DataObject) -> None:
    value = data.draw(message_strategy(name, version))
    encoded = encode_message(name, version, value)
    decoded = decode_message(name, version, encoded)
    assert decoded == expected_message(name, version, value)
    assert encode_message(name, version, decoded) == encoded


@pytest.mark.parametrize("api_key,version", REQUEST_VERSIONS)
@FEW
@given(data=st.data())
def test_requests_round_trip_with_their_header(api_key: int, version: int,
                                               data: st.DataObject) -> None:
    name = REQUESTS[api_key].name
    value = data.draw(message_strategy(name, version))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))
    client_id = data.draw(st.none() | st.text(max_size=10))
    frame = encode_request(api_key, version, correlation_id, client_id, value)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    header, body = decode_request(frame[4:])
    assert header == {"request_api_key": api_key, "request_api_version": version,
                      "correlation_id": correlation_id, "client_id": client_id}
    assert body == expected_message(name, version, value)


@pytest.mark.parametrize("api_key,version", RESPONSE_VERSIONS)
@FEW
@given(data=st.data())
def test_responses_round_trip_with_their_header(api_key: int, version: int,
                                                data: st.DataObject) -> None:
    name = RESPONSES[api_key].name
    value = data.draw(message_strategy(name, version))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))
    frame = encode_response(api_key, version, correlation_id, value)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert decode_response(api_key, version, frame[4:]) == (
        correlation_id, expected_message(name, version, value))


@pytest.mark.parametrize("name,version", MESSAGE_VERSIONS)
@FEW
@given(data=st.data())
def test_every_truncation_is_a_protocol_error(name: str, version: int,
                                              data: st.DataObject) -> None:
    encoded = encode_message(name, version, data.draw(message_strategy(name, version)))
    cuts = range(len(encoded)) if len(encoded) <= 96 else data.draw(
        st.lists(st.integers(0, len(encoded) - 1), min_size=1, max_size=48))
    for cut in cuts:
        with pytest.raises(ProtocolError):
            decode_message(name, version, encoded[:cut])


def _decodes_or_protocol_error(name: str, version: int, data: bytes) -> None:
    try:
        decode_message(name, version, data)
    except ProtocolError:
        pass


@pytest.mark.parametrize("name,version", MESSAGE_VERSIONS)
@FEW
@given(data=st.data())
def test_corrupted_input_only_raises_protocol_error(name: str, version: int,
                                                    data: st.DataObject) -> None:
    encoded = bytearray(encode_message(name, version, data.draw(message_strategy(name, version))))
    for _ in range(data.draw(st.integers(1, 4))):
        if encoded:
            encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    _decodes_or_protocol_error(name, version, bytes(encoded))


@pytest.mark.parametrize("name,version", MESSAGE_VERSIONS)
@FEW
@given(data=st.data())
def test_huge_length_prefixes_fail_fast(name: str, version: int, data: st.DataObject) -> None:
    encoded = encode_message(name, version, data.draw(message_strategy(name, version)))
    at = data.draw(st.integers(0, len(encoded)))
    huge = data.draw(st.sampled_from(HUGE_PREFIXES))
    overwrite = data.draw(st.booleans())
    mutated = encoded[:at] + huge + encoded[at + (len(huge) if overwrite else 0):]
    _decodes_or_protocol_error(name, version, mutated)


@pytest.mark.parametrize("name", sorted(MESSAGES))
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=128), version_index=st.integers(0, 30))
def test_random_bytes_only_raise_protocol_error(name: str, data: bytes,
                                                version_index: int) -> None:
    versions = valid_versions(MESSAGES[name])
    _decodes_or_protocol_error(name, versions[version_index % len(versions)], data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=160))
def test_random_request_frames_raise_protocol_or_version_errors(frame: bytes) -> None:
    try:
        decode_request(frame)
    except UnsupportedVersionError as e:
        # a well-formed header naming an API or version outside the table: the broker
        # still learns whom to answer
        assert "correlation_id" in e.context
    except ProtocolError:
        pass


@pytest.mark.parametrize("api_key,version", RESPONSE_VERSIONS)
@settings(max_examples=15, deadline=None)
@given(frame=st.binary(max_size=96))
def test_random_response_frames_only_raise_protocol_error(api_key: int, version: int,
                                                          frame: bytes) -> None:
    try:
        decode_response(api_key, version, frame)
    except ProtocolError:
        pass
