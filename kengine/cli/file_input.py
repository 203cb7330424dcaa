"""The files ``kengine produce --input`` reads: Parquet, Arrow IPC (file or stream), JSON lines
and CSV, each read in record batches of a bounded number of rows, so that memory does not grow
with the file. pyarrow does the reading (``pip install 'kengine-kafka[arrow]'``); the rows go to
``Producer.send_arrow()`` as they are.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import UsageError

__all__ = ["FORMATS", "InputFile", "detect_format", "open_input"]

FORMATS = ("parquet", "arrow", "jsonl", "csv")

_EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".arrow": "arrow", ".ipc": "arrow",
               ".feather": "arrow", ".arrows": "arrow", ".jsonl": "jsonl", ".ndjson": "jsonl",
               ".json": "jsonl", ".csv": "csv"}


def detect_format(path: str, given: str | None) -> str:
    """``--format``, else the format the file's extension names."""
    if given is not None:
        return given
    ext = os.path.splitext(path)[1].lower()
    if ext not in _EXTENSIONS:
        raise UsageError(f"--input {path}: cannot tell its format from the extension "
                         f"{ext or '(none)'!r}; give --format ({', '.join(FORMATS)})")
    return _EXTENSIONS[ext]


@dataclass
class InputFile:
    """An open input: ``batches`` yields record batches of at most ``chunk_rows`` rows;
    ``total_rows`` is known up front for Parquet and Arrow IPC files (None otherwise);
    ``bytes_read()`` says how far into the file the reader is, for the ETA of text formats."""
    path: str
    format: str
    size_bytes: int
    total_rows: int | None
    batches: Iterator[Any]
    _file: Any = None

    def bytes_read(self) -> int:
        if self._file is None:
            return 0
        try:
            return int(self._file.tell())
        except (OSError, ValueError):
            return 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError:
        raise UsageError("--input needs pyarrow, which reads the file: "
                         "pip install 'kengine-kafka[arrow]'") from None
    return pyarrow


def open_input(path: str, fmt: str, chunk_rows: int, string_columns: list[str]) -> InputFile:
    """Opens ``path`` for reading in chunks. string_columns: columns read as text from CSV
    whatever they look like (keys and headers: "007" stays "007")."""
    pa = _pyarrow()
    if not os.path.isfile(path):
        raise UsageError(f"--input {path}: no such file")
    size = os.path.getsize(path)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # read column chunks a buffer at a time: pre-buffering (pyarrow's default) holds a
        # whole row group's bytes, and peak RSS then grows with the file's row groups
        pf = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        return InputFile(path, fmt, size, pf.metadata.num_rows,
                         pf.iter_batches(batch_size=chunk_rows))
    if fmt == "arrow":
        # a plain file, not a memory map: the pages of a map count in RSS as they are read
        source = pa.OSFile(path)
        try:
            reader = pa.ipc.open_file(source)
        except pa.ArrowInvalid:   # not the file format: the stream format
            source.seek(0)
            stream = pa.ipc.open_stream(source)
            return InputFile(path, fmt, size, None, _rechunk(iter(stream), chunk_rows), source)
        count = getattr(reader, "count_rows", None)   # pyarrow 16+: from the footer
        total = count() if count is not None else None
        return InputFile(path, fmt, size, total,
                         _rechunk((reader.get_batch(i) for i in range(reader.num_record_batches)),
                                  chunk_rows), source)
    if fmt == "csv":
        import pyarrow.csv as pcsv

        f = open(path, "rb")   # noqa: SIM115 (closed by InputFile.close)
        reader = pcsv.open_csv(
            f, read_options=pcsv.ReadOptions(block_size=_block_bytes(size, chunk_rows, f)),
            convert_options=pcsv.ConvertOptions(
                column_types={c: pa.string() for c in string_columns}))
        return InputFile(path, fmt, size, None, _rechunk(iter(reader), chunk_rows), f)
    if fmt == "jsonl":
        import pyarrow.json as pjson

        # JSON says what is text: a number stays a number (the sender casts it to its text)
        f = open(path, "rb")   # noqa: SIM115 (closed by InputFile.close)
        reader = pjson.open_json(
            f, read_options=pjson.ReadOptions(block_size=_block_bytes(size, chunk_rows, f)))
        return InputFile(path, fmt, size, None, _rechunk(iter(reader), chunk_rows), f)
    raise UsageError(f"--format {fmt}: use one of {', '.join(FORMATS)}")


def _block_bytes(size: int, chunk_rows: int, f: Any) -> int:
    """Bytes per block of a text reader: about chunk_rows rows, judged from the first 64 KiB."""
    head: bytes = f.read(65536)
    f.seek(0)
    lines = max(1, head.count(b"\n"))
    per_row = max(1, len(head) // lines)
    return int(max(1 << 16, min(1 << 28, per_row * chunk_rows)))


def _rechunk(batches: Iterator[Any], chunk_rows: int) -> Iterator[Any]:
    """The batches, none longer than chunk_rows (slices: no copy)."""
    for batch in batches:
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)
