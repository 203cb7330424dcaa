"""Brokers older than Kafka 2.5 cannot bump a producer's epoch on request (InitProducerId before
v3, KIP-360). Against a fake broker that advertises InitProducerId up to v2, kengine degrades as
Java's client does (TransactionManager.canBumpEpoch): a transactional producer whose error needs
a new epoch stops with TransactionNotRecoverableError saying what to do, and a failed
transaction is aborted and the next one goes on with the same epoch; the idempotent producer
bumps its epoch itself (every broker accepts a new epoch at sequence 0) and takes a new producer
id when the epochs run out. The same faults against a coordinator that speaks v3+ abort and
carry on with a bumped epoch."""
from __future__ import annotations

import pytest

from kengine import Producer
from kengine.errors import (
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionAbortableError,
    TransactionNotRecoverableError,
    UnknownProducerIdError,
)
from tests.support.fake_broker import (
    ADD_PARTITIONS_TO_TXN,
    END_TXN,
    INIT_PRODUCER_ID,
    PRODUCE,
    FakeBroker,
    Fault,
)

OLD = {INIT_PRODUCER_ID: 2}   # Kafka 2.4 and older
UNKNOWN_PRODUCER_ID = UnknownProducerIdError.code


def producer(broker, **settings):
    for key, value in {"linger_ms": 0, "retry_backoff_ms": 10, "retry_backoff_max_ms": 100,
                       "reconnect_backoff_ms": 10, "reconnect_backoff_max_ms": 100,
                       "request_timeout_ms": 2000, "max_block_ms": 20000}.items():
        settings.setdefault(key, value)
    return Producer(bootstrap_servers=broker.bootstrap_servers, **settings)


def committed_transaction(p, *values):
    p.begin_transaction()
    for v in values:
        p.send("t", v)
    p.commit_transaction()


def bump_requests(broker):
    """The InitProducerId requests that named the producer (asked for its epoch to be bumped)."""
    return [(v, b) for v, b in broker.init_producer_id_requests
            if b.get("producer_id", -1) >= 0]


# Where the coordinator says it forgot the producer (transactional.id expired, coordinator
# state lost): Java's abortableErrorIfPossible. (The API key: a Fault counts down as it is
# used, so each test makes its own.)
FORGOTTEN = [
    pytest.param(ADD_PARTITIONS_TO_TXN, TransactionAbortableError, id="AddPartitionsToTxn"),
    pytest.param(END_TXN, UnknownProducerIdError, id="EndTxn"),
]


@pytest.mark.parametrize("api_key, _", FORGOTTEN)
def test_old_coordinator_an_error_needing_a_new_epoch_is_fatal_and_says_what_to_do(api_key, _):
    with FakeBroker({"t": 1}, max_versions=OLD) as broker:
        with producer(broker, transactional_id="tx") as p:
            p.init_transactions()
            committed_transaction(p, b"a", b"b")
            p.begin_transaction()
            # before the send: the sender adds the partition to the transaction at once
            broker.inject(Fault(api_key, error_code=UNKNOWN_PRODUCER_ID))
            p.send("t", b"c")
            with pytest.raises(TransactionNotRecoverableError) as raised:
                p.commit_transaction()
            error = raised.value
            message = str(error)
            assert "'tx'" in message and "InitProducerId up to v2" in message
            assert "Kafka 2.5" in message and "create a new one" in message
            assert "init_transactions()" in message
            assert error.init_producer_id_max_version == 2
            assert isinstance(error.__cause__, UnknownProducerIdError)
            # fatal: nothing else is accepted, not even an abort
            for call in (p.begin_transaction, p.abort_transaction,
                         lambda: p.send("t", b"refused")):
                with pytest.raises(TransactionNotRecoverableError):
                    call()
        # no InitProducerId that a pre-2.5 coordinator would have answered by bumping the
        # epoch of whoever asked
        assert len(broker.init_producer_id_requests) == 1
        assert broker.committed("t") == [b"a", b"b"]      # what was committed stays
        # what the message says to do: a new producer with the same transactional.id
        with producer(broker, transactional_id="tx") as again:
            again.init_transactions()
            committed_transaction(again, b"d")
        assert broker.committed("t") == [b"a", b"b", b"d"]
        assert broker.transactions["tx"].epoch == 1


@pytest.mark.parametrize("api_key, raised", FORGOTTEN)
def test_new_coordinator_the_same_error_aborts_bumps_the_epoch_and_goes_on(api_key, raised):
    with FakeBroker({"t": 1}) as broker:
        with producer(broker, transactional_id="tx") as p:
            p.init_transactions()
            committed_transaction(p, b"a", b"b")
            p.begin_transaction()
            # before the send: the sender adds the partition to the transaction at once
            broker.inject(Fault(api_key, error_code=UNKNOWN_PRODUCER_ID))
            p.send("t", b"c")
            with pytest.raises(raised):
                p.commit_transaction()
            p.abort_transaction()
            committed_transaction(p, b"d")
            assert p._accumulator.producer_epoch == 1
        (version, body), = bump_requests(broker)
        assert version >= 3 and (body["producer_id"], body["producer_epoch"]) == (1000, 0)
        assert broker.committed("t") == [b"a", b"b", b"d"]


@pytest.mark.parametrize("versions, epoch_after", [(OLD, 0), ({}, 1)],
                         ids=["old-coordinator", "new-coordinator"])
def test_a_failed_record_aborts_the_transaction_then_goes_on(versions, epoch_after):
    # Java's maybeTransitionToErrorState: abortable either way; a new epoch after the abort
    # only where the coordinator can give one
    with FakeBroker({"t": 1}, max_versions=versions) as broker:
        with producer(broker, transactional_id="tx") as p:
            p.init_transactions()
            committed_transaction(p, b"a")
            p.begin_transaction()
            broker.inject(Fault(PRODUCE, error_code=TopicAuthorizationFailedError.code))
            failed = p.send("t", b"denied")
            assert isinstance(failed.exception(timeout=30), TopicAuthorizationFailedError)
            with pytest.raises(TransactionAbortableError):
                p.commit_transaction()
            p.abort_transaction()
            committed_transaction(p, b"b", b"c")
            assert p._accumulator.producer_epoch == epoch_after
        assert len(bump_requests(broker)) == epoch_after
        assert len(broker.init_producer_id_requests) == 1 + epoch_after
        assert broker.committed("t") == [b"a", b"b", b"c"]


@pytest.mark.parametrize("versions", [OLD, {}], ids=["old-coordinator", "new-coordinator"])
def test_records_never_acknowledged_in_a_transaction(versions):
    # The only attempt of a batch is still unanswered when delivery.timeout.ms passes: the
    # producer cannot know whether the broker wrote it (Java's maybeResolveSequences).
    old = bool(versions)
    with FakeBroker({"t": 1}, max_versions=versions) as broker:
        with producer(broker, transactional_id="tx", request_timeout_ms=600,
                      delivery_timeout_ms=600) as p:
            p.init_transactions()
            committed_transaction(p, b"a")
            p.begin_transaction()
            broker.inject(Fault(PRODUCE, latency_ms=1500))
            lost = p.send("t", b"unknown")
            assert isinstance(lost.exception(timeout=30), KafkaError)
            if old:
                with pytest.raises(TransactionNotRecoverableError) as raised:
                    p.commit_transaction()
                assert "isn't safe to continue" in str(raised.value)
                with pytest.raises(TransactionNotRecoverableError):
                    p.begin_transaction()
            else:
                with pytest.raises(TransactionAbortableError):
                    p.commit_transaction()
                p.abort_transaction()
                committed_transaction(p, b"b")
                assert p._accumulator.producer_epoch == 1
        assert len(bump_requests(broker)) == (0 if old else 1)
        assert broker.committed("t") == ([b"a"] if old else [b"a", b"b"])


def test_old_broker_idempotent_producer_bumps_its_own_epoch():
    # Java bumps an idempotent producer's epoch itself on any broker: a broker accepts a newer
    # epoch at sequence 0 (Kafka 2.4's ProducerStateManager.checkSequence does too)
    with FakeBroker({"t": 1}, max_versions=OLD) as broker, producer(broker) as p:
        p.send("t", b"a").result(30)
        broker.inject(Fault(PRODUCE, error_code=45))    # OUT_OF_ORDER_SEQUENCE_NUMBER: a gap
        p.send("t", b"b").result(30)
        p.send("t", b"c").result(30)
        assert (p._accumulator.producer_id, p._accumulator.producer_epoch) == (1000, 1)
    assert broker.values("t") == [b"a", b"b", b"c"]
    assert [(r.producer_id, r.epoch, r.sequence) for r in broker.records("t")] == [
        (1000, 0, 0), (1000, 1, 0), (1000, 1, 1)]
    assert len(broker.init_producer_id_requests) == 1


def test_old_broker_idempotent_producer_takes_a_new_producer_id_when_epochs_run_out():
    with FakeBroker({"t": 1}, max_versions=OLD) as broker:
        broker.idempotent_epoch = 0x7FFF                 # the last epoch there is
        with producer(broker) as p:
            p.send("t", b"a").result(30)
            broker.inject(Fault(PRODUCE, error_code=45))
            p.send("t", b"b").result(30)
            p.send("t", b"c").result(30)
            assert (p._accumulator.producer_id, p._accumulator.producer_epoch) == (1001, 0x7FFF)
    assert broker.values("t") == [b"a", b"b", b"c"]
    assert [(r.producer_id, r.sequence) for r in broker.records("t")] == [
        (1000, 0), (1001, 0), (1001, 1)]
    # a new producer id is asked for without naming the old one (InitProducerId v2 has no
    # such fields; Java leaves them out too)
    assert [(v, b.get("producer_id", -1)) for v, b in broker.init_producer_id_requests] == [
        (2, -1), (2, -1)]

