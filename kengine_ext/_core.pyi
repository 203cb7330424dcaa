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

from typing import Any, Literal

from typing_extensions import Buffer  # PEP 688 (collections.abc.Buffer on 3.12+)

WireKind = Literal[
    "int8", "bool", "int16", "uint16", "int32", "uint32", "int64", "float64", "uvarint",
    "uvarlong", "varint", "varlong", "uuid", "string", "compact_string", "nullable_string",
    "compact_nullable_string", "bytes", "compact_bytes", "nullable_bytes",
    "compact_nullable_bytes", "raw", "tagged_fields",
]

class WriteBuffer:
    """Growable buffer of Kafka wire primitives; exports its bytes (buffer protocol)."""
    def __init__(self, zero_copy_min_bytes: int = 0) -> None: ...
    def write(self, kind: WireKind, value: object = None) -> None: ...
    def patch(self, kind: Literal["int32", "uint32"], offset: int, value: int) -> None: ...
    def reserve(self, n: int) -> int: ...
    def start_message(self) -> int: ...
    def end_message(self) -> int: ...
    @property
    def position(self) -> int: ...
    def __len__(self) -> int: ...
    def clear(self) -> None: ...
    def to_bytes(self) -> bytes: ...
    def segments(self) -> list[memoryview | bytes]: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class ReadBuffer:
    """Bounds-checked reader over a buffer object; bad input raises ProtocolError."""
    def __init__(self, data: Buffer) -> None: ...
    def read(self, kind: WireKind) -> Any: ...
    def read_view(self, n: int) -> memoryview: ...
    @property
    def position(self) -> int: ...
    @property
    def remaining(self) -> int: ...

# --- protocol.pyx ---

from kengine_ext.schemas import Message

Body = dict[str, Any]
"""A struct as a dict keyed by snake_case field names; missing keys take the schema default,
unknown keys are an error. Arrays are lists (or tuples), uuids 16 bytes (uuid.UUID accepted
when encoding), records None, a bytes-like object or a list/tuple of them (decoded: a
memoryview into the frame), bytes fields bytes."""

def write_request(buf: WriteBuffer, api_key: int, api_version: int, correlation_id: int,
                  client_id: str | None, body: Body) -> None: ...
def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   body: Body) -> bytes: ...
def decode_response(api_key: int, api_version: int, frame: Buffer) -> tuple[int, dict[str, Any]]: ...
def decode_request(frame: Buffer) -> tuple[dict[str, Any], dict[str, Any]]: ...
def encode_response(api_key: int, api_version: int, correlation_id: int, body: Body) -> bytes: ...
def encode_message(message: str | Message, version: int, value: Body) -> bytes: ...
def decode_message(message: str | Message, version: int, data: Buffer) -> dict[str, Any]: ...
def supported_versions(api_key: int) -> tuple[int, int]: ...
def pick_version(api_key: int, broker_min: int, broker_max: int) -> int | None: ...
def peek_correlation_id(frame: Buffer) -> int: ...
def register_api(request: Message, response: Message) -> None:
    """Adds an API missing from the generated schema table (see protocol.pyx)."""

# --- compression.pyx ---

# --- records.pyx ---
