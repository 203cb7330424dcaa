"""The kengine command run as a subprocess against a real broker; what it wrote is read back
by an independent consumer (confluent-kafka)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import kengine_ext
from kengine.localkafka import KafkaCluster
from tests.support.readback import read_all

ROOT = Path(__file__).resolve().parents[2]

TOTAL_LINE = re.compile(
    r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), (NaN|[\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.$",
    re.MULTILINE)
WINDOW_LINE = re.compile(r"^\d+ records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms "
                         r"avg latency, [\d.]+ ms max latency\.$", re.MULTILINE)


def kengine(*args: str, stdin: bytes = b"",
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "kengine", *args], input=stdin, check=False,
                          capture_output=True, timeout=timeout, cwd=ROOT, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(),
                                       proc.stderr.decode())


def produce(kafka: KafkaCluster, topic: str, stdin: bytes,
            *args: str) -> subprocess.CompletedProcess[str]:
    return kengine("produce", "--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
                   "--timeout", "5", *args, stdin=stdin)


def reader_properties(*assignments: str) -> list[str]:
    return [arg for a in assignments for arg in ("--reader-property", a)]


# -- produce ----------------------------------------------------------------------------------

def test_produce_keyed_lines_as_in_kafkas_quick_start(kafka: KafkaCluster,
                                                      topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=3)
    lines = b"".join(b"user-%d:event %d\n" % (i % 7, i) for i in range(200))
    run = produce(kafka, topic, lines, "--reader-property", "parse.key=true",
                  "--reader-property", "key.separator=:")
    assert (run.returncode, run.stderr) == (0, "")
    records = read_all(kafka.bootstrap_servers, topic, at_least=200)
    assert sorted((r.key, r.value) for r in records) == sorted(
        (b"user-%d" % (i % 7), b"event %d" % i) for i in range(200))
    for r in records:
        assert r.partition == kengine_ext.partition_for_key(r.key, 3)
    by_key: dict[bytes, list[int]] = {}
    for r in records:
        by_key.setdefault(r.key, []).append(int(r.value.split()[1]))
    assert all(v == sorted(v) for v in by_key.values())    # line order kept per key


def test_produce_headers_custom_separators_null_marker_and_crlf(kafka: KafkaCluster,
                                                                topic: str) -> None:
    stdin = (b"trace=1;src=web|k1|v1\r\n"
             b"trace=2;src=NIL|NIL|v2\n"
             b"NIL|k3|NIL\n"
             b"|k4|plain")           # no final newline
    run = produce(kafka, topic, stdin, "--sync",
                  *reader_properties("parse.key=true", "parse.headers=true", "key.separator=|",
                                     "headers.delimiter=|", "headers.separator=;",
                                     "headers.key.separator==", "null.marker=NIL",
                                     "ignore.error=true"))
    assert run.returncode == 0, run.stderr
    got = [(r.key, r.value, r.headers) for r in read_all(kafka.bootstrap_servers, topic)]
    assert got == [
        (b"k1", b"v1", [("trace", b"1"), ("src", b"web")]),
        (None, b"v2", [("trace", b"2"), ("src", None)]),
        (b"k3", None, []),
        (b"k4", b"plain", [("", None)]),   # ignore.error: an empty pair is a key with no value
    ]


def test_a_bad_line_stops_the_run_with_its_line_number(kafka: KafkaCluster, topic: str) -> None:
    run = produce(kafka, topic, b"a:1\nb:2\nno separator\nd:4\n",
                  "--reader-property", "parse.key=true", "--reader-property", "key.separator=:")
    assert run.returncode == 1
    assert "line 3: no key separator found in 'no separator'" in run.stderr
    assert [(r.key, r.value) for r in read_all(kafka.bootstrap_servers, topic)] == [
        (b"a", b"1"), (b"b", b"2")]


def test_skip_bad_lines_goes_on_but_still_exits_1(kafka: KafkaCluster, topic: str) -> None:
    run = produce(kafka, topic, b"a:1\nbad\nc:3\nworse\n", "--skip-bad-lines",
                  "--reader-property", "parse.key=true", "--reader-property", "key.separator=:")
    assert run.returncode == 1
    assert "line 2:" in run.stderr and "line 4:" in run.stderr
    assert [(r.key, r.value) for r in read_all(kafka.bootstrap_servers, topic)] == [
        (b"a", b"1"), (b"c", b"3")]


def test_records_the_broker_rejects_make_the_exit_status_1(kafka: KafkaCluster,
                                                           topic_factory: Any) -> None:
    # a compacted topic refuses records without a key (and the whole batch holding one:
    # --sync sends one record per batch)
    topic = topic_factory(kafka, config={"cleanup.policy": "compact"})
    run = produce(kafka, topic, b"k:keyed\nunkeyed line\n", "--sync",
                  "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                  "--reader-property", "ignore.error=true")
    assert run.returncode == 1
    assert "line 2: delivery failed" in run.stderr and "INVALID_RECORD" in run.stderr
    assert "1 of 2 record(s) failed" in run.stderr
    assert [(r.key, r.value) for r in read_all(kafka.bootstrap_servers, topic)] == [
        (b"k", b"keyed")]


def test_each_failed_line_is_reported_once_with_its_own_reason(kafka: KafkaCluster,
                                                              topic_factory: Any) -> None:
    # one batch of three records; the broker names the two without a key (KIP-467) and
    # refuses the whole batch
    topic = topic_factory(kafka, config={"cleanup.policy": "compact"})
    run = produce(kafka, topic, b"k:keyed\nfirst unkeyed\nsecond unkeyed\n",
                  "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
                  "--reader-property", "ignore.error=true")
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    reports = {n: [m for m in lines if m.startswith(f"kengine produce: line {n}: ")]
               for n in (1, 2, 3)}
    assert all(len(r) == 1 for r in reports.values()), run.stderr
    assert "2 other record(s) of it were invalid (batch index(es) 1, 2)" in reports[1][0]
    for n in (2, 3):
        assert "Compacted topic cannot accept message without key" in reports[n][0]
        assert "RecordError(" not in reports[n][0]     # its own reason, not the broker's list
    assert lines[-1] == "kengine produce: 3 of 3 record(s) failed", run.stderr
    assert len(lines) == 4, run.stderr     # no log line, no repeat of the first failure
    assert read_all(kafka.bootstrap_servers, topic) == []


def test_a_record_too_large_is_reported_and_the_rest_delivered(kafka: KafkaCluster,
                                                               topic: str) -> None:
    stdin = b"small\n" + b"x" * 5000 + b"\nsmall again\n"
    run = produce(kafka, topic, stdin, "--command-property", "max.request.size=2000")
    assert run.returncode == 1
    assert "line 2:" in run.stderr and "max.request.size" in run.stderr
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == [
        b"small", b"small again"]


def test_producer_config_file_and_unknown_settings(kafka: KafkaCluster, topic: str,
                                                   tmp_path: Path) -> None:
    config = tmp_path / "producer.properties"
    config.write_text("compression.type=zstd\nacks=all\n"
                      "value.serializer=org.apache.kafka.common.serialization.ByteArraySerializer\n")
    run = produce(kafka, topic, b"one\ntwo\n", "--command-config", str(config))
    assert run.returncode == 0, run.stderr
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == [b"one", b"two"]
    run = produce(kafka, topic, b"x\n", "--command-property", "lingerms=5")
    assert run.returncode == 1 and ("unknown setting 'lingerms'; did you mean 'linger.ms'?"
                                     in run.stderr)


# -- perf -------------------------------------------------------------------------------------

def test_perf_prints_javas_summary_and_writes_every_record(kafka: KafkaCluster,
                                                           topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=3)
    run = kengine("perf", "--topic", topic, "--num-records", "20000", "--record-size", "100",
                  "--throughput", "-1", "--command-property",
                  f"bootstrap.servers={kafka.bootstrap_servers}", "acks=1", "linger.ms=5")
    assert run.returncode == 0, run.stderr
    (total,) = TOTAL_LINE.findall(run.stdout)
    assert int(total[0]) == 20000
    p50, p95, p99, p999 = map(int, total[5:9])
    assert p50 <= p95 <= p99 <= p999 <= float(total[4])
    records = read_all(kafka.bootstrap_servers, topic, at_least=20000)
    assert len(records) == 20000
    assert {len(r.value) for r in records} == {100}
    assert set(b"".join(r.value for r in records[:100])) <= set(range(65, 91))


def test_perf_bulk_json_and_metrics(kafka: KafkaCluster, topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=2)
    run = kengine("perf", "--topic", topic, "--num-records", "30000", "--payload-monotonic",
                  "--throughput", "-1", "--bootstrap-server", kafka.bootstrap_servers,
                  "--bulk", "--bulk-size", "700", "--json", "--print-metrics",
                  "--warmup-records", "1000")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["records"] == 30000 and out["failed"] == 0
    assert out["steady_state_summary"]["records"] == 29000
    assert out["p50_ms"] <= out["p99_ms"] <= out["max_latency_ms"]
    assert out["metrics"]["record-send-total"] == 30000
    assert out["metrics"]["topics"][topic]["record-send-total"] == 30000
    values = sorted(int(r.value) for r in read_all(kafka.bootstrap_servers, topic,
                                                   at_least=30000))
    assert values == list(range(30000))


def test_perf_payload_file_print_metrics_and_a_window_line(kafka: KafkaCluster,
                                                           topic: str, tmp_path: Path) -> None:
    payloads = tmp_path / "payloads.txt"
    payloads.write_text("alpha\nbeta\ngamma\n")
    # 12,000 records at 2,000/s: over five seconds, so at least one window line
    run = kengine("perf", "--topic", topic, "--num-records", "12000", "--payload-file",
                  str(payloads), "--throughput", "2000", "--print-metrics",
                  "--command-property", f"bootstrap.servers={kafka.bootstrap_servers}",
                  "client.id=perf-test-client")
    assert run.returncode == 0, run.stderr
    assert "Number of messages read: 3" in run.stdout
    assert WINDOW_LINE.search(run.stdout)
    assert int(TOTAL_LINE.search(run.stdout).group(1)) == 12000
    assert re.search(r"^producer-metrics:record-send-total:\{client-id=perf-test-client\} +: "
                     r"12000\.000$", run.stdout, re.MULTILINE)
    values = [r.value for r in read_all(kafka.bootstrap_servers, topic, at_least=12000)]
    assert len(values) == 12000 and set(values) == {b"alpha", b"beta", b"gamma"}


def test_perf_reports_failed_records_with_exit_status_1(kafka: KafkaCluster,
                                                        topic_factory: Any) -> None:
    topic = topic_factory(kafka, config={"cleanup.policy": "compact"})
    run = kengine("perf", "--topic", topic, "--num-records", "50", "--record-size", "10",
                  "--throughput", "-1", "--bootstrap-server", kafka.bootstrap_servers)
    assert run.returncode == 1
    assert "INVALID_RECORD" in run.stderr and "50 of 50 records failed" in run.stderr
    assert TOTAL_LINE.search(run.stdout).group(1) == "0"


@pytest.mark.parametrize("mode", [[], ["--bulk", "--bulk-size", "7"]], ids=["send", "bulk"])
def test_perf_that_stops_on_an_error_counts_the_unsent_records_and_exits_1(
        kafka: KafkaCluster, mode: list[str]) -> None:
    # auto-creation is off on the test brokers: the first send waits max.block.ms for a
    # topic that never appears, and the run stops there with nothing sent
    run = kengine("perf", "--topic", "kengine-no-such-topic", "--num-records", "40",
                  "--record-size", "10", "--throughput", "-1", "--json",
                  "--bootstrap-server", kafka.bootstrap_servers,
                  "--command-property", "max.block.ms=1500", *mode)
    assert run.returncode == 1, run.stderr
    summary = json.loads(run.stdout)
    assert summary["failed"] == 40 and summary["records"] == 0
    assert "kengine-no-such-topic" in summary["error"]
    assert "kengine perf: 40 of 40 records failed" in run.stderr
    assert "kengine perf: stopped:" in run.stderr


def test_perf_in_transactions_commits_every_record(kafka: KafkaCluster,
                                                   topic_factory: Any) -> None:
    """Java's --transactional-id and --transaction-duration-ms: a commit each time a
    transaction is that old, and a last one at the end; read_committed sees every record."""
    topic = topic_factory(kafka, partitions=3)
    run = kengine("perf", "--topic", topic, "--num-records", "6000", "--payload-monotonic",
                  "--throughput", "3000", "--bootstrap-server", kafka.bootstrap_servers,
                  "--transactional-id", f"perf-{topic}", "--transaction-duration-ms", "200")
    assert run.returncode == 0, run.stderr
    (committed,) = re.findall(r"^(\d+) transactions committed\.$", run.stdout, re.MULTILINE)
    # about 2 s of records at 3,000/s: a commit every 200 ms or so (each commit also waits for
    # its records' acknowledgements), and one at the end
    assert 3 <= int(committed) <= 15
    values = sorted(int(r.value) for r in read_all(kafka.bootstrap_servers, topic,
                                                   read_committed=True, at_least=6000))
    assert values == list(range(6000))


def test_perf_bulk_transactional_id_from_producer_props(kafka: KafkaCluster,
                                                       topic_factory: Any) -> None:
    topic = topic_factory(kafka, partitions=2)
    run = kengine("perf", "--topic", topic, "--num-records", "5000", "--payload-monotonic",
                  "--throughput", "2500", "--bulk", "--bulk-size", "500", "--json",
                  "--transaction-duration-ms", "500", "--command-property",
                  f"bootstrap.servers={kafka.bootstrap_servers}",
                  f"transactional.id=perf-bulk-{topic}")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    # 2 s of send_many() calls of 50 records (throttled), a commit every 500 ms or so
    assert out["records"] == 5000 and out["failed"] == 0
    assert 2 <= out["transactions_committed"] <= 6
    values = sorted(int(r.value) for r in read_all(kafka.bootstrap_servers, topic,
                                                   read_committed=True, at_least=5000))
    assert values == list(range(5000))


# -- topics and local-kafka -------------------------------------------------------------------

def test_topics_create_describe_list(kafka: KafkaCluster, topic_factory: Any) -> None:
    name = topic_factory(kafka) + "-cli"
    boot = ("--bootstrap-server", kafka.bootstrap_servers)
    run = kengine("topics", "create", *boot, "--topic", name, "--partitions", "4",
                  "--config", "retention.ms=3600000")
    assert (run.returncode, run.stdout) == (0, f"Created topic {name}.\n")
    again = kengine("topics", "create", *boot, "--topic", name)
    assert again.returncode == 1 and "TOPIC_ALREADY_EXISTS" in again.stderr
    assert kengine("topics", "create", *boot, "--topic", name, "--if-not-exists").returncode == 0
    described = kengine("topics", "describe", *boot, "--topic", name)
    assert described.returncode == 0
    lines = described.stdout.splitlines()
    assert re.match(rf"^Topic: {re.escape(name)}\tTopicId: [A-Za-z0-9_-]{{22}}\t"
                    r"PartitionCount: 4\tReplicationFactor: 1$", lines[0])
    assert lines[1:] == [f"\tTopic: {name}\tPartition: {p}\tLeader: 1\tReplicas: 1\tIsr: 1"
                         for p in range(4)]
    assert [p.partition for p in kafka.topic(name).partitions] == [0, 1, 2, 3]
    listed = kengine("topics", "list", *boot)
    assert listed.returncode == 0 and name in listed.stdout.splitlines()
    missing = kengine("topics", "describe", *boot, "--topic", name + "-missing")
    assert missing.returncode == 1 and "UNKNOWN_TOPIC_OR_PARTITION" in missing.stderr


def test_local_kafka_status_of_a_running_cluster(kafka: KafkaCluster) -> None:
    run = kengine("local-kafka", "status", "--workdir", str(kafka.workdir))
    assert run.returncode == 0, run.stderr
    assert f"bootstrap {kafka.bootstrap_servers}" in run.stdout
    assert "running" in run.stdout
