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
from kengine.errors import (
    BROKER_ERRORS,
    DuplicateSequenceNumberError,
    IllegalStateError,
    InvalidRecordError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from kengine.transactions import TRANSITIONS, TransactionManager, TxnState
from tests.unit.test_accumulator import Core

FAR = 10**12   # a "now" far enough ahead that every batch is ready
PID = 1000


def idempotent_core(partitions=1, transactional=False, **kw):
    core = Core({"t": partitions}, idempotent=True, transactional=transactional, linger_ms=0,
                **kw)
    core.sequences.set_identity(PID, 0)
    if transactional:
        core._set_implicit_txn_partitions(True)   # transactions v2: no AddPartitionsToTxn
        core._set_in_transaction(True)
    return core


def header(core, batch):
    """(producer id, epoch, base sequence) as the batch's bytes carry them, CRC checked."""
    data = bytes(core.seal(batch))
    assert DefaultRecordBatch(data).validate_crc()
    return struct.unpack(">qhi", data[43:57])


def drain(core, now=FAR, max_request_size=1 << 30):
    got = core.drain({0, 1}, max_request_size, now)
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
    assert core.sequences.on_success(b, offset) is None
    core.complete(b, offset, -1)


def retry(core, b, error, lso=-1):
    assert core.sequences.can_retry(b, error, lso)
    core.reenqueue(b, 0)


def window(core, partition=0):
    return core.topic_state("t").queues[partition].sequences


# -- rule 1: a sequence only for a batch that goes, so sequences never overlap --------------


def test_a_batch_left_out_of_a_full_request_gets_no_sequence_and_stays_open():
    """The loss of issue 25: a batch given its sequence by a drain that then found no room for
    it stayed open, took more records, and its sequences overlapped the next batch's."""
    core = idempotent_core(2, batch_size=1 << 16)
    core.update_topic("t", [(0, 0), (0, 0)])          # both partitions led by node 0
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
    core.update_topic("t", [(0, 0)] * 1000)
    for p in range(1000):
        core.send("t", b"v" * 100, partition=p)
    seen = []
    while len(seen) < 1000:
        got = core.drain({0}, 8 * 200, FAR)
        assert got, "a drain with sendable batches returned nothing"
        seen += [b.partition for b in got[0]]
        for b in got[0]:
            core.send("t", b"v" * 100, partition=b.partition)   # refill what was taken
            core.complete(b, 0, -1)
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
    q = core.topic_state("t").queues[0]
    assert q.batches() == batches
    assert drain(core) == [batches[0]]
    assert drain(core) == []                           # the next waits for the oldest
    ack(core, batches[0])
    assert drain(core) == [batches[1]]


def test_new_epoch_waits_for_old_batches_then_restarts_at_zero():
    core = idempotent_core()
    old = sent(core, 4)
    core.sequences.set_identity(PID, 1)                # a bump caused by another partition
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
    assert core.sequences.can_retry(oldest, OutOfOrderSequenceNumberError("gap"), 0)
    assert core.sequences.epoch_bump_requested
    core.reenqueue(oldest, 0)
    assert drain(core) == []                           # waits for the new epoch
    core.sequences.set_identity(PID, 1)
    assert drain(core) == [oldest]
    assert header(core, oldest) == (PID, 1, 0)


# -- answers ------------------------------------------------------------------------------------


def test_duplicate_sequence_counts_as_written_only_for_a_resent_batch():
    core = idempotent_core()
    b = sent(core, 2)
    assert not core.sequences.duplicate_is_written(b)  # first attempt: others hold these
    retry(core, b, NotLeaderOrFollowerError("moved"))
    (again,) = drain(core)
    assert core.sequences.duplicate_is_written(again)  # an earlier attempt carried them


def test_a_first_attempt_answered_duplicate_is_not_success_and_renumbers():
    core = idempotent_core()
    b = sent(core, 2)
    assert core.sequences.can_retry(b, DuplicateSequenceNumberError("dup"), 0)
    assert core.sequences.epoch_bump_requested


def test_unresolved_partition_takes_no_new_sequence_until_settled():
    core = idempotent_core()
    ack(core, sent(core, 1))
    b0 = sent(core, 2)
    b1 = sent(core, 2)
    assert core.sequences.on_expired(b0) is None       # in flight at delivery.timeout.ms
    core.complete(b0, error=TimeoutError("expired"))
    send_batch(core, 2)
    assert drain(core) == []                           # its fate is unknown
    ack(core, b1)                                      # 3-4 written after 1-2...
    (b2,) = drain(core)                                # ...so 1-2 were written: settled
    assert header(core, b2) == (PID, 0, 5)


def test_unresolved_that_never_settles_bumps_the_epoch():
    core = idempotent_core()
    b0 = sent(core, 2)
    core.sequences.on_expired(b0)
    core.complete(b0, error=TimeoutError("expired"))
    assert core.sequences.epoch_bump_requested
    core.sequences.set_identity(PID, 1)
    assert header(core, sent(core, 3)) == (PID, 1, 0)


def test_out_of_order_gap_renumbers_unfinished_batches_when_they_next_go():
    core = idempotent_core()
    batches = [sent(core, 2)]
    ack(core, batches[0])
    batches += [sent(core, 2), sent(core, 2)]
    for b in batches[1:]:
        header(core, b)                                # sealed, as when it went out
    # the next expected batch is refused although it follows the last ack: a gap
    assert core.sequences.can_retry(batches[1], OutOfOrderSequenceNumberError("gap"), 0)
    core.reenqueue(batches[1], 0)
    assert header(core, batches[2]) == (PID, 0, 4)     # still in flight: bytes untouched
    core.sequences.set_identity(PID, 1)
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
    assert core.sequences.can_retry(b, UnknownProducerIdError("gone"), 500)
    assert core.sequences.epoch_bump_requested


def test_transactional_gap_is_closed_by_the_batches_after_it():
    core = idempotent_core(transactional=True)
    ack(core, sent(core, 1))
    failed, after = sent(core, 2), sent(core, 3)      # 1-2 and 3-5
    error = InvalidRecordError("bad record")
    assert not core.sequences.can_retry(failed, error, 0)
    assert core.sequences.on_failed(failed, error, True) is None
    core.complete(failed, error=error)
    retry(core, after, OutOfOrderSequenceNumberError("expected 1"))
    assert drain(core) == [after]
    assert header(core, after) == (PID, 0, 1)          # took the failed batch's sequences


def test_abort_drops_only_batches_never_sent():
    core = idempotent_core(transactional=True)
    ack(core, sent(core, 1))
    out = sent(core, 2)
    retry(core, out, NotLeaderOrFollowerError("moved"))
    send_batch(core, 3)                                # queued behind it, never sent
    dropped = core.take_unsent_queued()
    assert [b.record_count for b in dropped] == [3]
    assert core.topic_state("t").queues[0].batches() == [out]


# -- the transaction manager ---------------------------------------------------------------------


def test_state_machine_table_and_wrong_calls():
    assert TxnState.READY in TRANSITIONS[TxnState.IN_TRANSACTION]
    assert TxnState.IN_TRANSACTION not in TRANSITIONS[TxnState.READY]
    assert TRANSITIONS[TxnState.FATAL_ERROR] == frozenset(TxnState)
    core = Core({"t": 1}, idempotent=True, transactional=True)
    tm = TransactionManager(core, client=None, metadata=None, client_id="c",
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
    tm = TransactionManager(core, client=None, metadata=None, client_id="test",
                            transactional_id=None, transaction_timeout_ms=60000,
                            retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)
    b = sent(core, 2)
    core.sequences.on_expired(b)
    core.complete(b, error=TimeoutError("expired"))
    tm._bump_idempotent_epoch()
    assert (core.producer_id, core.producer_epoch) == (PID, 1)
    assert not core.sequences.epoch_bump_requested


# -- retries and their backoff ---------------------------------------------------------------------


def test_a_retry_behind_an_earlier_sequence_follows_it_without_a_backoff_of_its_own():
    for follow in (True, False):
        core = idempotent_core()
        ack(core, sent(core, 1))
        b1 = sent(core, 3)
        b2 = sent(core, 2)
        # b1 failed (CONCURRENT_TRANSACTIONS, say) and waits 100 ms; b2 came back
        # OUT_OF_ORDER_SEQUENCE_NUMBER only because of it
        core.reenqueue(b1, FAR + 100)
        core.reenqueue(b2, FAR + 5000, follow)
        assert core.topic_state("t").queues[0].batches() == [b1, b2]
        assert drain(core, now=FAR + 99) == []
        assert drain(core, now=FAR + 100) == [b1]      # retries go one at a time
        ack(core, b1)
        # following b1, b2 goes right after it; with its own backoff it would wait 5 s more
        assert drain(core, now=FAR + 100) == ([b2] if follow else [])


def test_follow_earlier_keeps_the_backoff_when_nothing_earlier_waits():
    core = idempotent_core()
    b1 = sent(core, 3)
    core.reenqueue(b1, FAR + 300, True)
    assert drain(core, now=FAR + 299) == []
    assert drain(core, now=FAR + 300) == [b1]


def test_the_sequence_error_codes_are_kafkas():
    """The codes the Cython rules compare against are those of kengine.errors (generated from
    Kafka's own error table)."""
    by_name = {cls.name: cls.code for cls in BROKER_ERRORS.values()}
    assert k.SEQUENCE_ERROR_CODES
    for name, code in k.SEQUENCE_ERROR_CODES.items():
        assert by_name[name] == code, name
