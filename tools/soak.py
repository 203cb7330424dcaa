"""Soak: the producer for a long time at a fixed rate against three real brokers behind
Toxiproxy, while a broker is bounced every 2 minutes and toxics are switched on and off. Its
resources are sampled every 10 s, charted, and checked for growth; every record is checked
against what confluent-kafka reads back.

    python tools/soak.py --minutes 30 --rate 50000 --out soak-results     # make soak

What is sampled (every ``--sample-s`` seconds): the process's RSS (``/proc/self/status``), its
open file descriptors (``/proc/self/fd``), its OS threads, the producer's buffer use
(``buffer.memory`` taken by queued and in-flight batches) and the Python objects alive
(``sys.getallocatedblocks()``).

The warm-up starts by filling ``buffer.memory`` once (every proxy disabled until the buffer is
95 % full), so that RSS reaches what a full buffer takes before anything is judged: memory the
allocator keeps after the fullest burst is a high-water mark, not growth.

The growth test: after the warm-up (the first third of the run, at most 10 minutes: the last 20
minutes of a 30-minute run are judged), a Theil-Sen line (the median of the slopes between
every two samples: a linear fit that bursts do not tilt) is fitted to each series over the
judged window; the run fails when the line's rise across the window exceeds the series'
tolerance (:data:`TOLERANCES`: RSS 32 MiB, 4 fds, 2 threads, 10 % of ``buffer.memory``, 50,000
Python blocks).
A bounce or a toxic makes a series jump for a while; a leak makes it climb through every
cycle, which is what the fitted line over many cycles shows.

The record check (bounded memory: nothing per record is kept): keys ``key-0`` ..
``key-<keys-1>`` are sent in turn, each key's records numbered 0, 1, 2...; a failed record's
number is kept with its error. Reading back, every key's numbers must rise strictly (no
duplicate, no reordering) and every number missing from the log must belong to a failed
record (a lost acknowledged record otherwise); a failed record whose error says it was not
written (``maybe_written`` false) must not be in the log.

Exit status 0 when every check passed, 1 otherwise; ``summary.json``, ``samples.csv`` and
``soak.png`` are written to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import random
import sys
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kengine import Producer  # noqa: E402
from kengine.errors import KafkaError, KafkaTimeoutError  # noqa: E402
from kengine.localkafka import KafkaCluster, Listener, Proxy, Toxiproxy  # noqa: E402

__all__ = ["TOLERANCES", "Sample", "SoakResult", "judge", "least_squares", "main", "rejudge",
           "run_soak", "trend"]

log = logging.getLogger("kengine.soak")

CLIENT_LISTENER = "CLIENT"
PARTITIONS = 6
VALUE_PAD = b"x" * 90
_NONE: dict[int, bool] = {}
#: how much each series' fitted line may rise across the judged window
TOLERANCES: dict[str, float] = {
    "rss_mib": 32.0,
    "fds": 4.0,
    "threads": 2.0,
    "buffer_fraction": 0.10,
    # Python objects alive (sys.getallocatedblocks): a leak of them shows here even when
    # RSS hides it in memory the allocator already holds, and a high-water mark of RSS (the
    # allocator keeping what the largest burst took) does not
    "py_blocks": 50_000,
}


@dataclass
class Sample:
    t_s: float
    rss_mib: float
    fds: int
    threads: int
    buffer_used_bytes: int
    buffer_fraction: float
    sent: int
    acked: int
    failed: int
    event: str = ""
    py_blocks: int = 0


@dataclass
class SoakResult:
    minutes: float
    rate: int
    warmup_s: float
    samples: list[Sample]
    sent: int = 0
    acked: int = 0
    failed: int = 0
    failed_maybe_written: int = 0
    #: send() calls that raised KafkaTimeoutError after max.block.ms (retried, not lost)
    refused: int = 0
    read_back: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    written_though_failed: int = 0
    unresolved: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    trends: dict[str, dict[str, float]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


# -- resources -------------------------------------------------------------------------------

def _status_field(name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(name)


def rss_mib() -> float:
    return _status_field("VmRSS") / 1024.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return _status_field("Threads")


def trend(times: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """The Theil-Sen slope (per second: the median of the slopes between every two samples)
    and the rise of that line across ``times``. A bounce or a toxic lifts a few samples for
    a while (records queue up); the median ignores such bursts wherever they fall in the
    window, while a leak lifts every later sample and so every pairwise slope."""
    n = len(times)
    if n < 2:
        return 0.0, 0.0
    slopes = sorted((values[j] - values[i]) / (times[j] - times[i])
                    for i in range(n) for j in range(i + 1, n) if times[j] != times[i])
    if not slopes:
        return 0.0, 0.0
    mid = len(slopes) // 2
    slope = slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
    return slope, slope * (times[-1] - times[0])


def least_squares(times: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Ordinary least-squares slope and rise, reported beside :func:`trend` (not judged:
    one burst near either end of the window tilts it)."""
    n = len(times)
    if n < 2:
        return 0.0, 0.0
    mt = sum(times) / n
    mv = sum(values) / n
    var = sum((t - mt) ** 2 for t in times)
    if var == 0:
        return 0.0, 0.0
    slope = sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True)) / var
    return slope, slope * (times[-1] - times[0])


# -- the record book -------------------------------------------------------------------------

class Book:
    """Per key: how many records were sent and acknowledged, and which failed (bounded by the
    failures, not by the records). Failed numbers go into arrays, whose storage is one buffer
    per key, not one Python object per record: the Python objects alive are sampled as the
    producer's, and a ledger growing with every failure (57,831 of them in one run, a step of
    about 50,000 blocks) would pass for a leak of the producer."""

    def __init__(self, keys: int) -> None:
        self.keys = [b"key-%d" % k for k in range(keys)]
        self.next_seq = [0] * keys
        self.acked = 0
        #: key -> the failed numbers, and beside each whether it may be written (1) or not (0)
        self._failed_seqs: dict[bytes, array] = {}
        self._failed_maybe: dict[bytes, array] = {}
        self.failed_count = 0
        self.errors: dict[str, int] = {}
        self.sent = 0
        self._lock = threading.Lock()

    def on_delivery(self, key: bytes, seq: int, err: KafkaError | None, meta: Any) -> None:
        if err is None:
            self.acked += 1   # the sender thread is the only writer
            return
        with self._lock:
            seqs = self._failed_seqs.get(key)
            if seqs is None:
                seqs = self._failed_seqs[key] = array("q")
                self._failed_maybe[key] = array("b")
            seqs.append(seq)
            self._failed_maybe[key].append(1 if getattr(err, "maybe_written", False) else 0)
            self.failed_count += 1
            kind = f"{type(err).__name__}: " + "".join(
                "N" if c.isdigit() else c for c in str(err).splitlines()[0])[:200]
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def failed(self) -> dict[bytes, dict[int, bool]]:
        """key -> failed number -> maybe written (built once, for the read-back)."""
        with self._lock:
            return {key: dict(zip(seqs, map(bool, self._failed_maybe[key]), strict=True))
                    for key, seqs in self._failed_seqs.items()}

    def verify(self, bootstrap: str, topic: str, result: SoakResult) -> None:
        """Stream the topic back with confluent-kafka and check every key's numbers."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        from confluent_kafka import KafkaError as RdKafkaError

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"soak-{time.time()}",
                             "enable.auto.commit": False, "enable.partition.eof": True,
                             "fetch.wait.max.ms": 50, "log_level": 4})
        failed_by_key = self.failed()
        last: dict[bytes, int] = {}
        missing_ok = missing_bad = dup_or_reorder = lied = read = 0
        try:
            meta = consumer.list_topics(topic, timeout=30)
            parts = sorted(meta.topics[topic].partitions)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
            pending = set(parts)
            deadline = time.monotonic() + 1800
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} back did not finish: {pending} pending")
                for msg in consumer.consume(num_messages=10000, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() == RdKafkaError._PARTITION_EOF:
                            pending.discard(msg.partition())
                            continue
                        raise RuntimeError(f"reading {topic} back: {err.str()}")
                    read += 1
                    key = msg.key()
                    value = msg.value()
                    seq = int(value[:value.index(b"|")])
                    prev = last.get(key, -1)
                    failed = failed_by_key.get(key, _NONE)
                    if seq <= prev:
                        dup_or_reorder += 1
                        continue
                    if seq in failed and not failed[seq]:
                        lied += 1
                    for gap in range(prev + 1, seq):
                        if gap in failed:
                            missing_ok += 1
                        else:
                            missing_bad += 1
                    last[key] = seq
        finally:
            consumer.close()
        for k, key in enumerate(self.keys):
            failed = failed_by_key.get(key, {})
            for gap in range(last.get(key, -1) + 1, self.next_seq[k]):
                if gap in failed:
                    missing_ok += 1
                else:
                    missing_bad += 1
        result.read_back = read
        result.lost = missing_bad
        result.duplicated = dup_or_reorder
        result.written_though_failed = lied


# -- chaos -----------------------------------------------------------------------------------

_TOXICS: list[tuple[str, str, dict[str, Any]]] = [
    ("latency", "downstream", {"latency": 150, "jitter": 100}),
    ("reset_peer", "downstream", {"timeout": 50}),
    ("bandwidth", "upstream", {"rate": 2048}),
    ("slicer", "downstream", {"average_size": 5, "size_variation": 4, "delay": 10}),
    ("timeout", "upstream", {"timeout": 0}),
]


#: No fault starts in the run's last this many seconds: the judged window must end with the
#: producer caught up, not in the backlog of a broker killed just before the end (a short CI
#: soak once ended 27 s after a SIGKILL, with the backlog's Python objects judged as growth).
QUIET_TAIL_S = 60.0


class Chaos(threading.Thread):
    """Every ``bounce_every_s``: bounce a broker (SIGTERM and restart, or SIGKILL and start, in
    turn); half-way between bounces: one toxic on one proxy for ``toxic_s`` seconds. Nothing
    new starts after ``quiet_after`` (monotonic s)."""

    def __init__(self, cluster: KafkaCluster, proxies: dict[int, Proxy], toxiproxy: Toxiproxy,
                 bounce_every_s: float, toxic_s: float, events: list[str],
                 started: float, buffer_fraction: Callable[[], float] | None = None,
                 quiet_after: float = float("inf")) -> None:
        super().__init__(name="soak-chaos", daemon=True)
        self.cluster, self.proxies, self.toxiproxy = cluster, proxies, toxiproxy
        self.bounce_every_s, self.toxic_s = bounce_every_s, toxic_s
        self.events = events
        self.started = started
        self.quiet_after = quiet_after
        self.buffer_fraction = buffer_fraction
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._rng = random.Random(24)

    def _event(self, text: str) -> None:
        line = f"{time.monotonic() - self.started:7.1f} s: {text}"
        self.events.append(line)
        log.info("%s", line)

    def prime(self) -> None:
        """Fill ``buffer.memory`` once, early in the warm-up: every broker unreachable until
        the buffer is 95 % full. RSS then holds what the fullest buffer takes (records and
        their callbacks) before the judged window starts, so that a later burst of queued
        records reuses that memory instead of raising a new high-water mark that would look
        like growth."""
        if self.buffer_fraction is None:
            return
        self._event("priming: every broker unreachable until the buffer is 95 % full")
        for proxy in self.proxies.values():
            proxy.disable()
        deadline = time.monotonic() + 120
        while self.buffer_fraction() < 0.95 and time.monotonic() < deadline \
                and not self.stop_event.is_set():
            time.sleep(0.1)
        for proxy in self.proxies.values():
            proxy.enable()
        self._event(f"priming done: buffer {100 * self.buffer_fraction():.0f} % full; "
                    "brokers reachable again")

    def run(self) -> None:
        try:
            self.prime()
            cycle = 0
            nodes = sorted(self.cluster.nodes)
            while not self.stop_event.wait(self.bounce_every_s / 2):
                if time.monotonic() >= self.quiet_after:
                    self._event("no more faults: the run ends quietly")
                    break
                kind, stream, attrs = _TOXICS[cycle % len(_TOXICS)]
                node = self._rng.choice(nodes)
                self.proxies[node].add_toxic(kind, stream=stream, name="soak", **attrs)
                self._event(f"toxic {kind} ({stream}) on broker {node}")
                self.stop_event.wait(self.toxic_s)
                self.proxies[node].remove_toxic("soak")
                self._event(f"toxic {kind} off broker {node}")
                if self.stop_event.wait(max(0.0, self.bounce_every_s / 2 - self.toxic_s)):
                    break
                if time.monotonic() >= self.quiet_after:
                    self._event("no more faults: the run ends quietly")
                    break
                node = nodes[cycle % len(nodes)]
                if cycle % 2 == 0:
                    self._event(f"restarting broker {node} (SIGTERM)")
                    self.cluster.restart(node)
                else:
                    self._event(f"killing broker {node} (SIGKILL), then starting it")
                    self.cluster.kill(node)
                    self.cluster.start(node)
                self._event(f"broker {node} back")
                cycle += 1
        except BaseException as e:   # reported by run_soak
            self.error = e
            log.exception("the chaos thread failed")


# -- the run ---------------------------------------------------------------------------------

def run_soak(cluster: KafkaCluster, proxies: dict[int, Proxy], toxiproxy: Toxiproxy, *,
             minutes: float, rate: int, out: Path | None, sample_s: float = 10.0,
             bounce_every_s: float = 120.0, toxic_s: float = 20.0,
             warmup_s: float | None = None, keys: int = 1000,
             settings: dict[str, Any] | None = None,
             tolerances: dict[str, float] | None = None,
             progress: Callable[[Sample], None] | None = None,
             prime: bool = True) -> SoakResult:
    """Soak a producer against ``cluster`` (whose client listener ``CLIENT`` is proxied by
    ``proxies``) for ``minutes`` at ``rate`` records/s."""
    duration_s = minutes * 60.0
    if warmup_s is None:
        warmup_s = min(600.0, duration_s / 3)
    tolerances = {**TOLERANCES, **(tolerances or {})}
    topic = cluster.create_topic(f"soak-{int(time.time())}", PARTITIONS,
                                 config={"min.insync.replicas": 2})
    config: dict[str, Any] = {
        "bootstrap.servers": cluster.bootstrap_servers_for(CLIENT_LISTENER),
        "acks": "all", "enable.idempotence": True, "client.id": "soak",
        "linger.ms": 5, "request.timeout.ms": 10_000,
        "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 1000,
        "retry.backoff.ms": 50, "retry.backoff.max.ms": 1000,
    }
    config.update(settings or {})
    book = Book(keys)
    result = SoakResult(minutes=minutes, rate=rate, warmup_s=warmup_s, samples=[])
    producer = Producer(config)
    buffer_total = producer.metrics()["buffer-total-bytes"]

    def buffer_used() -> int:
        # the Java-named metrics a user would watch: buffer.memory less what is available
        return buffer_total - producer.metrics()["buffer-available-bytes"]

    producer.partitions_for(topic)
    started = time.monotonic()
    chaos = Chaos(cluster, proxies, toxiproxy, bounce_every_s, toxic_s, result.events, started,
                  (lambda: buffer_used() / buffer_total) if prime else None,
                  quiet_after=started + duration_s - min(QUIET_TAIL_S, duration_s / 3))
    chaos.start()

    def sample(event: str = "") -> Sample:
        used = buffer_used()
        s = Sample(t_s=round(time.monotonic() - started, 1), rss_mib=round(rss_mib(), 1),
                   fds=open_fds(), threads=os_threads(), buffer_used_bytes=used,
                   buffer_fraction=round(used / buffer_total, 4), sent=book.sent,
                   acked=book.acked, failed=book.failed_count, event=event,
                   py_blocks=sys.getallocatedblocks())
        result.samples.append(s)
        if progress is not None:
            progress(s)
        return s

    next_sample = started
    tick = 0.01
    k = 0
    nkeys = len(book.keys)
    keys_, seqs = book.keys, book.next_seq
    on_delivery = book.on_delivery
    try:
        while True:
            now = time.monotonic()
            elapsed = now - started
            if now >= next_sample:
                sample()
                next_sample += sample_s
            if elapsed >= duration_s:
                break
            # at most one second of backlog: a send() that blocked for buffer.memory does not
            # turn into a burst afterwards
            due = min(int(elapsed * rate), book.sent + rate) - book.sent
            for _ in range(max(0, due)):
                key = keys_[k]
                seq = seqs[k]
                try:
                    producer.send(topic, b"%d|" % seq + VALUE_PAD, key=key,
                                  on_delivery=lambda e, m, key=key, seq=seq: on_delivery(
                                      key, seq, e, m))
                except KafkaTimeoutError as e:
                    # buffer.memory stayed full for max.block.ms: the record was not taken
                    # (its number is offered again next time); counted, not a failure
                    result.refused += 1
                    log.warning("send() refused a record: %s", e)
                    break
                seqs[k] = seq + 1
                k = k + 1 if k + 1 < nkeys else 0
                book.sent += 1
            if due < rate * tick:
                time.sleep(tick)
            if chaos.error is not None:
                raise chaos.error
    finally:
        chaos.stop_event.set()
        chaos.join()
        toxiproxy.reset()
        cluster.heal()
        try:
            producer.flush(600)
        finally:
            producer.close(120)
    sample("closed")
    result.sent, result.acked = book.sent, book.acked
    result.failed = book.failed_count
    result.failed_maybe_written = sum(1 for v in book.failed().values() for m in v.values() if m)
    result.errors = dict(book.errors)
    result.unresolved = result.sent - result.acked - result.failed
    book.verify(cluster.bootstrap_servers, topic, result)
    judge(result, tolerances)
    if out is not None:
        write_outputs(result, out)
    return result


def judge(result: SoakResult, tolerances: dict[str, float]) -> None:
    window = [s for s in result.samples if s.t_s >= result.warmup_s and s.event != "closed"]
    for name, limit in tolerances.items():
        times = [s.t_s for s in window]
        values = [float(getattr(s, name)) for s in window]
        slope, rise = trend(times, values)
        _, ols_rise = least_squares(times, values)
        result.trends[name] = {"slope_per_min": slope * 60, "rise_over_window": rise,
                               "least_squares_rise": ols_rise, "tolerance": limit,
                               "samples": len(window)}
        if rise > limit:
            result.problems.append(
                f"{name} trends upward after the warm-up: the fitted line rises by {rise:.2f} "
                f"over the last {times[-1] - times[0]:.0f} s (tolerance {limit})")
    if len(window) < 3:
        result.problems.append(f"only {len(window)} samples after the warm-up: run longer")
    for name in ("lost", "duplicated", "written_though_failed", "unresolved"):
        if getattr(result, name):
            result.problems.append(f"{getattr(result, name)} record(s) {name.replace('_', ' ')}")
    if result.sent == 0 or result.acked == 0:
        result.problems.append("nothing was sent or acknowledged")


def write_outputs(result: SoakResult, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(result.samples[0])))
        writer.writeheader()
        for s in result.samples:
            writer.writerow(asdict(s))
    summary = asdict(result)
    summary.pop("samples")
    first, last = result.samples[0], result.samples[-1]
    summary["start"] = asdict(first)
    summary["end"] = asdict(last)
    summary["passed"] = result.passed
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    draw_chart(result, out / "soak.png")


def draw_chart(result: SoakResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = [s for s in result.samples if s.event != "closed"]
    t = [s.t_s / 60 for s in samples]
    series = [("RSS (MiB)", [s.rss_mib for s in samples], "rss_mib"),
              ("open file descriptors", [s.fds for s in samples], "fds"),
              ("OS threads", [s.threads for s in samples], "threads"),
              ("buffer.memory in use (%)", [100 * s.buffer_fraction for s in samples],
               "buffer_fraction"),
              ("Python blocks allocated", [s.py_blocks for s in samples], "py_blocks"),
              ("records (millions)", [s.acked / 1e6 for s in samples], None)]
    fig, axes = plt.subplots(len(series), 1, sharex=True, figsize=(10, 14))
    bounces = [float(e.split(" s:")[0]) / 60 for e in result.events if "broker" in e
               and ("restarting" in e or "killing" in e)]
    for ax, (label, values, key) in zip(axes, series, strict=True):
        ax.plot(t, values, marker=".", linewidth=1)
        ax.set_ylabel(label, fontsize=8)
        ax.axvspan(0, result.warmup_s / 60, color="#eeeeee", label="warm-up")
        for b in bounces:
            ax.axvline(b, color="#d95f02", alpha=0.3, linewidth=0.8)
        trend_info = result.trends.get(key or "")
        if trend_info:
            window = [(s.t_s / 60, float(getattr(s, key))) for s in samples  # type: ignore[arg-type]
                      if s.t_s >= result.warmup_s]
            if len(window) >= 2:
                slope = trend_info["slope_per_min"]
                offsets = sorted(v - slope * m for m, v in window)
                intercept = offsets[len(offsets) // 2]
                scale = 100 if key == "buffer_fraction" else 1
                xs = [window[0][0], window[-1][0]]
                ax.plot(xs, [scale * (intercept + slope * x) for x in xs], color="#1b9e77",
                        linewidth=2, label=f"fit: {trend_info['rise_over_window'] * scale:+.2f} "
                                           "over the window")
                ax.legend(fontsize=7, loc="upper left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (orange lines: broker bounces)")
    verdict = "PASSED" if result.passed else "FAILED"
    fig.suptitle(f"kengine soak: {result.minutes:g} min at {result.rate} records/s, "
                 f"{result.sent:,} sent, {result.acked:,} acked, {result.failed:,} failed, "
                 f"{result.lost} lost, {result.duplicated} duplicated: {verdict}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def rejudge(out: Path, tolerances: dict[str, float] | None = None) -> SoakResult:
    """Judge a finished run's ``samples.csv`` and ``summary.json`` again (after a change of
    the growth test or its tolerances) and redraw its chart; the record checks are kept."""
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "samples.csv", newline="") as f:
        samples = [Sample(t_s=float(r["t_s"]), rss_mib=float(r["rss_mib"]), fds=int(r["fds"]),
                          threads=int(r["threads"]),
                          buffer_used_bytes=int(r["buffer_used_bytes"]),
                          buffer_fraction=float(r["buffer_fraction"]), sent=int(r["sent"]),
                          acked=int(r["acked"]), failed=int(r["failed"]), event=r["event"],
                          py_blocks=int(r.get("py_blocks") or 0))
                   for r in csv.DictReader(f)]
    names = {f for f in SoakResult.__dataclass_fields__} - {"samples", "trends", "problems"}
    result = SoakResult(samples=samples, **{k: v for k, v in summary.items() if k in names})
    judge(result, {**TOLERANCES, **(tolerances or {})})
    write_outputs(result, out)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=20_000, help="records per second")
    parser.add_argument("--out", type=Path, default=Path("soak-results"))
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--bounce-every-s", type=float, default=120.0)
    parser.add_argument("--toxic-s", type=float, default=20.0)
    parser.add_argument("--warmup-s", type=float, default=None,
                        help="seconds not judged (default: a third of the run, at most 600)")
    parser.add_argument("--kafka-version", default=None)
    parser.add_argument("--log", type=Path, default=None,
                        help="write kengine's DEBUG log (connections, metadata, retries, "
                             "producer ids) to this file: what explains a stall afterwards")
    parser.add_argument("--rejudge", action="store_true",
                        help="judge the run already in --out again and redraw its chart")
    args = parser.parse_args(argv)
    if args.rejudge:
        result = rejudge(args.out)
        print(json.dumps(result.trends, indent=2))
        print("\n".join(f"problem: {p}" for p in result.problems) or "passed")
        return 0 if result.passed else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("kengine").setLevel(logging.WARNING)
    log.setLevel(logging.INFO)
    if args.log is not None:
        debug = logging.FileHandler(args.log, mode="w")
        debug.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(message)s"))
        debug.setLevel(logging.DEBUG)
        # the console keeps warnings only; the file gets everything kengine says
        for handler in logging.getLogger().handlers:
            handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == log.name)
        for name in ("kengine.network", "kengine.metadata", "kengine.sender",
                     "kengine.transactions", "kengine.producer"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger("kengine").addHandler(debug)
    # the brokers' data (3 copies of every record) goes to a temporary directory, removed at
    # the end; only the samples, the summary and the chart go to --out
    with KafkaCluster(3, broker_config={"min.insync.replicas": 2},
                      listeners=[Listener(), Listener(CLIENT_LISTENER, proxied=True)],
                      kafka_version=args.kafka_version) as cluster, \
            Toxiproxy() as toxiproxy:
        proxies = toxiproxy.front(cluster, CLIENT_LISTENER)

        def show(s: Sample) -> None:
            log.info("%6.0f s  RSS %.1f MiB  fds %d  threads %d  buffer %.1f %%  sent %d  "
                     "acked %d  failed %d", s.t_s, s.rss_mib, s.fds, s.threads,
                     100 * s.buffer_fraction, s.sent, s.acked, s.failed)

        result = run_soak(cluster, proxies, toxiproxy, minutes=args.minutes, rate=args.rate,
                          out=args.out, sample_s=args.sample_s,
                          bounce_every_s=args.bounce_every_s, toxic_s=args.toxic_s,
                          warmup_s=args.warmup_s, progress=show)
    first, last = result.samples[0], result.samples[-1]
    print(f"soak {'passed' if result.passed else 'FAILED'}: {result.sent:,} sent, "
          f"{result.acked:,} acked, {result.failed:,} failed "
          f"({result.failed_maybe_written} maybe written), {result.read_back:,} read back, "
          f"{result.lost} lost, {result.duplicated} duplicated or reordered; RSS "
          f"{first.rss_mib:.1f} -> {last.rss_mib:.1f} MiB, fds {first.fds} -> {last.fds}, "
          f"threads {first.threads} -> {last.threads}; chart {args.out / 'soak.png'}")
    for p in result.problems:
        print(f"  problem: {p}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
