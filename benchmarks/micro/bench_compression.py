"""Codec throughput on a real records section: the 64 KiB batch of bench_records.py.

For each codec, kengine's ``compress()`` (what a batch goes through when it is sealed: gzip
level 6, lz4 with the fast compressor, zstd level 3, snappy in xerial framing, as Kafka's Java
client writes them) against the functions aiokafka 0.14 and kafka-python call for the same
codec with their defaults (aiokafka's lz4 defaults to LZ4-HC level 9, kafka-python's gzip to
level 9), plus kengine's ``decompress()``. Throughput counts uncompressed bytes; the ratio of
each output is in the JSON report. Every output is first decompressed and compared with the
input.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.micro.bench_records import KEYS, VALUES
from kengine_ext import compress, decompress, encode_batch

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import aiokafka.codec as aiokafka_codec
    import kafka.codec as kafka_python_codec

# The records section of the batch (everything after the 61-byte batch header).
SECTION = bytes(encode_batch(VALUES, KEYS))[61:]
CODECS = ("gzip", "lz4", "zstd", "snappy")
GROUP = "codecs on a 64 KiB records section (100-byte JSON-like values)"
Record = Callable[..., None]  # the `record` fixture of conftest.py


def _peer(module: object, codec: str) -> Callable[[bytes], bytes]:
    encode: Callable[[bytes], bytes] = getattr(module, f"{codec}_encode")
    return encode


COMPRESSORS: dict[str, Callable[[str], Callable[[bytes], bytes]]] = {
    "kengine compress()": lambda codec: lambda data: compress(codec, data),
    "aiokafka 0.14 codec": lambda codec: _peer(aiokafka_codec, codec),
    "kafka-python codec": lambda codec: _peer(kafka_python_codec, codec),
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("impl", COMPRESSORS)
def test_compress(benchmark: BenchmarkFixture, record: Record, impl: str, codec: str) -> None:
    benchmark.group = f"compress {codec}"
    fn = COMPRESSORS[impl](codec)
    out = fn(SECTION)
    assert decompress(codec, out) == SECTION
    benchmark(fn, SECTION)
    benchmark.extra_info["compression_ratio"] = len(out) / len(SECTION)
    record(GROUP, impl, f"compress {codec}", len(SECTION), "bytes",
           baseline=impl.startswith("aiokafka"))


@pytest.mark.parametrize("codec", CODECS)
def test_decompress(benchmark: BenchmarkFixture, record: Record, codec: str) -> None:
    benchmark.group = f"decompress {codec}"
    compressed = compress(codec, SECTION)
    assert decompress(codec, compressed) == SECTION
    benchmark(decompress, codec, compressed)
    record(GROUP, "kengine decompress()", f"decompress {codec}", len(SECTION), "bytes")
