"""What producing Avro records through a Schema Registry costs: kengine's ``AvroSerializer``
through ``send()`` and ``send_many()`` against confluent-kafka's ``AvroSerializer`` +
``produce()``, same registry, same broker, same records.

    python -m benchmarks.avro_serialization [--records 1000000] [--rounds 3]
    python -m benchmarks.avro_serialization --encoding-only   # where the time goes

``--encoding-only`` needs no broker: it times the serializers alone on the same records
(process CPU µs per record, best of 5 passes over 200,000): kengine's compiled encoder bare
(``AvroWriter.write``), kengine's ``AvroSerializer.serialize()`` with it and with fastavro
(``compiled=False``), fastavro's ``schemaless_writer`` into a BytesIO, and confluent-kafka's
``AvroSerializer``; each output is checked equal to confluent-kafka's bytes first.

The workload is a 10-field Avro record (long, string, double, int, boolean, a nullable string,
an enum, long, string, float), drawn from a pool of 1,000 distinct records. Both serializers
register the schema once under ``<topic>-value`` (TopicNameStrategy) and cache its id, so the
per-record cost is the Avro encoding, the framing and the produce call.

Each run is a process of its own (its CPU time is its own: every thread, librdkafka's and
kengine's sender included) over the produce window: from the first measured record to
``flush()`` returning, after a warm-up of 10,000 records that also registers the schema. Every
run writes to a fresh topic (one broker, 6 partitions, acks=all, linger.ms=5, batch.size
64 KiB, no compression), which is then counted (end offsets, confluent-kafka) and sampled: 1,000
records are decoded by confluent-kafka's ``AvroDeserializer`` and must be records of the pool.
Rounds interleave the clients, rotating their order; figures are medians with [min-max].
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
from pathlib import Path
from typing import Any

SCHEMA = {
    "type": "record", "name": "Order", "namespace": "bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "quantity", "type": "int"},
        {"name": "paid", "type": "boolean"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "status", "type": {"type": "enum", "name": "Status",
                                    "symbols": ["NEW", "PAID", "SHIPPED", "DELIVERED"]}},
        {"name": "created_ms", "type": "long"},
        {"name": "sku", "type": "string"},
        {"name": "score", "type": "float"},
    ],
}
CLIENTS = ("kengine send()", "kengine send_many()", "confluent-kafka produce()")
_WARMUP = 10_000
_CHUNK = 1000
_SAMPLE = 1000
_PRODUCER = {"linger.ms": 5, "batch.size": 65536, "acks": "all", "compression.type": "none"}


def pool() -> list[dict[str, Any]]:
    """1,000 distinct records (floats exact in float32, so a decoded record compares equal)."""
    statuses = SCHEMA["fields"][6]["type"]["symbols"]  # type: ignore[index]
    return [{"id": 10_000_000 + i, "customer": f"customer-{i % 97}", "amount": i * 0.25,
             "quantity": i % 50, "paid": i % 3 == 0,
             "note": None if i % 4 else f"gift wrap please #{i}",
             "status": statuses[i % 4], "created_ms": 1_700_000_000_000 + i * 1000,
             "sku": f"SKU-{i:06d}", "score": (i % 8) * 0.125} for i in range(1000)]


# ------------------------------------------------------------------ one run (a child process)

def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _child(client: str, bootstrap: str, registry_url: str, topic: str, records: int) -> None:
    data = pool()
    schema = json.dumps(SCHEMA)
    if client.startswith("kengine"):
        from kengine import Producer
        from kengine.schema_registry import SchemaRegistryClient
        from kengine.schema_registry.avro import AvroSerializer

        serializer = AvroSerializer(SchemaRegistryClient({"url": registry_url}), schema)
        p = Producer({"bootstrap.servers": bootstrap, **_PRODUCER,
                      "value.serializer": serializer})
        bulk = client.endswith("send_many()")

        def produce(n: int) -> None:
            if bulk:
                for start in range(0, n, _CHUNK):
                    p.send_many(topic, [data[i % 1000] for i in range(start, start + _CHUNK)])
            else:
                send = p.send
                for i in range(n):
                    send(topic, data[i % 1000])
            p.flush()
    else:
        from confluent_kafka import Producer as CProducer
        from confluent_kafka.schema_registry import SchemaRegistryClient as CRegistry
        from confluent_kafka.schema_registry.avro import AvroSerializer as CAvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        cser = CAvroSerializer(CRegistry({"url": registry_url}), schema)
        cp = CProducer({"bootstrap.servers": bootstrap, **_PRODUCER, "log_level": 4,
                        "delivery.report.only.error": True,
                        "queue.buffering.max.kbytes": 32 * 1024,
                        "queue.buffering.max.messages": 0})
        ctx = SerializationContext(topic, MessageField.VALUE)

        def produce(n: int) -> None:
            for i in range(n):
                value = cser(data[i % 1000], ctx)
                while True:
                    try:
                        cp.produce(topic, value)
                        break
                    except BufferError:   # as its documentation does: serve, then retry
                        cp.poll(0.001)
                cp.poll(0)
            if cp.flush(120) != 0:
                raise SystemExit("confluent-kafka: records left unflushed")

    produce(_WARMUP)
    cpu0, wall0 = _cpu_s(), time.perf_counter()
    produce(records)
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "records": records}), flush=True)
    if client.startswith("kengine"):
        p.close()


# ------------------------------------------------------------------ the driver

def _verify(bootstrap: str, registry_url: str, topic: str, expected: int, kafka: Any) -> None:
    counted = kafka.count(topic, expected)
    if counted != expected:
        raise SystemExit(f"{topic}: {counted:,} records in the topic, {expected:,} sent")
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient as CRegistry
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    decode = AvroDeserializer(CRegistry({"url": registry_url}))
    ctx = SerializationContext(topic, MessageField.VALUE)
    known = {json.dumps(r, sort_keys=True) for r in pool()}
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"verify-{topic}",
                  "enable.auto.commit": False, "log_level": 4})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(6)])
        seen = 0
        deadline = time.monotonic() + 60
        while seen < _SAMPLE and time.monotonic() < deadline:
            for m in c.consume(500, 1.0):
                if m.error():
                    raise SystemExit(f"{topic}: {m.error()}")
                record = decode(m.value(), ctx)
                if json.dumps(record, sort_keys=True) not in known:
                    raise SystemExit(f"{topic}: decoded a record not in the workload: {record}")
                seen += 1
        if seen < _SAMPLE:
            raise SystemExit(f"{topic}: only {seen} records decoded")
    finally:
        c.close()


def _encoding_costs(registry_url: str, n: int = 200_000) -> None:
    import io

    from confluent_kafka.schema_registry import SchemaRegistryClient as CRegistry
    from confluent_kafka.schema_registry.avro import AvroSerializer as CAvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext
    from fastavro import parse_schema, schemaless_writer

    from kengine.schema_registry import SchemaRegistryClient
    from kengine.schema_registry.avro import AvroSerializer

    data = pool()
    topic = "encoding"
    schema = json.dumps(SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)
    theirs = CAvroSerializer(CRegistry({"url": registry_url}), schema)
    client = SchemaRegistryClient({"url": registry_url})
    compiled = AvroSerializer(client, schema)
    fast = AvroSerializer(client, schema, compiled=False)
    target = compiled.target(topic)
    writer, prefix = target.writer[0], target.prefix
    parsed = parse_schema(SCHEMA)

    def with_fastavro(record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        out.write(prefix)
        schemaless_writer(out, parsed, record)
        return out.getvalue()

    lanes = [("kengine AvroWriter.write() (compiled encoder alone)",
              lambda r: writer.write(prefix, r)),
             ("kengine AvroSerializer.serialize()", lambda r: compiled.serialize(topic, r)),
             ("kengine AvroSerializer.serialize(), compiled=False (fastavro)",
              lambda r: fast.serialize(topic, r)),
             ("fastavro schemaless_writer + BytesIO", with_fastavro),
             ("confluent-kafka AvroSerializer", lambda r: theirs(r, ctx))]
    for name, fn in lanes:
        for r in data:
            if fn(r) != theirs(r, ctx):
                raise SystemExit(f"{name}: bytes differ from confluent-kafka's for {r}")
    print("| serializer alone | CPU µs/record |\n|---|---:|")
    for name, fn in lanes:
        best = float("inf")
        for _ in range(5):
            cpu0 = _cpu_s()
            for i in range(n):
                fn(data[i % 1000])
            best = min(best, _cpu_s() - cpu0)
        print(f"| {name} | {best * 1e6 / n:.2f} |", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--encoding-only", action="store_true",
                    help="time the serializers alone (no broker)")
    ap.add_argument("--child", nargs=4, metavar=("CLIENT", "BOOTSTRAP", "REGISTRY", "TOPIC"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child, records=args.records)
        return 0

    from benchmarks.broker import BenchKafka
    from benchmarks.plan import LAYOUTS
    from tests.support.schema_registry import SchemaRegistryServer

    if args.encoding_only:
        with tempfile.TemporaryDirectory() as tmp, \
                SchemaRegistryServer(Path(tmp) / "registry") as registry:
            _encoding_costs(registry.url)
        return 0

    results: dict[str, list[dict[str, float]]] = {c: [] for c in CLIENTS}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with BenchKafka(LAYOUTS["single"]) as kafka, tempfile.TemporaryDirectory() as tmp, \
            SchemaRegistryServer(Path(tmp) / "registry") as registry:
        for r in range(args.rounds):
            for k in range(len(CLIENTS)):
                client = CLIENTS[(k + r) % len(CLIENTS)]
                topic = kafka.fresh_topic("avro")
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.avro_serialization", "--records",
                     str(args.records), "--child", client, kafka.bootstrap_servers,
                     registry.url, topic], capture_output=True, text=True, check=False,
                    env={**os.environ, "PYTHONPATH": os.getcwd()})
                if out.returncode != 0:
                    raise SystemExit(f"{client} failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                _verify(kafka.bootstrap_servers, registry.url, topic,
                        args.records + _WARMUP, kafka)
                kafka.delete_topic(topic)
                results[client].append(figures)
                print(f"round {r + 1} {client}: {args.records / figures['wall_s']:,.0f} "
                      f"records/s, {figures['cpu_s'] * 1e6 / args.records:.2f} µs CPU/record "
                      f"({args.records + _WARMUP:,} counted, {_SAMPLE} decoded)", flush=True)

    def med(client: str, f: str) -> tuple[float, float, float]:
        xs = [(args.records / x["wall_s"]) if f == "rate" else x["cpu_s"] * 1e6 / args.records
              for x in results[client]]
        return statistics.median(xs), min(xs), max(xs)

    base = med("confluent-kafka produce()", "cpu")[0]
    print(f"\n{args.records:,} records of a 10-field Avro record, median of {args.rounds} "
          f"rounds, started {started}\n")
    print("| client | records/s | client CPU µs/record | CPU vs confluent-kafka |")
    print("|---|---:|---:|---:|")
    for c in CLIENTS:
        rate, cpu = med(c, "rate"), med(c, "cpu")
        print(f"| {c} | {rate[0]:,.0f} [{rate[1]:,.0f}–{rate[2]:,.0f}] | "
              f"{cpu[0]:.2f} [{cpu[1]:.2f}–{cpu[2]:.2f}] | {cpu[0] / base:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
