"""Waiting for buffer.memory on the event loop: the asyncio producer's backpressure.

The core refuses an append that needs buffer.memory it cannot have now (BufferFullError)
instead of blocking the thread, because that thread is the event loop's. ``MemoryGate`` queues
such sends first come first served, asks the core for one call when memory is next released
(``BufferMemory.arm_listener``: the sender thread makes it, once per arming, and it reaches the loop
with one ``call_soon_threadsafe``), and lets the head of the queue try again. A send waits at
most ``max.block.ms`` in all, then raises ``KafkaTimeoutError`` as the synchronous send does.

Threads: everything runs on the loop's thread but ``_released()``, which the sender calls.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from kengine.errors import BufferFullError, KafkaTimeoutError, ProducerClosedError

__all__ = ["MemoryGate"]

T = TypeVar("T")


class MemoryGate:
    """The FIFO of sends waiting for buffer.memory, for one producer on one event loop."""

    def __init__(self, memory: Any, loop: asyncio.AbstractEventLoop, max_block_ms: int) -> None:
        self._memory = memory   # the producer's kengine_ext.BufferMemory
        self._loop = loop
        self._max_block_s = max_block_ms / 1000.0
        #: one future per waiting send, oldest first; the head's is replaced each time it
        #: waits again (loop thread)
        self._queue: deque[asyncio.Future[Any]] = deque()
        #: set by close(): waiting sends raise it (loop thread)
        self._closed: BaseException | None = None
        #: times the head had to wait for released memory (tests and metrics read it)
        self.waits = 0
        #: no send is waiting and the gate is open: a new send may try the core at once (an
        #: attribute, not a property: every await send() reads it)
        self.idle = True
        memory.wait_elsewhere(self._released)

    def _released(self) -> None:
        # sender thread, once per arming
        try:
            self._loop.call_soon_threadsafe(self._wake_head)
        except RuntimeError:
            pass   # the loop is closed; nothing waits on it any more

    def _wake_head(self) -> None:
        if self._queue:
            head = self._queue[0]
            if not head.done():
                head.set_result(None)

    async def call(self, attempt: Callable[[], T], topic: str) -> T:
        """attempt() (a core call that raises BufferFullError rather than block), retried in
        turn each time buffer.memory is released, until it returns; KafkaTimeoutError after
        max.block.ms. Cancelling the caller leaves the queue as if it had never waited."""
        loop = self._loop
        deadline = loop.time() + self._max_block_s
        me: asyncio.Future[Any] = loop.create_future()
        self._queue.append(me)
        self.idle = False
        try:
            if self._queue[0] is not me:   # others first: wait to be the head
                await self._wait(me, deadline, topic, 0)
            spins = 0
            while True:
                if self._closed is not None:
                    raise ProducerClosedError(str(self._closed))
                try:
                    return attempt()
                except BufferFullError as e:
                    need = e.need_bytes
                if not self._memory.arm_listener(need):
                    # released meanwhile: try again, but let the loop run if it keeps failing
                    # (threads outside this loop may be waiting for memory first)
                    spins += 1
                    if spins > 1:
                        await asyncio.sleep(0)
                    continue
                spins = 0
                me = loop.create_future()
                self._queue[0] = me
                self.waits += 1
                await self._wait(me, deadline, topic, need)
        finally:
            if self._queue and self._queue[0] is me:
                self._queue.popleft()
                self._wake_head()   # the next send's turn
            else:
                try:
                    self._queue.remove(me)
                except ValueError:
                    pass
            self.idle = not self._queue and self._closed is None

    async def _wait(self, fut: asyncio.Future[Any], deadline: float, topic: str,
                    need: int) -> None:
        remaining = deadline - self._loop.time()
        if remaining > 0:
            timer = self._loop.call_later(remaining, _expire, fut)
            try:
                await fut
            finally:
                timer.cancel()
            if fut.result() is not _EXPIRED:
                return
        free = self._memory.total_bytes - self._memory.used_bytes
        self._memory.note_exhausted()
        raise KafkaTimeoutError(
            f"a send to {topic!r} waited {self._max_block_s * 1000:.0f} ms (max.block.ms) "
            f"for buffer.memory ({free} bytes free{f', {need} needed' if need else ''}, others "
            f"waiting first: {len(self._queue) - 1}); the records it waited for were not sent")

    def close(self, reason: str) -> None:
        """Every waiting send raises ProducerClosedError; later ones would be refused by the
        core anyway."""
        self._closed = ProducerClosedError(reason)
        self.idle = False
        for fut in self._queue:
            if not fut.done():
                fut.set_result(None)


_EXPIRED = object()


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(_EXPIRED)
