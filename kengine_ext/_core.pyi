# Type stubs for kengine_ext._core. One section per part, in the order of _core.pyx.
from __future__ import annotations

__all__: list[str] = []  # each part appends its public names, as in _core.pyx

# --- hashing.pyx ---
from typing import Literal

from typing_extensions import Buffer

__all__ += ["crc32c", "crc32c_implementation", "murmur2", "partition_for_key"]

def crc32c(data: Buffer, crc: int = 0) -> int:
    """CRC32C (Castagnoli) of a contiguous bytes-like object; ``crc`` continues a previous
    result (``crc32c(b, crc32c(a)) == crc32c(a + b)``). The GIL is released from 32 KiB on.
    Raises ValueError if ``crc`` is outside ``[0, 2**32)``, BufferError if ``data`` is not
    contiguous."""

def crc32c_implementation() -> Literal["sse4.2", "armv8-crc", "software"]:
    """The CRC32C implementation in use (``KENGINE_CRC32C=software`` at import forces
    ``"software"``)."""

def _crc32c_software(data: Buffer, crc: int = 0) -> int:
    """crc32c() on the portable slicing-by-8 path whatever the CPU (tests and benchmarks)."""

def murmur2(key: Buffer | str) -> int:
    """Kafka's murmur2 of a serialized key (a ``str`` is hashed as UTF-8), as the signed 32-bit
    int Java's ``Utils.murmur2`` returns. Raises TypeError for ``None``."""

def partition_for_key(key: Buffer | str, num_partitions: int) -> int:
    """Kafka's default partition for a keyed record: ``(murmur2(key) & 0x7fffffff) %
    num_partitions``. Raises ValueError unless ``1 <= num_partitions < 2**31``."""


# --- buffer.pyx ---

# --- protocol.pyx ---

# --- compression.pyx ---

# --- records.pyx ---
