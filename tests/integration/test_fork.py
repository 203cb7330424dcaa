"""A producer across fork() and spawn: in a child made by fork() every call on the parent's
producer (and on its futures) fails at once with ProducerForkedError instead of hanging; the
parent keeps working; children started with spawn make their own producers. Every record is
read back by an independent consumer (confluent-kafka)."""
from __future__ import annotations

import asyncio
import multiprocessing
import pickle
import warnings

import pytest

from kengine import Producer
from kengine.aio import AIOProducer
from tests.support.readback import read_all

# A hung child is the bug this file is about: the join is a hang guard, not a timing claim.
_HANG_GUARD_S = 120


def _attempt(fn):
    try:
        out = fn()
    except BaseException as e:   # noqa: BLE001 (reported to the parent, which asserts)
        return type(e).__name__, str(e)
    return "returned", repr(out)


def _fork_child(calls, queue):
    queue.put({name: _attempt(fn) for name, fn in calls.items()})


def _run_in_fork_child(calls):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():   # 3.12+: "this process is multi-threaded, fork()..."
        warnings.simplefilter("ignore", DeprecationWarning)
        child = ctx.Process(target=_fork_child, args=(calls, queue))
        child.start()
    try:
        results = queue.get(timeout=_HANG_GUARD_S)
    finally:
        child.join(_HANG_GUARD_S)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    return results


def _assert_all_forked(results, pid_of_parent):
    for name, (kind, message) in results.items():
        assert kind == "ProducerForkedError", (name, kind, message)
        assert f"created in process {pid_of_parent}" in message, (name, message)
        assert "Create the producer after the fork" in message, (name, message)


def test_every_call_in_a_fork_child_fails_fast_and_the_parent_goes_on(kafka, topic_factory):
    import os
    topic = topic_factory(kafka, partitions=3)
    # linger.ms keeps the second record in its batch across the fork: its future is pending
    with Producer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=600_000) as p:
        delivered = p.send(topic, b"before-fork", partition=0)
        p.flush()
        pending = p.send(topic, b"pending-at-fork", partition=1)
        pending_bulk = p.send_many(topic, [b"bulk-0", b"bulk-1"], partition=2)
        assert not pending.done() and not pending_bulk.done()
        results = _run_in_fork_child({
            "send": lambda: p.send(topic, b"from-child"),
            "send_many": lambda: p.send_many(topic, [b"from-child"]),
            "flush": lambda: p.flush(),
            "close": lambda: p.close(),
            "pending result": lambda: pending.result(),
            "pending exception": lambda: pending.exception(),
            "pending add_callback": lambda: pending.add_callback(lambda e, m: None),
            "pending bulk result": lambda: pending_bulk.result(),
            "partitions_for": lambda: p.partitions_for(topic),
        })
        _assert_all_forked(results, os.getpid())
        # a future the parent completed before the fork still tells its outcome
        done_kind, _ = _run_in_fork_child({"done": lambda: delivered.result()})["done"]
        assert done_kind == "returned"
        # the parent is untouched: the pending records go, and it keeps sending
        p.send(topic, b"after-fork", partition=0)
        p.flush()
        assert pending.result().partition == 1
        assert not pending_bulk.result().errors
    values = sorted(r.value for r in read_all(kafka.bootstrap_servers, topic))
    assert values == sorted([b"before-fork", b"pending-at-fork", b"bulk-0", b"bulk-1",
                             b"after-fork"])


def test_a_transactional_producer_in_a_fork_child(kafka, topic_factory):
    import os
    topic = topic_factory(kafka)
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"fork-{topic}") as p:
        p.init_transactions()
        p.begin_transaction()
        p.send(topic, b"in-transaction")
        results = _run_in_fork_child({
            "send": lambda: p.send(topic, b"from-child"),
            "commit_transaction": lambda: p.commit_transaction(),
            "abort_transaction": lambda: p.abort_transaction(),
            "begin_transaction": lambda: p.begin_transaction(),
            "send_offsets_to_transaction": lambda: p.send_offsets_to_transaction(
                {(topic, 0): 1}, "group"),
        })
        _assert_all_forked(results, os.getpid())
        p.commit_transaction()
    records = read_all(kafka.bootstrap_servers, topic, read_committed=True)
    assert [r.value for r in records] == [b"in-transaction"]


def test_an_asyncio_producer_in_a_fork_child(kafka, topic_factory):
    import os
    topic = topic_factory(kafka)

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               linger_ms=600_000) as p:
            pending = await p.send(topic, b"pending-at-fork")

            def in_child(coro_fn):
                return lambda: asyncio.run(coro_fn())

            async def await_pending():
                return await pending
            results = _run_in_fork_child({
                "send": in_child(lambda: p.send(topic, b"from-child")),
                "send_many": in_child(lambda: p.send_many(topic, [b"from-child"])),
                "flush": in_child(p.flush),
                "close": in_child(p.close),
                "await pending": in_child(await_pending),
                "partitions_for": in_child(lambda: p.partitions_for(topic)),
            })
            _assert_all_forked(results, os.getpid())
            await p.flush()
            assert (await pending).offset == 0
    asyncio.run(main())
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == [b"pending-at-fork"]


def _spawn_child(bootstrap, topic, child):
    with Producer(bootstrap_servers=bootstrap) as p:
        for i in range(100):
            p.send(topic, b"child-%d-%d" % (child, i))


def test_spawn_children_make_their_own_producers(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    ctx = multiprocessing.get_context("spawn")
    with Producer(bootstrap_servers=kafka.bootstrap_servers) as p:
        with pytest.raises(TypeError, match="Create the producer in the process that uses it"):
            pickle.dumps(p)
        children = [ctx.Process(target=_spawn_child, args=(kafka.bootstrap_servers, topic, c))
                    for c in range(2)]
        for c in children:
            c.start()
        for i in range(100):
            p.send(topic, b"parent-%d" % i)
        for c in children:
            c.join(_HANG_GUARD_S)
            assert c.exitcode == 0
    values = sorted(r.value for r in read_all(kafka.bootstrap_servers, topic))
    expected = sorted([b"parent-%d" % i for i in range(100)]
                      + [b"child-%d-%d" % (c, i) for c in range(2) for i in range(100)])
    assert values == expected
