"""Polling for a condition with a deadline: how tests wait for a cluster to converge without
sleeping a fixed time or asserting on how long it took."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(probe: Callable[[], T], *, what: str, timeout: float = 60.0,
               interval: float = 0.2) -> T:
    """Call ``probe`` until it returns something truthy and return that. Exceptions from the
    probe count as "not yet" (a broker mid-election may refuse a connection). After
    ``timeout`` seconds, fail with ``what`` and the last value or exception."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as e:  # noqa: BLE001 (reported if it persists)
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"last probe gave {last!r}")
        time.sleep(interval)
