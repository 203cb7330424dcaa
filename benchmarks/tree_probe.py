"""One measurement of one kengine tree, in a process of its own: ``python tree_probe.py MODE
[BOOTSTRAP TOPIC]``; prints one JSON object. Run by :mod:`benchmarks.side_by_side`, which puts
the tree to measure first on ``sys.path``, so this file imports only what every tree since the
core split has (it wires the compiled core both ways: the parts composed, or the older
``ProducerCore`` subclassed as its unit tests did).

Modes:

* ``micro``: CPU ns (this thread's CPU time, so that other processes of a shared machine weigh
  less than on a wall clock) per record of ``RecordBatchBuilder.append()`` per record +
  ``build()`` (a 64 KiB batch of 100-byte values, keys ``str(i % 1000)``), of ``send()`` and of
  ``send_many()`` (10,000 per call) into the compiled core wired without brokers (6 partitions,
  leaders known, no linger), each the median of several rounds; between rounds the queued
  batches are taken and completed, untimed, so buffer.memory never blocks. Every round's batches
  are counted: the records drained must be the records sent.
* ``e2e``: ``Producer.send()`` and ``send_many()`` of 300,000 records each against a real broker;
  CPU (user + system of this process, every thread) per record over the produce window, from
  the first send to ``flush()`` returning, after a flushed warm-up. The orchestrator reads the
  topic's offsets back and checks that every record was written.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import time

import kengine_ext as k

RECORD_BYTES = 100
KEYS = [str(i % 1000).encode() for i in range(1 << 16)]
VALUES = [(b"%08d" % i) + b"x" * (RECORD_BYTES - 8) for i in range(1 << 16)]
BATCH_BYTES = 64 * 1024
CHUNK = 10_000


def _append_build_ns() -> float:
    """ns per record: append() each record of a 64 KiB batch, then build()."""
    per_batch = BATCH_BYTES // (RECORD_BYTES + 8)
    keys, values = KEYS[:per_batch], VALUES[:per_batch]
    samples = []
    for _ in range(15):
        loops, records = 0, 0
        start = time.thread_time_ns()
        while loops < 200:
            builder = k.RecordBatchBuilder(BATCH_BYTES)
            append = builder.append
            for key, value in zip(keys, values, strict=True):
                append(key, value)
            builder.build()
            records += len(keys)
            loops += 1
        samples.append((time.thread_time_ns() - start) / records)
    return statistics.median(samples)


class _Wired:
    """The compiled core without brokers: send() / send_many() and the sender's drain."""

    def __init__(self) -> None:
        settings = dict(linger_ms=0, batch_size=BATCH_BYTES, max_request_size=1 << 20,
                        compression="none", compression_level=None, idempotent=False,
                        transactional=False)
        leaders = [(i % 2, 0) for i in range(6)]
        if hasattr(k, "SendPath"):      # the parts composed, as kengine.Producer wires them
            memory = k.BufferMemory(1 << 30, max_block_ms=60_000)
            partitioning = k.Partitioning(None, ignore_keys=False, adaptive_partitioning=True,
                                          availability_timeout_ms=0, batch_size=BATCH_BYTES)
            self.acc = k.RecordAccumulator(memory, partitioning, wakeup=lambda: None,
                                           client_id="probe", **settings)
            path = k.SendPath(self.acc, key_serializer="bytes", value_serializer="bytes",
                              await_metadata=self._known, transaction_refusal=None,
                              records_refused=None)
            self.send, self.send_many = path.send, path.send_many
        else:                           # before the split: ProducerCore subclassed
            acc = _legacy_core()
            acc._configure_core(buffer_memory=1 << 30, key_serializer="bytes",
                                value_serializer="bytes", partitioner=None, ignore_keys=False,
                                wakeup=lambda: None, max_block_ms=60_000, **settings)
            self.acc = acc
            self.send, self.send_many = acc.send, acc.send_many
        self.acc.update_topic("t", leaders)

    def _known(self, topic: str, partition: int | None = None) -> object:
        return self.acc.topic_state(topic)

    def take_all(self) -> int:
        """Completes every queued batch (untimed); returns the records they held."""
        records = 0
        for b in self.acc.take_all_queued():
            records += b.record_count
            self.acc.complete(b, 0)
        return records


def _legacy_core() -> object:
    class Core(k.ProducerCore):  # type: ignore[misc,name-defined]
        def _await_metadata(self, topic: str, partition: int | None = None) -> object:
            return self.topic_state(topic)
    return Core()


def _send_ns(core: _Wired, n: int, rounds: int) -> float:
    send = core.send
    samples = []
    for r in range(rounds):
        start = time.thread_time_ns()
        for i in range(n):
            j = i & 0xFFFF
            send("t", VALUES[j], key=KEYS[j])
        samples.append((time.thread_time_ns() - start) / n)
        got = core.take_all()
        if got != n:
            raise AssertionError(f"send() round {r}: {got} records queued, {n} sent")
    return statistics.median(samples)


def _send_many_ns(core: _Wired, n: int, rounds: int) -> float:
    send_many = core.send_many
    chunks = [(VALUES[s:s + CHUNK], KEYS[s:s + CHUNK]) for s in range(0, 1 << 16, CHUNK)
              if s + CHUNK <= 1 << 16]
    samples = []
    for r in range(rounds):
        sent = 0
        start = time.thread_time_ns()
        while sent < n:
            values, keys = chunks[(sent // CHUNK) % len(chunks)]
            send_many("t", values, keys=keys)
            sent += CHUNK
        samples.append((time.thread_time_ns() - start) / sent)
        got = core.take_all()
        if got != sent:
            raise AssertionError(f"send_many() round {r}: {got} records queued, {sent} sent")
    return statistics.median(samples)


def micro() -> dict[str, float]:
    core = _Wired()
    _send_ns(core, 20_000, 1)          # warm-up: topic state, buffers, branch predictors
    _send_many_ns(core, 20_000, 1)
    return {"append_build_ns": _append_build_ns(),
            "send_ns": _send_ns(core, 200_000, 9),
            "send_many_ns": _send_many_ns(core, 200_000, 9)}


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def e2e(bootstrap: str, topic: str, records: int = 300_000) -> dict[str, float]:
    from kengine import Producer

    out: dict[str, float] = {}
    with Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                   "batch.size": BATCH_BYTES, "client.id": "probe"}) as p:
        for i in range(10_000):           # warm-up: metadata, connections, buffers
            p.send(topic, VALUES[i & 0xFFFF], key=KEYS[i & 0xFFFF])
        p.flush()
        send = p.send
        cpu, wall = _cpu_s(), time.perf_counter()
        for i in range(records):
            j = i & 0xFFFF
            send(topic, VALUES[j], key=KEYS[j])
        p.flush()
        out["send_cpu_us"] = (_cpu_s() - cpu) / records * 1e6
        out["send_wall_s"] = time.perf_counter() - wall
        chunks = [(VALUES[s:s + CHUNK], KEYS[s:s + CHUNK]) for s in range(0, 60_000, CHUNK)]
        cpu, wall = _cpu_s(), time.perf_counter()
        for c in range(records // CHUNK):
            values, keys = chunks[c % len(chunks)]
            p.send_many(topic, values, keys=keys)
        p.flush()
        out["send_many_cpu_us"] = (_cpu_s() - cpu) / records * 1e6
        out["send_many_wall_s"] = time.perf_counter() - wall
    out["records"] = 10_000 + 2 * records
    return out


def work(kind: str, n: int) -> dict[str, float]:
    """``n`` records of one micro-benchmark, untimed: run under callgrind, which counts the
    instructions (the orchestrator runs two sizes and takes the difference per record)."""
    if kind == "append":
        per_batch = BATCH_BYTES // (RECORD_BYTES + 8)
        keys, values = KEYS[:per_batch], VALUES[:per_batch]
        done = 0
        while done < n:
            builder = k.RecordBatchBuilder(BATCH_BYTES)
            for key, value in zip(keys, values, strict=True):
                builder.append(key, value)
            builder.build()
            done += per_batch
        return {"records": done}
    core = _Wired()
    (_send_ns if kind == "send" else _send_many_ns)(core, n, 1)
    return {"records": n}


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "work":
        result = work(sys.argv[2], int(sys.argv[3]))
        result["kengine_ext"] = sys.modules["kengine_ext._core"].__file__
        print(json.dumps(result))
        sys.exit(0)
    result = micro() if mode == "micro" else e2e(sys.argv[2], sys.argv[3],
                                                 *(int(a) for a in sys.argv[4:5]))
    result["kengine_ext"] = sys.modules["kengine_ext._core"].__file__
    print(json.dumps(result))
