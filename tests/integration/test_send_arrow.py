"""Producer.send_arrow() against a real Kafka broker: Arrow tables go to Kafka with no Python
object per row, and every row is read back by an independent consumer (confluent-kafka), row by
row: key, value, headers, timestamp and partition."""
from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import polars as pl
import pyarrow as pa
import pytest

import kengine_ext
from kengine import Producer
from kengine.aio import AIOProducer
from kengine.errors import (
    IllegalStateError,
    InvalidPartitionError,
    PartitionerError,
    RecordTooLargeError,
    SerializationError,
)
from tests.support.readback import read_all

BASE_MS = 1_700_000_000_000


def producer(kafka, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def rows_table(n, *, chunks=4, start=0):
    """n rows over `chunks` record batches: a row id header, keys (every 7th null), values (every
    11th a tombstone, every 13th empty), a nullable header and microsecond timestamps (every 17th
    null: the producer's clock)."""
    batches = []
    per = -(-n // chunks)
    for lo in range(start, start + n, per):
        ids = range(lo, min(lo + per, start + n))
        batches.append(pa.record_batch({
            "id": pa.array([str(i) for i in ids], pa.string()),
            "key": pa.array([None if i % 7 == 0 else f"user-{i % 97}" for i in ids], pa.string()),
            "value": pa.array([None if i % 11 == 0 else b"" if i % 13 == 0 else b"v%d" % i * 3
                               for i in ids], pa.binary()),
            "tag": pa.array([None if i % 3 == 0 else f"t{i % 5}" for i in ids], pa.string()),
            "ts": pa.array([None if i % 17 == 0 else (BASE_MS + i) * 1000 for i in ids],
                           pa.timestamp("us")),
        }))
    return pa.Table.from_batches(batches)


def expected_row(i):
    return {"key": None if i % 7 == 0 else f"user-{i % 97}".encode(),
            "value": None if i % 11 == 0 else b"" if i % 13 == 0 else b"v%d" % i * 3,
            "tag": None if i % 3 == 0 else f"t{i % 5}".encode(),
            "ts": None if i % 17 == 0 else BASE_MS + i}


def check_rows(records, ids, partitions, *, before_ms, after_ms):
    """Every row of `ids` arrived exactly once with its fields; keyed rows on Java's partition."""
    by_id = defaultdict(list)
    for r in records:
        by_id[int(dict(r.headers)["id"])].append(r)
    assert sorted(by_id) == sorted(ids), "rows missing or unexpected"
    for i in ids:
        (r,) = by_id[i]   # once
        want = expected_row(i)
        assert (r.key, r.value) == (want["key"], want["value"]), i
        assert r.headers == [("id", str(i).encode()), ("tag", want["tag"])], i
        if want["ts"] is None:
            assert before_ms <= r.timestamp_ms <= after_ms, i
        else:
            assert r.timestamp_ms == want["ts"], i
        if r.key is not None:
            assert r.partition == kengine_ext.partition_for_key(r.key, partitions), i


def test_a_multi_chunk_table_arrives_row_by_row(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=6)
    n = 20_000
    table = rows_table(n, chunks=5)
    assert table.column("value").num_chunks == 5
    # idempotence: the first sends to a new topic may be retried, which without it may reorder
    with producer(kafka, linger_ms=5, compression_type="lz4", enable_idempotence=True) as p:
        before = int(time.time() * 1000) - 1000
        result = p.send_arrow(topic, table, value="value", key="key",
                              headers=["id", "tag"], timestamp="ts").result(60)
        after = int(time.time() * 1000) + 1000
    assert result.ok and result.record_count == n
    records = read_all(kafka.bootstrap_servers, topic, at_least=n)
    check_rows(records, range(n), 6, before_ms=before, after_ms=after)
    # the metadata is indexed by row, as send_many()'s by input index
    where = {int(dict(r.headers)["id"]): (r.partition, r.offset) for r in records}
    md = result.metadata()
    for i in range(n):
        assert (md[i].partition, md[i].offset) == where[i]
        assert md[i].serialized_value_size == (-1 if i % 11 == 0 else len(expected_row(i)["value"]))
    assert_key_order(records)


def assert_key_order(records):
    """Each key's rows are in row order (in offset order on their partition)."""
    per_key = defaultdict(list)
    for r in records:
        if r.key is not None:
            per_key[r.key].append(int(dict(r.headers)["id"]))
    assert per_key
    for ids in per_key.values():
        assert ids == sorted(ids)


def view_text(i):
    """Null, inline in its view (12 bytes or fewer) or out of line in a data buffer."""
    if i % 4 == 0:
        return None
    return f"long enough to live out of line {i}" if i % 2 else f"inline{i}"


def test_sliced_large_view_dictionary_and_fixed_size_columns(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=4)
    n = 3000
    ids = [str(i) for i in range(n)]
    words = [None if i % 9 == 0 else f"word-{i % 23}" for i in range(n)]
    values = [None if i % 10 == 0 else b"x" * (i % 50) for i in range(n)]
    full = pa.table({
        "id": pa.array(ids, pa.large_string()),
        "key": pa.array(words, pa.string()).dictionary_encode(),
        "value": pa.array(values, pa.large_binary()),
        "fixed": pa.array([b"%08d" % i for i in range(n)], pa.binary(8)),
        "view": pa.array([view_text(i) for i in range(n)], pa.string_view()),
        "bview": pa.array(values, pa.binary_view()),
        "ms": pa.array([BASE_MS + i for i in range(n)], pa.int64()),
    })
    # slices (offsets into every buffer), one of them across a chunk boundary
    table = pa.concat_tables([full.slice(5, 1000), full.slice(1500, 1200)])
    table = pa.Table.from_batches(table.to_batches(max_chunksize=700))
    rows = list(range(5, 1005)) + list(range(1500, 2700))
    assert table.num_rows == len(rows)
    with producer(kafka, linger_ms=5) as p:
        r1 = p.send_arrow(topic, table, value="value", key="key", headers=["id", "view"],
                          timestamp="ms")
        r2 = p.send_arrow(topic, table, value="fixed", key="id", headers={"v": "bview"},
                          timestamp="ms")
        assert r1.result(60).ok and r2.result(60).ok
    got = read_all(kafka.bootstrap_servers, topic, at_least=2 * len(rows))
    first = [r for r in got if r.headers and r.headers[0][0] == "id"]
    second = [r for r in got if r.headers and r.headers[0][0] == "v"]
    assert len(first) == len(second) == len(rows)
    by_id = {int(dict(r.headers)["id"]): r for r in first}
    assert sorted(by_id) == rows
    for i in rows:
        r = by_id[i]
        view = view_text(i)
        assert r.key == (None if words[i] is None else words[i].encode())
        assert r.value == values[i]
        assert r.headers[1] == ("view", None if view is None else view.encode())
        assert r.timestamp_ms == BASE_MS + i
        if r.key is not None:
            assert r.partition == kengine_ext.partition_for_key(r.key, 4)
    by_key = {int(r.key): r for r in second}
    assert sorted(by_key) == rows
    for i in rows:
        r = by_key[i]
        assert r.value == b"%08d" % i and r.headers == [("v", values[i])]
        assert r.partition == kengine_ext.partition_for_key(str(i).encode(), 4)


def test_a_polars_dataframe_goes_through_the_c_stream_interface(kafka, topic_factory):
    """Polars exports with its own Arrow implementation (not pyarrow's), as views."""
    topic = topic_factory(kafka, partitions=3)
    n = 2000
    df = pl.DataFrame({
        "key": [None if i % 6 == 0 else f"key-{i % 40}" for i in range(n)],
        "value": [None if i % 8 == 0 else f"a value long enough for a buffer {i}".encode()
                  if i % 2 else b"%d" % i for i in range(n)],
        "id": [str(i) for i in range(n)],
        "at": [BASE_MS + i for i in range(n)],
    })
    with producer(kafka) as p:
        result = p.send_arrow(topic, df, value="value", key="key", headers=["id"],
                              timestamp="at").result(60)
    assert result.ok and result.record_count == n
    got = read_all(kafka.bootstrap_servers, topic, at_least=n)
    by_id = {int(dict(r.headers)["id"]): r for r in got}
    assert sorted(by_id) == list(range(n))
    rows = df.rows()
    for i, r in by_id.items():
        key, value, _, at = rows[i]
        assert (r.key, r.value, r.timestamp_ms) == (None if key is None else key.encode(),
                                                     value, at)
        if r.key is not None:
            assert r.partition == kengine_ext.partition_for_key(r.key, 3)


def test_a_pandas_dataframe_goes_through_the_c_stream_interface(kafka, topic_factory):
    """pandas (2.2+) exports a DataFrame as an Arrow C stream: object columns of bytes and
    str, None as null, an int64 millisecond column as the timestamp."""
    import pandas as pd
    topic = topic_factory(kafka, partitions=4)
    n = 1500
    keys = [None if i % 5 == 0 else f"k{i % 30}" for i in range(n)]
    values = [None if i % 9 == 0 else b"pandas row %d" % i for i in range(n)]
    df = pd.DataFrame({"key": keys, "value": values, "id": [str(i) for i in range(n)],
                       "at": [BASE_MS + i for i in range(n)]})
    with producer(kafka) as p:
        result = p.send_arrow(topic, df, value="value", key="key", headers=["id"],
                              timestamp="at").result(60)
    assert result.ok and result.record_count == n
    got = read_all(kafka.bootstrap_servers, topic, at_least=n)
    by_id = {int(dict(r.headers)["id"]): r for r in got}
    assert sorted(by_id) == list(range(n))
    for i, r in by_id.items():
        assert r.key == (None if keys[i] is None else keys[i].encode())   # NaN in pandas
        assert r.value == values[i] and r.timestamp_ms == BASE_MS + i
        if r.key is not None:
            assert r.partition == kengine_ext.partition_for_key(r.key, 4)


def test_a_nanoarrow_stream_built_without_pyarrow(kafka, topic_factory):
    """nanoarrow is an Arrow implementation of its own (C, not pyarrow's C++): a struct array
    built from its buffers, exported as a C stream, arrives row by row."""
    import nanoarrow as na
    topic = topic_factory(kafka, partitions=2)
    n = 700
    values = [None if i % 11 == 0 else b"nano-%d" % i for i in range(n)]
    keys = [None if i % 4 == 0 else f"key-{i % 17}" for i in range(n)]
    ids = [b"%d" % i for i in range(n)]
    schema = na.struct({"v": na.binary(), "k": na.string(), "id": na.large_binary()})
    table = na.c_array_from_buffers(schema, n, [None], children=[
        na.c_array(values, na.binary()), na.c_array(keys, na.string()),
        na.c_array(ids, na.large_binary())])
    with producer(kafka) as p:
        result = p.send_arrow(topic, na.c_array_stream(table), value="v", key="k",
                              headers=["id"]).result(60)
    assert result.ok and result.record_count == n
    got = read_all(kafka.bootstrap_servers, topic, at_least=n)
    by_id = {int(dict(r.headers)["id"]): r for r in got}
    assert sorted(by_id) == list(range(n))
    for i, r in by_id.items():
        assert r.value == values[i]
        assert r.key == (None if keys[i] is None else keys[i].encode())


def test_rows_that_cannot_be_sent_fail_alone_under_their_row_index(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    n = 40
    table = pa.table({
        "value": pa.array([b"big" * 400_000 if i == 7 else b"%d" % i for i in range(n)]),
        "part": pa.array([None if i % 4 == 0 else 9 if i == 5 else -1 if i == 6 else i % 3
                          for i in range(n)], pa.int32()),
        "ts": pa.array([-5 if i == 11 else BASE_MS + i for i in range(n)], pa.int64()),
    })
    with producer(kafka) as p:
        result = p.send_arrow(topic, table, value="value", timestamp="ts",
                              partition="part").result(60)
    assert sorted(result.errors) == [5, 6, 7, 11]
    assert isinstance(result.errors[5], InvalidPartitionError)
    assert "record 5" in str(result.errors[5])
    assert "partition 9 is outside [0, 3)" in str(result.errors[5])
    assert isinstance(result.errors[6], InvalidPartitionError)
    assert isinstance(result.errors[7], RecordTooLargeError) and "record 7" in str(result.errors[7])
    assert isinstance(result.errors[11], SerializationError) and "'ts'" in str(result.errors[11])
    got = read_all(kafka.bootstrap_servers, topic, at_least=n - 4)
    assert sorted(int(r.value) for r in got) == [i for i in range(n) if i not in (5, 6, 7, 11)]
    for r in got:
        i = int(r.value)
        assert r.timestamp_ms == BASE_MS + i
        if i % 4:
            assert r.partition == i % 3


def test_unusable_data_and_columns_are_refused_clearly_before_anything_is_sent(kafka, topic):
    table = pa.table({"v": [b"a"], "n": pa.array([1], pa.int64()), "s": ["x"],
                      "l": pa.array([[1]], pa.list_(pa.int64()))})
    with producer(kafka) as p:
        with pytest.raises(TypeError, match="needs value="):
            p.send_arrow(topic, table, value=None)
        with pytest.raises(KeyError, match=r"no column 'nope' \(the key column\).*\['v', 'n'"):
            p.send_arrow(topic, table, value="v", key="nope")
        with pytest.raises(TypeError, match="value column 'n' is int64.*convert it first"):
            p.send_arrow(topic, table, value="n")
        with pytest.raises(TypeError, match="header column 'l' is list"):
            p.send_arrow(topic, table, value="v", headers=["l"])
        with pytest.raises(TypeError, match="did you mean"):
            p.send_arrow(topic, table, value="v", headers="s")
        with pytest.raises(TypeError, match="timestamp column 's' is string"):
            p.send_arrow(topic, table, value="v", timestamp="s")
        with pytest.raises(TypeError, match="partition column 's' is string"):
            p.send_arrow(topic, table, value="v", partition="s")
        with pytest.raises(TypeError, match="not list"):
            p.send_arrow(topic, [b"a"], value="v")
        with pytest.raises(TypeError, match="tabular Arrow data.*not binary"):
            p.send_arrow(topic, pa.array([b"a"]), value="v")
        p.send_arrow(topic, table, value="v").result(30)
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic, at_least=1)] == [b"a"]


def test_a_python_partitioner_is_called_per_row_with_bytes(kafka, topic_factory):
    seen = []

    class ByTag:
        def partition(self, topic, key, value, headers, num_partitions, available):
            seen.append((key, value, headers))
            if value == b"refuse":
                raise KeyError("no partition for this row")
            return int(dict(headers)["tag"]) % num_partitions

    topic = topic_factory(kafka, partitions=3)
    table = pa.table({"k": ["a", None, "c", "d"], "v": [b"1", b"2", b"refuse", None],
                      "tag": ["0", "1", "2", "5"]})
    with producer(kafka, partitioner=ByTag()) as p:
        result = p.send_arrow(topic, table, value="v", key="k", headers=["tag"]).result(30)
    assert list(result.errors) == [2] and isinstance(result.errors[2], PartitionerError)
    assert seen[0] == (b"a", b"1", [("tag", b"0")]) and seen[3] == (b"d", None, [("tag", b"5")])
    got = {r.value: r.partition for r in read_all(kafka.bootstrap_servers, topic, at_least=3)}
    assert got == {b"1": 0, b"2": 1, None: 2}


def test_send_arrow_inside_a_transaction(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    table = rows_table(3000, chunks=2)
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"arrow-{topic}") as p:
        p.init_transactions()
        with pytest.raises(IllegalStateError, match="begin_transaction"):
            p.send_arrow(topic, table, value="value")
        with p.transaction():
            p.send_arrow(topic, table, value="value", key="key", headers=["id", "tag"],
                         timestamp="ts")
        p.begin_transaction()
        p.send_arrow(topic, rows_table(10, start=5000), value="value", key="key",
                     headers=["id", "tag"], timestamp="ts")
        p.abort_transaction()
    records = read_all(kafka.bootstrap_servers, topic, read_committed=True, at_least=3000)
    check_rows(records, range(3000), 2, before_ms=0, after_ms=int(time.time() * 1000))


def test_the_asyncio_producer_sends_arrow_and_resumes_after_memory_waits(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    n = 30_000
    table = rows_table(n, chunks=3)

    async def main():
        # buffer.memory far below the table: the call appends what fits, waits on the loop,
        # then sends the rows refused for memory (in order)
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5,
                               enable_idempotence=True, buffer_memory=256 * 1024,
                               batch_size=16 * 1024) as p:
            fut = await p.send_arrow(topic, table, value="value", key="key",
                                     headers=["id", "tag"], timestamp="ts")
            return await fut

    before = int(time.time() * 1000) - 1000
    result = asyncio.run(main())
    after = int(time.time() * 1000) + 1000
    assert result.ok and result.record_count == n
    records = read_all(kafka.bootstrap_servers, topic, at_least=n)
    check_rows(records, range(n), 3, before_ms=before, after_ms=after)
    where = {int(dict(r.headers)["id"]): (r.partition, r.offset) for r in records}
    assert [(m.partition, m.offset) for m in result.metadata()] == [where[i] for i in range(n)]
    # unkeyed rows resent after a memory wait may land behind later rows: only keys order
    assert_key_order(records)
