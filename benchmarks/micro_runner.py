"""Runs the pytest-benchmark suite in ``benchmarks/micro`` and reads its JSON back as tables.

Benchmarks that call the ``record`` fixture (see micro/conftest.py) become rows of throughput
tables (``tables``: table -> implementation -> size -> units per second); the others (the
protocol codec) are listed by their median time per call (``timings``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["run_micro"]

ROOT = Path(__file__).resolve().parents[1]


def run_micro(out_dir: Path, pytest_args: Sequence[str], log_file: Path) -> dict[str, Any]:
    """Runs the micro-benchmarks; raises RuntimeError (with pytest's output) if any fails."""
    json_path = out_dir / "micro.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "benchmarks/micro", "-p", "no:cacheprovider",
               "-q", "--benchmark-only", f"--benchmark-json={json_path}",
               "--benchmark-columns=median,rounds", *pytest_args]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    log_file.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"the micro-benchmarks failed (exit {proc.returncode}); see {log_file}:"
                           f"\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    data = json.loads(json_path.read_text())
    # pytest-benchmark stores every timing of every round: tens of MB that nothing reads
    for bench in data["benchmarks"]:
        bench["stats"].pop("data", None)
    json_path.write_text(json.dumps(data, indent=1) + "\n")
    micro = parse(data)
    micro["duration_s"] = time.monotonic() - started
    micro["json"] = json_path.name
    return micro


def parse(data: dict[str, Any]) -> dict[str, Any]:
    tables: dict[str, dict[str, Any]] = {}
    timings: dict[str, dict[str, float]] = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info", {})
        median_s = bench["stats"]["median"]
        if "table" in info:
            table = tables.setdefault(info["table"], {"unit": info["unit"], "baseline": None,
                                                      "rows": {}, "extra": {}})
            table["rows"].setdefault(info["implementation"], {})[info["size"]] = \
                info["work"] / median_s
            if info.get("baseline"):
                table["baseline"] = info["implementation"]
            extra = {k: v for k, v in info.items()
                     if k not in ("table", "implementation", "size", "work", "unit", "baseline")
                     and not k.endswith("/s")}
            if extra:
                table["extra"].setdefault(info["implementation"], {})[info["size"]] = extra
        else:
            timings.setdefault(bench["group"] or "", {})[bench["name"]] = median_s
    return {"tables": tables, "timings": timings,
            "machine": data.get("machine_info", {}).get("cpu", {}).get("brand_raw", "")}
