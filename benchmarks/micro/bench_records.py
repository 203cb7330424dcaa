"""RecordBatch v2 encoding: one 64 KiB batch of 100-byte values with short keys (issue 3).

Every implementation encodes the same records, as many as fit in 64 KiB uncompressed (580),
without and with lz4, timestamps read from the clock as each does by default:

* kengine per record: ``RecordBatchBuilder.append`` once per record from Python, then
  ``build()``, the engine behind ``Producer.send()``;
* kengine bulk: ``RecordBatchBuilder.append_many`` + ``build()`` (behind ``send_many()``),
  ``encode_batch`` (one call, lists in) and ``encode_batch_flat`` (one flat buffer plus
  offsets, as NumPy or Arrow columns come);
* aiokafka 0.14's Cython ``DefaultRecordBatchBuilder`` (the baseline of the targets) and
  kafka-python's pure-Python builder, each appending record by record and building.

Before timing, every implementation's batch is decoded by kafka-python's reader (a decoder
nobody here wrote) and must hold exactly the records given. Targets, from the same run:
per record ≥ 3x aiokafka, bulk ≥ 8x aiokafka.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from benchmarks.workload import KEY_SPACE, keys, payload_pool
from kengine_ext import RecordBatchBuilder, encode_batch, encode_batch_flat

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from aiokafka.record._crecords import DefaultRecordBatchBuilder as AioBuilder
    from kafka.record.default_records import DefaultRecordBatch as KpBatch
    from kafka.record.default_records import DefaultRecordBatchBuilder as KpBuilder

BATCH_BYTES = 64 * 1024
RECORD_BYTES = 100
GROUP = "RecordBatch v2, 64 KiB of 100-byte values, keys str(i % 1000)"
CODECS = {"none": 0, "lz4": 3}  # Kafka's codec ids, which the peers take
# Large enough that no builder refuses one of the records below: every one encodes them all.
NO_LIMIT_BYTES = 1 << 20
Record = Callable[..., None]  # the `record` fixture of conftest.py


def _records() -> tuple[list[bytes], list[bytes]]:
    pool, ks = payload_pool(RECORD_BYTES), keys()
    builder = RecordBatchBuilder(BATCH_BYTES)
    n = 0
    while builder.append(ks[n % KEY_SPACE], pool[n % len(pool)]) >= 0:
        n += 1
    return [pool[i % len(pool)] for i in range(n)], [ks[i % KEY_SPACE] for i in range(n)]


VALUES, KEYS = _records()
COUNT = len(VALUES)


def kengine_append(codec: str) -> Any:
    builder = RecordBatchBuilder(NO_LIMIT_BYTES, compression=codec)
    append = builder.append
    for key, value in zip(KEYS, VALUES, strict=True):
        append(key, value)
    return builder.build()


def kengine_append_many(codec: str) -> Any:
    builder = RecordBatchBuilder(NO_LIMIT_BYTES, compression=codec)
    builder.append_many(VALUES, KEYS)
    return builder.build()


def kengine_encode_batch(codec: str) -> Any:
    return encode_batch(VALUES, KEYS, compression=codec)


def _flat(items: list[bytes]) -> tuple[bytes, np.ndarray]:
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in items], out=offsets[1:])
    return b"".join(items), offsets


FLAT_VALUES, FLAT_VALUE_OFFSETS = _flat(VALUES)
FLAT_KEYS, FLAT_KEY_OFFSETS = _flat(KEYS)


def kengine_encode_batch_flat(codec: str) -> Any:
    return encode_batch_flat(FLAT_VALUES, FLAT_VALUE_OFFSETS, FLAT_KEYS, FLAT_KEY_OFFSETS,
                             compression=codec)


def aiokafka_builder(codec: str) -> Any:
    builder = AioBuilder(2, CODECS[codec], 0, -1, -1, -1, NO_LIMIT_BYTES)
    append = builder.append
    for offset, (key, value) in enumerate(zip(KEYS, VALUES, strict=True)):
        append(offset, timestamp=None, key=key, value=value, headers=[])
    return builder.build()


def kafka_python_builder(codec: str) -> Any:
    builder = KpBuilder(2, CODECS[codec], 0, -1, -1, -1, NO_LIMIT_BYTES)
    append = builder.append
    for offset, (key, value) in enumerate(zip(KEYS, VALUES, strict=True)):
        append(offset, None, key, value, [])
    return builder.build()


# label -> (function, is the aiokafka baseline, kind for the targets)
IMPLEMENTATIONS: dict[str, tuple[Callable[[str], Any], bool, str]] = {
    "kengine append() per record + build()": (kengine_append, False, "per-record"),
    "kengine append_many() + build()": (kengine_append_many, False, "bulk"),
    "kengine encode_batch()": (kengine_encode_batch, False, "bulk"),
    "kengine encode_batch_flat() (columnar)": (kengine_encode_batch_flat, False, "bulk"),
    "aiokafka 0.14 Cython DefaultRecordBatchBuilder": (aiokafka_builder, True, "per-record"),
    "kafka-python DefaultRecordBatchBuilder": (kafka_python_builder, False, "per-record"),
}


def _decoded(batch: Any) -> list[tuple[bytes, bytes]]:
    decoded = KpBatch(bytes(batch))
    decoded.validate_crc()
    return [(r.key, r.value) for r in decoded]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_record_batch(benchmark: BenchmarkFixture, record: Record, impl: str,
                      codec: str) -> None:
    benchmark.group = f"RecordBatch v2, {codec}"
    fn, baseline, kind = IMPLEMENTATIONS[impl]
    assert _decoded(fn(codec)) == list(zip(KEYS, VALUES, strict=True))
    benchmark(fn, codec)
    benchmark.extra_info["kind"] = kind
    record(GROUP, impl, codec, COUNT, "records", baseline=baseline)
