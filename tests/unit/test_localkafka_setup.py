"""kengine.localkafka without a broker: node configuration, tool discovery, the jar cache
marker, and the Metadata probe's handling of broken answers."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kengine.errors import ConfigError, ProtocolError
from kengine.localkafka import KafkaCluster, Listener, ToolMissingError, distribution
from kengine.localkafka.config import (
    NodeLayout,
    default_broker_config,
    node_properties,
    write_properties,
)
from kengine.localkafka.node import node_still_exiting, pid_is_node
from kengine.localkafka.probe import fetch_metadata


def _layouts(n: int) -> list[NodeLayout]:
    return [NodeLayout(i, "127.0.0.1", {"PLAINTEXT": 9000 + i, "SASL_SSL": 9100 + i,
                                         "CONTROLLER": 9200 + i}, Path(f"/d/{i}"))
            for i in range(1, n + 1)]


def test_node_properties_wire_listeners_controllers_and_overrides() -> None:
    nodes = _layouts(3)
    props = node_properties(
        nodes[1], nodes, [Listener("PLAINTEXT"), Listener("SASL_SSL", "SASL_SSL")],
        inter_broker_listener="PLAINTEXT",
        overrides={"auto.create.topics.enable": False, "num.partitions": 4})
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:9201,2@127.0.0.1:9202,3@127.0.0.1:9203")
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:9002,SASL_SSL://127.0.0.1:9102,CONTROLLER://127.0.0.1:9202")
    # clients are never told about the controller listener
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9002,SASL_SSL://127.0.0.1:9102"
    assert props["listener.security.protocol.map"] == (
        "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT")
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == "/d/2"
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "4"


def test_internal_topics_replicate_as_widely_as_the_cluster_allows() -> None:
    one, five = default_broker_config(1), default_broker_config(5)
    assert (one["offsets.topic.replication.factor"], one["transaction.state.log.min.isr"]) == (1, 1)
    assert five["offsets.topic.replication.factor"] == 3
    assert five["transaction.state.log.min.isr"] == 2
    assert one["auto.create.topics.enable"] is False


def test_properties_file_escapes_java_syntax(tmp_path: Path) -> None:
    path = tmp_path / "server.properties"
    write_properties(path, {"a:b=c": "x\\y", "sasl.jaas.config": " lead"})
    lines = path.read_text().splitlines()
    assert "a\\:b\\=c=x\\\\y" in lines
    assert "sasl.jaas.config=\\ lead" in lines


@pytest.mark.parametrize("listener", [("plaintext", "PLAINTEXT"), ("EXT", "TLS")])
def test_listener_rejects_bad_names_and_protocols(listener: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        Listener(*listener)


def test_cluster_rejects_bad_shapes_before_starting_anything() -> None:
    with pytest.raises(ConfigError, match="brokers"):
        KafkaCluster(0)
    with pytest.raises(ConfigError, match="PLAINTEXT"):
        KafkaCluster(1, listeners=[Listener("SECURE", "SSL")])
    with pytest.raises(ConfigError, match="unique"):
        KafkaCluster(1, listeners=[Listener(), Listener()])


@pytest.fixture
def only_java_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH holding ``java`` and nothing else (no ``mvn``)."""
    java = shutil.which("java")
    assert java, "the unit tests need java on PATH, as the integration tests do"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    return bin_dir


def test_missing_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(ToolMissingError, match="no `java`.*install a JDK 17"):
        distribution.ensure_kafka(tmp_path / "home")


def test_resolved_jars_are_reused_without_maven(tmp_path: Path, only_java_on_path: Path) -> None:
    home = tmp_path / "home"
    (home / "libs").mkdir(parents=True)
    (home / "libs" / f"kafka_2.13-{distribution.KAFKA_VERSION}.jar").write_bytes(b"")
    (home / ".resolved").write_text(distribution._pom_digest() + "\n")
    dist = distribution.ensure_kafka(home)
    assert dist.libs == home / "libs"
    assert dist.classpath == f"{home / 'libs'}{os.sep}*"

    # a cache resolved from another pom is stale: it needs Maven, which is missing here
    (home / ".resolved").write_text("0" * 64 + "\n")
    with pytest.raises(ToolMissingError, match="no `mvn`"):
        distribution.ensure_kafka(home)


def test_kafka_home_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("KENGINE_KAFKA_HOME", str(tmp_path / "k"))
    assert distribution.default_home() == tmp_path / "k"
    monkeypatch.delenv("KENGINE_KAFKA_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert distribution.default_home() == (
        tmp_path / "cache" / "kengine" / f"kafka-{distribution.KAFKA_VERSION}")


@pytest.fixture
def fake_broker() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server on a free port that answers one request with a canned reply, in which
    ``<cid>`` stands for the request's correlation id."""
    replies: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def serve_one() -> None:
        conn, _ = server.accept()
        with conn:
            size = struct.unpack(">i", conn.recv(4))[0]
            request = b""
            while len(request) < size:
                request += conn.recv(size - len(request))
            reply = replies.pop(0).replace(b"<cid>", request[4:8])
            conn.sendall(struct.pack(">i", len(reply)) + reply)

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    yield server.getsockname()[1], replies
    thread.join(30)
    server.close()


def test_probe_rejects_a_reply_to_another_request(fake_broker: tuple[int, list[bytes]]) -> None:
    port, replies = fake_broker
    replies.append(b"\x7f\xff\xff\xff\x00")
    with pytest.raises(ProtocolError, match="correlation"):
        fetch_metadata("127.0.0.1", port)


def test_probe_rejects_a_truncated_reply(fake_broker: tuple[int, list[bytes]]) -> None:
    port, replies = fake_broker
    # header, throttle time, then a broker array announcing two brokers and ending
    replies.append(b"<cid>\x00" + b"\x00\x00\x00\x00" + b"\x03")
    with pytest.raises(ProtocolError, match="truncated"):
        fetch_metadata("127.0.0.1", port)


def test_cluster_ids_never_start_with_a_dash():
    from kengine.localkafka.launcher import _new_cluster_id

    ids = [_new_cluster_id() for _ in range(5000)]   # ~78 would start with '-' by chance
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)


def test_a_node_counts_as_running_until_its_process_is_gone(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    other = tmp_path / "other.properties"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(props)])
    try:
        deadline = time.monotonic() + 10
        while not pid_is_node(proc.pid, props) and time.monotonic() < deadline:
            time.sleep(0.01)   # between fork and exec the child shows the parent's command line
        assert pid_is_node(proc.pid, props) and node_still_exiting(proc.pid, props)
        assert not pid_is_node(proc.pid, other) and not node_still_exiting(proc.pid, other)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)   # reaped: no /proc entry left
        assert not node_still_exiting(proc.pid, props)
    finally:
        proc.kill()
        proc.wait()
