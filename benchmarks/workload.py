"""The records every benchmark sends or encodes, identical for every client.

Values come from a pool of ``POOL_SIZE`` JSON-like events of exactly the record size (text that
compresses about as well as real event streams do: repeated field names, varied values), keys
are ``str(i % KEY_SPACE)`` encoded as UTF-8. Record ``i`` is ``(pool[i % POOL_SIZE],
keys[i % KEY_SPACE])`` in the Python clients; Java's ProducerPerformance draws values from the
same pool at random (``--payload-file``) with the same keys (``--key-distribution range``).
The pool is generated deterministically, so every process builds the same bytes.
Transactional runs commit every ``n`` records: records ``0..n-1`` form the first transaction,
``n..2n-1`` the second, and so on.
"""
from __future__ import annotations

import random
from pathlib import Path

from kengine_ext import partition_for_key

__all__ = ["KEY_SPACE", "POOL_SIZE", "keys", "payload_pool", "transaction_markers",
           "write_payload_file"]

KEY_SPACE = 1000
POOL_SIZE = 1000

_EVENTS = ("page_view", "click", "add_to_cart", "checkout", "search", "login", "logout")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
          "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu")


def keys() -> list[bytes]:
    """``str(i).encode()`` for every ``i`` in ``range(KEY_SPACE)``."""
    return [str(i).encode() for i in range(KEY_SPACE)]


def payload_pool(record_bytes: int) -> list[bytes]:
    """``POOL_SIZE`` distinct ASCII values of exactly ``record_bytes`` bytes (no newline, so
    the pool can be written one value per line for Java's ProducerPerformance)."""
    if record_bytes < 16:
        raise ValueError(f"record_bytes must be at least 16, got {record_bytes}")
    rng = random.Random(record_bytes)
    pool = []
    for i in range(POOL_SIZE):
        event = (f'{{"id":{i},"user":"u{rng.randrange(100_000):05d}",'
                 f'"event":"{rng.choice(_EVENTS)}","ts":{1_700_000_000_000 + 37 * i},'
                 f'"amount":{rng.randrange(100_000) / 100:.2f},"note":"')
        words = []
        length = len(event)
        while length < record_bytes:
            word = rng.choice(_WORDS) if rng.random() < 0.7 else f"{rng.randrange(10**6):06d}"
            words.append(word)
            length += len(word) + 1
        text = (event + " ".join(words))[:record_bytes - 2] + '"}'
        pool.append(text.encode("ascii"))
    return pool


def write_payload_file(path: Path, pool: list[bytes]) -> None:
    """One value per line, as ``kafka-producer-perf-test --payload-file`` reads them."""
    path.write_bytes(b"\n".join(pool) + b"\n")


def transaction_markers(records: int, per_transaction: int, partitions: int) -> int:
    """The markers committing ``records`` records in transactions of ``per_transaction`` write
    into a topic of ``partitions`` partitions: one per transaction and partition it wrote to."""
    if per_transaction < 1:
        raise ValueError(f"per_transaction must be at least 1, got {per_transaction}")
    owner = [partition_for_key(k, partitions) for k in keys()]
    every = len(set(owner))
    total = 0
    for start in range(0, records, per_transaction):
        n = min(per_transaction, records - start)
        # a transaction holding every key writes to every partition a key maps to
        total += every if n >= KEY_SPACE else \
            len({owner[i % KEY_SPACE] for i in range(start, start + n)})
    return total
