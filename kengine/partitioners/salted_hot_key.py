"""``salted_hot_key``: spreads the records of a few very frequent keys over several partitions.

One key that carries a large share of the traffic (a big tenant, a popular product, a default
value) sends all of it to one partition, so one broker and one consumer do most of the work.
This partitioner places such *hot* keys on ``buckets`` salted sub-keys instead, in turn; every
other key, and every key that is not hot, goes where the ``default`` partitioner (Java's) puts
it. Records without a key are placed by the built-in sticky partitioner.

Sub-key ``i`` of hot key ``k`` (0 <= i < buckets) is ``k`` itself for ``i = 0`` and otherwise
``k + b"#" + str(i).encode()``; it is hashed as Java hashes keys, ``(murmur2(sub-key) &
0x7fffffff) % partitions``. So sub-key 0 is the partition every other producer uses for ``k``,
and a consumer (or another producer) can compute all of a hot key's partitions. The record's
key is written unchanged: salting only chooses the partition.

**Trade-off: a salted key loses per-key order.** Its records are spread over up to ``buckets``
partitions, so consumers see them in no defined order and different consumers may process
them concurrently. Salt only keys whose records are independent of each other (counters,
metrics, logs, events aggregated later). With automatic detection a key can also move when
it becomes hot or cools down, so its records change partitions at that moment.

Hot keys come from ``partitioner.salted.hot.keys`` and, optionally, from detection: with
``partitioner.salted.detect.share`` = s > 0, the partitioner counts keys over windows of
``partitioner.salted.detect.window.records`` records; a key that carried at least a share s of
a window is salted from then on, until a window in which it carries less than s/2.
``metrics()`` reports which keys are salted, why, and how many records each had.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from kengine_ext import partition_for_key

from ..config import Setting, SettingsGroup, contribute, parse_int
from ..errors import ConfigError
from .base import Headers

__all__ = ["SETTINGS", "SaltedHotKeyPartitioner", "salted_subkeys"]

DEFAULT_BUCKETS = 8
DEFAULT_WINDOW_RECORDS = 10_000


def salted_subkeys(key: bytes | str, buckets: int) -> tuple[bytes, ...]:
    """The ``buckets`` sub-keys a hot key is spread over (see the module documentation)."""
    k = key.encode() if isinstance(key, str) else bytes(key)
    return (k,) + tuple(k + b"#%d" % i for i in range(1, buckets))


class _HotKey:
    __slots__ = ("records", "source", "subkeys")

    def __init__(self, key: bytes, buckets: int, source: str) -> None:
        self.subkeys = salted_subkeys(key, buckets)
        self.source = source          # "configured" or "detected"
        self.records = 0              # records salted; also picks the next sub-key in turn


class SaltedHotKeyPartitioner:
    """Spreads hot keys over ``buckets`` salted sub-keys; other keys hash as ``default``.

    ``SaltedHotKeyPartitioner(hot_keys=[b"tenant-1"], buckets=8, detect_share=0.0,
    detect_window_records=10_000)``, or ``partitioner="salted_hot_key"`` with the
    ``partitioner.salted.*`` settings."""

    def __init__(self, hot_keys: Iterable[bytes | str] = (), buckets: int = DEFAULT_BUCKETS, *,
                 detect_share: float = 0.0,
                 detect_window_records: int = DEFAULT_WINDOW_RECORDS) -> None:
        self._setup(hot_keys, buckets, detect_share, detect_window_records)

    def _setup(self, hot_keys: Iterable[bytes | str], buckets: int, detect_share: float,
               detect_window_records: int) -> None:
        if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 2:
            raise ConfigError("partitioner.salted.buckets", buckets, "an integer >= 2")
        if not 0.0 <= detect_share <= 1.0:
            raise ConfigError("partitioner.salted.detect.share", detect_share,
                              "a share in [0, 1] (0: no detection)")
        if detect_window_records < 1:
            raise ConfigError("partitioner.salted.detect.window.records", detect_window_records,
                              "an integer >= 1")
        self._buckets = buckets
        self._share = float(detect_share)
        self._window_records = int(detect_window_records)
        # bytes key -> _HotKey; replaced or mutated only under the GIL, read without a lock
        self._hot: dict[bytes, _HotKey] = {}
        for key in hot_keys:
            k = key.encode() if isinstance(key, str) else bytes(key)
            self._hot[k] = _HotKey(k, buckets, "configured")
        self._window: dict[bytes, int] = {}   # detection: records per key in this window
        self._seen = 0                        # records counted in this window
        self._roll_lock = threading.Lock()    # one thread closes a window

    def configure(self, settings: Mapping[str, Any]) -> None:
        self._setup(settings.get("partitioner.salted.hot.keys", ()),
                    settings.get("partitioner.salted.buckets", DEFAULT_BUCKETS),
                    settings.get("partitioner.salted.detect.share", 0.0),
                    settings.get("partitioner.salted.detect.window.records",
                                 DEFAULT_WINDOW_RECORDS))

    def partition(self, topic: str, key: bytes | None, value: Any, headers: Headers | None,
                  num_partitions: int, available: tuple[int, ...]) -> int | None:
        if key is None:
            return None
        if self._share:
            self._observe(key)
        hot = self._hot.get(key)
        if hot is None:
            return partition_for_key(key, num_partitions)
        n = hot.records
        hot.records = n + 1
        return partition_for_key(hot.subkeys[n % self._buckets], num_partitions)

    def _observe(self, key: bytes) -> None:
        window = self._window
        window[key] = window.get(key, 0) + 1
        self._seen += 1
        if self._seen >= self._window_records and self._roll_lock.acquire(blocking=False):
            try:
                if self._seen >= self._window_records:
                    self._close_window()
            finally:
                self._roll_lock.release()

    def _close_window(self) -> None:
        window, self._window = self._window, {}
        seen, self._seen = self._seen, 0
        hot_at = self._share * seen
        for key, hot in list(self._hot.items()):
            if hot.source == "detected" and window.get(key, 0) < hot_at / 2:
                del self._hot[key]   # cooled down: back to its own partition
        for key, count in window.items():
            if count >= hot_at and key not in self._hot:
                self._hot[key] = _HotKey(key, self._buckets, "detected")

    @property
    def salted_keys(self) -> frozenset[bytes]:
        """The keys salted now."""
        return frozenset(self._hot)

    def metrics(self) -> dict[str, Any]:
        """``{"partitioner": "salted_hot_key", "buckets": int, "detect_share": float | None,
        "detect_window_records": int, "salted_keys": {key: {"source": "configured" |
        "detected", "records": int}}, "salted_records": int}``; keys are shown as text (UTF-8,
        undecodable bytes backslash-escaped), ``records`` counts the records salted since the
        key became hot."""
        keys = {k.decode("utf-8", "backslashreplace"): {"source": h.source, "records": h.records}
                for k, h in list(self._hot.items())}
        return {
            "partitioner": "salted_hot_key",
            "buckets": self._buckets,
            "detect_share": self._share or None,
            "detect_window_records": self._window_records,
            "salted_keys": keys,
            "salted_records": sum(v["records"] for v in keys.values()),
        }

    def __repr__(self) -> str:
        return (f"SaltedHotKeyPartitioner(buckets={self._buckets}, hot={len(self._hot)}, "
                f"detect_share={self._share})")


# ---------------------------------------------------------------- partitioner.salted.*

def _keys(key: str, value: Any) -> tuple[bytes, ...]:
    allowed = "a list of keys (str or bytes) or a comma-separated string"
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(k.strip().encode() for k in value.split(",") if k.strip())
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ConfigError(key, value, allowed + " (a bytes value must be inside a list)")
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(key, value, allowed) from None
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item.encode())
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out.append(bytes(item))
        else:
            raise ConfigError(key, value, f"{allowed}; {item!r} is neither")
    return tuple(out)


def _share(key: str, value: Any) -> float:
    allowed = "a share in [0, 1] (0: off)"
    if isinstance(value, bool):
        raise ConfigError(key, value, allowed)
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, allowed) from None
    if not 0.0 <= share <= 1.0:
        raise ConfigError(key, value, allowed)
    return share


def _applies(values: dict[str, Any]) -> str | None:
    partitioner = values["partitioner"]
    if partitioner == "salted_hot_key" or isinstance(partitioner, type):
        return None   # a class may be this partitioner, or read them as a plugin would
    return f"only used with partitioner='salted_hot_key', not {partitioner!r}"


#: What SaltedHotKeyPartitioner.configure() reads.
SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("partitioner.salted.hot.keys", (), _keys,
                "salted_hot_key: keys always spread over salted sub-keys (list of str/bytes, or "
                "a comma-separated string)"),
        Setting("partitioner.salted.buckets", 8, parse_int(2, 1 << 16),
                "salted_hot_key: salted sub-keys (so at most partitions) per hot key"),
        Setting("partitioner.salted.detect.share", 0.0, _share,
                "salted_hot_key: also salt keys carrying at least this share of the records of "
                "a detection window (0: no detection)"),
        Setting("partitioner.salted.detect.window.records", 10000, parse_int(1),
                "salted_hot_key: records per detection window"),
    ),
    applies=_applies,
    after="partitioner.availability.timeout.ms",
)
contribute(SETTINGS)
