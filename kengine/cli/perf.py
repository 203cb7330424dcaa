"""``kengine perf``: Kafka's ``kafka-producer-perf-test``, same flags and output lines.

    kengine perf --topic bench --num-records 1000000 --record-size 100 --throughput -1 \\
        --command-property bootstrap.servers=127.0.0.1:9092 acks=1

Prints a line every 5 s (records/s, MB/s, average and maximum latency of the window) and a
total line with the 50th, 95th, 99th and 99.9th latency percentiles, in Java's format.
``--json`` prints the totals as one JSON object instead (the 5 s lines go to stderr);
``--bulk`` sends with ``send_many()`` in chunks of ``--bulk-size`` records, the fast path,
where a record's latency is its chunk's: from the call until every record of the chunk is
acknowledged. A progress bar is drawn on stderr when it is a terminal.

Payloads: ``--record-size`` sends random upper-case letters, like Java, drawn from a pool of
pre-generated payloads rather than generated per record; ``--payload-file`` picks a payload
of the file at random per record (seeded, so runs repeat); ``--payload-monotonic`` sends the
record's index. ``--transactional-id`` (or a transactional.id among the producer settings)
sends in transactions, each committed once it is ``--transaction-duration-ms`` old (default
3000), as Java's tool does; ``--transaction-duration-ms`` alone makes a transactional.id of
``performance-producer-<uuid>``, as Java 4.x does. ``--key-distribution range|random`` with
``--record-key-range N`` sends the keys of Kafka 4.4's tool (the integers below N as text, in
turn or at random, seeded by ``--random-seed``); ``--reporting-interval`` spaces the progress
lines. Kafka 4.4's ``--command-property`` / ``--command-config`` and the deprecated
``--producer-props`` / ``--producer.config`` are both taken (one of each pair).

Exit status 1 when any record failed, those a run that stopped on an error never sent
included (they count as failed, in the last line and in ``--json``'s ``"failed"``).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import queue
import random
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import KafkaError
from . import UsageError
from .perf_stats import PerfStats, wall_ms
from .properties import load_properties, parse_assignments, producer_settings
from .status_line import StatusLine, progress_bar
from .throttler import ThroughputThrottler

__all__ = ["add_parser", "format_metrics", "perf_config", "run"]

_POOL_BYTES = 16 * 1024 * 1024      # random payloads kept for --record-size
_POOL_MAX = 1000
_REPORTED_FAILURES = 5
_KEY_CACHE_MAX = 1 << 20          # --record-key-range up to this: keys encoded once

# Kafka 4.x's option names and the deprecated ones they replace
_RENAMED = (("command_property", "--command-property", "producer_props", "--producer-props"),
            ("command_config", "--command-config", "producer_config", "--producer.config"))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "perf", help="measure producer throughput and latency (kafka-producer-perf-test)",
        description="This tool is used to verify the producer performance, with the flags and "
                    "output of kafka-producer-perf-test.")
    p.add_argument("--topic", required=True, help="produce messages to this topic")
    p.add_argument("--num-records", type=int, required=True, metavar="NUM-RECORDS",
                   help="number of messages to produce")
    payload = p.add_mutually_exclusive_group(required=True)
    payload.add_argument("--record-size", type=int, metavar="RECORD-SIZE",
                         help="message size in bytes")
    payload.add_argument("--payload-file", metavar="PAYLOAD-FILE",
                         help="file to read the message payloads from, split by "
                              "--payload-delimiter; one is picked at random per message")
    payload.add_argument("--payload-monotonic", action="store_true",
                         help="payload is the message's index, as decimal text")
    p.add_argument("--payload-delimiter", default="\\n", metavar="PAYLOAD-DELIMITER",
                   help="regular expression between payloads of --payload-file (default: "
                        "new line)")
    p.add_argument("--throughput", type=float, required=True, metavar="THROUGHPUT",
                   help="throttle maximum message throughput to *approximately* THROUGHPUT "
                        "messages/sec; -1 disables throttling")
    p.add_argument("--command-property", nargs="+", default=[],
                   metavar="PROP-NAME=PROP-VALUE",
                   help="producer settings, taking precedence over --command-config")
    p.add_argument("--producer-props", nargs="+", default=[], metavar="PROP-NAME=PROP-VALUE",
                   help="(deprecated in Kafka 4.x) the same as --command-property")
    p.add_argument("--command-config", metavar="CONFIG-FILE",
                   help="producer settings file (Java .properties format)")
    p.add_argument("--producer.config", dest="producer_config", metavar="CONFIG-FILE",
                   help="(deprecated in Kafka 4.x) the same as --command-config")
    p.add_argument("--bootstrap-server", metavar="HOST:PORT[,...]",
                   help="the server(s) to connect to, taking precedence over a "
                        "bootstrap.servers of --command-property or --command-config")
    p.add_argument("--reporting-interval", type=int, default=5000, metavar="INTERVAL-MS",
                   help="print a progress line this often (default: 5000)")
    p.add_argument("--record-key-range", type=int, metavar="KEY-RANGE",
                   help="keys are the integers in [0, KEY-RANGE), as text; required by "
                        "--key-distribution range and random")
    p.add_argument("--key-distribution", choices=("none", "range", "random"), default="none",
                   metavar="KEY-DISTRIBUTION",
                   help="'none' for null keys (default), 'range' for keys in turn, 'random' "
                        "for random keys in [0, KEY-RANGE)")
    p.add_argument("--random-seed", type=int, default=0, metavar="RANDOM-SEED",
                   help="seed of the random keys and payloads (default 0: runs repeat)")
    p.add_argument("--print-metrics", action="store_true",
                   help="print out the producer's metrics at the end of the test")
    p.add_argument("--warmup-records", type=int, default=0, metavar="WARMUP-RECORDS",
                   help="records left out of a second, steady-state summary (default: 0)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout")
    p.add_argument("--transactional-id", metavar="TRANSACTIONAL-ID",
                   help="produce in transactions with this transactional.id (also enabled by a "
                        "transactional.id in --command-property or --command-config)")
    p.add_argument("--transaction-duration-ms", type=int, metavar="TRANSACTION-DURATION",
                   help="commit each transaction once it is this old (default with "
                        "transactions: 3000)")
    p.add_argument("--bulk", action="store_true", help="send with send_many() in chunks")
    p.add_argument("--bulk-size", type=int, default=1000, metavar="N",
                   help="records per send_many() call with --bulk (default: 1000)")
    p.set_defaults(run=run, reports_failures=True)


def check_renamed(args: argparse.Namespace) -> list[str]:
    """Kafka 4.x's names and the deprecated ones (at most one of each pair, in Java's words);
    the deprecated option's value moves to the current name. Returns the warnings to print."""
    warnings = []
    for current, current_flag, old, old_flag in _RENAMED:
        if getattr(args, old) and getattr(args, current):
            raise UsageError(f"{current_flag} and {old_flag} cannot be specified together.")
        if getattr(args, old):
            warnings.append(f"warning: {old_flag} is deprecated and will be removed in a future "
                            f"version of Kafka's tools. Use {current_flag} instead.")
            setattr(args, current, getattr(args, old))
            setattr(args, old, [] if isinstance(getattr(args, old), list) else None)
    return warnings


def perf_config(args: argparse.Namespace) -> dict[str, Any]:
    """--command-config, overridden by --command-property and --bootstrap-server; client.id
    defaults to Java's ``perf-producer-client``; --transaction-duration-ms alone makes a
    transactional.id of ``performance-producer-`` and a random UUID, as Java does."""
    check_renamed(args)
    if not (args.command_property or args.command_config or args.bootstrap_server):
        raise UsageError("At least one of --bootstrap-server, --command-property, "
                         "--producer-props, --producer.config or --command-config must be "
                         "specified.")
    props: dict[str, Any] = {}
    if args.command_config:
        props.update(load_properties(args.command_config))
    props.update(parse_assignments(args.command_property, "--command-property"))
    if args.bootstrap_server:
        props["bootstrap.servers"] = args.bootstrap_server
    if args.transactional_id:
        props["transactional.id"] = args.transactional_id
    elif args.transaction_duration_ms is not None and "transactional.id" not in props:
        props["transactional.id"] = f"performance-producer-{uuid.uuid4()}"
    props.setdefault("client.id", "perf-producer-client")
    return producer_settings(props)


def _check(args: argparse.Namespace) -> None:
    if args.num_records <= 0:
        raise UsageError("--num-records should be greater than zero")
    if not 0 <= args.warmup_records < args.num_records:
        raise UsageError("the value for --warmup-records must be strictly fewer "
                         "than the number of records in the test, --num-records")
    if args.record_size is not None and args.record_size <= 0:
        raise UsageError("--record-size should be greater than zero")
    if args.throughput == 0:
        raise UsageError("--throughput 0 would never send; -1 disables throttling")
    if args.bulk_size <= 0:
        raise UsageError("--bulk-size should be greater than zero")
    if args.transaction_duration_ms is not None and args.transaction_duration_ms <= 0:
        raise UsageError("--transaction-duration-ms should be greater than zero")
    if args.reporting_interval <= 0:
        raise UsageError("--reporting-interval should be greater than zero")
    if args.record_key_range is not None and args.record_key_range <= 0:
        raise UsageError("--record-key-range should be greater than zero")
    if args.key_distribution != "none" and args.record_key_range is None:
        raise UsageError("--record-key-range is required when --key-distribution is 'range' "
                         "or 'random'.")


# ------------------------------------------------------------------ payloads

def random_payloads(record_size: int, seed: int = 0) -> list[bytes]:
    """Payloads of random upper-case letters (as Java's tool sends), seeded by
    --random-seed (the same letters every run; not Java's sequence)."""
    count = max(1, min(_POOL_MAX, _POOL_BYTES // record_size))
    letters = bytes(65 + i % 26 for i in range(256))
    data = random.Random(seed).randbytes(count * record_size).translate(letters)
    return [data[i * record_size:(i + 1) * record_size] for i in range(count)]


def file_payloads(path: str, delimiter: str, say: Callable[[str], None]) -> list[bytes]:
    file = Path(path)
    say(f"Reading payloads from: {file.resolve()}")
    try:
        data = file.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read --payload-file: {e}") from None
    pattern = "\n" if delimiter == "\\n" else delimiter
    payloads = [p for p in re.split(pattern.encode(), data) if p]
    if not payloads:
        raise UsageError("File does not exist or empty file provided.")
    say(f"Number of messages read: {len(payloads)}")
    return payloads


def _payload_stream(args: argparse.Namespace, pool: list[bytes]) -> Iterator[bytes]:
    if args.payload_monotonic:
        return (b"%d" % i for i in itertools.count())
    if args.payload_file:
        return _random_picks(pool, args.random_seed)
    return itertools.cycle(pool)


def _random_picks(pool: list[bytes], seed: int) -> Iterator[bytes]:
    choose = random.Random(seed).choice
    while True:
        yield choose(pool)


def key_stream(args: argparse.Namespace) -> Iterator[bytes] | None:
    """--key-distribution's keys, as Java's tool makes them: the decimal text of record i
    modulo --record-key-range ('range'), or of a random integer below it ('random', seeded
    by --random-seed; Python's generator, so not Java's sequence); None for null keys."""
    if args.key_distribution == "none":
        return None
    n = args.record_key_range
    if args.key_distribution == "range":
        if n <= _KEY_CACHE_MAX:
            return itertools.cycle([b"%d" % k for k in range(n)])
        return (b"%d" % (i % n) for i in itertools.count())
    below = random.Random(args.random_seed).randrange
    return (b"%d" % below(n) for _ in itertools.count())


# ------------------------------------------------------------------ the run

class _Failures:
    """Failed sends, counted on whatever thread reports them."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self._report = report
        self._lock = threading.Lock()
        self.count = 0       # under _lock

    def add(self, n: int, error: BaseException) -> None:
        with self._lock:
            self.count += n
            first = self.count - n
        if first < _REPORTED_FAILURES:
            self._report(f"kengine perf: {n} record(s) failed: {error}")


class _Stopped(Exception):
    """A send that raised ended the run: ``unsent`` records (that one and all after it) were
    never handed to the producer. The send's own error is the ``__cause__``."""

    def __init__(self, unsent: int) -> None:
        super().__init__(unsent)
        self.unsent = unsent


class _Transactions:
    """Java's tool's transactions: one begins with the first record sent after the previous
    commit, and is committed once it is ``duration_ms`` old (checked after each send) and at
    the end. Without a transactional.id every method does nothing."""

    def __init__(self, producer: Any, duration_ms: int | None) -> None:
        self._producer = producer
        self.enabled = producer.config.get("transactional.id") is not None
        self._duration_ms = duration_ms if duration_ms is not None else 3000
        self._started_ms: int | None = None    # the open transaction's begin, wall clock
        self.committed = 0

    def init(self) -> None:
        if self.enabled:
            self._producer.init_transactions()

    def before_send(self) -> None:
        if self.enabled and self._started_ms is None:
            self._producer.begin_transaction()
            self._started_ms = wall_ms()

    def after_send(self, now_ms: int) -> None:
        if self._started_ms is not None and now_ms - self._started_ms >= self._duration_ms:
            self.commit()

    def commit(self) -> None:
        if self._started_ms is not None:
            self._started_ms = None
            self._producer.commit_transaction()
            self.committed += 1


def run(args: argparse.Namespace) -> int:
    from ..producer import Producer

    for warning in check_renamed(args):
        print(f"kengine perf: {warning}", file=sys.stderr)
    _check(args)
    json_mode = args.json
    say_stream: TextIO = sys.stderr if json_mode else sys.stdout
    n = args.num_records
    stats: PerfStats | None = None
    status = StatusLine(lambda: _progress(stats, n))

    def say(text: str) -> None:
        status.print(text, file=say_stream)

    if args.record_size is not None:
        pool = random_payloads(args.record_size, args.random_seed)
    elif args.payload_file:
        pool = file_payloads(args.payload_file, args.payload_delimiter, say)
    else:
        pool = []
    producer = Producer(perf_config(args))
    failures = _Failures(lambda text: status.print(text, file=sys.stderr))
    if args.warmup_records > 0:
        say(f"Warmup first {args.warmup_records} records. Steady state results will print "
            f"after the complete test summary.")
    txn = _Transactions(producer, args.transaction_duration_ms)
    try:
        txn.init()      # before the clocks of the stats and the throttler start, as in Java
    except KafkaError as e:
        producer.close()
        print(f"kengine perf: cannot initialize transactions: {e}", file=sys.stderr)
        return 1
    except BaseException:
        producer.close()
        raise
    stats = PerfStats(say, reporting_interval_ms=args.reporting_interval)
    steady: list[PerfStats] = []      # the steady-state stats, once the warmup is over
    metrics: dict[str, Any] | None = None
    interrupted = False
    stopped_by: BaseException | None = None    # the error that ended the run early
    try:
        with status:
            send = _send_bulk if args.bulk else _send_each
            try:
                send(args, producer, txn, _payload_stream(args, pool), stats, steady,
                     failures, say)
            except _Stopped as e:
                cause = e.__cause__
                assert cause is not None
                if isinstance(cause, KafkaError):
                    # the records never sent failed as surely as those the broker refused
                    failures.add(e.unsent, cause)
                raise cause from None
            txn.commit()
            if args.print_metrics:
                producer.flush()
                metrics = producer.metrics()
    except KeyboardInterrupt:
        interrupted = True
        say("kengine perf: interrupted; the summary covers the records acknowledged so far")
    except KafkaError as e:
        stopped_by = e
        print(f"kengine perf: stopped: {e}", file=sys.stderr)
    finally:
        producer.close()
    summary = stats.summary()
    steady_summary = steady[0].summary() if steady else None
    if json_mode:
        out = {**summary, "failed": failures.count}
        if stopped_by is not None:
            out["error"] = str(stopped_by)
        if steady_summary is not None:
            out["steady_state_summary"] = steady_summary
        if txn.enabled:
            out["transactions_committed"] = txn.committed
        if metrics is not None:
            out["metrics"] = metrics
        print(json.dumps(_json_safe(out), indent=2))
    else:
        print(PerfStats.total_line(summary))
        if steady_summary is not None:
            print(PerfStats.total_line(steady_summary))
        if txn.enabled:
            print(f"{txn.committed} transactions committed.")
        if metrics is not None:
            print(format_metrics(metrics))
    if failures.count:
        print(f"kengine perf: {failures.count} of {n} records failed", file=sys.stderr)
    if interrupted:
        return 130
    return 1 if failures.count or stopped_by is not None else 0


def _progress(stats: PerfStats | None, total: int) -> str:
    done = stats.count if stats is not None else 0
    return f"{progress_bar(done, total)} {done:,}/{total:,} records acknowledged"


def _send_each(args: argparse.Namespace, producer: Any, txn: _Transactions,
               payloads: Iterator[bytes], stats: PerfStats, steady: list[PerfStats],
               failures: _Failures, say: Callable[[str], None]) -> None:
    """One send() per record with a delivery callback, as Java's tool does: a record's latency
    runs from send() (its timestamp) to its acknowledgement."""
    topic = args.topic
    n = args.num_records

    def acknowledged(error: KafkaError | None, md: Any) -> None:
        if error is not None:
            failures.add(1, error)
            return
        now = wall_ms()
        stats.record(now - md.timestamp, md.serialized_value_size, now)

    def acknowledged_steady(error: KafkaError | None, md: Any) -> None:
        if error is not None:
            failures.add(1, error)
            return
        now = wall_ms()
        latency = now - md.timestamp
        stats.record(latency, md.serialized_value_size, now)
        steady[0].record(latency, md.serialized_value_size, now)

    send = producer.send
    throttler = ThroughputThrottler(args.throughput, stats.start_ms)
    throttled = args.throughput > 0
    callback = acknowledged
    keys: Iterator[bytes | None] = key_stream(args) or itertools.repeat(None)
    i = 0
    try:
        records = zip(itertools.islice(payloads, n), keys, strict=False)   # keys: endless
        for i, (value, key) in enumerate(records):
            if i == args.warmup_records and i > 0:
                steady.append(PerfStats(say, steady_state=True,
                                        reporting_interval_ms=args.reporting_interval))
                stats.suppress_printing = True
                callback = acknowledged_steady
            txn.before_send()
            send(topic, value, key=key, on_delivery=callback)
            if throttled or txn.enabled:
                now = wall_ms()
                try:
                    txn.after_send(now)
                except BaseException as e:     # a commit failed: record i was sent
                    raise _Stopped(n - i - 1) from e
                if throttled and throttler.should_throttle(i, now):
                    throttler.throttle()
    except _Stopped:
        raise
    except BaseException as e:
        # record i was not handed over: it and every later one were never sent
        raise _Stopped(n - i) from e


def _send_bulk(args: argparse.Namespace, producer: Any, txn: _Transactions,
               payloads: Iterator[bytes], stats: PerfStats, steady: list[PerfStats],
               failures: _Failures, say: Callable[[str], None]) -> None:
    """send_many() in chunks; a thread waits for each chunk's BulkFuture in order and
    records the chunk's records with the chunk's latency."""
    topic = args.topic
    n = args.num_records
    chunk = args.bulk_size
    if args.throughput > 0:
        # keep a throttled run smooth: about 50 calls per second at most
        chunk = max(1, min(chunk, int(args.throughput / 50)))
    pending: queue.Queue[tuple[int, Any, int, int, bool] | None] = queue.Queue()
    waiter = threading.Thread(target=_await_chunks, args=(pending, stats, steady, failures),
                              name="kengine-perf-acks", daemon=True)
    waiter.start()
    throttler = ThroughputThrottler(args.throughput, stats.start_ms)
    throttled = args.throughput > 0
    reuse: tuple[list[bytes], int] | None = None
    if not args.payload_monotonic and not args.payload_file:
        values = list(itertools.islice(payloads, chunk))   # the same pool cycle every call
        reuse = (values, sum(map(len, values)))
    keys = key_stream(args)
    sent = 0
    try:
        try:
            while sent < n:
                k = min(chunk, n - sent)
                if 0 < args.warmup_records and sent < args.warmup_records:
                    k = min(k, args.warmup_records - sent)     # a chunk is all warmup or none
                if sent == args.warmup_records and sent > 0 and not steady:
                    steady.append(PerfStats(say, steady_state=True,
                                        reporting_interval_ms=args.reporting_interval))
                    stats.suppress_printing = True
                if reuse is not None:
                    values = reuse[0] if k == chunk else reuse[0][:k]
                    nbytes = reuse[1] if k == chunk else sum(map(len, values))
                else:
                    values = list(itertools.islice(payloads, k))
                    nbytes = sum(map(len, values))
                txn.before_send()
                started = wall_ms()
                future = producer.send_many(
                    topic, values, keys=None if keys is None else list(itertools.islice(keys, k)))
                pending.put((started, future, k, nbytes, bool(steady)))
                sent += k
                now = wall_ms()
                txn.after_send(now)
                if throttled and throttler.should_throttle(sent, now):
                    throttler.throttle(k)
        except BaseException as e:
            # the chunk at `sent` was not handed over (or a commit after it failed)
            raise _Stopped(n - sent) from e
        producer.flush()
    finally:
        pending.put(None)
        waiter.join()


def _await_chunks(pending: queue.Queue[tuple[int, Any, int, int, bool] | None],
                  stats: PerfStats, steady: list[PerfStats], failures: _Failures) -> None:
    while True:
        item = pending.get()
        if item is None:
            return
        started, future, k, nbytes, in_steady_state = item
        result = future.result()
        now = wall_ms()
        ok = k - result.failed_count
        if result.failed_count:
            failures.add(result.failed_count, next(iter(result.errors.values())))
        if ok:
            ok_bytes = nbytes * ok // k
            stats.record(now - started, ok_bytes, now, records=ok)
            if in_steady_state:
                steady[0].record(now - started, ok_bytes, now, records=ok)


# ------------------------------------------------------------------ output

def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def format_metrics(metrics: dict[str, Any]) -> str:
    """Java's ``ToolsUtils.printMetrics`` table: ``group:name:{tags} : value``, sorted."""
    client = {"client-id": metrics.get("client-id", "")}
    rows: list[tuple[str, Any]] = []

    def add(group: str, name: str, tags: dict[str, str], value: Any) -> None:
        tag_text = "{" + ", ".join(f"{k}={v}" for k, v in tags.items()) + "}"
        rows.append((f"{group}:{name}:{tag_text}", value))

    for name, value in metrics.items():
        if name in ("client-id", "topics", "brokers", "partitioner"):
            continue
        add("producer-metrics", name, client, value)
    for topic, values in metrics.get("topics", {}).items():
        for name, value in values.items():
            add("producer-topic-metrics", name, {**client, "topic": topic}, value)
    for node, values in metrics.get("brokers", {}).items():
        for name, value in values.items():
            add("producer-node-metrics", name, {**client, "node-id": f"node-{node}"}, value)
    partitioner = metrics.get("partitioner")
    if isinstance(partitioner, dict):
        for name, value in partitioner.items():
            add("partitioner-metrics", str(name), client, value)
    elif partitioner is not None:
        add("partitioner-metrics", "metrics", client, partitioner)
    rows.sort()
    width = max(len(name) for name, _ in rows)
    lines = [f"\n{'Metric Name':<{width}}   Value"]
    for name, value in rows:
        shown = f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else str(value)
        lines.append(f"{name:<{width}} : {shown}")
    return "\n".join(lines)
