"""salted_hot_key: hot keys spread over salted sub-keys, everything else hashed as Java does."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from kengine import config
from kengine.errors import ConfigError
from kengine.partitioners import SaltedHotKeyPartitioner, load_partitioner, salted_subkeys
from kengine_ext import partition_for_key

N = 64   # partitions


def place(p, key):
    return p.partition("t", key, b"v", None, N, tuple(range(N)))


def hot_key_with_distinct_partitions(buckets):
    """A key whose sub-keys land on `buckets` different partitions, so that a partition
    identifies the salt."""
    for i in range(1000):
        key = b"tenant-%d" % i
        if len({partition_for_key(s, N) for s in salted_subkeys(key, buckets)}) == buckets:
            return key
    raise AssertionError("no such key among 1000 candidates")


def test_subkeys_are_the_key_then_key_hash_i():
    assert salted_subkeys(b"k", 4) == (b"k", b"k#1", b"k#2", b"k#3")
    assert salted_subkeys("clé", 2) == ("clé".encode(), "clé#1".encode())


def test_a_key_with_90_percent_of_the_traffic_spreads_evenly_over_its_salts():
    buckets = 8
    hot = hot_key_with_distinct_partitions(buckets)
    p = SaltedHotKeyPartitioner([hot], buckets)
    rng = random.Random(11)
    salt_of = {partition_for_key(s, N): i for i, s in enumerate(salted_subkeys(hot, buckets))}
    per_salt = Counter()
    cold_ok = 0
    total = 40_000
    for _ in range(total):
        if rng.random() < 0.9:
            per_salt[salt_of[place(p, hot)]] += 1
        else:
            key = b"user-%d" % rng.randrange(10_000)
            cold_ok += place(p, key) == partition_for_key(key, N)
    hot_records = sum(per_salt.values())
    assert hot_records > 0.85 * total
    assert cold_ok == total - hot_records   # every other key: the default partition
    expected = hot_records / buckets
    for salt in range(buckets):
        assert abs(per_salt[salt] - expected) <= 0.10 * expected, per_salt
    m = p.metrics()
    assert m["salted_keys"] == {hot.decode(): {"source": "configured", "records": hot_records}}
    assert m["salted_records"] == hot_records


def test_keys_without_salting_and_null_keys():
    p = SaltedHotKeyPartitioner()
    assert place(p, None) is None   # the sticky partitioner places it
    for key in (b"", b"a", b"some-key"):
        assert place(p, key) == partition_for_key(key, N)


def test_detection_salts_a_key_above_the_share_and_releases_it_when_it_cools_down():
    p = SaltedHotKeyPartitioner(buckets=4, detect_share=0.25, detect_window_records=1000)
    rng = random.Random(5)

    def traffic(hot_share, records):
        for _ in range(records):
            if rng.random() < hot_share:
                place(p, b"hot")
            else:
                place(p, b"k%d" % rng.randrange(500))

    traffic(0.5, 999)
    assert p.salted_keys == frozenset()          # the first window is still open
    traffic(0.5, 1)
    assert p.salted_keys == {b"hot"}
    traffic(0.5, 1000)
    partitions = {place(p, b"hot") for _ in range(8)}
    assert partitions == {partition_for_key(s, N) for s in salted_subkeys(b"hot", 4)}
    m = p.metrics()
    assert m["detect_share"] == 0.25 and m["detect_window_records"] == 1000
    assert m["salted_keys"]["hot"]["source"] == "detected"
    traffic(0.2, 1000)   # still above half the share: keeps it (no flapping at the threshold)
    assert p.salted_keys == {b"hot"}
    traffic(0.0, 1000)   # cooled down: back to its own partition
    assert p.salted_keys == frozenset()
    assert place(p, b"hot") == partition_for_key(b"hot", N)


def test_configured_keys_stay_salted_without_traffic():
    p = SaltedHotKeyPartitioner(["vip"], 2, detect_share=0.5, detect_window_records=10)
    for i in range(50):
        place(p, b"k%d" % i)
    assert p.salted_keys == {b"vip"}
    assert p.metrics()["salted_keys"] == {"vip": {"source": "configured", "records": 0}}


def test_built_from_settings():
    cfg = config.resolve(bootstrap_servers="h:1", partitioner="salted_hot_key",
                         partitioner_salted_hot_keys="a, b", partitioner_salted_buckets=3,
                         partitioner_salted_detect_share=0.4)
    p = load_partitioner(cfg["partitioner"], cfg)
    assert isinstance(p, SaltedHotKeyPartitioner)
    assert p.salted_keys == {b"a", b"b"}
    assert p.metrics()["buckets"] == 3 and p.metrics()["detect_share"] == 0.4
    cfg = config.resolve(bootstrap_servers="h:1", partitioner="salted_hot_key",
                         partitioner_salted_hot_keys=[b"\xff\x00", "x"])
    p = load_partitioner(cfg["partitioner"], cfg)
    assert p.salted_keys == {b"\xff\x00", b"x"}
    assert set(p.metrics()["salted_keys"]) == {"\\xff\x00", "x"}


@pytest.mark.parametrize("settings,key", [
    ({"partitioner_salted_buckets": 1}, "partitioner.salted.buckets"),
    ({"partitioner_salted_detect_share": 1.5}, "partitioner.salted.detect.share"),
    ({"partitioner_salted_detect_share": True}, "partitioner.salted.detect.share"),
    ({"partitioner_salted_hot_keys": [1, 2]}, "partitioner.salted.hot.keys"),
    ({"partitioner_salted_detect_window_records": 0}, "partitioner.salted.detect.window.records"),
])
def test_bad_settings_name_the_setting(settings, key):
    with pytest.raises(ConfigError) as info:
        config.resolve(bootstrap_servers="h:1", partitioner="salted_hot_key", **settings)
    assert info.value.key == key


def test_salted_settings_with_another_partitioner_are_refused():
    with pytest.raises(ConfigError, match="only used with partitioner='salted_hot_key'"):
        config.resolve(bootstrap_servers="h:1", partitioner_salted_hot_keys=["a"])
    with pytest.raises(ConfigError, match="buckets"):
        SaltedHotKeyPartitioner(buckets=1)
