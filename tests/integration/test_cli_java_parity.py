"""``kengine produce`` and ``kengine perf`` against Kafka 4.4's own tools, ConsoleProducer and
ProducerPerformance, run with the very same flags: what one accepts the other accepts, what one
refuses the other refuses, and what they write (read back by confluent-kafka) is the same."""
from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from kengine.localkafka import KafkaCluster
from tests.integration.test_cli import kengine
from tests.support.kafka_tools import run_tool
from tests.support.readback import read_all

JAVA_TOOLS = {"produce": "org.apache.kafka.tools.ConsoleProducer",
              "perf": "org.apache.kafka.tools.ProducerPerformance"}


def java_tool(kafka: KafkaCluster, command: str, *args: str,
              stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return run_tool(kafka, JAVA_TOOLS[command], *args, stdin=stdin)


def both(kafka: KafkaCluster, command: str, args_for: Any, stdin: bytes = b"",
         ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """Runs Java's tool and kengine's with args_for("java") / args_for("kengine")."""
    return (java_tool(kafka, command, *args_for("java"), stdin=stdin),
            kengine(command, *args_for("kengine"), stdin=stdin))


def written(kafka: KafkaCluster, topic: str, n: int) -> Counter[tuple[Any, ...]]:
    return Counter((r.partition, r.key, r.value, tuple(r.headers or ()))
                   for r in read_all(kafka.bootstrap_servers, topic, at_least=n))


LINES = b"".join(b"source:tool-%d\tuser-%d:event %d\n" % (i % 2, i % 5, i) for i in range(30))


@pytest.mark.parametrize("names", ["current", "deprecated"])
def test_produce_takes_the_console_producers_flags(kafka: KafkaCluster, topic_factory: Any,
                                                   tmp_path: Path, names: str) -> None:
    config = tmp_path / "producer.properties"
    config.write_text("acks=1\ncompression.type=lz4\n")
    topics = {tool: topic_factory(kafka, partitions=3) for tool in ("java", "kengine")}
    prop, cfg, reader = (("--command-property", "--command-config", "--reader-property")
                         if names == "current" else
                         ("--producer-property", "--producer.config", "--property"))

    def args(tool: str) -> list[str]:
        return ["--bootstrap-server", kafka.bootstrap_servers, "--topic", topics[tool],
                cfg, str(config), prop, "linger.ms=20", prop, "client.id=parity",
                reader, "parse.key=true", reader, "key.separator=:",
                reader, "parse.headers=true",
                "--line-reader", "org.apache.kafka.tools.LineMessageReader"]

    java, ours = both(kafka, "produce", args, LINES)
    assert java.returncode == 0, java.stderr
    assert ours.returncode == 0, ours.stderr
    assert written(kafka, topics["java"], 30) == written(kafka, topics["kengine"], 30)
    if names == "deprecated":   # both say which name replaces it (Java on stdout)
        for old, new in ((prop, "--command-property"), (cfg, "--command-config"),
                         (reader, "--reader-property")):
            said = f"{old} is deprecated and will be removed in a future version"
            assert said in java.stdout and f"Use {new} instead." in java.stdout, java.stdout
            assert said in ours.stderr and f"Use {new} instead." in ours.stderr, ours.stderr


@pytest.mark.parametrize("pair", [("--command-property", "--producer-property"),
                                  ("--command-config", "--producer.config"),
                                  ("--reader-property", "--property")])
def test_produce_refuses_a_flag_and_its_old_name_together(kafka: KafkaCluster, topic: str,
                                                          tmp_path: Path, pair: Any) -> None:
    config = tmp_path / "p.properties"
    config.write_text("acks=1\n")
    value = {"--command-property": "acks=1", "--producer-property": "acks=1",
             "--command-config": str(config), "--producer.config": str(config),
             "--reader-property": "parse.key=false", "--property": "parse.key=false"}
    args = ["--bootstrap-server", kafka.bootstrap_servers, "--topic", topic,
            pair[0], value[pair[0]], pair[1], value[pair[1]]]
    java, ours = both(kafka, "produce", lambda _: args, b"never sent\n")
    assert java.returncode != 0 and "cannot be specified together" in java.stdout + java.stderr
    assert ours.returncode == 2
    assert ours.stderr.startswith(f"kengine produce: Options {pair[0]} and {pair[1]} cannot "
                                  f"be specified together."), ours.stderr
    assert read_all(kafka.bootstrap_servers, topic) == []


def test_produce_reads_bootstrap_servers_from_its_command_config(
        kafka: KafkaCluster, topic: str, tmp_path: Path) -> None:
    # Java's tool insists on --bootstrap-server; kengine's takes the file's, as perf does
    config = tmp_path / "client.properties"
    config.write_text(f"bootstrap.servers={kafka.bootstrap_servers}\n")
    run = kengine("produce", "--topic", topic, "--command-config", str(config),
                  stdin=b"from the file's address\n")
    assert (run.returncode, run.stderr) == (0, "")
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic, at_least=1)] == [
        b"from the file's address"]


@pytest.mark.parametrize("names", ["current", "deprecated"])
def test_perf_key_distribution_and_flags_write_what_javas_tool_writes(
        kafka: KafkaCluster, topic_factory: Any, tmp_path: Path, names: str) -> None:
    config = tmp_path / "perf.properties"
    config.write_text("linger.ms=10\n")
    topics = {tool: topic_factory(kafka, partitions=4) for tool in ("java", "kengine")}
    prop, cfg = (("--command-property", "--command-config") if names == "current"
                 else ("--producer-props", "--producer.config"))

    def args(tool: str) -> list[str]:
        return ["--topic", topics[tool], "--num-records", "60", "--record-size", "8",
                "--throughput", "-1", "--bootstrap-server", kafka.bootstrap_servers,
                cfg, str(config), prop, "acks=1", "--reporting-interval", "1000",
                "--key-distribution", "range", "--record-key-range", "6",
                "--random-seed", "7"]

    java, ours = both(kafka, "perf", args)
    assert java.returncode == 0, java.stdout + java.stderr
    assert ours.returncode == 0, ours.stderr
    for tool, run in (("java", java), ("kengine", ours)):
        assert "60 records sent" in run.stdout, (tool, run.stdout)
    keyed = {tool: Counter((r.key, r.partition)
                           for r in read_all(kafka.bootstrap_servers, topics[tool], at_least=60))
             for tool in topics}
    # keys "0".."5" in turn, each in the partition Java's partitioner gives it
    assert keyed["kengine"] == keyed["java"] == Counter(
        {(b"%d" % k, p): 10 for (k, p) in ((int(key), part) for key, part in keyed["java"])})
    assert {key for key, _ in keyed["java"]} == {b"%d" % k for k in range(6)}


@pytest.mark.parametrize("refused", [
    ["--reporting-interval", "0"],
    ["--key-distribution", "random"],
    ["--record-key-range", "0", "--key-distribution", "range"],
    ["--command-property", "acks=1", "--producer-props", "acks=1"],
], ids=["interval", "no-key-range", "zero-key-range", "props-twice"])
def test_perf_refuses_what_javas_tool_refuses(kafka: KafkaCluster, refused: list[str]) -> None:
    args = ["--topic", "kengine-never-written", "--num-records", "5", "--record-size", "8",
            "--throughput", "-1", "--bootstrap-server", kafka.bootstrap_servers, *refused]
    java, ours = both(kafka, "perf", lambda _: args)
    assert java.returncode != 0 and "error:" in java.stderr, java.stdout + java.stderr
    assert ours.returncode == 2, ours.stderr
    # the same sentence as Java's (argparse4j wraps its lines), after kengine's prefix
    assert ours.stderr.startswith("kengine perf: "), ours.stderr
    said = " ".join(ours.stderr.removeprefix("kengine perf: ").split())
    javas = " ".join(re.sub(r"-\s*\n\s*", "-", java.stderr).split())
    assert said in javas, (said, java.stderr)
