"""kengine_ext.murmur2/partition_for_key against Kafka's published vectors and against
kafka-python's pure-Python port of Java's Utils.murmur2 (an independent implementation)."""
from __future__ import annotations

import array
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kengine_ext import murmur2, partition_for_key

with warnings.catch_warnings():
    # importing kafka-python loads its protocol schemas through deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2


def reference(key: bytes) -> int:
    """kafka-python's murmur2 returns the 32 bits unsigned; Java's int is signed."""
    h = int(kafka_python_murmur2(key))
    return h - 2**32 if h >= 2**31 else h


def reference_partition(key: bytes, num_partitions: int) -> int:
    return (int(kafka_python_murmur2(key)) & 0x7FFFFFFF) % num_partitions


# From Kafka's UtilsTest.testMurmur2 (the Java client's own expectations).
KAFKA_VECTORS = [
    ("21", -973932308),
    ("foobar", -790332482),
    ("a-little-bit-long-string", -985981536),
    ("a-little-bit-longer-string", -1486304829),
    ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS)
def test_kafka_vectors(key: str | bytes, expected: int) -> None:
    assert murmur2(key) == expected
    raw = key.encode() if isinstance(key, str) else key
    assert murmur2(raw) == expected
    assert reference(raw) == expected  # the oracle agrees with Java too


def test_empty_key_is_hashed() -> None:
    assert murmur2(b"") == reference(b"") == murmur2("")
    assert partition_for_key(b"", 7) == reference_partition(b"", 7)


def test_str_is_hashed_as_utf8() -> None:
    for text in ("plain-ascii", "clé", "ключ", "キー", "emoji 🔑", "x" * 1000):
        assert murmur2(text) == reference(text.encode("utf-8")), text


def test_str_with_lone_surrogate_is_an_error() -> None:
    with pytest.raises(UnicodeEncodeError):
        murmur2("\ud800")


def test_buffer_types() -> None:
    raw = b"0123456789abcdefXYZ"
    ints = array.array("B", raw)
    for key in (bytearray(raw), memoryview(raw), ints, memoryview(b"__" + raw)[2:]):
        assert murmur2(key) == reference(raw), type(key)
        assert partition_for_key(key, 12) == reference_partition(raw, 12), type(key)


def test_none_and_non_buffers_are_type_errors() -> None:
    with pytest.raises(TypeError, match="the key is None"):
        murmur2(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="the key is None"):
        partition_for_key(None, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not int"):
        murmur2(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, "3", None])
def test_partition_count_must_be_positive_int32(bad: object) -> None:
    with pytest.raises(ValueError, match="num_partitions must be the topic's partition count"):
        partition_for_key(b"key", bad)  # type: ignore[arg-type]


def test_partition_count_upper_bound_is_accepted() -> None:
    assert partition_for_key(b"key", 2**31 - 1) == reference_partition(b"key", 2**31 - 1)


@given(st.binary(min_size=0, max_size=64))
def test_murmur2_matches_kafka_python(key: bytes) -> None:
    assert murmur2(key) == reference(key)


@given(st.binary(min_size=0, max_size=64), st.integers(min_value=1, max_value=1000))
def test_partition_matches_kafka_python(key: bytes, num_partitions: int) -> None:
    assert partition_for_key(key, num_partitions) == reference_partition(key, num_partitions)


def test_partition_for_every_count_to_1000() -> None:
    # keys like a typical workload's, over every partition count 1..1000
    keys = [str(i).encode() for i in range(0, 5000, 97)] + [b"", b"\xff\xfe\xfd"]
    for key in keys:
        h = kafka_python_murmur2(key) & 0x7FFFFFFF
        for n in range(1, 1001):
            assert partition_for_key(key, n) == h % n, (key, n)


def test_long_keys() -> None:
    key = bytes(range(256)) * 40  # every byte value, 10 KiB, every tail length below
    for n in (65, 127, 1021, 4099, len(key)):
        assert murmur2(key[:n]) == reference(key[:n]), n
