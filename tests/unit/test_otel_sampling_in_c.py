"""The sampling decision send() makes in C (kengine_ext.TraceStamp, kengine/otel/fast_sampling.py)
against OpenTelemetry's own SDK as the oracle: for each sampler it claims to repeat and each
kind of current context, the SDK's Tracer.start_span() in the same context must reach the same
decision and the same trace id and flags, and the traceparent written in C must be what the W3C
propagator extracts as that context. What it does not repeat must be refused with a reason."""
from __future__ import annotations

import re

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kengine.otel import TracingInterceptor
from kengine.otel.fast_sampling import HandOffIds, trace_stamp_for

UNSAMPLED, SAMPLED, PYTHON = 0, 1, 2
W3C = re.compile(rb"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def stamp_and_tracer(sampler):
    provider = TracerProvider(sampler=sampler)
    tracer = provider.get_tracer("kengine-test")
    stamp, why = trace_stamp_for(tracer, TraceContextTextMapPropagator())
    assert stamp is not None, why
    return stamp, tracer


def in_context(span_context):
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def parsed(header):
    m = W3C.match(header)
    assert m, header
    extracted = trace.get_current_span(TraceContextTextMapPropagator().extract(
        {"traceparent": header.decode()})).get_span_context()
    assert extracted.is_valid
    return int(m[1], 16), int(m[2], 16), int(m[3], 16), extracted


@pytest.mark.parametrize("sampler", [ParentBasedTraceIdRatio(0.3), TraceIdRatioBased(0.3)])
def test_new_traces_are_sampled_at_the_rate_with_the_sdks_flags(sampler):
    stamp, tracer = stamp_and_tracer(sampler)
    sdk_flags = tracer.start_span("oracle").get_span_context().trace_flags  # unsampled or not
    sampled, trace_ids = 0, set()
    for _ in range(20000):
        outcome, header = stamp.decide_for_test()
        if outcome == SAMPLED:
            sampled += 1
            # the SDK's sampler, judging the id chosen in C, agrees
            trace_id = (stamp.root_trace_hi << 64) | stamp.root_trace_lo
            assert sampler.should_sample(None, trace_id, "send t").decision.is_sampled()
            continue
        assert outcome == UNSAMPLED
        trace_id, span_id, flags, extracted = parsed(header)
        assert not sampler.should_sample(None, trace_id, "send t").decision.is_sampled()
        assert trace_id != 0 and span_id != 0 and extracted.trace_id == trace_id
        # the flags the SDK gives a new unsampled span: random-trace-id on, sampled off
        assert flags == (int(sdk_flags) & ~TraceFlags.SAMPLED) == 0x02
        trace_ids.add(trace_id)
    assert 0.28 < sampled / 20000 < 0.32
    assert len(trace_ids) == 20000 - sampled   # every new trace has its own id


def test_a_parent_decides_under_parent_based_and_its_trace_id_continues():
    stamp, tracer = stamp_and_tracer(ParentBasedTraceIdRatio(0.5))
    for flags in (0x00, 0x02):   # an unsampled parent, with and without random-trace-id
        parent = SpanContext(0x0123456789ABCDEF0011223344556677, 0x1122334455667788, True,
                             TraceFlags(flags))
        token = context_api.attach(in_context(parent))
        try:
            oracle = tracer.start_span("send t").get_span_context()
            for _ in range(50):
                outcome, header = stamp.decide_for_test()
                assert outcome == UNSAMPLED
                trace_id, span_id, got_flags, _ = parsed(header)
                assert trace_id == parent.trace_id == oracle.trace_id
                assert span_id != parent.span_id
                assert got_flags == int(oracle.trace_flags) == flags
        finally:
            context_api.detach(token)
    sampled_parent = SpanContext(0x0123456789ABCDEF0011223344556677, 0x1122334455667788, True,
                                 TraceFlags(0x01))
    token = context_api.attach(in_context(sampled_parent))
    try:
        assert tracer.start_span("send t").is_recording()
        assert stamp.decide_for_test() == (SAMPLED, None)
        assert stamp.root_trace_hi == stamp.root_trace_lo == 0   # the parent's trace goes on
    finally:
        context_api.detach(token)


def test_without_parent_based_the_ratio_judges_the_parents_trace_id():
    sampler = TraceIdRatioBased(0.5)
    stamp, tracer = stamp_and_tracer(sampler)
    for trace_id in (0x1 << 100 | 0x10, 0x1 << 100 | 0xFFFFFFFFFFFFFFF0):
        parent = SpanContext(trace_id, 0x99, True, TraceFlags(0x01))   # sampled, but ignored
        token = context_api.attach(in_context(parent))
        try:
            expected = tracer.start_span("send t").is_recording()
            outcome, header = stamp.decide_for_test()
            assert (outcome == SAMPLED) == expected
            if not expected:
                assert parsed(header)[0] == trace_id
        finally:
            context_api.detach(token)


def test_always_on_and_always_off():
    on, _ = stamp_and_tracer(ALWAYS_ON)
    off, _ = stamp_and_tracer(ParentBased(ALWAYS_OFF))
    assert on.decide_for_test()[0] == SAMPLED
    outcome, header = off.decide_for_test()
    assert outcome == UNSAMPLED and parsed(header)[2] == 0x02


def test_a_parent_with_a_tracestate_is_left_to_the_sdk():
    stamp, _ = stamp_and_tracer(ParentBasedTraceIdRatio(0.5))
    parent = SpanContext(0xABC, 0xDEF, True, TraceFlags(0),
                         trace_state=TraceState([("vendor", "x")]))
    token = context_api.attach(in_context(parent))
    try:
        assert stamp.decide_for_test() == (PYTHON, None)
    finally:
        context_api.detach(token)
    assert stamp.decide_for_test()[0] != PYTHON   # the context went back to none


def test_the_handed_over_trace_id_is_used_once_by_the_thread_that_sends():
    ids = HandOffIds(RandomIdGenerator())
    ids.hand_over(0x1234)
    assert ids.generate_trace_id() == 0x1234
    assert ids.generate_trace_id() not in (0, 0x1234)
    assert ids.is_trace_id_random()


class OddSampler(TraceIdRatioBased):
    pass


class OddIds(RandomIdGenerator):
    pass


@pytest.mark.parametrize("make, reason", [
    (lambda: (TracerProvider(sampler=OddSampler(0.1)).get_tracer("x"), None), "sampler"),
    (lambda: (TracerProvider(sampler=ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON))
              .get_tracer("x"), None), "delegates"),
    (lambda: (TracerProvider(id_generator=OddIds()).get_tracer("x"), None), "id generator"),
    (lambda: (TracerProvider().get_tracer("x"), object()), "propagator"),
    (lambda: (trace.ProxyTracer("x"), None), "tracer provider"),
])
def test_what_it_does_not_repeat_stays_in_python_with_a_reason(make, reason):
    tracer, propagator = make()
    stamp, why = trace_stamp_for(tracer, propagator or TraceContextTextMapPropagator())
    assert stamp is None and reason in why


def test_a_subclass_that_overrides_the_hooks_keeps_the_python_path():
    class Mine(TracingInterceptor):
        def on_send(self, record):
            return super().on_send(record)

    mine = Mine(tracer_provider=TracerProvider())
    assert mine.compiled_sampling() is None and "overrides" in mine.sampling_in_c_reason
    plain = TracingInterceptor(tracer_provider=TracerProvider())
    assert plain.compiled_sampling() is not None and plain.sampling_in_c


def test_threads_with_their_own_contexts_each_continue_their_own_trace():
    """One TraceStamp shared by threads whose current spans differ: the Context cache (by
    identity) is re-read whenever another thread's Context comes in, never mixed up."""
    import sys
    import threading

    stamp, _ = stamp_and_tracer(ParentBasedTraceIdRatio(0.5))
    errors = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)   # let the threads interleave inside the loops
    try:
        def work(n):
            parent = SpanContext((n + 1) << 64 | n, 0x1000 + n, True, TraceFlags(0))
            token = context_api.attach(in_context(parent))
            try:
                for _ in range(3000):
                    outcome, header = stamp.decide_for_test()
                    if outcome != UNSAMPLED or parsed(header)[0] != parent.trace_id:
                        errors.append((n, outcome, header))
            finally:
                context_api.detach(token)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
