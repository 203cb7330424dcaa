"""Partition choice in the core, driven on the send path with metadata from a dict (no broker):
the built-ins (default, murmur2_random, consistent_random, round_robin), Java's KIP-794 sticky
placement of unkeyed records, and the bridge to Python partitioners."""
from __future__ import annotations

import random
import zlib
from collections import Counter

import pytest

import kengine_ext as k
from kengine.errors import PartitionerError
from tests.support import core as support

RECORD = b"x" * 100   # ~108 bytes once framed in a batch


class Core(support.Core):
    """The send path serving topic "t" from `leaders` (leader id per partition, -1: none)."""

    def __init__(self, leaders=(0, 1, 0, 1), **overrides):
        super().__init__({"t": leaders}, **{"linger_ms": 0, "batch_size": 1024,
                                            "buffer_memory": 256 << 20, **overrides})

    def drain_everything(self, now=None, except_partitions=()):
        """Drains every sendable batch (completing it, which frees its memory)."""
        now = k.monotonic_ms() + 10_000 if now is None else now
        while True:
            got = self.acc.drain({0, 1, 2}, 1 << 30, now)
            if not got:
                return
            for batches in got.values():
                for b in batches:
                    self.acc.complete(b, 0)


def sticky_periods(core, count, value=RECORD, after_each=None):
    """Sends `count` unkeyed records and splits them into sticky periods, each ended by a switch
    (possibly back to the same partition): [(partition, records, bytes counted before the
    record that ended it, whether that record still counted for it)]."""
    state = core.acc.topic_state("t").partitioning
    periods = []
    current = None
    for _ in range(count):
        before = state.produced_bytes
        p = core.send("t", value).partition
        after = state.produced_bytes
        if current is None:
            current = [p, 0]
        if after > before:              # no switch: the record counted towards this period
            current[1] += 1
        elif after == 0:                # it was counted, then switched (updatePartitionInfo)
            current[1] += 1
            periods.append((current[0], current[1], before, True))
            current = None
        else:                           # switched before it was appended (partitionChanged)
            periods.append((current[0], current[1], before, False))
            current = [p, 1]
        if after_each is not None:
            after_each()
    return periods


def single_record_batch_bytes(value=RECORD):
    core = Core(leaders=(0,))
    core.send("t", value, partition=0)
    (b,) = core.acc.topic_state("t").queues[0].batches()
    return b.size_bytes


# ---------------------------------------------------------------------------- keyed built-ins


@pytest.mark.parametrize("name", ["default", "murmur2_random"])
def test_keyed_records_go_to_javas_partition_including_empty_keys(name):
    rng = random.Random(7)
    for n in (1, 2, 3, 7, 12, 1000):
        core = Core(leaders=[0] * n, partitioner=name)
        for length in range(65):
            key = rng.randbytes(length)
            assert core.send("t", b"v", key=key).partition == k.partition_for_key(key, n)
    core = Core(leaders=[0] * 5, partitioner=name)
    assert core.send("t", b"v", key="clé").partition == k.partition_for_key("clé".encode(), 5)


def test_consistent_random_is_zlibs_crc32_of_nonempty_keys():
    core = Core(leaders=[0] * 7, partitioner="consistent_random")
    rng = random.Random(3)
    for length in range(1, 65):
        key = rng.randbytes(length)
        assert core.send("t", b"v", key=key).partition == zlib.crc32(key) % 7


@pytest.mark.parametrize("name,empty_is_sticky", [("consistent_random", True),
                                                  ("murmur2_random", False),
                                                  ("default", False)])
def test_null_and_empty_keys_follow_librdkafkas_rules(name, empty_is_sticky):
    core = Core(leaders=[0] * 16, partitioner=name)
    first = core.send("t", b"v").partition
    # null keys stick to one partition (sticky), they are not spread record by record
    assert {core.send("t", b"v").partition for _ in range(5)} == {first}
    empty = {core.send("t", b"v", key=b"").partition for _ in range(5)}
    if empty_is_sticky:
        assert empty == {first}
    else:
        assert empty == {k.partition_for_key(b"", 16)}


def test_ignore_keys_places_keyed_records_like_unkeyed_ones():
    core = Core(leaders=[0] * 16, ignore_keys=True)
    parts = [core.send("t", RECORD, key=b"key-%d" % i).partition for i in range(5)]
    assert len(set(parts)) == 1


# ---------------------------------------------------------------------------- round_robin


def test_round_robin_takes_partitions_in_turn_skipping_those_without_leader():
    core = Core(leaders=(0, -1, 1, 0, -1, 1), partitioner="round_robin")
    parts = [core.send("t", b"v", key=b"same key").partition for _ in range(12)]
    assert parts == [0, 2, 3, 5] * 3


def test_round_robin_without_any_leader_cycles_over_all_partitions():
    core = Core(leaders=(-1, -1, -1), partitioner="round_robin")
    assert [core.send("t", b"v").partition for _ in range(6)] == [0, 1, 2, 0, 1, 2]


def test_round_robin_does_not_skip_partitions_when_every_record_opens_a_batch():
    # KAFKA-9965: Java's double partition() call on a new batch skipped every other partition
    # of topics with an even partition count.
    core = Core(leaders=(0, 1, 0, 1), partitioner="round_robin", batch_size=100)
    parts = [core.send("t", b"y" * 80).partition for _ in range(400)]
    assert parts == [0, 1, 2, 3] * 100
    assert core.acc.queued_batch_count == 400   # each record did open a batch


def test_round_robin_in_send_many_continues_the_same_sequence():
    core = Core(leaders=(0, 1, 0), partitioner="round_robin")
    core.send("t", b"v")
    core.send_many("t", [b"v"] * 6)
    counts = [sum(b.record_count for b in q.batches()) for q in core.acc.topic_state("t").queues]
    assert counts == [3, 2, 2]
    assert core.send("t", b"v").partition == 1   # the 8th record: 7 % 3


# ---------------------------------------------------------------------------- KIP-794 sticky


def test_unkeyed_records_fill_a_batch_before_switching():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    one = single_record_batch_bytes()            # header + record
    record = one - 61
    periods = sticky_periods(core, 400)
    assert len(periods) >= 15
    # Java's rule: switch once batch.size bytes went to the partition *and* its last batch is
    # full. With nothing sent, the batch after the first full one is still filling when
    # batch.size is reached, so the switch comes at 2 x batch.size, right after the record
    # that reaches it.
    for _, _, counted_before, counted_last in periods:
        assert counted_last
        assert 2 * 1024 - one <= counted_before < 2 * 1024, periods
    first_partition = periods[0][0]
    first_batch = core.acc.topic_state("t").queues[first_partition].batches()[0]
    assert first_batch.size_bytes + record > 1024   # full: the next record did not fit


def test_switch_comes_at_batch_size_when_the_last_batch_was_sent():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    one = single_record_batch_bytes()
    periods = sticky_periods(core, 300, after_each=core.drain_everything)
    assert len(periods) >= 20
    # Every record opens a batch of its own (the previous one was sent): Java counts the new
    # batch's estimated size, header included. The last batch is never full right after the
    # append, so the switch happens when the next record arrives and finds the queue empty.
    for _, records, counted_before, counted_last in periods:
        assert not counted_last
        assert counted_before == records * one
        assert 1024 <= counted_before < 1024 + one


def test_sticky_spread_is_even_over_many_batches():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024, adaptive_partitioning=False)
    periods = sticky_periods(core, 20_000)
    counts = Counter()
    for p, records, _, _ in periods:
        counts[p] += records
    assert len(periods) > 900
    for p in range(4):   # ~1000 uniform switches: 25% off the mean is over 4 sigma
        assert 0.75 * 5000 <= counts[p] <= 1.25 * 5000, counts


def test_adaptive_spread_is_even_when_brokers_keep_up():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    periods = sticky_periods(core, 20_000, after_each=core.drain_everything)
    counts = Counter()
    for p, records, _, _ in periods:
        counts[p] += records
    for p in range(4):
        assert 0.75 * 5000 <= counts[p] <= 1.25 * 5000, counts


def test_adaptive_sends_less_to_a_partition_with_a_long_queue():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    t = core.acc.topic_state("t")
    for _ in range(20):   # a slow partition: 20 batches wait for its broker
        core.send("t", b"z" * 700, partition=0)
    core.acc.set_muted(t.queues[0], True)   # ... and none of them leaves
    switches = Counter(p for p, *_ in sticky_periods(core, 8000, after_each=core.drain_everything))
    # Java's weights: (longest queue + 1 - queue) = 1 for partition 0, about 21 for the others
    assert switches[0] < 0.08 * sum(switches.values()), switches
    assert min(switches[p] for p in (1, 2, 3)) > 0.2 * sum(switches.values()), switches


def test_adaptive_off_ignores_queue_lengths():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024, adaptive_partitioning=False)
    for _ in range(20):
        core.send("t", b"z" * 700, partition=0)
    core.acc.set_muted(core.acc.topic_state("t").queues[0], True)
    switches = Counter(p for p, *_ in sticky_periods(core, 8000, after_each=core.drain_everything))
    assert switches[0] > 0.15 * sum(switches.values()), switches


def test_partitions_without_a_leader_are_not_chosen():
    core = Core(leaders=(0, -1, 1, -1), batch_size=1024)
    assert {p for p, *_ in sticky_periods(core, 3000)} == {0, 2}


def test_availability_timeout_skips_a_broker_that_stopped_taking_data():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024, availability_timeout_ms=100)
    now = k.monotonic_ms()
    core.send("t", b"a", partition=0)     # data for both brokers
    core.send("t", b"b", partition=1)
    assert core.acc.ready(now)[0] == {0, 1}
    core.acc.drain({1}, 1 << 20, now)         # broker 1 takes its data, broker 0 cannot
    assert core.acc.ready(now + 150)[0] == {0}   # broker 0's data waited 150 ms > 100 ms
    assert {p for p, *_ in sticky_periods(core, 3000)} == {1, 3}
    core.acc.drain({0}, 1 << 20, now + 151)   # broker 0 recovers
    assert {0, 2} <= {p for p, *_ in sticky_periods(core, 6000)}


def test_unkeyed_records_leave_the_sticky_partition_once_its_broker_is_unavailable():
    """Java keeps an unavailable broker's sticky partition until it took batch.size bytes (up
    to 2x); kengine switches on the next unkeyed record, which would otherwise wait out the
    outage and expire."""
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024, availability_timeout_ms=100)
    for _ in range(1000):   # until the sticky partition is one of broker 0's
        if core.send("t", b"u").partition in (0, 2):
            break
    state = core.acc.topic_state("t").partitioning
    stuck = state.sticky
    assert stuck in (0, 2) and state.produced_bytes < 1024
    now = k.monotonic_ms()
    core.send("t", b"b", partition=1)
    assert core.acc.ready(now)[0] == {0, 1}
    core.acc.drain({1}, 1 << 20, now + 150)    # broker 1 takes its data, broker 0 cannot
    assert 0 in core.acc.ready(now + 150)[0]   # broker 0's data waited 150 ms > 100 ms
    assert core.partitioning.unavailable_node_ids == (0,)
    assert core.send("t", b"u").partition in (1, 3)
    assert state.sticky in (1, 3)


def test_availability_timeout_needs_adaptive_partitioning_as_in_java():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024, availability_timeout_ms=100,
                adaptive_partitioning=False)
    now = k.monotonic_ms()
    core.send("t", b"a", partition=0)
    core.acc.ready(now)
    core.acc.ready(now + 150)
    assert {p for p, *_ in sticky_periods(core, 6000)} == {0, 1, 2, 3}


def test_keyed_and_explicit_records_do_not_count_towards_the_sticky_switch():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    first = core.send("t", RECORD).partition
    state = core.acc.topic_state("t").partitioning
    for i in range(50):
        core.send("t", RECORD, key=b"k%d" % i)
        core.send("t", RECORD, partition=first)
    assert state.sticky == first
    assert core.send("t", RECORD).partition == first


def test_send_many_unkeyed_switches_every_batch_size_bytes():
    core = Core(leaders=(0, 1, 0, 1), batch_size=1024)
    fut = core.send_many("t", [RECORD] * 4000)
    by_partition = Counter()
    for q in core.acc.topic_state("t").queues:
        for b in q.batches():
            by_partition[b.partition] += b.record_count
    assert sum(by_partition.values()) == 4000 and fut.record_count == 4000
    assert len(by_partition) == 4
    for p in range(4):
        assert 0.5 * 1000 <= by_partition[p] <= 1.5 * 1000, by_partition


# ---------------------------------------------------------------------------- Python partitioners


class Recording:
    """Remembers its calls; places records by the first byte of the value."""

    def __init__(self):
        self.calls = []
        self.new_batches = []

    def partition(self, topic, key, value, headers, num_partitions, available):
        self.calls.append((topic, key, value, headers, num_partitions, available))
        return value["p"] if isinstance(value, dict) else None

    def on_new_batch(self, topic, partition):
        self.new_batches.append((topic, partition))


def test_python_partitioner_sees_key_bytes_raw_value_headers_and_availability():
    rec = Recording()
    core = Core(leaders=(0, -1, 1), partitioner=rec, value_serializer="json")
    f = core.send("t", {"p": 2}, key="clé", headers=[("h", b"1")])
    assert f.partition == 2
    assert rec.calls == [("t", "clé".encode(), {"p": 2}, [("h", b"1")], 3, (0, 2))]
    assert core.partitioning.partitioner is rec


def test_python_partitioner_returning_none_uses_the_sticky_partitioner():
    core = Core(leaders=(0, 1, 0, 1), partitioner=Recording())
    parts = [core.send("t", RECORD, key=b"k%d" % i).partition for i in range(5)]
    assert len(set(parts)) == 1


@pytest.mark.parametrize("result,match", [(3, r"returned partition 3 .* \[0, 3\)"),
                                          (-1, "returned partition -1"),
                                          ("1", "returned '1'"),
                                          (True, "returned True")])
def test_a_bad_partition_fails_only_that_record(result, match):
    class Bad:
        def partition(self, topic, key, value, headers, num_partitions, available):
            return result if value == b"bad" else 1

    core = Core(leaders=(0, 1, 0), partitioner=Bad())
    with pytest.raises(PartitionerError, match=match):
        core.send("t", b"bad")
    assert core.send("t", b"good").partition == 1
    assert core.acc.queued_batch_count == 1


def test_a_raising_partitioner_fails_only_that_record():
    class Flaky:
        def partition(self, topic, key, value, headers, num_partitions, available):
            if value == b"boom":
                raise LookupError("no route for this one")
            return 0

    core = Core(partitioner=Flaky())
    with pytest.raises(PartitionerError, match="LookupError: no route") as info:
        core.send("t", b"boom")
    assert isinstance(info.value.__cause__, LookupError)
    assert core.send("t", b"fine").partition == 0


def test_index_like_results_are_accepted():
    class Index:
        def __init__(self, v):
            self.v = v

        def __index__(self):
            return self.v

    class P:
        def partition(self, topic, key, value, headers, num_partitions, available):
            return Index(2)

    assert Core(partitioner=P()).send("t", b"v").partition == 2


def test_for_topic_gives_per_topic_state_once_per_topic():
    made = []

    class PerTopic:
        def __init__(self, topic):
            self.topic, self.count = topic, 0

        def partition(self, topic, key, value, headers, num_partitions, available):
            assert topic == self.topic
            self.count += 1
            return self.count % num_partitions

    class Factory:
        def partition(self, *args):   # never used: for_topic() serves every topic
            raise AssertionError("the factory itself was asked")

        def for_topic(self, topic):
            made.append(PerTopic(topic))
            return made[-1]

    core = Core(leaders=(0, 1, 0), partitioner=Factory())
    core.acc.update_topic("u", [(0, 0), (1, 0)])
    assert [core.send("t", b"v").partition for _ in range(4)] == [1, 2, 0, 1]
    assert [core.send("u", b"v").partition for _ in range(3)] == [1, 0, 1]
    assert [p.topic for p in made] == ["t", "u"]


def test_on_new_batch_hears_every_batch_a_record_opens():
    rec = Recording()
    core = Core(leaders=(0, 1, 0), partitioner=rec, batch_size=300)
    for i in range(6):
        core.send("t", b"y" * 100, partition=i % 2)
    opened = [(b.topic, b.partition) for q in core.acc.topic_state("t").queues for b in q.batches()]
    assert sorted(rec.new_batches) == sorted(opened) and len(opened) >= 4


def test_on_new_batch_errors_are_logged_and_the_record_kept(caplog):
    class Hook:
        def partition(self, topic, key, value, headers, num_partitions, available):
            return 0

        def on_new_batch(self, topic, partition):
            raise RuntimeError("hook broke")

    core = Core(partitioner=Hook())
    f = core.send("t", b"v")
    assert f.partition == 0 and core.acc.queued_batch_count == 1
    assert "hook broke" in caplog.text and "on_new_batch" in caplog.text


def test_send_many_calls_the_python_partitioner_with_raw_values_in_order():
    rec = Recording()
    core = Core(leaders=(0, 1, 0), partitioner=rec, value_serializer="json")
    values = [{"p": i % 3} for i in range(30)]
    keys = [b"k%d" % i for i in range(30)]
    core.send_many("t", values, keys=keys)
    assert [(c[1], c[2]) for c in rec.calls] == list(zip(keys, values, strict=True))
    per_partition = {q.partition: sum(b.record_count for b in q.batches())
                     for q in core.acc.topic_state("t").queues}
    assert per_partition == {0: 10, 1: 10, 2: 10}
    assert sorted(set(rec.new_batches)) == [("t", 0), ("t", 1), ("t", 2)]


def test_send_many_fails_only_the_records_a_partitioner_refuses():
    class Bad:
        def partition(self, topic, key, value, headers, num_partitions, available):
            if value == b"b":
                return 7
            if value == b"c":
                raise RuntimeError("boom")
            return 1

    core = Core(partitioner=Bad())
    fut = core.send_many("t", [b"a", b"b", b"c", b"d"])
    assert [b.record_count for q in core.acc.topic_state("t").queues for b in q.batches()] == [2]
    errors = fut.result(timeout=0).errors if fut.done() else None
    assert errors is None   # the batch of records 0 and 3 is still pending
    for q in core.acc.topic_state("t").queues:
        for b in q.batches():
            core.acc.complete(b, 0, -1)
    errors = fut.result(timeout=1).errors
    assert sorted(errors) == [1, 2]
    assert all(isinstance(e, PartitionerError) for e in errors.values())
    assert str(errors[1]).startswith("record 1: partitioner ")
    assert "returned partition 7" in str(errors[1])
    assert "raised for a record to 't': RuntimeError: boom" in str(errors[2])
    assert isinstance(errors[2].__cause__, RuntimeError)


def test_the_core_refuses_unknown_built_in_names_and_objects_without_partition():
    with pytest.raises(ValueError, match="salted_hot_key.*not built into the core"):
        Core(partitioner="salted_hot_key")
    with pytest.raises(TypeError, match="no partition"):
        Core(partitioner=object())
    assert Core(partitioner="round_robin").partitioning.partitioner == "round_robin"
    assert Core().partitioning.partitioner == "default"
    assert k.BUILTIN_PARTITIONERS == ("default", "round_robin", "consistent_random",
                                      "murmur2_random")


def test_python_built_ins_place_records_sent_through_the_core():
    from kengine.partitioners import (
        CompositeKeyPartitioner,
        SaltedHotKeyPartitioner,
        encode_composite_key,
        salted_subkeys,
    )

    core = Core(leaders=[0] * 16, partitioner=SaltedHotKeyPartitioner(["hot"], 4))
    hot = {core.send("t", b"v", key="hot").partition for _ in range(40)}
    assert hot == {k.partition_for_key(s, 16) for s in salted_subkeys(b"hot", 4)}
    assert core.send("t", b"v", key=b"cold").partition == k.partition_for_key(b"cold", 16)

    core = Core(leaders=[0] * 16, value_serializer="json",
                partitioner=CompositeKeyPartitioner(["value:tenant", "key"]))
    f = core.send("t", {"tenant": "acme"}, key=b"order-17")
    assert f.partition == k.partition_for_key(encode_composite_key([b"acme", b"order-17"]), 16)
