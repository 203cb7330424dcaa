"""Bad input, case by case, on a real broker: each case raises its exact error type and
message, and the records the producer accepted before it are still delivered (read back with
confluent-kafka)."""
from __future__ import annotations

import re
import socket

import pytest

from kengine import Producer
from kengine.errors import (
    ConfigError,
    InvalidPartitionError,
    InvalidTopicError,
    KafkaTimeoutError,
    ProducerClosedError,
    RecordTooLargeError,
    SerializationError,
    TransactionAbortableError,
)
from tests.support.readback import read_all

EARLIER = [b"earlier-%d" % i for i in range(5)]


def producer(kafka, **settings):
    settings.setdefault("enable_idempotence", False)
    return Producer(bootstrap_servers=kafka.bootstrap_servers, **settings)


def send_earlier(p, topic):
    return [p.send(topic, v, partition=0) for v in EARLIER]


def assert_earlier_delivered(kafka, topic, futures):
    assert [f.result(30).offset for f in futures] == list(range(len(EARLIER)))
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)
            if r.partition == 0] == EARLIER


def _failing_serializer(value):
    if isinstance(value, bytes):
        return value
    raise ValueError(f"cannot serialize {value!r}")


# (case, producer settings, the bad call, error type, exact message with {topic})
SEND_CASES = [
    ("non-bytes value without a serializer", {}, lambda p, t: p.send(t, 3.5),
     SerializationError, ("value must be bytes, str, a buffer-protocol object or None, not "
                          "float; configure a serializer for other types")),
    ("non-bytes key without a serializer", {}, lambda p, t: p.send(t, b"v", key={"id": 1}),
     SerializationError, ("key must be bytes, str, a buffer-protocol object or None, not dict; "
                          "configure a serializer for other types")),
    ("a serializer that raises", {"value_serializer": _failing_serializer},
     lambda p, t: p.send(t, {"a": 1}),
     SerializationError, ("the value serializer failed for a record to '{topic}': ValueError: "
                          "cannot serialize {{'a': 1}}")),
    ("a record over max.request.size", {"max_request_size": 1000},
     lambda p, t: p.send(t, b"x" * 2000),
     RecordTooLargeError, ("[MESSAGE_TOO_LARGE (10)] the record to '{topic}' is 2078 bytes when "
                           "serialized, more than max.request.size (1000) or buffer.memory "
                           "(33554432); nothing was sent")),
    ("header keys that are not str", {}, lambda p, t: p.send(t, b"v", headers=[(b"k", b"v")]),
     SerializationError, "header key b'k' must be str, not bytes"),
    ("header values that are not bytes", {}, lambda p, t: p.send(t, b"v", headers={"k": 5}),
     SerializationError, ("value of header 'k' must be bytes, str, a buffer-protocol object or "
                          "None, not int; configure a serializer for other types")),
    ("an invalid topic name", {}, lambda p, t: p.send("orders/2024!", b"v"),
     InvalidTopicError, ("[INVALID_TOPIC_EXCEPTION (17)] topic name 'orders/2024!' contains "
                         "'!/'; only ASCII letters, digits, '.', '_' and '-' are allowed")),
    ("a topic name that is too long", {}, lambda p, t: p.send("x" * 250, b"v"),
     InvalidTopicError, ("[INVALID_TOPIC_EXCEPTION (17)] topic name is 250 characters; the "
                         "limit is 249")),
    ("a partition out of range", {}, lambda p, t: p.send(t, b"v", partition=3),
     InvalidPartitionError, "partition 3 is outside [0, 2) for topic '{topic}'"),
    ("a topic that does not exist with auto-creation off", {"max_block_ms": 1500},
     lambda p, t: p.send(t + "-missing", b"v"),
     KafkaTimeoutError, ("topic '{topic}-missing' not present in metadata after 1500 ms "
                         "(max.block.ms): the brokers answered that it does not exist, and "
                         "they do not create topics on first use "
                         "(auto.create.topics.enable=false): create it first (kengine topics "
                         "create, or kafka-topics.sh --create)")),
    ("a partition that is a str", {}, lambda p, t: p.send(t, b"v", partition="1"),
     TypeError, ("partition must be an int (a partition number of '{topic}') or None, not str "
                 "('1'); nothing was sent")),
    ("a partition that is a str in send_many", {},
     lambda p, t: p.send_many(t, [b"v"], partition="1"),
     TypeError, ("partition must be an int (a partition number of '{topic}') or None, not str "
                 "('1'); nothing was sent")),
    ("a negative timestamp", {}, lambda p, t: p.send(t, b"v", timestamp_ms=-5),
     ValueError, "timestamp_ms must be epoch milliseconds >= 0, not -5"),
    ("an on_delivery that is not callable", {},
     lambda p, t: p.send(t, b"v", on_delivery="print"),
     TypeError, ("on_delivery must be a callable(error, metadata) or None, not str ('print'); "
                 "nothing was sent")),
    ("a str value that is not valid UTF-8", {}, lambda p, t: p.send(t, "caf\udce9"),
     SerializationError, ("value is a str that cannot be encoded as UTF-8 (surrogates not "
                          "allowed: '\\udce9' at index 3, e.g. from os.fsdecode/surrogateescape); "
                          "pass bytes, or a str of valid text")),
    ("a str key that is not valid UTF-8", {}, lambda p, t: p.send(t, b"v", key="\udcff"),
     SerializationError, ("key is a str that cannot be encoded as UTF-8 (surrogates not "
                          "allowed: '\\udcff' at index 0, e.g. from os.fsdecode/surrogateescape); "
                          "pass bytes, or a str of valid text")),
    ("a header key that is not valid UTF-8", {},
     lambda p, t: p.send(t, b"v", headers=[("\udcff", b"v")]),
     SerializationError, ("header key is a str that cannot be encoded as UTF-8 (surrogates not "
                          "allowed: '\\udcff' at index 0, e.g. from os.fsdecode/surrogateescape); "
                          "pass bytes, or a str of valid text")),
]


@pytest.mark.parametrize("case,settings,call,error_type,message", SEND_CASES,
                         ids=[c[0] for c in SEND_CASES])
def test_bad_send(kafka, topic_factory, case, settings, call, error_type, message):
    topic = topic_factory(kafka, partitions=2)
    with producer(kafka, linger_ms=50, **settings) as p:
        earlier = send_earlier(p, topic)
        with pytest.raises(error_type) as info:
            call(p, topic)
        assert type(info.value) is error_type
        assert str(info.value) == message.format(topic=topic)
        p.send(topic, b"after", partition=1).result(30)    # the producer carries on
    assert_earlier_delivered(kafka, topic, earlier)


def test_send_many_fails_bad_records_alone_and_delivers_the_rest(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    values = [b"v0", 3.5, b"v2", b"x" * 2000, b"v4", b"v5"]
    headers = [None, None, [(b"k", b"v")], None, None, [("k", b"v")]]
    timestamps = [None, None, None, None, 1.5, 1_700_000_000_000]
    with producer(kafka, linger_ms=50, max_request_size=1000) as p:
        earlier = send_earlier(p, topic)
        result = p.send_many(topic, values, headers=headers, timestamps=timestamps,
                             partition=1).result(30)
    assert {i: (type(e), str(e)) for i, e in result.errors.items()} == {
        1: (SerializationError, "value of record 1 must be bytes, str, a buffer-protocol object "
                                "or None, not float; configure a serializer for other types"),
        2: (SerializationError, "record 2: header key b'k' must be str, not bytes"),
        3: (RecordTooLargeError, f"[MESSAGE_TOO_LARGE (10)] record 3 to '{topic}' is 2078 bytes "
                                 f"when serialized, more than max.request.size (1000); it was "
                                 f"not sent"),
        4: (SerializationError, "timestamp of record 4 must be an int of epoch milliseconds "
                                ">= 0 or None, not 1.5"),
    }
    md = result.metadata()
    assert [m.offset if m else None for m in md] == [0, None, None, None, None, 1]
    on_1 = [r for r in read_all(kafka.bootstrap_servers, topic) if r.partition == 1]
    assert [(r.value, r.headers) for r in on_1] == [(b"v0", []), (b"v5", [("k", b"v")])]
    assert on_1[1].timestamp_ms == 1_700_000_000_000
    assert_earlier_delivered(kafka, topic, earlier)


def test_a_transaction_with_a_refused_record_cannot_commit(kafka, topic):
    with Producer(bootstrap_servers=kafka.bootstrap_servers,
                  transactional_id=f"refusal-{topic}", linger_ms=5) as p:
        p.init_transactions()
        p.begin_transaction()
        result = p.send_many(topic, [b"a", 7, b"c"]).result(30)
        assert sorted(result.errors) == [1]
        with pytest.raises(TransactionAbortableError) as info:
            p.send(topic, b"more")
        assert str(info.value) == (
            "[TRANSACTION_ABORTABLE (120)] the transaction failed and must be aborted with "
            "abort_transaction(): send_many() "
            f"to '{topic}' refused 1 record(s) of the transaction, the first: value of record 1 "
            "must be bytes, str, a buffer-protocol object or None, not int; configure a "
            "serializer for other types")
        with pytest.raises(TransactionAbortableError):
            p.commit_transaction()
        p.abort_transaction()
        with p.transaction():    # the producer recovers
            p.send_many(topic, [b"d", b"e"])
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic, read_committed=True,
                                      at_least=2)] == [b"d", b"e"]


def test_send_after_close(kafka, topic):
    p = producer(kafka, linger_ms=50)
    earlier = send_earlier(p, topic)
    p.close()
    with pytest.raises(ProducerClosedError) as info:
        p.send(topic, b"late")
    assert str(info.value) == "send() after close(): the producer accepts no more records"
    with pytest.raises(ProducerClosedError) as info:
        p.send_many(topic, [b"late"])
    assert str(info.value) == "send_many() after close(): the producer accepts no more records"
    assert_earlier_delivered(kafka, topic, earlier)


def test_flush_with_a_timeout_while_the_broker_is_down(kafka, topic):
    with producer(kafka, linger_ms=0, delivery_timeout_ms=120_000,
                  request_timeout_ms=60_000) as p:
        p.send(topic, b"warm-up", partition=0).result(30)
        kafka.pause(kafka.nodes[0])       # SIGSTOP: connected, silent
        try:
            earlier = [p.send(topic, v, partition=0) for v in EARLIER]
            with pytest.raises(KafkaTimeoutError) as info:
                p.flush(timeout=1.0)
            assert re.fullmatch(r"flush\(\) did not finish within 1\.0 s: records are still "
                                r"waiting for a broker \(\d+ batches queued\)", str(info.value))
            assert not any(f.done() for f in earlier)
        finally:
            kafka.resume(kafka.nodes[0])
        p.flush(60)
        assert [f.result(0).offset for f in earlier] == list(range(1, 6))
    assert [r.value for r in read_all(kafka.bootstrap_servers, topic)] == [b"warm-up"] + EARLIER


def _refused_port() -> int:
    with socket.socket() as s:   # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_broker_address_that_does_not_resolve(kafka, topic):
    with (
        Producer(bootstrap_servers="no-such-broker.invalid:9092", max_block_ms=1500) as p,
        pytest.raises(KafkaTimeoutError) as info,
    ):
        p.send(topic, b"x")
    assert str(info.value).startswith(f"topic {topic!r} not present in metadata after 1500 ms")
    assert "(max.block.ms): no broker answered a metadata request in that time; " \
           "last connection error: [NETWORK_EXCEPTION (13)] cannot resolve broker address " \
           "no-such-broker.invalid:9092" in str(info.value)
    # one bad address among good ones only costs a log line
    with Producer(bootstrap_servers=f"no-such-broker.invalid:9092,{kafka.bootstrap_servers}",
                  enable_idempotence=False) as p:
        earlier = send_earlier(p, topic)
    assert_earlier_delivered(kafka, topic, earlier)


def test_a_broker_address_that_refuses(kafka, topic):
    port = _refused_port()
    with Producer(bootstrap_servers=f"127.0.0.1:{port}", max_block_ms=1500,
                  reconnect_backoff_max_ms=200) as p, pytest.raises(KafkaTimeoutError) as info:
        p.send(topic, b"x")
    assert "last connection error: [NETWORK_EXCEPTION (13)] connection to broker " \
           f"127.0.0.1:{port} failed: ECONNREFUSED" in str(info.value)
    with Producer(bootstrap_servers=f"127.0.0.1:{port},{kafka.bootstrap_servers}",
                  enable_idempotence=False) as p:
        earlier = send_earlier(p, topic)
    assert_earlier_delivered(kafka, topic, earlier)


CONFIG_CASES = [
    ({"acks": 2}, "invalid configuration acks=2: all (or -1), 0 or 1"),
    ({"linger_ms": -1}, "invalid configuration linger.ms=-1: an integer in [0, 2147483647]"),
    ({"batch_size": "big"}, ("invalid configuration batch.size='big': an integer in "
                             "[0, 2147483647]")),
    ({"compression_type": "brotli"}, ("invalid configuration compression.type='brotli': one of "
                                      "none, gzip, snappy, lz4, zstd")),
    ({"enable_idempotence": "maybe"}, ("invalid configuration enable.idempotence='maybe': true "
                                       "or false")),
    ({"bootstrap_servers": "kafka-without-port"},
     ("invalid configuration bootstrap.servers='kafka-without-port': a list of host:port "
      "addresses, e.g. 127.0.0.1:9092")),
    ({"lingerms": 5}, "unknown setting 'lingerms'; did you mean 'linger.ms'?"),
    ({"foo_bar": 1}, "unknown setting 'foo_bar'"),
    ({"linger_msec": 5}, "unknown setting 'linger_msec'; did you mean 'linger.ms'?"),
    ({"acks": 1, "enable_idempotence": True}, ("invalid configuration acks=1: all (idempotence "
                                               "needs every in-sync replica)")),
    ({"delivery_timeout_ms": 1000}, ("invalid configuration delivery.timeout.ms=1000: at least "
                                     "linger.ms + request.timeout.ms = 30005")),
    ({"security_protocol": "TLS"}, ("invalid configuration security.protocol='TLS': one of "
                                    "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")),
]


@pytest.mark.parametrize("settings,message", CONFIG_CASES,
                         ids=[next(iter(c[0])) for c in CONFIG_CASES])
def test_invalid_configuration_values(kafka, topic, settings, message):
    with producer(kafka, linger_ms=50) as p:              # a producer already running ...
        earlier = send_earlier(p, topic)
        with pytest.raises(ConfigError) as info:          # ... is not disturbed by a bad one
            Producer({"bootstrap.servers": kafka.bootstrap_servers, **settings})
        assert str(info.value) == message
    assert_earlier_delivered(kafka, topic, earlier)


def test_send_many_fails_a_str_that_is_not_utf8_alone(kafka, topic_factory):
    topic = topic_factory(kafka, partitions=2)
    with producer(kafka, linger_ms=50) as p:
        earlier = send_earlier(p, topic)
        result = p.send_many(topic, [b"v0", "caf\udce9", "v2", "v3"],
                             keys=[None, None, "\udcff", "k3"], partition=1).result(30)
    assert {i: (type(e), e.field) for i, e in result.errors.items()} == {
        1: (SerializationError, "value"), 2: (SerializationError, "key")}
    assert str(result.errors[1]).startswith(
        "value of record 1 is a str that cannot be encoded as UTF-8")
    assert str(result.errors[2]).startswith(
        "key of record 2 is a str that cannot be encoded as UTF-8")
    on_1 = [(r.key, r.value) for r in read_all(kafka.bootstrap_servers, topic)
            if r.partition == 1]
    assert on_1 == [(None, b"v0"), (b"k3", b"v3")]
    assert_earlier_delivered(kafka, topic, earlier)
