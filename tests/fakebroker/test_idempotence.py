"""The idempotent producer against a fake broker that keeps producer state as a real one does
(tests/support/fake_broker.py: epochs, sequences, the last five batches) and misbehaves on
purpose: lost responses, sequence gaps, a forgotten producer, missing permissions, chaos. Every
record lands once, in order, and the producer never gets stuck."""
from __future__ import annotations

import pytest

from kengine import Producer
from kengine.errors import ClusterAuthorizationFailedError
from tests.support.fake_broker import INIT_PRODUCER_ID, PRODUCE, Chaos, FakeBroker, Fault


def producer(broker, **settings):
    settings.setdefault("linger_ms", 0)
    settings.setdefault("retry_backoff_ms", 10)
    settings.setdefault("retry_backoff_max_ms", 100)
    settings.setdefault("reconnect_backoff_ms", 10)
    settings.setdefault("reconnect_backoff_max_ms", 100)
    settings.setdefault("request_timeout_ms", 2000)
    p = Producer(bootstrap_servers=broker.bootstrap_servers, **settings)
    assert p.config["enable.idempotence"]
    return p


def test_a_response_lost_after_the_write_is_not_written_twice():
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        p.send("t", b"first").result(30)
        broker.inject(Fault(PRODUCE, drop="after"))     # written, then the connection drops
        md = p.send("t", b"second").result(30)
        p.send("t", b"third").result(30)
    assert broker.values("t") == [b"first", b"second", b"third"]
    assert md.offset == 1   # the retry was recognised as a duplicate of offset 1
    stored = broker.records("t")
    assert [r.sequence for r in stored] == [0, 1, 2]


def test_a_sequence_gap_is_recovered_with_an_epoch_bump():
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        p.send("t", b"a").result(30)
        # the broker says the next batch is out of order although it follows the last ack:
        # it lost data (unclean election). The producer bumps its epoch and carries on.
        broker.inject(Fault(PRODUCE, error_code=45))
        p.send("t", b"b").result(30)
        p.send("t", b"c").result(30)
        assert p._accumulator.producer_epoch == 1
    assert broker.values("t") == [b"a", b"b", b"c"]
    assert [(r.sequence, r.epoch) for r in broker.records("t")] == [(0, 0), (0, 1), (1, 1)]


def test_an_unknown_producer_id_is_recovered_without_a_restart():
    with FakeBroker({"t": 1}) as broker, producer(broker) as p:
        broker.inject(Fault(PRODUCE, error_code=59))    # UNKNOWN_PRODUCER_ID
        p.send("t", b"x").result(30)
        p.send("t", b"y").result(30)
    assert broker.values("t") == [b"x", b"y"]


def test_without_permission_to_produce_idempotently_records_fail_clearly():
    with FakeBroker({"t": 1}) as broker:
        broker.inject(Fault(INIT_PRODUCER_ID, error_code=31, times=-1))
        with producer(broker) as p:
            try:
                error = p.send("t", b"x").exception(timeout=30)
            except ClusterAuthorizationFailedError as refused:
                # the producer became unusable while send() still waited for the topic's
                # metadata: the record was refused, not accepted and then lost
                error = refused
            assert isinstance(error, ClusterAuthorizationFailedError)
            with pytest.raises(ClusterAuthorizationFailedError):
                p.send("t", b"later")                   # refused at once from now on
    assert broker.values("t") == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_chaos_never_duplicates_nor_reorders(seed):
    # Without "corrupt": bytes garbled into a well-formed answer (a made-up error code, say)
    # are indistinguishable from the broker's word, so a record may then fail; the fault tests
    # hold the producer to surviving those. Here every record must land.
    chaos = Chaos(seed=seed, rate=0.3, kinds=("error", "drop", "truncate", "latency"))
    with FakeBroker({"t": 2}, chaos=chaos) as broker, \
            producer(broker, max_in_flight_requests_per_connection=5, linger_ms=2,
                     batch_size=200) as p:
        futures = [p.send("t", b"%d" % i, key=b"%d" % (i % 7)) for i in range(2000)]
        p.flush(120)
        assert all(f.exception() is None for f in futures)
        assert len(broker.requests(PRODUCE)) > 100   # the chaos had plenty to hit
    for partition in (0, 1):
        values = [int(r.value) for r in broker.records("t", partition)]
        assert len(values) == len(set(values))            # nothing twice
        assert values == sorted(values)                   # order kept per partition
    assert sorted(int(v) for v in broker.values("t")) == list(range(2000))
