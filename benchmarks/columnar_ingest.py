"""Columnar ingest side by side (issue 18): the same Arrow table sent by kengine's
``send_arrow()``, by kengine's ``send_many()`` from the table's ``to_pylist()`` columns (as
users do without send_arrow), and by confluent-kafka's ``produce()`` loop over those lists; and
a Parquet file of the same rows through ``kengine produce --input``. One broker, one topic of 6
partitions per run, acks=all, idempotence on, linger 5 ms, 64 KiB batches, lz4 off and on, in
interleaved rounds.

    python -m benchmarks.columnar_ingest [--rows 2000000] [--rounds 2] [--only LANE,...]

Rows: a 100-byte value (the row's id, then padding) and a key ``str(i % 1000)``, built as a
pyarrow table before the measured window. Each lane runs in a process of its own; its CPU time
is user + system of every thread (getrusage), from the first send to the last acknowledgement
(``flush()``), the ``to_pylist()`` conversion included for the lanes that need it (and reported
on its own). The file lane's figures are the whole command's (start-up and Parquet decoding
included), measured from outside it; the broker JVM's CPU over the same window is read from
/proc, to show which side is the bottleneck. Every run's topic is counted by confluent-kafka
(the partitions' end offsets must sum to the rows sent, warm-up included) and 50 records of
every partition are consumed and checked (value of its key's row, key on Java's murmur2
partition) before the topic is deleted; a run that fails a check fails the command.
"""
from __future__ import annotations

import argparse
import json
import os
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
VALUE_BYTES = 100
SAMPLE_PER_PARTITION = 50

LANES = ["kengine-send_arrow", "kengine-send_many", "confluent-produce", "kengine-produce-input"]
CODECS = ["none", "lz4"]
ROOT = Path(__file__).resolve().parents[1]


def _table(first: int, n: int) -> Any:
    import pyarrow as pa

    return pa.table({
        "key": pa.array([str(i % KEYS) for i in range(first, first + n)], pa.string()),
        "value": pa.array([b"%010d" % i + b"v" * (VALUE_BYTES - 10)
                           for i in range(first, first + n)], pa.binary()),
    })


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# ---------------------------------------------------------------------- lanes (child process)

def _kengine(bootstrap: str, topic: str, n: int, codec: str, arrow: bool) -> dict[str, Any]:
    from kengine import Producer

    table = _table(0, n)
    warm = _table(n, WARMUP)
    with Producer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                  linger_ms=LINGER_MS, batch_size=BATCH_BYTES, compression_type=codec) as p:
        if arrow:
            p.send_arrow(topic, warm, value="value", key="key")
        else:
            p.send_many(topic, warm.column("value").to_pylist(),
                        keys=warm.column("key").to_pylist())
        p.flush()
        cpu, t0 = _cpu_s(), time.perf_counter()
        convert = 0.0
        if arrow:
            bulk = p.send_arrow(topic, table, value="value", key="key")
        else:
            values = table.column("value").to_pylist()
            keys = table.column("key").to_pylist()
            convert = _cpu_s() - cpu
            bulk = p.send_many(topic, values, keys=keys)
        p.flush()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
        failed = bulk.result(0).failed_count
    return {"wall_s": wall, "cpu_s": cpu, "convert_cpu_s": convert, "failed": failed}


def _confluent(bootstrap: str, topic: str, n: int, codec: str) -> dict[str, Any]:
    from confluent_kafka import KafkaException
    from confluent_kafka import Producer as ConfluentProducer

    table = _table(0, n)
    warm = _table(n, WARMUP)
    failed = 0

    def on_error(err: Any, msg: Any) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    p = ConfluentProducer({"bootstrap.servers": bootstrap, "acks": "all",
                           "enable.idempotence": True, "linger.ms": LINGER_MS,
                           "batch.size": BATCH_BYTES, "compression.type": codec,
                           # Java's placement, as kengine's (librdkafka's default differs)
                           "partitioner": "murmur2_random",
                           "queue.buffering.max.messages": 1_000_000})

    def produce_all(values: list[bytes], keys: list[str]) -> None:
        produce, poll = p.produce, p.poll
        for v, k in zip(values, keys, strict=True):
            while True:
                try:
                    produce(topic, v, k, on_delivery=on_error)
                    break
                except BufferError:
                    poll(0.005)

    produce_all(warm.column("value").to_pylist(), warm.column("key").to_pylist())
    p.flush()
    cpu, t0 = _cpu_s(), time.perf_counter()
    values = table.column("value").to_pylist()
    keys = table.column("key").to_pylist()
    convert = _cpu_s() - cpu
    produce_all(values, keys)
    if p.flush(600) != 0:
        raise KafkaException("confluent-kafka did not flush within 600 s")
    wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "convert_cpu_s": convert, "failed": failed}


def run_lane(lane: str, bootstrap: str, topic: str, n: int, codec: str) -> dict[str, Any]:
    if lane == "kengine-send_arrow":
        return _kengine(bootstrap, topic, n, codec, arrow=True)
    if lane == "kengine-send_many":
        return _kengine(bootstrap, topic, n, codec, arrow=False)
    if lane == "confluent-produce":
        return _confluent(bootstrap, topic, n, codec)
    raise SystemExit(f"unknown lane {lane!r}; lanes: {', '.join(LANES)}")


def json_rows_figures(n: int) -> dict[str, float]:
    """CPU µs per row of building JSON-object values from 5 columns: kengine.arrow_json's
    column-at-a-time rendering against a Python loop (to_pylist() + json.dumps per row), both
    checked to give the same objects. No broker: the serialisation alone."""
    import pyarrow as pa

    from kengine.arrow_json import json_rows

    t = pa.table({"id": pa.array(range(n), pa.int64()),
                  "user": pa.array([f"user-{i % 997}" for i in range(n)]),
                  "score": pa.array([i / 7 for i in range(n)], pa.float64()),
                  "ok": pa.array([i % 2 == 0 for i in range(n)]),
                  "note": pa.array([None if i % 5 == 0 else f'says "hi" {i}' for i in range(n)])})
    json_rows(t.slice(0, 1000))   # warm-up: pyarrow loads its compute kernels on first use
    cpu = _cpu_s()
    fast = json_rows(t)
    fast_s = _cpu_s() - cpu
    cpu = _cpu_s()
    slow = [json.dumps(r, ensure_ascii=False, separators=(",", ":")).encode()
            for r in t.to_pylist()]
    slow_s = _cpu_s() - cpu
    for i in range(0, n, max(1, n // 1000)):   # the same objects
        assert json.loads(fast[i].as_py()) == json.loads(slow[i]), i
    return {"json_rows_us_per_row": 1e6 * fast_s / n, "python_loop_us_per_row": 1e6 * slow_s / n}


# ---------------------------------------------------------------------- the run (parent)

def _file_lane(bootstrap: str, topic: str, path: Path, n: int, codec: str) -> dict[str, Any]:
    """kengine produce --input, measured from outside (the whole command)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "kengine", "produce", "--bootstrap-server", bootstrap,
         "--topic", topic, "--input", str(path), "--value-column", "value",
         "--key-column", "key", "--timeout", str(LINGER_MS), "--batch-size", str(BATCH_BYTES),
         "--compression-codec", codec, "--command-property", "enable.idempotence=true",
         "--request-required-acks", "all"],
        capture_output=True, text=True, timeout=3600, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        raise RuntimeError(child.stderr[-3000:])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "convert_cpu_s": 0.0, "failed": 0,
            "summary": child.stderr.strip().splitlines()[-1]}


def _check(cluster: Any, topic: str, expected: int) -> tuple[int, list[str]]:
    """(records counted by end offsets, problems in a sample of every partition)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from kengine_ext import partition_for_key

    consumer = Consumer({"bootstrap.servers": cluster.bootstrap_servers,
                         "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    problems: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            total = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10,
                                                       cached=False)[1]
                        for p in range(PARTITIONS))
            if total >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        seen = dict.fromkeys(range(PARTITIONS), 0)
        deadline = time.monotonic() + 30
        while min(seen.values()) < SAMPLE_PER_PARTITION and time.monotonic() < deadline:
            for m in consumer.consume(1000, 0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        problems.append(str(m.error()))
                    continue
                i = int(m.value()[:10])
                if m.value() != b"%010d" % i + b"v" * (VALUE_BYTES - 10) \
                        or m.key() != str(i % KEYS).encode() \
                        or m.partition() != partition_for_key(m.key(), PARTITIONS):
                    problems.append(f"partition {m.partition()} offset {m.offset()}: "
                                    f"{m.key()!r} / {m.value()[:12]!r}")
                seen[m.partition()] += 1
        short = [p for p, c in seen.items() if c < SAMPLE_PER_PARTITION]
        if short:
            problems.append(f"partitions {short} gave fewer than {SAMPLE_PER_PARTITION} records")
    finally:
        consumer.close()
    return total, problems[:10]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.columnar_ingest",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", default=",".join(LANES))
    ap.add_argument("--codecs", default=",".join(CODECS))
    ap.add_argument("--json", type=Path, help="write every run here")
    ap.add_argument("--json-rows", type=int, default=1_000_000, metavar="N",
                    help="rows of the JSON-values measurement (0: skip it)")
    ap.add_argument("--lane", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    ap.add_argument("--codec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lane:   # child process: one run, its result as the last line
        print(json.dumps(run_lane(args.lane, args.bootstrap, args.topic, args.rows,
                                  args.codec)))
        return 0

    import pyarrow.parquet as pq

    from benchmarks.broker import BROKER_CONFIG, process_cpu_s, wait_topic_files_gone
    from kengine.localkafka import KafkaCluster

    if args.json_rows:
        figures = json_rows_figures(args.json_rows)
        print(f"JSON values from 5 columns, {args.json_rows:,} rows: kengine.arrow_json."
              f"json_rows() {figures['json_rows_us_per_row']:.3f} us CPU/row, Python loop "
              f"(to_pylist + json.dumps) {figures['python_loop_us_per_row']:.3f} us CPU/row",
              flush=True)
    lanes = [lane for lane in args.only.split(",") if lane]
    codecs = [c for c in args.codecs.split(",") if c]
    runs: list[dict[str, Any]] = []
    bad = 0
    with tempfile.TemporaryDirectory(prefix="kengine-columnar-bench-") as work, \
            KafkaCluster(1, Path(work) / "kafka", broker_config=BROKER_CONFIG) as cluster:
        parquet = Path(work) / "rows.parquet"
        if "kengine-produce-input" in lanes:
            pq.write_table(_table(0, args.rows + WARMUP), parquet, compression="none",
                           row_group_size=250_000)
        (broker_pid,) = cluster.pids().values()
        for round_index in range(args.rounds):
            for codec in codecs:
                for lane in lanes:
                    topic = f"columnar-bench-{uuid.uuid4().hex[:8]}"
                    cluster.create_topic(topic, PARTITIONS)
                    try:
                        broker_cpu = process_cpu_s(broker_pid)
                        if lane == "kengine-produce-input":
                            result = _file_lane(cluster.bootstrap_servers, topic, parquet,
                                                args.rows, codec)
                        else:
                            child = subprocess.run(
                                [sys.executable, "-m", "benchmarks.columnar_ingest", "--lane",
                                 lane, "--bootstrap", cluster.bootstrap_servers, "--topic",
                                 topic, "--rows", str(args.rows), "--codec", codec],
                                capture_output=True, text=True, timeout=3600, cwd=ROOT)
                            if child.returncode != 0:
                                print(child.stderr[-3000:], file=sys.stderr)
                                bad += 1
                                continue
                            result = json.loads(child.stdout.strip().splitlines()[-1])
                        # the broker's CPU over the run (its window includes the lane's set-up)
                        result["broker_cpu_s"] = process_cpu_s(broker_pid) - broker_cpu
                        expected = args.rows + WARMUP
                        counted, problems = _check(cluster, topic, expected)
                    finally:
                        # the next run starts once the broker has removed this run's files
                        cluster.delete_topic(topic)
                        wait_topic_files_gone(cluster, [topic])
                    result.update(lane=lane, codec=codec, round=round_index + 1,
                                  rows=args.rows, counted=counted, problems=problems,
                                  records_per_s=args.rows / result["wall_s"],
                                  cpu_us_per_record=1e6 * result["cpu_s"] / args.rows,
                                  convert_us_per_record=1e6 * result["convert_cpu_s"]
                                  / args.rows)
                    ok = counted == expected and not problems and result["failed"] == 0
                    result["ok"] = ok
                    bad += not ok
                    runs.append(result)
                    if args.json is not None:
                        args.json.write_text(json.dumps(runs, indent=1))
                    print(f"round {round_index + 1} {codec} {lane}: "
                          f"{result['records_per_s']:,.0f} rec/s, "
                          f"{result['cpu_us_per_record']:.3f} us CPU/rec (to_pylist "
                          f"{result['convert_us_per_record']:.3f}), broker "
                          f"{1e6 * result['broker_cpu_s'] / args.rows:.3f} us CPU/rec over "
                          f"{result['wall_s']:.1f} s, counted {counted:,}/{expected:,}"
                          f"{'' if ok else '  CHECK FAILED ' + str(problems)}", flush=True)
    print()
    print(table(runs))
    return 1 if bad else 0


def table(runs: list[dict[str, Any]]) -> str:
    def med(lane: str, codec: str, key: str) -> float:
        vals = [r[key] for r in runs if r["lane"] == lane and r["codec"] == codec]
        return statistics.median(vals) if vals else float("nan")

    rows = ["| compression | client | records/s | client CPU µs/record (to_pylist part) | "
            "broker CPU µs/record | broker cores busy | runs counted exactly |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for codec in dict.fromkeys(r["codec"] for r in runs):
        for lane in dict.fromkeys(r["lane"] for r in runs):
            mine = [r for r in runs if r["lane"] == lane and r["codec"] == codec]
            if not mine:
                continue
            busy = statistics.median(r["broker_cpu_s"] / r["wall_s"] for r in mine)
            rows.append(
                f"| {codec} | {lane} | {med(lane, codec, 'records_per_s'):,.0f} | "
                f"{med(lane, codec, 'cpu_us_per_record'):.3f} "
                f"({med(lane, codec, 'convert_us_per_record'):.3f}) | "
                f"{1e6 * med(lane, codec, 'broker_cpu_s') / mine[0]['rows']:.3f} | "
                f"{busy:.2f} | {sum(r['ok'] for r in mine)}/{len(mine)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
