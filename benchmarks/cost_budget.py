"""Where a record's client CPU goes: ``python -m benchmarks.cost_budget``.

Each lane is a process of its own that sends 100-byte records (keys ``str(i % 1000)``) to a
6-partition topic on one broker (acks=all, linger 5 ms, 64 KiB batches, idempotence on,
compression as the lane says): a flushed warm-up, then three measured windows of ``--records``
records, each from the first send to ``flush()`` returning, whose process CPU (user + system,
every thread) per record is reported as their median; then a window four times as long under py-spy
(``--native``: the compiled core's C functions appear by name), attached from inside the
process for that window only, so start-up, warm-up and exit are not in the profile. Sampling
slows a process, so that window's CPU is not the one reported: its samples only split it.

Each sample's stack is put in one bucket by the first rule of ``BUCKETS`` that matches it.
Samples of threads that wait (``epoll_wait``, condition variables, the buffer-memory wait) are
not CPU and are left out; the other buckets' shares of the samples split the measured CPU per
record. The flame graphs of the two plain lanes are kept beside the figures.

Every lane's topic is counted afterwards by confluent-kafka (end offsets): every record sent
must be there. confluent-kafka's ``produce()`` loop runs in the same run with the same settings
as the reference (its total only: its stacks are librdkafka's, which the buckets do not name).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

RECORD_BYTES = 100
KEYS = 1000
WARMUP = 20_000
CHUNK = 10_000
SETTINGS = {"acks": "all", "linger.ms": 5, "batch.size": 65536, "enable.idempotence": True}
LANES = ["kengine-send", "kengine-send_many", "kengine-send-lz4", "kengine-send_many-lz4",
         "confluent-produce"]
RESULTS = Path(__file__).parent / "results"
#: lanes whose flame graph (SVG) is kept beside the budget
FLAME_GRAPHS = ("kengine-send", "kengine-send_many")

#: buckets whose samples are not CPU spent on the measured records
NOT_COUNTED = ("waiting (not CPU)", "start-up (not measured)")
#: (bucket, pattern over the whole stack, frames joined by ";"): the first that matches wins
BUCKETS: list[tuple[str, str]] = [
    ("waiting (not CPU)", r"epoll_wait|pthread_cond_(timed)?wait|sem_(timed)?wait|"
                          r"BufferMemory_wait_for|Condition\.wait|Event\.wait|futex_wait|"
                          r"PyThread_acquire_lock_timed;[^;]*$|__poll|select_poll|clock_nanosleep|"
                          r"time_sleep"),
    ("start-up (not measured)", r"_find_and_load|_call_with_frames_removed|"
                                r"Thread\._bootstrap_inner;Thread\.run;_worker"),
    ("compression", r"lz4|LZ4|zstd|ZSTD|snappy|deflate|compress"),
    ("encoding and CRC", r"RecordBatchBuilder_|crc32c|_mm_crc32|sse42|uvarint|put_varint"),
    ("system calls (socket writes and reads)", r"sock_send|sock_recv|sendmsg|recvmsg|"
                                               r"sock_call|__libc_send|__libc_recv"),
    ("futures (made by send(), completed, read)", r"ProducerBatch_complete|_succeed|"
                                                 r"complete_batch|DeliveryFuture|"
                                                 r"_core_new_delivery_future|;exception|"
                                                 r"BulkFuture|BulkResult|record_error"),
    ("garbage collector", r"gc_collect"),
    ("send call (arguments, partitioner, accumulator, buffer)",
     r"SendMethods_send|SendPath_|RecordAccumulator_append|;send_many|;send;|;send$|"
     r"__Pyx_ParseKeywords|__Pyx_CyFunction_Vectorcall"),
    ("sender's per-batch work (drain, requests, responses)", r"Sender\.|NetworkClient\.|"
                                                            r"Connection\.|ProducerMetrics"),
    ("the caller's loop (making the records)", r"_run_send|_value|<listcomp>|<genexpr>"),
]


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _value(i: int) -> bytes:
    return b"%09d" % i + b"x" * (RECORD_BYTES - 9)


class _Profiler:
    """py-spy attached to this process for one window (started and stopped from inside, so
    that start-up, the warm-up and the exit are not in it)."""

    def __init__(self, spy: str, rate: int, raw: Path, svg: Path | None) -> None:
        self._args = [(fmt, out) for fmt, out in (("raw", raw), ("flamegraph", svg))
                      if out is not None]
        self._spy, self._rate = spy, rate
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> _Profiler:
        for fmt, out in self._args:
            self._procs.append(subprocess.Popen(
                [self._spy, "record", "--native", "--rate", str(self._rate), "--format", fmt,
                 "--output", str(out), "--pid", str(os.getpid())],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(1.5)   # attached (py-spy needs well under a second here)
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.send_signal(signal.SIGINT)
        for proc, (_, out) in zip(self._procs, self._args, strict=True):
            _, err = proc.communicate(timeout=120)
            if not out.exists():
                raise RuntimeError(f"py-spy wrote no {out}: {err.decode()[-2000:]}")


def lane(name: str, bootstrap: str, topic: str, n: int, profiler: _Profiler) -> dict[str, Any]:
    """One lane (run in the child): a flushed warm-up, the measured window, then the same
    window again under the profiler (its CPU is not the one reported: sampling slows it)."""
    codec = "lz4" if name.endswith("-lz4") else "none"
    keys = [str(i % KEYS).encode() for i in range(KEYS)]
    if name.startswith("confluent"):
        from confluent_kafka import Producer as CProducer

        cp = CProducer({"bootstrap.servers": bootstrap, "compression.type": codec,
                        "partitioner": "murmur2_random", "queue.buffering.max.messages": 2_000_000,
                        **SETTINGS})

        def _run_produce(first: int, count: int) -> int:
            for i in range(first, first + count):
                while True:
                    try:
                        cp.produce(topic, _value(i), keys[i % KEYS])
                        break
                    except BufferError:
                        cp.poll(0.001)
                if not i & 1023:
                    cp.poll(0)
            cp.flush()
            return 0
        return _windows(_run_produce, n, profiler)
    from kengine import Producer

    with Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                   **SETTINGS}) as p:
        chunk_keys = [keys[i % KEYS] for i in range(CHUNK)]

        def _run_send_many(first: int, count: int) -> int:
            stop = first + count
            bulks = [p.send_many(topic, [_value(i) for i in range(s, min(stop, s + CHUNK))],
                                 keys=chunk_keys[:min(stop, s + CHUNK) - s])
                     for s in range(first, stop, CHUNK)]
            p.flush()
            return sum(b.result().failed_count for b in bulks)

        def _run_send(first: int, count: int) -> int:
            futures = [p.send(topic, _value(i), key=keys[i % KEYS])
                       for i in range(first, first + count)]
            p.flush()
            return sum(f.exception(0) is not None for f in futures)
        return _windows(_run_send_many if "send_many" in name else _run_send, n, profiler)


#: measured windows per lane (the median is reported), then one more under the profiler,
#: PROFILED times as long (at 500 samples/s, about 1,500 samples of CPU for send())
WINDOWS = 3
PROFILED = 4


def _windows(run: Any, n: int, profiler: _Profiler) -> dict[str, Any]:
    failed = run((WINDOWS + PROFILED) * n, WARMUP)
    cpu_s, wall_s = [], []
    for w in range(WINDOWS):
        cpu, t0 = _cpu_s(), time.perf_counter()
        failed += run(w * n, n)
        cpu_s.append(_cpu_s() - cpu)
        wall_s.append(time.perf_counter() - t0)
    with profiler:
        failed += run(WINDOWS * n, PROFILED * n)
    return {"cpu_s": statistics.median(cpu_s), "wall_s": statistics.median(wall_s),
            "cpu_s_windows": cpu_s, "failed": failed}


def buckets(raw: Path) -> dict[str, int]:
    """Samples per bucket of a py-spy raw (collapsed stacks) file."""
    rules = [(name, re.compile(pattern)) for name, pattern in BUCKETS]
    out: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        names = ";".join(re.sub(r" \(.*", "", frame) for frame in stack.split(";"))
        for name, rule in rules:
            if rule.search(names):
                out[name] += int(count)
                break
        else:
            out["other (interpreter, allocator, threads)"] += int(count)
    return dict(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.cost_budget",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000,
                    help="records per measured window (3 of them; the profiled one has 4x)")
    ap.add_argument("--only", default=",".join(LANES))
    ap.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    ap.add_argument("--json", type=Path, default=RESULTS / "cost_budget.json")
    ap.add_argument("--lane", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--svg", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is needed: pip install py-spy (the bench extra has it)")
    if args.lane:
        profiler = _Profiler(spy, args.rate, args.raw, args.svg)
        print(json.dumps(lane(args.lane, args.bootstrap, args.topic, args.records, profiler)))
        return 0

    from benchmarks.broker import BenchKafka
    from benchmarks.plan import Layout

    runs: list[dict[str, Any]] = []
    bad = 0
    with BenchKafka(Layout("single", 1, 6, 1)) as kafka:
        for name in [x for x in args.only.split(",") if x]:
            topic = kafka.fresh_topic(f"budget-{name}")
            raw = RESULTS / f"cost_budget-{name}.txt"
            svg = RESULTS / f"cost_budget-{name}.svg"
            child = subprocess.run(
                [sys.executable, "-m", "benchmarks.cost_budget", "--lane", name,
                 "--bootstrap", kafka.bootstrap_servers, "--topic", topic,
                 "--records", str(args.records), "--rate", str(args.rate), "--raw", str(raw),
                 *(["--svg", str(svg)] if name in FLAME_GRAPHS else [])],
                capture_output=True, text=True, timeout=1800)
            lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
            if child.returncode != 0 or not lines:
                print(child.stdout[-2000:], child.stderr[-2000:], file=sys.stderr)
                return 1
            measured = json.loads(lines[-1])
            expected = (WINDOWS + PROFILED) * args.records + WARMUP
            counted = kafka.count(topic, expected)
            kafka.delete_topic(topic)
            samples = buckets(raw)
            cpu_samples = sum(v for k, v in samples.items() if k not in NOT_COUNTED)
            us = 1e6 * measured["cpu_s"] / args.records
            run = {"lane": name, "records": args.records, "cpu_us_per_record": us,
                   "records_per_s": args.records / measured["wall_s"], "counted": counted,
                   "expected": expected, "failed": measured.get("failed", 0),
                   "samples": samples,
                   "cpu_s_windows": measured["cpu_s_windows"],
                   "budget_us": {k: us * v / cpu_samples for k, v in samples.items()
                                 if k not in NOT_COUNTED}}
            ok = counted == expected and run["failed"] == 0
            bad += not ok
            runs.append(run)
            args.json.write_text(json.dumps(runs, indent=1))
            print(f"{name}: {us:.3f} us CPU/record, {run['records_per_s']:,.0f} rec/s, "
                  f"counted {counted:,}/{expected:,}{'' if ok else '  CHECK FAILED'}")
            for k, v in sorted(run["budget_us"].items(), key=lambda kv: -kv[1]):
                print(f"    {v:6.3f} us  {k}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
