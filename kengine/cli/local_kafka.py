"""``kengine local-kafka start|stop|status|logs|fetch``: real Apache Kafka on 127.0.0.1, the
command line of :mod:`kengine.localkafka` (also ``python -m kengine.localkafka``) under the
``kengine`` command.

    kengine local-kafka start            # prints the bootstrap servers; the cluster is detached
    kengine local-kafka status
    kengine local-kafka stop
"""
from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]

_PROG = "kengine local-kafka"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Everything after "local-kafka" (--help included) is left unparsed here and goes to the
    # launcher's own parser (see main.main).
    p = sub.add_parser("local-kafka", add_help=False,
                       help="start, stop, inspect a local Kafka cluster (start|stop|status|logs)",
                       description="Real Apache Kafka on 127.0.0.1.")
    p.set_defaults(run=run, takes_extra_arguments=True)


def run(args: argparse.Namespace) -> int:
    from ..localkafka.cli import main

    return main(args.extra_arguments, prog=_PROG)
