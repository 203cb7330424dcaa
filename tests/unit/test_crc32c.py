"""kengine_ext.crc32c against crcmod's independent CRC-32C, on every path the dispatcher has.

This whole module runs twice: in this process on the implementation the CPU selects, and again
in a subprocess with KENGINE_CRC32C=software (test_software_path_passes_the_same_checks).
"""
from __future__ import annotations

import array
import ctypes
import mmap
import os
import platform
import random
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import crcmod.predefined
import pytest

from kengine_ext import crc32c, crc32c_implementation
from kengine_ext._core import _crc32c_software

reference = crcmod.predefined.mkCrcFun("crc-32c")

ROOT = Path(__file__).resolve().parents[2]
FORCED_SOFTWARE = os.environ.get("KENGINE_CRC32C") == "software"
# Both paths in this process: the dispatched one and the portable one called directly.
IMPLEMENTATIONS = [pytest.param(crc32c, id="dispatched"),
                   pytest.param(_crc32c_software, id="software")]

# 4 KiB plus slack for offsets; seeded so a failure reproduces.
SMALL = random.Random(0x5EED).randbytes(4096 + 8)
# Large enough for many three-stream blocks of both sizes and for the GIL-released path.
LARGE = random.Random(0xB16).randbytes(5 * 1024 * 1024 + 13)


def cpu_flags() -> set[str]:
    """The CPU's feature words as Linux's /proc/cpuinfo spells them ("flags" on x86,
    "Features" on ARM), asked of sysctl on macOS. Only the Linux way has run."""
    if sys.platform == "darwin":  # never run: no macOS machine here
        def sysctl(name: str) -> str:
            out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True)
            return out.stdout.strip()
        flags = {word.lower().replace(".", "_") for word in sysctl("machdep.cpu.features").split()}
        if sysctl("hw.optional.armv8_crc32") == "1":
            flags.add("crc32")
        return flags
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                return set(value.split())
    return set()


def test_check_value() -> None:
    # The catalogued check value of CRC-32C (iSCSI), and the empty input.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(b"", 0xDEADBEEF) == 0xDEADBEEF


def test_implementation_matches_cpu_and_environment() -> None:
    machine = platform.machine().lower()
    if FORCED_SOFTWARE or sys.platform == "win32":
        # MSVC builds compile only the portable path (kengine_ext/crc32c.c)
        expected = "software"
    elif machine in ("x86_64", "amd64") and "sse4_2" in cpu_flags():
        expected = "sse4.2"
    elif machine in ("aarch64", "arm64") and "crc32" in cpu_flags():
        expected = "armv8-crc"
    else:
        expected = "software"
    assert crc32c_implementation() == expected


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
def test_every_length_to_4096_at_every_alignment(fn: Callable[[memoryview], int]) -> None:
    view = memoryview(SMALL)
    for offset in range(8):
        for n in range(4097):
            piece = view[offset:offset + n]
            assert fn(piece) == reference(piece), (offset, n)


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
def test_megabytes_at_every_alignment(fn: Callable[[memoryview], int]) -> None:
    view = memoryview(LARGE)
    for offset in range(8):
        piece = view[offset:len(LARGE) - 8 + offset]
        assert fn(piece) == reference(piece), offset


@pytest.mark.parametrize("fn", IMPLEMENTATIONS)
def test_continuation_equals_checksum_of_concatenation(fn: Callable[..., int]) -> None:
    rng = random.Random(7)
    data = memoryview(LARGE)[:300_000]
    expected = reference(data)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(data)), rng.randint(1, 6)))
        crc = 0
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            crc = fn(data[start:end], crc)
        assert crc == expected, cuts
    # keyword form, and continuing from values with the top bit set
    high = reference(b"\xff" * 3)
    assert high >= 2**31
    assert fn(b"abc", crc=high) == reference(b"\xff" * 3 + b"abc")


def test_buffer_types() -> None:
    data = SMALL[:1000]
    expected = reference(data)
    ints = array.array("I")
    ints.frombytes(data)
    mapped = mmap.mmap(-1, len(data))
    mapped.write(data)
    c_array = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
    for obj in (
        data,
        bytearray(data),
        memoryview(data),
        ints,  # itemsize 4: the checksum is over its bytes
        memoryview(data).cast("B", shape=[10, 100]),  # 2-D, C-contiguous
        memoryview(bytearray(data)).cast("d"),
        mapped,
        c_array,
    ):
        assert crc32c(obj) == expected, type(obj)
    mapped.close()


def test_rejects_what_is_not_a_contiguous_buffer() -> None:
    with pytest.raises(TypeError):
        crc32c("text is not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        crc32c(None)  # type: ignore[arg-type]
    with pytest.raises(BufferError):
        crc32c(memoryview(SMALL)[::2])


@pytest.mark.parametrize("bad", [-1, 2**32, 2**64])
def test_rejects_a_crc_outside_32_bits(bad: int) -> None:
    with pytest.raises(ValueError, match=r"crc must be a CRC32C value in \[0, 2\*\*32\)"):
        crc32c(b"abc", bad)


def test_rejects_a_crc_that_is_not_an_int() -> None:
    with pytest.raises(TypeError):
        crc32c(b"abc", "0")  # type: ignore[arg-type]


def test_threads_checksum_concurrently() -> None:
    # Inputs above the GIL-release threshold, so the threads really overlap in C.
    pieces = [memoryview(LARGE)[i * 1_000_003:(i + 1) * 1_000_003] for i in range(4)]
    expected = [reference(p) for p in pieces]
    results: list[list[int]] = [[] for _ in pieces]

    def work(i: int) -> None:
        for _ in range(20):
            results[i].append(crc32c(pieces[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pieces))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [[e] * 20 for e in expected]


def _run_this_module_with(env_value: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KENGINE_CRC32C=env_value)
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(Path(__file__).relative_to(ROOT)),
         "-p", "no:cacheprovider", "-q", "-k", "not subprocess"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_software_path_passes_the_same_checks_in_a_subprocess() -> None:
    result = _run_this_module_with("software")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Every other test of this module ran and passed there, including
    # test_implementation_matches_cpu_and_environment, which asserts "software".
    summary = re.search(r"^(\d+) passed, 1 deselected in ", result.stdout, re.MULTILINE)
    assert summary is not None, output
    assert int(summary.group(1)) >= 10, output


def test_unknown_environment_value_fails_the_import() -> None:
    env = dict(os.environ, KENGINE_CRC32C="hardware-please")
    result = subprocess.run([sys.executable, "-c", "import kengine_ext"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "ConfigError" in result.stderr
    assert "KENGINE_CRC32C='hardware-please'" in result.stderr
