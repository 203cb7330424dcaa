"""The finished awaitable (kengine_ext.ReadySend) that ``await fut`` on a settled
DeliveryFuture, and AIOProducer.send() when its record went into a batch at once, hand back
instead of a coroutine. CPython 3.10 and 3.11 finish it through its am_send slot, 3.12+
through StopIteration (the wheel tests run this file on every supported interpreter): both
must give the value, raise the error, and pass for a coroutine wherever asyncio takes one."""
from __future__ import annotations

import asyncio
import collections.abc

import pytest

from kengine.errors import NotEnoughReplicasError
from kengine_ext import ReadySend
from tests.support.core import Core


def settled(error: Exception | None = None):
    """A DeliveryFuture of topic "t" partition 1 whose batch completed at offset 41 (or with
    `error`), and its second record's."""
    core = Core({"t": 3})
    first = core.send("t", b"a", partition=1)
    second = core.send("t", b"b", partition=1)
    for b in core.acc.take_all_queued():
        if error is None:
            core.acc.complete(b, 41)
        else:
            core.acc.complete(b, error=error)
    return first, second


def test_awaiting_a_settled_future_gives_its_metadata_without_suspending():
    first, second = settled()
    aw = second.__await__()
    assert type(aw) is ReadySend   # no generator for a record that has its outcome
    steps = []

    async def main():
        steps.append("before")
        md = await second   # a coroutine that suspended would need the loop to go on
        steps.append("after")
        return md, await first
    coro = main()
    with pytest.raises(StopIteration) as stopped:
        coro.send(None)   # runs to the end in one step: nothing suspended
    md2, md1 = stopped.value.value
    assert (md1.topic, md1.partition, md1.offset) == ("t", 1, 41)
    assert md2.offset == 42
    assert steps == ["before", "after"]


def test_awaiting_a_failed_future_raises_its_error_each_time():
    first, _ = settled(NotEnoughReplicasError("not enough replicas, test"))

    async def main():
        with pytest.raises(NotEnoughReplicasError, match="not enough replicas, test"):
            await first
        with pytest.raises(NotEnoughReplicasError):
            await first
        return "done"
    assert asyncio.run(main()) == "done"


def test_it_is_a_coroutine_for_asyncio():
    first, _ = settled()
    aw = first.__await__()
    assert isinstance(aw, collections.abc.Coroutine)
    assert asyncio.iscoroutine(aw)

    async def main():
        task = asyncio.create_task(first.__await__())   # create_task refuses non-coroutines
        both = await asyncio.gather(first.__await__(), asyncio.wait_for(first.__await__(), 1))
        return await task, both
    md, both = asyncio.run(main())
    assert md.offset == 41 and [m.offset for m in both] == [41, 41]


def test_its_coroutine_methods_behave_as_a_finished_coroutines_do():
    first, _ = settled()
    aw = first.__await__()
    with pytest.raises(StopIteration) as stopped:
        aw.send(None)
    assert stopped.value.value.offset == 41
    with pytest.raises(StopIteration):
        next(aw)
    with pytest.raises(KeyError, match="thrown"):
        aw.throw(KeyError("thrown"))
    with pytest.raises(KeyError):
        aw.throw(KeyError)
    assert aw.close() is None
    assert iter(aw) is aw and aw.__await__() is aw

    failed, _ = settled(NotEnoughReplicasError("no"))
    aw = failed.__await__()
    with pytest.raises(NotEnoughReplicasError):
        aw.send(None)

    async def main():
        return await asyncio.gather(failed.__await__(), return_exceptions=True)
    [outcome] = asyncio.run(main())
    assert isinstance(outcome, NotEnoughReplicasError)
