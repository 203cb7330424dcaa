"""The hand-off of batch completions from a producer's sender thread to an asyncio event loop.

An awaited ``DeliveryFuture`` / ``BulkFuture`` whose batch is not done yet registers, through
the loop's ``LoopBridge``, one done-listener on that batch (``ProducerBatch.add_done_listener``),
however many records of it are awaited. When batches complete, the sender thread appends them
to the bridge's list and wakes the loop with one ``call_soon_threadsafe`` until the loop has
taken them: many batches can reach the loop in one hand-off, and no record costs one. On the
loop, each batch's waiters are woken in the order the sender completed the batches, so a
partition's records complete in order there too.

Threads: ``wait()``, ``call_when_done()`` and ``_deliver()`` run on the loop's thread;
``_on_done()`` runs on sender threads (one per producer whose batches are awaited here).
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["LoopBridge", "bridge_for", "wait_for_batch"]

_log = logging.getLogger("kengine.aio")


class LoopBridge:
    """Batch completions for one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # weak: the bridges are kept in a weak dictionary keyed by their loop
        self._loop = weakref.ref(loop)
        #: batch -> what to wake when it completes or is split: asyncio futures (one per
        #: suspended await) and callables (on_delivery of kengine.aio); loop thread only
        self._waiting: dict[Any, list[Any]] = {}
        #: batches completed and not yet taken by the loop: sender threads append, the loop
        #: swaps the list out (both under the GIL)
        self._done: list[Any] = []
        #: a _deliver() call is scheduled and has not started: sender threads set it, the loop
        #: clears it before taking _done, so a batch appended later schedules another call
        self._scheduled = False
        #: call_soon_threadsafe calls made (one per hand-off; tests count them)
        self.handoffs = 0

    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop()
        if loop is None:
            raise RuntimeError("the event loop of this bridge is gone")
        return loop

    def wait(self, batch: Any) -> asyncio.Future[None]:
        """A future of this loop, done when `batch` completes or is split (at once if it
        has). Cancelling it cancels only this wait."""
        fut = self.loop().create_future()
        self._add(batch, fut)
        return fut

    def call_when_done(self, batch: Any, fn: Callable[[], None]) -> None:
        """Runs fn() on the loop when `batch` completes or is split (soon, if it has)."""
        self._add(batch, fn)

    def _add(self, batch: Any, item: Any) -> None:
        waiters = self._waiting.get(batch)
        if waiters is not None:
            waiters.append(item)
        elif batch.add_done_listener(self._on_done):
            self._waiting[batch] = [item]
        else:   # done (or split) already: wake it on the next loop iteration, in order
            self._waiting[batch] = [item]
            self._done.append(batch)
            if not self._scheduled:
                self._scheduled = True
                self.loop().call_soon(self._deliver)

    def _on_done(self, batch: Any) -> None:
        # sender thread
        self._done.append(batch)
        if not self._scheduled:
            self._scheduled = True
            loop = self._loop()
            try:
                if loop is None:
                    raise RuntimeError("the event loop is gone")
                loop.call_soon_threadsafe(self._deliver)
                self.handoffs += 1
            except RuntimeError:
                # the loop is closed: nothing can wait on it any more
                self._scheduled = False

    def _deliver(self) -> None:
        self._scheduled = False
        done, self._done = self._done, []
        for batch in done:
            for item in self._waiting.pop(batch, ()):
                if isinstance(item, asyncio.Future):
                    if not item.done():   # a cancelled await left its future behind
                        item.set_result(None)
                else:
                    try:
                        item()
                    except Exception:
                        _log.exception("delivery callback %r for a record of %s-%d raised; "
                                       "continuing", item, batch.topic, batch.partition)


_bridges: weakref.WeakKeyDictionary[Any, LoopBridge] = weakref.WeakKeyDictionary()
_last: tuple[weakref.ref[Any], LoopBridge] | None = None


def bridge_for(loop: asyncio.AbstractEventLoop) -> LoopBridge:
    """The bridge of `loop` (made on first use, dropped with the loop)."""
    global _last
    last = _last
    if last is not None and last[0]() is loop:
        return last[1]
    bridge = _bridges.get(loop)
    if bridge is None:
        bridge = _bridges[loop] = LoopBridge(loop)
    _last = (weakref.ref(loop), bridge)
    return bridge


def wait_for_batch(batch: Any) -> asyncio.Future[None]:
    """What DeliveryFuture/BulkFuture.__await__ yield from while `batch` has no outcome:
    a future of the running loop, done when the batch completes or is split."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("a kengine future can be awaited only inside a coroutine running "
                           "on an asyncio event loop; elsewhere call fut.result(timeout)") \
            from None
    return bridge_for(loop).wait(batch)
