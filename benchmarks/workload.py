"""The records every benchmark sends or encodes, identical for every client.

Values come from a pool of ``POOL_SIZE`` JSON-like events of exactly the record size (text that
compresses about as well as real event streams do: repeated field names, varied values), keys
are ``str(i % KEY_SPACE)`` encoded as UTF-8. Record ``i`` is ``(pool[i % POOL_SIZE],
keys[i % KEY_SPACE])`` in the Python clients; Java's ProducerPerformance draws values from the
same pool at random (``--payload-file``) with the same keys (``--key-distribution range``).
The pool is generated deterministically, so every process builds the same bytes.
Transactional runs commit every ``n`` records: records ``0..n-1`` form the first transaction,
``n..2n-1`` the second, and so on.

The scaling curves widen the workload (:func:`schedule`): a larger key space (so that keys
reach every partition of a 5,000-partition topic) and several topics, record ``i`` going to
topic ``i % topics``, so that records spread evenly over topics and, within each, over the
partitions its keys hash to. Each phase of a run (warm-up, measured records) starts again at
record 0.
"""
from __future__ import annotations

import random
from pathlib import Path

from kengine_ext import partition_for_key

__all__ = ["KEY_SPACE", "POOL_SIZE", "keys", "min_records_per_key", "payload_pool", "schedule",
           "transaction_markers", "write_payload_file"]

KEY_SPACE = 1000
POOL_SIZE = 1000

_EVENTS = ("page_view", "click", "add_to_cart", "checkout", "search", "login", "logout")
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
          "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
          "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu")


def keys(key_space: int = KEY_SPACE) -> list[bytes]:
    """``str(i).encode()`` for every ``i`` in ``range(key_space)``."""
    return [str(i).encode() for i in range(key_space)]


def schedule(topics: list[str], record_bytes: int,
             key_space: int = KEY_SPACE) -> list[tuple[str, bytes, bytes]]:
    """One period of the workload as (topic, value, key) triples: record ``i`` of a phase is
    ``schedule[i % len(schedule)]``, with topic ``i % len(topics)``, value ``i % POOL_SIZE``
    and key ``i % key_space``. ``key_space`` must be a multiple of ``POOL_SIZE`` and of the
    number of topics, so that the period is ``key_space`` records and a topic always gets the
    same keys (those ``≡ its index`` modulo the topic count)."""
    if key_space % POOL_SIZE or key_space % len(topics):
        raise ValueError(f"key_space {key_space} must be a multiple of {POOL_SIZE} and of the "
                         f"topic count {len(topics)}")
    pool, ks = payload_pool(record_bytes), keys(key_space)
    return [(topics[i % len(topics)], pool[i % POOL_SIZE], ks[i]) for i in range(key_space)]


def min_records_per_key(phases: tuple[int, ...], key_space: int) -> int:
    """The fewest records any key gets when each phase of ``phases`` records starts again at
    record 0 (the Python drivers), or when they run as one sequence (Java's
    ProducerPerformance): the smaller of the two."""
    restarting = sum(n // key_space for n in phases)
    return min(restarting, sum(phases) // key_space)


def payload_pool(record_bytes: int) -> list[bytes]:
    """``POOL_SIZE`` distinct ASCII values of exactly ``record_bytes`` bytes (no newline, so
    the pool can be written one value per line for Java's ProducerPerformance)."""
    if record_bytes < 4:
        raise ValueError(f"record_bytes must be at least 4, got {record_bytes}")
    rng = random.Random(record_bytes)
    if record_bytes < 24:
        # too short for an event: an id and random letters, still distinct and printable
        return [(f"{i:03d}" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz")
                                      for _ in range(record_bytes - 3))).encode("ascii")
                for i in range(POOL_SIZE)]
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
