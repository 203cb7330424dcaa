"""composite: a partition from a key built of several record fields, with a fixed encoding."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from kengine import config
from kengine.errors import ConfigError
from kengine.partitioners import CompositeKeyPartitioner, encode_composite_key, load_partitioner
from kengine_ext import murmur2, partition_for_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_worked_example():
    composite = encode_composite_key([b"acme", b"order-17"])
    assert composite == bytes.fromhex("00000004 61636d65 00000008 6f726465722d3137")
    assert murmur2(composite) == -1471628701
    p = CompositeKeyPartitioner(["header:tenant", "key"])
    assert p.composite_key(b"order-17", None, [("tenant", b"acme")]) == composite
    assert p.partition("t", b"order-17", None, [("tenant", b"acme")], 12, tuple(range(12))) == 7


def test_field_values_encode_as_nullable_bytes():
    assert encode_composite_key([None, b"", "é", 42, -7]) == (
        b"\xff\xff\xff\xff" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x02\xc3\xa9"
        + b"\x00\x00\x00\x0242" + b"\x00\x00\x00\x02-7")
    assert encode_composite_key([42]) == encode_composite_key(["42"])   # same field, any type
    for bad in (True, 1.5, object()):
        with pytest.raises(TypeError, match="must give bytes, str, int or None"):
            encode_composite_key([bad])


def test_fields_come_from_the_key_headers_the_value_and_functions():
    p = CompositeKeyPartitioner(["value:tenant", "header:region", "key",
                                 lambda v: v["order"]["id"]])
    value = {"tenant": "acme", "order": {"id": 17}}
    expected = encode_composite_key(["acme", b"eu", b"k", 17])
    assert p.composite_key(b"k", value, [("x", b"1"), ("region", b"eu"), ("region", b"us")]) \
        == expected                                  # the first header of that name
    assert p.composite_key(b"k", value, {"region": "eu"}) == expected
    obj = SimpleNamespace(tenant="acme", order={"id": 17})
    p2 = CompositeKeyPartitioner(["value:tenant", "key"])
    assert p2.composite_key(b"k", obj, None) == encode_composite_key(["acme", b"k"])
    # missing parts are null, not errors
    assert p2.composite_key(None, {}, None) == encode_composite_key([None, None])


def test_fields_parse_from_a_comma_separated_setting():
    cfg = config.resolve(bootstrap_servers="h:1", partitioner="composite",
                         partitioner_composite_fields="header:tenant, key")
    assert cfg["partitioner.composite.fields"] == ("header:tenant", "key")
    p = load_partitioner(cfg["partitioner"], cfg)
    assert p.composite_key(b"k", None, [("tenant", b"t")]) == encode_composite_key([b"t", b"k"])


@pytest.mark.parametrize("fields", [["keys"], ["header:"], ["value"], [3], "key,nope:x"])
def test_bad_fields_are_config_errors(fields):
    with pytest.raises(ConfigError, match="'key', 'header:NAME', 'value:NAME'"):
        config.resolve(bootstrap_servers="h:1", partitioner="composite",
                       partitioner_composite_fields=fields)


def test_composite_needs_fields_and_fields_need_composite():
    with pytest.raises(ConfigError, match="at least one field"):
        config.resolve(bootstrap_servers="h:1", partitioner="composite")
    with pytest.raises(ConfigError, match="only used with partitioner='composite'"):
        config.resolve(bootstrap_servers="h:1", partitioner_composite_fields=["key"])


_CHILD = r"""
import json, sys
from kengine.partitioners import CompositeKeyPartitioner
p = CompositeKeyPartitioner(["header:tenant", "value:order", "key"])
records = json.load(sys.stdin)
print(json.dumps([p.partition("t", k.encode() if k is not None else None, {"order": o},
                              [("tenant", t.encode())], n, tuple(range(n)))
                  for t, o, k, n in records]))
"""


def test_the_same_partition_in_other_processes_and_runs():
    records = [(f"tenant-{i % 7}", i * 31, None if i % 5 == 0 else f"k{i}", 1 + i % 50)
               for i in range(2000)]
    p = CompositeKeyPartitioner(["header:tenant", "value:order", "key"])
    here = [p.partition("t", k.encode() if k is not None else None, {"order": o},
                        [("tenant", t.encode())], n, tuple(range(n))) for t, o, k, n in records]
    for seed in ("1", "2"):   # str hashing differs between these interpreters
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(records),
                             capture_output=True, text=True, env=env, timeout=120, check=True)
        assert json.loads(out.stdout) == here
    # and it is Java's partition of the documented encoding, not anything process-local
    assert here[:100] == [partition_for_key(encode_composite_key([t.encode(), o, k]), n)
                          for t, o, k, n in records[:100]]
