"""kengine.otel against a real broker, with OpenTelemetry's own SDK and its in-memory
exporters: a span per record named and attributed as the messaging conventions say, ended at
the acknowledgement with the partition and offset confluent-kafka reads the record at; the
traceparent a consumer extracts from the read-back record names that span (whose parent is the
application's span); sampling; send_many()'s create spans and the call's send span; errors."""
from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kengine import AIOProducer, Producer
from kengine.errors import InvalidPartitionError
from kengine.otel import TracingInterceptor
from tests.support.loops import LOOPS, run
from tests.support.readback import read_all

pytestmark = pytest.mark.integration


def tracing(sampler=None):
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def producer(kafka, interceptor, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, interceptors=[interceptor],
                    client_id="traced-1", **settings)


def aio_producer(kafka, interceptor, buffer_memory):
    """An AIOProducer traced by ``interceptor`` alone, with buffer.memory small enough that
    its sends wait."""
    return AIOProducer(bootstrap_servers=kafka.bootstrap_servers, client_id="traced-1",
                       interceptors=[interceptor], buffer_memory=buffer_memory,
                       batch_size=16384)


def extracted(record):
    """What a consumer's W3C propagator makes of the read-back record's headers."""
    carrier = {k: v.decode() for k, v in record.headers}
    return trace.get_current_span(TraceContextTextMapPropagator().extract(carrier)) \
        .get_span_context()


def test_each_record_has_a_producer_span_that_the_consumer_continues(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    provider, exporter = tracing()
    app = provider.get_tracer("app")
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        with app.start_as_current_span("handle-request") as parent:
            futs = [p.send(topic, b"v%d" % i, key=f"user-{i}") for i in range(20)]
            p.send(topic, None, key=b"tomb", partition=2)
        p.flush(60)
        assert all(f.exception(30) is None for f in futs)
    records = read_all(kafka.bootstrap_servers, topic, at_least=21)
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()
             if s.name == f"send {topic}"}
    assert len(spans) == 21
    for r in records:
        ctx = extracted(r)
        assert ctx.is_valid and ctx.trace_flags.sampled
        span = spans[ctx.span_id]                     # the consumer's parent is our span
        assert ctx.trace_id == parent.get_span_context().trace_id
        assert span.parent.span_id == parent.get_span_context().span_id
        assert span.kind is SpanKind.PRODUCER
        assert span.status.status_code is StatusCode.UNSET
        a = span.attributes
        assert a["messaging.system"] == "kafka"
        assert a["messaging.operation.name"] == a["messaging.operation.type"] == "send"
        assert a["messaging.destination.name"] == topic
        assert a["messaging.client.id"] == "traced-1"
        assert a["messaging.destination.partition.id"] == str(r.partition)
        assert a["messaging.kafka.offset"] == r.offset
        if r.value is None:
            assert a["messaging.kafka.message.key"] == "tomb"
            assert a["messaging.kafka.message.tombstone"] is True
        else:
            assert a["messaging.kafka.message.key"] == r.key.decode()
            assert "messaging.kafka.message.tombstone" not in a
        assert span.instrumentation_scope.name == "kengine"


def test_unsampled_records_carry_the_decision_and_export_nothing(kafka, topic_factory):
    topic = topic_factory(kafka)
    provider, exporter = tracing(ParentBased(ALWAYS_OFF))
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        for i in range(10):
            p.send(topic, b"v%d" % i)
        p.flush(60)
    assert exporter.get_finished_spans() == ()
    for r in read_all(kafka.bootstrap_servers, topic, at_least=10):
        ctx = extracted(r)
        assert ctx.is_valid and not ctx.trace_flags.sampled
        assert [k for k, _ in r.headers] == ["traceparent"]


def test_a_ratio_sampler_decides_per_record(kafka, topic_factory):
    topic = topic_factory(kafka)
    provider, exporter = tracing(TraceIdRatioBased(0.5))
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        p.send_many(topic, [b"%d" % i for i in range(400)])   # create spans, one per record
        for i in range(400):
            p.send(topic, b"%d" % i)
        p.flush(60)
    records = read_all(kafka.bootstrap_servers, topic, at_least=800)
    sampled = {extracted(r).span_id for r in records if extracted(r).trace_flags.sampled}
    finished = {s.context.span_id for s in exporter.get_finished_spans()
                if s.kind is SpanKind.PRODUCER}
    assert sampled == finished and 200 < len(sampled) < 600


def test_send_many_has_a_create_span_per_record_and_one_send_span_linking_them(
        kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    provider, exporter = tracing()
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        assert p.send_many(topic, [b"%d" % i for i in range(50)],
                           keys=[b"k%d" % i for i in range(50)]).result(30).ok
    records = read_all(kafka.bootstrap_servers, topic, at_least=50)
    spans = exporter.get_finished_spans()
    creates = {s.context.span_id: s for s in spans if s.name == f"create {topic}"}
    [call] = [s for s in spans if s.name == f"send {topic}"]
    assert call.kind is SpanKind.CLIENT
    assert call.attributes["messaging.batch.message_count"] == 50
    assert call.attributes["messaging.operation.type"] == "send"
    assert {link.context.span_id for link in call.links} == set(creates)
    for r in records:
        span = creates[extracted(r).span_id]
        assert span.kind is SpanKind.PRODUCER
        assert span.attributes["messaging.operation.type"] == "create"
        assert span.attributes["messaging.kafka.offset"] == r.offset
        assert span.attributes["messaging.destination.partition.id"] == str(r.partition)


def test_send_arrow_traces_each_row_as_send_many_does(kafka, topic_factory):
    import pyarrow as pa
    topic = topic_factory(kafka, partitions=2)
    provider, exporter = tracing()
    table = pa.table({"v": [b"%d" % i for i in range(40)], "k": [f"k{i}" for i in range(40)]})
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        assert p.send_arrow(topic, table, "v", key="k").result(30).ok
    records = read_all(kafka.bootstrap_servers, topic, at_least=40)
    spans = exporter.get_finished_spans()
    creates = {s.context.span_id: s for s in spans if s.name == f"create {topic}"}
    [call] = [s for s in spans if s.name == f"send {topic}"]
    assert call.attributes["messaging.batch.message_count"] == 40 and len(creates) == 40
    for r in records:
        span = creates[extracted(r).span_id]
        assert span.attributes["messaging.kafka.message.key"] == r.key.decode()
        assert span.attributes["messaging.kafka.offset"] == r.offset


def test_a_failed_record_ends_its_span_with_the_error(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=1)
    provider, exporter = tracing()
    with producer(kafka, TracingInterceptor(tracer_provider=provider)) as p:
        with pytest.raises(InvalidPartitionError):
            p.send(topic, b"v", partition=5)
    [span] = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "InvalidPartitionError"
    assert span.attributes["messaging.destination.partition.id"] == "5"
    assert [e.name for e in span.events] == ["exception"]


def test_the_otel_name_uses_the_global_tracer_provider(kafka, topic_factory):
    topic = topic_factory(kafka)
    with producer(kafka, "otel") as p:
        assert isinstance(p._interceptors.interceptors[0], TracingInterceptor)
        p.send(topic, b"v")
        p.flush(60)
    # without a configured SDK the API's no-op tracer still hands out an invalid context:
    # nothing is injected then, and the record goes as it was
    [r] = read_all(kafka.bootstrap_servers, topic, at_least=1)
    assert r.value == b"v"


def test_the_producers_metrics_are_opentelemetry_instruments(kafka, topic_factory):
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from kengine.otel.metrics import ProducerInstruments

    topic = topic_factory(kafka, partitions=2)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    with Producer(bootstrap_servers=kafka.bootstrap_servers, client_id="metered-1") as p:
        instruments = ProducerInstruments(p, meter_provider=provider)
        for i in range(300):
            p.send(topic, b"%d" % i)
        p.flush(60)
        snapshot = p.metrics()
        data = reader.get_metrics_data()
        instruments.close()
    [scope] = [s for rm in data.resource_metrics for s in rm.scope_metrics
               if s.scope.name == "kengine"]
    points = {m.name: list(m.data.data_points) for m in scope.metrics}
    # (Java's record-send-total counts a retried record again: at least 300 on a busy machine)
    [sent] = points["kafka.producer.record-send-total"]
    assert sent.value == snapshot["record-send-total"] >= 300
    assert sent.attributes == {"client.id": "metered-1"}
    [by_topic] = points["kafka.producer.topic.record-send-total"]
    assert by_topic.value == snapshot["topics"][topic]["record-send-total"] >= 300
    assert by_topic.attributes["topic"] == topic
    assert points["kafka.producer.flush-time-ns-total"][0].value > 0
    assert points["kafka.producer.metadata-wait-time-ns-total"][0].value > 0
    assert points["kafka.producer.response-total"][0].value >= 1
    assert points["kafka.producer.record-size-avg"][0].value > 0
    assert 0 <= points["kafka.producer.metadata-age"][0].value < 600
    assert {p.attributes["node.id"] for p in points["kafka.producer.node.request-total"]}


REMOTE = SpanContext(0xFEEDFACE << 64 | 0xCAFE, 0xBEEF, True, TraceFlags(0))


def check_sampled_in_c(bootstrap, topic, exporter, parent, roots=3000):
    """What the C decision must give, read back by confluent-kafka: each record has exactly
    one traceparent; a sampled one names an exported span of the same trace (the SDK kept the
    id chosen in C) and its offset, an unsampled one names no span; ``roots`` records with no
    context sampled at about 0.25; 500 under REMOTE (unsampled) continue its trace unsampled;
    200 under ``parent`` (sampled) continue its trace, sampled."""
    spans = {s.context.span_id: s for s in exporter.get_finished_spans()
             if s.kind is SpanKind.PRODUCER}
    records = read_all(bootstrap, topic, at_least=roots + 700)
    assert len(records) == roots + 700
    kinds = {"root": [0, 0], "remote": [0, 0], "local": [0, 0]}
    for r in records:
        names = [k for k, _ in r.headers]
        assert names.count("traceparent") == 1
        if r.value.startswith(b"root-") and int(r.value[5:]) % 3 == 0:
            assert names == ["app", "traceparent"]
        ctx = extracted(r)
        kind = r.value.split(b"-")[0].decode()
        kinds[kind][ctx.trace_flags.sampled] += 1
        if ctx.trace_flags.sampled:
            span = spans.pop(ctx.span_id)
            assert span.context.trace_id == ctx.trace_id
            assert span.attributes["messaging.kafka.offset"] == r.offset
        else:
            assert ctx.span_id not in spans
        if kind == "remote":
            assert ctx.trace_id == REMOTE.trace_id and not ctx.trace_flags.sampled
        if kind == "local":
            assert ctx.trace_id == parent.get_span_context().trace_id
    assert spans == {}   # every exported record span is on a record read back
    assert 0.2 * roots < kinds["root"][1] < 0.3 * roots
    assert kinds["remote"] == [500, 0] and kinds["local"] == [0, 200]


def test_sampling_decided_in_c_samples_at_the_rate_and_every_record_carries_its_context(
        kafka, topic_factory):
    """The C decision (kengine/otel/fast_sampling.py) end to end for send(): records with no
    context, under an unsampled remote parent and under a sampled local parent, with and
    without the caller's headers and callbacks."""
    topic = topic_factory(kafka, partitions=6)
    provider, exporter = tracing(ParentBasedTraceIdRatio(0.25))
    app = TracerProvider().get_tracer("app")   # its request span is sampled
    interceptor = TracingInterceptor(tracer_provider=provider)
    delivered = []
    with producer(kafka, interceptor, enable_idempotence=True) as p:
        assert interceptor.sampling_in_c, interceptor.sampling_in_c_reason
        for i in range(3000):   # no context: new traces, about a quarter sampled
            p.send(topic, b"root-%d" % i, key=b"%d" % (i % 50),
                   headers=[("app", b"x")] if i % 3 == 0 else None,
                   on_delivery=(lambda e, m: delivered.append(e)) if i % 7 == 0 else None)
        with trace.use_span(NonRecordingSpan(REMOTE)):
            for i in range(500):
                p.send(topic, b"remote-%d" % i)
        with app.start_as_current_span("request") as parent:
            for i in range(200):
                p.send(topic, b"local-%d" % i)
        p.flush(60)
    assert len(delivered) == 429 and not any(delivered)
    check_sampled_in_c(kafka.bootstrap_servers, topic, exporter, parent)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_the_asyncio_producer_decides_sampling_in_c_too(kafka, topic_factory, loop_kind):
    """As above with AIOProducer, whose buffer.memory is small enough that sends wait for it
    (the waiting path keeps the traceparent decided before the wait)."""
    topic = topic_factory(kafka, partitions=6)
    provider, exporter = tracing(ParentBasedTraceIdRatio(0.25))
    app = TracerProvider().get_tracer("app")
    interceptor = TracingInterceptor(tracer_provider=provider)
    pad = b"." * 2000

    async def main():
        async with aio_producer(kafka, interceptor, 256 * 1024) as p:
            assert interceptor.sampling_in_c, interceptor.sampling_in_c_reason
            delivered = []
            futures = []
            for i in range(3000):
                futures.append(await p.send(
                    topic, b"root-%d" % i, key=pad + b"%d" % (i % 50),
                    headers={"app": b"x"} if i % 3 == 0 else None,
                    on_delivery=(lambda e, m: delivered.append(e)) if i % 7 == 0 else None))
            with trace.use_span(NonRecordingSpan(REMOTE)):
                futures += await asyncio.gather(*[p.send(topic, b"remote-%d" % i)
                                                  for i in range(500)])
            with app.start_as_current_span("request") as parent:
                for i in range(200):
                    futures.append(await p.send(topic, b"local-%d" % i))
            await p.flush()
            assert all(f.exception(0) is None for f in futures)
            # on_delivery runs on the loop, scheduled from the sender thread: it may still be
            # queued when flush() returns
            for _ in range(500):
                if len(delivered) >= 429:
                    break
                await asyncio.sleep(0.01)
            assert len(delivered) == 429 and not any(delivered)
            return p._gate.waits, parent

    waits, parent = run(loop_kind, main)
    assert waits > 0   # the waiting path was taken
    check_sampled_in_c(kafka.bootstrap_servers, topic, exporter, parent)


def test_a_callers_traceparent_is_replaced_by_the_records_own(kafka, topic_factory):
    topic = topic_factory(kafka)
    provider, _ = tracing(ParentBased(ALWAYS_OFF))
    interceptor = TracingInterceptor(tracer_provider=provider)
    stale = b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"
    with producer(kafka, interceptor) as p:
        assert interceptor.sampling_in_c
        p.send(topic, b"v", headers=[("traceparent", stale), ("app", b"y")])
        p.flush(60)
    [r] = read_all(kafka.bootstrap_servers, topic, at_least=1)
    assert [k for k, _ in r.headers] == ["traceparent", "app"]
    assert dict(r.headers)["traceparent"] != stale and extracted(r).is_valid


def test_send_many_decides_in_c_and_traces_only_the_sampled_records(kafka, topic_factory):
    """send_many() with the C decision: one C loop decides every record; the sampled ones get
    create spans (the SDK keeping the trace id drawn in C), the call's send span counts every
    record and links the sampled ones; read back by confluent-kafka, each record has one
    traceparent, sampled exactly when a span was exported for it."""
    topic = topic_factory(kafka, partitions=3)
    provider, exporter = tracing(ParentBasedTraceIdRatio(0.25))
    interceptor = TracingInterceptor(tracer_provider=provider)
    n = 2000
    with producer(kafka, interceptor) as p:
        assert interceptor.sampling_in_c, interceptor.sampling_in_c_reason
        bulks = [p.send_many(topic, [b"root-%d" % i for i in range(c, c + 50)],
                             keys=[b"%d" % (i % 40) for i in range(c, c + 50)],
                             headers=[[("app", b"x")] if i % 3 == 0 else None
                                      for i in range(c, c + 50)])
                 for c in range(0, n, 50)]   # 40 calls: some call spans are sampled
        with trace.use_span(NonRecordingSpan(REMOTE)):
            bulks.append(p.send_many(topic, [b"remote-%d" % i for i in range(500)]))
        assert all(b.result(30).ok for b in bulks)
    records = read_all(kafka.bootstrap_servers, topic, at_least=n + 500)
    assert len(records) == n + 500
    spans = exporter.get_finished_spans()
    creates = {s.context.span_id: s for s in spans if s.name == f"create {topic}"}
    calls = [s for s in spans if s.name == f"send {topic}"]
    sampled, sampled_ids = 0, set()
    for r in records:
        names = [k for k, _ in r.headers]
        assert names.count("traceparent") == 1
        if r.value.startswith(b"root-") and int(r.value[5:]) % 3 == 0:
            assert names == ["app", "traceparent"]
        ctx = extracted(r)
        if r.value.startswith(b"remote-"):
            assert ctx.trace_id == REMOTE.trace_id and not ctx.trace_flags.sampled
        if ctx.trace_flags.sampled:
            sampled += 1
            sampled_ids.add(ctx.span_id)
            span = creates.pop(ctx.span_id)
            assert span.context.trace_id == ctx.trace_id
            assert span.attributes["messaging.kafka.offset"] == r.offset
    assert creates == {} and 0.2 * n < sampled < 0.3 * n
    # a call's own span is judged as a root (about 10 of the 40): it counts every record of
    # its call and links only the call's sampled ones
    assert calls and all(c.attributes["messaging.batch.message_count"] == 50 for c in calls)
    for call in calls:
        assert {link.context.span_id for link in call.links} <= sampled_ids
    assert sum(len(c.links) for c in calls) < 0.5 * 50 * len(calls)


@pytest.mark.parametrize("loop_kind", LOOPS)
def test_asyncio_send_many_decides_in_c_too(kafka, topic_factory, loop_kind):
    """AIOProducer.send_many() with the C decision, buffer.memory small enough that calls wait
    and resume: one traceparent per record, sampled exactly when a create span was exported."""
    topic = topic_factory(kafka, partitions=3)
    provider, exporter = tracing(ParentBasedTraceIdRatio(0.25))
    interceptor = TracingInterceptor(tracer_provider=provider)
    pad = b"." * 1000

    async def main():
        async with aio_producer(kafka, interceptor, 128 * 1024) as p:
            assert interceptor.sampling_in_c, interceptor.sampling_in_c_reason
            bulks = [await p.send_many(
                topic, [pad + b"%d" % i for i in range(c, c + 100)],
                headers=[{"app": b"x"} if i % 2 else None for i in range(c, c + 100)])
                for c in range(0, 2000, 100)]   # 2 MB, not waiting for outcomes
            assert all([(await b).ok for b in bulks])
            return p._gate.waits

    assert run(loop_kind, main) > 0   # calls waited for memory and resumed
    records = read_all(kafka.bootstrap_servers, topic, at_least=2000)
    assert len(records) == 2000
    creates = {s.context.span_id: s for s in exporter.get_finished_spans()
               if s.name == f"create {topic}"}
    sampled = 0
    for r in records:
        assert [k for k, _ in r.headers].count("traceparent") == 1
        ctx = extracted(r)
        if ctx.trace_flags.sampled:
            sampled += 1
            assert creates.pop(ctx.span_id).attributes["messaging.kafka.offset"] == r.offset
    assert creates == {} and 400 < sampled < 600


def test_a_send_many_that_raises_ends_its_sampled_spans_with_the_error(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=1)
    provider, exporter = tracing(ParentBasedTraceIdRatio(1.0))
    interceptor = TracingInterceptor(tracer_provider=provider)
    with producer(kafka, interceptor) as p:
        assert interceptor.sampling_in_c
        with pytest.raises(InvalidPartitionError):
            p.send_many(topic, [b"a", b"b", b"c"], partition=7)
    spans = exporter.get_finished_spans()
    creates = [s for s in spans if s.name == f"create {topic}"]
    [call] = [s for s in spans if s.name == f"send {topic}"]
    assert len(creates) == 3
    assert all(s.status.status_code is StatusCode.ERROR for s in creates)
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "InvalidPartitionError"


def test_a_python_partitioner_sees_the_records_headers_as_pairs(kafka, topic_factory):
    """When Python code of the send path reads headers (here a partitioner), send_many()'s C
    decision gives them as (name, value) pairs, the traceparent last (elsewhere it passes
    them in wire form, which no Python code sees); send() adds its traceparent in C after the
    partitioner ran, which sees the caller's headers."""
    topic = topic_factory(kafka, partitions=2)
    seen = []

    class ByHeaders:
        def partition(self, topic, key, value, headers, num_partitions, available):
            seen.append(headers)
            return 1

    provider, _ = tracing(ParentBased(ALWAYS_OFF))
    interceptor = TracingInterceptor(tracer_provider=provider)
    with producer(kafka, interceptor, partitioner=ByHeaders()) as p:
        assert interceptor.sampling_in_c
        p.send(topic, b"a", headers=[("app", b"x")])
        p.send_many(topic, [b"b", b"c"], headers=[{"app": b"y"}, None])
        p.flush(60)
    assert seen[0] == [("app", b"x")]
    for headers in seen[1:]:
        assert isinstance(headers, list) and [k for k, _ in headers][-1] == "traceparent"
    assert [k for k, _ in seen[1]] == ["app", "traceparent"]
    records = read_all(kafka.bootstrap_servers, topic, at_least=3)
    assert all(r.partition == 1 and extracted(r).is_valid for r in records)
