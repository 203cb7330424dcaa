"""What the runner asks of one client run, and what the run reports back.

The runner writes a :class:`RunSpec` as JSON, starts the client in a process of its own
(``python -m benchmarks.worker SPEC`` for the Python clients, the JVM for Java's
ProducerPerformance) and reads a :class:`RunResult` from ``spec.result_path``. Keeping each
client alone in its process is what makes its CPU time measurable: the figures are the
process's CPU time (every thread: librdkafka's, the JVM's, kengine's sender) over the produce
window only, from the first measured ``send()`` to the last acknowledgement (in transactional
runs: to the return of the last ``commit_transaction()``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["MODES", "ProducerSettings", "RunResult", "RunSpec"]

#: throughput: as fast as the client goes; latency: paced at ``rate_per_s``
MODES = ("throughput", "latency")


@dataclass(frozen=True)
class ProducerSettings:
    """The settings every client gets, under each client's own names (see README.md)."""

    batch_bytes: int = 64 * 1024
    linger_ms: int = 5
    max_in_flight: int = 5
    buffer_memory_bytes: int = 32 * 1024 * 1024


@dataclass(frozen=True)
class RunSpec:
    client: str                 # a name from benchmarks.clients.CLIENTS
    mode: str                   # one of MODES
    bootstrap: str
    topic: str
    partitions: int
    records: int                # measured records, sent after the warm-up
    warmup_records: int         # sent and flushed before the window opens (Java: not flushed)
    record_bytes: int
    compression: str            # none, lz4, zstd (Kafka's names)
    acks: str                   # "1" or "all"
    idempotent: bool            # asked for; the runner checks with the broker what it got
    settings: ProducerSettings
    result_path: str
    rate_per_s: int = 0         # latency mode: records sent per second
    #: records per transaction, each committed before the next begins (warm-up included);
    #: 0: no transactions
    transaction_records: int = 0
    #: keys are str(i % key_space) (benchmarks.workload)
    key_space: int = 1000
    #: every topic the run writes to, ``topic`` first; record i goes to topic i % len(topics).
    #: Empty: ``topic`` alone
    topics: list[str] = field(default_factory=list)
    #: threads sharing the one producer, each sending a contiguous share of the records
    threads: int = 1

    @property
    def all_topics(self) -> list[str]:
        return self.topics or [self.topic]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["settings"] = ProducerSettings(**data["settings"])
        return cls(**data)


@dataclass
class RunResult:
    """One run as the client's process measured it."""

    records: int                # records in the window
    window_s: float             # wall-clock seconds of the window
    cpu_user_s: float           # process CPU time in the window, every thread
    cpu_system_s: float
    rss_start_bytes: int        # resident set size when the window opened
    rss_peak_bytes: int         # peak resident set size of the process (VmHWM) at the end
    delivery_errors: int = 0    # records the client reported as failed
    client_version: str = ""
    #: latency mode: percentiles of send() -> delivery callback, in microseconds
    latency_us: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self)))

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        data: dict[str, Any] = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
