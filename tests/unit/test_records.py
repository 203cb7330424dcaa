"""RecordBatch v2 builder, bulk encoders and decoder.

Oracles nobody here wrote: kafka-python's DefaultRecordBatch reader/builder and crcmod's
CRC-32C. kengine's own decoder is checked against them, never only against the builder.
"""
from __future__ import annotations

import os
import struct

import crcmod.predefined
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

import kengine_ext as k
from kengine.errors import (
    CorruptRecordError,
    IllegalStateError,
    RecordTooLargeError,
    SerializationError,
)

crc32c_ref = crcmod.predefined.mkCrcFun("crc-32c")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
KAFKA_PYTHON_CODEC = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def read_with_kafka_python(data: bytes) -> list[tuple]:
    """Decodes one batch with kafka-python (an independent implementation)."""
    batch = DefaultRecordBatch(bytes(data))
    assert batch.validate_crc(), "kafka-python rejects the CRC"
    return [(r.offset, r.timestamp, r.key, r.value, [tuple(h) for h in r.headers]) for r in batch]


def header_fields(data) -> dict:
    (base_offset, length, epoch, magic, crc, attrs, last_delta, base_ts, max_ts, pid, pepoch,
     base_seq, count) = struct.unpack(">qiibIhiqqqhii", bytes(data[:61]))
    return dict(base_offset=base_offset, length=length, epoch=epoch, magic=magic, crc=crc,
                attrs=attrs, last_delta=last_delta, base_ts=base_ts, max_ts=max_ts, pid=pid,
                pepoch=pepoch, base_seq=base_seq, count=count)


# ---------------------------------------------------------------------------- builder basics


def test_header_fields_and_crc_match_the_spec():
    b = k.RecordBatchBuilder(16384, producer_id=77, producer_epoch=3, base_sequence=10)
    for i in range(4):
        assert b.append(b"k%d" % i, b"v" * i, timestamp_ms=1_000 + (i * 7) % 5) == i
    data = bytes(b.build())
    h = header_fields(data)
    assert h["base_offset"] == 0 and h["magic"] == 2 and h["epoch"] == -1
    assert h["length"] == len(data) - 12
    assert h["count"] == 4 and h["last_delta"] == 3
    assert h["base_ts"] == 1000 and h["max_ts"] == max(1000 + (i * 7) % 5 for i in range(4))
    assert (h["pid"], h["pepoch"], h["base_seq"]) == (77, 3, 10)
    assert h["attrs"] == 0
    assert h["crc"] == crc32c_ref(data[21:])
    assert read_with_kafka_python(data) == [
        (i, 1000 + (i * 7) % 5, b"k%d" % i, b"v" * i, []) for i in range(4)
    ]


def test_null_and_empty_keys_and_values_stay_distinct():
    b = k.RecordBatchBuilder(16384)
    b.append(None, None, timestamp_ms=5)
    b.append(b"", b"", timestamp_ms=5)
    b.append(None, b"x", timestamp_ms=5)
    b.append(b"y", None, timestamp_ms=5)
    got = [(r[2], r[3]) for r in read_with_kafka_python(b.build())]
    assert got == [(None, None), (b"", b""), (None, b"x"), (b"y", None)]
    ours = [(r.key, r.value) for r in k.decode_batches(b.build())[0].records]
    assert ours == got


def test_headers_from_pairs_and_dict():
    b = k.RecordBatchBuilder(16384)
    b.append(b"a", b"1", headers=[("trace", b"abc"), ("empty", b""), ("none", None)],
             timestamp_ms=1)
    b.append(b"b", b"2", headers={"x": b"y", "s": "text"}, timestamp_ms=1)
    recs = read_with_kafka_python(b.build())
    assert recs[0][4] == [("trace", b"abc"), ("empty", b""), ("none", None)]
    assert recs[1][4] == [("x", b"y"), ("s", b"text")]


def test_buffer_protocol_inputs_are_accepted():
    payload = b"0123456789"
    inputs = [bytearray(payload), memoryview(payload), np.frombuffer(payload, dtype=np.uint8),
              memoryview(b"xx" + payload)[2:], "0123456789"]
    b = k.RecordBatchBuilder(16384)
    for obj in inputs:
        b.append(obj, obj, timestamp_ms=1)
    assert all(r[2] == payload and r[3] == payload for r in read_with_kafka_python(b.build()))


def test_default_timestamp_is_now_and_negative_deltas_work():
    import time

    before = int(time.time() * 1000)
    b = k.RecordBatchBuilder(16384)
    b.append(b"k", b"v")
    b.append(b"k", b"v", timestamp_ms=before - 10_000)  # older than the first: negative delta
    after = int(time.time() * 1000)
    recs = read_with_kafka_python(b.build())
    assert before <= recs[0][1] <= after
    assert recs[1][1] == before - 10_000
    assert header_fields(b.build())["max_ts"] == recs[0][1]


def test_append_reports_does_not_fit_and_first_record_may_exceed_batch_size():
    b = k.RecordBatchBuilder(1024, max_bytes=10_000)
    big = b"x" * 5000
    assert b.append(None, big, timestamp_ms=1) == 0  # first record: only max_bytes applies
    assert b.append(None, b"y", timestamp_ms=1) == -1
    assert b.record_count == 1
    small = k.RecordBatchBuilder(1024)
    n = 0
    while small.append(b"key", b"v" * 100, timestamp_ms=1) >= 0:
        n += 1
    assert small.size_bytes <= 1024 and n == small.record_count
    assert small.size_bytes + 115 > 1024  # it really was full
    assert len(read_with_kafka_python(small.build())) == n


def test_record_over_max_bytes_is_rejected_with_a_clear_error():
    b = k.RecordBatchBuilder(1024, max_bytes=2048)
    with pytest.raises(RecordTooLargeError, match="max.request.size"):
        b.append(None, b"x" * 4096)
    assert b.record_count == 0


def test_bad_inputs_raise_typed_errors():
    b = k.RecordBatchBuilder(1024)
    with pytest.raises(SerializationError, match="value must be bytes"):
        b.append(b"k", 12345)
    with pytest.raises(SerializationError, match="header key 1 must be str"):
        b.append(b"k", b"v", headers=[(1, b"x")])
    with pytest.raises(SerializationError, match="headers must be"):
        b.append(b"k", b"v", headers=[b"notapair"])
    assert b.record_count == 0
    with pytest.raises(IllegalStateError, match="no records"):
        b.build()


def test_built_batch_refuses_appends():
    b = k.RecordBatchBuilder(1024)
    b.append(b"k", b"v", timestamp_ms=1)
    b.build()
    with pytest.raises(IllegalStateError, match="already built"):
        b.append(b"k", b"v")


def test_producer_state_patched_after_build_keeps_a_valid_crc():
    b = k.RecordBatchBuilder(4096, compression="lz4", transactional=True)
    b.append_many([b"value %d" % i for i in range(50)])
    b.build()
    b.set_producer_state(123456789, 7, 42)
    data = bytes(b.build())
    h = header_fields(data)
    assert (h["pid"], h["pepoch"], h["base_seq"]) == (123456789, 7, 42)
    assert h["attrs"] & 0x10  # transactional
    assert h["crc"] == crc32c_ref(data[21:])
    batch = DefaultRecordBatch(data)
    assert batch.validate_crc() and batch.is_transactional
    assert batch.producer_id == 123456789 and batch.base_sequence == 42
    with pytest.raises(IllegalStateError):
        b.set_producer_state(1, 1, 1, transactional=False)


# ---------------------------------------------------------------------------- compression


@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_is_read_by_kafka_python(codec):
    b = k.RecordBatchBuilder(64 * 1024, compression=codec)
    values = [b'{"id": %d, "name": "user-%d", "ok": true}' % (i, i % 7) for i in range(400)]
    assert b.append_many(values, keys=[b"%d" % (i % 10) for i in range(400)]) == 400
    data = bytes(b.build())
    assert b.compression == codec
    assert DefaultRecordBatch(data).compression_type == KAFKA_PYTHON_CODEC[codec]
    recs = read_with_kafka_python(data)
    assert [r[3] for r in recs] == values
    assert [r.value for r in k.decode_batches(data)[0].records] == values
    if codec != "none":
        assert len(data) < b.uncompressed_size_bytes
        assert 0 < b.compression_ratio < 1


def test_incompressible_batch_goes_out_uncompressed():
    b = k.RecordBatchBuilder(16384, compression="zstd")
    b.append(None, os.urandom(4000), timestamp_ms=1)
    data = bytes(b.build())
    assert b.compression == "none"
    assert header_fields(data)["attrs"] & 7 == 0
    assert len(read_with_kafka_python(data)) == 1


def test_compression_estimate_lets_compressed_batches_approach_batch_size():
    values = [b"a" * 100] * 5000
    first = k.RecordBatchBuilder(16384, compression="lz4")
    n1 = first.append_many(values)
    first.build()
    second = k.RecordBatchBuilder(16384, compression="lz4", ratio_estimate=first.compression_ratio)
    n2 = second.append_many(values)
    second.build()
    assert n2 > 3 * n1  # the estimate admits many more records...
    assert second.size_bytes <= 16384  # ...and the compressed batch still respects batch.size


def test_snappy_uses_xerial_framing_and_raw_snappy_decodes():
    data = b"hello hello hello hello " * 2000  # > 32 KiB: several xerial blocks
    framed = k.compress("snappy", data)
    assert framed[:8] == b"\x82SNAPPY\x00"
    assert k.decompress("snappy", framed) == data
    import cramjam

    assert k.decompress("snappy", bytes(cramjam.snappy.compress_raw(data))) == data


def test_lz4_frame_has_independent_blocks_and_no_content_size():
    frame = k.compress("lz4", b"x" * 1000)
    assert frame[:4] == b"\x04\x22\x4d\x18"  # LZ4 frame magic
    flg = frame[4]
    assert flg & 0x20  # block independence
    assert not flg & 0x08  # no content size
    assert not flg & 0x04  # no content checksum


def test_compression_levels_are_validated():
    with pytest.raises(ValueError, match="1..9"):
        k.RecordBatchBuilder(1024, compression="gzip", compression_level=12)
    with pytest.raises(ValueError, match="unknown compression codec"):
        k.RecordBatchBuilder(1024, compression="brotli")
    assert k.default_compression_level("zstd") == 3
    assert k.default_compression_level("lz4") == 9
    assert k.default_compression_level("snappy") is None


# ---------------------------------------------------------------------------- bulk paths


def test_append_many_matches_per_record_appends():
    values = [b"v%d" % i for i in range(300)]
    keys = [None if i % 5 == 0 else b"k%d" % i for i in range(300)]
    headers = [[("i", b"%d" % i)] if i % 3 == 0 else None for i in range(300)]
    stamps = [1000 + i for i in range(300)]
    bulk = k.RecordBatchBuilder(1 << 20)
    assert bulk.append_many(values, keys, headers, stamps) == 300
    one = k.RecordBatchBuilder(1 << 20)
    for i in range(300):
        one.append(keys[i], values[i], headers=headers[i], timestamp_ms=stamps[i])
    assert bytes(bulk.build()) == bytes(one.build())


def test_append_many_stops_when_full_and_resumes_in_the_next_batch():
    values = [b"x" * 100] * 1000
    batches, start = [], 0
    while start < len(values):
        b = k.RecordBatchBuilder(16384)
        start += b.append_many(values, start=start)
        batches.append(bytes(b.build()))
        assert len(batches[-1]) <= 16384
    assert sum(len(read_with_kafka_python(b)) for b in batches) == 1000


def test_encode_batch_one_call():
    values = [b"v%d" % i for i in range(10_000)]
    data = k.encode_batch(values, keys=[b"k"] * 10_000, compression="zstd", producer_id=9,
                          producer_epoch=0, base_sequence=0)
    recs = read_with_kafka_python(data)
    assert [r[3] for r in recs] == values and recs[-1][0] == 9999


def test_encode_batch_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="same length"):
        k.encode_batch([b"a", b"b"], keys=[b"k"])


@pytest.mark.parametrize("offset_dtype", [np.int32, np.int64])
def test_encode_batch_flat_from_numpy_columns(offset_dtype):
    values = [b"alpha", b"", b"gamma-gamma", b"d"]
    keys = [b"k1", b"k2", b"", b"k4"]
    vdata = np.frombuffer(b"".join(values), dtype=np.uint8)
    voffs = np.array([0, 5, 5, 16, 17], dtype=offset_dtype)
    kdata = b"".join(keys)
    koffs = np.array([0, 2, 4, 4, 6], dtype=offset_dtype)
    valid = np.packbits([1, 1, 0, 1], bitorder="little")  # record 2: null value
    kvalid = np.packbits([1, 0, 1, 1], bitorder="little")  # record 1: null key
    ts = np.array([10, 20, 30, 40], dtype=np.int64)
    data = k.encode_batch_flat(vdata, voffs, kdata, koffs, values_valid=valid, keys_valid=kvalid,
                               timestamps=ts, compression="lz4")
    recs = read_with_kafka_python(data)
    assert [(r[1], r[2], r[3]) for r in recs] == [
        (10, b"k1", b"alpha"), (20, None, b""), (30, b"", None), (40, b"k4", b"d")]


def test_encode_batch_flat_validates_offsets():
    with pytest.raises(ValueError, match="record 1"):
        k.encode_batch_flat(b"abc", np.array([0, 2, 1], dtype=np.int32))
    with pytest.raises(ValueError, match="record 0"):
        k.encode_batch_flat(b"abc", np.array([0, 9], dtype=np.int64))
    with pytest.raises(ValueError, match="int32 or int64"):
        k.encode_batch_flat(b"abc", np.array([0, 3], dtype=np.float64))


# ---------------------------------------------------------------------------- decoding


def test_decoder_reads_batches_built_by_kafka_python():
    for codec in CODECS:
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=KAFKA_PYTHON_CODEC[codec], is_transactional=1,
            producer_id=5, producer_epoch=1, base_sequence=7, batch_size=1 << 20)
        for i in range(200):
            builder.append(i, timestamp=1000 + i, key=b"k%d" % i if i % 2 else None,
                           value=b"value-%d" % i, headers=[("h", b"%d" % i)])
        (batch,) = k.decode_batches(bytes(builder.build()))
        assert batch.compression == codec and batch.is_transactional
        assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (5, 1, 7)
        assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records] == [
            (i, 1000 + i, b"k%d" % i if i % 2 else None, b"value-%d" % i, [("h", b"%d" % i)])
            for i in range(200)]


def test_decoder_reads_concatenated_batches_and_tolerates_a_partial_tail_when_asked():
    a = bytes(k.encode_batch([b"a"] * 3))
    b = bytes(k.encode_batch([b"b"] * 2))
    assert [len(x.records) for x in k.decode_batches(a + b)] == [3, 2]
    truncated = a + b[:-5]
    with pytest.raises(CorruptRecordError, match="past the end"):
        k.decode_batches(truncated)
    assert [len(x.records) for x in k.decode_batches(truncated, allow_partial_tail=True)] == [3]


def test_decoder_reports_crc_and_magic_problems():
    data = bytearray(k.encode_batch([b"hello"]))
    data[-1] ^= 0xFF
    with pytest.raises(CorruptRecordError, match="CRC mismatch"):
        k.decode_batches(data)
    data = bytearray(k.encode_batch([b"hello"]))
    data[16] = 1
    with pytest.raises(CorruptRecordError, match="magic 1"):
        k.decode_batches(data)


def _valid_batch(codec: str) -> bytes:
    return bytes(k.encode_batch([b"v%d" % i for i in range(20)], keys=[b"k"] * 20,
                                headers=[[("h", b"x")]] * 20, compression=codec))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(codec=st.sampled_from(CODECS), data=st.data())
def test_fuzz_mutated_batches_only_raise_corrupt_record_error(codec, data):
    raw = bytearray(_valid_batch(codec))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for verify in (True, False):  # without the CRC guard the parser itself must hold
        try:
            k.decode_batches(bytes(raw[:cut]), verify_crc=verify)
        except CorruptRecordError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_only_raise_corrupt_record_error(blob):
    try:
        k.decode_batches(blob, verify_crc=False)
    except CorruptRecordError:
        pass


record_strategy = st.tuples(
    st.one_of(st.none(), st.binary(max_size=40)),
    st.one_of(st.none(), st.binary(max_size=300)),
    st.lists(st.tuples(st.text(max_size=10), st.one_of(st.none(), st.binary(max_size=20))),
             max_size=3),
    st.integers(min_value=0, max_value=2**41),
)


@settings(max_examples=150, deadline=None)
@given(codec=st.sampled_from(CODECS), records=st.lists(record_strategy, min_size=1, max_size=40))
def test_roundtrip_property_across_codecs(codec, records):
    b = k.RecordBatchBuilder(1 << 20, compression=codec)
    for key, value, headers, ts in records:
        assert b.append(key, value, headers=headers, timestamp_ms=ts) >= 0
    data = bytes(b.build())
    expected = [(i, ts, key, value, headers) for i, (key, value, headers, ts) in enumerate(records)]
    assert read_with_kafka_python(data) == expected
    (batch,) = k.decode_batches(data)
    assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in batch.records] == expected
