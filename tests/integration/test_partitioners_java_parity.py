"""Java parity of keyed placement: for 100,000 random keys (0 to 64 bytes) and partition counts
1 to 1,000, kengine's murmur2 and partition equal what Kafka's own kafka-clients jar computes
(``Utils.murmur2`` and ``BuiltInPartitioner.partitionForKey``, the function Java's default
partitioner applies to keyed records), through tests/java/PartitionerParity.java compiled with
``javac`` against the jar the harness resolved. No broker is needed, only the distribution."""
from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import kengine_ext
from kengine.localkafka import ensure_kafka
from kengine.partitioners import encode_composite_key

JAVA_SOURCE = Path(__file__).resolve().parents[1] / "java" / "PartitionerParity.java"

Oracle = Callable[[list[tuple[bytes, int]]], list[tuple[int, int]]]


@pytest.fixture(scope="module")
def java_oracle(tmp_path_factory: pytest.TempPathFactory) -> Oracle:
    dist = ensure_kafka()
    javac = Path(dist.java).with_name("javac")
    if not javac.exists():
        javac = Path(shutil.which("javac") or "javac")
    clients = sorted(dist.libs.glob("kafka-clients-*.jar"))
    assert clients, f"no kafka-clients jar in {dist.libs}"
    classes = tmp_path_factory.mktemp("partitioner-parity")
    subprocess.run([str(javac), "-cp", str(clients[0]), "-d", str(classes), str(JAVA_SOURCE)],
                   check=True, timeout=300)

    def ask(records: list[tuple[bytes, int]]) -> list[tuple[int, int]]:
        lines = "".join(f"{key.hex() or '-'} {n}\n" for key, n in records)
        out = subprocess.run(
            [dist.java, "-Xmx256m", "-cp", f"{classes}{os.pathsep}{dist.classpath}",
             "PartitionerParity"],
            input=lines, capture_output=True, text=True, check=True, timeout=300)
        answers = [line.split() for line in out.stdout.splitlines()]
        return [(int(h), int(p)) for h, p in answers]

    return ask


def test_keyed_partitions_match_javas_for_100000_keys(java_oracle: Oracle) -> None:
    rng = random.Random(794)
    records = [(rng.randbytes(rng.randint(0, 64)), rng.randint(1, 1000)) for _ in range(100_000)]
    records += [(b"key-%d" % n, n) for n in range(1, 1001)]           # every partition count
    records += [(b"\xff" * size, 7) for size in range(9)]              # sign bits, every tail
    records += [("clé-ü-€".encode(), 12), (b"", 1000)]
    java = java_oracle(records)
    assert len(java) == len(records)
    mismatches = [(key.hex(), n, expected, (kengine_ext.murmur2(key),
                                            kengine_ext.partition_for_key(key, n)))
                  for (key, n), expected in zip(records, java, strict=True)
                  if expected != (kengine_ext.murmur2(key), kengine_ext.partition_for_key(key, n))]
    assert mismatches == []


def test_the_documented_composite_example_is_javas_partition(java_oracle: Oracle) -> None:
    composite = encode_composite_key([b"acme", b"order-17"])
    assert java_oracle([(composite, 12)]) == [(-1471628701, 7)]
