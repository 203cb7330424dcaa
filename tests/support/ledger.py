"""A ledger of what a producer was asked to send and what it said became of each record, checked
against what an independent consumer (confluent-kafka) reads back.

    ledger = Ledger()
    for i in range(n):
        ledger.send(producer, topic, i, keyed=True)
    producer.flush()
    verdict = ledger.verify(read_all(bootstrap, topic))
    assert verdict.problems() == []

Each record's value starts with its index (``b"<i>|"``), so read-back records map to ledger
entries; keyed records of the same key are sent in increasing index order. The checks:

* *lost*: acknowledged, but not in the log at the partition and offset the producer reported;
* *duplicated*: an index read more than once;
* *out of order*: two records of one key in the log in another order than they were sent;
* *written though failed*: a failed record whose error said it was not written
  (``maybe_written`` False) found in the log: the error lied;
* *unresolved*: neither acknowledged nor failed once the producer was closed;
* *unexplained failures*: an error without a message.
"""
from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kengine.errors import KafkaError

__all__ = ["Ledger", "Verdict", "key_for", "value_for"]

_PAD = b"x" * 90


def key_for(i: int, keys: int) -> bytes:
    return b"key-%d" % (i % keys)


def value_for(i: int) -> bytes:
    return b"%d|" % i + _PAD


def index_of(value: bytes | None) -> int:
    assert value is not None
    return int(value[:value.index(b"|")])


@dataclass
class Verdict:
    sent: int
    acked: int
    failed: int
    #: failed records whose error says they may be in the log anyway
    failed_maybe_written: int
    #: of those, how many were read back
    failed_maybe_written_found: int
    #: refused by send() itself (max.block.ms), never queued
    refused: int
    read_back: int
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    out_of_order: list[tuple[bytes, int, int]] = field(default_factory=list)
    written_though_failed: list[int] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)
    unexplained: list[int] = field(default_factory=list)
    #: "ErrorClass: first line of the message" -> how many records failed with it
    errors: Counter[str] = field(default_factory=Counter)

    def problems(self) -> list[str]:
        out = []
        for name in ("lost", "duplicated", "out_of_order", "written_though_failed",
                     "unresolved", "unexplained"):
            items = getattr(self, name)
            if items:
                out.append(f"{len(items)} {name.replace('_', ' ')}: {items[:10]}")
        return out

    def summary(self) -> str:
        return (f"sent {self.sent}, acknowledged {self.acked}, failed {self.failed} "
                f"({self.failed_maybe_written} maybe written, "
                f"{self.failed_maybe_written_found} of them in the log), refused by send() "
                f"{self.refused}, read back {self.read_back}, lost {len(self.lost)}, "
                f"duplicated {len(self.duplicated)}, out of order {len(self.out_of_order)}, "
                f"written though failed {len(self.written_though_failed)}, unresolved "
                f"{len(self.unresolved)}; errors: {dict(self.errors)}")


class Ledger:
    """Thread-safe: the producer's callbacks run on its sender thread."""

    def __init__(self, keys: int = 1000) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self.sent: dict[int, bytes | None] = {}         # index -> key (None: unkeyed)
        self.acked: dict[int, tuple[int, int]] = {}     # index -> (partition, offset)
        self.failed: dict[int, KafkaError] = {}
        self.refused: dict[int, BaseException] = {}
        #: callbacks that ran so far (acked + failed), for progress without the lock
        self.resolved = 0

    def send(self, producer: Any, topic: str, i: int, *, keyed: bool = True,
             partition: int | None = None) -> None:
        """``producer.send()`` record ``i``; a send() that raises is recorded as refused and
        re-raised."""
        key = key_for(i, self.keys) if keyed else None
        self.sent[i] = key
        try:
            producer.send(topic, value_for(i), key=key, partition=partition,
                          on_delivery=lambda err, meta, i=i: self._on_delivery(i, err, meta))
        except BaseException as e:
            del self.sent[i]
            self.refused[i] = e
            raise

    def _on_delivery(self, i: int, err: KafkaError | None, meta: Any) -> None:
        with self._lock:
            if err is None:
                self.acked[i] = (meta.partition, meta.offset)
            else:
                self.failed[i] = err
            self.resolved += 1

    def acked_where(self, predicate: Any) -> int:
        with self._lock:
            return sum(1 for i, (p, _) in self.acked.items() if predicate(i, p))

    def verify(self, records: Iterable[Any]) -> Verdict:
        """Compare with ``records`` read back (``tests.support.readback.ReadRecord``)."""
        where: dict[int, list[tuple[int, int]]] = {}
        last_by_key: dict[bytes, tuple[int, int]] = {}
        out_of_order = []
        read = 0
        for r in sorted(records, key=lambda r: (r.partition, r.offset)):
            read += 1
            i = index_of(r.value)
            where.setdefault(i, []).append((r.partition, r.offset))
            if r.key is not None:
                prev = last_by_key.get(r.key)
                if prev is not None and prev[0] == r.partition and prev[1] > i:
                    out_of_order.append((r.key, prev[1], i))
                last_by_key[r.key] = (r.partition, i)
        with self._lock:
            acked, failed = dict(self.acked), dict(self.failed)
        lost = [i for i, at in acked.items() if at not in where.get(i, ())]
        duplicated = [i for i, at in where.items() if len(at) > 1]
        written_though_failed = [i for i, e in failed.items()
                                 if i in where and not getattr(e, "maybe_written", False)]
        maybe = [i for i, e in failed.items() if getattr(e, "maybe_written", False)]
        unresolved = [i for i in self.sent if i not in acked and i not in failed]
        unexplained = [i for i, e in failed.items() if not str(e).strip()]
        errors: Counter[str] = Counter()
        for e in failed.values():
            errors[_kind(e)] += 1
        for e in self.refused.values():
            errors["send() raised " + _kind(e)] += 1
        return Verdict(
            sent=len(self.sent), acked=len(acked), failed=len(failed),
            failed_maybe_written=len(maybe),
            failed_maybe_written_found=sum(1 for i in maybe if i in where),
            refused=len(self.refused), read_back=read, lost=sorted(lost),
            duplicated=sorted(duplicated), out_of_order=out_of_order,
            written_though_failed=sorted(written_though_failed), unresolved=sorted(unresolved),
            unexplained=sorted(unexplained), errors=errors)


def _kind(e: BaseException) -> str:
    """The error's class and message with numbers blanked: one entry per kind of failure."""
    text = re.sub(r"\d+", "N", str(e).splitlines()[0] if str(e) else "")
    return f"{type(e).__name__}: {text[:200]}"
