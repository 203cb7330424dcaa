"""Serializers that take the serialization context (topic, field, headers): what they are
given, the headers they add reaching the record, and the older shapes unchanged. The send path
is driven without a network (tests/support/core.py); its batches are decoded with kafka-python
(an independent reader)."""
from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatch

import kengine_ext as k
from kengine.errors import SerializationError
from kengine.serialization import MessageField, SerializationContext, takes_context
from tests.support.core import Core as _Core


class Core(_Core):
    """One topic "t" of one partition (leader 0), batches of 64 KiB, sent at once."""

    def __init__(self, **overrides):
        super().__init__({"t": 1}, linger_ms=0, batch_size=1 << 16, buffer_memory=1 << 22,
                         **overrides)

    def records(self):
        out = []
        for batches in self.acc.drain({0}, 1 << 30, k.monotonic_ms() + 10_000).values():
            for b in batches:
                out.extend((r.key, r.value, r.headers)
                           for r in DefaultRecordBatch(bytes(self.acc.seal(b))))
        return out


def test_context_serializers_see_topic_field_and_headers_and_may_add_headers():
    seen = []

    def value_serializer(value, ctx):
        seen.append((ctx.topic, ctx.field, list(ctx.headers)))
        ctx.headers.append(("content-type", b"text/plain"))
        return value.upper().encode()

    def key_serializer(key, ctx):
        seen.append((ctx.topic, ctx.field, list(ctx.headers)))
        ctx.headers.append(("key-id", b"7"))
        return key.encode()

    core = Core(key_serializer=key_serializer, value_serializer=value_serializer)
    core.send("t", "a", key="k1", headers=[("trace", b"x")])
    core.send("t", "b", key="k2", headers={"trace": b"y"})
    core.send("t", "c")   # no key: the key serializer is not called
    assert seen == [
        ("t", "key", [("trace", b"x")]), ("t", "value", [("trace", b"x"), ("key-id", b"7")]),
        ("t", "key", [("trace", b"y")]), ("t", "value", [("trace", b"y"), ("key-id", b"7")]),
        ("t", "value", [])]
    assert core.records() == [
        (b"k1", b"A", [("trace", b"x"), ("key-id", b"7"), ("content-type", b"text/plain")]),
        (b"k2", b"B", [("trace", b"y"), ("key-id", b"7"), ("content-type", b"text/plain")]),
        (None, b"C", [("content-type", b"text/plain")])]


def test_send_many_gives_each_record_its_context_and_refuses_a_failing_one_alone():
    def serializer(value, ctx):
        if value == "bad":
            raise ValueError("no")
        ctx.headers.append(("n", value.encode()))
        return value.encode()

    core = Core(value_serializer=serializer)
    fut = core.send_many("t", ["a", "bad", "c"], headers=[[("h", b"1")], None, None])
    assert core.records() == [(None, b"a", [("h", b"1"), ("n", b"a")]),
                              (None, b"c", [("n", b"c")])]
    assert fut.record_count == 3


def test_older_shapes_are_called_as_before():
    calls = []

    def one(value):
        calls.append(("one", value))
        return b"1"

    def with_option(value, encoding="ascii"):
        calls.append(("option", value, encoding))
        return value.encode(encoding)

    class Kafka:
        def serialize(self, topic, value):
            calls.append(("kafka", topic, value))
            return b"k"

    assert not takes_context(one) and not takes_context(with_option)
    assert not takes_context(bytes) and takes_context(lambda v, ctx=None: v)
    for serializer in (one, with_option, Kafka()):
        Core(value_serializer=serializer).send("t", "v")
    assert calls == [("one", "v"), ("option", "v", "ascii"), ("kafka", "t", "v")]


def test_a_context_serializer_error_names_the_field():
    def broken(value, ctx):
        raise ValueError(f"cannot {ctx.field}")

    with pytest.raises(SerializationError, match="key serializer failed .*cannot key"):
        Core(key_serializer=broken).send("t", b"v", key="k")


def test_the_context_object():
    ctx = SerializationContext("t", MessageField.KEY, {"a": b"1"})
    assert (ctx.topic, ctx.field, ctx.headers) == ("t", "key", [("a", b"1")])
    assert SerializationContext("t").headers_to_send() is None
