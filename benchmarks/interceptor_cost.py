"""What interceptors cost per record: ``send()`` with none, with one no-op Python interceptor,
and with OpenTelemetry tracing (``kengine.otel``) at 100% and at 1% sampling.

    python -m benchmarks.interceptor_cost [--records 1000000] [--rounds 3]

One broker, 6 partitions, 100-byte values with keys ``str(i % 1000)``, acks=all, linger.ms=5.
Each lane sends ``--records`` records with ``send()`` in a loop (the ``send_many()`` lanes: calls
of 10,000 records), then ``flush()``. Reported: client CPU per record (the whole process's CPU
time over the send loop and the flush, so the sender thread and the spans' export are counted)
and the wall time of the loop per record, median of the rounds; a lane is compared with the
lane of the same call without interceptor. confluent-kafka's ``produce()`` (no interceptor)
runs in the same rounds as a peer. Lanes run in turn, their order rotated every round, each in
a fresh process.

Tracing uses OpenTelemetry's SDK (``TracerProvider`` with a ``ParentBased(TraceIdRatioBased)``
sampler and a ``BatchSpanProcessor``) exporting to a counting exporter that keeps nothing; the
spans it counted are checked against the sampling ratio. With that sampler send() decides in C
(kengine/otel/fast_sampling.py); the "decided in Python" lane uses a subclass of ParentBased,
which send() leaves to the SDK, to show in the same run what the C decision saves. Each lane
checks which way its producer decided. Every topic is read back (counted,
sampled) before its figure is printed, then deleted.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from benchmarks.broker import BenchKafka
from benchmarks.plan import LAYOUTS
from benchmarks.workload import keys, payload_pool

_COMMON = {"linger.ms": 5, "batch.size": 65536, "acks": "all"}
LANES = ("kengine, no interceptor", "kengine, one no-op interceptor",
         "kengine, otel 100% sampled", "kengine, otel 1% sampled",
         "kengine, otel 1% sampled, decided in Python",
         "kengine send_many(), no interceptor", "kengine send_many(), otel 1% sampled",
         "kengine send_many(), otel 1% sampled, decided in Python",
         "confluent-kafka produce(), no interceptor")
#: records per send_many() call in the send_many() lanes
CHUNK = 10_000


class NoOp:
    """The cheapest interceptor: both methods, doing nothing."""

    def on_send(self, record):   # type: ignore[no-untyped-def]
        return record

    def on_acknowledgement(self, metadata, error):   # type: ignore[no-untyped-def]
        pass


def _lane(name: str, bootstrap: str, topic: str, records: int) -> dict[str, float]:
    """One lane, in this (fresh) process: its figures and the spans exported."""
    pool, ks = payload_pool(100), keys()
    values = [pool[i % len(pool)] for i in range(records)]
    record_keys = [ks[i % len(ks)] for i in range(records)]
    exported = [0]
    if name.startswith("confluent"):
        from confluent_kafka import Producer as ConfluentProducer
        p = ConfluentProducer({"bootstrap.servers": bootstrap, **_COMMON,
                               "partitioner": "murmur2_random",   # Java's placement, as ours
                               "queue.buffering.max.messages": 2_000_000})
        cpu0, t0 = time.process_time(), time.perf_counter()
        for i in range(records):
            while True:
                try:
                    p.produce(topic, values[i], record_keys[i])
                    break
                except BufferError:
                    p.poll(0.01)
        loop_s = time.perf_counter() - t0
        p.flush(120)
        cpu = time.process_time() - cpu0
        return {"cpu_ns": cpu * 1e9 / records, "loop_ns": loop_s * 1e9 / records, "spans": 0}
    from kengine import Producer
    interceptors: list[object] = []
    provider = None
    if "no-op" in name:
        interceptors = [NoOp()]
    elif "otel" in name:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace import SpanKind

        from kengine.otel import TracingInterceptor

        class Counting(SpanExporter):
            """Counts the records' spans (kind PRODUCER; not send_many()'s call spans)."""

            def export(self, spans):   # type: ignore[no-untyped-def]
                exported[0] += sum(1 for s in spans if s.kind is SpanKind.PRODUCER)
                return SpanExportResult.SUCCESS

        class DecidedInPython(ParentBased):
            """ParentBased as it is, but a class send() does not decide in C: the lane
            of the interceptor's Python path, as every sampler took it before."""

        ratio = 1.0 if "100%" in name else 0.01
        sampler_class = DecidedInPython if "in Python" in name else ParentBased
        provider = TracerProvider(sampler=sampler_class(TraceIdRatioBased(ratio)))
        provider.add_span_processor(BatchSpanProcessor(Counting(), max_queue_size=1 << 16))
        interceptors = [TracingInterceptor(tracer_provider=provider)]
    with Producer({"bootstrap.servers": bootstrap, **_COMMON,
                   "interceptors": interceptors}) as p:
        in_c = bool(interceptors) and getattr(interceptors[0], "sampling_in_c", False)
        if "otel" in name and in_c == ("in Python" in name):
            raise SystemExit(f"{name}: send() decides sampling "
                             f"{'in C' if in_c else 'in Python'}, not as the lane says "
                             f"({getattr(interceptors[0], 'sampling_in_c_reason', '')})")
        send = p.send
        cpu0, t0 = time.process_time(), time.perf_counter()
        if "send_many()" in name:
            for c in range(0, records, CHUNK):
                p.send_many(topic, values[c:c + CHUNK], record_keys[c:c + CHUNK])
        else:
            for i in range(records):
                send(topic, values[i], record_keys[i])
        loop_s = time.perf_counter() - t0
        p.flush()
        if provider is not None:
            provider.force_flush()
        cpu = time.process_time() - cpu0
    if provider is not None:
        provider.shutdown()
    return {"cpu_ns": cpu * 1e9 / records, "loop_ns": loop_s * 1e9 / records,
            "spans": exported[0], "sampling_in_c": in_c}


def trace_headers(bootstrap: str, topic: str, partitions: int, records: int) -> tuple[int, int]:
    """Reads ``topic`` back with confluent-kafka: (records with exactly one well-formed
    ``traceparent`` header, those of them whose sampled flag is on)."""
    import re

    from confluent_kafka import Consumer, TopicPartition
    w3c = re.compile(rb"^00-[0-9a-f]{32}-[0-9a-f]{16}-([0-9a-f]{2})$")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "interceptor-cost",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = carried = sampled = ended = 0
    deadline = time.monotonic() + 300
    try:
        while ended < partitions and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error() is not None:
                    ended += 1   # partition EOF: no other error is expected here
                    continue
                seen += 1
                found = [v for k, v in (msg.headers() or []) if k == "traceparent"]
                m = w3c.match(found[0]) if len(found) == 1 and found[0] else None
                if m:
                    carried += 1
                    sampled += int(m[1], 16) & 1
    finally:
        consumer.close()
    if seen != records:
        raise SystemExit(f"{topic}: {seen} records read for traceparents, {records} sent")
    return carried, sampled


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lane", help=argparse.SUPPRESS)
    ap.add_argument("--bootstrap", help=argparse.SUPPRESS)
    ap.add_argument("--topic", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lane:   # a child: one lane, figures as JSON on stdout
        print(json.dumps(_lane(args.lane, args.bootstrap, args.topic, args.records)))
        return 0
    layout = LAYOUTS["single"]
    seen: dict[str, list[dict[str, float]]] = {}
    with BenchKafka(layout) as kafka:
        for r in range(args.rounds):
            for k in range(len(LANES)):
                name = LANES[(k + r) % len(LANES)]
                topic = kafka.fresh_topic("interceptors")
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.interceptor_cost", "--lane", name,
                     "--bootstrap", kafka.bootstrap_servers, "--topic", topic,
                     "--records", str(args.records)],
                    capture_output=True, text=True, timeout=1800)
                if out.returncode != 0:
                    raise SystemExit(f"{name} failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")
                figures = json.loads(out.stdout.strip().splitlines()[-1])
                check = kafka.verify(topic, args.records, 100)
                if check.counted != args.records or check.sample_problems:
                    raise SystemExit(f"{name}: {check.counted} of {args.records} records read "
                                     f"back; {check.sample_problems[:3]}")
                spans = figures["spans"]
                if "otel" in name:   # every record carries its context; sampled = exported
                    carried, flagged = trace_headers(kafka.bootstrap_servers, topic,
                                                     layout.partitions, args.records)
                    if carried != args.records or flagged != spans:
                        raise SystemExit(f"{name}: {carried} of {args.records} records carry "
                                         f"one traceparent, {flagged} of them sampled, "
                                         f"{spans} spans exported")
                if "100%" in name and spans != args.records:
                    raise SystemExit(f"{name}: {spans} spans exported for {args.records}")
                if "1%" in name and not 0.005 * args.records <= spans <= 0.02 * args.records:
                    raise SystemExit(f"{name}: {spans} spans exported, not about 1%")
                kafka.delete_topic(topic)
                seen.setdefault(name, []).append(figures)
                print(f"round {r + 1} {name}: {figures['cpu_ns']:,.0f} ns CPU per record, "
                      f"send() loop {figures['loop_ns']:,.0f} ns per record, {spans:,} spans; "
                      f"{check.counted:,} records read back"
                      + (", each with one traceparent" if "otel" in name else ""), flush=True)
    base = statistics.median(f["cpu_ns"] for f in seen[LANES[0]])
    base_many = statistics.median(f["cpu_ns"] for f in seen["kengine send_many(), no interceptor"])
    print(f"\n{args.records:,} records per lane, median of {args.rounds} rounds\n")
    print("| lane | client CPU per record (ns) | vs no interceptor (same call) | loop per "
          "record (ns) | record spans exported |")
    print("|---|---:|---:|---:|---:|")
    for name in LANES:
        figures = seen[name]
        cpu = statistics.median(f["cpu_ns"] for f in figures)
        loop = statistics.median(f["loop_ns"] for f in figures)
        spans = statistics.median(f["spans"] for f in figures)
        own = base_many if "send_many()" in name else base
        print(f"| {name} | {cpu:,.0f} | {cpu - own:+,.0f} | {loop:,.0f} | {spans:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
