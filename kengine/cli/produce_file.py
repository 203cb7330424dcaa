"""``kengine produce --input FILE``: every row of a Parquet, Arrow IPC, JSON lines or CSV file
as one record, through ``Producer.send_arrow()`` (no Python object per row).

The file is read in chunks of ``--chunk-rows`` rows; each chunk is handed to send_arrow(),
whose bytes are copied into batches, so memory holds one chunk and buffer.memory whatever the
file's size. A progress bar (rows, MB, rows/s, ETA) is drawn on a terminal; otherwise a plain
progress line is printed every ``--progress-interval`` seconds. The summary says how many rows
were read, delivered and failed; the exit status is 1 when any row failed, and each failed
row is named by its row number in the file (the first 100).
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from collections import deque
from typing import Any

from ..errors import KafkaError
from . import UsageError
from .file_input import detect_format, open_input
from .properties import parse_assignments
from .status_line import StatusLine, progress_bar

__all__ = ["add_arguments", "apply_file_defaults", "run"]

_MAX_REPORTED_FAILURES = 100
# Chunks whose outcome is not known yet, at most (then the oldest is waited for): a BulkFuture
# keeps its batches, and with them their bytes, until it is dropped, so this bounds memory
# (8 chunks of 65,536 rows of 100 bytes: about 60 MB) besides buffer.memory.
_MAX_PENDING_CHUNKS = 8
# The console producer's interactive defaults (linger.ms 1000, batch.size 16 KiB) suit lines
# typed at a terminal; a file is a bulk load. Applied unless the option or setting is given.
_FILE_DEFAULTS = (("linger.ms", "timeout", 20), ("batch.size", "batch_size", 256 * 1024),
                  ("buffer.memory", "max_memory_bytes", 64 * 1024 * 1024))


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("files (--input: one record per row of a file, instead of stdin)")
    g.add_argument("--input", metavar="FILE",
                   help="send the rows of a Parquet, Arrow IPC, JSON lines or CSV file")
    g.add_argument("--format", dest="input_format", choices=("parquet", "arrow", "jsonl", "csv"),
                   help="the file's format (default: from its extension)")
    g.add_argument("--value-column", metavar="NAME",
                   help="the column holding each record's value (or --value-format json)")
    g.add_argument("--key-column", metavar="NAME", help="the column holding each record's key")
    g.add_argument("--headers-columns", metavar="NAME[,NAME...]",
                   help="columns sent as headers, each named after its column")
    g.add_argument("--timestamp-column", metavar="NAME",
                   help="a timestamp column (any unit) or int64 epoch milliseconds")
    g.add_argument("--partition-column", metavar="NAME",
                   help="an integer column of partition numbers (null: the partitioner's)")
    g.add_argument("--chunk-rows", type=int, default=65536, metavar="N",
                   help="rows read and sent at a time (65536); bounds memory")
    g.add_argument("--progress-interval", type=float, default=10.0, metavar="SECONDS",
                   help="seconds between progress lines when stderr is not a terminal (10)")


def check_arguments(args: argparse.Namespace) -> None:
    row_json = args.value_format == "json"
    if args.value_format is not None and not row_json:
        raise UsageError(f"--input takes --value-format json (each row as a JSON object), not "
                         f"{args.value_format}: schema formats encode lines of stdin")
    if (args.value_column is None) == (not row_json):
        raise UsageError("--input needs exactly one of --value-column NAME and --value-format "
                         "json")
    if args.key_format or args.key_schema or args.value_schema:
        raise UsageError("--key-format and --*-schema are for lines of stdin, not --input")
    if args.chunk_rows < 1:
        raise UsageError(f"--chunk-rows {args.chunk_rows}: must be at least 1")


def apply_file_defaults(args: argparse.Namespace) -> None:
    """Checks the --input options and sets the bulk-load defaults of the settings not given
    (before the producer's settings are made from args)."""
    check_arguments(args)
    from .properties import load_properties

    given: dict[str, Any] = {}
    for config in (args.command_config, args.producer_config):   # either name of the option
        if config:
            given.update(load_properties(config))
    for assignments, flag in ((args.command_property, "--command-property"),
                              (args.producer_property, "--producer-property")):
        given.update(parse_assignments(assignments, flag))
    for key, option, default in _FILE_DEFAULTS:
        if getattr(args, option) is None and key not in given:
            setattr(args, option, default)


class _Progress:
    """What the run has done: written by the main thread (rows read, bytes) and by the sender
    thread's completions counted when the main thread collects them; read by the status line's
    thread (plain ints: a torn read shows one refresh a row behind)."""

    def __init__(self, total_rows: int | None, size_bytes: int, bytes_read: Any) -> None:
        self.total_rows = total_rows
        self.size_bytes = size_bytes
        self.bytes_read = bytes_read
        self.rows_read = 0
        self.value_bytes = 0
        self.delivered = 0
        self.failed = 0
        self.started = time.monotonic()

    def render(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.rows_read / elapsed
        if self.total_rows:
            done, total = self.rows_read, self.total_rows
        else:
            done, total = self.bytes_read(), self.size_bytes
        eta = ""
        if 0 < done < total:
            eta = f", ETA {(total - done) * elapsed / done:,.0f} s"
        return (f"{progress_bar(done, total)} {self.rows_read:,} rows, "
                f"{self.value_bytes / 1e6:,.1f} MB, {rate:,.0f} rows/s{eta}; "
                f"{self.delivered:,} delivered, {self.failed:,} failed")


def run(args: argparse.Namespace, settings: dict[str, Any]) -> int:
    """Sends the rows of --input with a producer of these settings (made by the console
    producer from args, after apply_file_defaults())."""
    from ..producer import Producer

    fmt = detect_format(args.input, args.input_format)
    header_columns = [c for c in (args.headers_columns or "").split(",") if c]
    text_columns = [c for c in [args.key_column, args.value_column, *header_columns] if c]
    import pyarrow as pa  # open_input() said how to install it if missing

    # what pyarrow raises for a file it cannot read: a clear line, not a traceback
    unreadable = (pa.ArrowException, OSError)
    try:
        source = open_input(args.input, fmt, args.chunk_rows, text_columns)
    except unreadable as e:
        print(f"kengine produce: cannot read {args.input} as {fmt}: {e}", file=sys.stderr)
        return 1
    progress = _Progress(source.total_rows, source.size_bytes, source.bytes_read)
    terminal = sys.stderr.isatty()
    status = StatusLine(progress.render, enabled=terminal)
    pending: deque[tuple[int, Any]] = deque()   # (first row, BulkFuture), oldest first
    reported = 0
    stopped_by: str | None = None
    interrupted = False

    def report(row: int, index: int, what: str) -> None:
        nonlocal reported
        reported += 1
        # the error names the record by its index in the chunk: the file's row number instead
        named = re.sub(rf"\brecord {index}\b", f"row {row}", what, count=1)
        what = named if named != what else f"row {row}: {what}"
        if reported <= _MAX_REPORTED_FAILURES:
            status.print(f"kengine produce: {what}", file=sys.stderr)
        elif reported == _MAX_REPORTED_FAILURES + 1:
            status.print("kengine produce: more rows failed; only their number is reported "
                         "from now on", file=sys.stderr)

    def collect(block: bool) -> None:
        while pending and (block or pending[0][1].done()):
            first, bulk = pending.popleft()
            result = bulk.result()
            progress.delivered += result.record_count - result.failed_count
            progress.failed += result.failed_count
            for index, error in result.errors.items():
                report(first + index, index, str(error))

    last_line = time.monotonic()
    producer = Producer(settings)
    try:
        with status:
            for batch in source.batches:
                if args.value_format == "json":
                    from ..arrow_json import json_rows

                    batch = batch.append_column("__kengine_json_row", json_rows(batch))
                    value_column = "__kengine_json_row"
                else:
                    value_column = args.value_column
                batch = _as_text(batch, [value_column, args.key_column, *header_columns])
                first = progress.rows_read
                pending.append((first, producer.send_arrow(
                    args.topic, batch, value=value_column, key=args.key_column,
                    headers=header_columns or None, timestamp=args.timestamp_column,
                    partition=args.partition_column)))
                progress.rows_read += batch.num_rows
                progress.value_bytes += batch.column(value_column).nbytes
                collect(block=len(pending) > _MAX_PENDING_CHUNKS)
                if not terminal and time.monotonic() - last_line >= args.progress_interval:
                    last_line = time.monotonic()
                    print(f"kengine produce: {progress.render()}", file=sys.stderr, flush=True)
            producer.flush()
            collect(block=True)
    except unreadable as e:
        stopped_by = (f"stopped after row {progress.rows_read}: cannot read {args.input} as "
                      f"{fmt} from there on: {e}")
    except (KafkaError, KeyError, TypeError, ValueError) as e:
        stopped_by = f"stopped after row {progress.rows_read}: {e}"
    except KeyboardInterrupt:
        stopped_by = f"interrupted after row {progress.rows_read}"
        interrupted = True
    finally:
        producer.close()
        source.close()
    try:
        collect(block=True)   # what close() delivered or failed
    except KafkaError:
        pass
    elapsed = time.monotonic() - progress.started
    if stopped_by is not None:
        print(f"kengine produce: {stopped_by}", file=sys.stderr)
    print(f"kengine produce: {progress.rows_read:,} rows read from {args.input} ({fmt}), "
          f"{progress.delivered:,} delivered, {progress.failed:,} failed, "
          f"{progress.value_bytes / 1e6:,.1f} MB of values in {elapsed:,.1f} s "
          f"({progress.rows_read / max(elapsed, 1e-9):,.0f} rows/s)", file=sys.stderr)
    if interrupted:
        return 130
    return 0 if not (progress.failed or stopped_by) else 1


def _as_text(batch: Any, columns: list[str | None]) -> Any:
    """Key, value and header columns of other types (numbers, dates, booleans) as their text,
    cast by pyarrow's kernels: a file's id column keys its records without a conversion step."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in columns:
        if name is None or name not in batch.schema.names:
            continue   # send_arrow() names the missing column
        t = batch.schema.field(name).type
        if pa.types.is_dictionary(t):
            t = t.value_type
        if (pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string(t)
                or pa.types.is_large_string(t) or pa.types.is_fixed_size_binary(t)
                or pa.types.is_string_view(t) or pa.types.is_binary_view(t)):
            continue
        i = batch.schema.get_field_index(name)
        try:
            batch = batch.set_column(i, name, pc.cast(batch.column(i), pa.string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise TypeError(f"column {name!r} is {t}, which has no text form to send: "
                            f"{e}") from None
    return batch
