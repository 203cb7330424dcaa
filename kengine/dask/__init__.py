"""Writing a Dask dataframe or bag to Kafka from every worker, exactly once per row.

    import dask.dataframe as dd
    from distributed import Client
    from kengine.dask import to_kafka

    client = Client("scheduler:8786")
    df = dd.read_parquet("s3://bucket/events/")
    result = to_kafka(df, "events", value="payload", key="user_id",
                      producer_config={"bootstrap.servers": "kafka:9092"})
    print(result.written, "rows written")

Each Dask partition is one task, run on a worker like any other (Dask's dashboard and
``distributed.progress`` show it). A dataframe partition goes through Arrow to
``Producer.send_arrow()`` (no Python object per row), a bag partition through
``send_many()``; rows are sent in their order, so records with the same key keep their order
within a Dask partition.

**Exactly-once** (``exactly_once=True``, the default): each partition is written in one Kafka
transaction whose ``transactional.id`` is ``<id_prefix><job_id>-<partition index>``, the same on
every attempt of that partition, and the same transaction commits a done-marker for the
partition (see ``partition_writer``). A task that Dask runs again (its worker died, it raised,
it ran twice) fences the earlier attempt, finds the marker if that attempt committed, and
then sends nothing; otherwise it writes the whole partition again in a new transaction. A
``read_committed`` consumer sees every row once. Pass your own ``job_id`` and running the
same job again (after the driver itself died) skips the partitions already committed.

Why one producer per partition: a producer's ``transactional.id`` is fixed for its life, and
the id must follow the partition (not the worker) for a retry to fence the attempt it
replaces. So an exactly-once task makes a producer, uses it for one transaction and closes it:
a fixed cost per partition (``PartitionOutcome.setup_ms``; benchmarks/README.md has figures)
that large partitions amortise. At-least-once tasks share one producer per worker process,
made by the first task and closed when the worker closes (the ``KengineProducers`` worker
plugin), as is the admin client that reads the done-markers.

Limits: a partition's transaction must commit within ``transaction.timeout.ms`` (default
60 s; the brokers cap it at ``transaction.max.timeout.ms``, 15 min by default), so choose
partitions that a worker writes well within it. A partition's content must be the same on
every attempt (Dask recomputes it from its inputs). The done-markers are consumer group
offsets: they last ``offsets.retention.minutes`` (7 days by default) after the job.
"""
from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import config as _config
from ..errors import ConfigError, IngestError
from ..metadata import validate_topic_name
from .outcome import IngestResult, PartitionOutcome, PartitionProgress, row_ranges
from .partition_writer import WriteSpec, marker_group, transactional_id, write_partition
from .worker_producers import KengineProducers, process_pool

__all__ = ["IngestResult", "KengineProducers", "PartitionOutcome", "PartitionProgress",
           "marker_group", "row_ranges", "to_kafka", "transactional_id"]

#: rows per send_arrow()/send_many() call: bounds the Arrow slices and Python lists a task
#: builds at once and paces the "sent" progress events
DEFAULT_CHUNK_ROWS = 100_000


def to_kafka(data: Any, topic: str, *, producer_config: Mapping[str, Any],
             value: str | None = "value", key: str | None = None,
             headers: Sequence[str] | Mapping[str, str] | str | None = None,
             timestamp: str | None = None, exactly_once: bool = True,
             job_id: str | None = None, id_prefix: str = "kengine-dask-",
             chunk_rows: int = DEFAULT_CHUNK_ROWS, transaction_attempts: int = 3,
             retries: int = 3, on_progress: Callable[[PartitionProgress], None] | None = None,
             raise_on_failure: bool = True, compute: bool = True) -> Any:
    """Writes every row of ``data`` (a ``dask.dataframe.DataFrame`` or a ``dask.bag.Bag``) to
    ``topic`` and returns an ``IngestResult`` (or, with ``compute=False``, a ``Delayed`` that
    computes to it).

    Dataframes: ``value`` / ``key`` name columns (binary or string), ``headers`` a list of
    columns or ``{header: column}``, ``timestamp`` a timestamp column, as for
    ``Producer.send_arrow()``. Bags: an item is a value, a ``(key, value)`` tuple or a mapping
    whose ``value`` / ``key`` / ``headers`` fields are taken. ``producer_config``: the
    producer's settings (``bootstrap.servers``...); kengine sets ``transactional.id``.

    ``exactly_once``: see the module's documentation; False writes at least once with the
    idempotent producer. ``job_id`` (default: a new random one) names the transactions and
    done-markers; ``transaction_attempts``: times a partition's transaction is aborted and
    sent again after an abortable error before the task fails; ``retries``: times Dask runs a
    failed task again (distributed scheduler). ``on_progress(PartitionProgress)`` runs on the
    worker after each chunk and once the partition is committed.

    When partitions end with rows not written (rows refused as input, or at-least-once
    delivery failures), raises ``IngestError`` whose ``result`` lists them, unless
    ``raise_on_failure`` is False. A task that still fails after its retries raises its
    ``IngestError`` naming the partition."""
    kind = _kind(data)
    validate_topic_name(topic)
    settings = dict(producer_config)
    for name in ("transactional.id", "transactional_id"):
        if name in settings:
            raise ConfigError("transactional.id", settings[name],
                              "kengine.dask.to_kafka() sets it per Dask partition "
                              "(<id_prefix><job_id>-<partition>); leave it out of "
                              "producer_config and pass job_id / id_prefix instead")
    _config.resolve(settings)   # a bad setting fails here, not on every worker
    if kind == "frame":
        _check_columns(data, value=value, key=key, headers=headers, timestamp=timestamp)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    if transaction_attempts < 1:
        raise ValueError(f"transaction_attempts must be at least 1, not {transaction_attempts}")
    job = job_id if job_id is not None else uuid.uuid4().hex[:16]
    spec = WriteSpec(job_id=job, topic=topic, producer_config=settings,
                     config_key=_config_key(settings), exactly_once=exactly_once,
                     value=value, key=key, headers=headers, timestamp=timestamp, kind=kind,
                     chunk_rows=chunk_rows, transaction_attempts=transaction_attempts,
                     id_prefix=id_prefix, on_progress=on_progress)

    from dask.delayed import delayed

    tasks = [delayed(write_partition, pure=False)(part, i, spec,
                                                  dask_key_name=f"kengine-to-kafka-{job}-{i}")
             for i, part in enumerate(data.to_delayed())]
    gathered = delayed(_gather, pure=False)(tasks, job, topic, exactly_once,
                                            dask_key_name=f"kengine-to-kafka-{job}-result")
    client = _distributed_client()
    if client is not None:
        # the workers' producers close when the workers do
        client.register_plugin(KengineProducers(), name=KengineProducers.name)
    if not compute:
        return gathered
    if client is not None:
        result: IngestResult = client.compute(gathered, retries=retries).result()
    else:
        try:   # local schedulers: the tasks ran in this process, whose producers end here
            result = gathered.compute()
        finally:
            process_pool().close()
    if raise_on_failure and not result.ok:
        raise IngestError(f"to_kafka() of job {job} left {result.failed_rows} rows of "
                          f"{len(result.failures())} partitions of {topic!r} not written:\n"
                          f"{result.describe_failures()}", result)
    return result


def _gather(outcomes: list[PartitionOutcome], job: str, topic: str,
            exactly_once: bool) -> IngestResult:
    return IngestResult(job, topic, exactly_once,
                        tuple(sorted(outcomes, key=lambda o: o.partition)))


def _kind(data: Any) -> str:
    try:
        import dask.bag as db
        import dask.dataframe as dd
    except ImportError as exc:
        raise ImportError("kengine.dask needs Dask: pip install 'kengine-kafka[dask]'") from exc
    if isinstance(data, dd.DataFrame):
        return "frame"
    if isinstance(data, db.Bag):
        return "bag"
    raise TypeError(f"to_kafka() writes a dask.dataframe.DataFrame or a dask.bag.Bag, not "
                    f"{type(data).__module__}.{type(data).__name__}")


def _check_columns(df: Any, **named: Any) -> None:
    columns = set(df.columns)
    wanted: list[tuple[str, str]] = []
    for role, spec in named.items():
        if spec is None:
            continue
        if isinstance(spec, str):
            wanted.append((role, spec))
        elif isinstance(spec, Mapping):
            wanted.extend((role, c) for c in spec.values())
        else:
            wanted.extend((role, c) for c in spec)
    if named.get("value") is None:
        raise ValueError("to_kafka() of a dataframe needs value= (the column of the values)")
    missing = [(role, c) for role, c in wanted if c not in columns]
    if missing:
        raise ValueError("to_kafka(): the dataframe has no column " + ", ".join(
            f"{c!r} (given as {role}=)" for role, c in missing)
            + f"; its columns are {sorted(map(str, columns))}")


def _config_key(settings: Mapping[str, Any]) -> str:
    """Equal settings give equal keys, so the tasks of a worker (and later calls) share."""
    text = repr(sorted((str(k), repr(v)) for k, v in settings.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _distributed_client() -> Any:
    """The distributed client Dask would compute on, None when Dask runs locally (no
    client, or ``dask.config.set(scheduler="threads")`` and the like)."""
    import dask

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()  # type: ignore[no-untyped-call]
    except ValueError:   # no client: Dask's local schedulers run the tasks here
        return None
