"""How the producer finds and keeps its brokers, against real Kafka: ``client.dns.lookup``
(every address of a name in turn; canonical bootstrap names), name lookups off the sender
thread, KIP-899 rebootstrap when every broker the producer knew was replaced, new topics'
metadata fetched at once and ``metadata.max.idle.ms``, and a local cluster that keeps its
identity across a restart. Every write is read back with confluent-kafka."""
from __future__ import annotations

import re
import socket
import threading
import time
import uuid

import kengine.network
from kengine import Producer
from kengine.errors import KafkaTimeoutError
from kengine.localkafka import KafkaCluster
from kengine_ext.schemas import ApiKey as API
from tests.support.forwarder import Forwarder
from tests.support.readback import read_all


def _port(cluster: KafkaCluster) -> int:
    return int(cluster.bootstrap_servers.split(",")[0].rpartition(":")[2])


# --------------------------------------------------------------------------- DNS


def test_every_address_of_a_name_is_tried_in_turn(kafka, topic, monkeypatch):
    """use_all_dns_ips (the default): the name's first address refuses connections, the
    second is the broker; the producer gets through on the second."""
    port = _port(kafka)
    asked = []
    real = kengine.network.resolve

    def resolve(host, p):
        asked.append(host)
        if host == "two-addresses.kengine.test":
            return [(socket.AF_INET, ("127.0.0.2", p)), (socket.AF_INET, ("127.0.0.1", p))]
        return real(host, p)

    monkeypatch.setattr(kengine.network, "resolve", resolve)
    with Producer(bootstrap_servers=f"two-addresses.kengine.test:{port}") as p:
        assert p.config["client.dns.lookup"] == "use_all_dns_ips"
        p.send(topic, b"through the second address").result(60)
    assert "two-addresses.kengine.test" in asked
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == \
        [b"through the second address"]


def test_a_slow_name_does_not_stall_the_other_brokers(kafka, topic, monkeypatch):
    """One bootstrap name's lookup hangs; the producer connects through the other one and
    delivers while that lookup is still hanging."""
    port = _port(kafka)
    release = threading.Event()
    hanging = threading.Event()
    real = kengine.network.resolve

    def resolve(host, p):
        if host == "slow.kengine.test":
            hanging.set()
            release.wait(120)
            raise socket.gaierror(socket.EAI_AGAIN, "released by the test")
        return real(host, p)

    monkeypatch.setattr(kengine.network, "resolve", resolve)
    try:
        # the slow name first, and the whole list tried until one works
        with Producer(bootstrap_servers=f"slow.kengine.test:{port},localhost:{port}",
                      socket_connection_setup_timeout_ms=120_000) as p:
            for i in range(20):   # several metadata fetches and connections
                p.send(topic, b"r%d" % i)
            p.flush(60)
            delivered_while_hanging = not release.is_set()
    finally:
        release.set()
    assert delivered_while_hanging
    assert len(read_all(kafka.bootstrap_servers, topic)) == 20


def test_canonical_bootstrap_names(kafka, topic):
    """resolve_canonical_bootstrap_servers_only: the bootstrap address becomes the canonical
    name of what it resolves to (here the reverse lookup of 127.0.0.1)."""
    port = _port(kafka)
    canonical = socket.getnameinfo(("127.0.0.1", port), socket.NI_NAMEREQD)[0]
    with Producer(bootstrap_servers=f"127.0.0.1:{port}",
                  client_dns_lookup="resolve_canonical_bootstrap_servers_only") as p:
        assert p._client.addresses[-1] == (canonical, port)
        p.send(topic, b"canonical").result(60)
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == [b"canonical"]


# --------------------------------------------------------------------------- rebootstrap


def _replace_cluster_while_producing(tmp_path, strategy: str):
    """Cluster A (node 1) behind a stable bootstrap address (a forwarder); a producer sends
    numbered records to it all along; A is stopped and cluster B (node 11: a new id, a new
    address) takes over, the forwarder pointing at it. Returns (futures, B, topic, index of
    the first record sent after A stopped, the producer's rebootstrap count)."""
    topic = f"rebootstrap-{uuid.uuid4().hex[:8]}"
    a = KafkaCluster(1, tmp_path / "a")
    try:
        a.create_topic(topic, partitions=2)
        fwd = Forwarder(("127.0.0.1", _port(a)))
        stop_sending = threading.Event()
        futures = []
        with Producer(bootstrap_servers=fwd.address, metadata_recovery_strategy=strategy,
                      request_timeout_ms=5000, delivery_timeout_ms=60_000,
                      reconnect_backoff_max_ms=500) as p:

            def produce() -> None:
                i = 0
                while not stop_sending.is_set():
                    futures.append(p.send(topic, b"%06d" % i, key=b"k%d" % (i % 2)))
                    i += 1
                    time.sleep(0.002)

            sender = threading.Thread(target=produce, daemon=True)
            sender.start()
            while len(futures) < 300:
                time.sleep(0.05)
            futures[299].result(60)               # A has records
            assert set(p._client.addresses) == {-1, 1}
            a.close()                             # every broker the producer knows is gone
            first_after = len(futures)
            b = KafkaCluster(1, tmp_path / "b", first_node_id=11)
            b.create_topic(topic, partitions=2)
            fwd.retarget(("127.0.0.1", _port(b)))
            while len(futures) < first_after + 300:
                time.sleep(0.05)
            stop_sending.set()
            sender.join(30)
            try:
                p.flush(90)
            except KafkaTimeoutError:
                pass
            rebootstraps = p._client.rebootstrap_count
            known = set(p._client.addresses)
        fwd.close()
        return futures, b, topic, first_after, rebootstraps, known
    finally:
        a.close()


def test_rebootstrap_finds_a_cluster_whose_brokers_were_all_replaced(tmp_path):
    futures, b, topic, first_after, rebootstraps, known = \
        _replace_cluster_while_producing(tmp_path, "rebootstrap")
    with b:
        failed = [i for i, f in enumerate(futures) if f.exception(0) is not None]
        assert not failed, (failed[:5], futures[failed[0]].exception(0))
        assert rebootstraps >= 1
        assert known == {-1, 11}                  # node 1 forgotten, node 11 learnt
        values = [int(r.value) for r in read_all(b.bootstrap_servers, topic)]
        # B has a suffix of the records, once each and in order per key: every record sent
        # after A was gone, and those A had not acknowledged when it went
        for parity in (0, 1):
            mine = [v for v in values if v % 2 == parity]
            assert mine == sorted(set(mine))
        assert set(range(first_after, len(futures))) <= set(values)
        assert set(values) == set(range(min(values), len(futures)))


def test_without_rebootstrap_a_replaced_cluster_is_not_found(tmp_path):
    """metadata.recovery.strategy=none (Java's behaviour before KIP-899): the producer keeps
    trying the brokers it knew, which are gone; records sent after the replacement expire."""
    futures, b, topic, first_after, rebootstraps, known = \
        _replace_cluster_while_producing(tmp_path, "none")
    with b:
        assert rebootstraps == 0
        assert 11 not in known
        late = [f.exception(0) for f in futures[first_after:]]
        assert all(isinstance(e, KafkaTimeoutError) for e in late), late[:3]
        assert read_all(b.bootstrap_servers, topic) == []


# --------------------------------------------------------------------------- metadata


def test_new_topics_metadata_is_fetched_together_and_idle_topics_are_dropped(kafka,
                                                                             topic_factory):
    """Sends to 30 new topics from 30 threads at once: their metadata comes in a few combined
    requests (not one per topic), and once nothing was sent to them for metadata.max.idle.ms
    they are no longer refreshed."""
    topics = [topic_factory(kafka) for _ in range(30)]
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  metadata_max_idle_ms=5000) as p:
        requests = []
        original = p._client.send

        def counting_send(node, api_key, body, callback, **kw):
            if api_key == API.METADATA:
                requests.append([t["name"] for t in body["topics"]])
            return original(node, api_key, body, callback, **kw)

        p._client.send = counting_send
        start = threading.Barrier(len(topics))
        threads = [threading.Thread(target=lambda t=t: (start.wait(), p.send(t, t.encode())))
                   for t in topics]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        p.flush(60)
        asked = [r for r in requests if set(r) & set(topics)]
        assert sum(len(r) for r in asked) >= len(topics)
        assert len(asked) < len(topics)            # combined
        assert p._metadata.topic_count == len(topics)
        # idle: a refresh after metadata.max.idle.ms forgets them
        deadline = time.monotonic() + 60
        while p._metadata.topic_count and time.monotonic() < deadline:
            time.sleep(0.5)
            p._metadata.request_update()
            p._client.wakeup()
        assert p._metadata.topic_count == 0
        # and a later send fetches the topic again
        p.send(topics[0], b"again").result(60)
        assert p._metadata.topic_count == 1
    for t in topics:
        expected = [t.encode()] + ([b"again"] if t == topics[0] else [])
        assert [r.value for r in read_all(kafka.bootstrap_servers, t)] == expected


# --------------------------------------------------------------------------- local Kafka


def test_local_kafka_keeps_its_identity_and_a_producer_outlives_the_restart(tmp_path):
    """``local-kafka stop`` then ``start`` (make kafka-stop / make kafka) brings back the same
    cluster: same ports, same data; a producer that outlives the restart delivers everything
    it was given, before, during and after."""
    from kengine.localkafka.cli import main

    workdir = tmp_path / "local"
    assert main(["start", "--workdir", str(workdir)]) == 0
    try:
        first = KafkaCluster.attach(workdir)
        bootstrap, cluster_id = first.bootstrap_servers, first.cluster_id
        first.create_topic("kept", partitions=3)
        with Producer(bootstrap_servers=bootstrap, delivery_timeout_ms=180_000,
                      max_block_ms=180_000) as p:
            before = [p.send("kept", b"before-%d" % i) for i in range(100)]
            p.flush(60)
            assert main(["stop", "--workdir", str(workdir)]) == 0
            during = [p.send("kept", b"during-%d" % i) for i in range(100)]
            assert main(["start", "--workdir", str(workdir)]) == 0
            after = [p.send("kept", b"after-%d" % i) for i in range(100)]
            p.flush(180)
            assert [f.exception(0) for f in before + during + after] == [None] * 300
        again = KafkaCluster.attach(workdir)
        assert (again.bootstrap_servers, again.cluster_id) == (bootstrap, cluster_id)
        values = {r.value for r in read_all(bootstrap, "kept")}
        assert values == {b"%s-%d" % (w, i) for w in (b"before", b"during", b"after")
                          for i in range(100)}
        # --fresh: a new, empty cluster
        assert main(["stop", "--workdir", str(workdir)]) == 0
        assert main(["start", "--workdir", str(workdir), "--fresh"]) == 0
        fresh = KafkaCluster.attach(workdir)
        assert fresh.cluster_id != cluster_id
        assert "kept" not in fresh.metadata(topics=None).topics
    finally:
        main(["stop", "--workdir", str(workdir)])


def test_local_kafka_refuses_to_bring_back_a_cluster_with_other_settings(tmp_path, capsys):
    from kengine.localkafka.cli import main

    workdir = tmp_path / "local"
    assert main(["start", "--workdir", str(workdir)]) == 0
    try:
        assert main(["stop", "--workdir", str(workdir)]) == 0
        capsys.readouterr()
        assert main(["start", "--workdir", str(workdir), "--brokers", "3"]) == 2
        # a usage error, said by the command that was mistyped
        assert re.match(r"python -m kengine\.localkafka: error: --brokers .*--fresh",
                        capsys.readouterr().err)
    finally:
        main(["stop", "--workdir", str(workdir)])
