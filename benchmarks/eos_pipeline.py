"""What an exactly-once consume-transform-produce pipeline moves, and what each of its
transactions costs, with kengine against the same pipeline on confluent-kafka's transactional
producer; on the three-broker cluster (6 partitions, RF 3, min.insync.replicas=2, acks=all).

    python -m benchmarks.eos_pipeline [--rounds 2] [--scale 1.0]

Both lanes consume with the same confluent-kafka consumer (``read_committed``, no auto-commit),
send one output per input record (same key and 100-byte value, ``send()`` / ``produce()`` per
record, linger 5 ms, 64 KiB batches) and commit the consumed offsets in the transaction:

* kengine: ``kengine.eos.ExactlyOncePipeline``, the loop the README documents, with
  ``Producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata())``;
* confluent-kafka: the same loop written by hand on ``confluent_kafka.Producer`` (transactions
  v1; librdkafka speaks no other), ``send_offsets_to_transaction()`` with the same metadata.

At 100, 1,000 and 10,000 records per transaction (20,000, 100,000 and 200,000 input records at
``--scale 1``). Reported per lane, from the end of its first transaction (the group joined) to
the end of its last: end-to-end records/s, ms per transaction, client CPU µs per record (the
process: consumer and producer threads alike), and the fixed cost of a transaction: the
intercept of a least-squares line through (records per transaction, ms per transaction) of the
three sizes. Before a figure counts, its output is read back by confluent-kafka with
read_committed (every input's output once, one marker per transaction and partition) and the
group's committed offsets must equal the input's end offsets. Lanes alternate their order every
round; the reported figure is the median of rounds.
"""
from __future__ import annotations

import argparse
import statistics
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import Producer as ConfluentProducer

from benchmarks.broker import BenchKafka
from benchmarks.plan import LAYOUTS
from benchmarks.workload import keys, payload_pool
from kengine import Producer
from kengine.eos import ExactlyOncePipeline, consumer_settings

_PRODUCER = {"linger.ms": 5, "batch.size": 65536, "acks": "all"}
_SIZES = {100: 20_000, 1000: 100_000, 10_000: 200_000}


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(consumer_settings(bootstrap, group, {"log_level": 3}))


def _kengine(bootstrap: str, source: str, sink: str, per_txn: int, total: int
             ) -> tuple[float, float, int, int, str]:
    group = f"bench-k-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(bootstrap, group)
    producer = Producer({"bootstrap.servers": bootstrap,
                         "transactional.id": f"bench-{sink}", **_PRODUCER})
    done = 0
    markers = 0
    clock = _Clock()
    pipeline: ExactlyOncePipeline

    def transform(messages: list[Any], p: Producer) -> None:
        nonlocal done, markers
        if pipeline.stats.transactions == 1:
            clock.start(done, 1)   # the group is joined and the first transaction committed
        send = p.send
        for m in messages:
            send(sink, m.value(), key=m.key())
        done += len(messages)
        markers += len({m.partition() for m in messages})
        if done >= total:
            pipeline.stop()

    with producer:
        producer.init_transactions()
        pipeline = ExactlyOncePipeline(consumer, producer, [source], transform,
                                       max_records=per_txn, initialized=True)
        pipeline.run()
        clock.stop(done, pipeline.stats.transactions)
        assert not pipeline.stats.aborted, pipeline.stats.errors
    return clock, pipeline.stats.transactions, markers, group


def _confluent(bootstrap: str, source: str, sink: str, per_txn: int, total: int
               ) -> tuple[float, float, int, int, str]:
    group_id = f"bench-c-{uuid.uuid4().hex[:8]}"
    consumer = _consumer(bootstrap, group_id)
    # murmur2 as Java and kengine place keys (librdkafka's default is consistent_random):
    # the outputs land in the input's partitions, the same markers as the kengine lane
    producer = ConfluentProducer({"bootstrap.servers": bootstrap,
                                  "transactional.id": f"bench-{sink}", "log_level": 3,
                                  "partitioner": "murmur2_random", **_PRODUCER})
    producer.init_transactions()
    counts = {"done": 0, "transactions": 0, "markers": 0}
    clock = _Clock()

    def run() -> None:
        consumer.subscribe([source])
        produce, poll = producer.produce, producer.poll
        while counts["done"] < total:
            if counts["transactions"] == 1:
                clock.start(counts["done"], 1)
            batch = [m for m in consumer.consume(per_txn, 1.0) if m.error() is None]
            if not batch:
                continue
            group = consumer.consumer_group_metadata()
            producer.begin_transaction()
            for m in batch:
                produce(sink, m.value(), m.key())
                poll(0)
            nxt: dict[tuple[str, int], int] = {}
            for m in batch:
                nxt[(m.topic(), m.partition())] = m.offset() + 1
            producer.send_offsets_to_transaction(
                [TopicPartition(t, p, o) for (t, p), o in nxt.items()], group)
            producer.commit_transaction()
            counts["done"] += len(batch)
            counts["transactions"] += 1
            counts["markers"] += len({m.partition() for m in batch})
        consumer.close()

    run()
    clock.stop(counts["done"], counts["transactions"])
    producer.flush()
    return clock, counts["transactions"], counts["markers"], group_id


class _Clock:
    """Wall and CPU time from the end of the first transaction (the group joined, the
    connections made) to the end of the last, and the records and transactions in between."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0
        self.records = self.transactions = 0
        self._at: tuple[float, float, int, int] | None = None

    def start(self, records: int, transactions: int) -> None:
        if self._at is None:
            self._at = (time.perf_counter(), time.process_time(), records, transactions)

    def stop(self, records: int, transactions: int) -> None:
        assert self._at is not None, "fewer than two transactions: nothing to measure"
        wall, cpu, r0, t0 = self._at
        self.wall, self.cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.records, self.transactions = records - r0, transactions - t0


def _fill(bootstrap: str, topic: str, total: int) -> dict[int, int]:
    pool, ks = payload_pool(100), keys()
    ends: dict[int, int] = {}
    with Producer({"bootstrap.servers": bootstrap, **_PRODUCER}) as p:
        futures = [p.send(topic, pool[i % len(pool)], key=ks[i % len(ks)])
                   for i in range(total)]
        for f in futures:
            md = f.result(120)
            ends[md.partition] = max(ends.get(md.partition, 0), md.offset + 1)
    return ends


def _committed(bootstrap: str, group: str, source: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets, by confluent-kafka's committed() (no join)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 3,
                  "isolation.level": "read_committed"})
    try:
        tps = c.committed([TopicPartition(source, p) for p in range(partitions)], timeout=30)
    finally:
        c.close()
    return {tp.partition: tp.offset for tp in tps if tp.offset >= 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiplies the input records of every size")
    args = ap.parse_args()
    layout = LAYOUTS["cluster3"]
    lanes = {"kengine ExactlyOncePipeline": _kengine,
             "confluent-kafka transactional producer": _confluent}
    seen: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    with BenchKafka(layout) as kafka:
        bootstrap = kafka.bootstrap_servers
        inputs = {}
        for per_txn, total in _SIZES.items():
            total = max(per_txn, int(total * args.scale))
            source = kafka.fresh_topic(f"eos-in-{per_txn}")
            inputs[per_txn] = (source, total, _fill(bootstrap, source, total))
        for r in range(args.rounds):
            names = list(lanes)[r % 2:] + list(lanes)[:r % 2]
            for per_txn, (source, total, ends) in inputs.items():
                for name in names:
                    sink = kafka.fresh_topic("eos-out")
                    clock, txns, markers, group = lanes[name](bootstrap, source, sink,
                                                              per_txn, total)
                    committed = _committed(bootstrap, group, source, layout.partitions)
                    if committed != ends:
                        raise SystemExit(f"{name} {per_txn}/txn: the group committed "
                                         f"{committed}, the input ends at {ends}")
                    check = kafka.verify(sink, total, 100, expected_markers=markers)
                    if check.counted != total or check.control_records != markers:
                        raise SystemExit(f"{name} {per_txn}/txn: {check.counted} of {total} "
                                         f"outputs, {check.control_records} markers of "
                                         f"{markers}")
                    kafka.delete_topic(sink)
                    figures = (clock.records / clock.wall, clock.wall * 1000 / clock.transactions,
                               clock.cpu * 1e6 / clock.records)
                    seen.setdefault((name, per_txn), []).append(figures)
                    print(f"round {r + 1} {name} {per_txn}/txn: {figures[0]:,.0f} records/s, "
                          f"{figures[1]:.1f} ms per transaction ({txns} transactions, "
                          f"{clock.transactions} measured), {figures[2]:.2f} µs CPU per record",
                          flush=True)
        for source, _, _ in inputs.values():
            kafka.delete_topic(source)
    print("\n| pipeline | records per transaction | records/s | ms per transaction | "
          "CPU µs per record |")
    print("|---|---:|---:|---:|---:|")
    medians: dict[tuple[str, int], tuple[float, ...]] = {}
    for (name, per_txn), figures in seen.items():
        medians[(name, per_txn)] = tuple(statistics.median(f[i] for f in figures)
                                         for i in range(3))
        rate, ms, cpu = medians[(name, per_txn)]
        print(f"| {name} | {per_txn:,} | {rate:,.0f} | {ms:.1f} | {cpu:.2f} |")
    print("\n| pipeline | fixed cost per transaction (ms) | cost per record (µs) |")
    print("|---|---:|---:|")
    for name in lanes:
        xs = list(_SIZES)
        ys = [medians[(name, n)][1] for n in xs]
        slope, intercept = _line(xs, ys)
        print(f"| {name} | {intercept:.1f} | {slope * 1000:.2f} |")
    return 0


def _line(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
             / sum((x - mx) ** 2 for x in xs))
    return slope, my - slope * mx


if __name__ == "__main__":
    raise SystemExit(main())
