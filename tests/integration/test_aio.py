"""kengine.aio.AIOProducer against real Kafka, under the default asyncio loop and uvloop: every
record read back by confluent-kafka, once, in per-key order; deliveries reach the loop in
bulk; buffer.memory and metadata waits leave the loop running; cancellation loses and
doubles nothing; transactions through the coroutines; the sync futures are awaitable."""
from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict

import pytest

from kengine import AIOProducer, Producer
from kengine.aio import wrap_future
from kengine.errors import (
    BufferFullError,
    IllegalStateError,
    KafkaTimeoutError,
    SerializationError,
)
from kengine_ext import ReadySend
from tests.support.loops import LOOPS, LagProbe, run
from tests.support.readback import read_all

pytestmark = pytest.mark.integration


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def check_readback(bootstrap: str, topic: str, total: int, keys: int,
                   read_committed: bool = False) -> None:
    """Every record k:seq once, each key's sequence in order."""
    records = read_all(bootstrap, topic, at_least=total, timeout=120,
                       read_committed=read_committed)
    seen = [tuple(map(int, r.value.split(b":"))) for r in records]
    assert len(seen) == total, f"{len(seen) - total:+d} records"
    assert len(set(seen)) == total
    per_key: dict[int, list[int]] = defaultdict(list)
    for r in records:   # sorted by (partition, offset)
        k, s = map(int, r.value.split(b":"))
        per_key[k].append(s)
    assert len(per_key) == min(keys, total)
    for k, seqs in per_key.items():
        assert seqs == list(range(len(seqs))), f"key {k} out of order"


def keyed(i: int, keys: int, seq: list[int]) -> tuple[bytes, bytes]:
    k = i % keys
    value = b"%d:%d" % (k, seq[k])
    seq[k] += 1
    return value, b"key-%d" % k


def test_await_send_delivers_every_record_once_in_key_order(kafka, topic_factory, loop_kind):
    topic = topic_factory(kafka, partitions=6)
    total, keys = 60_000, 1000
    loop_thread: list[int] = []
    delivered: dict[int, list[int]] = defaultdict(list)
    callback_threads: set[int] = set()

    def on_delivery(err, md):
        assert err is None, err
        callback_threads.add(threading.get_ident())
        delivered[md.partition].append(md.offset)

    async def main():
        loop_thread.append(threading.get_ident())
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                               linger_ms=5) as p:
            seq = [0] * keys
            futures, batches = [], set()
            for i in range(total):
                value, key = keyed(i, keys, seq)
                fut = await p.send(topic, value, key=key,
                                   on_delivery=on_delivery if i % 3 == 0 else None)
                batch = fut._pending_batch()
                if batch is not None:
                    batches.add(batch)
                futures.append(fut)
            metadata = [await f for f in futures]
            await p.flush()
            return metadata, len(batches), p._bridge.handoffs

    metadata, batches, handoffs = run(loop_kind, main)
    assert len({(m.partition, m.offset) for m in metadata}) == total
    # deliveries reached the loop in bulk: at most one hand-off per batch, not per record
    assert 0 < handoffs <= batches < total // 20
    assert callback_threads == set(loop_thread)   # on_delivery runs on the event loop
    for offsets in delivered.values():             # ... in each partition's order
        assert offsets == sorted(offsets)
    assert sum(map(len, delivered.values())) == len(range(0, total, 3))
    check_readback(kafka.bootstrap_servers, topic, total, keys)


def test_full_buffer_waits_on_the_loop_and_loses_nothing(kafka, topic_factory, loop_kind):
    """buffer.memory far smaller than the data: await send() waits for memory again and again,
    and other tasks of the loop run during those waits."""
    topic = topic_factory(kafka, partitions=6)
    total, keys = 100_000, 500

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                               linger_ms=5, batch_size=16384, buffer_memory=256 * 1024) as p:
            async with LagProbe() as probe:
                await p.send_and_wait(topic, b"0:0", key=b"key-0")   # metadata first
                seq = [1] + [0] * (keys - 1)
                during_waits = probe.ticks_when(lambda: not p._gate.idle)
                futures = []
                for i in range(1, total):
                    value, key = keyed(i, keys, seq)
                    futures.append(await p.send(topic, value, key=key))
                await p.flush()
            assert all(f.exception(0) is None for f in futures)
            return p._gate.waits, during_waits[0]

    waits, ticks_during_waits = run(loop_kind, main)
    # the buffer was full (how many times depends on the sender's speed against the loop's:
    # a busy machine gave 5 where a quiet one gives hundreds, so no count is asserted) ...
    assert waits > 0
    assert ticks_during_waits > 0      # ... and the loop ran other tasks meanwhile
    check_readback(kafka.bootstrap_servers, topic, total, keys)


def test_send_many_resumes_after_memory_waits_and_maps_errors_by_index(kafka, topic_factory,
                                                                        loop_kind):
    topic = topic_factory(kafka, partitions=6)
    total, keys, bad = 40_000, 300, 12_345

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                               batch_size=16384, buffer_memory=128 * 1024) as p:
            seq = [0] * keys
            values, ks = [], []
            for i in range(total):
                value, key = keyed(i, keys, seq)
                values.append(value)
                ks.append(key)
            good_bad = values[bad]
            values[bad] = 12345   # not bytes: refused alone, the others are sent
            bulk = await p.send_many(topic, values, keys=ks)
            result = await bulk
            waits = p._gate.waits
        return result, good_bad, waits

    result, dropped, waits = run(loop_kind, main)
    assert waits > 0                                   # it did resume after memory waits
    assert list(result.errors) == [bad]
    assert isinstance(result.errors[bad], SerializationError)
    assert not any(isinstance(e, BufferFullError) for e in result.errors.values())
    metadata = result.metadata()
    assert metadata[bad] is None and sum(m is not None for m in metadata) == total - 1
    records = read_all(kafka.bootstrap_servers, topic, at_least=total - 1, timeout=120)
    assert len(records) == total - 1 and dropped not in {r.value for r in records}
    per_key: dict[int, list[int]] = defaultdict(list)
    for r in records:
        k, s = map(int, r.value.split(b":"))
        per_key[k].append(s)
    dropped_key, dropped_seq = map(int, dropped.split(b":"))
    for k, seqs in per_key.items():
        expected = list(range(max(seqs) + 1))
        if k == dropped_key:
            expected.remove(dropped_seq)
        assert seqs == expected, f"key {k} out of order"


def test_a_cancelled_await_neither_cancels_nor_duplicates_the_record(kafka, topic_factory,
                                                                    loop_kind):
    topic = topic_factory(kafka, partitions=3)
    total = 2000

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all",
                               linger_ms=200) as p:
            futures = [await p.send(topic, b"%d:0" % i, key=b"%d" % i) for i in range(total)]
            waiters = [asyncio.ensure_future(wrap(f)) for f in futures]
            await asyncio.sleep(0)
            for w in waiters[::2]:
                w.cancel()
            outcomes = await asyncio.gather(*waiters, return_exceptions=True)
            cancelled = sum(isinstance(o, asyncio.CancelledError) for o in outcomes)
            # the records of cancelled waits are delivered; awaiting their futures again works
            again = [await f for f in futures]
            await p.flush()
        return cancelled, again

    async def wrap(f):
        return await f

    cancelled, again = run(loop_kind, main)
    assert cancelled == total // 2
    assert len({(m.partition, m.offset) for m in again}) == total
    check_readback(kafka.bootstrap_servers, topic, total, total)


def test_a_metadata_wait_leaves_the_loop_running(kafka, loop_kind):
    """A send to a topic created while it waits: the wait happens off the loop."""
    name = f"aio-late-{random.randrange(10**9)}"

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               max_block_ms=60_000) as p:
            async with LagProbe() as probe:
                sending = [True]
                during = probe.ticks_when(lambda: sending[0])
                creator = threading.Timer(1.5, lambda: kafka.create_topic(name, 2))
                creator.start()
                try:
                    md = await p.send_and_wait(name, b"0:0", key=b"k")
                finally:
                    sending[0] = False
                    creator.join()
        return md, during[0]

    try:
        md, ticks = run(loop_kind, main)
    finally:
        kafka.delete_topic(name)
    assert md.topic == name and md.offset == 0
    assert ticks > 10   # the loop ran its other task all along the wait


def test_a_send_to_a_missing_topic_times_out_after_max_block_ms(kafka, loop_kind):
    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               max_block_ms=1000) as p:
            with pytest.raises(KafkaTimeoutError, match="max.block.ms"):
                await p.send(f"aio-missing-{random.randrange(10**9)}", b"v")

    run(loop_kind, main)


def test_transactions_through_the_coroutines(kafka, topic_factory, loop_kind):
    topic = topic_factory(kafka, partitions=3)

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               transactional_id=f"aio-txn-{random.randrange(10**9)}") as p:
            await p.init_transactions()
            async with p.transaction():
                for i in range(500):
                    await p.send(topic, b"%d:%d" % (i % 10, i // 10), key=b"%d" % (i % 10))
            with pytest.raises(RuntimeError, match="boom"):
                async with p.transaction():
                    for _ in range(300):
                        await p.send(topic, b"aborted")
                    raise RuntimeError("boom")
            await p.begin_transaction()
            bulk = await p.send_many(topic, [b"%d:%d" % (i % 10, 50 + i // 10)
                                             for i in range(500)],
                                     keys=[b"%d" % (i % 10) for i in range(500)])
            await p.commit_transaction()
            assert (await bulk).ok

    run(loop_kind, main)
    check_readback(kafka.bootstrap_servers, topic, 1000, 10, read_committed=True)


def test_send_passes_for_a_coroutine_and_raises_only_when_awaited(kafka, topic_factory,
                                                                 loop_kind):
    """send() is a plain method: it appends at once when it can and returns a finished
    awaitable, else the coroutine that waits. Either must work wherever asyncio takes a
    coroutine (create_task, gather, wait_for), and an error must come out of the await, never
    out of the call, as it would from an async def."""
    topic = topic_factory(kafka, partitions=3)
    unseen = topic_factory(kafka, partitions=1)

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5) as p:
            await p.send_and_wait(topic, b"0:0", key=b"a")   # its metadata is known now
            ready = p.send(topic, b"0:1", key=b"a")
            assert isinstance(ready, ReadySend)   # appended already
            task = asyncio.create_task(ready)
            gathered = await asyncio.gather(*(p.send(topic, b"0:%d" % i, key=b"a")
                                              for i in range(2, 102)))
            waited = await asyncio.wait_for(p.send(topic, b"0:102", key=b"a"), 30)
            first = await task
            bad = p.send(topic, object(), key=b"a")   # no exception here ...
            with pytest.raises(SerializationError, match="object"):
                await bad                               # ... but here
            # a topic whose metadata the producer has not asked for yet: the coroutine that
            # waits for it, through create_task too
            waits = p.send(unseen, b"0:0", key=b"a")
            assert asyncio.iscoroutine(waits) and not isinstance(waits, ReadySend)
            late = asyncio.create_task(waits)
            later = await (await late)
            mds = [await f for f in [first, *gathered, waited]]
            return mds, later

    mds, later = run(loop_kind, main)
    assert [m.offset for m in mds] == sorted(m.offset for m in mds)
    assert later.topic == unseen
    check_readback(kafka.bootstrap_servers, topic, 103, 1)


def test_sync_futures_are_awaitable_in_mixed_code(kafka, topic_factory, loop_kind):
    topic = topic_factory(kafka, partitions=3)
    with Producer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=50) as producer:
        async def main():
            one = producer.send(topic, b"0:0", key=b"a")
            many = producer.send_many(topic, [b"0:%d" % i for i in range(1, 100)],
                                      keys=[b"a"] * 99)
            md = await one
            gathered = await asyncio.gather(producer.send(topic, b"0:100", key=b"a"), many)
            wrapped = wrap_future(producer.send(topic, b"0:101", key=b"a"))
            assert isinstance(wrapped, asyncio.Future)
            last = await asyncio.wait_for(producer.send(topic, b"0:102", key=b"a"), 60)
            return md, gathered, await wrapped, last

        md, (md100, bulk), md101, md102 = run(loop_kind, main)
    assert bulk.ok and bulk.record_count == 99
    assert md.offset < md100.offset < md101.offset < md102.offset
    check_readback(kafka.bootstrap_servers, topic, 103, 1)


def test_the_producer_belongs_to_one_event_loop(kafka):
    first = asyncio.new_event_loop()
    p = AIOProducer(bootstrap_servers=kafka.bootstrap_servers)
    try:
        first.run_until_complete(p.start())
        other = asyncio.new_event_loop()
        try:
            with pytest.raises(IllegalStateError, match="another one"):
                other.run_until_complete(p.flush())
            first.close()
            with pytest.raises(IllegalStateError, match="is closed"):
                other.run_until_complete(p.flush())
        finally:
            other.close()
        with pytest.raises(IllegalStateError, match="coroutine running on an asyncio"):
            p._bind()
    finally:
        p._producer.close()


def test_leader_kills_lose_and_duplicate_nothing(kafka_cluster, topic_factory):
    """Idempotent, acks=all, await send() of 150,000 keyed records while partition leaders
    are SIGKILLed and restarted three times."""
    topic = topic_factory(kafka_cluster, partitions=6, replication_factor=3)
    total, keys = 150_000, 1000
    kills: list[int] = []
    done = threading.Event()

    def chaos() -> None:
        rnd = random.Random(11)
        while not done.is_set() or len(kills) < 3:
            time.sleep(2.0)
            victim = kafka_cluster.leader_of(topic, rnd.randrange(6))
            kafka_cluster.kill(victim)
            kills.append(victim)
            time.sleep(3.0)
            kafka_cluster.start(victim)
            kafka_cluster.wait_in_sync(topic, timeout=120)

    async def main():
        async with AIOProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all",
                               linger_ms=5, request_timeout_ms=10_000,
                               delivery_timeout_ms=600_000, max_block_ms=600_000,
                               retry_backoff_ms=50, buffer_memory=4 << 20) as p:
            assert p.config["enable.idempotence"]
            killer = threading.Thread(target=chaos, daemon=True)
            killer.start()
            seq = [0] * keys
            futures = []
            started = time.monotonic()
            for i in range(total):
                value, key = keyed(i, keys, seq)
                futures.append(await p.send(topic, value, key=key))
                if i % 5000 == 4999:   # pace it (~25 s) so the kills land mid-stream
                    ahead = (i + 1) / 6000 - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
            for f in futures:
                await f   # raises the record's error, if any
            done.set()
            await asyncio.get_running_loop().run_in_executor(None, killer.join, 300)

    run("asyncio", main)
    assert len(kills) >= 3
    check_readback(kafka_cluster.bootstrap_servers, topic, total, keys)


def test_a_cancelled_send_sent_its_record_exactly_when_it_returned(kafka, topic_factory,
                                                                   loop_kind):
    """Tasks sending as fast as they can, cancelled at random points (in the yields of
    await send() and in buffer.memory waits): the topic holds exactly the records whose
    send() returned a future, each once."""
    topic = topic_factory(kafka, partitions=3)

    async def main():
        accepted: list[bytes] = []

        async def sender(first: int) -> None:
            for i in range(first, first + 1_000_000):
                value = b"%d:0" % i
                await p.send(topic, value, key=value)
                accepted.append(value)

        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, batch_size=16384,
                               buffer_memory=64 * 1024) as p:
            rnd = random.Random(5)
            for round_index in range(20):
                task = asyncio.ensure_future(sender(round_index * 1_000_000))
                await asyncio.sleep(rnd.uniform(0.001, 0.05))
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await p.flush()
            return accepted, p._gate.waits

    accepted, waits = run(loop_kind, main)
    assert waits > 0 and len(accepted) > 1000
    records = read_all(kafka.bootstrap_servers, topic, at_least=len(accepted), timeout=120)
    assert sorted(r.value for r in records) == sorted(accepted)
