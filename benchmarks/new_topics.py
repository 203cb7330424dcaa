"""One record to each of N topics the producer has never seen (issue 15): what the first send()
to a new topic costs, which is a metadata fetch.

    python -m benchmarks.new_topics [--topics 1000] [--rounds 1] [--kafka-version 4.4]

A local one-broker Kafka is started, the topics are created beforehand (not timed), then each
client sends one record to each of its own N fresh topics, one send() after the other, and
flushes: the wall-clock time from the first send to the flush returning is its figure. Peers
in the same run: confluent-kafka (librdkafka), which also fetches each new topic's metadata.
Every topic is read back (confluent-kafka consumer) before a figure is printed.

With ``--idle-ms`` the kengine producer runs with that ``metadata.max.idle.ms`` and, after
the flush, waits for it to pass and reports how many topics it still refreshes and its RSS
before and after: with 10,000 topics (``--topics 10000``) this is the bounded-memory check.
"""
from __future__ import annotations

import argparse
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as ConfluentProducer

from kengine import Producer
from kengine.admin import AdminClient, NewTopic
from kengine.localkafka import KafkaCluster


def _create(bootstrap: str, names: list[str]) -> None:
    with AdminClient(bootstrap_servers=bootstrap) as admin:
        for i in range(0, len(names), 500):
            chunk = names[i:i + 500]
            outcome = admin.create_topics([NewTopic(n, 1, 1, {}) for n in chunk], timeout=300)
            failed = {n: e for n, e in outcome.items() if e is not None}
            if failed:
                raise RuntimeError(f"creating topics failed: {list(failed.items())[:3]}")


def _wait_known(cluster: KafkaCluster, names: list[str]) -> None:
    deadline = time.monotonic() + 300
    pending = list(names)
    while pending:
        for i in range(0, len(pending), 1000):
            topics = cluster.metadata(topics=pending[i:i + 1000]).topics
            ready = {n for n, t in topics.items()
                     if t.error_code == 0 and all(p.leader >= 0 for p in t.partitions)}
            pending = [n for n in pending if n not in ready]
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} topics have no leader after 300 s")
        if pending:
            time.sleep(0.5)


def _wait_writable(bootstrap: str, names: list[str]) -> None:
    """Metadata names a new topic's leader before that broker has created the partition's log
    (KRaft publishes the metadata first): produce requests get NOT_LEADER_OR_FOLLOWER until it
    has. Wait until the leader answers ListOffsets for every partition, so that the timed part
    measures the client, not topic creation."""
    from benchmarks.broker import wait_partitions_loaded

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"nt-{uuid.uuid4().hex}",
                         "log_level": 0})
    try:
        wait_partitions_loaded(consumer, [TopicPartition(n, 0) for n in names],
                               f"{len(names)} new topics", timeout=300)
    finally:
        consumer.close()


def _read_back(bootstrap: str, names: list[str]) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"nt-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "log_level": 4})
    try:
        consumer.assign([TopicPartition(n, 0, 0) for n in names])
        seen, eof, deadline = 0, set(), time.monotonic() + 300
        while len(eof) < len(names) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=1.0):
                if msg.error() is None:
                    seen += 1
                elif msg.error().code() == -191:   # _PARTITION_EOF
                    eof.add(msg.topic())
        return seen
    finally:
        consumer.close()


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _topic_count(p: Producer) -> int:
    # (len(_topics): kengine before issue 15 had no topic_count, and the figure "before" is
    # measured with this same script)
    return int(getattr(p._metadata, "topic_count", len(p._metadata._topics)))


def _kengine(bootstrap: str, names: list[str], idle_ms: int | None) -> dict[str, float]:
    settings = {"bootstrap.servers": bootstrap, "linger.ms": 5}
    if idle_ms is not None:
        settings["metadata.max.idle.ms"] = idle_ms
    with Producer(settings) as p:
        rss_before = _rss_mib()
        started = time.perf_counter()
        for name in names:
            p.send(name, b"x")
        p.flush()
        elapsed = time.perf_counter() - started
        out = {"seconds": elapsed, "rss_before_mib": rss_before, "rss_after_mib": _rss_mib(),
               "topics_refreshed": _topic_count(p)}
        if idle_ms is not None:
            # the next full refresh after the idle time drops them: force one
            time.sleep(idle_ms / 1000 + 1)
            p._metadata.request_update()
            p._client.wakeup()
            deadline = time.monotonic() + 60
            while _topic_count(p) > 0 and time.monotonic() < deadline:
                time.sleep(0.2)
            out["topics_refreshed_after_idle"] = _topic_count(p)
            out["rss_after_idle_mib"] = _rss_mib()
        return out


def _confluent(bootstrap: str, names: list[str]) -> dict[str, float]:
    p = ConfluentProducer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 4})
    started = time.perf_counter()
    for name in names:
        p.produce(name, b"x")
        p.poll(0)
    left = p.flush(300)
    elapsed = time.perf_counter() - started
    if left:
        raise RuntimeError(f"confluent-kafka: {left} records not delivered")
    return {"seconds": elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--kafka-version", default=None)
    ap.add_argument("--idle-ms", type=int, default=None,
                    help="kengine's metadata.max.idle.ms; report what it keeps after it")
    ap.add_argument("--no-peers", action="store_true", help="kengine only")
    args = ap.parse_args()
    clients = ["kengine"] + ([] if args.no_peers else ["confluent-kafka"])
    with KafkaCluster(1, kafka_version=args.kafka_version,
                      broker_config={"num.io.threads": 4}) as cluster:
        bootstrap = cluster.bootstrap_servers
        print(f"Kafka {cluster.kafka.version}, one broker; {args.topics} new topics per client "
              f"and round, one record each")
        for rnd in range(args.rounds):
            for client in clients:
                names = [f"nt-{client[:2]}-{rnd}-{i}-{uuid.uuid4().hex[:6]}"
                         for i in range(args.topics)]
                _create(bootstrap, names)
                _wait_known(cluster, names)
                _wait_writable(bootstrap, names)
                if client == "kengine":
                    result = _kengine(bootstrap, names, args.idle_ms)
                else:
                    result = _confluent(bootstrap, names)
                read = _read_back(bootstrap, names)
                if read != len(names):
                    raise RuntimeError(f"{client}: read back {read} records of {len(names)}")
                extra = "  ".join(f"{k}={v:.0f}" if isinstance(v, float) else f"{k}={v}"
                                  for k, v in result.items() if k != "seconds")
                print(f"round {rnd + 1}  {client:16s} {result['seconds']:7.2f} s  "
                      f"({result['seconds'] / len(names) * 1000:.2f} ms per new topic; "
                      f"all {read} read back)  {extra}")


if __name__ == "__main__":
    main()
