"""A self-refreshing status line (progress) on stderr, for the tools' long runs.

It is drawn only when stderr is a terminal and only after ``delay`` seconds, so piped output
and short runs stay clean. Lines the tool prints through :meth:`StatusLine.print` first erase
the status line, so the two never interleave on the terminal.
"""
from __future__ import annotations

import shutil
import sys
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["StatusLine", "progress_bar"]

_ERASE = "\r\033[K"


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.....]  61%`` for ``done`` of ``total``."""
    fraction = min(1.0, done / total) if total > 0 else 1.0
    filled = int(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}%"


class StatusLine:
    """``render()`` is called from a background thread every ``interval`` seconds; what it
    returns replaces the status line. Use as a context manager; the line is erased on exit."""

    def __init__(self, render: Callable[[], str], *, stream: TextIO | None = None,
                 interval: float = 0.25, delay: float = 1.0, enabled: bool | None = None) -> None:
        self._render = render
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._delay = delay
        self.enabled = self._stream.isatty() if enabled is None else enabled
        # Guards the terminal: the refresh thread and print() callers take turns.
        self._lock = threading.Lock()
        self._shown = False            # under _lock: a status line is on the terminal now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StatusLine:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="kengine-status", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._erase()

    def print(self, text: str, file: TextIO | None = None) -> None:
        """Prints a line (to stdout by default) without tearing the status line."""
        out = file if file is not None else sys.stdout
        with self._lock:
            self._erase()
            print(text, file=out, flush=True)

    def _run(self) -> None:
        if self._stop.wait(self._delay):
            return
        while True:
            text = self._render()
            columns = shutil.get_terminal_size().columns
            with self._lock:
                self._stream.write(_ERASE + text[:max(columns - 1, 10)])
                self._stream.flush()
                self._shown = True
            if self._stop.wait(self._interval):
                return

    def _erase(self) -> None:
        if self._shown:
            self._stream.write(_ERASE)
            self._stream.flush()
            self._shown = False
