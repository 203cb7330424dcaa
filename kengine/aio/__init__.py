"""kengine for asyncio programs: ``AIOProducer`` on the same engine as ``kengine.Producer``.

``kengine.DeliveryFuture`` and ``kengine.BulkFuture`` are awaitable themselves, whichever
producer made them; ``wrap_future()`` turns one into an ``asyncio.Future`` for APIs that want
a real Future object (``add_done_callback``).
"""
from __future__ import annotations

import asyncio
from typing import Any

from .producer import AIOProducer

__all__ = ["AIOProducer", "wrap_future"]


def wrap_future(fut: Any, *, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Future[Any]:
    """An asyncio.Future (a Task) of the running loop with fut's outcome: its
    RecordMetadata/BulkResult, or its error. Cancelling it cancels only the wait."""
    async def outcome() -> Any:
        return await fut
    return asyncio.ensure_future(outcome(), loop=loop)
