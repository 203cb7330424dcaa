"""Writing one Dask partition to Kafka: the code that runs inside each ``to_kafka()`` task.

Exactly-once (``WriteSpec.exactly_once``), per partition ``i`` of job ``J``:

1. A producer with ``transactional.id = <prefix><J>-<i>``: the same id on every attempt of the
   partition, so ``init_transactions()`` fences every earlier attempt (a zombie's sends and
   commit fail with ``ProducerFencedError``) and completes or aborts the transaction it left.
2. The partition's done-marker is read: the committed offset of the consumer group
   ``<prefix><J>-<i>`` on ``(topic, 0)``, by OffsetFetch with ``require_stable``. An earlier
   attempt that committed wrote it in its transaction; then nothing is sent again. This closes
   the hole fencing leaves: attempt 1 commits, its worker dies before Dask hears the task
   finished, and Dask runs the task again.
3. Otherwise one transaction: every row (in order, ``chunk_rows`` per send call), then the
   marker (``send_offsets_to_transaction({(topic, 0): rows}, group)``: the offset is the row
   count), then the commit. Rows and marker become visible together or not at all.

An abortable error (a refused batch, a timeout) aborts the transaction and sends the partition
again, up to ``transaction_attempts`` times; a row that cannot be sent at all (too large, a
value of the wrong type) aborts it for good, and the outcome names the row. Fatal errors
(fenced, authorization) raise: Dask's retry of the task starts again at step 1.

At-least-once: the process's shared idempotent producer; rows that failed are listed in the
outcome, the others are written (a retried task writes its partition again).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..eos import FATAL_ERRORS
from ..errors import IngestError, KafkaError, KafkaTimeoutError
from ..producer import Producer
from .outcome import MAX_ROW_ERRORS, PartitionOutcome, PartitionProgress, row_ranges
from .worker_producers import process_pool

__all__ = ["WriteSpec", "marker_group", "transactional_id", "write_partition"]

#: the partition of the target topic whose committed offset (in a partition's own consumer
#: group) is that partition's done-marker: every topic has a partition 0
MARKER_PARTITION = 0


@dataclass(frozen=True)
class WriteSpec:
    """Everything a task needs besides its partition; made once by ``to_kafka()``, pickled to
    the workers."""

    job_id: str
    topic: str
    producer_config: Mapping[str, Any]
    #: the pool key of producer_config (equal settings share a producer on a worker)
    config_key: str
    exactly_once: bool
    value: str | None
    key: str | None
    headers: Sequence[str] | Mapping[str, str] | None
    timestamp: str | None
    #: "frame" (pandas partitions, sent with send_arrow) or "bag" (items, send_many)
    kind: str
    chunk_rows: int
    transaction_attempts: int
    id_prefix: str
    on_progress: Callable[[PartitionProgress], None] | None


def transactional_id(spec: WriteSpec, partition: int) -> str:
    return f"{spec.id_prefix}{spec.job_id}-{partition}"


def marker_group(spec: WriteSpec, partition: int) -> str:
    """The consumer group whose committed offset marks the partition as written."""
    return transactional_id(spec, partition)


def write_partition(data: Any, partition: int, spec: WriteSpec) -> PartitionOutcome:
    """The task: writes ``data`` (a pandas DataFrame or a list of bag items) as partition
    ``partition`` of the job."""
    rows = _Rows.of(data, spec)
    try:
        if spec.exactly_once:
            return _write_exactly_once(rows, partition, spec)
        return _write_at_least_once(rows, partition, spec)
    except IngestError:
        raise
    except KafkaError as exc:
        # the task fails and Dask may run it again (its retries): the error says which partition
        raise IngestError(f"partition {partition} of job {spec.job_id} failed: "
                          f"{type(exc).__name__}: {exc}") from exc


class _Rows:
    """A partition's rows, sent a chunk at a time by the call that fits their kind."""

    def __init__(self, count: int, send: Callable[[Producer, int, int], Any]) -> None:
        self.count = count
        self._send = send

    def send(self, producer: Producer, start: int, stop: int) -> Any:
        return self._send(producer, start, stop)

    @classmethod
    def of(cls, data: Any, spec: WriteSpec) -> _Rows:
        if spec.kind == "frame":
            import pyarrow as pa

            table = data if isinstance(data, pa.Table) else \
                pa.Table.from_pandas(data, preserve_index=False)
            value = spec.value
            assert value is not None   # to_kafka() refuses a dataframe without value=

            def send_table(producer: Producer, start: int, stop: int) -> Any:
                return producer.send_arrow(spec.topic, table.slice(start, stop - start),
                                           value=value, key=spec.key,
                                           headers=spec.headers, timestamp=spec.timestamp)

            return cls(table.num_rows, send_table)
        items = data if isinstance(data, list) else list(data)
        values, keys, headers = _bag_columns(items, spec)

        def send_items(producer: Producer, start: int, stop: int) -> Any:
            return producer.send_many(spec.topic, values[start:stop],
                                      None if keys is None else keys[start:stop],
                                      None if headers is None else headers[start:stop])

        return cls(len(items), send_items)


def _bag_columns(items: list[Any], spec: WriteSpec
                 ) -> tuple[list[Any], list[Any] | None, list[Any] | None]:
    """A bag partition's items as send_many()'s lists: an item is a value (bytes, str,
    anything the value serializer takes), a ``(key, value)`` tuple, or a mapping whose
    ``spec.value`` / ``spec.key`` / ``spec.headers`` fields are taken."""
    values: list[Any] = []
    keys: list[Any] = []
    headers: list[Any] = []
    header_field = spec.headers if isinstance(spec.headers, str) else None
    for item in items:
        if isinstance(item, Mapping):
            values.append(item.get(spec.value or "value"))
            keys.append(item.get(spec.key) if spec.key else None)
            headers.append(item.get(header_field) if header_field else None)
        elif isinstance(item, tuple) and len(item) == 2:
            keys.append(item[0])
            values.append(item[1])
            headers.append(None)
        else:
            values.append(item)
            keys.append(None)
            headers.append(None)
    return (values, keys if any(k is not None for k in keys) else None,
            headers if any(h is not None for h in headers) else None)


def _progress(spec: WriteSpec, partition: int, stage: str, rows: int) -> None:
    if spec.on_progress is not None:
        spec.on_progress(PartitionProgress(spec.job_id, partition, stage, rows))


def _send_all(producer: Producer, rows: _Rows, partition: int, spec: WriteSpec
              ) -> list[tuple[int, Any]]:
    """Sends every row in order, a chunk per call; returns (first row, BulkFuture) pairs."""
    futures = []
    for start in range(0, rows.count, spec.chunk_rows):
        stop = min(rows.count, start + spec.chunk_rows)
        futures.append((start, rows.send(producer, start, stop)))
        _progress(spec, partition, "sent", stop)
    return futures


def _row_errors(errors: Iterable[tuple[int, KafkaError]]
                ) -> tuple[tuple[int, ...], tuple[str, ...]]:
    ordered = sorted(errors, key=lambda e: e[0])
    texts = tuple(f"row {row}: {type(err).__name__}: {err}"
                  for row, err in ordered[:MAX_ROW_ERRORS])
    return tuple(row for row, _ in ordered), texts


def _refused(futures: list[tuple[int, Any]]) -> list[tuple[int, KafkaError]]:
    """Rows the send calls refused (input errors: too large, wrong type, bad timestamp)."""
    return [(start + i, err) for start, f in futures for i, err in f.refused().items()]


def _write_exactly_once(rows: _Rows, partition: int, spec: WriteSpec) -> PartitionOutcome:
    started = time.perf_counter()
    txn_id = transactional_id(spec, partition)
    group = marker_group(spec, partition)
    config = dict(spec.producer_config)
    config["transactional.id"] = txn_id
    producer = Producer(config)
    try:
        try:
            producer.init_transactions()
            marker = process_pool().admin(spec.config_key, spec.producer_config).committed_offsets(
                group, [(spec.topic, MARKER_PARTITION)], require_stable=True)
        except KafkaError as exc:
            raise IngestError(f"partition {partition} of job {spec.job_id}: could not start its "
                              f"transaction ({type(exc).__name__}: {exc})") from exc
        done = marker[(spec.topic, MARKER_PARTITION)]
        setup_ms = (time.perf_counter() - started) * 1000
        if done is not None:
            _progress(spec, partition, "skipped", done.offset)
            mismatch = None
            if done.offset != rows.count:
                mismatch = (f"partition {partition} was committed by an earlier attempt with "
                            f"{done.offset} rows, but this attempt computed {rows.count}: its "
                            f"content is not deterministic, and only the earlier rows are "
                            f"written")
            return PartitionOutcome(partition, rows.count, done.offset, error=mismatch,
                                    already_committed=True, setup_ms=setup_ms)
        retried = 0
        commit_timeouts = 0
        last: KafkaError | None = None
        while retried < spec.transaction_attempts:
            producer.begin_transaction()
            try:
                futures = _send_all(producer, rows, partition, spec)
                refused = _refused(futures)
                if refused:
                    producer.abort_transaction()
                    failed, texts = _row_errors(refused)
                    return PartitionOutcome(
                        partition, rows.count, 0, failed=((0, rows.count),) if rows.count else (),
                        row_errors=texts,
                        error=(f"partition {partition}: {len(failed)} rows could not be sent "
                               f"({texts[0]}), so its transaction was aborted and none of its "
                               f"{rows.count} rows were written"),
                        retried_transactions=retried, setup_ms=setup_ms,
                        write_ms=_ms_since(started) - setup_ms)
                producer.send_offsets_to_transaction(
                    {(spec.topic, MARKER_PARTITION): rows.count}, group)
                while True:
                    try:
                        producer.commit_transaction()
                        break
                    except KafkaTimeoutError:
                        # the commit may still finish: ask again rather than abort it
                        commit_timeouts += 1
                        if commit_timeouts >= spec.transaction_attempts:
                            raise
            except FATAL_ERRORS:
                raise
            except KafkaTimeoutError:
                raise
            except KafkaError as exc:
                last = exc
                retried += 1
                producer.abort_transaction()
                continue
            _progress(spec, partition, "committed", rows.count)
            return PartitionOutcome(partition, rows.count, rows.count,
                                    retried_transactions=retried, setup_ms=setup_ms,
                                    write_ms=_ms_since(started) - setup_ms)
        raise IngestError(f"partition {partition} of job {spec.job_id}: its transaction was "
                          f"aborted {retried} times; last error: {type(last).__name__}: {last}")
    finally:
        producer.close()


def _write_at_least_once(rows: _Rows, partition: int, spec: WriteSpec) -> PartitionOutcome:
    started = time.perf_counter()
    producer = process_pool().shared_producer(spec.config_key, spec.producer_config)
    setup_ms = _ms_since(started)
    futures = _send_all(producer, rows, partition, spec)
    errors: list[tuple[int, KafkaError]] = []
    for start, future in futures:
        # each row's outcome, after the producer's own retries (delivery.timeout.ms)
        errors.extend((start + i, err) for i, err in future.result().errors.items())
    failed, texts = _row_errors(errors)
    _progress(spec, partition, "committed", rows.count)
    return PartitionOutcome(
        partition, rows.count, rows.count - len(failed), failed=row_ranges(failed),
        row_errors=texts,
        error=(f"partition {partition}: {len(failed)} of {rows.count} rows were not written "
               f"({texts[0]})") if failed else None,
        setup_ms=setup_ms, write_ms=_ms_since(started) - setup_ms)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
