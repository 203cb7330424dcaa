"""The tools' progress line: drawn only on a terminal, erased before other output."""
from __future__ import annotations

import io
import threading

from kengine.cli.status_line import StatusLine, progress_bar
from tests.support.wait import wait_until


def test_progress_bar() -> None:
    assert progress_bar(0, 10, width=10) == "[..........]   0%"
    assert progress_bar(5, 10, width=10) == "[#####.....]  50%"
    assert progress_bar(12, 10, width=10) == "[##########] 100%"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_drawn_on_a_terminal_and_erased_around_printed_lines() -> None:
    term, out = Terminal(), io.StringIO()
    drawn = threading.Event()

    def render() -> str:
        drawn.set()
        return "42 records"

    with StatusLine(render, stream=term, interval=0.01, delay=0) as status:
        wait_until(drawn.is_set, what="a first draw", timeout=30)
        wait_until(lambda: "42 records" in term.getvalue(), what="the status line",
                   timeout=30)
        status.print("a result line", file=out)
    assert out.getvalue() == "a result line\n"
    text = term.getvalue()
    assert text.count("\r\033[K42 records") >= 1
    assert text.endswith("\r\033[K")          # nothing left on the terminal


def test_nothing_drawn_when_not_a_terminal() -> None:
    stream = io.StringIO()
    with StatusLine(lambda: "never", stream=stream, interval=0.01, delay=0) as status:
        assert not status.enabled
        status.print("line", file=stream)
    assert stream.getvalue() == "line\n"
