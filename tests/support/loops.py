"""Event loops for the asyncio tests and benchmarks: the default asyncio loop and uvloop (a
real dependency: a missing uvloop fails the test, it is not skipped), and a loop-lag probe."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

LOOPS = ["asyncio", "uvloop"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop  # in the test extras: an ImportError here is a broken environment

        return uvloop.new_event_loop()
    if kind == "asyncio":
        return asyncio.new_event_loop()
    raise ValueError(f"unknown loop kind {kind!r}")


def run(kind: str, main: Callable[[], Awaitable[T]]) -> T:
    """main() to completion on a fresh loop of `kind`, closed afterwards."""
    loop = new_loop(kind)
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


class LagProbe:
    """A task that asks to wake every `interval` seconds and records how late each wake is:
    the time the loop spent unable to run it (the event-loop lag). ``ticks_when(predicate)``
    counts the ticks that ran while predicate() held (proof the loop ran meanwhile)."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.lags_s: list[float] = []
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None
        self._watch: list[tuple[Callable[[], bool], list[int]]] = []

    def ticks_when(self, predicate: Callable[[], bool]) -> list[int]:
        counter = [0]
        self._watch.append((predicate, counter))
        return counter

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_s.append(max(0.0, time.perf_counter() - before - self.interval))
            self.ticks += 1
            for predicate, counter in self._watch:
                if predicate():
                    counter[0] += 1

    async def __aenter__(self) -> LagProbe:
        self._task = asyncio.ensure_future(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass

    def percentile_ms(self, q: float) -> float:
        if not self.lags_s:
            return float("nan")
        ordered = sorted(self.lags_s)
        return 1000.0 * ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]

    def max_ms(self) -> float:
        return 1000.0 * max(self.lags_s) if self.lags_s else float("nan")
