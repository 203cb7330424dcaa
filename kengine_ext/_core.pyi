# Type stubs for kengine_ext._core. One section per part, in the order of _core.pyx.
from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar, final

from typing_extensions import Buffer, disjoint_base  # PEP 688 (collections.abc.Buffer on 3.12+)

from kengine_ext.errors import KafkaError
from kengine_ext.schemas import Message

__all__: list[str] = []  # each part appends its public names, as in _core.pyx

# --- primitives.pyx ---

__all__ += ["monotonic_ms", "wall_clock_ms"]

def monotonic_ms() -> int:
    """The monotonic clock (ms) used for linger, backoff and timeouts."""

def wall_clock_ms() -> int:
    """Epoch milliseconds, as used for record timestamps."""


# --- hashing.pyx ---

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

__all__ += ["WriteBuffer", "ReadBuffer"]


_WireKind = Literal[
    "int8", "bool", "int16", "uint16", "int32", "uint32", "int64", "float64", "uvarint",
    "uvarlong", "varint", "varlong", "uuid", "string", "compact_string", "nullable_string",
    "compact_nullable_string", "bytes", "compact_bytes", "nullable_bytes",
    "compact_nullable_bytes", "raw", "tagged_fields",
]

@final
class WriteBuffer:
    """Growable buffer of Kafka wire primitives; exports its bytes (buffer protocol)."""
    def __init__(self, zero_copy_min_bytes: int = 0) -> None: ...
    def write(self, kind: _WireKind, value: object = None) -> None: ...
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

@final
class ReadBuffer:
    """Bounds-checked reader over a buffer object; bad input raises ProtocolError."""
    def __new__(cls, data: Buffer) -> ReadBuffer: ...
    def read(self, kind: _WireKind) -> Any: ...
    def read_view(self, n: int) -> memoryview: ...
    @property
    def position(self) -> int: ...
    @property
    def remaining(self) -> int: ...

# --- protocol.pyx ---

__all__ += ["write_request", "encode_request", "decode_response", "decode_request",
            "encode_response", "encode_message", "decode_message", "supported_versions",
            "pick_version", "peek_correlation_id"]


_Body = dict[str, Any]
"""A struct as a dict keyed by snake_case field names; missing keys take the schema default,
unknown keys are an error. Arrays are lists (or tuples), uuids 16 bytes (uuid.UUID accepted
when encoding), records None, a bytes-like object or a list/tuple of them (decoded: a
memoryview into the frame), bytes fields bytes."""

def write_request(buf: WriteBuffer, api_key: int, api_version: int, correlation_id: int,
                  client_id: str | None, body: _Body) -> None: ...
def encode_request(api_key: int, api_version: int, correlation_id: int, client_id: str | None,
                   body: _Body) -> bytes: ...
def decode_response(api_key: int, api_version: int,
                    frame: Buffer) -> tuple[int, dict[str, Any]]: ...
def decode_request(frame: Buffer) -> tuple[dict[str, Any], dict[str, Any]]: ...
def encode_response(api_key: int, api_version: int, correlation_id: int, body: _Body) -> bytes: ...
def encode_message(message: str | Message, version: int, value: _Body) -> bytes: ...
def decode_message(message: str | Message, version: int, data: Buffer) -> dict[str, Any]: ...
def supported_versions(api_key: int) -> tuple[int, int]: ...
def pick_version(api_key: int, broker_min: int, broker_max: int) -> int | None: ...
def peek_correlation_id(frame: Buffer) -> int: ...

# --- compression.pyx ---


_CodecName = Literal["none", "gzip", "snappy", "lz4", "zstd"]
_Codec = _CodecName | int

__all__ += ["compress", "decompress", "COMPRESSION_CODECS", "default_compression_level",
            "validate_compression_level"]

COMPRESSION_CODECS: dict[str, int]
"""Kafka's codec names and the ids stored in bits 0-2 of a batch's attributes."""

def codec_id(codec: _Codec) -> int: ...
def default_compression_level(codec: _Codec) -> int | None:
    """Java's default level (gzip 6, lz4 9 = the fast compressor, zstd 3); None for
    none/snappy."""
def validate_compression_level(codec: _Codec, level: int | None) -> int | None:
    """The level to use; ValueError naming the allowed range when it is outside it."""
def compress(codec: _Codec, data: Buffer, level: int | None = None) -> bytes:
    """What kengine writes for a batch's records: gzip, lz4 frame (independent blocks, no
    content size), zstd, snappy in xerial framing."""
def decompress(codec: _Codec, data: Buffer) -> bytes:
    """Inverse of compress(); raw snappy is accepted as well as xerial framing."""

# --- records.pyx ---

_HeaderValue = Buffer | str | None
_Headers = Sequence[tuple[str, _HeaderValue]] | Mapping[str, _HeaderValue]
_KeyOrValue = Buffer | str | None

__all__ += ["RecordBatchBuilder", "DecodedBatch", "DecodedRecord", "decode_batches",
            "encode_batch", "encode_batch_flat", "record_size_upper_bound", "BufferPool"]

@final
class BufferPool:
    """Recycles batch.size buffers (up to max_pooled of them)."""
    buffer_bytes: int
    def __new__(cls, buffer_bytes: int, max_pooled: int) -> BufferPool: ...
    @property
    def pooled(self) -> int: ...

@final
class RecordBatchBuilder:
    """One RecordBatch v2, appended to record by record (or in bulk) then built once."""
    def __new__(cls, batch_size: int = 16384, *, max_bytes: int = 1048576,
                 compression: _Codec = "none", compression_level: int | None = None,
                 ratio_estimate: float = 1.0, producer_id: int = -1, producer_epoch: int = -1,
                 base_sequence: int = -1, transactional: bool = False,
                 initial_capacity: int = -1,
                 pool: BufferPool | None = None) -> RecordBatchBuilder: ...
    def append(self, key: _KeyOrValue, value: _KeyOrValue, headers: _Headers | None = None,
               timestamp_ms: int | None = None) -> int:
        """The record's offset delta, or -1 when the batch has no room for it."""
    def append_many(self, values: Sequence[_KeyOrValue], keys: Sequence[_KeyOrValue] | None = None,
                    headers: Sequence[_Headers | None] | None = None,
                    timestamps: Sequence[int | None] | None = None, start: int = 0) -> int:
        """Appends values[start:] ... until full; returns how many were appended."""
    def set_producer_state(self, producer_id: int, producer_epoch: int, base_sequence: int,
                           transactional: bool | None = None) -> None: ...
    def build(self) -> memoryview:
        """Compresses (unless it does not pay), writes header and CRC; the final bytes."""
    def __buffer__(self, flags: int, /) -> memoryview: ...
    @property
    def record_count(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def estimated_size_bytes(self) -> int: ...
    @property
    def uncompressed_size_bytes(self) -> int: ...
    @property
    def compression_ratio(self) -> float: ...
    @property
    def compression(self) -> _CodecName: ...
    @property
    def is_built(self) -> bool: ...
    @property
    def base_timestamp(self) -> int: ...
    @property
    def max_timestamp(self) -> int: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...
    @property
    def transactional(self) -> bool: ...

@disjoint_base
class DecodedRecord:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

@disjoint_base
class DecodedBatch:
    base_offset: int
    partition_leader_epoch: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    crc: int
    records: list[DecodedRecord]
    @property
    def compression(self) -> str: ...
    @property
    def timestamp_type(self) -> int: ...
    @property
    def is_transactional(self) -> bool: ...
    @property
    def is_control(self) -> bool: ...
    def __len__(self) -> int: ...

def decode_batches(data: Buffer, *, verify_crc: bool = True,
                   allow_partial_tail: bool = False) -> list[DecodedBatch]:
    """Decodes concatenated batches; CorruptRecordError says what is wrong and where."""
def encode_batch(values: Sequence[_KeyOrValue], keys: Sequence[_KeyOrValue] | None = None,
                 headers: Sequence[_Headers | None] | None = None,
                 timestamps: Sequence[int | None] | None = None, *, compression: _Codec = "none",
                 compression_level: int | None = None, producer_id: int = -1,
                 producer_epoch: int = -1, base_sequence: int = -1,
                 transactional: bool = False) -> memoryview: ...
def encode_batch_flat(values: Buffer, value_offsets: Buffer, keys: Buffer | None = None,
                      key_offsets: Buffer | None = None, *, values_valid: Buffer | None = None,
                      keys_valid: Buffer | None = None, timestamps: Buffer | None = None,
                      compression: _Codec = "none", compression_level: int | None = None,
                      producer_id: int = -1, producer_epoch: int = -1, base_sequence: int = -1,
                      transactional: bool = False) -> memoryview:
    """One batch from Arrow-style columns (data + n+1 int32/int64 offsets, optional validity
    bitmaps and int64 timestamps), with no Python object per record."""
def record_size_upper_bound(key_len: int, value_len: int, headers_len: int = 0) -> int: ...

# --- memory.pyx ---

__all__ += ["BufferMemory"]

@final
class BufferMemory:
    """buffer.memory and what is in use; shared by the send path and the accumulator."""
    total_bytes: int
    max_block_ms: int
    owner_pid: int
    """The process that created it (a fork() child's sends raise ProducerForkedError)."""
    wait_ns: int
    """Nanoseconds sends have spent blocked for buffer.memory (bufferpool-wait metrics)."""
    exhausted_total: int
    """Sends that gave up waiting for buffer.memory after max.block.ms (buffer-exhausted-*)."""
    def __new__(cls, total_bytes: int, *, max_block_ms: int) -> BufferMemory: ...
    @property
    def used_bytes(self) -> int: ...
    @property
    def waiters(self) -> int: ...
    def wait_elsewhere(self, listener: Callable[[], object]) -> None:
        """Sends raise BufferFullError instead of blocking for buffer.memory; listener() runs
        on the releasing thread once per arm_listener() (kengine.aio)."""
    def arm_listener(self, need: int) -> bool: ...
    def note_exhausted(self) -> None:
        """Counts a send that waited elsewhere and gave up after max.block.ms."""

# --- batch.pyx ---

__all__ += ["ProducerBatch"]

@final
class ProducerBatch:
    topic: str
    partition: int
    queue: PartitionQueue
    created_ms: int
    attempts: int
    record_count: int
    done: bool
    base_offset: int
    log_append_time_ms: int
    error: KafkaError | None
    record_errors: dict[int, KafkaError] | None
    in_flight: bool
    split_into: list[ProducerBatch] | None
    """The batches that took over its records when the broker refused it as too large."""
    owner_pid: int
    """The process of its producer: waiting for it elsewhere raises ProducerForkedError."""
    def wait(self, timeout: float | None = None, call: str = ...) -> bool: ...
    def add_done_listener(self, fn: Callable[[ProducerBatch], object]) -> bool:
        """Calls fn(batch) once, on the sender thread, when the batch completes or is split;
        False, without calling it, when that has happened already."""
    @property
    def builder_or_none(self) -> RecordBatchBuilder | None: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def base_sequence(self) -> int: ...

# --- futures.pyx ---

__all__ += ["RecordMetadata", "DeliveryFuture", "BulkFuture", "BulkResult"]

_DeliveryCallback = Callable[[KafkaError | None, "RecordMetadata | None"], object]

@disjoint_base
class RecordMetadata:
    topic: str
    partition: int
    offset: int
    timestamp: int
    timestamp_type: int
    serialized_key_size: int
    serialized_value_size: int

@disjoint_base
class DeliveryFuture:
    def done(self) -> bool: ...
    def result(self, timeout: float | None = None) -> RecordMetadata: ...
    def exception(self, timeout: float | None = None) -> KafkaError | None: ...
    def add_callback(self, fn: _DeliveryCallback) -> None: ...
    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        """``await fut``: the RecordMetadata or the record's error, without blocking the loop;
        a cancelled await leaves the record sent."""
    def _pending_batch(self) -> ProducerBatch | None: ...
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...

@disjoint_base
class BulkResult:
    topic: str
    record_count: int
    errors: dict[int, KafkaError]
    @property
    def ok(self) -> bool: ...
    @property
    def failed_count(self) -> int: ...
    def metadata(self) -> list[RecordMetadata | None]: ...

@disjoint_base
class BulkFuture:
    topic: str
    record_count: int
    def done(self) -> bool: ...
    def result(self, timeout: float | None = None) -> BulkResult: ...
    def exception(self, timeout: float | None = None) -> KafkaError | None: ...
    def __await__(self) -> Generator[Any, None, BulkResult]:
        """``await bulk``: the BulkResult, without blocking the event loop."""
    def add_done_callback(self, fn: Callable[[BulkResult], object]) -> None:
        """fn(BulkResult) once every record has its outcome (on the sender thread, or now)."""
    def refused(self) -> dict[int, KafkaError]:
        """{input index: error} for the records the call itself refused."""

# --- accumulator.pyx ---

__all__ += ["RecordAccumulator", "PartitionQueue", "TopicState"]

@final
class PartitionQueue:
    topic: str
    partition: int
    leader_id: int
    leader_epoch: int
    batch_count: int
    queued_bytes: int
    muted: bool
    @property
    def sequences(self) -> PartitionSequences: ...
    txn_state: int
    def __new__(cls, topic: str, partition: int) -> PartitionQueue: ...
    def batches(self) -> list[ProducerBatch]: ...

@final
class TopicState:
    name: str
    queues: list[PartitionQueue]
    num_partitions: int
    compression_ratio: float
    refused_bytes: int
    def __new__(cls, name: str) -> TopicState: ...

@final
class RecordAccumulator:
    """The batches waiting to be sent, by partition, and the sender's handle on them."""
    memory: BufferMemory
    partitioning: Partitioning
    batch_size_bytes: int
    max_request_size_bytes: int
    transactional: bool
    owner_pid: int
    @property
    def sequences(self) -> Sequences | None: ...
    def __new__(cls, memory: BufferMemory, partitioning: Partitioning, *, linger_ms: int,
                batch_size: int, max_request_size: int, compression: _Codec,
                compression_level: int | None, idempotent: bool, transactional: bool,
                wakeup: Callable[[], object], client_id: str = "") -> RecordAccumulator: ...
    def update_topic(self, topic: str, partitions: list[tuple[int, int]]) -> TopicState: ...
    def topic_state(self, topic: str) -> TopicState | None: ...
    def queues(self) -> list[PartitionQueue]: ...
    def ready(self, now: int) -> tuple[set[int], int, Iterable[str]]: ...
    def drain(self, nodes: Iterable[int], max_request_size: int, now: int
              ) -> dict[int, list[ProducerBatch]]: ...
    def seal(self, b: ProducerBatch) -> memoryview: ...
    def complete(self, b: ProducerBatch, base_offset: int = -1, log_append_time_ms: int = -1,
                 error: KafkaError | None = None,
                 record_errors: Mapping[int, KafkaError] | None = None) -> None: ...
    def reenqueue(self, b: ProducerBatch, retry_at_ms: int,
                  follow_earlier: bool = False) -> None: ...
    def split_batch(self, b: ProducerBatch) -> list[ProducerBatch]: ...
    def expire(self, now: int, delivery_timeout_ms: int) -> list[ProducerBatch]: ...
    def oldest_queued_ms(self) -> int: ...
    def take_all_queued(self) -> list[ProducerBatch]: ...
    def take_unsent_queued(self) -> list[ProducerBatch]: ...
    def incomplete_batches(self) -> list[ProducerBatch]: ...
    def begin_flush(self) -> None: ...
    def end_flush(self) -> None: ...
    def prepare_sleep(self, timeout_ms: int, now: int, blocked: Iterable[int] = ()) -> int: ...
    def end_sleep(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def close(self) -> None: ...
    def fail(self, error: KafkaError) -> None:
        """A fatal error (failed authentication): every later send raises a copy of it."""
    @property
    def fatal_error(self) -> KafkaError | None: ...
    def set_draining_all(self, value: bool) -> None: ...
    def set_muted(self, q: PartitionQueue, value: bool) -> None: ...
    @property
    def queued_batch_count(self) -> int: ...
    def set_in_transaction(self, value: bool) -> None: ...
    @property
    def in_transaction(self) -> bool: ...
    def set_implicit_txn_partitions(self, value: bool) -> None: ...
    def take_new_txn_partitions(self) -> list[PartitionQueue]: ...
    def txn_partitions_added(self, queues: Iterable[PartitionQueue]) -> None: ...
    def reset_txn_partitions(self) -> None: ...
    @property
    def producer_id(self) -> int: ...
    @property
    def producer_epoch(self) -> int: ...

# --- sequences.pyx ---

__all__ += ["Sequences", "PartitionSequences", "SEQUENCE_ERROR_CODES"]

@disjoint_base
class PartitionSequences:
    """One partition's sequence state (sequences.pyx is its only writer)."""
    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    next_sequence: int
    last_acked_sequence: int
    last_acked_offset: int
    unfinished: int
    reassign_pending: int
    unresolved_next: int
    def __new__(cls, topic: str, partition: int) -> PartitionSequences: ...
    def batches(self) -> list[ProducerBatch]: ...
    def _continue_from(self, producer_id: int, producer_epoch: int,
                       next_sequence: int) -> None: ...

@disjoint_base
class Sequences:
    """The idempotent producer's id/epoch and sequence rules (sender thread only)."""
    producer_id: int
    producer_epoch: int
    transactional: bool
    epoch_bump_requested: bool
    def __new__(cls, *, transactional: bool = False, client_id: str = "") -> Sequences: ...
    def set_identity(self, producer_id: int, producer_epoch: int) -> None: ...
    def duplicate_is_written(self, b: ProducerBatch) -> bool: ...
    def refusal_proves_unwritten(self, b: ProducerBatch, error: KafkaError) -> bool: ...
    def on_success(self, b: ProducerBatch, base_offset: int) -> KafkaError | None: ...
    def can_retry(self, b: ProducerBatch, error: KafkaError, log_start_offset: int) -> bool: ...
    def on_failed(self, b: ProducerBatch, error: KafkaError,
                  adjust_sequences: bool) -> KafkaError | None: ...
    def on_expired(self, b: ProducerBatch) -> KafkaError | None: ...
    def on_abandoned(self, b: ProducerBatch) -> None: ...
    def on_split(self, big: ProducerBatch, pieces: list[ProducerBatch]) -> None: ...

SEQUENCE_ERROR_CODES: dict[str, int]

# --- partitioner.pyx ---
__all__ += ["BUILTIN_PARTITIONERS", "Partitioning"]

#: Partitioner names the core runs without a Python call per record (kengine.partitioners
#: resolves the others).
BUILTIN_PARTITIONERS: tuple[str, ...]

@final
class Partitioning:
    """The producer's partitioner (a built-in's name, None for default, or an object with
    partition()) and its settings."""
    name: str
    plugin: object
    def __init__(self, partitioner: object = None, *, ignore_keys: bool = False,
                 adaptive_partitioning: bool = True, availability_timeout_ms: int = 0,
                 batch_size: int = 16384) -> None: ...
    @property
    def partitioner(self) -> object:
        """The configured partitioner: a built-in's name (str) or the Python partitioner."""

# --- send_path.pyx ---
__all__ += ["SendPath", "SendMethods", "TraceStamp", "arrow_rows"]

def arrow_rows(data: object, value: str, key: str | None = None,
               headers: Sequence[str] | Mapping[str, str] | None = None,
               timestamp: str | None = None, partition: str | None = None
               ) -> tuple[list[bytes | None], list[bytes | None] | None,
                          list[list[tuple[str, bytes | None]]] | None, list[int] | None,
                          list[int | None] | None, dict[int, KafkaError]]:
    """The rows of Arrow data as Python objects with send_arrow()'s rules (values, keys,
    headers, timestamps, partitions, {row: refusal}), for a producer with interceptors."""

@final
class SendPath:
    """send() and send_many(): serialize, partition and append to the accumulator. The
    up-calls are plain callables (see send_path.pxd for their thread and lock)."""
    accumulator: RecordAccumulator
    _trace: TraceStamp | None
    def __new__(cls, accumulator: RecordAccumulator, *, key_serializer: object = "bytes",
                value_serializer: object = "bytes",
                await_metadata: Callable[..., TopicState],
                transaction_refusal: Callable[[], KafkaError | None] | None = None,
                records_refused: Callable[[str, int, int, KafkaError], object] | None = None,
                ) -> SendPath: ...
    def send(self, topic: str, value: object = None, key: object = None,
             headers: _Headers | None = None, partition: int | None = None,
             timestamp_ms: int | None = None,
             on_delivery: _DeliveryCallback | None = None) -> DeliveryFuture: ...
    def send_many(self, topic: str, values: Sequence[object], keys: Sequence[object] | None = None,
                  headers: Sequence[_Headers | None] | None = None,
                  timestamps: Sequence[int | None] | None = None,
                  partition: int | None = None) -> BulkFuture: ...
    def send_arrow(self, topic: str, data: object, value: str | None, key: str | None = None,
                   headers: Sequence[str] | Mapping[str, str] | None = None,
                   timestamp: str | None = None, partition: int | str | None = None,
                   rows: Sequence[int] | None = None) -> BulkFuture: ...
    def headers_may_be_encoded(self) -> bool:
        """Whether send_many() may be given headers in wire form (no Python code of the send
        path reads them)."""
    def send_untraced(self, topic: str, value: object = None, key: object = None,
                      headers: _Headers | None = None, partition: int | None = None,
                      timestamp_ms: int | None = None,
                      on_delivery: _DeliveryCallback | None = None) -> DeliveryFuture:
        """send() without the sampling decision in C: the Python path of a record the
        OpenTelemetry SDK traces."""
    def trace_with(self, stamp: TraceStamp,
                   send_sampled: Callable[..., DeliveryFuture]) -> None:
        """Makes send() decide OpenTelemetry's sampling in C; once, at construction."""


@final
class TraceStamp:
    """OpenTelemetry's sampling decision for send(), made in C (built and checked by
    kengine.otel.fast_sampling); an unsampled record's traceparent is written in C."""
    root_trace_hi: int
    root_trace_lo: int
    def __new__(cls, context_var: object, span_key: str, span_type: type, root_mode: int,
                parent_based: bool, rate_bound: int | None, random_flag: int) -> TraceStamp: ...
    def decide_many(self, headers: Sequence[_Headers | None] | None, count: int,
                    encoded: bool) -> tuple[list[Any], list[tuple[int, int | None]]]:
        """send_many()'s decisions: each record's headers (an unsampled one's with its
        traceparent, as EncodedHeaders when ``encoded``) and the (index, new trace id or
        None) of the records to trace."""
    def decide_for_test(self) -> tuple[int, bytes | None]:
        """(0 unsampled, 1 sampled, 2 left to the SDK; the traceparent value when 0)."""


@disjoint_base
class SendMethods:
    """send() and send_many() of the public kengine.Producer (its one base class), forwarding
    in C to the send path it composes."""
    _send_path: SendPath | None
    def send(self, topic: str, value: object = None, key: object = None,
             headers: _Headers | None = None, partition: int | None = None,
             timestamp_ms: int | None = None,
             on_delivery: _DeliveryCallback | None = None) -> DeliveryFuture:
        """Appends one record to its partition's batch and returns a DeliveryFuture as soon
        as it is in the batch. Blocks (up to max.block.ms) only when buffer.memory is
        exhausted or the topic's metadata is not known yet."""
    def send_many(self, topic: str, values: Sequence[object],
                  keys: Sequence[object] | None = None,
                  headers: Sequence[_Headers | None] | None = None,
                  timestamps: Sequence[int | None] | None = None,
                  partition: int | None = None) -> BulkFuture:
        """Appends many records in one call and returns one BulkFuture; a record that cannot
        be sent fails alone, under its index in the BulkResult's errors."""

    def send_arrow(self, topic: str, data: object, value: str, key: str | None = None,
                   headers: Sequence[str] | Mapping[str, str] | None = None,
                   timestamp: str | None = None,
                   partition: int | str | None = None) -> BulkFuture:
        """Sends every row of tabular Arrow data (anything exporting the Arrow C stream or C
        data interface) as one record, with no Python object per row; returns one BulkFuture
        indexed by row. value/key/headers/timestamp/partition name columns (partition may be
        one int for every row)."""

# --- aio_send.pyx ---
__all__ += ["ReadySend", "AsyncSendMethods"]

_T = TypeVar("_T")

@final
class ReadySend(Generic[_T]):
    """A coroutine that has already finished: what AIOProducer.send() returns when the record
    went into a batch at once (and ``DeliveryFuture.__await__`` when the record has its
    outcome). ``await`` gives the value or raises the error without suspending; asyncio takes
    it wherever it takes a coroutine."""
    def __await__(self) -> ReadySend[_T]: ...
    def __iter__(self) -> ReadySend[_T]: ...
    def __next__(self) -> Any: ...
    def send(self, arg: object) -> Any: ...
    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any: ...
    def close(self) -> None: ...

@disjoint_base
class AsyncSendMethods:
    """send() of kengine.AIOProducer (its base class): appends at once, in C, when the record
    need not wait, else returns the coroutine that waits."""
    _send_path: SendPath | None
    _gate: Any
    _prepared: set[str] | None
    _retry_errors: tuple[type[BaseException], ...] | None
    _trace: TraceStamp | None
    _send_sampled: Callable[..., Coroutine[Any, Any, DeliveryFuture]] | None
    def send(self, topic: str, value: object = None, key: object = None,
             headers: _Headers | None = None, partition: int | None = None,
             timestamp_ms: int | None = None,
             on_delivery: _DeliveryCallback | None = None
             ) -> Coroutine[Any, Any, DeliveryFuture]:
        """Appends one record and returns an awaitable of its DeliveryFuture: finished at once
        when the record went into a batch, else a coroutine that waits on the loop (for
        buffer.memory or the topic's metadata) and appends when awaited."""
    def send_untraced(self, topic: str, value: object = None, key: object = None,
                      headers: _Headers | None = None, partition: int | None = None,
                      timestamp_ms: int | None = None,
                      on_delivery: _DeliveryCallback | None = None
                      ) -> Coroutine[Any, Any, DeliveryFuture]:
        """send() without the sampling decision in C (a record the SDK traces)."""

# --- arrow_input.pyx ---
__all__ += ["ArrowInput", "arrow_input"]

@final
class ArrowInput:
    """Arrow data read once, with the columns a send_arrow() call reads found and checked."""
    chunks: list[object]
    row_count: int
    column_names: list[str]
    header_keys: list[str]
    timestamp_column: str | None
    partition_column: str | None

def arrow_input(data: object, value: str, key: str | None = None,
                headers: Sequence[str] | Mapping[str, str] | None = None,
                timestamp: str | None = None,
                partition: int | str | None = None) -> ArrowInput:
    """Arrow data read once (a stream to its end), its columns bound: send_arrow() takes it in
    place of the data."""

# --- avro.pyx ---
__all__ += ["AvroNode", "AvroWriter", "AvroValueError", "compile_avro"]

class AvroValueError(ValueError):
    """A value that does not fit its Avro schema: ``path`` of the field, ``reason``."""
    path: list[str]
    reason: str
    def __init__(self, reason: str) -> None: ...

@disjoint_base
class AvroNode:
    """One node of a compiled Avro schema."""
    @property
    def kind(self) -> int: ...
    @property
    def name(self) -> str: ...

@disjoint_base
class AvroWriter:
    """Encodes records with one compiled schema."""
    def __init__(self, root: AvroNode) -> None: ...
    @property
    def root(self) -> AvroNode: ...
    def write(self, prefix: bytes, datum: object) -> bytes:
        """``prefix`` followed by the Avro binary encoding of ``datum``."""

def compile_avro(parsed_schema: object, named_schemas: Mapping[str, object]) -> AvroNode | None:
    """The encoder tree of a fastavro-parsed schema, or None when fastavro must encode it."""

