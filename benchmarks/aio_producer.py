"""asyncio producers side by side: kengine's AIOProducer (``await send()``, ``send_many()``
in chunks, and ``await send()`` with a buffer.memory far smaller than the data), kengine's
synchronous ``send()`` for reference, aiokafka's ``send()`` + gather and its
``create_batch()``/``send_batch()`` path, and confluent-kafka's ``confluent_kafka.aio``
AIOProducer, on one broker, one topic of 6 partitions per run, in interleaved rounds.

    python -m benchmarks.aio_producer [--records 1000000] [--rounds 3] [--only LANE,...]

Every run: 100-byte values, keys ``str(i % 1000)``, acks=all, idempotence on, linger 5 ms,
64 KiB batches, no compression, after a flushed warm-up of 10,000 records to the same topic.
Each lane runs in a process of its own (its CPU time is its own: user + system of every
thread, from getrusage); records/s counts from the first send to the last acknowledgement.
The asyncio lanes run a loop-lag probe (a task asking to wake every 1 ms, recording how late
it wakes) and report its p99 and max. Every run's topic is read back with confluent-kafka's
consumer and counted (and every value checked unique) before it is deleted; a run that does
not read back exactly what it sent fails the command.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PARTITIONS = 6
WARMUP = 10_000
KEYS = 1000
LINGER_MS = 5
BATCH_BYTES = 65536
CHUNK = 10_000

LANES = ["loop-idle", "kengine-send", "kengine-aio-send", "kengine-aio-send-full-buffer",
         "kengine-aio-send_many", "aiokafka-send", "aiokafka-create_batch", "confluent-aio"]


def _value(i: int) -> bytes:
    return b"%09d" % i + b"x" * 91   # 100 bytes, unique per record (checked on read-back)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _Probe:
    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(max(0.0, time.perf_counter() - before - 0.001))

    def start(self) -> None:
        self.lags.clear()
        self._task = asyncio.ensure_future(self._run())

    def sent(self) -> None:
        """The last record is handed over: the lags so far are the send phase's."""
        self.send_phase = len(self.lags)

    async def stop(self) -> dict[str, float]:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        sending = sorted(self.lags[:getattr(self, "send_phase", len(self.lags))]) \
            or [float("nan")]
        out = {"send_lag_p99_ms": 1000 * sending[min(len(sending) - 1,
                                                      int(0.99 * len(sending)))],
               "send_lag_max_ms": 1000 * sending[-1], "send_lag_ticks": len(sending)}
        lags = sorted(self.lags) or [float("nan")]
        def pct(q: float) -> float:
            return 1000 * lags[min(len(lags) - 1, int(q * len(lags)))]
        return {"lag_p50_ms": pct(0.5), "lag_p90_ms": pct(0.9), "lag_p99_ms": pct(0.99),
                "lag_max_ms": 1000 * lags[-1], "lag_ticks": len(self.lags), **out}


# ---------------------------------------------------------------------- lanes (child process)

def lane_kengine_send(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    from kengine import Producer

    with Producer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS,
                  batch_size=BATCH_BYTES) as p:
        for i in range(WARMUP):
            p.send(topic, _value(n + i), key=str(i % KEYS))
        p.flush()
        cpu, t0 = _cpu_s(), time.perf_counter()
        futures = [p.send(topic, _value(i), key=str(i % KEYS)) for i in range(n)]
        p.flush()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        failed = sum(f.exception(0) is not None for f in futures)
    return {"wall_s": wall, "cpu_s": cpu, "failed": failed}


async def _kengine_aio(bootstrap: str, topic: str, n: int, *, many: bool,
                       buffer_memory: int | None) -> dict[str, Any]:
    from kengine import AIOProducer

    settings: dict[str, Any] = {"acks": "all", "linger_ms": LINGER_MS, "batch_size": BATCH_BYTES}
    if buffer_memory is not None:
        settings["buffer_memory"] = buffer_memory
    probe = _Probe()
    async with AIOProducer(bootstrap_servers=bootstrap, **settings) as p:
        for i in range(WARMUP):
            await p.send(topic, _value(n + i), key=str(i % KEYS))
        await p.flush()
        probe.start()
        cpu, t0 = _cpu_s(), time.perf_counter()
        failed = 0
        if many:
            keys = [str(i % KEYS) for i in range(CHUNK)]
            bulks = []
            for start in range(0, n, CHUNK):
                values = [_value(i) for i in range(start, min(n, start + CHUNK))]
                bulks.append(await p.send_many(topic, values, keys=keys[:len(values)]))
            probe.sent()
            for bulk in bulks:
                failed += (await bulk).failed_count
        else:
            futures = [await p.send(topic, _value(i), key=str(i % KEYS)) for i in range(n)]
            probe.sent()
            for f in futures:
                try:
                    await f
                except Exception:
                    failed += 1
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        out = await probe.stop()
        out["memory_waits"] = p._gate.waits
        out["handoffs"] = p._bridge.handoffs
    return {"wall_s": wall, "cpu_s": cpu, "failed": failed, **out}


async def _aiokafka_send(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    probe = _Probe()
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                         linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES)
    await p.start()
    try:
        warm = [await p.send(topic, _value(n + i), key=str(i % KEYS).encode())
                for i in range(WARMUP)]
        await asyncio.gather(*warm)
        probe.start()
        cpu, t0 = _cpu_s(), time.perf_counter()
        futures = [await p.send(topic, _value(i), key=str(i % KEYS).encode()) for i in range(n)]
        probe.sent()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        out = await probe.stop()
    finally:
        await p.stop()
    failed = sum(isinstance(o, BaseException) for o in outcomes)
    return {"wall_s": wall, "cpu_s": cpu, "failed": failed, **out}


async def _aiokafka_batches(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """The caller fills batches by hand (create_batch/append/send_batch), one open batch per
    partition; partitions chosen by aiokafka's own murmur2 partitioner, once per key."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    part = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    partition_of = [part(str(k).encode(), all_partitions, all_partitions) for k in range(KEYS)]
    probe = _Probe()
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                         linger_ms=LINGER_MS, max_batch_size=BATCH_BYTES)
    await p.start()

    async def produce(first: int, count: int) -> list[Any]:
        futures = []
        open_batches = [p.create_batch() for _ in range(PARTITIONS)]
        for i in range(first, first + count):
            k = i % KEYS
            q = partition_of[k]
            key = str(k).encode()
            value = _value(i)
            if open_batches[q].append(key=key, value=value, timestamp=None) is None:
                futures.append(await p.send_batch(open_batches[q], topic, partition=q))
                open_batches[q] = p.create_batch()
                open_batches[q].append(key=key, value=value, timestamp=None)
        for q, batch in enumerate(open_batches):
            if batch.record_count():
                futures.append(await p.send_batch(batch, topic, partition=q))
        return futures

    try:
        await asyncio.gather(*(await produce(n, WARMUP)))
        probe.start()
        cpu, t0 = _cpu_s(), time.perf_counter()
        futures = await produce(0, n)
        probe.sent()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        out = await probe.stop()
    finally:
        await p.stop()
    failed = sum(isinstance(o, BaseException) for o in outcomes)
    return {"wall_s": wall, "cpu_s": cpu, "failed_batches": failed, "failed": 0 if not failed
            else -1, **out}


async def _confluent_aio(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    from confluent_kafka.aio import AIOProducer as ConfluentAIOProducer

    probe = _Probe()
    p = ConfluentAIOProducer({"bootstrap.servers": bootstrap, "acks": "all",
                              "enable.idempotence": True, "linger.ms": LINGER_MS,
                              "batch.size": BATCH_BYTES})
    try:
        warm = [await p.produce(topic, _value(n + i), key=str(i % KEYS)) for i in range(WARMUP)]
        await p.flush()
        await asyncio.gather(*warm)
        probe.start()
        cpu, t0 = _cpu_s(), time.perf_counter()
        futures = [await p.produce(topic, _value(i), key=str(i % KEYS)) for i in range(n)]
        probe.sent()
        await p.flush()
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        out = await probe.stop()
    finally:
        await p.close()
    failed = sum(isinstance(o, BaseException) for o in outcomes)
    return {"wall_s": wall, "cpu_s": cpu, "failed": failed, **out}


async def _idle(bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    """The control: the probe alone on an idle loop for 3 s, plus the warm-up records (sent
    with confluent-kafka, so the read-back count holds): the lag this machine's scheduling
    alone gives, in the same run."""
    from confluent_kafka import Producer as ConfluentProducer

    probe = _Probe()
    probe.start()
    cpu, t0 = _cpu_s(), time.perf_counter()
    await asyncio.sleep(3.0)
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
    out = await probe.stop()
    p = ConfluentProducer({"bootstrap.servers": bootstrap})
    for i in range(n + WARMUP):
        while True:
            try:
                p.produce(topic, _value(i))
                break
            except BufferError:
                p.poll(0.01)
    p.flush()
    return {"wall_s": wall, "cpu_s": cpu, "failed": 0, **out}


def run_lane(lane: str, bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    if lane == "loop-idle":
        return asyncio.run(_idle(bootstrap, topic, n))
    if lane == "kengine-send":
        return lane_kengine_send(bootstrap, topic, n)
    if lane == "kengine-aio-send":
        main = _kengine_aio(bootstrap, topic, n, many=False, buffer_memory=None)
    elif lane == "kengine-aio-send-full-buffer":
        # 1 MiB: 16 batches of 64 KiB for 100 MiB of records, full all along
        main = _kengine_aio(bootstrap, topic, n, many=False, buffer_memory=1 << 20)
    elif lane == "kengine-aio-send_many":
        main = _kengine_aio(bootstrap, topic, n, many=True, buffer_memory=None)
    elif lane == "aiokafka-send":
        main = _aiokafka_send(bootstrap, topic, n)
    elif lane == "aiokafka-create_batch":
        main = _aiokafka_batches(bootstrap, topic, n)
    elif lane == "confluent-aio":
        main = _confluent_aio(bootstrap, topic, n)
    else:
        raise SystemExit(f"unknown lane {lane!r}; lanes: {', '.join(LANES)}")
    return asyncio.run(main)


# ---------------------------------------------------------------------- the run (parent)

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.aio_producer",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default=",".join(LANES))
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument("--lane", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lane:   # child process: one run, its result as the last line
        print(json.dumps(run_lane(args.lane, args.bootstrap, args.topic, args.records)))
        return 0

    from kengine.localkafka import KafkaCluster
    from tests.support.readback import read_all

    lanes = [lane for lane in args.only.split(",") if lane]
    runs: list[dict[str, Any]] = []
    bad = 0
    with tempfile.TemporaryDirectory(prefix="kengine-aio-bench-") as work, \
            KafkaCluster(1, Path(work)) as cluster:
        for round_index in range(args.rounds):
            for lane in lanes:
                topic = f"aio-bench-{uuid.uuid4().hex[:8]}"
                cluster.create_topic(topic, PARTITIONS)
                try:
                    child = subprocess.run(
                        [sys.executable, "-m", "benchmarks.aio_producer", "--lane", lane,
                         "--bootstrap", cluster.bootstrap_servers, "--topic", topic,
                         "--records", str(args.records)],
                        capture_output=True, text=True, timeout=1800)
                    if child.returncode != 0:
                        print(child.stderr[-3000:], file=sys.stderr)
                        bad += 1
                        continue
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                    expected = args.records + WARMUP
                    records = read_all(cluster.bootstrap_servers, topic, timeout=600,
                                       at_least=expected)
                    values = {r.value for r in records}
                finally:
                    cluster.delete_topic(topic)
                result.update(lane=lane, round=round_index + 1, records=args.records,
                              read_back=len(records), unique=len(values),
                              records_per_s=args.records / result["wall_s"],
                              cpu_us_per_record=1e6 * result["cpu_s"] / args.records)
                ok = result["read_back"] == expected and result["unique"] == expected \
                    and result["failed"] == 0
                result["ok"] = ok
                bad += not ok
                runs.append(result)
                if args.json is not None:   # after every run: a stopped run keeps its figures
                    args.json.write_text(json.dumps(runs, indent=1))
                lag = (f", loop lag p50/p90/p99/max {result['lag_p50_ms']:.2f}/"
                       f"{result['lag_p90_ms']:.2f}/{result['lag_p99_ms']:.2f}/"
                       f"{result['lag_max_ms']:.1f} ms over {result['lag_ticks']} ticks; "
                       f"while sending p99/max {result['send_lag_p99_ms']:.2f}/"
                       f"{result['send_lag_max_ms']:.1f} ms over {result['send_lag_ticks']}"
                       if "lag_p99_ms" in result else "")
                print(f"round {round_index + 1} {lane}: {result['records_per_s']:,.0f} rec/s, "
                      f"{result['cpu_us_per_record']:.2f} us CPU/rec, read back "
                      f"{result['read_back']:,}/{expected:,} unique {result['unique']:,}"
                      f"{lag}{'' if ok else '  CHECK FAILED'}", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1))
    print()
    print(table(runs))
    return 1 if bad else 0


def table(runs: list[dict[str, Any]]) -> str:
    lanes = list(dict.fromkeys(r["lane"] for r in runs))

    def med(lane: str, key: str) -> float:
        vals = [r[key] for r in runs if r["lane"] == lane and key in r]
        return statistics.median(vals) if vals else float("nan")

    rows = ["| client | records/s | client CPU µs/record | loop lag p99 / max ms, whole run "
            "| ... while sending | runs read back exactly |", "|---|---:|---:|---:|---:|---:|"]
    for lane in lanes:
        mine = [r for r in runs if r["lane"] == lane]
        rows.append(f"| {lane} | {med(lane, 'records_per_s'):,.0f} | "
                    f"{med(lane, 'cpu_us_per_record'):.2f} | {med(lane, 'lag_p99_ms'):.1f} / "
                    f"{med(lane, 'lag_max_ms'):.0f} | {med(lane, 'send_lag_p99_ms'):.1f} / "
                    f"{med(lane, 'send_lag_max_ms'):.0f} | "
                    f"{sum(r['ok'] for r in mine)}/{len(mine)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
