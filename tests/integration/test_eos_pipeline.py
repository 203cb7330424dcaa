"""The exactly-once pipeline proof on the three-broker cluster (RF 3, min.insync.replicas=2):
an input topic of keyed records ``<key>:<seq>``, two worker processes (tests/support/eos_worker.py:
a confluent-kafka consumer in one group, a transactional kengine producer each, kengine.eos's
loop), and during the run:

* a worker SIGKILLed mid-transaction; its replacement (same transactional.id) takes over;
* the leader of an input partition SIGKILLed, then the transaction coordinator of a worker;
* a worker stopped (SIGSTOP) mid-transaction, with its outputs in the log, until the group
  coordinator has removed it (its session timed out), then resumed (SIGCONT): the broker must
  refuse its offsets (its membership is gone), it aborts, and its outputs never become visible.

The output is read with read_committed by confluent-kafka: each input record's output exactly
once, per-key order kept, the group's committed offsets equal to the input's end offsets, and
the aborted outputs (which are in the log) invisible.

Size: KENGINE_EOS_RECORDS (CI: 100,000; `make eos-chaos`: 1,000,000) over about
KENGINE_EOS_SECONDS of paced work (so the faults land while there is work left), on topics of
KENGINE_EOS_PARTITIONS partitions (CI: 60; `make eos-chaos`: 120)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from kengine import Producer
from tests.support.eos_worker import SESSION_TIMEOUT_MS
from tests.support.kafka_tools import run_tool
from tests.support.log_dump import describe, dump_partition, summary
from tests.support.readback import read_all
from tests.support.txn_coordinator import transaction_coordinator

ROOT = Path(__file__).resolve().parents[2]
RECORDS = int(os.environ.get("KENGINE_EOS_RECORDS", "100000"))
SECONDS = float(os.environ.get("KENGINE_EOS_SECONDS", "40"))
PARTITIONS = int(os.environ.get("KENGINE_EOS_PARTITIONS", "60"))
KEYS = 1000
RECORDS_PER_TRANSACTION = 500

pytestmark = pytest.mark.chaos


class Worker:
    """One worker process and the lines it printed (read by a thread of its own)."""

    def __init__(self, cluster, source: str, sink: str, group: str, txn_id: str,
                 rate: float) -> None:
        self.cluster, self.source, self.sink, self.group = cluster, source, sink, group
        self.txn_id, self.rate = txn_id, rate
        #: the FENCED lines of the workers this one replaced
        self.replaced: list[str] = []
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.eos_worker", cluster.bootstrap_servers,
             source, sink, group, txn_id, str(RECORDS_PER_TRANSACTION), str(rate)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:   # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(prefix):
                    return line
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGUSR1)   # its threads' stacks, on its stderr
            time.sleep(1)
        raise AssertionError(f"worker {self.txn_id} never said {prefix}: {self.lines[-5:]} "
                             f"(exit {self.proc.poll()})")

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")   # type: ignore[union-attr]
        self.proc.stdin.flush()              # type: ignore[union-attr]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._reader.join(10)


def _fill(cluster, topic: str) -> dict[int, int]:
    """RECORDS keyed records ``<key>:<seq>``; returns each partition's end offset."""
    ends: dict[int, int] = defaultdict(int)
    seq = [0] * KEYS
    with Producer(bootstrap_servers=cluster.bootstrap_servers, acks="all", linger_ms=20) as p:
        futures = []
        for i in range(RECORDS):
            k = i % KEYS
            futures.append(p.send(topic, b"%d:%d" % (k, seq[k]), key=b"key-%d" % k))
            seq[k] += 1
            if len(futures) == 50_000:
                for f in futures:
                    md = f.result(120)
                    ends[md.partition] = max(ends[md.partition], md.offset + 1)
                futures.clear()
        for f in futures:
            md = f.result(120)
            ends[md.partition] = max(ends[md.partition], md.offset + 1)
    return dict(ends)


class Progress:
    """The group's committed offsets, read with confluent-kafka's committed() by a consumer
    that never joins the group."""

    def __init__(self, cluster, group: str, source: str) -> None:
        self._consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                                   "group.id": group, "enable.auto.commit": False,
                                   "isolation.level": "read_committed", "log_level": 0})
        self._parts = [TopicPartition(source, p) for p in range(PARTITIONS)]

    def committed(self) -> dict[int, int]:
        try:
            tps = self._consumer.committed(self._parts, timeout=10)
        except Exception:   # coordinator moving (a broker was killed): ask again later
            return {}
        return {tp.partition: max(tp.offset, 0) for tp in tps}

    def fraction(self) -> float:
        return sum(self.committed().values()) / RECORDS

    def close(self) -> None:
        self._consumer.close()


def _wait_progress(progress: Progress, at_least: float, workers: list[Worker]) -> None:
    deadline = time.monotonic() + max(300.0, SECONDS * 3)
    while progress.fraction() < at_least:
        assert time.monotonic() < deadline, (
            f"the pipeline stalled below {at_least:.0%}: {[w.lines[-3:] for w in workers]}")
        _replace_fenced(workers)
        time.sleep(0.25)


def _replace_fenced(workers: list[Worker]) -> None:
    """A worker whose producer was fenced (exit 3: FENCED) is replaced, as a deployment would:
    during the broker kills a transaction can outlive transaction.timeout.ms, and the
    coordinator then aborts it and fences its producer. Any other exit fails the test."""
    for i, w in enumerate(workers):
        code = w.proc.poll()
        if code is None:
            continue
        assert code == 3, f"worker {w.txn_id} exited {code}: {w.lines[-5:]}"
        w.stop()
        workers[i] = Worker(w.cluster, w.source, w.sink, w.group, w.txn_id, w.rate)
        workers[i].replaced = w.replaced + [w.wait_for("FENCED", timeout=1)]


def _pause(workers: list[Worker], slot: int) -> Worker:
    """Tells the worker in ``slot`` to pause and waits until it has. The broker kills run
    meanwhile and may fence it first (its transaction outlived transaction.timeout.ms while
    its coordinator was down): then its replacement is told instead."""
    for _ in range(5):
        _replace_fenced(workers)
        w = workers[slot]
        try:
            w.tell("pause")
            w.wait_for("PAUSED")
            return w
        except (BrokenPipeError, AssertionError):
            try:
                code = w.proc.wait(30)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"worker {w.txn_id} never paused: {w.lines[-5:]}") from None
            if code != 3:   # only a fenced worker is replaced
                raise
    raise AssertionError(f"worker {slot} was fenced five times before it could pause: "
                         f"{workers[slot].replaced}")


def _wait_member_removed(cluster, group: str, member_id: str) -> None:
    """Until the group coordinator has removed ``member_id`` from ``group`` (its session timed
    out) and the group is stable without it, as Kafka's own kafka-consumer-groups tool reads
    the coordinator's description of the group. (Not confluent-kafka's AdminClient: its
    describe_consumer_groups() aborts the process when a request times out, librdkafka
    issue 4605, and brokers are being killed meanwhile.)"""
    deadline = time.monotonic() + 120 + SESSION_TIMEOUT_MS / 1000
    out = ""
    while time.monotonic() < deadline:
        run = run_tool(cluster, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                       "--bootstrap-server", cluster.bootstrap_servers, "--describe",
                       "--members", "--group", group, timeout=120)
        out = run.stdout + run.stderr
        members = {word for line in out.splitlines() for word in line.split()
                   if word.startswith("rdkafka-")}
        if run.returncode == 0 and members and member_id not in members \
                and "rebalancing" not in out:
            return
        time.sleep(1)
    raise AssertionError(f"the group coordinator never removed paused member {member_id}: "
                         f"{out}")


def _duplicates(cluster, sink: str, out: list) -> str:
    """Which producer and transaction wrote each output seen twice, by Kafka's own
    DumpLogSegments: the batch holding it and the marker that ended its transaction."""
    where: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for r in out:
        where[r.value].append((r.partition, r.offset))
    twice = {v: places for v, places in where.items() if len(places) > 1}
    by_partition: dict[int, list[int]] = defaultdict(list)
    for places in list(twice.values())[:20]:
        for partition, offset in places:
            by_partition[partition].append(offset)
    lines = [f"{len(twice)} outputs seen more than once, e.g. "
             f"{dict(list(twice.items())[:5])}"]
    for partition, offsets in sorted(by_partition.items()):
        try:
            batches = dump_partition(cluster, sink, partition)
            lines.append(f"{sink}-{partition}:\n" + describe(batches, sorted(offsets))
                         + "\nevery batch:\n" + summary(batches))
        except Exception as exc:   # the evidence is a bonus: the failure is reported anyway
            lines.append(f"{sink}-{partition}: no dump ({exc})")
    return "\n".join(lines)


def test_exactly_once_pipeline_under_kills_and_a_paused_worker(kafka_cluster, topic_factory):
    cluster = kafka_cluster
    source = topic_factory(cluster, partitions=PARTITIONS, replication_factor=3)
    sink = topic_factory(cluster, partitions=PARTITIONS, replication_factor=3)
    group = f"eos-{uuid.uuid4().hex[:8]}"
    # per worker: either one alone would finish in about SECONDS, the two together in half
    # that; a worker behind its schedule (after a stall) catches up at full speed
    rate = RECORDS / SECONDS
    workers: list[Worker] = []
    progress = Progress(cluster, group, source)
    started = time.monotonic()
    try:
        ends = _fill(cluster, source)
        assert sum(ends.values()) == RECORDS
        ids = [f"eos-{sink}-{slot}" for slot in range(2)]
        workers = [Worker(cluster, source, sink, group, t, rate) for t in ids]
        for w in workers:
            w.wait_for("COMMITTED")

        phases: list[str] = []

        def phase(what: str) -> None:
            phases.append(f"{time.monotonic() - started:.0f}s {what}")

        phase("workers committing")
        # 1. a worker SIGKILLed mid-transaction (the run is almost all transactions; being
        # paced, it is inside one while it sleeps); a replacement with its transactional.id
        # fences what it left and takes its partitions
        _wait_progress(progress, 0.05, workers)
        workers[0].proc.kill()
        workers[0].proc.wait(30)
        workers[0] = Worker(cluster, source, sink, group, ids[0], rate)
        workers[0].wait_for("COMMITTED")
        phase("worker 0 killed and replaced")

        # 2. meanwhile (a thread of its own, so that the faults overlap as they would): the
        # leader of an input partition, then the transaction coordinator of worker 1
        broker_faults: list[BaseException] = []

        def kill_brokers() -> None:
            try:
                for victim in (cluster.leader_of(source, 0),
                               transaction_coordinator(cluster, ids[1])):
                    cluster.kill(victim)
                    phase(f"broker {victim} killed")
                    time.sleep(3)
                    cluster.start(victim)
                    cluster.wait_in_sync(source, timeout=120)
                    cluster.wait_in_sync(sink, timeout=120)
                    phase(f"broker {victim} back in sync")
            except BaseException as exc:   # reported by the main thread
                broker_faults.append(exc)

        brokers = threading.Thread(target=kill_brokers, daemon=True)
        brokers.start()

        # 3. worker 1 stops itself mid-transaction with its outputs flushed, stays stopped
        # past the session timeout (worker 0 takes all partitions), then resumes: the group
        # coordinator must refuse its offsets, and its outputs must stay invisible
        _wait_progress(progress, 0.20, workers)
        paused = _pause(workers, 1)
        phase("worker 1 paused")
        # not a fixed sleep: a group coordinator that moves during the pause (a broker kill)
        # loads the group with fresh session timers, and the paused member would still be in
        # it at the end of any sleep. Resume it once the coordinator has removed it.
        _wait_member_removed(cluster, group, paused.wait_for("PAUSED").split()[1])
        phase("worker 1 removed from the group")
        os.kill(paused.proc.pid, signal.SIGCONT)
        try:
            refusal = paused.wait_for("ABORTED", timeout=120)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; phases: {phases}") from None
        phase("worker 1 resumed and refused")
        assert any(name in refusal for name in ("IllegalGenerationError",
                                                "UnknownMemberIdError",
                                                "RebalanceInProgressError")), refusal
        brokers.join(600)
        assert not brokers.is_alive() and not broker_faults, broker_faults

        # 4. to the end: every input offset committed by the group
        deadline = time.monotonic() + max(600.0, SECONDS * 5)
        while progress.committed() != ends:
            assert time.monotonic() < deadline, (
                f"committed {progress.committed()} of {ends}; "
                f"workers said {[w.lines[-3:] for w in workers]}")
            _replace_fenced(workers)
            time.sleep(0.5)
        elapsed = time.monotonic() - started
        phase("every input offset committed")
        for w in workers:
            w.stop()
            w.wait_for("DONE", timeout=5)
        assert progress.committed() == ends

        # the proof, read by confluent-kafka with read_committed
        out = read_all(cluster.bootstrap_servers, sink, read_committed=True,
                       at_least=RECORDS, timeout=300)
        values = [r.value for r in out]
        if len(values) != RECORDS or len(set(values)) != RECORDS:
            raise AssertionError(f"{len(values) - RECORDS:+d} outputs, "
                                 f"{RECORDS - len(set(values))} inputs without one; phases: "
                                 f"{phases}\n{_duplicates(cluster, sink, out)}")
        per_key: dict[int, list[int]] = defaultdict(list)
        for r in sorted(out, key=lambda r: (r.partition, r.offset)):
            k, s = map(int, r.value.split(b":"))
            assert r.key == b"key-%d" % k
            per_key[k].append(s)
        assert len(per_key) == KEYS
        for k, seqs in per_key.items():
            assert seqs == list(range(len(seqs))), f"key {k}: outputs out of order or missing"
        # the aborted transactions' outputs are in the log (the killed and the paused worker
        # wrote some) and read_committed hides every one of them
        everything = read_all(cluster.bootstrap_servers, sink, timeout=300)
        assert len(everything) > RECORDS
        print(f"\nEOS pipeline: {RECORDS} records in {elapsed:.0f} s; "
              f"{len(everything) - RECORDS} aborted outputs hidden; phases: {phases}; "
              f"workers fenced and replaced: {[w.replaced for w in workers]}; "
              f"worker lines: {[w.lines for w in workers]}")
    finally:
        for w in workers:
            if w.proc.poll() is None:
                os.kill(w.proc.pid, signal.SIGCONT)
                w.proc.kill()
                w.proc.wait(30)
        progress.close()
        for t in (source, sink):
            try:
                cluster.delete_topic(t)
            except Exception:   # the cluster may be down after a failure: heal() follows
                pass
