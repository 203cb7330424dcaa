"""The producer against a fake broker that misbehaves on purpose (tests/support/fake_broker.py):
error codes, latency past request.timeout.ms, dropped connections, truncated and corrupted
responses, throttling, and seeded chaos. The producer keeps running, retries what is
retriable, fails what is not with the broker's typed error, and finishes every record within
its timeouts. Without idempotence a response lost after the write means a duplicate, which the
tests state rather than hide."""
from __future__ import annotations

import itertools
import logging
import time

import pytest

from kengine import Producer
from kengine.errors import (
    BROKER_ERRORS,
    BrokerError,
    InvalidConfigError,
    InvalidRecordError,
    KafkaTimeoutError,
    MessageTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownBrokerError,
    error_for_code,
)
from tests.support.fake_broker import METADATA, Chaos, FakeBroker, Fault
from tests.support.wait import wait_until


def producer(broker, **settings):
    settings.setdefault("enable_idempotence", False)
    settings.setdefault("linger_ms", 0)
    settings.setdefault("retry_backoff_ms", 10)
    settings.setdefault("retry_backoff_max_ms", 100)
    settings.setdefault("reconnect_backoff_ms", 10)
    settings.setdefault("reconnect_backoff_max_ms", 100)
    return Producer(bootstrap_servers=broker.bootstrap_servers, **settings)


# The seed's checklist: retried, or failed at once.
CHECKLIST = {"NOT_LEADER_OR_FOLLOWER": True, "NETWORK_EXCEPTION": True,
             "UNKNOWN_TOPIC_OR_PARTITION": True, "REQUEST_TIMED_OUT": True,
             "NOT_ENOUGH_REPLICAS": True, "INVALID_CONFIG": False,
             "TOPIC_AUTHORIZATION_FAILED": False, "MESSAGE_TOO_LARGE": False,
             "RECORD_LIST_TOO_LARGE": False}


def test_the_error_table_classifies_the_checklist():
    by_name = {cls.name: cls for cls in BROKER_ERRORS.values()}
    assert {name: by_name[name].retriable for name in CHECKLIST} == CHECKLIST
    unknown = error_for_code(4242, "from a newer broker")
    assert isinstance(unknown, UnknownBrokerError) and unknown.code == 4242
    assert not unknown.retriable


def test_every_broker_error_code_is_retried_or_failed_as_the_table_says():
    codes = sorted(BROKER_ERRORS)
    with FakeBroker({"t": 1}) as broker, producer(broker, delivery_timeout_ms=60_000) as p:
        for code in codes:
            before = len(broker.requests())
            broker.inject(Fault(error_code=code))
            error = p.send("t", b"%d" % code).exception(timeout=30)
            attempts = len(broker.requests()) - before
            if BROKER_ERRORS[code].retriable:
                assert (error, attempts) == (None, 2), BROKER_ERRORS[code].name
            else:
                assert (type(error), attempts) == (BROKER_ERRORS[code], 1), \
                    BROKER_ERRORS[code].name
        retried = {c for c in codes if BROKER_ERRORS[c].retriable}
        assert broker.values("t") == [b"%d" % c for c in codes if c in retried]


@pytest.mark.parametrize("code,name", [
    (6, "NOT_LEADER_OR_FOLLOWER"), (13, "NETWORK_EXCEPTION"),
    (3, "UNKNOWN_TOPIC_OR_PARTITION"), (7, "REQUEST_TIMED_OUT"), (19, "NOT_ENOUGH_REPLICAS"),
])
def test_retriable_errors_are_retried_until_delivered(code, name, caplog):
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        broker.inject(Fault(error_code=code, times=3))
        with caplog.at_level(logging.INFO, logger="kengine.sender"):
            md = p.send("t", b"persistent").result(30)
        assert md.offset == 0
        assert broker.values("t") == [b"persistent"]       # error answers wrote nothing
        assert len(broker.requests()) == 4
        assert sum(f"retrying 1 record(s) for t-0 after [{name} ({code})]" in r.message
                   for r in caplog.records) == 3


def test_concurrent_transactions_is_retried_after_a_short_wait_not_retry_backoff(caplog):
    # Transactions v2: the previous transaction's markers are still being written; waiting
    # retry.backoff.ms each time would put a floor under every transaction
    with FakeBroker({"t": 1}) as broker, producer(broker, retry_backoff_ms=2000,
                                                  retry_backoff_max_ms=4000) as p:
        broker.inject(Fault(error_code=51, times=2))
        with caplog.at_level(logging.DEBUG, logger="kengine.sender"):
            assert p.send("t", b"next transaction").result(30).offset == 0
        waits = [int(r.message.rsplit("in ", 1)[1].split()[0]) for r in caplog.records
                 if "after [CONCURRENT_TRANSACTIONS (51)]" in r.message]
        assert len(waits) == 2 and all(w <= 24 for w in waits)   # 20 ms +20% jitter
        assert broker.values("t") == [b"next transaction"]


@pytest.mark.parametrize("code,error_type", [
    (40, InvalidConfigError), (29, TopicAuthorizationFailedError),
    (10, MessageTooLargeError), (18, RecordListTooLargeError), (999, UnknownBrokerError),
])
def test_non_retriable_errors_fail_at_once(code, error_type):
    with FakeBroker({"t": 1}) as broker, producer(broker, delivery_timeout_ms=120_000) as p:
        broker.inject(Fault(error_code=code, error_message="the broker says no", times=-1))
        future = p.send("t", b"doomed")
        error = future.exception(timeout=30)
        assert type(error) is error_type and error.code == code
        assert "the broker says no" in str(error) and "topic=t, partition=0" in str(error)
        assert len(broker.requests()) == 1                   # no retry
        assert p.send("t", b"next").exception(timeout=30).code == code   # still running


def test_not_enough_replicas_backs_off_and_retries_until_delivery_timeout():
    with FakeBroker({"t": 1}) as broker, producer(
            broker, delivery_timeout_ms=4000, request_timeout_ms=1000, retry_backoff_ms=100,
            retry_backoff_max_ms=800) as p:
        broker.inject(Fault(error_code=19, times=-1))
        error = p.send("t", b"x").exception(timeout=60)
        assert isinstance(error, KafkaTimeoutError)
        assert "delivery.timeout.ms=4000" in str(error)
        assert "last error: [NOT_ENOUGH_REPLICAS (19)]" in str(error)
        attempts = [s.at for s in broker.requests()]
        assert len(attempts) >= 3
        # exponential backoff with +-20% jitter: each wait at least 80% of its nominal value
        for i, (a, b) in enumerate(itertools.pairwise(attempts)):
            assert b - a >= 0.8 * min(0.8, 0.1 * 2 ** i) - 0.01
        time.sleep(0.5)
        assert len(broker.requests()) == len(attempts)       # nothing after the failure


def test_a_response_slower_than_request_timeout_is_abandoned_and_retried():
    with FakeBroker({"t": 1}) as broker, producer(broker, request_timeout_ms=1000,
                                                  delivery_timeout_ms=30_000) as p:
        broker.inject(Fault(latency_ms=2500))
        assert p.send("t", b"slow").result(30).offset >= 0
        produce = broker.requests()
        assert len(produce) == 2 and produce[0].connection != produce[1].connection
        # the slow broker wrote the first attempt too: without idempotence, a duplicate
        assert b"slow" in broker.values("t")


@pytest.mark.parametrize("fault,copies", [
    (Fault(drop="before"), 1),          # nothing written: exactly one copy after the retry
    (Fault(drop="after"), 2),           # written, answer lost: the retry duplicates it
    (Fault(drop="mid-response"), 2),
    (Fault(truncate=True), 2),
    (Fault(corrupt=True), None),        # may decode to nonsense or not decode: >= 1 copy
])
def test_lost_or_mangled_responses_are_retried_on_a_new_connection(fault, copies):
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        broker.inject(fault)
        assert p.send("t", b"v").result(30).offset >= 0
        values = broker.values("t")
        if copies is None:
            assert values.count(b"v") >= 1
        else:
            assert values == [b"v"] * copies


def test_throttled_broker_gets_no_request_before_the_throttle_ends():
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        broker.inject(Fault(throttle_ms=1500))
        p.send("t", b"first").result(30)
        answered = time.monotonic()
        p.send("t", b"second").result(30)
        first, second = broker.requests()
        assert second.at >= answered and second.at - first.at >= 1.5
        assert broker.values("t") == [b"first", b"second"]


def test_a_broker_that_never_answers_cannot_hang_the_producer_past_its_timeouts():
    with FakeBroker({"t": 1}) as broker:
        p = producer(broker, request_timeout_ms=1000, delivery_timeout_ms=3000)
        broker.inject(Fault(latency_ms=4000, times=-1))
        t0 = time.monotonic()
        futures = [p.send("t", b"%d" % i) for i in range(20)]
        for f in futures:
            assert isinstance(f.exception(timeout=60), KafkaTimeoutError)
        p.close(timeout=10)
        assert time.monotonic() - t0 < 30


def test_metadata_errors_fail_send_at_once():
    with FakeBroker({"t": 1}) as broker, producer(broker, max_block_ms=60_000) as p:
        broker.inject(Fault(api_key=METADATA, error_code=29, times=-1))
        t0 = time.monotonic()
        with pytest.raises(TopicAuthorizationFailedError, match="topic=t"):
            p.send("t", b"x")
        assert time.monotonic() - t0 < 30


def test_seeded_chaos_with_retriable_faults_delivers_everything():
    # Without "corrupt": garbled bytes can decode into a well-formed answer carrying an error
    # code nobody sent (136, say), which fails its records as the broker's word would; the
    # next test holds the producer to a typed outcome under those.
    chaos = Chaos(seed=8, rate=0.4, max_latency_ms=200,
                  kinds=("error", "drop", "truncate", "latency", "throttle"))
    with FakeBroker({"a": 3, "b": 2}, chaos=chaos) as broker:
        with producer(broker, delivery_timeout_ms=120_000, request_timeout_ms=1000,
                      batch_size=512) as p:
            futures = []
            for i in range(600):
                futures.append(p.send("ab"[i % 2], b"r%04d" % i, key=b"%d" % (i % 7)))
                if i % 10 == 9:
                    p.flush(120)   # many small requests: many chances to misbehave
            for f in futures:
                f.result(timeout=120)
        written = set(broker.values("a")) | set(broker.values("b"))
        assert written >= {b"r%04d" % i for i in range(600)}
        faults = [s.fault for s in broker.requests() if s.fault is not None]
        assert len(faults) >= 10   # the chaos really happened


def test_seeded_chaos_with_fatal_errors_finishes_every_record_with_a_typed_outcome():
    chaos = Chaos(seed=3, rate=0.5, error_codes=(6, 19, 29, 10, 87), max_latency_ms=100)
    with (
        FakeBroker({"t": 4}, chaos=chaos) as broker,
        producer(broker, delivery_timeout_ms=20_000, request_timeout_ms=1000, batch_size=256) as p,
    ):
        futures = []
        for i in range(400):
            futures.append(p.send("t", b"%d" % i))
            if i % 10 == 9:
                p.flush(120)
        outcomes = [f.exception(timeout=120) for f in futures]
    assert all(e is None or isinstance(e, (BrokerError, KafkaTimeoutError)) for e in outcomes)
    assert any(e is None for e in outcomes) and any(e is not None for e in outcomes)
    # the injected fatal codes fail records with their own types; a garbled answer ("corrupt")
    # may fail some with whatever error code it decodes to, typed all the same
    assert {type(e) for e in outcomes if isinstance(e, BrokerError)} & {
        TopicAuthorizationFailedError, MessageTooLargeError, InvalidRecordError}


def test_acks_zero_loses_what_a_dropped_connection_swallowed_and_carries_on():
    # a long linger keeps the 20 records in one batch until flush(): one request, the one
    # the fault swallows (with linger 0 a loaded machine could send them in two, and the
    # second would arrive over the new connection)
    with FakeBroker({"t": 1}) as broker, producer(broker, acks=0, linger_ms=60_000) as p:
        broker.inject(Fault(drop="before", times=1))
        lost = [p.send("t", b"lost-%d" % i) for i in range(20)]
        p.flush(30)
        # acks=0: done once written to the socket; the broker never says what it kept
        assert all(f.done() and f.exception() is None for f in lost)

        def delivered():
            p.send("t", b"later")
            p.flush(30)
            return b"later" in broker.values("t")

        wait_until(delivered, what="a record to arrive over a new connection", timeout=30)
        assert not any(v.startswith(b"lost-") for v in broker.values("t"))
