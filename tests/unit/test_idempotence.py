"""Sequence numbers and their recovery, without a broker: the Cython drain and the sequence rules
of kengine_ext.Sequences (KIP-98 sequences, KIP-360 epoch bumps), driven step by step, and the
TransactionManager's state machine. The batches' bytes are read back with kafka-python.

tests/unit/test_sequencing_model.py drives the same rules through the real Sender against a
model of the broker's idempotence checks, with random faults."""
from __future__ import annotations

import struct

import pytest
from kafka.record.default_records import DefaultRecordBatch

import kengine_ext as k
from kengine.connection import API
from kengine.errors import (
    BROKER_ERRORS,
    ConcurrentTransactionsError,
    DuplicateSequenceNumberError,
    IllegalStateError,
    InvalidRecordError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    TransactionNotRecoverableError,
    UnknownProducerIdError,
)
from kengine.transactions import TRANSITIONS, TransactionManager, TxnState, _Result
from tests.support.core import Core

FAR = 10**12   # a "now" far enough ahead that every batch is ready
PID = 1000


def idempotent_core(partitions=1, transactional=False, **kw):
    core = Core({"t": partitions}, idempotent=True, transactional=transactional, linger_ms=0,
                **kw)
    core.acc.sequences.set_identity(PID, 0)
    # These tests put several small batches of a partition in flight at once. The sender does
    # that only with full batches (it holds a partition's open batch until the batch before
    # it is answered) or on close(), which drains everything: drain as close() does, so that
    # the sequence rules are what the tests see.
    core.acc.set_draining_all(True)
    if transactional:
        core.acc.set_implicit_txn_partitions(True)   # transactions v2: no AddPartitionsToTxn
        core.acc.set_in_transaction(True)
    return core


def header(core, batch):
    """(producer id, epoch, base sequence) as the batch's bytes carry them, CRC checked."""
    data = bytes(core.acc.seal(batch))
    assert DefaultRecordBatch(data).validate_crc()
    return struct.unpack(">qhi", data[43:57])


def drain(core, now=FAR, max_request_size=1 << 30):
    got = core.acc.drain({0, 1}, max_request_size, now)
    return [b for batches in got.values() for b in batches]


def send_batch(core, n, partition=0):
    for i in range(n):
        core.send("t", b"x%d" % i, partition=partition)


def sent(core, n, partition=0):
    """n records in one new batch, drained: (the batch)."""
    send_batch(core, n, partition)
    (b,) = drain(core)
    return b


def ack(core, b, offset=0):
    assert core.acc.sequences.on_success(b, offset) is None
    core.acc.complete(b, offset, -1)


def retry(core, b, error, lso=-1):
    assert core.acc.sequences.can_retry(b, error, lso)
    core.acc.reenqueue(b, 0)


def window(core, partition=0):
    return core.acc.topic_state("t").queues[partition].sequences


# -- rule 1: a sequence only for a batch that goes, so sequences never overlap --------------


def test_a_batch_left_out_of_a_full_request_gets_no_sequence_and_stays_open():
    """The loss of issue 25: a batch given its sequence by a drain that then found no room for
    it stayed open, took more records, and its sequences overlapped the next batch's."""
    core = idempotent_core(2, batch_size=1 << 16)
    core.acc.update_topic("t", [(0, 0), (0, 0)])          # both partitions led by node 0
    for _ in range(10):
        core.send("t", b"a" * 100, partition=0)
        core.send("t", b"b" * 100, partition=1)
    (first,) = drain(core, max_request_size=1500)     # room for one batch of the two
    left = 1 - first.partition
    assert window(core, left).next_sequence == 0      # the other got no sequence...
    for _ in range(5):                                # ...and still takes records
        core.send("t", b"c" * 100, partition=left)
    (second,) = drain(core)
    assert second.partition == left and second.record_count == 15
    assert header(core, second) == (PID, 0, 0)
    ack(core, second)
    send_batch(core, 3, partition=left)
    (third,) = drain(core)
    assert header(core, third) == (PID, 0, 15)        # right after the 15, no overlap


def test_each_node_resumes_where_its_last_request_was_full():
    """1,000 partitions on one node, requests of ~8 batches: every partition is served once
    before any is served twice (no partition starves behind the lower-numbered ones)."""
    core = Core({"t": 1000}, linger_ms=0)
    core.acc.update_topic("t", [(0, 0)] * 1000)
    for p in range(1000):
        core.send("t", b"v" * 100, partition=p)
    seen = []
    while len(seen) < 1000:
        got = core.acc.drain({0}, 8 * 200, FAR)
        assert got, "a drain with sendable batches returned nothing"
        seen += [b.partition for b in got[0]]
        for b in got[0]:
            core.send("t", b"v" * 100, partition=b.partition)   # refill what was taken
            core.acc.complete(b, 0, -1)
    assert sorted(seen[:1000]) == list(range(1000))


def test_sequences_are_assigned_at_first_drain_and_kept_for_retries():
    core = idempotent_core()
    b1 = sent(core, 3)
    ack(core, b1)
    b2 = sent(core, 5)
    assert header(core, b2) == (PID, 0, 3)
    retry(core, b2, NotLeaderOrFollowerError("x"))
    send_batch(core, 2)
    (again,) = drain(core)
    assert again is b2 and header(core, again) == (PID, 0, 3)


def test_sequence_wraps_after_int32_max():
    core = idempotent_core()
    window(core)._continue_from(PID, 0, 2**31 - 2)
    b = sent(core, 5)
    assert header(core, b) == (PID, 0, 2**31 - 2)
    ack(core, b)
    assert window(core).next_sequence == 3   # 2^31-2, 2^31-1, 0, 1, 2 (Java incrementSequence)
    assert header(core, sent(core, 1)) == (PID, 0, 3)


def test_no_producer_id_means_nothing_is_drained():
    core = Core({"t": 1}, idempotent=True, linger_ms=0)
    send_batch(core, 1)
    assert drain(core) == []


# -- rule 2: in sequence order ---------------------------------------------------------------


def test_retries_go_back_in_sequence_order_and_only_the_oldest_is_resent():
    core = idempotent_core()
    b0 = sent(core, 2)
    ack(core, b0)
    batches = [sent(core, 2) for _ in range(3)]
    for b in reversed(batches):                        # answers in reverse order
        retry(core, b, NotLeaderOrFollowerError("moved"))
    q = core.acc.topic_state("t").queues[0]
    assert q.batches() == batches
    assert drain(core) == [batches[0]]
    assert drain(core) == []                           # the next waits for the oldest
    ack(core, batches[0])
    assert drain(core) == [batches[1]]


def test_new_epoch_waits_for_old_batches_then_restarts_at_zero():
    core = idempotent_core()
    old = sent(core, 4)
    core.acc.sequences.set_identity(PID, 1)                # a bump caused by another partition
    send_batch(core, 2)
    assert drain(core) == []                           # the old epoch still has a batch out
    ack(core, old)
    (new,) = drain(core)
    assert header(core, new) == (PID, 1, 0)


# -- rules 3 and 4: what the broker remembers ------------------------------------------------


def test_nothing_follows_the_first_batch_until_the_broker_knows_the_producer():
    core = idempotent_core()
    first = sent(core, 2)
    send_batch(core, 2)
    assert drain(core) == []                           # a broker without state takes any seq
    retry(core, first, NotLeaderOrFollowerError("loading"))
    assert drain(core) == [first]                      # the refused first batch goes first
    ack(core, first)
    assert header(core, sent(core, 1)) == (PID, 0, 2)


def test_batches_held_back_for_an_answer_do_not_keep_the_sender_awake():
    """200 partitions, each with its first batch in flight and its next one past linger.ms:
    drain() holds those back until an answer comes (rule 4), so the sender must sleep until
    one does. It used to be told to sleep 0 ms, and spun sweeping every queue: tens of
    microseconds of CPU per record on topics of many partitions."""
    core = idempotent_core(200)
    firsts = [sent(core, 1, partition=p) for p in range(200)]
    for p in range(200):
        send_batch(core, 1, partition=p)
    now = k.monotonic_ms() + 1000
    assert drain(core, now) == []
    assert core.acc.prepare_sleep(5000, now) == 5000
    core.acc.end_sleep()
    ack(core, firsts[7])                               # an answer frees partition 7's next
    assert core.acc.prepare_sleep(5000, now) == 0
    core.acc.end_sleep()
    (b,) = drain(core, now)
    assert b.partition == 7


def test_at_most_five_batches_from_the_oldest_unfinished_one():
    """The broker remembers the last five batches of a producer: if the oldest unfinished
    batch was written, its retry must still find it there."""
    core = idempotent_core()
    ack(core, sent(core, 1))
    oldest = sent(core, 1)
    later = [sent(core, 1) for _ in range(4)]
    for b in later:
        ack(core, b)                                   # answered (another connection...)
    send_batch(core, 1)
    assert drain(core) == []                           # a sixth would push `oldest` out
    ack(core, oldest)
    assert len(drain(core)) == 1


def test_oldest_batch_refused_while_later_sequences_were_acknowledged_is_a_gap():
    core = idempotent_core()
    ack(core, sent(core, 1))
    oldest = sent(core, 2)                             # sequences 1-2
    nxt = sent(core, 2)                                # 3-4
    ack(core, nxt)                                     # the broker took 3-4 without 1-2
    assert core.acc.sequences.can_retry(oldest, OutOfOrderSequenceNumberError("gap"), 0)
    assert core.acc.sequences.epoch_bump_requested
    core.acc.reenqueue(oldest, 0)
    assert drain(core) == []                           # waits for the new epoch
    core.acc.sequences.set_identity(PID, 1)
    assert drain(core) == [oldest]
    assert header(core, oldest) == (PID, 1, 0)


# -- answers ------------------------------------------------------------------------------------


def test_duplicate_sequence_counts_as_written_only_for_a_resent_batch():
    core = idempotent_core()
    b = sent(core, 2)
    assert not core.acc.sequences.duplicate_is_written(b)  # first attempt: others hold these
    retry(core, b, NotLeaderOrFollowerError("moved"))
    (again,) = drain(core)
    assert core.acc.sequences.duplicate_is_written(again)  # an earlier attempt carried them


def test_a_first_attempt_answered_duplicate_is_not_success_and_renumbers():
    core = idempotent_core()
    b = sent(core, 2)
    assert core.acc.sequences.can_retry(b, DuplicateSequenceNumberError("dup"), 0)
    assert core.acc.sequences.epoch_bump_requested


def test_unresolved_partition_takes_no_new_sequence_until_settled():
    core = idempotent_core()
    ack(core, sent(core, 1))
    b0 = sent(core, 2)
    b1 = sent(core, 2)
    assert core.acc.sequences.on_expired(b0) is None       # in flight at delivery.timeout.ms
    core.acc.complete(b0, error=TimeoutError("expired"))
    send_batch(core, 2)
    assert drain(core) == []                           # its fate is unknown
    ack(core, b1)                                      # 3-4 written after 1-2...
    (b2,) = drain(core)                                # ...so 1-2 were written: settled
    assert header(core, b2) == (PID, 0, 5)


def test_unresolved_that_never_settles_bumps_the_epoch():
    core = idempotent_core()
    b0 = sent(core, 2)
    core.acc.sequences.on_expired(b0)
    core.acc.complete(b0, error=TimeoutError("expired"))
    assert core.acc.sequences.epoch_bump_requested
    core.acc.sequences.set_identity(PID, 1)
    assert header(core, sent(core, 3)) == (PID, 1, 0)


def test_out_of_order_gap_renumbers_unfinished_batches_when_they_next_go():
    core = idempotent_core()
    batches = [sent(core, 2)]
    ack(core, batches[0])
    batches += [sent(core, 2), sent(core, 2)]
    for b in batches[1:]:
        header(core, b)                                # sealed, as when it went out
    # the next expected batch is refused although it follows the last ack: a gap
    assert core.acc.sequences.can_retry(batches[1], OutOfOrderSequenceNumberError("gap"), 0)
    core.acc.reenqueue(batches[1], 0)
    assert header(core, batches[2]) == (PID, 0, 4)     # still in flight: bytes untouched
    core.acc.sequences.set_identity(PID, 1)
    assert drain(core) == [batches[1]]
    assert header(core, batches[1]) == (PID, 1, 0)     # renumbered as it goes, CRC rewritten
    retry(core, batches[2], OutOfOrderSequenceNumberError("old epoch answer"))
    assert drain(core) == []                           # behind batches[1]
    ack(core, batches[1])
    assert drain(core) == [batches[2]]
    assert header(core, batches[2]) == (PID, 1, 2)


def test_unknown_producer_id_after_retention_bumps_the_epoch():
    core = idempotent_core()
    b = sent(core, 2)
    # the log start moved past everything we know was acknowledged: producer state is gone
    assert core.acc.sequences.can_retry(b, UnknownProducerIdError("gone"), 500)
    assert core.acc.sequences.epoch_bump_requested


def test_transactional_gap_is_closed_by_the_batches_after_it():
    core = idempotent_core(transactional=True)
    ack(core, sent(core, 1))
    failed, after = sent(core, 2), sent(core, 3)      # 1-2 and 3-5
    error = InvalidRecordError("bad record")
    assert not core.acc.sequences.can_retry(failed, error, 0)
    assert core.acc.sequences.on_failed(failed, error, True) is None
    core.acc.complete(failed, error=error)
    retry(core, after, OutOfOrderSequenceNumberError("expected 1"))
    assert drain(core) == [after]
    assert header(core, after) == (PID, 0, 1)          # took the failed batch's sequences


def test_abort_drops_only_batches_never_sent():
    core = idempotent_core(transactional=True)
    ack(core, sent(core, 1))
    out = sent(core, 2)
    retry(core, out, NotLeaderOrFollowerError("moved"))
    send_batch(core, 3)                                # queued behind it, never sent
    dropped = core.acc.take_unsent_queued()
    assert [b.record_count for b in dropped] == [3]
    assert core.acc.topic_state("t").queues[0].batches() == [out]


# -- the transaction manager ---------------------------------------------------------------------


def test_state_machine_table_and_wrong_calls():
    assert TxnState.READY in TRANSITIONS[TxnState.IN_TRANSACTION]
    assert TxnState.IN_TRANSACTION not in TRANSITIONS[TxnState.READY]
    assert TRANSITIONS[TxnState.FATAL_ERROR] == frozenset(TxnState)
    core = Core({"t": 1}, idempotent=True, transactional=True)
    tm = TransactionManager(core.acc, client=None, metadata=None, client_id="c",
                            transactional_id="tx", transaction_timeout_ms=1000,
                            retry_backoff_ms=10, max_block_ms=100, wakeup=lambda: None)
    with pytest.raises(IllegalStateError, match="begin_transaction.*initialised"):
        tm.begin_transaction()
    with pytest.raises(IllegalStateError, match="commit_transaction\\(\\) needs an open"):
        tm.commit_transaction()
    with pytest.raises(ValueError, match="at least one offset"):
        tm.send_offsets_to_transaction({}, "group")


def test_an_idempotent_epoch_bump_uses_the_next_epoch():
    core = idempotent_core()
    tm = TransactionManager(core.acc, client=None, metadata=None, client_id="test",
                            transactional_id=None, transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    b = sent(core, 2)
    core.acc.sequences.on_expired(b)
    core.acc.complete(b, error=TimeoutError("expired"))
    tm._bump_idempotent_epoch()
    assert (core.acc.producer_id, core.acc.producer_epoch) == (PID, 1)
    assert not core.acc.sequences.epoch_bump_requested


# -- retries and their backoff ---------------------------------------------------------------------


def test_a_retry_behind_an_earlier_sequence_follows_it_without_a_backoff_of_its_own():
    for follow in (True, False):
        core = idempotent_core()
        ack(core, sent(core, 1))
        b1 = sent(core, 3)
        b2 = sent(core, 2)
        # b1 failed (CONCURRENT_TRANSACTIONS, say) and waits 100 ms; b2 came back
        # OUT_OF_ORDER_SEQUENCE_NUMBER only because of it
        core.acc.reenqueue(b1, FAR + 100)
        core.acc.reenqueue(b2, FAR + 5000, follow)
        assert core.acc.topic_state("t").queues[0].batches() == [b1, b2]
        assert drain(core, now=FAR + 99) == []
        assert drain(core, now=FAR + 100) == [b1]      # retries go one at a time
        ack(core, b1)
        # following b1, b2 goes right after it; with its own backoff it would wait 5 s more
        assert drain(core, now=FAR + 100) == ([b2] if follow else [])


def test_follow_earlier_keeps_the_backoff_when_nothing_earlier_waits():
    core = idempotent_core()
    b1 = sent(core, 3)
    core.acc.reenqueue(b1, FAR + 300, True)
    assert drain(core, now=FAR + 299) == []
    assert drain(core, now=FAR + 300) == [b1]


def test_the_sequence_error_codes_are_kafkas():
    """The codes the Cython rules compare against are those of kengine.errors (generated from
    Kafka's own error table)."""
    by_name = {cls.name: cls.code for cls in BROKER_ERRORS.values()}
    assert k.SEQUENCE_ERROR_CODES
    for name, code in k.SEQUENCE_ERROR_CODES.items():
        assert by_name[name] == code, name


# -- epoch bumps and the coordinator's InitProducerId version (KIP-360) --------------------------

class _Coordinator:
    """The network client as the transaction manager sees it: one ready broker (node 1) that
    speaks InitProducerId up to `init_pid_version`; requests are recorded, never answered."""

    def __init__(self, init_pid_version):
        self.versions = {API.INIT_PRODUCER_ID: init_pid_version}
        self.finalized_features = {}
        self.sent = []

    def version(self, api_key):
        return self.versions.get(api_key, 4)

    def is_ready(self, node):
        return True

    def connection(self, node):
        return self

    def send(self, node, api_key, body, callback, *, now_ms, version):
        self.sent.append((api_key, version, body))


@pytest.mark.parametrize("init_pid_version", [2, 4])
def test_an_epoch_bump_decided_before_the_coordinator_moved_to_an_old_broker(init_pid_version):
    # The bump was decided with a coordinator that could give one; the transaction's
    # coordinator is now a broker older than 2.5: the request is not sent without the
    # current epoch (it would fence a newer producer), the producer stops instead.
    core = idempotent_core(transactional=True)
    client = _Coordinator(init_pid_version)
    tm = TransactionManager(core.acc, client=client, metadata=None, client_id="c",
                            transactional_id="tx", transaction_timeout_ms=1000,
                            retry_backoff_ms=10, max_block_ms=100, wakeup=lambda: None)
    tm._coordinators[(1, "tx")] = 1
    tm._coordinator_init_pid_version = 4
    tm.state = TxnState.ABORTING
    tm._epoch_bump_required = True
    result = _Result("abort_transaction()")
    tm._complete_transaction(result)
    assert tm.state is TxnState.INITIALIZING and not result.is_done   # waits for the bump
    tm._maybe_send(0)
    if init_pid_version >= 3:
        (api_key, version, body), = client.sent
        assert (api_key, version) == (API.INIT_PRODUCER_ID, init_pid_version)
        assert (body["producer_id"], body["producer_epoch"]) == (PID, 0)
        assert not result.is_done
    else:
        assert client.sent == []
        assert tm.state is TxnState.FATAL_ERROR and not tm.can_bump_epoch
        assert isinstance(result.error, TransactionNotRecoverableError)
        assert "InitProducerId up to v2" in str(result.error)
        assert "Kafka 2.5" in str(result.error)


def test_only_a_transactional_producer_depends_on_the_coordinator_for_epoch_bumps():
    core = idempotent_core()
    tm = TransactionManager(core.acc, client=None, metadata=None, client_id="c",
                            transactional_id=None, transaction_timeout_ms=60000,
                            retry_backoff_ms=10, max_block_ms=100, wakeup=lambda: None)
    assert tm.can_bump_epoch          # the idempotent producer bumps its epoch itself
    txn = TransactionManager(idempotent_core(transactional=True).acc, client=None,
                             metadata=None, client_id="c", transactional_id="tx",
                             transaction_timeout_ms=1000, retry_backoff_ms=10, max_block_ms=100,
                             wakeup=lambda: None)
    assert not txn.can_bump_epoch     # not before the coordinator was seen (Java: the same)
    for version, can in ((2, False), (3, True), (5, True)):
        txn._coordinator_init_pid_version = version
        assert txn.can_bump_epoch is can


def test_a_coordinator_retry_sets_how_long_the_sender_may_sleep():
    """A coordinator request waiting out its backoff (CONCURRENT_TRANSACTIONS after the previous
    commit, in every transaction of a consume-transform-produce loop) must wake the sender
    when it is due, not at its next metadata refresh up to a second later."""
    from kengine.group_metadata import ConsumerGroupMetadata
    from kengine.transactions import _TxnOffsetCommit

    core = idempotent_core(transactional=True)
    tm = TransactionManager(core.acc, client=None, metadata=None, client_id="test",
                            transactional_id="tx", transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    assert tm.time_to_next_request_ms(k.monotonic_ms()) is None     # nothing queued
    request = _TxnOffsetCommit(_Result("send_offsets_to_transaction()"),
                               ConsumerGroupMetadata("g", 3, "m"), {("in", 0): (5, -1, None)})
    tm._transactions_v2 = True
    # the group coordinator's answer: the previous transaction is still completing
    request.handle(tm, {"topics": [{"name": "in", "partitions": [
        {"partition_index": 0, "error_code": ConcurrentTransactionsError.code}]}]})
    now = k.monotonic_ms()
    due = tm.time_to_next_request_ms(now)
    assert due is not None and 0 < due <= 20    # the short backoff, not retry.backoff.ms
    # once due it is sent at the next step; a due request that cannot go yet (an EndTxn
    # waiting for its batches) is woken by their events, never by a zero sleep (a spin)
    assert tm.time_to_next_request_ms(now + 25) is None


@pytest.mark.parametrize("needs", ["transaction", "group"])
def test_a_request_whose_coordinator_is_unknown_sends_the_lookup_in_the_same_step(needs):
    """The request that finds it needs a coordinator queues a FindCoordinator, which goes
    first. Sent only at the sender's next step, it waited for a wake-up that nothing gave:
    init_transactions() and send_offsets_to_transaction() took 1 s (the sender's longest
    sleep) now and then, one partition in ten of a Dask exactly-once job."""
    from kengine.group_metadata import ConsumerGroupMetadata
    from kengine.transactions import (
        _GROUP,
        _TXN,
        _FindCoordinator,
        _InitProducerId,
        _TxnOffsetCommit,
    )
    from tests.support.fake_network import FakeNetworkClient

    core = idempotent_core(transactional=True)
    client = FakeNetworkClient({0: ("h0", 9092)}, topics={"t": [0]})
    client.ready = {0}
    tm = TransactionManager(core.acc, client=client, metadata=None, client_id="test",
                            transactional_id="tx", transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    if needs == "transaction":
        tm._enqueue(_InitProducerId(_Result("init_transactions()"), bump=False,
                                    transactional=True))
        key = (_TXN, "tx")
    else:
        tm._enqueue(_TxnOffsetCommit(_Result("send_offsets_to_transaction()"),
                                     ConsumerGroupMetadata("g", 3, "m"),
                                     {("in", 0): (5, -1, None)}))
        key = (_GROUP, "g")
    assert key not in tm._coordinators
    with tm._lock:
        tm._maybe_send(k.monotonic_ms())
    assert [r.api_key for r in client.requests] == [API.FIND_COORDINATOR]
    assert isinstance(tm._in_flight, _FindCoordinator)


def test_a_coordinator_that_cannot_be_connected_to_is_looked_up_again():
    """A dead broker's coordinator partitions move to another broker within seconds; a
    producer that kept trying to connect to the dead one waited until it came back (over a
    minute under load, past max.block.ms). As Java's sender: look the coordinator up again,
    after retry.backoff.ms."""
    from kengine.group_metadata import ConsumerGroupMetadata
    from kengine.transactions import _GROUP, _TxnOffsetCommit
    from tests.support.fake_network import FakeNetworkClient

    core = idempotent_core(transactional=True)
    client = FakeNetworkClient({0: ("h0", 9092), 1: ("h1", 9092)}, topics={"t": [0]})
    client.ready = {0}                  # broker 1, the group's coordinator, is down
    tm = TransactionManager(core.acc, client=client, metadata=None, client_id="test",
                            transactional_id="tx", transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    tm._coordinators[(_GROUP, "g")] = 1
    request = _TxnOffsetCommit(_Result("send_offsets_to_transaction()"),
                               ConsumerGroupMetadata("g", 3, "m"), {("in", 0): (5, -1, None)})
    tm._enqueue(request)
    now = k.monotonic_ms()
    with tm._lock:
        tm._maybe_send(now)
        assert client.connects == [1] and (_GROUP, "g") not in tm._coordinators
        assert tm.time_to_next_request_ms(now) == 100          # retry.backoff.ms
        for step in range(3):
            tm._maybe_send(now + 100 + step)
    assert [r.api_key for r in client.requests] == [API.FIND_COORDINATOR]
    assert client.requests[0].node == 0
