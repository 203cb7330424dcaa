"""Fuzzing what a broker can send kengine, with hypothesis: the whole response stream of a
connection (framing, correlation ids, every decoder, the ApiVersions / Metadata / Produce
handlers), well-formed but hostile response bodies handed straight to those handlers, record
batches, SASL server messages and JAAS text. Only kengine's own error types may come out;
handlers must never raise. (Decoders alone are fuzzed in test_protocol_fuzz.py and
test_records.py; this file fuzzes what sits behind them.)"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from protocol_values import message_strategy, valid_versions

from kengine_ext import decode_message, encode_message
from kengine_ext.schemas import MESSAGES
from tests.support.fuzz_targets import TARGETS, _Harness, seeds

SOME = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutate(data: st.DataObject, seed: bytes) -> bytes:
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 6))):
        if not raw:
            break
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(("set", "insert", "delete")))
        if action == "set":
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[at:at + data.draw(st.integers(1, 8))]
    return bytes(raw[:data.draw(st.integers(0, len(raw)))])


@pytest.mark.parametrize("target", sorted(TARGETS))
@SOME
@given(blob=st.binary(max_size=300))
def test_random_bytes(target, blob):
    TARGETS[target](blob)


@pytest.mark.parametrize("target", sorted(TARGETS))
@SOME
@given(data=st.data())
def test_mutated_well_formed_inputs(target, data):
    seed = data.draw(st.sampled_from(seeds(target)))
    TARGETS[target](mutate(data, seed))


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_well_formed_seeds_pass(target):
    for seed in seeds(target):
        TARGETS[target](seed)


def _decoded(name: str, version: int, value: dict) -> dict:
    # exactly what the decoder hands a handler (memoryviews, defaults filled in)
    return decode_message(name, version, encode_message(name, version, value))


@pytest.mark.parametrize("version", list(valid_versions(MESSAGES["MetadataResponse"])))
@SOME
@given(data=st.data())
def test_hostile_metadata_bodies_never_break_the_metadata_handler(version, data):
    h = _Harness()
    body = _decoded("MetadataResponse", version,
                    data.draw(message_strategy("MetadataResponse", version)))
    h.metadata.apply(body, 0)
    for topic in ("t", "u"):    # leaders stay addressable partitions of the core
        state = h.core.acc.topic_state(topic)
        assert state.num_partitions == len(state.queues) >= 2


@pytest.mark.parametrize("version", [v for v in valid_versions(MESSAGES["ProduceResponse"])
                                     if v >= 3])
@SOME
@given(data=st.data())
def test_hostile_produce_bodies_finish_or_retry_every_batch(version, data):
    h = _Harness()
    sent = h.batches()
    body = _decoded("ProduceResponse", version,
                    data.draw(message_strategy("ProduceResponse", version)))
    h.sender._on_produce_response(0, dict(sent), 0, body, None)
    for b in sent.values():
        # each batch is done (success or failure) or queued again for a retry
        assert b.done or not b.in_flight


@SOME
@given(data=st.data())
def test_hostile_api_versions_bodies_never_break_connection_set_up(data):
    from tests.support.fuzz_targets import _Offline

    version = data.draw(st.sampled_from(list(valid_versions(MESSAGES["ApiVersionsResponse"]))))
    body = _decoded("ApiVersionsResponse", version,
                    data.draw(message_strategy("ApiVersionsResponse", version)))
    conn = _Offline(0, "127.0.0.1", 9092, client_id="fuzz", request_timeout_ms=1000,
                    setup_timeout_ms=1000, now_ms=0)
    # where a connection is when an ApiVersions answer arrives: its request sent (an answer of
    # UNSUPPORTED_VERSION then sends the retry, and the connection stays in this state)
    conn._start_api_versions()
    conn._on_api_versions(body, None)
    assert conn.state.value in ("ready", "closed", "api-versions")
