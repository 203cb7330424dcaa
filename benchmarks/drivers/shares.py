"""How a run's records are cut up for the drivers: per thread, and into ``send_many()`` calls.

Every piece is built before the produce window opens (lists of references to the workload's
shared values and keys), so that the window measures the client, not the slicing. Record ``i``
of a phase is always ``schedule[i % len(schedule)]`` (:func:`benchmarks.workload.schedule`),
however many threads send it and however the calls group it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from itertools import cycle, islice

from benchmarks.spec import RunSpec
from benchmarks.workload import schedule

__all__ = ["BulkCall", "bulk_calls", "record_shares", "run_in_threads", "workload"]

#: (topic, values, keys) of one send_many() call
BulkCall = tuple[str, list[bytes], list[bytes]]


def workload(spec: RunSpec) -> list[tuple[str, bytes, bytes]]:
    """One period of the run's (topic, value, key) triples."""
    return schedule(spec.all_topics, spec.record_bytes, spec.key_space)


def record_shares(triples: Sequence[tuple[str, bytes, bytes]], records: int,
                  threads: int) -> list[Iterator[tuple[str, bytes, bytes]]]:
    """Records ``0..records-1`` as ``threads`` contiguous shares, one iterator each."""
    period = len(triples)
    shares: list[Iterator[tuple[str, bytes, bytes]]] = []
    for t in range(threads):
        start, stop = t * records // threads, (t + 1) * records // threads
        offset = start % period
        rotated = list(triples[offset:]) + list(triples[:offset])
        shares.append(islice(cycle(rotated), stop - start))
    return shares


def bulk_calls(triples: Sequence[tuple[str, bytes, bytes]], records: int,
               block: int) -> list[BulkCall]:
    """Records ``0..records-1`` as send_many() calls: blocks of ``block`` records (what an
    ingest job reads at a time), each block split by topic in record order, one call per
    topic. Blocks that start at the same place in the period share their lists."""
    period = len(triples)
    cache: dict[tuple[int, int], list[BulkCall]] = {}
    calls: list[BulkCall] = []
    for start in range(0, records, block):
        n = min(block, records - start)
        key = (start % period, n)
        groups = cache.get(key)
        if groups is None:
            by_topic: dict[str, tuple[list[bytes], list[bytes]]] = {}
            for i in range(start, start + n):
                topic, value, k = triples[i % period]
                values, keys = by_topic.setdefault(topic, ([], []))
                values.append(value)
                keys.append(k)
            groups = cache[key] = [(t, v, k) for t, (v, k) in by_topic.items()]
        calls.extend(groups)
    return calls


def run_in_threads(work: Sequence[Callable[[], object]]) -> None:
    """Runs each callable in a thread of its own (the first in this one) and re-raises the
    first exception any of them raised."""
    if len(work) == 1:
        work[0]()
        return
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread below
            errors.append(e)

    others = [threading.Thread(target=guarded, args=(fn,), name=f"bench-sender-{i}")
              for i, fn in enumerate(work[1:], 1)]
    for t in others:
        t.start()
    guarded(work[0])
    for t in others:
        t.join()
    if errors:
        raise errors[0]
