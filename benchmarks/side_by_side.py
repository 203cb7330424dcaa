"""Two kengine trees measured side by side in one run: did a change make the core slower?

    python -m benchmarks.side_by_side --before /tmp/base --after . --rounds 5

Each tree must have its extension built in place (``python setup.py -q build_ext --inplace``
there). Every round runs :mod:`benchmarks.tree_probe` once per tree, each in a fresh process
with that tree first on ``sys.path``, alternating which tree goes first (ABBA...), so drift of
this shared machine falls on both alike: the micro-benchmarks (append+build, ``send()`` and
``send_many()`` ns per record into the core without brokers), then the end-to-end CPU per
record against one local broker (a fresh 6-partition topic per run, read back with
confluent-kafka and counted, then deleted). Prints the median of each figure per tree and the
ratio after/before; exits 1 when a run fails its read-back, never on a figure.

CPU time on a shared machine moves by tens of percent from one run to the next; ``--callgrind``
also counts the instructions of each micro-benchmark under valgrind's callgrind, which do not
depend on the load: for each tree, 20,000 and 220,000 records, with ``PYTHONHASHSEED=0`` (dict
probing depends on the hash seed), per record = the difference / 200,000; both the whole
process and the compiled core's own functions (``__pyx``/``__Pyx`` symbols and kengine_ext's C
files, without the CPython API they call).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

PROBE = Path(__file__).resolve().parent / "tree_probe.py"
FIGURES = [("append_build_ns", "append() + build(), ns/record"),
           ("send_ns", "send() into the core, ns/record"),
           ("send_many_ns", "send_many() into the core, ns/record"),
           ("send_cpu_us", "end to end send(), CPU µs/record"),
           ("send_many_cpu_us", "end to end send_many(), CPU µs/record")]


def _probe(tree: Path, *args: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, str(PROBE), *args], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"probe {args} in {tree} failed:\n{proc.stdout}{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    where = Path(str(result.pop("kengine_ext"))).resolve()
    if tree.resolve() not in where.parents:
        raise RuntimeError(f"probe in {tree} imported kengine_ext from {where}")
    return result


def _instructions(tree: Path, kind: str, n: int) -> tuple[int, int]:
    """(whole process, compiled core) instructions of ``n`` records under callgrind."""
    out = Path(tempfile.mkdtemp()) / "callgrind.out"
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONHASHSEED="0", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           sys.executable, str(PROBE), "work", kind, str(n)], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind of {kind} in {tree} failed:\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if tree.resolve() not in Path(result["kengine_ext"]).resolve().parents:
        raise RuntimeError(f"probe in {tree} imported {result['kengine_ext']}")
    report = subprocess.run(["callgrind_annotate", "--auto=no", "--threshold=100", str(out)],
                            capture_output=True, text=True, check=True).stdout
    shutil.rmtree(out.parent)
    total = core = 0
    for line in report.splitlines():
        fields = line.split()
        if not fields or not fields[0].replace(",", "").isdigit():
            continue
        count = int(fields[0].replace(",", ""))
        if "PROGRAM TOTALS" in line:
            total = count
        elif "__pyx_" in line or "__Pyx" in line or "kengine_ext/" in line:
            core += count
    return total, core


def _callgrind(trees: dict[str, Path]) -> None:
    small, large = 20_000, 220_000
    print("\ninstructions per record (callgrind, PYTHONHASHSEED=0)")
    print("| micro-benchmark | before: process / core | after: process / core "
          "| core after/before |")
    print("|---|---:|---:|---:|")
    for kind in ("append", "send", "send_many"):
        per = {}
        for name, tree in trees.items():
            t1, c1 = _instructions(tree, kind, small)
            t2, c2 = _instructions(tree, kind, large)
            per[name] = ((t2 - t1) / (large - small), (c2 - c1) / (large - small))
        b, a = per["before"], per["after"]
        print(f"| {kind} | {b[0]:.0f} / {b[1]:.0f} | {a[0]:.0f} / {a[1]:.0f} | "
              f"{a[1] / b[1]:.3f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-e2e", action="store_true", help="micro-benchmarks only")
    ap.add_argument("--callgrind", action="store_true",
                    help="also count the micro-benchmarks' instructions with valgrind")
    args = ap.parse_args(argv)
    trees = {"before": args.before, "after": args.after}
    if args.callgrind:
        _callgrind(trees)
    if args.rounds == 0:
        return 0
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    cluster = None
    if not args.no_e2e:
        from kengine.localkafka import KafkaCluster
        from tests.support.readback import count
        cluster = KafkaCluster(1)
    try:
        for r in range(args.rounds):
            order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
            for name in order:
                result = _probe(trees[name], "micro")
                if cluster is not None:
                    topic = cluster.create_topic(f"side-{uuid.uuid4().hex[:8]}", 6)
                    try:
                        e2e = _probe(trees[name], "e2e", cluster.bootstrap_servers, topic)
                        got = count(cluster.bootstrap_servers, topic)
                        if got != e2e["records"]:
                            raise RuntimeError(f"{name} round {r}: read back {got} records, "
                                               f"sent {e2e['records']:.0f}")
                        result.update(e2e, read_back=got)
                    finally:
                        cluster.delete_topic(topic)
                runs[name].append(result)
                print(f"round {r} {name}: " + ", ".join(
                    f"{k}={v:.4g}" for k, v in result.items()), flush=True)
    finally:
        if cluster is not None:
            cluster.close()
    print(f"\nmedians of {args.rounds} rounds (before = {args.before}, after = {args.after})")
    print("| figure | before | after | after/before |\n|---|---:|---:|---:|")
    for key, label in FIGURES:
        if key not in runs["before"][0]:
            continue
        b = statistics.median(x[key] for x in runs["before"])
        a = statistics.median(x[key] for x in runs["after"])
        print(f"| {label} | {b:.4g} | {a:.4g} | {a / b:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
