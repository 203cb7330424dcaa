"""What ``to_kafka()`` returns: one ``PartitionOutcome`` per Dask partition, gathered into an
``IngestResult``, and the ``PartitionProgress`` events a worker reports while it writes.

Outcomes are made on the workers and travel back to the caller through Dask (pickled), so they
hold only plain values: error texts, not exception objects."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["IngestResult", "PartitionOutcome", "PartitionProgress", "row_ranges"]

#: per-row error texts kept per partition (the count of failed rows is always complete)
MAX_ROW_ERRORS = 10


def row_ranges(rows: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """Row indices as sorted, merged half-open ranges: ``[0, 1, 2, 7]`` -> ``((0, 3), (7, 8))``."""
    out: list[tuple[int, int]] = []
    for row in sorted(set(rows)):
        if out and out[-1][1] == row:
            out[-1] = (out[-1][0], row + 1)
        else:
            out.append((row, row + 1))
    return tuple(out)


@dataclass(frozen=True)
class PartitionProgress:
    """A worker's report on the partition it writes, given to ``on_progress`` on the worker.

    ``stage``: ``"sent"`` after each chunk of rows went into the producer (``rows``: rows
    sent so far), ``"committed"`` once the partition's rows are written (exactly-once: its
    transaction committed; at-least-once: every row acknowledged or failed), ``"skipped"``
    when an earlier attempt had already committed the partition (exactly-once only)."""

    job_id: str
    partition: int
    stage: str
    rows: int


@dataclass(frozen=True)
class PartitionOutcome:
    """What became of one Dask partition."""

    partition: int                 #: the Dask partition's index
    rows: int                      #: rows the partition holds
    written: int                   #: rows written (exactly-once: committed)
    #: half-open (start, stop) row ranges within the partition that were not written
    failed: tuple[tuple[int, int], ...] = ()
    #: up to MAX_ROW_ERRORS rows' errors, "row N: ErrorType: message"
    row_errors: tuple[str, ...] = ()
    #: why the partition as a whole was not (fully) written, None when it was
    error: str | None = None
    #: exactly-once: an earlier attempt had committed this partition; nothing was sent again
    already_committed: bool = False
    #: transactions this task aborted and redid after an abortable error
    retried_transactions: int = 0
    #: producer set-up (exactly-once: producer, init_transactions, done-marker read), ms
    setup_ms: float = 0.0
    #: sending, the commit (or the final flush) and closing, ms
    write_ms: float = 0.0

    @property
    def failed_rows(self) -> int:
        return sum(stop - start for start, stop in self.failed)


@dataclass(frozen=True)
class IngestResult:
    """Every partition's outcome, in partition order."""

    job_id: str
    topic: str
    exactly_once: bool
    partitions: tuple[PartitionOutcome, ...] = field(default_factory=tuple)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    @property
    def written(self) -> int:
        return sum(p.written for p in self.partitions)

    @property
    def failed_rows(self) -> int:
        return sum(p.failed_rows for p in self.partitions)

    @property
    def ok(self) -> bool:
        """Every row of every partition was written."""
        return all(not p.failed and p.error is None for p in self.partitions)

    def failures(self) -> list[PartitionOutcome]:
        """The partitions with rows not written."""
        return [p for p in self.partitions if p.failed or p.error is not None]

    def describe_failures(self, limit: int = 5) -> str:
        """A readable summary of the first ``limit`` failed partitions."""
        lines = []
        bad = self.failures()
        for p in bad[:limit]:
            ranges = ", ".join(f"{a}-{b - 1}" if b - a > 1 else str(a) for a, b in p.failed[:5])
            more = f" (+{len(p.failed) - 5} more ranges)" if len(p.failed) > 5 else ""
            why = p.error or (p.row_errors[0] if p.row_errors else "no error recorded")
            lines.append(f"partition {p.partition}: rows {ranges}{more} not written: {why}")
        if len(bad) > limit:
            lines.append(f"... and {len(bad) - limit} more partitions")
        return "\n".join(lines)
