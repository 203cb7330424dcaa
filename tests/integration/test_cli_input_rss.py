"""``kengine produce --input`` on a large Parquet file: the command's peak RSS does not grow with
the file, and every row arrives exactly once, checked by an independent consumer (confluent-kafka)
that marks each row's id in a bitmap.

Its size comes from KENGINE_INGEST_ROWS: ``make test`` and CI run 2,000,000 rows (a 212 MB file);
``make ingest-full`` runs the issue's 10,000,000 rows (1.1 GB of values)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from kengine.localkafka import KafkaCluster
from tests.integration.test_cli import ROOT

ROWS = int(os.environ.get("KENGINE_INGEST_ROWS", "2000000"))
VALUE_BYTES = 100
PARTITIONS = 6
ROW_GROUP_ROWS = 50_000
CHUNK_ROWS = 8192
BUFFER_MEMORY = 8 << 20
# The command is run twice with the same settings: on a file of one chunk (its baseline: the
# interpreter, pyarrow, the producer) and on the large file. What the large file may add: the
# records buffer.memory holds (8 MiB), up to 9 chunks awaiting their outcome (9 x 8,192 rows of
# about 115 bytes: 8.5 MB), the reader's buffers and what the allocators keep. Measured here:
# 50-80 MB for files of 42, 106 and 212 MB, idle or with three busy processes beside it. A
# command that held the file would add at least its size; the bound is well below it.
GROWTH_BOUND_MB = 120
def write_file(path: Path, rows: int) -> None:
    """A Parquet file written a row group at a time (the test's memory stays bounded too)."""
    schema = pa.schema([("key", pa.string()), ("value", pa.binary())])
    step = ROW_GROUP_ROWS
    with pq.ParquetWriter(path, schema, compression="none") as w:
        for lo in range(0, rows, step):
            ids = range(lo, min(rows, lo + step))
            w.write_table(pa.table({
                "key": pa.array([str(i % 1000) for i in ids]),
                "value": pa.array([b"%010d" % i + b"v" * (VALUE_BYTES - 10) for i in ids],
                                  pa.binary()),
            }, schema=schema))


def run_measured(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The kengine command in a child that reports its own peak RSS (MB) as its last line."""
    # VmHWM, not getrusage()'s ru_maxrss: Linux carries the parent's peak into a child's
    # ru_maxrss across exec (subprocess forks with vfork), so the child would report pytest's
    # own peak, which grows over a long run (CI read 638 MB for a command that peaks near 200).
    code = ("import sys\n"
            "from kengine.cli.main import main\n"
            "try:\n"
            "    rc = main(sys.argv[1:])\n"
            "finally:\n"
            "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
            "    print(f'peak-rss-mb {int(hwm.split()[1]) / 1024:.1f}', file=sys.stderr)\n"
            "sys.exit(rc)\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=3600, check=False)
    peak = float(proc.stderr.strip().splitlines()[-1].split()[-1])
    return proc, peak


def count_rows(bootstrap: str, topic: str, rows: int, timeout: float = 1200) -> tuple[int, int]:
    """(distinct rows seen, duplicates), every value's id marked in a bitmap; also checks each
    key's partition is Java's murmur2 placement and each value is the row's."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    import kengine_ext

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rss-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "check.crcs": True, "fetch.wait.max.ms": 50})
    seen = bytearray(rows)
    distinct = duplicates = 0
    placement = {str(k).encode(): kengine_ext.partition_for_key(str(k).encode(), PARTITIONS)
                 for k in range(1000)}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < PARTITIONS or distinct + duplicates < rows:
            assert time.monotonic() < deadline, f"read {distinct:,} of {rows:,} rows in time"
            for m in consumer.consume(10_000, 1.0):
                if m.error():
                    if m.error().code() == -191:   # _PARTITION_EOF
                        at_end.add(m.partition())
                        continue
                    raise AssertionError(m.error())
                at_end.discard(m.partition())
                value = m.value()
                i = int(value[:10])
                assert value == b"%010d" % i + b"v" * (VALUE_BYTES - 10)
                assert m.key() == str(i % 1000).encode()
                assert m.partition() == placement[m.key()]
                if seen[i]:
                    duplicates += 1
                else:
                    seen[i] = 1
                    distinct += 1
    finally:
        consumer.close()
    return distinct, duplicates


def test_a_large_file_goes_through_with_bounded_memory(kafka: KafkaCluster, topic_factory: Any,
                                                       tmp_path: Path) -> None:
    small, large = tmp_path / "one-chunk.parquet", tmp_path / "large.parquet"
    write_file(small, CHUNK_ROWS)
    write_file(large, ROWS)
    file_mb = large.stat().st_size / 1e6
    assert file_mb > 1.5 * GROWTH_BOUND_MB, (
        f"KENGINE_INGEST_ROWS={ROWS:,} makes a {file_mb:.0f} MB file: too small to tell a command "
        f"that holds it from one that does not (the bound is {GROWTH_BOUND_MB} MB)")
    # each run its own topic: the rows of both files have ids from 0
    topics = [topic_factory(kafka, partitions=PARTITIONS) for _ in range(2)]
    try:
        peaks_mb = []
        for path, rows, topic in ((small, CHUNK_ROWS, topics[0]), (large, ROWS, topics[1])):
            run, peak_mb = run_measured(
                "produce", "--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
                "--input", str(path), "--value-column", "value", "--key-column", "key",
                "--chunk-rows", str(CHUNK_ROWS), "--command-property", "acks=all",
                "--command-property", f"buffer.memory={BUFFER_MEMORY}",
                "--progress-interval", "5")
            assert run.returncode == 0, run.stderr[-3000:]
            assert f"{rows:,} rows read" in run.stderr and f"{rows:,} delivered, 0 failed" \
                in run.stderr
            peaks_mb.append(peak_mb)
        growth_mb = peaks_mb[1] - peaks_mb[0]
        print(f"{ROWS:,} rows, file {file_mb:,.0f} MB, peak RSS {peaks_mb[1]:,.0f} MB, "
              f"{growth_mb:,.0f} MB over the one-chunk run; {run.stderr.strip().splitlines()[-2]}")
        assert growth_mb < GROWTH_BOUND_MB, (
            f"peak RSS {peaks_mb[1]:.0f} MB for a {file_mb:.0f} MB file, {growth_mb:.0f} MB over "
            f"the one-chunk run's {peaks_mb[0]:.0f} MB")
        assert count_rows(kafka.bootstrap_servers, topics[1], ROWS) == (ROWS, 0)
    finally:
        for topic in topics:
            kafka.delete_topic(topic)
