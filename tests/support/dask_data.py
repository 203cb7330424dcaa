"""Deterministic Dask partitions for the ``kengine.dask`` tests and benchmark, and the check
of what a consumer read back.

Row ``j`` of Dask partition ``p`` has key ``k<j % keys>`` and value ``"<p>:<j>:"`` padded
with ``x`` to ``value_bytes``: the value says where the row came from, so the read-back can
count every row and check that the rows of one key from one Dask partition kept their order."""
from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

__all__ = ["check_read_back", "frame_partition", "bag_partition"]


def _value(p: int, j: int, value_bytes: int) -> bytes:
    head = f"{p}:{j}:".encode()
    return head + b"x" * max(0, value_bytes - len(head))


def frame_partition(p: int, rows: int, keys: int = 37, value_bytes: int = 32) -> object:
    """Dask partition ``p`` as a pandas DataFrame (``key``: str, ``value``: bytes)."""
    import pandas as pd

    return pd.DataFrame({"key": [f"k{j % keys}" for j in range(rows)],
                         "value": [_value(p, j, value_bytes) for j in range(rows)]})


def bag_partition(p: int, rows: int, keys: int = 37, value_bytes: int = 32) -> list[object]:
    """Dask partition ``p`` as bag items: ``(key, value)`` tuples."""
    return [(f"k{j % keys}".encode(), _value(p, j, value_bytes)) for j in range(rows)]


def check_read_back(records: Iterable[object], partitions: int, rows: int, *,
                    exactly_once: bool = True) -> dict[tuple[int, int], int]:
    """Asserts that every row of every partition was read (exactly once, or at least once),
    nothing else was, and, per key, the rows of each Dask partition came in row order.
    Returns how many times each (partition, row) was read."""
    seen: Counter[tuple[int, int]] = Counter()
    # key -> Dask partition -> rows in the order read (one key lives in one Kafka partition)
    order: dict[bytes, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        p_text, j_text, _ = r.value.split(b":", 2)   # type: ignore[attr-defined]
        p, j = int(p_text), int(j_text)
        seen[(p, j)] += 1
        order[r.key][p].append(j)   # type: ignore[attr-defined]
    expected = {(p, j) for p in range(partitions) for j in range(rows)}
    missing = sorted(expected - set(seen))
    assert not missing, f"{len(missing)} rows never read, first {missing[:5]}"
    extra = sorted(set(seen) - expected)
    assert not extra, f"{len(extra)} rows read that were never written, first {extra[:5]}"
    if exactly_once:
        twice = sorted(k for k, n in seen.items() if n > 1)
        assert not twice, f"{len(twice)} rows read more than once, first {twice[:5]}"
    for key, by_partition in order.items():
        for p, js in by_partition.items():
            # at least once: a partition written again restarts its rows; the order of a
            # key's rows is checked where each was written once
            if len(js) == len(set(js)):
                assert js == sorted(js), f"key {key!r}: rows of Dask partition {p} out of order"
    return dict(seen)
