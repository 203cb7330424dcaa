"""Dead-letter routing on real Kafka: a record over its topic's max.message.bytes lands in the
dead-letter topic with headers describing the failure, read back with confluent-kafka
(tests/fakebroker/test_deadletter.py: every other outcome, against the fake broker)."""
from __future__ import annotations

from kengine import Producer
from kengine.deadletter import HEADER_ERROR_NAME, HEADER_PARTITION, HEADER_TOPIC, DeadLetter
from kengine.errors import MessageTooLargeError
from tests.support.readback import read_all


class Hook:
    """on_dead_letter that keeps what it is given."""

    def __init__(self):
        self.letters: list[DeadLetter] = []

    def __call__(self, letter: DeadLetter) -> None:
        self.letters.append(letter)


def test_record_too_large_for_its_topic_lands_in_the_dead_letter_topic(kafka, topic_factory):
    small = topic_factory(kafka, config={"max.message.bytes": 1000})
    dlq = topic_factory(kafka)
    hook = Hook()
    with Producer(bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=False,
                  dead_letter_topic=dlq, on_dead_letter=hook) as p:
        assert p.send(small, b"fits").result(30).offset == 0
        # (a batch is refused whole: the big record goes alone)
        big = p.send(small, b"x" * 5000, key=b"big")
        assert isinstance(big.exception(timeout=30), MessageTooLargeError)
        p.flush(60)
    (copy,) = read_all(kafka.bootstrap_servers, dlq)
    assert (copy.key, copy.value) == (b"big", b"x" * 5000)
    h = dict(copy.headers)
    assert h[HEADER_TOPIC] == small.encode() and h[HEADER_PARTITION] == b"0"
    assert h[HEADER_ERROR_NAME] in (b"MESSAGE_TOO_LARGE", b"RECORD_LIST_TOO_LARGE")
    assert [r.value for r in read_all(kafka.bootstrap_servers, small)] == [b"fits"]
    assert hook.letters[0].delivered
