"""Runs one Python client in this process: ``python -m benchmarks.worker SPEC.json``.

Reads a :class:`~benchmarks.spec.RunSpec`, runs the client's driver and writes the
:class:`~benchmarks.spec.RunResult` to ``spec.result_path``. The process does nothing else, so
its CPU time is the client's.
"""
from __future__ import annotations

import importlib
import logging
import sys
from pathlib import Path

from benchmarks.clients import CLIENTS
from benchmarks.spec import RunSpec


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m benchmarks.worker SPEC.json", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = RunSpec.from_json(Path(argv[0]).read_text())
    client = CLIENTS[spec.client]
    if client.driver is None:
        print(f"{spec.client} does not run in a Python worker", file=sys.stderr)
        return 2
    driver = importlib.import_module(f"benchmarks.drivers.{client.driver}")
    run = getattr(driver, spec.mode)
    run(spec).write(spec.result_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
