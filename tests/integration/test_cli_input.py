"""``kengine produce --input FILE`` run as a subprocess against a real broker: the rows of
Parquet, Arrow IPC, JSON lines and CSV files are read back by an independent consumer
(confluent-kafka), row by row."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import kengine_ext
from kengine.localkafka import KafkaCluster
from tests.integration.test_cli import kengine
from tests.support.readback import read_all

BASE_MS = 1_700_000_000_000
N = 5000


def table(n: int = N) -> pa.Table:
    return pa.table({
        "id": pa.array(range(n), pa.int64()),
        "user": pa.array([None if i % 9 == 0 else f"u{i % 31}" for i in range(n)]),
        "body": pa.array([None if i % 13 == 0 else f"body {i} " + "x" * (i % 40)
                          for i in range(n)]),
        "source": pa.array([f"s{i % 3}" for i in range(n)]),
        "at": pa.array([(BASE_MS + i) * 1000 for i in range(n)], pa.timestamp("us")),
    })


def write(tmp_path: Path, fmt: str, t: pa.Table) -> Path:
    if fmt == "parquet":
        path = tmp_path / "rows.parquet"
        pq.write_table(t, path, row_group_size=1500)
    elif fmt == "arrow":
        path = tmp_path / "rows.arrow"
        with pa.ipc.new_file(path, t.schema) as w:
            w.write_table(t, max_chunksize=1700)
    elif fmt == "csv":
        path = tmp_path / "rows.csv"
        pcsv.write_csv(t, path)
    else:
        path = tmp_path / "rows.jsonl"
        with open(path, "w") as f:
            for row in t.to_pylist():
                row["at"] = row["at"].isoformat()
                f.write(json.dumps(row) + "\n")
    return path


def produce(kafka: KafkaCluster, topic: str, path: Path, *args: str) -> Any:
    return kengine("produce", "--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
                   "--input", str(path), "--chunk-rows", "1024", *args)


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "jsonl", "csv"])
def test_every_row_of_a_file_arrives_once(kafka: KafkaCluster, topic_factory: Any,
                                          tmp_path: Path, fmt: str) -> None:
    topic = topic_factory(kafka, partitions=4)
    path = write(tmp_path, fmt, table())
    run = produce(kafka, topic, path, "--value-column", "body", "--key-column", "user",
                  "--headers-columns", "id,source",
                  *(["--timestamp-column", "at"] if fmt in ("parquet", "arrow") else []))
    assert run.returncode == 0, run.stderr
    assert f"{N:,} rows read from {path} ({fmt}), {N:,} delivered, 0 failed" in run.stderr
    records = read_all(kafka.bootstrap_servers, topic, at_least=N)
    assert len(records) == N
    seen = set()
    for r in records:
        h = dict(r.headers)
        i = int(h["id"])
        seen.add(i)
        # CSV has no nulls for text: an empty field is an empty string there
        null = b"" if fmt == "csv" else None
        assert r.value == (null if i % 13 == 0 else f"body {i} ".encode() + b"x" * (i % 40))
        assert r.key == (null if i % 9 == 0 else f"u{i % 31}".encode())
        assert h["source"] == f"s{i % 3}".encode()
        if fmt in ("parquet", "arrow"):
            assert r.timestamp_ms == BASE_MS + i
        if r.key:
            assert r.partition == kengine_ext.partition_for_key(r.key, 4)
    assert seen == set(range(N))


def test_rows_as_json_objects_and_a_partition_column(kafka: KafkaCluster, topic_factory: Any,
                                                     tmp_path: Path) -> None:
    topic = topic_factory(kafka, partitions=3)
    t = pa.table({"n": list(range(300)), "name": [f'"q{i}"\\\n' for i in range(300)],
                  "ok": [i % 2 == 0 for i in range(300)],
                  "score": [None if i % 5 == 0 else i / 4 for i in range(300)],
                  "p": pa.array([i % 3 for i in range(300)], pa.int32())})
    path = write(tmp_path, "parquet", t)
    run = produce(kafka, topic, path, "--value-format", "json", "--partition-column", "p")
    assert run.returncode == 0, run.stderr
    records = read_all(kafka.bootstrap_servers, topic, at_least=300)
    rows = {json.loads(r.value)["n"]: (json.loads(r.value), r.partition) for r in records}
    assert sorted(rows) == list(range(300))
    for i, (row, partition) in rows.items():
        assert row == {"n": i, "name": f'"q{i}"\\\n', "ok": i % 2 == 0,
                       "score": None if i % 5 == 0 else i / 4, "p": i % 3}
        assert partition == i % 3


def test_failed_rows_are_named_and_the_exit_status_says_so(kafka: KafkaCluster,
                                                           topic_factory: Any,
                                                           tmp_path: Path) -> None:
    topic = topic_factory(kafka, partitions=2)
    t = pa.table({"v": [b"big" * 400_000 if i in (3, 1500) else b"%d" % i for i in range(2000)]})
    path = write(tmp_path, "parquet", t)
    run = produce(kafka, topic, path, "--value-column", "v")
    assert run.returncode == 1
    # named by their rows in the file (not their index in the chunk sent)
    assert "row 3 to " in run.stderr and "max.request.size" in run.stderr
    assert "row 1500 to " in run.stderr and "record 476" not in run.stderr
    assert "2,000 rows read" in run.stderr and "1,998 delivered, 2 failed" in run.stderr
    records = read_all(kafka.bootstrap_servers, topic, at_least=1998)
    assert sorted(int(r.value) for r in records) == [i for i in range(2000) if i not in (3, 1500)]


def test_usage_errors_say_what_to_do(kafka: KafkaCluster, topic: str, tmp_path: Path) -> None:
    path = write(tmp_path, "parquet", table(10))
    run = produce(kafka, topic, path, "--key-column", "user")
    assert run.returncode == 2 and "exactly one of --value-column" in run.stderr
    run = produce(kafka, topic, path, "--value-column", "nope")
    assert run.returncode == 1 and "no column 'nope' (the value column)" in run.stderr
    odd = tmp_path / "rows.xyz"
    odd.write_bytes(b"")
    run = produce(kafka, topic, odd, "--value-column", "body")
    assert run.returncode == 2 and "give --format" in run.stderr
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"this is not a Parquet file")
    run = produce(kafka, topic, broken, "--value-column", "body")
    assert run.returncode == 1 and f"cannot read {broken} as parquet" in run.stderr
    assert "Traceback" not in run.stderr
    run = kengine("produce", "--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
                  "--value-column", "body", stdin=b"x\n")
    assert run.returncode == 2 and "needs --input FILE" in run.stderr
