"""``kengine topics create|describe|list``: the topic side of ``kafka-topics``, through
kengine's admin client (CreateTopics and Metadata), so a quick start needs no Java tool.

    kengine topics create --bootstrap-server 127.0.0.1:9092 --topic events --partitions 6
    kengine topics describe --bootstrap-server 127.0.0.1:9092 --topic events
    kengine topics list --bootstrap-server 127.0.0.1:9092

Output lines are kafka-topics'; ``describe`` leaves out the topic's configs and ELR columns
(they need DescribeConfigs and DescribeTopicPartitions, which kengine does not speak).
"""
from __future__ import annotations

import argparse
from typing import Any

from ..admin import AdminClient, TopicDescription, format_topic_id
from ..errors import TopicAlreadyExistsError
from .properties import load_properties, parse_assignments

__all__ = ["add_parser", "describe_lines", "run"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("topics", help="create, describe and list topics (kafka-topics)",
                       description="Create, describe and list topics.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> argparse.ArgumentParser:
        q.add_argument("--bootstrap-server", required=True, metavar="HOST:PORT[,...]",
                       help="REQUIRED: the server(s) to connect to")
        q.add_argument("--command-config", metavar="FILE",
                       help="admin client settings file (Java .properties format)")
        q.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                       help="how long to wait for the brokers (default: 60)")
        q.set_defaults(run=run)
        return q

    create = common(actions.add_parser("create", help="create a topic"))
    create.add_argument("--topic", required=True)
    create.add_argument("--partitions", type=int, default=-1,
                        help="partition count (default: the broker's num.partitions)")
    create.add_argument("--replication-factor", type=int, default=-1,
                        help="replicas per partition (default: the broker's "
                             "default.replication.factor)")
    create.add_argument("--config", action="append", default=[], metavar="NAME=VALUE",
                        help="a topic setting (repeatable), e.g. cleanup.policy=compact")
    create.add_argument("--if-not-exists", action="store_true",
                        help="succeed without doing anything if the topic exists")
    describe = common(actions.add_parser("describe", help="show partitions, leaders, replicas"))
    describe.add_argument("--topic", action="append", default=[],
                          help="a topic to describe (repeatable; default: every topic)")
    describe.add_argument("--exclude-internal", action="store_true",
                          help="leave out internal topics (__consumer_offsets...)")
    listing = common(actions.add_parser("list", help="list topic names"))
    listing.add_argument("--exclude-internal", action="store_true",
                         help="leave out internal topics (__consumer_offsets...)")


def run(args: argparse.Namespace) -> int:
    settings: dict[str, Any] = {}
    if args.command_config:
        settings.update(load_properties(args.command_config))
    settings["bootstrap.servers"] = args.bootstrap_server
    with AdminClient(settings) as admin:
        if args.action == "create":
            config = parse_assignments(args.config, "--config")
            try:
                admin.create_topic(args.topic, args.partitions, args.replication_factor, config,
                                   timeout=args.timeout)
            except TopicAlreadyExistsError:
                if not args.if_not_exists:
                    raise
                return 0
            print(f"Created topic {args.topic}.")
        elif args.action == "describe":
            topics = admin.describe_topics(args.topic or None, timeout=args.timeout)
            for name in sorted(topics):
                if args.exclude_internal and topics[name].is_internal:
                    continue
                print("\n".join(describe_lines(topics[name])))
        else:
            for name in admin.list_topics(include_internal=not args.exclude_internal,
                                          timeout=args.timeout):
                print(name)
    return 0


def describe_lines(topic: TopicDescription) -> list[str]:
    """kafka-topics --describe lines for one topic."""
    header = (f"Topic: {topic.name}\tTopicId: {format_topic_id(topic.topic_id)}\t"
              f"PartitionCount: {len(topic.partitions)}\t"
              f"ReplicationFactor: {topic.replication_factor}")
    lines = [header]
    for p in topic.partitions:
        line = (f"\tTopic: {topic.name}\tPartition: {p.partition}\t"
                f"Leader: {p.leader if p.leader >= 0 else 'none'}\t"
                f"Replicas: {','.join(map(str, p.replicas))}\tIsr: {','.join(map(str, p.isr))}")
        if p.offline_replicas:
            line += f"\tOffline: {','.join(map(str, p.offline_replicas))}"
        lines.append(line)
    return lines
