"""Dead-letter routing: records failing with a non-retriable error are written again to a
dead-letter topic with headers describing the failure, and every outcome (written, failed,
not queued) is reported to the log, the counters and on_dead_letter. Against the fake
broker (which can refuse one topic and accept another); tests/integration/test_deadletter.py
has the same on real Kafka, read back with confluent-kafka."""
from __future__ import annotations

import logging
import threading

import pytest

import kengine_ext
from kengine import Producer
from kengine.deadletter import (
    HEADER_ERROR_CODE,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_NAME,
    HEADER_PARTITION,
    HEADER_TIMESTAMP,
    HEADER_TOPIC,
    DeadLetter,
    DeadLetterQueue,
)
from kengine.errors import (
    InvalidRecordError,
    KafkaTimeoutError,
    MessageTooLargeError,
    TopicAuthorizationFailedError,
)
from tests.support.fake_broker import FakeBroker, Fault


class Hook:
    """on_dead_letter that keeps what it is given (it runs on producer threads)."""

    def __init__(self):
        self.letters: list[DeadLetter] = []
        self._lock = threading.Lock()

    def __call__(self, letter: DeadLetter) -> None:
        with self._lock:
            self.letters.append(letter)


def producer(broker, **settings):
    settings.setdefault("enable_idempotence", False)
    settings.setdefault("linger_ms", 0)
    settings.setdefault("retry_backoff_ms", 10)
    return Producer(bootstrap_servers=broker.bootstrap_servers, **settings)


def headers_of(record) -> dict[str, bytes | None]:
    return dict(record.headers)


def test_denied_records_go_to_the_dead_letter_topic_with_their_story():
    hook = Hook()
    with FakeBroker({"orders": 2, "dlq": 1}) as broker:
        broker.inject(Fault(topic="orders", error_code=29, error_message="denied", times=-1))
        with producer(broker, dead_letter_topic="dlq", on_dead_letter=hook) as p:
            future = p.send("orders", b"order-1", key=b"k1", partition=1,
                            headers=[("trace", b"abc")], timestamp_ms=1_600_000_000_000)
            assert isinstance(future.exception(timeout=30), TopicAuthorizationFailedError)
            p.flush(30)
            assert (p.dead_letters.delivered, p.dead_letters.failed,
                    p.dead_letters.pending) == (1, 0, 0)
        (copy,) = broker.records("dlq")
        assert (copy.key, copy.value) == (b"k1", b"order-1")
        h = headers_of(copy)
        assert h["trace"] == b"abc"      # the record's own headers come along
        assert h[HEADER_TOPIC] == b"orders" and h[HEADER_PARTITION] == b"1"
        assert h[HEADER_ERROR_CODE] == b"29"
        assert h[HEADER_ERROR_NAME] == b"TOPIC_AUTHORIZATION_FAILED"
        assert h[HEADER_ERROR_MESSAGE] == b"denied"
        assert h[HEADER_TIMESTAMP] == b"1600000000000"
    (letter,) = hook.letters
    assert letter.delivered and letter.dead_letter_error is None
    assert (letter.topic, letter.partition, letter.value) == ("orders", 1, b"order-1")
    assert isinstance(letter.error, TopicAuthorizationFailedError)
    assert letter.metadata.topic == "dlq" and letter.metadata.offset == 0


def test_retriable_failures_are_not_dead_lettered():
    hook = Hook()
    with FakeBroker({"t": 1, "dlq": 1}) as broker:
        broker.inject(Fault(topic="t", error_code=19, times=-1))   # NOT_ENOUGH_REPLICAS
        with producer(broker, dead_letter_topic="dlq", on_dead_letter=hook,
                      delivery_timeout_ms=2000, request_timeout_ms=1000) as p:
            assert isinstance(p.send("t", b"x").exception(timeout=30), KafkaTimeoutError)
            p.flush(30)
            assert p.dead_letters.delivered == p.dead_letters.failed == 0
        assert broker.records("dlq") == [] and hook.letters == []


def test_per_record_errors_travel_with_each_record():
    hook = Hook()
    with FakeBroker({"t": 1, "dlq": 1}) as broker:
        broker.inject(Fault(topic="t", error_code=87, error_message="batch refused",
                            record_errors=((1, "record 1 has no key"),)))
        with producer(broker, dead_letter_topic="dlq", on_dead_letter=hook,
                      linger_ms=200) as p:
            futures = [p.send("t", b"v%d" % i, partition=0) for i in range(3)]
            p.flush(30)
            assert all(isinstance(f.exception(), InvalidRecordError) for f in futures)
        copies = broker.records("dlq")
        assert [c.value for c in copies] == [b"v0", b"v1", b"v2"]
        messages = [headers_of(c)[HEADER_ERROR_MESSAGE] for c in copies]
        # a record the broker named has its own error; the others were refused for its sake
        in_its_company = (b"not written: the broker refused the whole batch because 1 other "
                          b"record(s) of it were invalid (batch index(es) 1); this record may "
                          b"be sent again")
        assert messages == [in_its_company, b"record 1 has no key", in_its_company]


def test_a_router_picks_the_topic_per_error_or_keeps_the_failure():
    def router(topic, error):
        if isinstance(error, MessageTooLargeError):
            return None                         # nothing to gain from a copy: keep it failed
        if topic == "explodes":
            raise RuntimeError("router bug")
        return f"{topic}.dlq"

    hook = Hook()
    with FakeBroker({"a": 1, "b": 1, "explodes": 1, "a.dlq": 1, "fallback": 1}) as broker:
        broker.inject(Fault(topic="a", error_code=29, times=-1),
                      Fault(topic="b", error_code=10, times=-1),
                      Fault(topic="explodes", error_code=29, times=-1))
        with producer(broker, dead_letter_router=router, dead_letter_topic="fallback",
                      on_dead_letter=hook) as p:
            for topic in ("a", "b", "explodes"):
                p.send(topic, topic.encode()).exception(timeout=30)
            p.flush(30)
        assert [c.value for c in broker.records("a.dlq")] == [b"a"]
        assert [c.value for c in broker.records("fallback")] == [b"explodes"]
    assert sorted(x.topic for x in hook.letters) == ["a", "explodes"]


def test_a_failed_dead_letter_write_is_reported_not_hidden(caplog):
    hook = Hook()
    with FakeBroker({"t": 1, "dlq": 1}) as broker:
        broker.inject(Fault(topic="t", error_code=29, times=-1),
                      Fault(topic="dlq", error_code=29, error_message="no dlq for you",
                            times=-1))
        with (
            caplog.at_level(logging.ERROR, logger="kengine.deadletter"),
            producer(broker, dead_letter_topic="dlq", on_dead_letter=hook) as p,
        ):
            p.send("t", b"x").exception(timeout=30)
            p.flush(30)
            assert (p.dead_letters.delivered, p.dead_letters.failed) == (0, 1)
    (letter,) = hook.letters
    assert not letter.delivered
    assert isinstance(letter.dead_letter_error, TopicAuthorizationFailedError)
    assert any("its dead letter to dlq failed too" in r.message and "no dlq for you" in r.message
               for r in caplog.records)


def test_an_unknown_dead_letter_topic_fails_within_max_block_ms():
    hook = Hook()
    with FakeBroker({"t": 1}) as broker:
        broker.inject(Fault(topic="t", error_code=29, times=-1))
        with producer(broker, dead_letter_topic="missing", on_dead_letter=hook,
                      max_block_ms=1000) as p:
            p.send("t", b"x").exception(timeout=30)
            p.flush(30)
    (letter,) = hook.letters
    assert isinstance(letter.dead_letter_error, KafkaTimeoutError)
    assert "'missing' not present in metadata" in str(letter.dead_letter_error)


def test_close_writes_the_dead_letters_of_records_failing_during_close():
    with FakeBroker({"t": 1, "dlq": 1}) as broker:
        broker.inject(Fault(topic="t", error_code=29, times=-1))
        p = producer(broker, dead_letter_topic="dlq", linger_ms=50)
        for i in range(10):
            p.send("t", b"%d" % i)
        p.close(timeout=30)
        assert sorted(c.value for c in broker.records("dlq")) == sorted(b"%d" % i
                                                                        for i in range(10))
        assert p.dead_letters.delivered == 10


class _Batch:
    """What DeadLetterQueue reads from a failed ProducerBatch."""

    def __init__(self, topic, values):
        self.topic, self.partition, self.done = topic, 0, False
        self.record_count = len(values)
        self.data = bytes(kengine_ext.encode_batch(values))


def _seal(batch):
    """What the accumulator's seal() gives the queue: the batch's bytes."""
    return memoryview(batch.data)


def test_the_backlog_is_bounded_and_overflow_is_reported():
    hook = Hook()
    gate = threading.Event()
    taken = threading.Event()

    class BlockedProducer:   # stands for a dead-letter producer stuck on its topic
        def send(self, *args, **kwargs):
            taken.set()
            gate.wait(30)
            raise KafkaTimeoutError("gave up")

        def flush(self, timeout=None):
            pass

        def close(self, timeout=None):
            pass

    queue = DeadLetterQueue(_seal, BlockedProducer, topic="dlq", router=None,
                            on_dead_letter=hook, client_id="test", max_pending_bytes=1000)
    error = TopicAuthorizationFailedError("denied")
    queue.batch_failed(_Batch("t", [b"a" * 600]), error, None)        # taken by the worker
    # (once it is: on a loaded machine the worker may not have started yet, and then the
    # second letter is the one over the bound)
    assert taken.wait(30), "the dead-letter worker never took the first letter"
    queue.batch_failed(_Batch("t", [b"b" * 600]), error, None)        # waits in the queue
    queue.batch_failed(_Batch("t", [b"c" * 300, b"d" * 300]), error, None)  # over the bound
    refused = [x for x in hook.letters if x.value in (b"c" * 300, b"d" * 300)]
    assert len(refused) == 2 and all("already waiting" in str(x.dead_letter_error)
                                     for x in refused)
    gate.set()
    queue.close(timeout=30)
    assert queue.failed == 4 and queue.delivered == 0 and queue.pending == 0
    assert len(hook.letters) == 4


def test_corrupt_batch_bytes_are_counted_and_logged(caplog):
    queue = DeadLetterQueue(_seal, lambda: None, topic="dlq", router=None,
                            on_dead_letter=None, client_id="test", max_pending_bytes=1000)
    batch = _Batch("t", [b"x"])
    batch.data = batch.data[:-3]
    with caplog.at_level(logging.ERROR, logger="kengine.deadletter"):
        queue.batch_failed(batch, TopicAuthorizationFailedError("denied"), None)
    assert queue.failed == 1
    assert "cannot be dead-lettered" in caplog.text
    queue.close(1)


@pytest.mark.parametrize("bad", [42, "x"])
def test_dead_letter_settings_are_validated(bad):
    from kengine.errors import ConfigError

    with pytest.raises(ConfigError):
        Producer(bootstrap_servers="127.0.0.1:9", dead_letter_router=bad)
