"""Micro-benchmarks (pytest-benchmark). Run from the project root:

    python -m pytest benchmarks/micro -p no:cacheprovider --benchmark-only

They are not part of ``tests/`` (pyproject's testpaths). Files are named ``bench_*.py`` and
collected by the hook below. Each benchmark reports its work per call through ``record``, and
the terminal summary prints throughputs and the ratios between implementations measured in the
same run.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

# group -> implementation label -> size label -> units per second, filled by `record`
_RESULTS: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
_UNITS: dict[str, str] = {}  # group -> unit of work ("bytes", "keys")
_BASELINES: dict[str, str] = {}  # group -> the implementation the others are compared with


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # a file named on the command line is collected by pytest itself: not a second time here
    if parent.session.isinitpath(file_path):
        return None
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


class Recorder:
    """Turns a finished benchmark's median time into a throughput for the summary."""

    def __init__(self, benchmark: Any) -> None:
        self._benchmark = benchmark

    def __call__(self, group: str, impl: str, size: str, work: float, unit: str,
                 baseline: bool = False) -> None:
        """``work`` is how many ``unit``s (bytes, keys) one benchmarked call processes;
        ``baseline`` marks the implementation the summary compares the others with."""
        stats = self._benchmark.stats
        if stats is None:  # --benchmark-disable: the function ran once, untimed
            return
        per_second = work / stats.stats.median
        # what `python -m benchmarks` reads back from --benchmark-json to build its tables
        self._benchmark.extra_info.update({
            f"{unit}/s": per_second, "table": group, "implementation": impl, "size": size,
            "work": work, "unit": unit, "baseline": baseline})
        _RESULTS[group][impl][size] = per_second
        _UNITS[group] = unit
        if baseline:
            _BASELINES[group] = impl


@pytest.fixture
def record(benchmark: Any) -> Recorder:
    return Recorder(benchmark)


def _format(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e9:8.2f} GB/s"
    return f"{value / 1e6:8.2f} M{unit}/s"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    tr = terminalreporter
    tr.section("throughput (median of each benchmark)")
    for group, impls in _RESULTS.items():
        unit = _UNITS[group]
        sizes = list(dict.fromkeys(s for by_size in impls.values() for s in by_size))
        width = max(len(impl) for impl in impls) + 2
        tr.write_line(f"{group}:")
        cell = max(16, *(len(s) + 2 for s in sizes))
        tr.write_line(" " * (width + 2) + "".join(f"{s:>{cell}}" for s in sizes))
        for impl, by_size in impls.items():
            cells = "".join(f"{_format(by_size[s], unit):>{cell}}" if s in by_size
                            else " " * cell for s in sizes)
            tr.write_line(f"  {impl:<{width}}{cells}")
        base = _BASELINES.get(group)
        if base is None:
            continue
        tr.write_line(f"  speed relative to {base}:")
        for impl, by_size in impls.items():
            if impl == base:
                continue
            ratios = [f"{s}: {by_size[s] / impls[base][s]:.2f}x" for s in sizes
                      if s in by_size and s in impls[base]]
            if ratios:
                tr.write_line(f"    {impl:<{width}}" + ", ".join(ratios))
