"""``python -m tests.support.atheris_runner <target> [libFuzzer flags] [corpus dirs]``: one
target of tests/support/fuzz_targets.py under atheris, with coverage feedback from kengine's
Python modules (the compiled core is not instrumented: its decoders are explored by mutation
from the seeds only)."""
from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["kengine"]):
    from tests.support.fuzz_targets import TARGETS


def main(argv: list[str]) -> None:
    target = TARGETS[argv[1]]
    logging.disable(logging.CRITICAL)   # closed connections are expected, by the thousand
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
