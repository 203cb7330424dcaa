"""What a process made by ``fork()`` does with the producers it inherited: refuse them.

A producer's sender thread, its sockets and the threads waiting on it exist only in the process
that created it; a child made by ``os.fork()`` (``multiprocessing``'s fork start method,
Gunicorn and Celery pre-fork workers) gets copies of its memory, so records sent there would
wait forever and ``flush()``/``close()``/``result()`` would hang. Every live producer is tracked
here (weakly); in the child, ``os.register_at_fork``'s hook closes each copy with a
:class:`~kengine.errors.ProducerForkedError`, which ``send()`` and ``send_many()`` already check
for a closed producer, so the per-record path pays nothing. The blocking calls compare the
process id with the producer's own (``kengine_ext`` process.pyx, ``Producer._check_process``),
which also covers a ``fork()`` made outside ``os.fork()``, where the hook does not run. The
parent is untouched.
"""
from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["track"]


class _Forkable(Protocol):
    def _forked(self) -> None:
        """Called in the child, on its only thread: refuse every later call."""


# every producer created in this process and still referenced; GIL (WeakSet)
_live: weakref.WeakSet[_Forkable] = weakref.WeakSet()


def track(producer: _Forkable) -> None:
    """Closes `producer`'s copy in every child forked from now on."""
    _live.add(producer)


def _after_fork_in_child() -> None:
    # Runs in the child right after os.fork(), on the one thread the child has: no lock taken
    # here (the parent's other threads may have held any of them at the fork).
    for producer in list(_live):
        producer._forked()


if hasattr(os, "register_at_fork"):   # not on Windows, which has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)
