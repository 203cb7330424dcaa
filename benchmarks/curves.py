"""Issue 23's scaling curves: which ``scaling`` scenarios form which curve, and the targets
read from them. Pure functions of the summarised figures, like :mod:`benchmarks.summary`.

Each curve moves one thing from a base point: the partition count of one topic, the topic
count (topics of one partition), the record size, the threads sharing a producer. The base of
the partition, size and thread curves is one broker, one topic of 6 partitions, one thread,
100-byte records; the topic curve's is one topic of one partition. The three-broker points
stand apart (issue 23's item 4).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.clients import CLIENTS
from benchmarks.plan import LAYOUTS, Scenario
from benchmarks.summary import ScenarioFigures, Target

__all__ = ["CURVES", "Curve", "curves", "scaling_targets"]

#: per-record CPU at the far end of a curve may be at most this many times its first point's
FLAT_MAX = 1.5


@dataclass(frozen=True)
class CurveKind:
    name: str
    title: str
    x_label: str
    member: Callable[[Scenario], bool]
    x: Callable[[Scenario], int]
    #: the point growth is measured against (issue 23: 6 partitions, one topic)
    base_x: int


def _base(s: Scenario) -> bool:
    return s.layout == "single" and s.topics == 1 and s.threads == 1 and s.record_bytes == 100


CURVES = (
    CurveKind("partitions", "How does the cost grow with the partitions of one topic?",
              "partitions", lambda s: LAYOUTS[s.layout].brokers == 1 and s.topics == 1
              and s.threads == 1 and s.record_bytes == 100,
              lambda s: LAYOUTS[s.layout].partitions, 6),
    CurveKind("topics", "How does the cost grow with the number of topics (one partition "
              "each)?", "topics", lambda s: s.layout == "single-1p" and s.threads == 1
              and s.record_bytes == 100, lambda s: s.topics, 1),
    CurveKind("size", "How does the cost grow with the record size?", "record bytes",
              lambda s: s.layout == "single" and s.topics == 1 and s.threads == 1,
              lambda s: s.record_bytes, 100),
    CurveKind("threads", "Does one producer scale with threads sharing it?", "threads",
              lambda s: s.layout == "single" and s.topics == 1 and s.record_bytes == 100,
              lambda s: s.threads, 1),
    CurveKind("brokers", "How fast on three brokers (RF 3, min.insync.replicas 2)?",
              "record bytes", lambda s: s.layout == "cluster3", lambda s: s.record_bytes, 100),
)


@dataclass
class Curve:
    kind: CurveKind
    #: (x, figures), x ascending
    points: list[tuple[int, ScenarioFigures]]

    def at(self, x: int) -> ScenarioFigures | None:
        return next((f for px, f in self.points if px == x), None)

    def cpu_growth(self, client: str, x: int) -> float | None:
        """The client's median CPU per record at ``x`` over its figure at the base point."""
        base, there = self.at(self.kind.base_x), self.at(x)
        first = base.clients.get(client) if base else None
        last = there.clients.get(client) if there else None
        if first is None or last is None or first.cpu_us_per_record is None \
                or last.cpu_us_per_record is None:
            return None
        return last.cpu_us_per_record.median / first.cpu_us_per_record.median


def curves(figures: Sequence[ScenarioFigures]) -> list[Curve]:
    scaling = [f for f in figures if f.scenario.kind == "scaling"]
    out = []
    for kind in CURVES:
        points = sorted(((kind.x(f.scenario), f) for f in scaling if kind.member(f.scenario)),
                        key=lambda p: p[0])
        if len(points) > (0 if kind.name == "brokers" else 1):
            out.append(Curve(kind, points))
    return out


def _ratio_target(what: str, goal: float, value: float | None) -> Target:
    return Target(23, what, f">= {goal:g}x", "n/a" if value is None else f"{value:.2f}x",
                  None if value is None else value >= goal)


def scaling_targets(figures: Sequence[ScenarioFigures]) -> list[Target]:
    """Issue 23's targets that the curves measure: per-record cost at the first point (send()
    <= 0.20 µs and <= 0.1x confluent-kafka's, send_many() <= 0.07 µs and <= 0.04x), flat cost
    at 1,000 partitions and 1,000 topics (<= 1.5x the first point, confluent-kafka's growth
    stated beside), 1 KiB MB/s >= 2x confluent-kafka's and >= Java's on one and three
    brokers, and three-broker 100-byte records/s >= 1.5x Java's."""
    by_name = {c.kind.name: c for c in curves(figures)}
    out: list[Target] = []
    base = next((f for f in figures if f.scenario.kind == "scaling" and _base(f.scenario)),
                None)
    if base is not None:
        for client, most_us, most_share in (("kengine-send", 0.20, 0.10),
                                            ("kengine-send-many", 0.07, 0.04)):
            mine = base.clients.get(client)
            label = CLIENTS[client].label
            cpu = mine.cpu_us_per_record.median if mine and mine.cpu_us_per_record else None
            share = base.ratio(client, "confluent-kafka", "cpu")
            out.append(Target(23, f"{label} CPU µs/record (1 broker, 100 B, acks=all)",
                              f"<= {most_us:.2f}", "n/a" if cpu is None else f"{cpu:.3f}",
                              None if cpu is None else cpu <= most_us))
            out.append(Target(23, f"{label} CPU/record vs confluent-kafka (same)",
                              f"<= {most_share:g}x",
                              "n/a" if share is None else f"{1 / share:.3f}x",
                              None if share is None else 1 / share <= most_share))
    for name, x, what in (("partitions", 1000, "1,000 partitions vs 6"),
                          ("topics", 1000, "1,000 topics vs 1")):
        curve = by_name.get(name)
        if curve is None or curve.at(x) is None:
            continue
        peer = curve.cpu_growth("confluent-kafka", x)
        for client in ("kengine-send", "kengine-send-many"):
            growth = curve.cpu_growth(client, x)
            beside = "" if peer is None else f" (confluent-kafka {peer:.2f}x)"
            out.append(Target(23, f"{CLIENTS[client].label} CPU/record, {what}",
                              f"<= {FLAT_MAX:g}x",
                              "n/a" if growth is None else f"{growth:.2f}x{beside}",
                              None if growth is None else growth <= FLAT_MAX))
    for name, where in (("size", "1 broker"), ("brokers", "3 brokers")):
        curve = by_name.get(name)
        kib = curve.at(1024) if curve else None
        if kib is None:
            continue
        for client in ("kengine-send", "kengine-send-many"):
            label = CLIENTS[client].label
            out.append(_ratio_target(f"{label} MB/s vs confluent-kafka (1 KiB, {where})", 2.0,
                                     kib.ratio(client, "confluent-kafka", "throughput")))
            out.append(_ratio_target(f"{label} MB/s vs Java (1 KiB, {where})", 1.0,
                                     kib.ratio(client, "java", "throughput")))
    three = by_name.get("brokers")
    small = three.at(100) if three else None
    if small is not None:
        for client in ("kengine-send", "kengine-send-many"):
            out.append(_ratio_target(
                f"{CLIENTS[client].label} records/s vs Java (100 B, 3 brokers, acks=all)", 1.5,
                small.ratio(client, "java", "throughput")))
    return out
