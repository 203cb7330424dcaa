"""murmur2 throughput on short keys (str(i % 1000), UTF-8 encoded, as in the end-to-end runs).

Three kengine figures: the public Python functions called once per key, and murmur2.h itself
in a C loop, which is how the accumulator hashes keys (no Python call per key). The C loop is
compiled here from the same header with the same flags as the extension.
"""
from __future__ import annotations

import ctypes
import shlex
import subprocess
import sysconfig
import warnings
from collections import deque
from collections.abc import Callable
from itertools import repeat
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from kengine_ext import murmur2, partition_for_key

with warnings.catch_warnings():
    # importing kafka-python loads its protocol schemas through deprecated importlib APIs
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2 as kafka_python_murmur2

KEYS = [str(i % 1000).encode() for i in range(10_000)]
PARTITIONS = 3
GROUP = "murmur2, keys str(i % 1000) encoded"
Record = Callable[..., None]  # the `record` fixture of conftest.py
HEADER_DIR = Path(__file__).resolve().parents[2] / "kengine_ext"

C_LOOP = r"""
#include "murmur2.h"
int64_t sum_murmur2(const char *blob, const int64_t *offsets, int64_t n)
{
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += kengine_murmur2(blob + offsets[i], (Py_ssize_t)(offsets[i + 1] - offsets[i]));
    return sum;
}
int64_t sum_partitions(const char *blob, const int64_t *offsets, int64_t n, int32_t parts)
{
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += kengine_partition_for_key(blob + offsets[i],
                                         (Py_ssize_t)(offsets[i + 1] - offsets[i]), parts);
    return sum;
}
"""


@pytest.fixture(scope="module")
def c_loop(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    build = tmp_path_factory.mktemp("murmur2_c")
    (build / "loop.c").write_text(C_LOOP)
    cc = shlex.split(sysconfig.get_config_var("CC") or "cc")
    subprocess.run(
        [*cc, "-O3", "-shared", "-fPIC", f"-I{HEADER_DIR}",
         f"-I{sysconfig.get_paths()['include']}", "loop.c", "-o", "loop.so"],
        cwd=build, check=True)
    lib = ctypes.CDLL(str(build / "loop.so"))
    lib.sum_murmur2.restype = ctypes.c_int64
    lib.sum_murmur2.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64]
    lib.sum_partitions.restype = ctypes.c_int64
    lib.sum_partitions.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64,
                                   ctypes.c_int32]
    return lib


def _packed_keys() -> tuple[bytes, ctypes.Array[ctypes.c_int64]]:
    offsets = [0]
    for key in KEYS:
        offsets.append(offsets[-1] + len(key))
    return b"".join(KEYS), (ctypes.c_int64 * len(offsets))(*offsets)


def test_kafka_python_murmur2(benchmark: BenchmarkFixture, record: Record) -> None:
    benchmark.group = "murmur2"
    benchmark(lambda: deque(map(kafka_python_murmur2, KEYS), 0))
    record(GROUP, "kafka-python murmur2() (pure Python)", "per key", len(KEYS), "keys",
           baseline=True)


def test_kengine_murmur2_python_call(benchmark: BenchmarkFixture, record: Record) -> None:
    benchmark.group = "murmur2"
    benchmark(lambda: deque(map(murmur2, KEYS), 0))
    record(GROUP, "kengine murmur2() from Python", "per key", len(KEYS), "keys")


def test_kengine_partition_for_key_python_call(benchmark: BenchmarkFixture,
                                               record: Record) -> None:
    benchmark.group = "murmur2"
    benchmark(lambda: deque(map(partition_for_key, KEYS, repeat(PARTITIONS)), 0))
    record(GROUP, "kengine partition_for_key() from Python", "per key", len(KEYS), "keys")


def test_kengine_murmur2_in_c(benchmark: BenchmarkFixture, record: Record,
                              c_loop: ctypes.CDLL) -> None:
    benchmark.group = "murmur2"
    blob, offsets = _packed_keys()
    total = benchmark(c_loop.sum_murmur2, blob, offsets, len(KEYS))
    assert total == sum(murmur2(key) for key in KEYS)
    record(GROUP, "kengine murmur2.h in C (accumulator path)", "per key", len(KEYS), "keys")


def test_kengine_partition_for_key_in_c(benchmark: BenchmarkFixture, record: Record,
                                        c_loop: ctypes.CDLL) -> None:
    benchmark.group = "murmur2"
    blob, offsets = _packed_keys()
    total = benchmark(c_loop.sum_partitions, blob, offsets, len(KEYS), PARTITIONS)
    assert total == sum(partition_for_key(key, PARTITIONS) for key in KEYS)
    record(GROUP, "kengine partition_for_key in C (accumulator path)", "per key", len(KEYS),
           "keys")
