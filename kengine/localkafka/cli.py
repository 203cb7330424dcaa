"""Command line for local Kafka clusters: ``python -m kengine.localkafka`` (and, later,
``kengine local-kafka``).

    fetch [--kafka-version V] resolve the Kafka jars (Maven, once per version), print where
    fetch --toxiproxy         build the Toxiproxy server (go install, once) for fault tests
    start [-n 3] [-c k=v]...  start a detached cluster, print its bootstrap servers; a cluster
                              stopped in the same workdir comes back as it was (same ports,
                              same data) unless --fresh
    status                    print each node's address, pid and state (exit 3 if not running)
    logs [--node N]           print the tail of the node logs
    stop                      stop the cluster (SIGTERM, then SIGKILL after --timeout)

A detached cluster lives in ``--workdir`` (default ``~/.cache/kengine/local-kafka``, or
``$KENGINE_LOCAL_KAFKA_DIR``); ``status``/``logs``/``stop`` find it through the state file there.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .distribution import KAFKA_VERSION, MATRIX, default_home, ensure_kafka
from .errors import LocalKafkaError
from .launcher import KafkaCluster
from .toxiproxy import TOXIPROXY_VERSION, ensure_toxiproxy

__all__ = ["build_parser", "default_workdir", "main"]

# exit status of `status` when the cluster is not (fully) running, as LSB init scripts do
_EXIT_NOT_RUNNING = 3


def default_workdir() -> Path:
    env = os.environ.get("KENGINE_LOCAL_KAFKA_DIR")
    return Path(env).expanduser() if env else default_home().parent / "local-kafka"


def build_parser(prog: str = "python -m kengine.localkafka") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Real Apache Kafka on 127.0.0.1.")
    sub = parser.add_subparsers(dest="command", required=True)

    fetch = sub.add_parser("fetch", help="resolve the Kafka jars with Maven (once)")
    fetch.add_argument("--home", type=Path, default=None,
                       help="jar cache (default $KENGINE_KAFKA_HOME or ~/.cache/kengine/kafka-<v>)")
    fetch.add_argument("--force", action="store_true", help="resolve again even if cached")
    fetch.add_argument("--toxiproxy", action="store_true",
                       help=f"build the Toxiproxy server {TOXIPROXY_VERSION} (go install, once) "
                            "instead of resolving jars")
    fetch.add_argument("--kafka-version", action="append", default=None, metavar="V",
                       help=f"Kafka version (default {KAFKA_VERSION}; 'matrix': every tested "
                            f"one: {', '.join(MATRIX)}); repeatable")

    def with_workdir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--workdir", type=Path, default=None,
                       help=f"cluster directory (default {default_workdir()})")
        return p

    start = with_workdir(sub.add_parser("start", help="start a detached cluster"))
    start.add_argument("-n", "--brokers", type=int, default=None,
                       help="number of nodes (default 1)")
    start.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE",
                       help="broker setting, repeatable (e.g. -c num.partitions=3)")
    start.add_argument("--jvm-opt", action="append", default=[], metavar="OPT",
                       help="extra JVM option, repeatable (e.g. --jvm-opt=-Xmx2g)")
    start.add_argument("--kafka-version", default=None, metavar="V",
                       help=f"Kafka version of a new cluster (default {KAFKA_VERSION}; "
                            f"tested: {', '.join(MATRIX)})")
    start.add_argument("--fresh", action="store_true",
                       help="start a new, empty cluster even if one was stopped in the "
                            "workdir (its data is deleted)")

    with_workdir(sub.add_parser("status", help="show the cluster's nodes"))
    logs = with_workdir(sub.add_parser("logs", help="print the tail of the node logs"))
    logs.add_argument("--node", type=int, default=None)
    logs.add_argument("--tail", type=int, default=200)
    stop = with_workdir(sub.add_parser("stop", help="stop the cluster"))
    stop.add_argument("--timeout", type=float, default=60.0,
                      help="seconds to wait for a graceful shutdown before SIGKILL")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "python -m kengine.localkafka") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return _run(args)
    except LocalKafkaError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:
        if isinstance(e.code, str):     # a usage mistake found after parsing
            print(f"{prog}: error: {e.code}", file=sys.stderr)
            return 2
        raise


def _stopped_cluster(workdir: Path) -> KafkaCluster | None:
    """The cluster whose state file is in ``workdir``, if every node of it is stopped; raises
    when it is still running (stop it first), None when there is none."""
    if not (workdir / "cluster.json").exists():
        return None
    cluster = KafkaCluster.attach(workdir)
    if cluster.status().any_alive:
        raise LocalKafkaError(f"a Kafka cluster is already running in {workdir} "
                              f"({cluster.bootstrap_servers}): stop it first")
    return cluster


def _run(args: argparse.Namespace) -> int:
    if args.command == "fetch" and args.toxiproxy:
        print(f"Toxiproxy {TOXIPROXY_VERSION} server: {ensure_toxiproxy(force=args.force)}")
        return 0
    if args.command == "fetch":
        versions = args.kafka_version or [None]
        if "matrix" in versions:
            versions = list(MATRIX)
        if args.home is not None and len(versions) > 1:
            raise SystemExit("--home takes one --kafka-version")
        for version in versions:
            dist = ensure_kafka(args.home, force=args.force, version=version)
            print(f"Kafka {dist.version} jars in {dist.libs} (java: {dist.java})")
        return 0
    workdir = (args.workdir or default_workdir()).expanduser().resolve()
    if args.command == "start":
        config = {}
        for item in args.config:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SystemExit(f"--config {item!r}: expected KEY=VALUE")
            config[key.strip()] = value.strip()
        previous = _stopped_cluster(workdir)
        if previous is not None and not args.fresh:
            asked = [name for name, given in (("--brokers", args.brokers not in
                                               (None, len(previous.nodes))),
                                              ("--config", args.config),
                                              ("--jvm-opt", args.jvm_opt),
                                              ("--kafka-version", args.kafka_version not in
                                               (None, previous.kafka.version)))
                     if given]
            if asked:
                raise SystemExit(f"{' and '.join(asked)} apply to a new cluster, but the one "
                                 f"stopped in {workdir} would be brought back as it was: add "
                                 "--fresh to replace it (its data is deleted)")
            cluster = KafkaCluster.reopen(workdir)
            how = "brought back (same ports and data; --fresh for a new one)"
        else:
            if previous is not None:
                KafkaCluster.cleanup_stale(workdir)
            cluster = KafkaCluster(args.brokers or 1, workdir, broker_config=config,
                                   jvm_opts=args.jvm_opt, detach=True,
                                   kafka_version=args.kafka_version)
            how = "up"
        print(cluster.bootstrap_servers)
        print(f"Kafka {cluster.kafka.version}: {len(cluster.nodes)} node(s) {how} in "
              f"{cluster.startup_seconds:.1f} s; logs in {workdir}/node-*/logs; "
              f"stop with: python -m kengine.localkafka stop --workdir {workdir}", file=sys.stderr)
        return 0
    if args.command == "stop":
        if (workdir / "cluster.json").exists():
            KafkaCluster.attach(workdir).stop(timeout=args.timeout)
        stray = KafkaCluster.cleanup_stale(workdir)
        print(f"stopped the cluster in {workdir}"
              + (f" (killed stray pids {stray})" if stray else ""))
        return 0
    cluster = KafkaCluster.attach(workdir)
    if args.command == "logs":
        print(cluster.logs(args.node, args.tail))
        return 0
    status = cluster.status()
    print(f"bootstrap {status.bootstrap_servers}  ({workdir})")
    for node in status.nodes:
        print(f"  node {node.node_id}  {node.address}  pid {node.pid or '-'}  {node.state}")
    return 0 if status.all_running else _EXIT_NOT_RUNNING
