"""``kengine produce``: Kafka's console producer (``kafka-console-producer``), same flags.

Reads records from stdin, one per line, parsed as Kafka's LineMessageReader does (see
:mod:`kengine.cli.line_reader`), and sends them to ``--topic`` (``--input FILE`` sends the rows
of a Parquet, Arrow IPC, JSON lines or CSV file instead: :mod:`kengine.cli.produce_file`):

    kengine produce --bootstrap-server 127.0.0.1:9092 --topic events \\
        --reader-property parse.key=true --reader-property key.separator=:

Differences from the Java tool, all in the direction of not losing data silently:

* the exit status is 1 when any record failed (Java logs delivery failures and exits 0) or a
  line could not be parsed; a bad line stops the run, as in Java, unless ``--skip-bad-lines``,
  and either way it is reported with its line number; so are failed deliveries;
* ``compression.type`` from ``--command-property``/``--command-config`` is kept unless
  ``--compression-codec`` is given (Java overwrites it with ``none``);
* a progress line is drawn on stderr for long inputs when stderr is a terminal and stdin is
  not (typing at a terminal shows Java's ``>`` prompt instead, on stderr);
* without ``--bootstrap-server``, ``bootstrap.servers`` comes from ``--command-config`` or
  ``--command-property`` (Java requires the flag).

Kafka 4.4's names and the older ones (``--producer-property``, ``--producer.config``,
``--property``) are both taken, with Java's warning for the older ones; both names of one
option together are refused, in Java's words.
"""
from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from functools import partial
from typing import IO, Any

from ..errors import (
    InvalidPartitionError,
    KafkaError,
    RecordTooLargeError,
    SerializationError,
)
from . import UsageError
from .line_reader import LineFormatError, LineReader
from .produce_file import add_arguments as add_file_arguments
from .produce_file import apply_file_defaults
from .produce_file import run as run_file
from .properties import load_properties, parse_assignments, producer_settings
from .schema_formats import add_arguments as add_schema_arguments
from .schema_formats import decode_json, serializers
from .status_line import StatusLine

__all__ = ["add_parser", "producer_config", "run"]

_MAX_REPORTED_FAILURES = 100
# Errors of one record that leave the producer fine: report the line, go on with the next.
_RECORD_ERRORS = (RecordTooLargeError, SerializationError, InvalidPartitionError)

# Kafka's LineMessageReader, by its 4.x and its older name: the only reader kengine has
_LINE_READERS = ("org.apache.kafka.tools.LineMessageReader", "kafka.tools.LineMessageReader")

# Kafka 4.x's names and the deprecated ones they replace, given at most one of each pair
_RENAMED = (("command_property", "--command-property", "producer_property",
             "--producer-property"),
            ("command_config", "--command-config", "producer_config", "--producer.config"),
            ("reader_property", "--reader-property", "property", "--property"))

# The console producer's own options for producer settings, in the order Java merges them,
# with Java's defaults: applied when given, or when nothing else set the setting.
_TOOL_SETTINGS: tuple[tuple[str, str, Any], ...] = (
    ("linger.ms", "timeout", 1000),
    ("acks", "request_required_acks", "-1"),
    ("request.timeout.ms", "request_timeout_ms", 1500),
    ("retries", "message_send_max_retries", 3),
    ("retry.backoff.ms", "retry_backoff_ms", 100),
    ("send.buffer.bytes", "socket_buffer_size", 1024 * 100),
    ("buffer.memory", "max_memory_bytes", 32 * 1024 * 1024),
    ("batch.size", "batch_size", 16 * 1024),
    ("batch.size", "max_partition_memory_bytes", 16 * 1024),
    ("metadata.max.age.ms", "metadata_expiry_ms", 5 * 60 * 1000),
    ("max.block.ms", "max_block_ms", 60 * 1000),
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "produce", help="send lines of stdin as records (Kafka's console producer)",
        description="Reads data from standard input and publishes it to Kafka, with the flags "
                    "and line format of kafka-console-producer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="reader properties (--reader-property): parse.key, key.separator (\\t), "
               "parse.headers,\n  headers.delimiter (\\t), headers.separator (,), "
               "headers.key.separator (:), "
               "null.marker, ignore.error.\n"
               "  parse.headers=true and parse.key=true: h1:v1,h2:v2<TAB>key<TAB>value\n"
               "exit status: 0 when every line was delivered, 1 otherwise, 2 for bad usage.")
    p.add_argument("--bootstrap-server", metavar="HOST:PORT[,...]",
                   help="the server(s) to connect to; without it, bootstrap.servers from "
                        "--command-config or --command-property")
    p.add_argument("--broker-list", help=argparse.SUPPRESS)   # deprecated in Kafka, accepted
    p.add_argument("--topic", required=True, help="REQUIRED: the topic to produce to")
    p.add_argument("--reader-property", action="append", default=[], metavar="PROP=VALUE",
                   help="a reader property (repeatable), see below")
    p.add_argument("--property", action="append", default=[], metavar="PROP=VALUE",
                   help="(deprecated in Kafka 4.x) the same as --reader-property")
    p.add_argument("--reader-config", metavar="FILE",
                   help="reader properties file; --reader-property takes precedence")
    p.add_argument("--line-reader", metavar="CLASS", default=_LINE_READERS[0],
                   help=f"the line reader; only Kafka's own, {_LINE_READERS[0]} (the default), "
                        "exists here")
    p.add_argument("--command-property", action="append", default=[], metavar="KEY=VALUE",
                   help="a producer setting (repeatable); takes precedence over --command-config")
    p.add_argument("--producer-property", action="append", default=[], metavar="KEY=VALUE",
                   help="(deprecated in Kafka 4.x) the same as --command-property")
    p.add_argument("--command-config", metavar="FILE",
                   help="producer settings file (Java .properties format)")
    p.add_argument("--producer.config", dest="producer_config", metavar="FILE",
                   help="(deprecated in Kafka 4.x) the same as --command-config")
    p.add_argument("--sync", action="store_true",
                   help="send records one at a time, each waiting for its acknowledgement")
    p.add_argument("--compression-codec", nargs="?", const="gzip", metavar="CODEC",
                   help="none, gzip (without a value), snappy, lz4 or zstd")
    p.add_argument("--batch-size", type=int, metavar="BYTES", help="batch.size (16384)")
    p.add_argument("--message-send-max-retries", type=int, metavar="N", help="retries (3)")
    p.add_argument("--retry-backoff-ms", type=int, metavar="MS", help="retry.backoff.ms (100)")
    p.add_argument("--timeout", type=int, metavar="MS", help="linger.ms (1000)")
    p.add_argument("--request-required-acks", metavar="ACKS", help="acks (-1)")
    p.add_argument("--request-timeout-ms", type=int, metavar="MS",
                   help="request.timeout.ms (1500)")
    p.add_argument("--metadata-expiry-ms", type=int, metavar="MS",
                   help="metadata.max.age.ms (300000)")
    p.add_argument("--max-block-ms", type=int, metavar="MS", help="max.block.ms (60000)")
    p.add_argument("--max-memory-bytes", type=int, metavar="BYTES",
                   help="buffer.memory (33554432)")
    p.add_argument("--max-partition-memory-bytes", type=int, metavar="BYTES",
                   help="batch.size, overriding --batch-size")
    p.add_argument("--socket-buffer-size", type=int, metavar="BYTES",
                   help="send.buffer.bytes (102400)")
    p.add_argument("--skip-bad-lines", action="store_true",
                   help="report a line that does not parse and go on (default: stop there)")
    add_schema_arguments(p)
    add_file_arguments(p)
    p.set_defaults(run=run, reports_failures=True)


def check_renamed(args: argparse.Namespace) -> list[str]:
    """Kafka 4.x's option names and their deprecated predecessors: at most one of each pair
    (Java refuses both with these words); returns a warning for each deprecated one used, as
    Java prints. The deprecated option's value is moved to the current name."""
    warnings = []
    for current, current_flag, old, old_flag in _RENAMED:
        if getattr(args, old) and getattr(args, current):
            raise UsageError(f"Options {current_flag} and {old_flag} cannot be specified "
                             f"together.")
        if getattr(args, old):
            warnings.append(f"warning: {old_flag} is deprecated and will be removed in a future "
                            f"version of Kafka's tools. Use {current_flag} instead.")
            setattr(args, current, getattr(args, old))
            setattr(args, old, [] if isinstance(getattr(args, old), list) else None)
    if args.line_reader not in _LINE_READERS:
        raise UsageError(f"--line-reader {args.line_reader}: only Kafka's line reader, "
                         f"{_LINE_READERS[0]}, exists here (a Java class cannot be loaded); "
                         f"its format is set with --reader-property")
    return warnings


def producer_config(args: argparse.Namespace) -> dict[str, Any]:
    """The producer settings Java's console producer would use for these arguments:
    --command-config, overridden by --command-property, then the tool's own options.
    --bootstrap-server wins over a bootstrap.servers of those, which stands in when it is
    not given (Java requires --bootstrap-server)."""
    check_renamed(args)
    props: dict[str, Any] = {}
    if args.command_config:
        props.update(load_properties(args.command_config))
    props.update(parse_assignments(args.command_property, "--command-property"))
    bootstrap = args.bootstrap_server or args.broker_list or props.get("bootstrap.servers")
    if not bootstrap:
        raise UsageError("--bootstrap-server is required (or bootstrap.servers in "
                         "--command-config or --command-property)")
    props["bootstrap.servers"] = bootstrap
    if args.compression_codec is not None:
        props["compression.type"] = args.compression_codec or "gzip"
    props.setdefault("client.id", "console-producer")
    for key, option, default in _TOOL_SETTINGS:
        given = getattr(args, option)
        if given is not None:
            props[key] = given
        elif key not in props:
            props[key] = default
    return producer_settings(props)


class _Outcome:
    """Delivery outcomes, written by the producer's sender thread (callbacks) and read by the
    main thread; failures are reported as they happen, up to a limit."""

    def __init__(self, status: StatusLine) -> None:
        self._status = status
        self._lock = threading.Lock()
        self.delivered = 0       # under _lock
        self.failed = 0          # under _lock

    def on_delivery(self, line_number: int, error: KafkaError | None, metadata: Any) -> None:
        if error is None:
            with self._lock:
                self.delivered += 1
            return
        self.fail(line_number, f"delivery failed: {error}")

    def fail(self, line_number: int, what: str) -> None:
        message = f"kengine produce: line {line_number}: {what}"
        with self._lock:
            self.failed += 1
            n = self.failed
        if n <= _MAX_REPORTED_FAILURES:
            self._status.print(message, file=sys.stderr)
        elif n == _MAX_REPORTED_FAILURES + 1:
            self._status.print("kengine produce: more records failed; only their number is "
                               "reported from now on", file=sys.stderr)


def _lines(stream: IO[bytes], prompt: bool) -> Iterator[bytes]:
    while True:
        if prompt:
            sys.stderr.write(">")
            sys.stderr.flush()
        raw = stream.readline()
        if not raw:
            return
        if raw.endswith(b"\n"):
            raw = raw[:-1]
            if raw.endswith(b"\r"):
                raw = raw[:-1]
        yield raw


def run(args: argparse.Namespace) -> int:
    from ..producer import Producer

    if args.input is not None:
        apply_file_defaults(args)
        return run_file(args, producer_config(args))
    for option in ("value_column", "key_column", "headers_columns", "timestamp_column",
                   "partition_column", "input_format"):
        if getattr(args, option) is not None:
            flag = "--format" if option == "input_format" else "--" + option.replace("_", "-")
            raise UsageError(f"{flag} reads the columns of a file: it needs --input FILE")
    if args.value_format == "json":
        raise UsageError("--value-format json sends each row of an --input file as a JSON "
                         "object; lines of stdin are sent as they are without it")
    for warning in check_renamed(args):
        print(f"kengine produce: {warning}", file=sys.stderr)
    reader_props: dict[str, str] = {}
    if args.reader_config:
        reader_props.update(load_properties(args.reader_config))
    reader_props.update(parse_assignments(args.reader_property, "--reader-property"))
    reader = LineReader(reader_props)
    settings = producer_config(args)
    settings.update(serializers(args))
    json_fields = [f for f in ("key", "value") if getattr(args, f"{f}_format", None)]
    stdin = sys.stdin.buffer
    interactive = sys.stdin.isatty()
    lines_read = 0
    bad_lines = 0
    stopped_by: str | None = None
    interrupted = False

    def render() -> str:
        return (f"{lines_read:,} lines read, {outcome.delivered:,} delivered, "
                f"{outcome.failed:,} failed, {bad_lines:,} bad")

    status = StatusLine(render, enabled=sys.stderr.isatty() and not interactive)
    outcome = _Outcome(status)
    producer = Producer(settings)
    try:
        with status:
            for line in _lines(stdin, prompt=interactive and sys.stderr.isatty()):
                lines_read += 1
                try:
                    record = reader.parse(line, lines_read)
                    key, value = record.key, record.value
                    try:   # --key-format/--value-format: a JSON document the schema encodes
                        if "key" in json_fields:
                            key = decode_json(key, "key")
                        if "value" in json_fields:
                            value = decode_json(value, "value")
                    except ValueError as e:
                        raise LineFormatError(lines_read, str(e)) from None
                except LineFormatError as e:
                    bad_lines += 1
                    status.print(f"kengine produce: {e}", file=sys.stderr)
                    if args.skip_bad_lines:
                        continue
                    stopped_by = (f"stopped at line {lines_read}, which does not parse "
                                  f"(--skip-bad-lines goes on past such lines)")
                    break
                try:
                    future = producer.send(args.topic, value, key=key,
                                           headers=record.headers,
                                           on_delivery=partial(outcome.on_delivery, lines_read))
                except _RECORD_ERRORS as e:
                    outcome.fail(lines_read, str(e))
                    continue
                if args.sync:
                    # the callback has reported a failure already
                    future.exception()
    except KafkaError as e:
        stopped_by = f"stopped at line {lines_read}: {e}"
    except KeyboardInterrupt:
        stopped_by = f"interrupted after line {lines_read}"
        interrupted = True
    finally:
        producer.close()
    if stopped_by is not None:
        print(f"kengine produce: {stopped_by}", file=sys.stderr)
    if outcome.failed:
        # each was reported above by its line number: the count, not the first one again
        print(f"kengine produce: {outcome.failed} of {lines_read - bad_lines} record(s) failed",
              file=sys.stderr)
    if interrupted:
        return 130
    return 0 if not (outcome.failed or bad_lines or stopped_by) else 1
