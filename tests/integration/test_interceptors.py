"""Interceptors against a real broker: what on_send rewrites is what confluent-kafka reads
back; on_acknowledgement runs once per record with the broker's partition and offset, or the
error (failures before a batch included), for send(), send_many() and AIOProducer; the
governance built-ins (mask_fields, audit_headers) seen on the records read back."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from kengine import AIOProducer, Producer
from kengine.errors import InvalidPartitionError, RecordRejectedError, RecordTooLargeError
from kengine.interceptors import FailedRecordMetadata
from tests.support.loops import run
from tests.support.readback import read_all

pytestmark = pytest.mark.integration


class Rewrites:
    """Moves records of ``src`` to ``dst``, uppercases values, adds a header; records acks."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.acks = []
        self.lock = threading.Lock()

    def on_send(self, record):
        if record.topic == self.src:
            record.topic = self.dst
        record.value = record.value.upper() if record.value is not None else None
        record.headers.append(("seen-by", b"rewrites"))
        return record

    def on_acknowledgement(self, metadata, error):
        with self.lock:
            self.acks.append((metadata, error))


class Broken:
    def on_send(self, record):
        raise RuntimeError("broken interceptor")

    def on_acknowledgement(self, metadata, error):
        raise RuntimeError("broken acknowledgement")


def producer(kafka, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def by_value(records):
    return {r.value: r for r in records}


def test_send_and_send_many_go_through_the_chain_and_every_record_is_acknowledged(
        kafka, topic_factory, caplog):
    src, dst = topic_factory(kafka, partitions=3), topic_factory(kafka, partitions=3)
    rewrites = Rewrites(src, dst)
    with producer(kafka, interceptors=[Broken(), rewrites], linger_ms=5) as p:
        delivered = []
        futs = [p.send(src, b"one-%d" % i, key=b"k%d" % i,
                       on_delivery=lambda e, md: delivered.append((e, md)))
                for i in range(50)]
        bulk = p.send_many(src, [b"many-%d" % i for i in range(200)],
                           keys=[b"k%d" % i for i in range(200)])
        p.flush(60)
        assert bulk.result(30).ok
        metadata = [f.result(30) for f in futs] + bulk.result(0).metadata()
    assert all(e is None for e, _ in delivered) and len(delivered) == 50
    records = read_all(kafka.bootstrap_servers, dst, at_least=250)
    assert read_all(kafka.bootstrap_servers, src) == []   # moved by on_send, none left behind
    got = by_value(records)
    assert set(got) == {b"ONE-%d" % i for i in range(50)} | {b"MANY-%d" % i for i in range(200)}
    assert all(r.headers == [("seen-by", b"rewrites")] for r in records)
    # one acknowledgement per record, with the broker's partition and offset
    assert len(rewrites.acks) == 250 and all(err is None for _, err in rewrites.acks)
    assert sorted((m.topic, m.partition, m.offset) for m, _ in rewrites.acks) == \
        sorted((dst, r.partition, r.offset) for r in records) == \
        sorted((m.topic, m.partition, m.offset) for m in metadata)
    assert "broken interceptor" in caplog.text and "broken acknowledgement" in caplog.text


def test_records_failing_before_a_batch_are_acknowledged_with_their_error(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    rewrites = Rewrites(None, None)
    with producer(kafka, interceptors=[rewrites], max_request_size=10_000) as p:
        with pytest.raises(RecordTooLargeError):
            p.send(topic, b"x" * 20_000)
        with pytest.raises(InvalidPartitionError):
            p.send(topic, b"v", partition=7)
        bulk = p.send_many(topic, [b"ok", b"y" * 20_000, b"ok2"])
        result = bulk.result(30)
        assert set(result.errors) == {1}
    errors = [(m, e) for m, e in rewrites.acks if e is not None]
    assert [type(e) for _, e in errors] == [RecordTooLargeError, InvalidPartitionError,
                                            RecordTooLargeError]
    assert all(isinstance(m, FailedRecordMetadata) and m.topic == topic for m, _ in errors)
    assert errors[1][0].partition == 7
    delivered = [m for m, e in rewrites.acks if e is None]
    assert len(delivered) == 2
    assert sorted(r.value for r in read_all(kafka.bootstrap_servers, topic)) == [b"OK", b"OK2"]


def test_asyncio_producer_runs_each_interceptor_once_per_record(kafka, topic_factory):
    src, dst = topic_factory(kafka, partitions=2), topic_factory(kafka, partitions=2)
    rewrites = Rewrites(src, dst)
    sends = []

    class Counts:
        def on_send(self, record):
            sends.append(record.value)
            return record

    async def main():
        # a small buffer.memory: appends wait and are retried, on_send must not run again
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               interceptors=[Counts(), rewrites], enable_idempotence=False,
                               buffer_memory=64 * 1024, batch_size=16 * 1024) as p:
            futs = [await p.send(src, b"a-%d" % i + b"." * 500) for i in range(400)]
            bulk = await p.send_many(src, [b"b-%d" % i for i in range(300)])
            for f in futs:
                await f
            assert (await bulk).ok
            await p.flush()
        with pytest.raises(RecordTooLargeError):
            async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                                   interceptors=[rewrites], max_request_size=10_000) as p:
                await p.send(dst, b"z" * 20_000)
    run("asyncio", main)
    assert len(sends) == 700
    records = read_all(kafka.bootstrap_servers, dst, at_least=700)
    assert len(records) == 700 and all(r.value.startswith((b"A-", b"B-")) for r in records)
    assert len(rewrites.acks) == 701
    assert sum(1 for _, e in rewrites.acks if isinstance(e, RecordTooLargeError)) == 1


def test_send_many_records_moved_to_other_partitions_go_in_calls_of_their_own(
        kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)

    class Spread:
        def on_send(self, record):
            record.partition = int(record.value) % 3
            return record
    with producer(kafka, interceptors=[Spread()]) as p:
        bulk = p.send_many(topic, [b"%d" % i for i in range(90)])
        result = bulk.result(30)
        assert result.ok and result.record_count == 90
        md = result.metadata()
    assert [m.partition for m in md] == [i % 3 for i in range(90)]   # indexed like the input
    records = read_all(kafka.bootstrap_servers, topic, at_least=90)
    assert all(r.partition == int(r.value) % 3 for r in records)


def test_mask_fields_and_audit_headers_reach_the_consumer(kafka, topic_factory):
    orders, other = topic_factory(kafka), topic_factory(kafka)
    with producer(kafka, interceptors=["mask_fields", "audit_headers"], client_id="billing-7",
                  value_serializer="json",
                  interceptor_mask_fields={orders: ["email", "card.number"]},
                  interceptor_mask_salt="pepper",
                  interceptor_audit_application="billing") as p:
        masker = p._interceptors.interceptors[0]
        p.send(orders, {"id": 1, "email": "a@example.com", "card": {"number": "4111", "cvc": 1}})
        p.send_many(orders, [{"id": 2, "email": "b@example.com"}, {"id": 3}])
        p.send(other, {"id": 4, "email": "kept@example.com"})
        with pytest.raises(RecordRejectedError, match="cannot be masked"):
            p.send(orders, [1, 2])
        p.flush(60)
    values = [json.loads(r.value) for r in read_all(kafka.bootstrap_servers, orders,
                                                     at_least=3)]
    assert values == [
        {"id": 1, "email": masker.hash("a@example.com"), "card": {"number": masker.hash("4111"),
                                                                  "cvc": 1}},
        {"id": 2, "email": masker.hash("b@example.com")}, {"id": 3}]
    assert "a@example.com" not in json.dumps(values)
    [kept] = read_all(kafka.bootstrap_servers, other)
    assert json.loads(kept.value)["email"] == "kept@example.com"
    assert dict(kept.headers) == {"audit.client.id": b"billing-7",
                                  "audit.host": socket.gethostname().encode(),
                                  "audit.application": b"billing"}


def test_dead_letters_are_not_intercepted_again(kafka, topic_factory):
    small = topic_factory(kafka, config={"max.message.bytes": 1000})
    dlq = topic_factory(kafka)
    rewrites = Rewrites(None, None)
    with producer(kafka, interceptors=["mask_fields", rewrites], dead_letter_topic=dlq,
                  interceptor_mask_fields=["email"]) as p:
        fut = p.send(small, b'{"email":"a@b.c","pad":"' + b"x" * 5000 + b'"}')
        assert fut.exception(timeout=30) is not None
        p.flush(60)
    [copy] = read_all(kafka.bootstrap_servers, dlq, at_least=1)
    assert b"a@b.c" not in copy.value and copy.value.startswith(b'{"EMAIL":"SHA256:')
    assert [k for k, _ in copy.headers].count("seen-by") == 1   # once, by the original send
    [(_, error)] = rewrites.acks
    assert error is not None


class AckLog(list):
    """(metadata, error) of every acknowledgement, in order."""

    def on_acknowledgement(self, metadata, error):
        self.append((metadata, error))


def _arrow_orders(n):
    """n rows: JSON values with an email, keys (every 7th null), a header column, timestamps
    (row 5's before 1970: send_arrow() refuses it) and a partition column."""
    import pyarrow as pa
    return pa.table({
        "v": pa.array([json.dumps({"id": i, "email": f"u{i}@example.com"}) for i in range(n)]),
        "k": pa.array([None if i % 7 == 0 else f"key-{i}" for i in range(n)]),
        "trace": pa.array([f"t{i}".encode() for i in range(n)], pa.binary()),
        "ts": pa.array([-5 if i == 5 else 1_700_000_000_000 + i for i in range(n)], pa.int64()),
        "p": pa.array([i % 3 for i in range(n)], pa.int32()),
    })


def _check_arrow_rows(kafka, topic, n, result, masker, acks):
    assert result.record_count == n
    [(row, error)] = result.errors.items()
    assert row == 5 and "before 1970" in str(error)
    md = result.metadata()
    assert md[5] is None and all(md[i].partition == i % 3 for i in range(n) if i != 5)
    records = read_all(kafka.bootstrap_servers, topic, at_least=n - 1)
    assert len(records) == n - 1
    by_id = {json.loads(r.value)["id"]: r for r in records}
    assert set(by_id) == set(range(n)) - {5}
    for i, r in by_id.items():
        assert json.loads(r.value)["email"] == masker.hash(f"u{i}@example.com")
        assert r.key == (None if i % 7 == 0 else b"key-%d" % i)
        assert r.partition == i % 3 and r.timestamp_ms == 1_700_000_000_000 + i
        headers = dict(r.headers)
        assert headers["trace"] == b"t%d" % i and headers["audit.application"] == b"ingest"
    # every row acknowledged once: the refused one with its error, before any batch
    assert len(acks) == n
    failed = [(md, e) for md, e in acks if e is not None]
    assert len(failed) == 1 and failed[0][0].partition == 5 % 3


def test_send_arrow_runs_the_chain_per_row_and_results_are_indexed_by_row(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    acks = AckLog()
    n = 300
    with producer(kafka, interceptors=["mask_fields", "audit_headers", acks],
                  interceptor_mask_fields={topic: ["email"]},
                  interceptor_audit_application="ingest") as p:
        masker = p._interceptors.interceptors[0]
        bulk = p.send_arrow(topic, _arrow_orders(n), "v", key="k", headers=["trace"],
                            timestamp="ts", partition="p")
        result = bulk.result(60)
    _check_arrow_rows(kafka, topic, n, result, masker, acks)


def test_asyncio_send_arrow_runs_the_chain_per_row(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=3)
    acks = AckLog()
    n = 200
    out = {}

    async def main():
        async with AIOProducer(bootstrap_servers=kafka.bootstrap_servers,
                               interceptors=["mask_fields", "audit_headers", acks],
                               interceptor_mask_fields={topic: ["email"]},
                               interceptor_audit_application="ingest") as p:
            out["masker"] = p._producer._interceptors.interceptors[0]
            bulk = await p.send_arrow(topic, _arrow_orders(n), "v", key="k",
                                      headers=["trace"], timestamp="ts", partition="p")
            out["result"] = await bulk
    run("asyncio", main)
    _check_arrow_rows(kafka, topic, n, out["result"], out["masker"], acks)
