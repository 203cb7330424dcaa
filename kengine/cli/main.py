"""``kengine COMMAND ...``: the entry point of the command line.

    produce      lines of stdin to a topic (kafka-console-producer)
    perf         throughput and latency test (kafka-producer-perf-test)
    topics       create, describe, list topics (kafka-topics)
    local-kafka  start, stop, inspect a local Kafka cluster

Exit status: 0 on success, 1 when the command failed (a Kafka or I/O error, a record not
delivered), 2 for bad usage, 130 when interrupted. Log lines (``--log-level``, default
WARNING) go to stderr.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from ..errors import KafkaError
from ..failure_log import FAILURES_LOGGER
from . import UsageError, local_kafka, perf, produce, topics

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    from ..version import __version__

    parser = argparse.ArgumentParser(
        prog="kengine", description="kengine: a Kafka producer engine for Python, and the "
                                    "tools Kafka users know.")
    parser.add_argument("--version", action="version", version=f"kengine {__version__}")
    parser.add_argument("--log-level", default="WARNING",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="level of the kengine.* log lines on stderr (default: WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in (produce, perf, topics, local_kafka):
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    where = f"kengine {args.command}"
    if extra and not getattr(args, "takes_extra_arguments", False):
        # argparse would say "kengine: error:"; the sub-command is what was mistyped
        print(f"{where}: error: unrecognized arguments: {' '.join(extra)} "
              f"(kengine {args.command} --help lists the options)", file=sys.stderr)
        return 2
    args.extra_arguments = extra
    # every line on stderr says which command wrote it, log lines included
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format=f"{where}: %(asctime)s %(levelname)s %(name)s: %(message)s")
    failures_log = logging.getLogger(FAILURES_LOGGER)
    failures_level = failures_log.level
    if getattr(args, "reports_failures", False) and args.log_level == "WARNING":
        # the command reports each failed record itself: the producer's own summary of
        # failed batches would say it twice (--log-level INFO or DEBUG keeps it)
        failures_log.setLevel(logging.ERROR)
    try:
        return _run(args, where)
    finally:
        failures_log.setLevel(failures_level)     # main() may run inside a program


def _run(args: argparse.Namespace, where: str) -> int:
    try:
        return int(args.run(args))
    except UsageError as e:
        print(f"{where}: {e}", file=sys.stderr)
        return 2
    except KafkaError as e:
        print(f"{where}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            # the reader went away (| head): not an error of ours; keep Python from
            # complaining again when it flushes stdout at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        print(f"{where}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
