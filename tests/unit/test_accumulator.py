"""The Cython send path and accumulator driven directly, without a network: appends,
partitioning, readiness, draining, completion, futures, callbacks and buffer.memory blocking.
Batches it produces are decoded with kafka-python (an independent reader)."""
from __future__ import annotations

import threading
import time

import pytest
from kafka.record.default_records import DefaultRecordBatch

import kengine_ext as k
from kengine.errors import (
    IllegalStateError,
    KafkaTimeoutError,
    NotLeaderOrFollowerError,
    PartitionerError,
    ProducerClosedError,
    RecordTooLargeError,
    SerializationError,
)
from tests.support.core import Core, drain_all


def records_of(core, batch):
    data = bytes(core.acc.seal(batch))
    b = DefaultRecordBatch(data)
    assert b.validate_crc()
    return [(r.key, r.value, r.headers) for r in b]


def test_keyed_records_go_to_the_java_partition_and_keep_order():
    core = Core({"t": 7})
    futs = [core.send("t", b"v%d" % i, key=b"key-%d" % (i % 5)) for i in range(50)]
    for i, f in enumerate(futs):
        assert f.partition == k.partition_for_key(b"key-%d" % (i % 5), 7)
    by_partition = {}
    for b in drain_all(core):
        by_partition.setdefault(b.partition, []).extend(records_of(core, b))
    for p, recs in by_partition.items():
        expected = [(b"key-%d" % (i % 5), b"v%d" % i, []) for i in range(50)
                    if k.partition_for_key(b"key-%d" % (i % 5), 7) == p]
        assert recs == expected


def test_unkeyed_records_stick_to_one_partition_until_batch_size_then_move():
    core = Core({"t": 4})
    parts = [core.send("t", b"x" * 100).partition for _ in range(400)]
    runs, length = [], 1
    for prev, cur in zip(parts, parts[1:], strict=False):
        if cur == prev:
            length += 1
        else:
            runs.append(length)
            length = 1
    # KIP-794 (Java): a partition keeps at least batch.size (1024) bytes of ~110-byte records
    # before the partitioner moves on. The next partition is drawn at random and may be the same
    # one again (as in Java), so a run can span several sticky periods: never shorter, though.
    assert runs and min(runs) >= 9
    assert len(set(parts)) == 4


def test_explicit_partition_headers_timestamp_and_null_fields():
    core = Core()
    f = core.send("t", None, key=None, partition=2, headers=[("h", b"1")], timestamp_ms=1234)
    (b,) = drain_all(core)
    assert b.partition == 2 and f.partition == 2
    data = bytes(core.acc.seal(b))
    (rec,) = list(DefaultRecordBatch(data))
    assert (rec.key, rec.value, rec.headers, rec.timestamp) == (None, None, [("h", b"1")], 1234)


def test_batches_become_ready_when_full_or_after_linger_or_on_flush():
    core = Core({"t": 1}, linger_ms=1000)
    core.send("t", b"x" * 10)
    # read the clock after the batch opens: a millisecond tick between the two would make
    # the remaining linger 1001 ms from a clock read before it
    now = k.monotonic_ms()
    nodes, delay, _ = core.acc.ready(now)
    assert nodes == set() and 900 <= delay <= 1000
    assert core.acc.drain({0}, 1 << 20, now) == {}
    core.acc.begin_flush()
    try:
        assert core.acc.ready(now)[0] == {0}
    finally:
        core.acc.end_flush()
    for _ in range(20):  # fill past batch.size: the first batch closes and is ready at once
        core.send("t", b"x" * 100)
    assert core.acc.ready(now)[0] == {0}
    (b,) = core.acc.drain({0}, 1 << 20, now)[0]
    assert b.record_count >= 9
    assert core.acc.ready(now + 1000)[0] == {0}  # the second batch after linger


def test_drain_respects_max_request_size_per_node_and_rotates():
    core = Core({"t": 6}, linger_ms=0)
    for p in range(6):
        for _ in range(9):
            core.send("t", b"y" * 100, partition=p)
    now = k.monotonic_ms() + 1
    got = core.acc.drain({0, 1}, 2000, now)
    for node, batches in got.items():
        assert sum(b.size_bytes for b in batches) <= 2000 or len(batches) == 1
        assert all(b.partition % 2 == node for b in batches)


def test_complete_resolves_futures_runs_callbacks_and_frees_memory():
    core = Core({"t": 1})
    seen = []
    futs = [core.send("t", b"v%d" % i, key=b"k", timestamp_ms=1000 + i,
                      on_delivery=lambda err, md: seen.append((err, md.offset))) for i in range(3)]
    used = core.memory.used_bytes
    assert used > 0
    (b,) = drain_all(core)
    core.acc.seal(b)
    core.acc.complete(b, 500, -1)
    assert core.memory.used_bytes == 0
    assert [f.result(0).offset for f in futs] == [500, 501, 502]
    md = futs[1].result()
    assert (md.topic, md.partition, md.timestamp, md.timestamp_type) == ("t", 0, 1001, 0)
    assert (md.serialized_key_size, md.serialized_value_size) == (1, 2)
    assert seen == [(None, 500), (None, 501), (None, 502)]
    late = []
    futs[0].add_callback(lambda err, md: late.append(md.offset))  # runs at once
    assert late == [500]


def test_log_append_time_and_errors_reach_the_future():
    core = Core({"t": 1})
    f1 = core.send("t", b"a")
    (b,) = drain_all(core)
    core.acc.complete(b, 7, 99999)
    md = f1.result()
    assert (md.timestamp, md.timestamp_type) == (99999, 1)
    f2 = core.send("t", b"b")
    (b,) = drain_all(core)
    err = NotLeaderOrFollowerError("gone", topic="t")
    core.acc.complete(b, error=err)
    with pytest.raises(NotLeaderOrFollowerError):
        f2.result()
    assert f2.exception() is err


def test_a_raising_callback_is_logged_and_the_others_still_run(caplog):
    core = Core({"t": 1})
    ran = []

    def bad(err, md):
        raise RuntimeError("boom")

    core.send("t", b"a", on_delivery=bad)
    core.send("t", b"b", on_delivery=lambda e, m: ran.append(m.offset))
    (b,) = drain_all(core)
    core.acc.complete(b, 0, -1)
    assert ran == [1]
    assert "delivery callback" in caplog.text and "boom" in caplog.text


def test_result_waits_across_threads():
    core = Core({"t": 1})
    f = core.send("t", b"a")
    (b,) = drain_all(core)
    threading.Timer(0.05, core.acc.complete, args=(b, 3, -1)).start()
    assert f.result(timeout=5).offset == 3
    f2 = core.send("t", b"b")
    with pytest.raises(KafkaTimeoutError):
        f2.result(timeout=0.01)


def test_send_blocks_on_buffer_memory_then_times_out_and_loses_nothing_accepted():
    core = Core({"t": 1}, buffer_memory=2048, batch_size=1024, linger_ms=0, max_block_ms=100)
    accepted = [core.send("t", b"x" * 400) for _ in range(4)]  # fills two batches
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="buffer.memory"):
        core.send("t", b"x" * 400)
    assert time.monotonic() - t0 >= 0.09
    batches = drain_all(core)
    assert sum(b.record_count for b in batches) == len(accepted)


def test_blocked_send_resumes_when_memory_is_freed():
    core = Core({"t": 1}, buffer_memory=2048, batch_size=1024, linger_ms=0, max_block_ms=5000)
    for _ in range(4):
        core.send("t", b"x" * 400)
    batches = drain_all(core)
    threading.Timer(0.05, lambda: [core.acc.complete(b, 0, -1) for b in batches]).start()
    f = core.send("t", b"x" * 400)  # blocks until the timer frees memory
    assert not f.done()
    assert core.memory.used_bytes >= 1024


def test_record_larger_than_max_request_size_fails_before_batching():
    core = Core({"t": 1}, max_request_size=2000)
    with pytest.raises(RecordTooLargeError, match="max.request.size"):
        core.send("t", b"x" * 5000)
    assert core.acc.queued_batch_count == 0


def test_serializers_and_their_errors():
    core = Core({"t": 1}, key_serializer="str", value_serializer="json")
    core.send("t", {"a": [1, "é"]}, key="ключ")
    (b,) = drain_all(core)
    assert records_of(core, b) == [("ключ".encode(), '{"a":[1,"é"]}'.encode(), [])]

    def broken(value):
        raise ValueError("nope")

    core = Core({"t": 1}, value_serializer=broken)
    with pytest.raises(SerializationError, match="nope"):
        core.send("t", 1)
    core = Core({"t": 1})
    with pytest.raises(SerializationError, match="configure a serializer"):
        core.send("t", 3.5)


def test_python_partitioner_errors_fail_only_that_record():
    class Bad:
        def partition(self, topic, key, value, headers, n, available):
            return 99 if value == b"out" else 0

    core = Core({"t": 2}, partitioner=Bad())
    with pytest.raises(PartitionerError, match="99"):
        core.send("t", b"out")
    assert core.send("t", b"fine").partition == 0


def test_expire_returns_old_queued_batches():
    core = Core({"t": 1}, linger_ms=100000)
    core.send("t", b"a")
    now = k.monotonic_ms()
    assert core.acc.expire(now, 60000) == []
    (b,) = core.acc.expire(now + 60001, 60000)
    assert b.record_count == 1 and core.acc.queued_batch_count == 0


def test_reenqueue_puts_the_batch_first_with_backoff():
    core = Core({"t": 1}, linger_ms=0)
    core.send("t", b"first")
    (b1,) = drain_all(core)
    core.send("t", b"second")
    now = k.monotonic_ms() + 1
    core.acc.reenqueue(b1, now + 100)
    assert core.acc.drain({0}, 1 << 20, now) == {}  # head is backing off: nothing behind it jumps
    (b,) = core.acc.drain({0}, 1 << 20, now + 100)[0]
    assert b is b1


def test_a_batch_back_in_an_emptied_queue_is_seen_by_every_scan():
    """The sender's scans walk only the queues holding batches (kept in a list pruned by
    ready() and prepare_sleep()): a queue emptied by drain() and pruned must come back when
    a batch returns to it, however it returns (a retry, a new record), or that batch would
    never be sent nor expire."""
    core = Core({"t": 5000}, linger_ms=0)
    core.send("t", b"a", partition=4321)
    now = k.monotonic_ms() + 1
    (b,) = core.acc.drain({0, 1}, 1 << 20, now)[1]
    assert core.acc.prepare_sleep(1000, now) == 1000   # nothing queued: the queue is pruned
    core.acc.end_sleep()
    assert core.acc.ready(now)[0] == set()
    core.acc.reenqueue(b, now + 10)                     # a retry after its backoff
    assert core.acc.prepare_sleep(1000, now) == 10
    core.acc.end_sleep()
    assert core.acc.ready(now + 10)[0] == {1}
    assert core.acc.oldest_queued_ms() == b.created_ms
    assert core.acc.drain({1}, 1 << 20, now + 10)[1] == [b]
    core.acc.complete(b, 0)
    core.acc.ready(now + 10)                            # pruned again
    core.send("t", b"later", partition=4321)            # a new record
    (late,) = core.acc.expire(now + 60_000, 1)
    assert late.partition == 4321 and late.record_count == 1


def test_drain_keeps_its_rotation_while_empty_queues_leave_the_scan():
    """Requests of ~8 batches over 1,000 partitions, the queues drained empty and pruned
    between drains (as the sender does every turn): still every partition is served once
    before any is served twice."""
    core = Core({"t": 1000}, linger_ms=0)
    core.acc.update_topic("t", [(0, 0)] * 1000)
    for p in range(1000):
        core.send("t", b"v" * 100, partition=p)
    seen = []
    now = k.monotonic_ms() + 1
    while len(seen) < 1000:
        got = core.acc.drain({0}, 8 * 200, now)
        assert got, "a drain with sendable batches returned nothing"
        seen += [b.partition for b in got[0]]
        core.acc.ready(now)                             # prunes the emptied queues
        for b in got[0]:
            core.acc.complete(b, 0, -1)
            core.send("t", b"v" * 100, partition=b.partition)   # refill: back at the end
    assert sorted(seen[:1000]) == list(range(1000))


def test_closed_core_refuses_sends_and_transactional_needs_a_transaction():
    core = Core()
    core.acc.close()
    with pytest.raises(ProducerClosedError):
        core.send("t", b"x")
    tx = Core(transactional=True)
    with pytest.raises(IllegalStateError, match="begin_transaction"):
        tx.send("t", b"x")


def test_sender_is_woken_only_when_it_sleeps_past_the_new_batch():
    core = Core({"t": 1}, linger_ms=50)
    now = k.monotonic_ms()
    assert core.acc.prepare_sleep(10_000, now) == 10_000
    core.send("t", b"a")           # new batch ready in 50 ms < 10 s: wake
    assert core.wakeups == 1
    core.send("t", b"b")           # same batch: no wake
    assert core.wakeups == 1
    core.acc.end_sleep()


# ---------------------------------------------------------------------------- send_many


def test_send_many_partitions_like_send_and_keeps_per_partition_order():
    core = Core({"t": 5}, linger_ms=0)
    n = 3000
    keys = [b"k%d" % (i % 37) for i in range(n)]
    values = [b"value-%d" % i for i in range(n)]
    headers = [[("i", b"%d" % i)] if i % 2 else None for i in range(n)]
    stamps = [10_000 + i for i in range(n)]
    fut = core.send_many("t", values, keys=keys, headers=headers, timestamps=stamps)
    got = {}
    for b in drain_all(core):
        data = bytes(core.acc.seal(b))
        got.setdefault(b.partition, []).extend(
            (r.key, r.value, r.headers, r.timestamp) for r in DefaultRecordBatch(data))
    for p, recs in got.items():
        want = [(keys[i], values[i], headers[i] or [], stamps[i]) for i in range(n)
                if k.partition_for_key(keys[i], 5) == p]
        assert recs == want
    assert sum(map(len, got.values())) == n
    assert not fut.done()


def test_send_many_result_maps_offsets_and_failures_to_input_indices():
    core = Core({"t": 2}, linger_ms=0)
    candidates = [b"k%d" % i for i in range(20)]
    good = next(c for c in candidates if k.partition_for_key(c, 2) == 0)
    bad = next(c for c in candidates if k.partition_for_key(c, 2) == 1)
    keys = [good if i % 3 else bad for i in range(100)]
    fut = core.send_many("t", [b"%d" % i for i in range(100)], keys=keys)
    for b in drain_all(core):
        if b.partition == 0:
            core.acc.complete(b, 1000, -1)
        else:
            core.acc.complete(b, error=NotLeaderOrFollowerError("x"))
    res = fut.result(timeout=1)
    assert set(res.errors) == {i for i in range(100) if keys[i] == bad}
    assert all(isinstance(e, NotLeaderOrFollowerError) for e in res.errors.values())
    assert isinstance(fut.exception(), NotLeaderOrFollowerError)
    md = res.metadata()
    ok = [i for i in range(100) if keys[i] == good]
    assert [md[i].offset for i in ok] == list(range(1000, 1000 + len(ok)))
    assert all(md[i] is None for i in res.errors)


def test_small_send_many_calls_fill_the_open_batch():
    core = Core({"t": 1}, linger_ms=1000, batch_size=16384)
    for i in range(20):
        core.send_many("t", [b"x%d" % i] * 5)
    core.send("t", b"last")
    assert core.acc.queued_batch_count == 1


def test_send_many_large_call_spans_batches_and_respects_batch_size():
    core = Core({"t": 1}, linger_ms=0, batch_size=4096, buffer_memory=1 << 24)
    fut = core.send_many("t", [b"y" * 100] * 10_000, partition=0)
    batches = drain_all(core)
    assert sum(b.record_count for b in batches) == 10_000
    assert all(len(bytes(core.acc.seal(b))) <= 4096 for b in batches)
    for b in batches:
        core.acc.complete(b, 0, -1)
    assert fut.result(1).ok


def test_send_many_refuses_mismatched_lengths_as_a_whole():
    core = Core({"t": 1})
    with pytest.raises(ValueError, match="keys has 1 entries for 2 values"):
        core.send_many("t", [b"a", b"b"], keys=[b"k"])
    assert core.acc.queued_batch_count == 0


class Refusals(Core):
    """Records what send_many() reports through its records_refused up-call."""

    def __init__(self, *args, **kwargs):
        self.refused = []
        super().__init__(*args, records_refused=self._records_refused, **kwargs)

    def _records_refused(self, topic, count, first_index, first_error):
        self.refused.append((topic, count, first_index, type(first_error)))


def test_send_many_refuses_bad_records_alone_and_sends_the_rest_in_order():
    core = Refusals({"t": 1}, max_request_size=1000, linger_ms=0)
    values = [b"v0", b"x" * 2000, b"v2", 7, b"v4", b"v5", b"v6"]
    headers = [None, None, None, None, [(b"not-str", b"h")], [("ok", b"h")], None]
    fut = core.send_many("t", values, keys=[b"k%d" % i for i in range(7)], headers=headers)
    (batch,) = drain_all(core)
    assert records_of(core, batch) == [(b"k0", b"v0", []), (b"k2", b"v2", []),
                                       (b"k5", b"v5", [("ok", b"h")]), (b"k6", b"v6", [])]
    core.acc.complete(batch, 500, -1)
    res = fut.result(timeout=1)
    assert sorted(res.errors) == [1, 3, 4]
    assert isinstance(res.errors[1], RecordTooLargeError)
    assert str(res.errors[1]).endswith("record 1 to 't' is 2080 bytes when serialized, more "
                                       "than max.request.size (1000); it was not sent")
    assert isinstance(res.errors[3], SerializationError)
    assert str(res.errors[3]).startswith("value of record 3 must be bytes, str, a buffer")
    assert isinstance(res.errors[4], SerializationError)
    assert str(res.errors[4]) == "record 4: header key b'not-str' must be str, not bytes"
    md = res.metadata()
    assert [m.offset if m else None for m in md] == [500, None, 501, None, None, 502, 503]
    assert core.refused == [("t", 3, 1, RecordTooLargeError)]


def test_send_many_refusals_keep_their_index_past_the_first_chunk():
    core = Refusals({"t": 2}, linger_ms=0, batch_size=1 << 16, buffer_memory=1 << 24)
    n = 10_000   # three chunks of at most 4,096 records
    values = [b"%d" % i for i in range(n)]
    values[5] = 5
    values[4500] = 4500.0
    values[9999] = None   # a null value is a record, not a refusal
    fut = core.send_many("t", values, keys=[b"%d" % i for i in range(n)])
    batches = drain_all(core)
    sent = [v for b in batches for (_, v, _) in records_of(core, b)]
    assert sorted(sent, key=lambda v: -1 if v is None else int(v)) == \
        [None] + [b"%d" % i for i in range(n - 1) if i not in (5, 4500)]
    for b in batches:
        core.acc.complete(b, 0, -1)
    res = fut.result(timeout=1)
    assert sorted(res.errors) == [5, 4500]
    assert "value of record 4500 must be bytes" in str(res.errors[4500])
    assert core.refused == [("t", 2, 5, SerializationError)]


def test_send_many_a_serializer_that_raises_fails_that_record_only():
    def serializer(value):
        if value == "bad":
            raise ValueError("no")
        return value.encode()

    core = Refusals({"t": 1}, value_serializer=serializer, linger_ms=0)
    fut = core.send_many("t", ["a", "bad", "c"])
    (batch,) = drain_all(core)
    assert [v for (_, v, _) in records_of(core, batch)] == [b"a", b"c"]
    core.acc.complete(batch, 0, -1)
    (error,) = fut.result(timeout=1).errors.values()
    assert isinstance(error, SerializationError)
    assert str(error) == "record 1: the value serializer failed for a record to 't': " \
                         "ValueError: no"
    assert isinstance(error.__cause__, ValueError)


def test_send_many_out_of_buffer_memory_refuses_the_rest_after_one_wait():
    core = Refusals({"t": 1}, batch_size=1024, buffer_memory=4096, max_block_ms=200)
    n = 6000   # two chunks, far more than four batches of 1 KiB hold
    started = time.monotonic()
    fut = core.send_many("t", [b"v%05d" % i for i in range(n)], partition=0)
    assert time.monotonic() - started < 2    # one wait of max.block.ms, not one per chunk
    queued = sum(b.record_count for b in core.acc.topic_state("t").queues[0].batches())
    assert 0 < queued < n
    for b in drain_all(core):
        core.acc.complete(b, 0, -1)
    res = fut.result(timeout=1)
    assert sorted(res.errors) == list(range(queued, n))   # the first ones went, in order
    assert all(isinstance(e, KafkaTimeoutError) for e in res.errors.values())
    assert "waited 200 ms (max.block.ms)" in str(res.errors[n - 1])
    assert core.refused == [("t", n - queued, queued, KafkaTimeoutError)]


def test_send_many_where_every_record_is_refused_is_done_at_once():
    core = Refusals({"t": 1})
    fut = core.send_many("t", [1, 2])
    assert fut.done() and core.acc.queued_batch_count == 0
    assert sorted(fut.result(timeout=0).errors) == [0, 1]


# -- buffer.memory follows what batches hold, not batch.size ---------------------------------

def test_a_thousand_partitions_of_large_batches_do_not_hold_buffer_memory_empty():
    """One record in each of 1,000 partitions with batch.size 64 KiB: reserving batch.size
    per batch (Java's way) would need 64 MiB of a 32 MiB buffer.memory, and the sends would
    wait for batches holding one record each to be sent. Each batch starts small instead."""
    core = Core({"t": 1000}, batch_size=65536, buffer_memory=32 << 20, linger_ms=60_000,
                max_block_ms=100)
    for p in range(1000):
        core.send("t", b"x" * 100, partition=p)
    assert core.acc.queued_batch_count == 1000
    assert core.memory.used_bytes == 1000 * 4096
    assert core.memory.waiters == 0


def test_send_many_to_a_thousand_partitions_reserves_what_its_records_take():
    """send_many() of 2,000 keyed records over 1,000 partitions, batch.size 64 KiB: a new
    batch reserved batch.size (64 MiB of a 32 MiB buffer.memory), the call waited for batches
    of two records to be sent, and they all went out nearly empty. Each batch now reserves
    what its records take, at least 4 KiB; a later call's records still join it."""
    core = Core({"t": 1000}, batch_size=65536, buffer_memory=32 << 20, linger_ms=60_000,
                max_block_ms=100)
    keys = [b"%d" % i for i in range(2000)]
    fut = core.send_many("t", [b"x" * 100] * 2000, keys=keys)
    assert core.memory.waiters == 0 and not fut.done()
    batches = core.acc.queued_batch_count
    assert 600 < batches <= 1000
    assert core.memory.used_bytes == batches * 4096
    core.send_many("t", [b"y" * 100] * 2000, keys=keys)
    assert core.acc.queued_batch_count == batches       # into the open batches
    # one partition's records past its 4 KiB: that batch grows (by doubling, each step
    # charged) instead of another opening
    q = next(q for q in core.acc.topic_state("t").queues if q.batch_count)
    (held,) = [b.record_count for b in q.batches()]
    core.send_many("t", [b"z" * 1000] * 30, partition=q.partition)
    assert core.acc.queued_batch_count == batches
    assert [b.record_count for b in q.batches()] == [held + 30]
    assert (batches - 1) * 4096 + 32768 <= core.memory.used_bytes <= (batches - 1) * 4096 + 65536
    core.complete_all_queued()
    assert core.memory.used_bytes == 0 and fut.result(timeout=1).ok


def test_a_large_send_many_group_fills_batches_of_batch_size():
    core = Core({"t": 1}, batch_size=16384, buffer_memory=1 << 20, linger_ms=60_000)
    core.send_many("t", [b"v" * 100] * 1000, partition=0)
    batches = list(core.acc.topic_state("t").queues[0].batches())
    assert len(batches) == 7 and sum(b.record_count for b in batches) == 1000
    assert all(b.size_bytes > 15_000 for b in batches[:-1])
    # six batches of batch.size, and what the last one's records take (an upper bound)
    assert 6 * 16384 < core.memory.used_bytes < 7 * 16384


def test_a_batch_grows_to_batch_size_and_buffer_memory_follows_it():
    core = Core({"t": 1}, batch_size=65536, buffer_memory=1 << 20, linger_ms=60_000)
    futures = [core.send("t", b"%05d" % i + b"x" * 95) for i in range(500)]
    (b,) = drain_all(core, k.monotonic_ms() + 120_000)
    assert b.record_count == 500
    # 4 KiB, doubled four times; every step charged when it was taken
    assert core.memory.used_bytes == 65536
    core.acc.seal(b)
    core.acc.complete(b, 0, -1)
    assert core.memory.used_bytes == 0
    assert [f.result(0).offset for f in futures] == list(range(500))
    # the partition's next batch starts at the size the last one needed
    core.send("t", b"y")
    assert core.memory.used_bytes == 65536
    assert core.acc.topic_state("t").queues[0].open_bytes == 65536


def test_a_batch_that_buffer_memory_cannot_grow_goes_out_as_it_is():
    """12 KiB of buffer.memory: the first batch grows to 8 KiB, cannot reach 16 KiB, and is
    closed; the next opens with the 4 KiB left. Nothing accepted is lost, and the bytes
    charged never pass buffer.memory."""
    core = Core({"t": 1}, batch_size=65536, buffer_memory=12288, linger_ms=60_000,
                max_block_ms=100)
    accepted = []
    with pytest.raises(KafkaTimeoutError, match="buffer.memory"):
        for i in range(1000):
            accepted.append(core.send("t", b"%05d" % i + b"x" * 95))
            assert core.memory.used_bytes <= 12288
    batches = drain_all(core, k.monotonic_ms() + 120_000)
    assert [b.size_bytes <= 8192 for b in batches] == [True, True]
    assert sum(b.record_count for b in batches) == len(accepted)


def test_an_open_batch_waits_for_its_partitions_batch_in_flight_and_then_takes_all_it_gathered():
    """A partition's open batch is held while its previous batch is unanswered, past linger.ms
    and through a flush: when the broker is slow, records gather into one batch instead of a
    batch each per request (on a new 5,000-partition topic, 1-2 records per batch and
    54,000-63,000 records/s before; 91,000-308,000 after)."""
    core = Core({"t": 1}, linger_ms=0)
    core.send("t", b"a")
    now = k.monotonic_ms() + 1
    (first,) = core.acc.drain({0}, 1 << 20, now)[0]
    core.send("t", b"b")
    core.send("t", b"c")
    later = now + 1000
    assert core.acc.ready(later)[:2] == (set(), -1)      # held, and no timer for it
    assert core.acc.drain({0}, 1 << 20, later) == {}
    assert core.acc.prepare_sleep(500, later) == 500     # the answer wakes the sender
    core.acc.end_sleep()
    core.acc.begin_flush()
    try:
        assert core.acc.drain({0}, 1 << 20, later) == {}  # a flush waits for the answer too
        core.acc.complete(first, 0)
        assert core.acc.ready(later)[0] == {0}
        (second,) = core.acc.drain({0}, 1 << 20, later)[0]
    finally:
        core.acc.end_flush()
    assert [r[1] for r in records_of(core, second)] == [b"b", b"c"]


def test_full_batches_of_a_partition_still_go_while_its_earlier_batch_is_in_flight():
    core = Core({"t": 1}, linger_ms=0, batch_size=1024)
    core.send("t", b"a")
    now = k.monotonic_ms() + 1
    (first,) = core.acc.drain({0}, 1 << 20, now)[0]
    for _ in range(30):                                    # ~3 KB: two full batches, one open
        core.send("t", b"x" * 100)
    full = []
    while got := core.acc.drain({0}, 1 << 20, now):        # one batch per partition a request
        full.extend(got[0])
    assert len(full) >= 2 and all(b.record_count >= 8 for b in full)   # the open one is held
    for b in [first, *full]:
        core.acc.complete(b, 0)
    (rest,) = core.acc.drain({0}, 1 << 20, now)[0]
    assert sum(b.record_count for b in full) + rest.record_count == 30


def test_a_batch_sent_again_goes_first_and_the_open_one_waits_for_it():
    core = Core({"t": 1}, linger_ms=0)
    core.send("t", b"a")
    now = k.monotonic_ms() + 1
    (first,) = core.acc.drain({0}, 1 << 20, now)[0]
    core.send("t", b"b")
    core.acc.reenqueue(first, now)                          # a retriable error
    assert core.acc.drain({0}, 1 << 20, now)[0] == [first]  # it goes again, alone
    assert core.acc.drain({0}, 1 << 20, now) == {}
    core.acc.complete(first, 0)
    (second,) = core.acc.drain({0}, 1 << 20, now)[0]
    assert [r[1] for r in records_of(core, second)] == [b"b"]


def test_a_send_waiting_for_buffer_memory_makes_queued_batches_sendable_before_linger():
    core = Core({"t": 2}, batch_size=4096, buffer_memory=8192, linger_ms=60_000,
                max_block_ms=5000)
    core.send("t", b"x" * 3000, partition=0)
    core.send("t", b"x" * 3000, partition=1)
    now = k.monotonic_ms()
    nodes, _, _ = core.acc.ready(now)
    assert nodes == set()            # linger.ms is a minute away
    waker = threading.Thread(target=core.send, args=("t", b"x" * 3000), kwargs={"partition": 0})
    waker.start()
    deadline = time.monotonic() + 5
    while core.memory.waiters == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert core.memory.waiters == 1
    nodes, _, _ = core.acc.ready(now)
    assert nodes == {0, 1}           # everything queued goes, to give the memory back
    core.complete_all_queued()
    waker.join(5)
    assert not waker.is_alive()
