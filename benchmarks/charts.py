"""PNG charts of a run (matplotlib, no display needed). Each function returns the file name it
wrote into ``out_dir``, or None when the run has nothing to draw."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks.clients import CLIENTS
from benchmarks.curves import Curve, curves
from benchmarks.summary import ClientFigures, ScenarioFigures, Stat

__all__ = ["draw_all"]

_COLOURS = {
    "kengine-send": "#1f5fbf", "kengine-send-callback": "#5b8fd9",
    "kengine-send-many": "#0b2f6b", "confluent-kafka": "#d95f02", "java": "#7570b3",
    "aiokafka": "#1b9e77", "kafka-python": "#999999",
    # the guarantees of the exactly-once chart
    "non-idempotent": "#bbbbbb", "idempotent": "#1f5fbf", "transactional": "#0b6b3a",
}


def _grouped_bars(ax: Any, groups: Sequence[str], series: dict[str, list[Stat | None]]) -> None:
    """One cluster of bars per group, one bar per series, whiskers from min to max."""
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (client, stats) in enumerate(series.items()):
        med = np.array([s.median if s else np.nan for s in stats])
        lo = np.array([s.median - s.min if s else 0 for s in stats])
        hi = np.array([s.max - s.median if s else 0 for s in stats])
        ax.bar(x + (i - (n - 1) / 2) * width, med, width, yerr=[lo, hi], capsize=2,
               label=CLIENTS[client].label if client in CLIENTS else client,
               color=_COLOURS.get(client), error_kw={"elinewidth": 0.8})
    ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.grid(axis="y", which="both", alpha=0.3)


def _per_scenario(figures: Sequence[ScenarioFigures],
                  metric: Callable[[ClientFigures], Stat | None],
                  ylabel: str, title: str, path: Path) -> str | None:
    """One panel per cluster layout and record size, stacked, so that each stays readable."""
    if not figures:
        return None
    panels: dict[tuple[str, int], list[ScenarioFigures]] = {}
    for f in figures:
        panels.setdefault((f.scenario.layout, f.scenario.record_bytes), []).append(f)
    clients = [c for c in CLIENTS if any(c in f.clients for f in figures)]
    widest = max(len(p) for p in panels.values())
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(max(8, 1.5 * widest + 3), 3.6 * len(panels) + 1))
    for ax, group in zip(axes[:, 0], panels.values(), strict=True):
        series = {c: [metric(f.clients[c]) if c in f.clients else None for f in group]
                  for c in clients}
        _grouped_bars(ax, [f.scenario.short for f in group], series)
        ax.set_ylabel(ylabel, fontsize=8)
    axes[0, 0].set_title(title)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncol=4, loc="lower center")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _latency(figures: Sequence[ScenarioFigures], path: Path) -> str | None:
    if not figures:
        return None
    fig, axes = plt.subplots(1, len(figures), figsize=(5.5 * len(figures), 4.5), squeeze=False)
    for ax, f in zip(axes[0], figures, strict=True):
        pcts = ["p50", "p99", "p99.9"]
        series = {c: [cf.latency_us.get(p) for p in pcts] for c, cf in f.clients.items()}
        _grouped_bars(ax, pcts, series)
        ax.set_ylabel("µs, send() to delivery callback")
        ax.set_title(f.scenario.short + f", {f.scenario.rate_per_s:,}/s", fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _eos(figures: Sequence[ScenarioFigures], path: Path) -> str | None:
    """Per scenario comparing guarantees: records/s and CPU per record, a cluster of bars per
    client, one bar per guarantee."""
    if not figures:
        return None
    panels: tuple[tuple[Callable[[ClientFigures], Stat | None], str], ...] = (
        (lambda cf: cf.records_per_s, "records/s (log)"),
        (lambda cf: cf.cpu_us_per_record, "client CPU µs per record (log)"))
    fig, axes = plt.subplots(len(figures), 2, squeeze=False, figsize=(11, 4.2 * len(figures)))
    for row, f in zip(axes, figures, strict=True):
        s = f.scenario
        clients = [c for c in s.clients if any(f.lane(c, g) for g in s.guarantees)]
        for ax, (metric, ylabel) in zip(row, panels, strict=True):
            series = {g: [metric(cf) if (cf := f.lane(c, g)) else None for c in clients]
                      for g in s.guarantees}
            _grouped_bars(ax, [CLIENTS[c].label for c in clients], series)
            ax.set_ylabel(ylabel, fontsize=8)
            ax.set_title(s.short + f", {s.transaction_records:,} records per transaction",
                         fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _micro_encoding(micro: dict[str, Any] | None, path: Path) -> str | None:
    if not micro:
        return None
    table = micro["tables"].get("RecordBatch v2, 64 KiB of 100-byte values, keys str(i % 1000)")
    if not table:
        return None
    rows: dict[str, dict[str, float]] = table["rows"]
    sizes = list(dict.fromkeys(s for r in rows.values() for s in r))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(len(sizes))
    width = 0.8 / len(rows)
    for i, (impl, by_size) in enumerate(rows.items()):
        ax.bar(x + (i - (len(rows) - 1) / 2) * width,
               [by_size.get(s, np.nan) / 1e6 for s in sizes], width, label=impl)
    ax.set_xticks(x, [f"compression {s}" for s in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("million records/s (append + build)")
    ax.set_title("Encoding a 64 KiB RecordBatch of 100-byte records")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _curves(found: Sequence[Curve], path: Path) -> str | None:
    """One column per curve: CPU per record on top, records/s (MB/s for sizes) below, a line
    per client with its min-max band, log scales."""
    if not found:
        return None
    fig, axes = plt.subplots(2, len(found), squeeze=False, figsize=(4.2 * len(found), 7.5))
    for column, curve in enumerate(found):
        xs = [x for x, _ in curve.points]
        sizes = curve.kind.name in ("size", "brokers")
        clients = [c for c in CLIENTS if any(c in f.clients for _, f in curve.points)]
        panels: list[tuple[Callable[[ClientFigures], Stat | None], str]] = [
            (lambda cf: cf.cpu_us_per_record, "client CPU µs per record"),
            ((lambda cf: cf.mb_per_s), "MB/s") if sizes
            else ((lambda cf: cf.records_per_s), "records/s")]
        for row, (metric, label) in enumerate(panels):
            ax = axes[row, column]
            for c in clients:
                stats = [metric(f.clients[c]) if c in f.clients else None
                         for _, f in curve.points]
                med = np.array([s.median if s else np.nan for s in stats])
                ax.plot(xs, med, marker="o", label=CLIENTS[c].label, color=_COLOURS.get(c))
                ax.fill_between(xs, [s.min if s else np.nan for s in stats],
                                [s.max if s else np.nan for s in stats], alpha=0.15,
                                color=_COLOURS.get(c))
            if len(xs) > 1 and max(xs) / max(1, min(xs)) > 8:
                ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(curve.kind.x_label)
            ax.set_ylabel(label)
            ax.grid(which="both", alpha=0.3)
            if row == 0:
                ax.set_title(curve.kind.name, fontsize=10)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Scaling curves: idempotent, acks=all, every run read back (log scales)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def draw_all(figures: Sequence[ScenarioFigures], micro: dict[str, Any] | None,
             out_dir: Path) -> list[str]:
    throughput = [f for f in figures if f.scenario.kind == "throughput"]
    memory = [f for f in figures if f.scenario.kind == "memory"]
    drawn = [
        _per_scenario(throughput, lambda c: c.records_per_s, "records/s (log)",
                      "End-to-end throughput by client and scenario", out_dir / "throughput.png"),
        _per_scenario(throughput, lambda c: c.cpu_us_per_record,
                      "client CPU µs per record (log)", "Client CPU per record (lower is better)",
                      out_dir / "cpu_per_record.png"),
        _latency([f for f in figures if f.scenario.kind == "latency"], out_dir / "latency.png"),
        _per_scenario(memory, lambda c: c.rss_peak_mib, "peak RSS, MiB (log)",
                      "Peak RSS while producing", out_dir / "memory.png"),
        _eos([f for f in figures if f.scenario.kind == "eos"], out_dir / "exactly_once.png"),
        _curves(curves(figures), out_dir / "scaling.png"),
        _micro_encoding(micro, out_dir / "micro_encoding.png"),
    ]
    return [name for name in drawn if name]
