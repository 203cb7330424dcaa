"""The network-fault harness without a broker: proxied listeners in server.properties, the
Toxiproxy server (started, driven through its API, killed by pid), the ledger's verdicts and the
soak's growth test."""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from kengine.errors import ConfigError, KafkaTimeoutError
from kengine.localkafka import KafkaCluster, Listener, Toxiproxy, ToxiproxyError
from kengine.localkafka.config import (
    NodeLayout,
    advertised_port_name,
    node_properties,
    zookeeper_broker_properties,
)
from tests.support.ledger import Ledger, value_for
from tests.support.tools import load_tool


def test_a_proxied_listener_is_bound_on_one_port_and_advertised_on_another() -> None:
    ports = {"PLAINTEXT": 9001, "CLIENT": 9101, advertised_port_name("CLIENT"): 9301,
             "CONTROLLER": 9201}
    node = NodeLayout(1, "127.0.0.1", ports, Path("/d/1"))
    props = node_properties(node, [node], [Listener(), Listener("CLIENT", proxied=True)],
                            inter_broker_listener="PLAINTEXT")
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9001,CLIENT://127.0.0.1:9101,"
                                  "CONTROLLER://127.0.0.1:9201")
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9001,CLIENT://127.0.0.1:9301"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert node.address("CLIENT") == "127.0.0.1:9301"
    assert node.bind_address("CLIENT") == "127.0.0.1:9101"


def test_a_zookeeper_mode_broker_advertises_the_proxy_too() -> None:
    ports = {"PLAINTEXT": 9001, "CLIENT": 9101, advertised_port_name("CLIENT"): 9301}
    node = NodeLayout(1, "127.0.0.1", ports, Path("/d/1"))
    props = zookeeper_broker_properties(node, [Listener(), Listener("CLIENT", proxied=True)],
                                        zookeeper_connect="127.0.0.1:2181",
                                        inter_broker_listener="PLAINTEXT")
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9001,CLIENT://127.0.0.1:9101"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9001,CLIENT://127.0.0.1:9301"


def test_replication_never_goes_through_a_proxy() -> None:
    with pytest.raises(ConfigError, match="replication"):
        KafkaCluster(1, listeners=[Listener("CLIENT", proxied=True), Listener()])
    with pytest.raises(ConfigError, match="without a proxy"):
        KafkaCluster(1, listeners=[Listener("SECURE", "SSL"),
                                   Listener("PLAINTEXT", proxied=True)])


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_toxiproxy_forwards_injects_faults_and_dies_by_pid(tmp_path: Path) -> None:
    server, _ = _echo_server()
    upstream = f"127.0.0.1:{server.getsockname()[1]}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        listen = f"127.0.0.1:{s.getsockname()[1]}"
    with Toxiproxy(workdir=tmp_path) as toxi:
        pid = toxi.pid
        proxy = toxi.create("echo", listen, upstream)
        host, _, port = listen.rpartition(":")
        with socket.create_connection((host, int(port)), timeout=5) as c:
            c.sendall(b"hello")
            assert c.recv(5) == b"hello"
        # a black hole: bytes vanish, nothing is reset
        proxy.add_toxic("timeout", timeout=0)
        with socket.create_connection((host, int(port)), timeout=1) as c:
            c.sendall(b"lost")
            with pytest.raises(TimeoutError):
                c.recv(4)
        assert [t["type"] for t in proxy.toxics()] == ["timeout"]
        toxi.reset()
        assert proxy.toxics() == []
        proxy.disable()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
        proxy.enable()
        with pytest.raises(ToxiproxyError, match="answered 4"):
            proxy.add_toxic("no-such-toxic")
    server.close()
    assert not os.path.exists(f"/proc/{pid}") or \
        open(f"/proc/{pid}/stat").read().split(")")[1].split()[0] in ("Z", "X")


def test_the_ledger_finds_loss_duplicates_disorder_and_lying_errors() -> None:
    ledger = Ledger(keys=2)
    sent = SimpleNamespace(send=lambda *a, **k: None)
    for i in range(6):
        ledger.send(sent, "t", i)
    meta = SimpleNamespace
    ledger._on_delivery(0, None, meta(partition=0, offset=0))
    ledger._on_delivery(1, None, meta(partition=0, offset=1))
    ledger._on_delivery(2, None, meta(partition=0, offset=2))   # never read back: lost
    not_written = KafkaTimeoutError("expired; never sent")
    ledger._on_delivery(3, not_written, None)                  # read back: the error lied
    maybe = KafkaTimeoutError("expired in flight")
    maybe.maybe_written = True
    ledger._on_delivery(4, maybe, None)                        # read back: fine
    # 5 never resolved
    rec = SimpleNamespace

    def r(i: int, offset: int) -> SimpleNamespace:
        return rec(partition=0, offset=offset, key=b"key-%d" % (i % 2), value=value_for(i))

    verdict = ledger.verify([r(0, 0), r(1, 1), r(3, 3), r(1, 4), r(4, 5)])
    assert verdict.lost == [2]
    assert verdict.duplicated == [1]
    assert verdict.out_of_order == [(b"key-1", 3, 1)]
    assert verdict.written_though_failed == [3]
    assert verdict.unresolved == [5]
    assert verdict.failed_maybe_written_found == 1
    assert len(verdict.problems()) == 5


def test_the_soak_growth_test_fits_a_line() -> None:
    soak = load_tool("soak")
    t = [float(x) for x in range(0, 1200, 10)]
    flat = [100 + (5 if i % 12 == 0 else 0) for i in range(len(t))]   # spikes at bounces
    slope, rise = soak.trend(t, flat)
    assert abs(rise) < 2
    # a burst near the end (a bounce just before the run stops) tilts least squares, not the
    # median of pairwise slopes
    burst = [100 + (40 if x > 1100 else 0) for x in t]
    assert soak.least_squares(t, burst)[1] > 10
    assert soak.trend(t, burst)[1] == 0
    leak = [100 + 0.05 * x for x in t]
    slope, rise = soak.trend(t, leak)
    assert slope == pytest.approx(0.05) and rise == pytest.approx(0.05 * 1190)
    samples = [soak.Sample(t_s=x, rss_mib=100 + 0.05 * x, fds=20, threads=5,
                           buffer_used_bytes=0, buffer_fraction=0.0, sent=1, acked=1, failed=0)
               for x in t]
    result = soak.SoakResult(minutes=20, rate=1, warmup_s=300, samples=samples, sent=1, acked=1)
    soak.judge(result, soak.TOLERANCES)
    assert [p.split(" ")[0] for p in result.problems] == ["rss_mib"]


def test_the_soak_ledger_of_failures_takes_no_python_object_per_record() -> None:
    """The soak samples the Python objects alive as the producer's: its own ledger of failed
    records must not grow them per failure (a run with 57,831 failures showed a step of about
    50,000 blocks that the growth test took for a leak). It still answers what failed."""
    import gc
    import sys

    soak = load_tool("soak")
    book = soak.Book(1000)
    error = KafkaTimeoutError("expired (delivery.timeout.ms)")
    book.on_delivery(b"key-0", 0, error, None)   # the per-kind error entry, once
    gc.collect()
    before = sys.getallocatedblocks()
    for seq in range(1, 50_001):
        book.on_delivery(b"key-%d" % (seq % 1000), seq, error, None)
    gc.collect()
    grown = sys.getallocatedblocks() - before
    # one object per failure would be 50,000 blocks; the arrays' and dicts' growth is a few
    # thousand (5,001 on CPython 3.10), so a fifth of one per failure is the bound
    assert grown < 10_000, f"{grown} Python blocks for 50,000 failures"
    failed = book.failed()
    assert book.failed_count == 50_001
    assert failed[b"key-7"][1007] is False and 1008 not in failed[b"key-7"]
