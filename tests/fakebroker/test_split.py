"""Batches a broker refuses as too large (MESSAGE_TOO_LARGE) are split and resent, as Java's
producer does; only a single record over the limit fails. Against the fake broker
(tests/support/fake_broker.py), which keeps idempotent producer state as a real broker does and
refuses batches over a topic's max.message.bytes; tests/integration/test_split.py does the same
against real Kafka."""
from __future__ import annotations

import logging
import random

import pytest

from kengine import Producer
from kengine.errors import MessageTooLargeError
from tests.support.fake_broker import PRODUCE, FakeBroker, Fault


def producer(broker, **settings):
    settings.setdefault("retry_backoff_ms", 10)
    settings.setdefault("retry_backoff_max_ms", 100)
    settings.setdefault("request_timeout_ms", 5000)
    return Producer(bootstrap_servers=broker.bootstrap_servers, **settings)


def values(prefix, n, seed):
    # half random (so lz4 and zstd have something to do but cannot shrink it to nothing)
    rnd = random.Random(seed)
    return [b"%s%04d-" % (prefix, i) + rnd.randbytes(24).hex().encode() + b"." * 40
            for i in range(n)]


def test_a_refused_batch_is_resent_in_smaller_batches_with_its_sequences(caplog):
    heard = {}
    with FakeBroker({"t": 1}) as broker, producer(broker, linger_ms=10_000) as p:
        assert p.config["enable.idempotence"]
        broker.inject(Fault(PRODUCE, error_code=10, error_message="too big for t"))
        futures = [p.send("t", b"v%02d" % i,
                          on_delivery=lambda e, md, i=i: heard.__setitem__(i, (e, md)))
                   for i in range(20)]
        with caplog.at_level(logging.INFO, logger="kengine.sender"):
            p.flush(30)
        offsets = [f.result(0).offset for f in futures]
        assert p.metrics()["batch-split-total"] == 1
    assert offsets == list(range(20))
    assert {i: (e, md.offset) for i, (e, md) in heard.items()} == {i: (None, i) for i in range(20)}
    assert broker.values("t") == [b"v%02d" % i for i in range(20)]
    stored = broker.records("t")
    assert [(r.sequence, r.epoch) for r in stored] == [(i, 0) for i in range(20)]
    # the refused request carried all 20; the pieces follow it, each starting its sequences
    # where the one before ended
    counts = [s.record_counts[("t", 0)] for s in broker.requests(PRODUCE)]
    assert counts[0] == 20 and len(counts) >= 3 and sum(counts[1:]) == 20
    bases = sorted({r.base_sequence for r in stored})
    assert bases == [sum(counts[1:i]) for i in range(1, len(counts))]
    assert "refused a batch of 20 record(s)" in caplog.text


@pytest.mark.parametrize("codec", ["none", "lz4", "zstd"])
@pytest.mark.parametrize("idempotent", [True, False])
def test_batches_over_the_topic_limit_are_split_until_they_fit(idempotent, codec):
    sent = {0: values(b"s0-", 150, 1) + values(b"b0-", 100, 2),
            1: values(b"s1-", 150, 3) + values(b"b1-", 100, 4)}
    with FakeBroker({"t": 2}, max_message_bytes={"t": 700}) as broker, producer(
            broker, enable_idempotence=idempotent, linger_ms=5000, batch_size=16384,
            compression_type=codec,
            # without idempotence, only one request at a time keeps a partition's order
            max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = {part: [p.send("t", v, partition=part) for v in sent[part][:150]]
                   for part in (0, 1)}
        bulks = {part: p.send_many("t", sent[part][150:], partition=part) for part in (0, 1)}
        p.flush(120)
        assert p.metrics()["batch-split-total"] > 0
        for part in (0, 1):
            offsets = [f.result(0).offset for f in futures[part]]
            result = bulks[part].result(0)
            assert result.ok
            offsets += [md.offset for md in result.metadata()]
            assert offsets == list(range(250))           # consecutive, in send order
    for part in (0, 1):
        stored = broker.records("t", part)
        assert [r.value for r in stored] == sent[part]    # once each, in order
        if idempotent:
            assert [(r.sequence, r.epoch) for r in stored] == [(i, 0) for i in range(250)]
    # batches of far more than fit went out first (7 records of ~100 bytes fit in 700)
    assert max(n for s in broker.requests(PRODUCE) for n in s.record_counts.values()) > 50


@pytest.mark.parametrize("idempotent", [True, False])
def test_only_the_record_over_the_topic_limit_fails(idempotent):
    small = [b"a%03d" % i for i in range(50)] + [b"c%03d" % i for i in range(50)]
    sent = small[:50] + [b"B" * 2000] + small[50:]
    with FakeBroker({"t": 1}, max_message_bytes={"t": 1000}) as broker, producer(
            broker, enable_idempotence=idempotent, linger_ms=5000,
            max_in_flight_requests_per_connection=5 if idempotent else 1) as p:
        futures = [p.send("t", v) for v in sent]
        p.flush(60)
        errors = [f.exception(0) for f in futures]
        assert [i for i, e in enumerate(errors) if e is not None] == [50]
        assert isinstance(errors[50], MessageTooLargeError)
        # the producer carries on
        assert p.send("t", b"after").result(30).offset == 100
    assert broker.values("t") == [*small, b"after"]


def test_a_record_over_the_topic_limit_is_dead_lettered_alone():
    with FakeBroker({"t": 1, "dlq": 1}, max_message_bytes={"t": 1000}) as broker, producer(
            broker, linger_ms=5000, dead_letter_topic="dlq") as p:
        futures = [p.send("t", v) for v in [b"x1", b"B" * 2000, b"x2"]]
        p.flush(60)
        assert [f.exception(0) is None for f in futures] == [True, False, True]
    assert broker.values("t") == [b"x1", b"x2"]
    assert broker.values("dlq") == [b"B" * 2000]
