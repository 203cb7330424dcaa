"""Splitting a batch the broker refused as too large (MESSAGE_TOO_LARGE), without a broker: the
Cython core's split_batch() (re-encoding, queue order, memory, futures that follow the records)
and the TransactionManager's sequence bookkeeping for the pieces. Pieces are decoded with
kafka-python (an independent reader)."""
from __future__ import annotations

import random
import struct
import threading

import pytest
from kafka.record.default_records import DefaultRecordBatch

import kengine_ext as k
from kengine.errors import (
    IllegalStateError,
    MessageTooLargeError,
    NotLeaderOrFollowerError,
    OutOfOrderSequenceNumberError,
)
from tests.support.core import Core, drain_all

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def decoded(core, batch):
    data = bytes(core.acc.seal(batch))
    b = DefaultRecordBatch(data)
    assert b.validate_crc()
    return b, [(r.key, r.value, list(r.headers), r.timestamp) for r in b]


def one_batch(core, n=60, value_bytes=40, **send):
    """n records into one batch of partition 0; returns the futures and the drained batch."""
    futures = [core.send("t", b"%03d" % i + b"v" * value_bytes, key=b"k%d" % i if i % 4 else None,
                         headers=[("i", b"%d" % i)] if i % 3 else None, partition=0, **send)
               for i in range(n)]
    (batch,) = drain_all(core)
    return futures, batch


def drain_once(core):
    """One drain: at most one batch per partition, as in one produce request."""
    got = core.acc.drain({0, 1}, 1 << 30, k.monotonic_ms() + 10_000)
    return [b for batches in got.values() for b in batches]


def complete_in_order(core, pieces, base_offset):
    offset = base_offset
    for p in pieces:
        core.acc.complete(p, offset, -1)
        offset += p.record_count


@pytest.mark.parametrize("codec", CODECS)
def test_pieces_hold_the_same_records_in_order_with_their_sequences(codec):
    core = Core({"t": 1}, batch_size=8192, linger_ms=0, compression=codec,
                idempotent=True, transactional=False)
    core.acc.sequences.set_identity(42, 3)
    _, big = one_batch(core, n=80)
    _, records = decoded(core, big)
    refused_bytes = big.size_bytes
    assert big.base_sequence == 0
    pieces = core.acc.split_batch(big)
    assert len(pieces) >= 2 and big.split_into == pieces
    assert core.acc.topic_state("t").queues[0].batches() == pieces
    again = []
    sequence = 0
    for p in pieces:
        b, recs = decoded(core, p)
        # half the refused batch at most (compressed pieces: as estimated from its ratio)
        if codec == "none":
            assert p.size_bytes <= refused_bytes // 2
        else:
            assert p.size_bytes < refused_bytes
        assert (b.producer_id, b.producer_epoch, b.base_sequence) == (42, 3, sequence)
        assert p.base_sequence == sequence
        sequence += p.record_count
        again += recs
    assert again == records          # keys, nulls, headers and timestamps kept, in order
    assert sequence == 80


def test_a_batch_that_compressed_worse_than_estimated_splits_into_batch_size_pieces():
    # The case Java splits for: a compressed batch takes records while its estimated
    # compressed size stays under batch.size; records compressing far worse than the
    # topic's earlier ones make it many times batch.size.
    core = Core({"t": 1}, batch_size=1024, linger_ms=0, compression="zstd")
    state = core.acc.topic_state("t")
    for _ in range(150):            # very compressible batches lower the estimate
        for _ in range(8):
            core.send("t", b"z" * 100, partition=0)
        (b,) = drain_all(core)
        core.acc.seal(b)
        core.acc.complete(b, 0, -1)
    rnd = random.Random(1)
    for _ in range(200):
        core.send("t", rnd.randbytes(100), partition=0)
    batches = drain_all(core)
    big = batches[0]
    core.acc.seal(big)
    assert big.size_bytes > 2 * 1024   # incompressible: sent uncompressed, far over batch.size
    pieces = core.acc.split_batch(big)
    assert all(p.size_bytes <= 1024 for p in pieces)
    assert sum(p.record_count for p in pieces) == big.record_count
    # the topic's next batches are built as if uncompressed: batch.size of raw records
    assert state.compression_ratio >= 1.0
    for b in batches[1:]:
        core.acc.complete(b, 0, -1)
    for _ in range(100):
        core.send("t", rnd.randbytes(100), partition=0)
    later = [b for b in drain_all(core) if b not in pieces]
    assert max(b.builder_or_none.uncompressed_size_bytes for b in later) <= 1024


def test_the_topic_compression_estimate_goes_back_up_to_no_compression():
    core = Core({"t": 1}, batch_size=4096, linger_ms=0, compression="lz4")
    state = core.acc.topic_state("t")
    for _ in range(100):
        for _ in range(30):
            core.send("t", b"z" * 100, partition=0)
        (b,) = drain_all(core)
        core.acc.seal(b)
        core.acc.complete(b, 0, -1)
    assert state.compression_ratio < 0.6
    _, big = one_batch(core, n=40)
    core.acc.seal(big)
    assert state.compression_ratio < 1.0    # compressed fine: sealing alone would keep it
    core.acc.split_batch(big)
    assert state.compression_ratio == 1.0


def test_later_splits_cut_to_half_the_smallest_size_the_topic_refused():
    # max.message.bytes is the topic's: once a small batch was refused, the other pieces of
    # an earlier split need not be refused at every size on the way down to it
    core = Core({"t": 1}, batch_size=65536, linger_ms=0)
    state = core.acc.topic_state("t")
    _, big = one_batch(core, n=400)
    refused = big.size_bytes
    first, sibling = core.acc.split_batch(big)[:2]
    assert state.refused_bytes == refused
    head = first
    for _ in range(3):            # the first piece is refused again and again
        assert drain_once(core) == [head]
        refused = head.size_bytes
        head = core.acc.split_batch(head)[0]
        assert state.refused_bytes == refused
    while True:
        (p,) = drain_once(core)
        if p is sibling:
            break
        core.acc.complete(p, 0, -1)
    assert sibling.size_bytes > 4 * state.refused_bytes
    pieces = core.acc.split_batch(sibling)
    assert all(p.size_bytes <= state.refused_bytes // 2 for p in pieces)


def test_a_lone_large_record_among_small_ones_ends_in_its_own_batch():
    core = Core({"t": 1}, batch_size=100_000, linger_ms=0)
    values = [b"a" * 50] * 10 + [b"B" * 5000] + [b"c" * 50] * 10
    futures = [core.send("t", v, partition=0) for v in values]
    (big,) = drain_all(core)
    core.acc.split_batch(big)
    # as the sender does: the pieces go one by one, and any refused is split again, until
    # the big record is alone and refused for good
    sent = []
    while True:
        got = drain_once(core)
        if not got:
            break
        (p,) = got
        held = [v for _, v, _, _ in decoded(core, p)[1]]
        if b"B" * 5000 not in held:
            core.acc.complete(p, 0, -1)
            sent += held
        elif p.record_count > 1:
            core.acc.split_batch(p)
        else:
            core.acc.complete(p, error=MessageTooLargeError("too large"))
            sent += held
    assert sent == values
    errors = [f.exception(0) for f in futures]
    assert [i for i, e in enumerate(errors) if e is not None] == [10]
    assert isinstance(errors[10], MessageTooLargeError)


def test_futures_callbacks_and_bulk_results_follow_their_records():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0)
    heard = {}
    futures = []
    for i in range(30):
        cb = (lambda e, md, i=i: heard.__setitem__(i, (e, md))) if i % 2 else None
        futures.append(core.send("t", b"r%02d" % i + b"." * 30, partition=0,
                                 timestamp_ms=1_000_000 + i, on_delivery=cb))
    bulk = core.send_many("t", [b"m%02d" % i + b"." * 30 for i in range(30)], partition=0)
    futures[4].add_callback(lambda e, md: heard.__setitem__("late-before", (e, md)))
    (big,) = drain_all(core)
    pieces = core.acc.split_batch(big)
    futures[6].add_callback(lambda e, md: heard.__setitem__("late-after", (e, md)))
    # the second piece is refused again: futures follow two levels
    assert drain_once(core) == [pieces[0]]
    assert drain_once(core) == [pieces[1]]
    sub = core.acc.split_batch(pieces[1])
    assert not any(f.done() for f in futures) and not bulk.done()
    assert core.acc.topic_state("t").queues[0].batches() == [*sub, *pieces[2:]]
    # the last piece fails, the others are written at consecutive offsets from 500
    queued = [pieces[0], *sub, *pieces[2:]]
    offset = 500
    for p in queued[:-1]:
        core.acc.complete(p, offset, -1)
        offset += p.record_count
    failed_from = offset - 500
    core.acc.complete(queued[-1], error=MessageTooLargeError("still too large"))
    assert all(f.done() for f in futures) and bulk.done() and big.wait(0)
    for i, f in enumerate(futures):
        if i < failed_from:
            md = f.result(0)
            assert (md.partition, md.offset, md.timestamp) == (0, 500 + i, 1_000_000 + i)
            assert (md.serialized_key_size, md.serialized_value_size) == (-1, 33)
        else:
            assert isinstance(f.exception(0), MessageTooLargeError)
    assert sorted(i for i in heard if isinstance(i, int)) == list(range(1, 30, 2))
    for i, (e, md) in ((i, v) for i, v in heard.items() if isinstance(i, int)):
        assert (md.offset if e is None else None) == (500 + i if i < failed_from else None)
    assert heard["late-before"][1].offset == 504 and heard["late-after"][1].offset == 506
    result = bulk.result(0)
    failed = {i for i in range(30) if 30 + i >= failed_from}
    assert set(result.errors) == failed
    mds = result.metadata()
    assert [md.offset for md in mds if md is not None] == \
        [530 + i for i in range(30) if i not in failed]


def test_a_waiter_blocked_before_the_split_gets_its_record_outcome():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0)
    futures, big = one_batch(core, n=20)
    got = {}
    started = threading.Event()

    def wait(i):
        started.set()
        got[i] = futures[i].result(30).offset

    threads = [threading.Thread(target=wait, args=(i,)) for i in (0, 19)]
    for t in threads:
        t.start()
    started.wait(10)
    pieces = core.acc.split_batch(big)
    complete_in_order(core, pieces, 1000)
    for t in threads:
        t.join(30)
    assert got == {0: 1000, 19: 1019}


def test_wait_on_the_split_batch_waits_for_every_piece():
    # flush() and close() wait on incomplete_batches(), which may still list the split batch
    core = Core({"t": 1}, batch_size=8192, linger_ms=0)
    _, big = one_batch(core, n=20)
    pieces = core.acc.split_batch(big)
    assert big not in core.acc.incomplete_batches()
    assert set(pieces) <= set(core.acc.incomplete_batches())
    core.acc.complete(pieces[0], 0, -1)
    assert not big.wait(0.01)
    complete_in_order(core, pieces[1:], 100)
    assert big.wait(0) and not core.acc.incomplete_batches()
    core.acc.complete(big, 5, -1)        # a late outcome for the split batch changes nothing
    assert not big.done


def test_buffer_memory_moves_to_the_pieces_and_is_released_once():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0, compression="lz4",
                buffer_memory=1 << 20)
    _, big = one_batch(core, n=100)
    core.acc.seal(big)
    used = core.memory.used_bytes
    pieces = core.acc.split_batch(big)
    # the pieces are charged what they hold, the refused batch nothing any more
    assert core.memory.used_bytes == sum(p.builder_or_none.size_bytes for p in pieces)
    assert core.memory.used_bytes <= used
    assert drain_once(core) == [pieces[0]]
    more = core.acc.split_batch(pieces[0])     # refused again
    assert core.memory.used_bytes == sum(p.builder_or_none.size_bytes
                                         for p in more + pieces[1:])
    for p in drain_all(core):
        core.acc.seal(p)                 # sealing compresses in place: no more memory
        core.acc.complete(p, 0, -1)
    assert core.memory.used_bytes == 0


def test_only_a_drained_unfinished_batch_of_several_records_splits():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0)
    core.send("t", b"alone", partition=0)
    (single,) = drain_all(core)
    with pytest.raises(IllegalStateError):
        core.acc.split_batch(single)
    _, big = one_batch(core, n=3)
    core.acc.reenqueue(big, 0)                 # queued again: its queue links it
    with pytest.raises(IllegalStateError):
        core.acc.split_batch(big)
    assert drain_all(core) == [big]
    core.acc.complete(big, 0, -1)
    with pytest.raises(IllegalStateError):
        core.acc.split_batch(big)
    assert core.acc.topic_state("t").queues[0].batches() == []


def test_pieces_keep_the_creation_time_for_delivery_timeout():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0)
    _, big = one_batch(core, n=20)
    pieces = core.acc.split_batch(big)
    assert {p.created_ms for p in pieces} == {big.created_ms}
    assert core.acc.oldest_queued_ms() == big.created_ms
    expired = core.acc.expire(big.created_ms + 1000, 1000)
    assert expired == pieces


# ---------------------------------------------------------------- sequences


def header(core, batch):
    return struct.unpack(">qhi", bytes(core.acc.seal(batch))[43:57])


def ack(core, b, offset=0):
    core.acc.sequences.on_success(b, offset)
    core.acc.complete(b, offset, -1)


def test_pieces_take_over_the_sequences_and_later_batches_wait_behind_them():
    core = Core({"t": 1}, idempotent=True, linger_ms=0, batch_size=8192)
    core.acc.sequences.set_identity(1000, 0)
    core.send("t", b"first", partition=0)
    (first,) = drain_all(core)
    ack(core, first)                           # the broker knows this producer now
    core.acc.set_draining_all(True)   # several small batches in flight: see drain_all()
    sent = []
    for n in (40, 10):          # two batches in flight: sequences 1-40 and 41-50
        for i in range(n):
            core.send("t", b"%d" % i + b"." * 40, partition=0)
        (b,) = drain_once(core)
        sent.append(b)
    big, later = sent
    q = core.acc.topic_state("t").queues[0]
    # big is refused as too large; later, out of order (the broker still expects 1)
    pieces = core.acc.split_batch(big)
    core.acc.sequences.on_split(big, pieces)
    assert pieces[0].base_sequence == 1
    assert q.sequences.batches() == [*pieces, later]
    error = OutOfOrderSequenceNumberError("expected 1")
    assert core.acc.sequences.can_retry(later, error, -1)
    core.acc.reenqueue(later, 0)
    assert q.batches() == [*pieces, later]
    core.send("t", b"new", partition=0)         # no sequence yet: behind everything
    sequences = [p.base_sequence for p in [*pieces, later]]
    assert sequences == [1 + sum(x.record_count for x in pieces[:i])
                         for i in range(len(pieces))] + [41]
    # one piece at a time: each is the oldest unfinished batch when it goes
    order = []
    for expected in [*pieces, later]:
        got = drain_once(core)
        if expected is not later:
            assert drain_once(core) == []       # the next one waits for this one
        assert got == [expected]
        order.append(header(core, expected))
        ack(core, expected)
    assert order == [(1000, 0, seq) for seq in sequences]
    (new,) = drain_once(core)
    assert header(core, new) == (1000, 0, 51)


def split_and_send_first_piece():
    """An idempotent partition whose one batch was split; the first piece is in flight."""
    core = Core({"t": 1}, idempotent=True, linger_ms=0, batch_size=8192)
    core.acc.sequences.set_identity(1000, 0)
    for i in range(20):
        core.send("t", b"%d" % i + b"." * 40, partition=0)
    (big,) = drain_all(core)
    pieces = core.acc.split_batch(big)
    core.acc.sequences.on_split(big, pieces)
    (first,) = drain_all(core)
    return core, pieces, first


def test_a_piece_that_fails_for_good_renumbers_the_rest_with_a_new_epoch():
    core, pieces, first = split_and_send_first_piece()
    error = MessageTooLargeError("too large")
    assert not core.acc.sequences.can_retry(first, error, -1)
    core.acc.sequences.on_failed(first, error, True)
    core.acc.complete(first, error=error)
    assert core.acc.sequences.epoch_bump_requested
    core.acc.sequences.set_identity(1000, 1)
    (second,) = drain_all(core)
    assert second is pieces[1] and header(core, second) == (1000, 1, 0)


def test_a_retriable_error_on_a_piece_retries_it_in_sequence_order():
    core, pieces, first = split_and_send_first_piece()
    assert core.acc.sequences.can_retry(first, NotLeaderOrFollowerError("moved"), -1)
    core.acc.reenqueue(first, 0)
    assert core.acc.topic_state("t").queues[0].batches() == pieces
    assert drain_all(core) == [first]


def test_split_batches_are_counted_in_metrics():
    from tests.support.metric_inputs import Batch, make

    m, _, _ = make()
    m.on_split(Batch("a", 10, 1000, 0))
    m.on_split(Batch("a", 5, 500, 0))
    snap = m.snapshot()
    assert snap["batch-split-total"] == 2 and snap["batch-split-rate"] > 0


def test_the_split_records_decode_with_kengine_too():
    core = Core({"t": 1}, batch_size=8192, linger_ms=0, compression="gzip")
    _, big = one_batch(core, n=30)
    original = [(r.key, r.value, r.headers, r.timestamp)
                for r in k.decode_batches(bytes(core.acc.seal(big)))[0].records]
    pieces = core.acc.split_batch(big)
    again = [(r.key, r.value, r.headers, r.timestamp) for p in pieces
             for r in k.decode_batches(bytes(core.acc.seal(p)))[0].records]
    assert again == original


def test_pieces_of_a_later_split_queue_behind_the_pieces_of_an_earlier_one():
    # Two batches in flight are both refused as too large, the earlier answered first: the
    # later one's pieces (later sequences) must queue behind the earlier one's, or the queue's
    # head is a sequence that cannot go before the ones behind it and the partition waits
    # until delivery.timeout.ms (CI saw exactly that against the fake broker).
    core = Core({"t": 1}, idempotent=True, linger_ms=0, batch_size=8192)
    core.acc.sequences.set_identity(1000, 0)
    core.send("t", b"first", partition=0)
    (first,) = drain_all(core)
    ack(core, first)                           # the broker knows this producer now
    core.acc.set_draining_all(True)   # several small batches in flight: see drain_all()
    sent = []
    for n in (30, 30):
        for i in range(n):
            core.send("t", b"%d" % i + b"." * 40, partition=0)
        (b,) = drain_once(core)
        sent.append(b)
    earlier, later = sent
    q = core.acc.topic_state("t").queues[0]
    pieces = []
    for big in (earlier, later):
        split = core.acc.split_batch(big)
        core.acc.sequences.on_split(big, split)
        pieces += split
    assert len(pieces) > 2
    assert q.batches() == pieces
    assert q.sequences.batches() == pieces
    # and they go out in that order, one at a time, with consecutive sequences
    expected_seq = 1
    for piece in pieces:
        (got,) = drain_once(core)
        assert got is piece
        assert header(core, got) == (1000, 0, expected_seq)
        expected_seq += got.record_count
        ack(core, got)
    assert expected_seq == 61
