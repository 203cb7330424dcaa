"""Faults injected into ``kengine.dask.to_kafka()`` tasks through its ``on_progress`` hook,
which runs on the Dask worker. Each fires on the first attempt of one partition only: the
first attempt to get there creates a marker file (``O_EXCL``: one process wins), so Dask's
retry of the task, on whichever worker, passes. Picklable (module-level classes), so that
the worker processes import them from here."""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from kengine.dask import PartitionProgress

__all__ = ["FirstAttemptFault", "SentSignal"]


def _first_time(marker: Path) -> bool:
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


@dataclass(frozen=True)
class FirstAttemptFault:
    """On partition ``partition``'s first ``stage`` event with at least ``rows`` rows, either
    SIGKILL the worker process (``action="kill"``) or raise (``action="raise"``)."""

    marker_dir: str
    partition: int
    stage: str
    action: str
    rows: int = 0

    def __call__(self, event: PartitionProgress) -> None:
        if event.partition != self.partition or event.stage != self.stage \
                or event.rows < self.rows:
            return
        if not _first_time(Path(self.marker_dir) / f"fault-{self.partition}-{self.stage}"):
            return
        if self.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise RuntimeError(f"injected failure of partition {self.partition} at {event.rows} "
                           f"rows ({self.stage})")


@dataclass(frozen=True)
class SentSignal:
    """Writes ``<marker_dir>/sent-<partition>`` once a partition has sent rows, so that the
    test (in another process) knows the job is under way."""

    marker_dir: str

    def __call__(self, event: PartitionProgress) -> None:
        if event.stage == "sent":
            (Path(self.marker_dir) / f"sent-{event.partition}").touch()
