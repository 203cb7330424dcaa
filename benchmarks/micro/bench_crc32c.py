"""CRC32C throughput: kengine (dispatched and portable paths) vs the crc32c package and crcmod,
each called once per buffer from Python, at a record-sized, a batch-sized and a large input."""
from __future__ import annotations

import random
from collections.abc import Callable

import crc32c as crc32c_package
import crcmod.predefined
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from kengine_ext import crc32c, crc32c_implementation
from kengine_ext._core import _crc32c_software

SIZES = {"100 B": 100, "16 KiB": 16 * 1024, "1 MiB": 1024 * 1024}
IMPLEMENTATIONS: dict[str, Callable[[bytes], int]] = {
    f"kengine ({crc32c_implementation()})": crc32c,
    "kengine (software, slicing-by-8)": _crc32c_software,
    "crc32c package" + (" (hardware)" if crc32c_package.hardware_based else " (software)"):
        crc32c_package.crc32c,
    "crcmod": crcmod.predefined.mkCrcFun("crc-32c"),
}
DATA = {label: random.Random(size).randbytes(size) for label, size in SIZES.items()}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_crc32c(benchmark: BenchmarkFixture, record: Callable[..., None], impl: str,
                size: str) -> None:
    benchmark.group = f"crc32c {size}"
    fn = IMPLEMENTATIONS[impl]
    data = DATA[size]
    assert benchmark(fn, data) == crc32c(data)
    record("CRC32C", impl, size, SIZES[size], "bytes", baseline=impl.startswith("crc32c package"))
