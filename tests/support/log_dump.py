"""What the broker wrote, read by Kafka's own DumpLogSegments (not by kengine, not by a
consumer): every batch's offsets, producer id and epoch, sequences and transactional flag, and
every transaction marker. Tests print it when an exactly-once check fails, to tell which
producer and which transaction wrote a duplicated or missing record.

    batches = dump_partition(cluster, "out", 3)
    print(describe(batches, offsets=[1200, 5400]))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from kengine.localkafka import KafkaCluster
from tests.support.kafka_tools import run_tool

__all__ = ["Batch", "dump_partition", "describe", "summary"]

_BATCH = re.compile(
    r"baseOffset: (?P<base>\d+) lastOffset: (?P<last>\d+) count: (?P<count>\d+) "
    r"baseSequence: (?P<seq>-?\d+) lastSequence: (?P<lastseq>-?\d+) "
    r"producerId: (?P<pid>-?\d+) producerEpoch: (?P<epoch>-?\d+) "
    r"partitionLeaderEpoch: (?P<leader_epoch>-?\d+) isTransactional: (?P<txn>\w+) "
    r"isControl: (?P<control>\w+)")
_MARKER = re.compile(r"endTxnMarker: (?P<marker>\w+)")


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    base_sequence: int
    producer_id: int
    producer_epoch: int
    transactional: bool
    #: "COMMIT" or "ABORT" for a transaction marker, None for a data batch
    marker: str | None
    line: str


def dump_partition(cluster: KafkaCluster, topic: str, partition: int,
                   node: int | None = None) -> list[Batch]:
    """The batches of ``topic``-``partition`` in ``node``'s replica (default: its leader's),
    in offset order."""
    node = cluster.leader_of(topic, partition) if node is None else node
    directory = cluster.data_dir(node) / f"{topic}-{partition}"
    segments = sorted(str(p) for p in directory.glob("*.log"))
    if not segments:
        raise AssertionError(f"node {node} has no segments in {directory}")
    out = run_tool(cluster, "org.apache.kafka.tools.DumpLogSegments", "--deep-iteration",
                   "--print-data-log", "--files", ",".join(segments), timeout=300,
                   check=True).stdout
    batches: list[Batch] = []
    for line in out.splitlines():
        m = _BATCH.search(line)
        if m:
            batches.append(Batch(int(m["base"]), int(m["last"]), int(m["seq"]), int(m["pid"]),
                                 int(m["epoch"]), m["txn"] == "true", None, line.strip()))
            continue
        marker = _MARKER.search(line)
        if marker and batches:
            batches[-1].marker = marker["marker"]
    return batches


def describe(batches: list[Batch], offsets: list[int]) -> str:
    """For each offset: the batch holding it, and the marker that ended its producer's
    transaction (the first marker of that producer id after it)."""
    lines = []
    for offset in offsets:
        holder = next((b for b in batches if b.base_offset <= offset <= b.last_offset), None)
        if holder is None:
            lines.append(f"offset {offset}: in no batch")
            continue
        end = next((b for b in batches if b.marker and b.producer_id == holder.producer_id
                    and b.base_offset > holder.last_offset), None)
        lines.append(f"offset {offset}: {holder.line}\n    ended by: "
                     f"{end.line + ' ' + str(end.marker) if end else 'no marker yet'}")
    return "\n".join(lines)


def summary(batches: list[Batch]) -> str:
    """One short line per batch: offsets, producer id and epoch, first sequence, and the
    marker of a control batch."""
    return "\n".join(
        f"  {b.base_offset}-{b.last_offset} pid {b.producer_id} epoch {b.producer_epoch} "
        f"seq {b.base_sequence}" + (f" {b.marker}" if b.marker else "")
        for b in batches)
