"""The protocol codec's contract: golden frames derived by hand from Kafka's schemas, the
header rules, defaults, tagged fields, records, version checks, errors and negotiation."""
from __future__ import annotations

import uuid

import pytest

from kengine.errors import IllegalStateError, ProtocolError, UnsupportedVersionError
from kengine_ext import (
    WriteBuffer,
    decode_message,
    decode_request,
    decode_response,
    encode_message,
    encode_request,
    encode_response,
    peek_correlation_id,
    pick_version,
    supported_versions,
    write_request,
)
from kengine_ext.schemas import ApiKey, Field, Message


def hexbytes(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def frame(*parts: str) -> bytes:
    body = hexbytes(*parts)
    return len(body).to_bytes(4, "big") + body


def compact_str(s: str) -> str:
    return f"{len(s.encode()) + 1:02x}" + s.encode().hex()


def classic_str(s: str) -> str:
    return f"{len(s.encode()):04x}" + s.encode().hex()


# --- golden vectors ---------------------------------------------------------------------------

def test_api_versions_v3_request() -> None:
    expected = frame(
        "0012", "0003", "0000002a",        # header v2: api key 18, version 3, correlation 42
        classic_str("kengine"),            # client id: always a classic int16 string
        "00",                              # header tagged fields
        compact_str("kengine"),            # client_software_name
        compact_str("0.1.0"),              # client_software_version
        "00",                              # body tagged fields
    )
    body = {"client_software_name": "kengine", "client_software_version": "0.1.0"}
    assert encode_request(ApiKey.API_VERSIONS, 3, 42, "kengine", body) == expected
    header, decoded = decode_request(expected[4:])
    assert header == {"request_api_key": 18, "request_api_version": 3, "correlation_id": 42,
                      "client_id": "kengine"}
    assert decoded == body


def test_api_versions_v0_request_is_a_bare_v1_header() -> None:
    assert encode_request(18, 0, 1, None, {}) == frame("0012 0000 00000001 ffff")


def test_metadata_v12_request_for_two_topics() -> None:
    expected = frame(
        "0003", "000c", "00000007", classic_str("kengine"), "00",   # header v2
        "03",                                    # topics: compact array of 2
        "00" * 16, compact_str("orders"), "00",  #   topic_id (zero: by name), name, tags
        "00" * 16, compact_str("payments"), "00",
        "01",                                    # allow_auto_topic_creation (default true)
        "00",                                    # include_topic_authorized_operations
        "00",                                    # tagged fields
    )
    body = {"topics": [{"name": "orders"}, {"name": "payments"}]}
    assert encode_request(ApiKey.METADATA, 12, 7, "kengine", body) == expected
    _, decoded = decode_request(expected[4:])
    assert decoded == {"topics": [{"topic_id": bytes(16), "name": "orders"},
                                  {"topic_id": bytes(16), "name": "payments"}],
                       "allow_auto_topic_creation": True,
                       "include_topic_authorized_operations": False}


def test_produce_v9_request_with_one_partition() -> None:
    batch = bytes(range(70))  # stands for one RecordBatch; the codec does not look inside
    expected = frame(
        "0000", "0009", "00000005", classic_str("p1"), "00",   # header v2
        "00",                          # transactional_id: compact null
        "ffff",                        # acks -1
        "00007530",                    # timeout_ms 30000
        "02",                          # topic_data: 1 topic
        compact_str("events"),
        "02",                          #   partition_data: 1 partition
        "00000003",                    #     index 3
        "47", batch.hex(),             #     records: compact bytes, 70 + 1
        "00",                          #     partition tags
        "00",                          #   topic tags
        "00",                          # request tags
    )
    body = {"acks": -1, "timeout_ms": 30000,
            "topic_data": [{"name": "events",
                            "partition_data": [{"index": 3, "records": batch}]}]}
    assert encode_request(ApiKey.PRODUCE, 9, 5, "p1", body) == expected


def test_produce_v11_response_with_a_record_error() -> None:
    data = frame(
        "00000005", "00",              # header v1: correlation id, tags
        "02",                          # responses: 1 topic
        compact_str("events"),
        "02",                          #   partition_responses: 1
        "00000003",                    #     index 3
        "0057",                        #     error_code 87 INVALID_RECORD
        "ffffffffffffffff",            #     base_offset -1
        "ffffffffffffffff",            #     log_append_time_ms -1
        "0000000000000000",            #     log_start_offset 0
        "02",                          #     record_errors: 1
        "00000002",                    #       batch_index 2
        compact_str("bad key"),        #       batch_index_error_message
        "00",                          #       tags
        compact_str("batch dropped"),  #     error_message
        "00",                          #     tags (current_leader left at its default)
        "00",                          #   topic tags
        "00000000",                    # throttle_time_ms
        "00",                          # tags (no node_endpoints)
    )
    correlation_id, body = decode_response(ApiKey.PRODUCE, 11, data[4:])
    assert correlation_id == 5
    assert body == {
        "responses": [{"name": "events", "partition_responses": [{
            "index": 3, "error_code": 87, "base_offset": -1, "log_append_time_ms": -1,
            "log_start_offset": 0,
            "record_errors": [{"batch_index": 2, "batch_index_error_message": "bad key"}],
            "error_message": "batch dropped",
            "current_leader": {"leader_id": -1, "leader_epoch": -1}}]}],
        "throttle_time_ms": 0, "node_endpoints": []}
    assert encode_response(ApiKey.PRODUCE, 11, 5, body) == data


# --- headers ----------------------------------------------------------------------------------

def test_api_versions_response_header_has_no_tagged_fields_even_when_flexible() -> None:
    body = {"error_code": 0, "api_keys": [{"api_key": 0, "min_version": 3, "max_version": 13}]}
    encoded = encode_response(18, 3, 9, body)
    # correlation id, then directly the body's error_code (no header tag byte)
    assert encoded[4:10] == hexbytes("00000009 0000")
    assert decode_response(18, 3, encoded[4:])[1]["api_keys"] == body["api_keys"]
    # any other flexible response does carry the header tag byte
    assert encode_response(3, 12, 9, {})[4:9] == hexbytes("00000009 00")


def test_unsupported_api_versions_answer_in_v0_is_read_as_v0() -> None:
    # KIP-511: a broker that does not know ApiVersions v4 answers v0-style with
    # UNSUPPORTED_VERSION and the versions it does support
    v0_answer = encode_response(18, 0, 1, {
        "error_code": 35, "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 3}]})
    correlation_id, body = decode_response(18, 4, v0_answer[4:])
    assert correlation_id == 1
    assert body == {"error_code": 35,
                    "api_keys": [{"api_key": 18, "min_version": 0, "max_version": 3}]}


def test_garbage_api_versions_answer_still_fails() -> None:
    with pytest.raises(ProtocolError, match="ApiVersionsResponse v3"):
        decode_response(18, 3, hexbytes("00000001 0000 05"))


def test_request_header_client_id_may_be_null() -> None:
    encoded = encode_request(3, 12, 1, None, {"topics": None})
    header, body = decode_request(encoded[4:])
    assert header["client_id"] is None and body["topics"] is None


def test_peek_correlation_id() -> None:
    assert peek_correlation_id(encode_response(0, 9, -7, {})[4:]) == -7
    with pytest.raises(ProtocolError, match="response header"):
        peek_correlation_id(b"\x00\x01")


# --- values, defaults, versions ---------------------------------------------------------------

def test_missing_keys_take_schema_defaults() -> None:
    decoded = decode_message("MetadataResponse", 12,
                             encode_message("MetadataResponse", 12, {}))
    assert decoded == {"throttle_time_ms": 0, "brokers": [], "cluster_id": None,
                       "controller_id": -1, "topics": []}
    decoded = decode_message("FetchRequest", 11, encode_message("FetchRequest", 11, {}))
    assert decoded["max_bytes"] == 0x7FFFFFFF and decoded["replica_id"] == -1
    assert decoded["rack_id"] == ""


def test_unknown_keys_are_rejected_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"field topic_data\[0\]: unknown field\(s\) 'nmae'; "
                                         r"TopicProduceData has name, partition_data, topic_id"):
        encode_request(0, 9, 1, None, {"topic_data": [{"nmae": "t"}]})


def test_bad_values_name_the_field_path() -> None:
    body = {"topic_data": [{"name": "t", "partition_data": [{"index": 0}, {"index": "1"}]}]}
    with pytest.raises(TypeError, match=r"ProduceRequest v9, field "
                                        r"topic_data\[0\]\.partition_data\[1\]\.index"):
        encode_request(0, 9, 1, None, body)
    with pytest.raises(OverflowError, match=r"ProduceRequest v9, field acks"):
        encode_request(0, 9, 1, None, {"acks": 40000})
    with pytest.raises(TypeError, match="expected a dict"):
        encode_request(0, 9, 1, None, [])
    with pytest.raises(TypeError, match=r"field topic_data: expected a list, got dict"):
        encode_request(0, 9, 1, None, {"topic_data": {"name": "t"}})
    with pytest.raises(TypeError, match=r"field transactional_id: expected str, got int"):
        encode_request(0, 9, 1, None, {"transactional_id": 5})
    with pytest.raises(TypeError, match="expected bool"):
        encode_request(3, 12, 1, None, {"allow_auto_topic_creation": "yes"})
    # tagged fields too
    with pytest.raises(TypeError, match=r"ProduceResponse v10, field node_endpoints: "
                                        r"expected a list, got int"):
        encode_response(0, 10, 1, {"node_endpoints": 5})
    with pytest.raises(TypeError, match=r"field node_endpoints\[0\]\.host: expected str"):
        encode_response(0, 10, 1, {"node_endpoints": [{"host": 1}]})


def test_null_only_where_the_version_allows_it() -> None:
    with pytest.raises(TypeError, match=r"MetadataRequest v0, field topics: .*not nullable"):
        encode_request(3, 0, 1, None, {"topics": None})
    assert decode_request(encode_request(3, 1, 1, None, {"topics": None})[4:])[1]["topics"] is None
    with pytest.raises(TypeError, match=r"field topics\[0\]\.name"):
        encode_request(3, 9, 1, None, {"topics": [{"name": None}]})
    # the same null name is allowed from v10 on
    encode_request(3, 10, 1, None, {"topics": [{"name": None}]})


def test_non_default_value_of_a_field_the_version_lacks_is_an_error() -> None:
    # allow_auto_topic_creation exists from v4; before that brokers always auto-create
    with pytest.raises(UnsupportedVersionError,
                       match=r"MetadataRequest v3, field allow_auto_topic_creation: "
                             r"the field exists only in versions 4\+"):
        encode_request(3, 3, 1, None, {"allow_auto_topic_creation": False})
    # its default is fine, and so is leaving it out
    assert encode_request(3, 3, 1, None, {"allow_auto_topic_creation": True}) == \
        encode_request(3, 3, 1, None, {})
    # nested, with the path
    with pytest.raises(UnsupportedVersionError, match=r"field transactions"):
        encode_request(24, 3, 1, None, {"transactions": [{"transactional_id": "x"}]})


def test_ignorable_fields_are_dropped_silently() -> None:
    # throttle_time_ms is ignorable and absent from ProduceResponse v0 (not in the table),
    # topic names are ignorable and absent from Produce v13 (topic ids instead)
    topic_id = uuid.uuid4()
    body = {"topic_data": [{"name": "dropped", "topic_id": topic_id, "partition_data": []}]}
    _, decoded = decode_request(encode_request(0, 13, 1, None, body)[4:])
    assert decoded["topic_data"] == [{"topic_id": topic_id.bytes, "partition_data": []}]


def test_unknown_api_or_version() -> None:
    with pytest.raises(UnsupportedVersionError, match=r"ProduceRequest v2 is not supported: "
                                                      r"kengine knows versions 3-13"):
        encode_request(0, 2, 1, None, {})
    with pytest.raises(UnsupportedVersionError, match="no schema for api key 99"):
        encode_request(99, 0, 1, None, {})
    with pytest.raises(UnsupportedVersionError, match="out of range"):
        decode_response(0, -1, b"")
    with pytest.raises(ValueError, match="no message named 'Nope'"):
        encode_message("Nope", 0, {})


def test_decode_request_of_an_unknown_version_keeps_the_correlation_id() -> None:
    data = hexbytes("0012 0063 0000002a ffff")  # ApiVersions v99
    with pytest.raises(UnsupportedVersionError) as info:
        decode_request(data)
    assert info.value.context == {"api_key": 18, "api_version": 99, "correlation_id": 42}


def test_uuid_accepts_uuid_objects_and_decodes_to_bytes() -> None:
    topic_id = uuid.UUID("0123456789abcdef0123456789abcdef")
    encoded = encode_message("MetadataRequest", 12, {"topics": [{"topic_id": topic_id}]})
    assert decode_message("MetadataRequest", 12, encoded)["topics"][0]["topic_id"] == \
        topic_id.bytes


# --- records ----------------------------------------------------------------------------------

def test_records_from_several_buffers_are_concatenated_on_the_wire() -> None:
    pieces = [b"first-batch", bytearray(b"second"), memoryview(b"third")]
    joined = b"first-batchsecondthird"

    def body(records: object) -> dict:
        return {"topic_data": [{"name": "t", "partition_data": [{"index": 0,
                                                                 "records": records}]}]}
    for version in (8, 9):  # classic and compact lengths
        assert encode_request(0, version, 1, "c", body(pieces)) == \
            encode_request(0, version, 1, "c", body(tuple(pieces))) == \
            encode_request(0, version, 1, "c", body(joined))


def test_records_null_and_empty() -> None:
    for version in (8, 9):
        for records in (None, b""):
            encoded = encode_request(0, version, 1, None, {"topic_data": [
                {"name": "t", "partition_data": [{"index": 0, "records": records}]}]})
            _, body = decode_request(encoded[4:])
            assert body["topic_data"][0]["partition_data"][0]["records"] == records


def test_decoded_records_are_views_into_the_frame() -> None:
    batch = b"B" * 1000
    frame_ = encode_response(1, 12, 1, {"responses": [{"topic": "t", "partitions": [
        {"partition_index": 0, "records": batch}]}]})[4:]
    _, body = decode_response(1, 12, frame_)
    records = body["responses"][0]["partitions"][0]["records"]
    assert isinstance(records, memoryview) and records == batch
    assert records.obj is frame_


# --- tagged fields ----------------------------------------------------------------------------

def test_tagged_fields_are_written_only_when_not_default_in_tag_order() -> None:
    partition = {"index": 0, "error_code": 6, "base_offset": -1}
    plain = encode_message("ProduceResponse", 10, {"responses": [
        {"name": "t", "partition_responses": [partition]}]})
    with_leader = encode_message("ProduceResponse", 10, {"responses": [
        {"name": "t", "partition_responses": [
            {**partition, "current_leader": {"leader_id": 2, "leader_epoch": 9}}]}]})
    # the partition's tag section grows from "00" to: 1 field, tag 0, 9 bytes (two int32 and
    # the struct's own empty tag section)
    assert with_leader.replace(hexbytes("01 00 09 00000002 00000009 00"), hexbytes("00")) == plain
    # a default struct is not written
    assert encode_message("ProduceResponse", 10, {"responses": [
        {"name": "t", "partition_responses": [
            {**partition, "current_leader": {"leader_id": -1}}]}]}) == plain
    # several tagged fields go out by ascending tag whatever the dict order
    fetch = encode_message("FetchResponse", 12, {"responses": [{"topic": "t", "partitions": [{
        "snapshot_id": {"end_offset": 1, "epoch": 1},        # tag 2
        "diverging_epoch": {"epoch": 3, "end_offset": 4},    # tag 0
    }]}]})
    tags = fetch[fetch.index(hexbytes("02 00 0d")):]
    assert tags.startswith(hexbytes("02", "00 0d 00000003 0000000000000004 00",
                                    "02 0d 0000000000000001 00000001 00"))


def test_unknown_tagged_fields_are_skipped() -> None:
    known = encode_message("ApiVersionsResponse", 3, {"error_code": 0})
    assert known.endswith(hexbytes("00"))
    # append two tags this version does not know (7 and 300) to the top-level section
    extended = known[:-1] + hexbytes("02", "07 03 aabbcc", "ac02 01 ff")
    assert decode_message("ApiVersionsResponse", 3, extended) == \
        decode_message("ApiVersionsResponse", 3, known)


def test_a_tagged_value_must_fill_its_declared_size() -> None:
    body = encode_message("ApiVersionsResponse", 3, {"finalized_features_epoch": 5})
    assert body.endswith(hexbytes("01 01 08 0000000000000005"))
    too_long = body[:-10] + hexbytes("01 09 0000000000000005 ff")
    with pytest.raises(ProtocolError, match=r"field finalized_features_epoch: .*declares 9 "
                                            r"bytes but its value used 8"):
        decode_message("ApiVersionsResponse", 3, too_long)
    too_short = body[:-10] + hexbytes("01 04 00000005")
    with pytest.raises(ProtocolError, match=r"finalized_features_epoch: truncated input: int64"):
        decode_message("ApiVersionsResponse", 3, too_short)


# --- malformed input --------------------------------------------------------------------------

def test_truncation_error_names_message_field_and_offset() -> None:
    data = encode_response(3, 0, 1, {"brokers": [{"node_id": 1, "host": "a"},
                                                 {"node_id": 2, "host": "b" * 50}]})[4:]
    with pytest.raises(ProtocolError, match=r"MetadataResponse v0, field brokers\[1\]\.host: "
                                            r"truncated input: string at offset 25 needs 50 "
                                            r"bytes but 40 remain \(10 missing\)"):
        decode_response(3, 0, data[:65])


def test_trailing_bytes_are_an_error() -> None:
    data = encode_message("EndTxnResponse", 3, {})
    with pytest.raises(ProtocolError, match="1 bytes left after the end of the message"):
        decode_message("EndTxnResponse", 3, data + b"\x00")


def test_array_count_beyond_the_input_fails_before_allocating() -> None:
    with pytest.raises(ProtocolError, match=r"field brokers: .*array of 2147483647 elements "
                                            r"cannot fit in the 0 bytes left"):
        decode_message("MetadataResponse", 0, hexbytes("7fffffff"))
    with pytest.raises(ProtocolError, match="array of 4294967294 elements"):
        decode_message("MetadataResponse", 12, hexbytes("00000000 ffffffff0f"))
    with pytest.raises(ProtocolError, match="negative length -5"):
        decode_message("MetadataResponse", 0, hexbytes("fffffffb"))
    with pytest.raises(ProtocolError, match="null array where the field is not nullable"):
        decode_message("MetadataResponse", 0, hexbytes("ffffffff"))


# --- WriteBuffer integration ------------------------------------------------------------------

def test_write_request_appends_frames_and_is_atomic_on_error() -> None:
    buf = WriteBuffer()
    write_request(buf, 18, 3, 1, "c", {})
    first = buf.to_bytes()
    with pytest.raises(TypeError):
        write_request(buf, 0, 9, 2, "c", {"acks": "all"})
    assert buf.to_bytes() == first
    write_request(buf, 18, 0, 2, "c", {})
    assert buf.to_bytes() == first + encode_request(18, 0, 2, "c", {})
    buf.start_message()
    with pytest.raises(IllegalStateError):
        write_request(buf, 18, 0, 3, "c", {})


def test_zero_copy_produce_request_sends_the_batches_themselves() -> None:
    batches = [bytes([i]) * 8192 for i in range(3)]
    body = {"acks": 1, "timeout_ms": 1000, "topic_data": [{"name": "t", "partition_data": [
        {"index": i, "records": b} for i, b in enumerate(batches)]}]}
    buf = WriteBuffer(zero_copy_min_bytes=4096)
    write_request(buf, 0, 9, 1, "c", body)
    segments = buf.segments()
    assert [s for s in segments if s is batches[0] or s is batches[1] or s is batches[2]] == \
        batches
    assert b"".join(bytes(s) for s in segments) == buf.to_bytes() == \
        encode_request(0, 9, 1, "c", body)


def test_write_request_rolls_back_zero_copy_references_too() -> None:
    buf = WriteBuffer(zero_copy_min_bytes=16)
    body = {"topic_data": [{"name": "t", "partition_data": [
        {"index": 0, "records": b"x" * 64}, {"index": "bad"}]}]}
    with pytest.raises(TypeError):
        write_request(buf, 0, 9, 1, None, body)
    assert len(buf) == 0 and buf.segments() == []


# --- custom schemas ---------------------------------------------------------------------------

def test_message_objects_outside_the_table_cover_every_type() -> None:
    msg = Message("Everything", "request", api_key=None, valid_versions="0-1",
                  flexible_versions="1+", latest_version_unstable=False, fields=(
                      Field("f", "float64", "0+"),
                      Field("u16", "uint16", "0+"),
                      Field("u32", "uint32", "0+"),
                      Field("blob", "bytes", "0+", nullable_versions="1+"),
                      Field("names", "[]string", "0+"),
                      Field("ids", "[]int64", "0+"),
                      Field("inner", "Inner", "0+", fields=(Field("x", "int8", "0+"),)),
                  ))
    value = {"f": -2.5, "u16": 65535, "u32": 2**32 - 1, "blob": b"\x00\x01",
             "names": ["a", "é"], "ids": [-1, 2**40], "inner": {"x": -3}}
    assert encode_message(msg, 0, value) == hexbytes(
        "c004000000000000", "ffff", "ffffffff", "00000002 0001",
        "00000002", "0001 61", "0002 c3a9", "00000002 ffffffffffffffff 0000010000000000", "fd")
    for version in (0, 1):
        assert decode_message(msg, version, encode_message(msg, version, value)) == value
    assert decode_message(msg, 1, encode_message(msg, 1, {"blob": None}))["blob"] is None


# --- negotiation ------------------------------------------------------------------------------

def test_supported_versions_come_from_the_table() -> None:
    assert supported_versions(ApiKey.PRODUCE) == (3, 13)
    assert supported_versions(ApiKey.METADATA) == (0, 13)
    # InitProducerId v6 is marked unstable in Kafka's schema: not offered
    assert supported_versions(ApiKey.INIT_PRODUCER_ID) == (0, 5)
    with pytest.raises(UnsupportedVersionError):
        supported_versions(1000)


@pytest.mark.parametrize("broker_min,broker_max,expected", [
    (0, 11, 11),      # an older broker: its max
    (3, 20, 13),      # a newer broker: ours
    (0, 2, None),     # nothing in common (Produce starts at 3 here)
    (14, 20, None),
    (13, 13, 13),
])
def test_pick_version(broker_min: int, broker_max: int, expected: int | None) -> None:
    assert pick_version(ApiKey.PRODUCE, broker_min, broker_max) == expected
