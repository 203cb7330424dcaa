"""Sequence numbers and their recovery, without a broker: the Cython drain rules and the
TransactionManager's bookkeeping (KIP-98 sequences, KIP-360 epoch bumps), driven step by step."""
from __future__ import annotations

import struct

import pytest

import kengine_ext as k
from kengine.errors import (
    IllegalStateError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
    UnknownProducerIdError,
)
from kengine.transactions import TRANSITIONS, TransactionManager, TxnState
from tests.unit.test_accumulator import Core

FAR = 10**12   # a "now" far enough ahead that every batch is ready


def idempotent_core(partitions=1, **kw):
    core = Core({"t": partitions}, idempotent=True, linger_ms=0, **kw)
    core._set_producer_identity(1000, 0)
    return core


def manager(core):
    return TransactionManager(core, client=None, metadata=None, client_id="test",
                              transactional_id=None, transaction_timeout_ms=60000,
                              retry_backoff_ms=100, max_block_ms=1000, wakeup=lambda: None)


def header(core, batch):
    data = bytes(core.seal(batch))
    pid, epoch, seq = struct.unpack(">qhi", data[43:57])
    return pid, epoch, seq


def drain(core, now=FAR):
    got = core.drain({0, 1}, 1 << 30, now)
    return [b for batches in got.values() for b in batches]


def send_batch(core, n, partition=0):
    for i in range(n):
        core.send("t", b"x%d" % i, partition=partition)


def test_sequences_are_assigned_at_first_drain_and_kept_for_retries():
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 3)
    (b1,) = drain(core)
    tm.on_drained([b1])
    send_batch(core, 5)
    (b2,) = drain(core)
    tm.on_drained([b2])
    assert (b1.base_sequence, b2.base_sequence) == (0, 3)
    assert header(core, b1) == (1000, 0, 0) and header(core, b2) == (1000, 0, 3)
    # b1 fails retriably and comes back: same sequence, and it goes before anything new
    assert tm.can_retry(b1, NotLeaderOrFollowerError("x"), -1)
    core.reenqueue(b1, 0)
    send_batch(core, 2)
    (again,) = drain(core)
    assert again is b1 and header(core, again) == (1000, 0, 0)


def test_retries_go_back_in_sequence_order_and_only_the_lowest_is_resent():
    core = idempotent_core()
    tm = manager(core)
    batches = []
    for _ in range(3):
        send_batch(core, 2)
        (b,) = drain(core)
        tm.on_drained([b])
        batches.append(b)
    b0, b1, b2 = batches
    # responses come back in reverse order: the queue must still hold them as 0, 2, 4
    for b in (b2, b1, b0):
        core.reenqueue(b, 0)
    q = core.topic_state("t").queues[0]
    assert [b.base_sequence for b in q.batches()] == [0, 2, 4]
    assert q.first_in_flight_sequence == 0
    (first,) = drain(core)
    assert first is b0
    assert drain(core) == []   # b1 waits: b0 is the lowest unfinished sequence
    tm.on_success(b0, 100)
    core.complete(b0, 100, -1)
    assert q.first_in_flight_sequence == 2
    (second,) = drain(core)
    assert second is b1


def test_new_epoch_waits_for_old_batches_then_restarts_at_zero():
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 4)
    (old,) = drain(core)
    tm.on_drained([old])
    core._set_producer_identity(1000, 1)        # e.g. a bump caused by another partition
    send_batch(core, 2)
    assert drain(core) == []                    # the old epoch still has a batch in flight
    tm.on_success(old, 0)
    core.complete(old, 0, -1)
    (new,) = drain(core)
    assert header(core, new) == (1000, 1, 0)


def test_unresolved_partition_takes_no_new_sequence_until_settled():
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 2)
    (b0,) = drain(core)
    tm.on_drained([b0])
    send_batch(core, 2)
    (b1,) = drain(core)
    tm.on_drained([b1])
    tm.on_expired(b0)                           # in flight when delivery.timeout.ms passed
    core.complete(b0, error=TimeoutError("expired"))
    send_batch(core, 2)
    assert drain(core) == []                    # next_sequence 4 cannot go yet
    tm.on_success(b1, 10)                       # b1 (2-3) was written after b0 (0-1)...
    core.complete(b1, 10, -1)
    (b2,) = drain(core)                         # ...so b0 was written too: settled
    assert b2.base_sequence == 4


def test_unresolved_that_never_settles_bumps_the_epoch_and_renumbers():
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 2)
    (b0,) = drain(core)
    tm.on_drained([b0])
    tm.on_expired(b0)
    core.complete(b0, error=TimeoutError("expired"))
    assert tm._epoch_bump_required
    tm._bump_idempotent_epoch()
    assert core.producer_epoch == 1
    send_batch(core, 3)
    (b1,) = drain(core)
    assert header(core, b1) == (1000, 1, 0)


def test_out_of_order_gap_bumps_the_epoch_and_rewrites_in_flight_batches():
    core = idempotent_core()
    tm = manager(core)
    sent = []
    for _ in range(3):
        send_batch(core, 2)
        (b,) = drain(core)
        tm.on_drained([b])
        header(core, b)                          # sealed, as when it went out
        sent.append(b)
    tm.on_success(sent[0], 0)
    core.complete(sent[0], 0, -1)
    # the broker says the next batch is out of order although it follows the last ack: a gap
    assert tm.can_retry(sent[1], OutOfOrderSequenceNumberError("gap"), 0)
    assert tm._epoch_bump_required
    tm._bump_idempotent_epoch()
    assert header(core, sent[1]) == (1000, 1, 0)   # renumbered from 0, CRC rewritten
    assert header(core, sent[2]) == (1000, 1, 2)
    data = bytes(core.seal(sent[1]))
    assert k.decode_batches(data)[0].producer_epoch == 1   # the CRC still verifies
    core.reenqueue(sent[1], 0)
    (again,) = drain(core)
    assert again is sent[1]


def test_unknown_producer_id_after_retention_bumps_the_epoch():
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 2)
    (b,) = drain(core)
    tm.on_drained([b])
    # the log start moved past everything we know was acknowledged: producer state is gone
    assert tm.can_retry(b, UnknownProducerIdError("gone"), 500)
    assert tm._epoch_bump_required


def test_sequence_wraps_after_int32_max():
    core = idempotent_core()
    q = core.topic_state("t").queues[0]
    q.seq_producer_id, q.seq_producer_epoch = 1000, 0
    q.next_sequence = 2**31 - 2
    send_batch(core, 5)
    (b,) = drain(core)
    assert b.base_sequence == 2**31 - 2
    assert q.next_sequence == 3   # 2^31-2, 2^31-1, 0, 1, 2 used (Java incrementSequence)


def test_no_producer_id_means_nothing_is_drained():
    core = Core({"t": 1}, idempotent=True, linger_ms=0)
    send_batch(core, 1)
    assert drain(core) == []


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


def test_a_new_epoch_forgets_the_old_acknowledged_sequences():
    """After a bump (or a transaction v2 ending), sequences restart at 0: a retried batch of
    the new epoch must not count as written because the old epoch had acknowledged higher."""
    core = idempotent_core()
    tm = manager(core)
    send_batch(core, 50)
    (old,) = drain(core)
    tm.on_drained([old])
    tm.on_success(old, 0)
    core.complete(old, 0, -1)
    core._set_producer_identity(1000, 1)
    send_batch(core, 3)
    (new,) = drain(core)
    tm.on_drained([new])
    assert header(core, new) == (1000, 1, 0)
    assert not tm.proven_written(new)       # sequences 0-2 of epoch 1 are not 0-49 of epoch 0
    assert tm.can_retry(new, NotLeaderOrFollowerError("x"), -1)


def test_a_retry_behind_an_earlier_sequence_follows_it_without_a_backoff_of_its_own():
    for follow in (True, False):
        core = idempotent_core()
        tm = manager(core)
        send_batch(core, 3)
        (b1,) = drain(core)
        send_batch(core, 2)
        (b2,) = drain(core)
        tm.on_drained([b1, b2])
        # b1 failed (CONCURRENT_TRANSACTIONS, say) and waits 100 ms; b2 came back
        # OUT_OF_ORDER_SEQUENCE_NUMBER only because of it
        core.reenqueue(b1, FAR + 100)
        core.reenqueue(b2, FAR + 5000, follow)
        assert core.topic_state("t").queues[0].batches() == [b1, b2]
        assert drain(core, now=FAR + 99) == []
        assert drain(core, now=FAR + 100) == [b1]   # retries go one at a time
        tm.on_success(b1, 0)
        core.complete(b1, 0, -1)
        # following b1, b2 goes right after it; with its own backoff it would wait 5 s more
        assert drain(core, now=FAR + 100) == ([b2] if follow else [])


def test_follow_earlier_keeps_the_backoff_when_nothing_earlier_waits():
    core = idempotent_core()
    send_batch(core, 3)
    (b1,) = drain(core)
    core.reenqueue(b1, FAR + 300, True)
    assert drain(core, now=FAR + 299) == []
    assert drain(core, now=FAR + 300) == [b1]
