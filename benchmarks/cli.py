"""``python -m benchmarks``: the whole benchmark report in one command (see README.md)."""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.plan import PLANS, Plan
from benchmarks.runs import Run

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("micro", "throughput", "latency", "memory", "eos", "partitions", "scaling")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks kengine against confluent-kafka, aiokafka, kafka-python and "
                    "Kafka's Java producer on local Kafka brokers, and writes results.json, "
                    "report.md and PNG charts.")
    p.add_argument("--quick", action="store_true",
                   help="the short plan: fewer scenarios, records and rounds (about 50 "
                   "minutes on two cores: 10 of them the partitions phase, 26 the scaling "
                   "curves; --only picks phases)")
    p.add_argument("--only", default=",".join(PHASES),
                   help=f"comma-separated phases to run, of {', '.join(PHASES)} (default: all)")
    p.add_argument("--scenarios", default="",
                   help="comma-separated parts of scenario ids: run only the scenarios of the "
                        "chosen phases whose id contains one (e.g. single-5000p); the "
                        "results then hold those alone")
    p.add_argument("--out", type=Path, default=None,
                   help="results directory (default: benchmarks/results, or "
                        "benchmarks/results/quick with --quick)")
    p.add_argument("--keep-workdir", action="store_true",
                   help="keep every run's spec, result and log (kept anyway when a run fails)")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild report.md and the charts from OUT/results.json, run nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    out: Path = args.out or ROOT / "benchmarks" / "results" / ("quick" if args.quick else "")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return _write_outputs(out, json.loads((out / "results.json").read_text()))
    phases = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        print(f"--only: unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}",
              file=sys.stderr)
        return 2
    wanted = [w.strip() for w in args.scenarios.split(",") if w.strip()]
    if wanted:
        plan = dataclasses.replace(plan, scenarios=tuple(
            s for s in plan.scenarios if any(w in s.id for w in wanted)))
        if not any(s.kind in phases for s in plan.scenarios):
            print(f"--scenarios: no scenario of the phases {', '.join(phases)} has an id "
                  f"containing {' or '.join(wanted)}", file=sys.stderr)
            return 2
    _check_extension()
    return _run(plan, phases, out, args.keep_workdir, argv)


def _check_extension() -> None:
    try:
        import kengine_ext  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"kengine_ext is not built ({e}): run `python setup.py build_ext "
                         "--inplace` in the project root first") from e


def _run(plan: Plan, phases: list[str], out: Path, keep: bool, argv: list[str] | None) -> int:
    from benchmarks.micro_runner import run_micro
    from benchmarks.runner import Runner

    started = time.monotonic()
    meta = _meta(plan, argv)
    workdir = Path(tempfile.mkdtemp(prefix="kengine-bench-"))
    print(f"kengine benchmarks, {plan.name} plan: {', '.join(phases)}; scratch files in "
          f"{workdir}", flush=True)
    micro = None
    if "micro" in phases:
        print("== micro-benchmarks (pytest-benchmark)", flush=True)
        micro = run_micro(out, plan.micro_args, workdir / "micro.log")
        print(f"   {len(micro['tables'])} tables in {micro['duration_s']:.0f} s", flush=True)
    e2e_plan = dataclasses.replace(
        plan, scenarios=tuple(s for s in plan.scenarios if s.kind in phases))
    runs: list[Run] = []
    if e2e_plan.scenarios:
        runs = Runner(e2e_plan, workdir, log=lambda line: print(line, flush=True)).run()
    meta["finished"] = _now()
    meta["duration_s"] = time.monotonic() - started
    meta["machine"]["load_after"] = _load()
    results = {"meta": meta,
               "scenarios": [dataclasses.asdict(s) for s in e2e_plan.scenarios],
               "runs": [r.to_dict() for r in runs], "micro": micro}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    rc = _write_outputs(out, results)
    failed = [r for r in runs if not r.ok]
    if failed or keep:
        print(f"run logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"done in {meta['duration_s'] / 60:.1f} min: {out / 'report.md'}")
    return rc if not failed else 1


def _write_outputs(out: Path, results: dict[str, Any]) -> int:
    from benchmarks.charts import draw_all
    from benchmarks.curves import scaling_targets
    from benchmarks.plan import Scenario
    from benchmarks.report import render
    from benchmarks.spec import ProducerSettings
    from benchmarks.summary import e2e_targets, micro_targets, summarise

    scenarios = [Scenario(**{**s, "clients": tuple(s["clients"]),
                             "guarantees": tuple(s.get("guarantees", ())),
                             "settings": ProducerSettings(**s["settings"])})
                 for s in results["scenarios"]]
    runs = [Run.from_dict(r) for r in results["runs"]]
    figures = summarise(scenarios, runs)
    micro = results.get("micro")
    targets = (micro_targets(micro) if micro else []) + e2e_targets(figures) + \
        scaling_targets(figures)
    charts = draw_all(figures, micro, out)
    failed = [f"{r.scenario} / {r.client} / round {r.round + 1}: {r.error} (log: {r.log_file})"
              for r in runs if not r.ok]
    (out / "report.md").write_text(render(results["meta"], figures, targets, micro, failed,
                                          charts))
    for t in targets:
        print(f"{t.verdict:5} issue {t.issue}: {t.what}: {t.measured} (goal {t.goal})")
    return 0


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _java_version() -> str:
    from kengine.localkafka.distribution import find_java

    out = subprocess.run([find_java(), "-version"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).splitlines()[0].strip() if (out.stderr or out.stdout) \
        else "java (version unknown)"


def _meta(plan: Plan, argv: list[str] | None) -> dict[str, Any]:
    import confluent_kafka

    import kengine
    from benchmarks.spec import ProducerSettings
    from kengine.localkafka import KAFKA_VERSION

    commit = _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " + uncommitted changes"
    return {
        "plan": plan.name,
        "rounds": plan.rounds,
        "memory_rounds": plan.memory_rounds,
        "started": _now(),
        "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
        "commit": commit,
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "load_before": _load(),
                    "kernel": platform.release()},
        "settings": dataclasses.asdict(ProducerSettings()),
        "versions": {
            "kengine": kengine.__version__,
            "kafka": KAFKA_VERSION,
            "confluent-kafka": importlib.metadata.version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0],
            "aiokafka": importlib.metadata.version("aiokafka"),
            "kafka-python": importlib.metadata.version("kafka-python"),
            "python": platform.python_version(),
            "java": _java_version(),
        },
    }
