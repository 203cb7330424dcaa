"""Turns runs into per-scenario figures (median, min, max over rounds), kengine-to-peer ratios,
and the issues' targets as PASS/MISS. Pure functions of the stored runs, so a report can be
rebuilt from results.json alone."""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clients import CLIENTS
from benchmarks.plan import Scenario
from benchmarks.runs import Run

__all__ = ["ClientFigures", "ScenarioFigures", "Stat", "Target", "e2e_targets",
           "micro_targets", "summarise"]


@dataclass(frozen=True)
class Stat:
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat | None:
        if not values:
            return None
        return cls(statistics.median(values), min(values), max(values))


@dataclass
class ClientFigures:
    client: str
    runs_ok: int
    runs_failed: int
    records: int                        # measured records per run
    records_per_s: Stat | None
    mb_per_s: Stat | None
    cpu_us_per_record: Stat | None
    rss_peak_mib: Stat | None
    rss_start_mib: Stat | None
    latency_us: dict[str, Stat]
    idempotence: str                    # what the brokers saw, over every run
    client_version: str
    errors: list[str] = field(default_factory=list)


@dataclass
class ScenarioFigures:
    scenario: Scenario
    clients: dict[str, ClientFigures]

    def ratio(self, kengine: str, peer: str, metric: str) -> float | None:
        """How many times better kengine's median is than the peer's: records/s divided for
        ``throughput``, the peer's CPU per record over kengine's for ``cpu``."""
        a, b = self.clients.get(kengine), self.clients.get(peer)
        if a is None or b is None:
            return None
        if metric == "throughput":
            if a.records_per_s is None or b.records_per_s is None:
                return None
            return a.records_per_s.median / b.records_per_s.median
        if a.cpu_us_per_record is None or b.cpu_us_per_record is None:
            return None
        return b.cpu_us_per_record.median / a.cpu_us_per_record.median


def _client_figures(client: str, runs: list[Run]) -> ClientFigures:
    ok = [r for r in runs if r.ok]
    latency: dict[str, Stat] = {}
    for name in ("p50", "p99", "p99.9", "max"):
        percentile = Stat.of([r.result.latency_us[name] for r in ok
                              if r.result is not None and name in r.result.latency_us])
        if percentile is not None:
            latency[name] = percentile

    def stat(get: Callable[[Run], float]) -> Stat | None:
        return Stat.of([get(r) for r in ok])

    versions = {r.result.client_version for r in ok if r.result is not None}
    return ClientFigures(
        client=client,
        runs_ok=len(ok),
        runs_failed=len(runs) - len(ok),
        records=max((r.result.records for r in ok if r.result is not None), default=0),
        records_per_s=stat(lambda r: r.records_per_s),
        mb_per_s=stat(lambda r: r.mb_per_s),
        cpu_us_per_record=stat(lambda r: r.cpu_us_per_record),
        rss_peak_mib=stat(lambda r: r.result.rss_peak_bytes / 2**20 if r.result else 0.0),
        rss_start_mib=stat(lambda r: r.result.rss_start_bytes / 2**20 if r.result else 0.0),
        latency_us=latency,
        idempotence="/".join(sorted({r.idempotence for r in ok})) or "unknown",
        client_version="/".join(sorted(versions)),
        errors=[f"round {r.round + 1}: {r.error}" for r in runs if not r.ok],
    )


def summarise(scenarios: Sequence[Scenario], runs: Sequence[Run]) -> list[ScenarioFigures]:
    out = []
    for scenario in scenarios:
        mine = [r for r in runs if r.scenario == scenario.id]
        if not mine:
            continue
        clients = {c: _client_figures(c, [r for r in mine if r.client == c])
                   for c in scenario.clients if any(r.client == c for r in mine)}
        out.append(ScenarioFigures(scenario, clients))
    return out


@dataclass(frozen=True)
class Target:
    issue: int
    what: str
    goal: str
    measured: str
    passed: bool | None     # None: not measured in this run

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "n/a"}[self.passed]


def e2e_targets(figures: Sequence[ScenarioFigures]) -> list[Target]:
    """Issue 4: per issue-4 scenario (1 broker, 100 B, acks 1/all, none/lz4), kengine send()
    uses at most half of confluent-kafka's CPU per record, send_many() at most a fifth, and
    both deliver at least confluent-kafka's records/s."""
    out = []
    for f in figures:
        s = f.scenario
        if s.kind != "throughput" or s.layout != "single" or s.record_bytes != 100 \
                or s.compression not in ("none", "lz4"):
            continue
        where = f"acks={s.acks}, {s.compression}"
        for kengine, max_share in (("kengine-send", 0.5), ("kengine-send-many", 0.2)):
            label = CLIENTS[kengine].label
            cpu = f.ratio(kengine, "confluent-kafka", "cpu")
            speed = f.ratio(kengine, "confluent-kafka", "throughput")
            out.append(Target(
                4, f"{label} CPU/record vs confluent-kafka ({where})",
                f"<= {max_share:g}x", "n/a" if cpu is None else f"{1 / cpu:.2f}x",
                None if cpu is None else 1 / cpu <= max_share))
            out.append(Target(
                4, f"{label} records/s vs confluent-kafka ({where})", ">= 1x",
                "n/a" if speed is None else f"{speed:.2f}x",
                None if speed is None else speed >= 1.0))
    return out


def micro_targets(micro: dict[str, Any]) -> list[Target]:
    """Issue 3's targets from the micro-benchmark tables (see benchmarks.micro_runner)."""
    tables = micro.get("tables", {})
    out = []

    def rate(table: str, impl: str, size: str) -> float | None:
        value: float | None = tables.get(table, {}).get("rows", {}).get(impl, {}).get(size)
        return value

    encoding = "RecordBatch v2, 64 KiB of 100-byte values, keys str(i % 1000)"
    aiokafka = "aiokafka 0.14 Cython DefaultRecordBatchBuilder"
    for codec in ("none", "lz4"):
        base = rate(encoding, aiokafka, codec)
        for impl, goal in (("kengine append() per record + build()", 3.0),
                           ("kengine encode_batch()", 8.0)):
            mine = rate(encoding, impl, codec)
            ratio = None if mine is None or not base else mine / base
            out.append(Target(3, f"{impl} vs aiokafka's Cython builder ({codec})",
                              f">= {goal:g}x", "n/a" if ratio is None else f"{ratio:.2f}x",
                              None if ratio is None else ratio >= goal))
    crc = "CRC32C"
    rows = tables.get(crc, {}).get("rows", {})
    hw = next((k for k in rows if k.startswith("kengine (") and "software" not in k), None)
    pkg = next((k for k in rows if k.startswith("crc32c package")), None)
    mine = rate(crc, hw, "16 KiB") if hw else None
    theirs = rate(crc, pkg, "16 KiB") if pkg else None
    out.append(Target(3, "CRC32C at 16 KiB vs the crc32c package", ">= 1x",
                      "n/a" if mine is None or not theirs else f"{mine / theirs:.2f}x",
                      None if mine is None or not theirs else mine >= theirs))
    out.append(Target(3, "CRC32C at 16 KiB", ">= 10 GB/s",
                      "n/a" if mine is None else f"{mine / 1e9:.1f} GB/s",
                      None if mine is None else mine >= 10e9))
    murmur = "murmur2, keys str(i % 1000) encoded"
    base = rate(murmur, "kafka-python murmur2() (pure Python)", "per key")
    # the accumulator hashes keys in C; the Python-call figures are in the micro tables
    impl = "kengine murmur2.h in C (accumulator path)"
    mine = rate(murmur, impl, "per key")
    ratio = None if mine is None or not base else mine / base
    out.append(Target(3, f"{impl} vs kafka-python's murmur2", ">= 100x",
                      "n/a" if ratio is None else f"{ratio:.0f}x",
                      None if ratio is None else ratio >= 100))
    return out
