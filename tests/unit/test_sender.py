"""The Sender stepped one run_once() at a time, without brokers or threads (as Java's SenderTest
does): the real accumulator, send path and Metadata, a fake network client that encodes and
decodes every request with kengine's codec (tests/support/fake_network.py), and a fake clock.
Records are checked by decoding the request's batches with kafka-python."""
from __future__ import annotations

import pytest
from kafka.record.default_records import DefaultRecordBatch

from kengine.errors import (
    KafkaTimeoutError,
    MessageTooLargeError,
    NetworkError,
    NotLeaderOrFollowerError,
    TopicAuthorizationFailedError,
)
from kengine.metadata import Metadata
from kengine.sender import Sender, SenderSettings
from kengine_ext.schemas import ApiKey as API
from tests.support.core import Core
from tests.support.fake_network import FakeClock, FakeNetworkClient, produce_response


class Rig:
    """A sender and everything it drives, for one test."""

    def __init__(self, partitions: int = 2, *, acks: int = -1, delivery_timeout_ms: int = 120_000,
                 retry_backoff_ms: int = 100, **core: object) -> None:
        core.setdefault("linger_ms", 0)
        self.core = Core({"t": partitions}, **core)
        self.clock = FakeClock()
        self.client = FakeNetworkClient({0: ("h0", 9092), 1: ("h1", 9092)},
                                        topics={"t": [i % 2 for i in range(partitions)]})
        self.metadata = Metadata(self.core.acc, self.client, client_id="test", max_age_ms=300_000,
                                 refresh_backoff_ms=100, refresh_backoff_max_ms=1000)
        self.sender = Sender(self.core.acc, self.client, self.metadata, SenderSettings(
            client_id="test", acks=acks, request_timeout_ms=30_000,
            delivery_timeout_ms=delivery_timeout_ms, retries=2**31 - 1,
            retry_backoff_ms=retry_backoff_ms, retry_backoff_max_ms=1000,
            max_request_size=1 << 20), clock=self.clock)

    def send(self, value: bytes, partition: int):
        """core.send(), then the fake clock catches up with the batch's creation time (taken
        from the real clock): waits are counted from there, exactly."""
        future = self.core.send("t", value, partition=partition)
        batches = self.core.acc.topic_state("t").queues[partition].batches()
        self.clock.catch_up(max(b.created_ms for b in batches))
        return future

    def step(self, advance_ms: int = 0) -> None:
        self.clock.advance(advance_ms)
        self.sender.run_once()

    def produce_requests(self):
        return self.client.take(API.PRODUCE)


def records(request) -> dict[tuple[str, int], list[bytes]]:
    """(topic, partition) -> the values of the request's batch, as kafka-python decodes them."""
    out = {}
    for t in request.body["topic_data"]:
        for p in t["partition_data"]:
            batch = DefaultRecordBatch(bytes(p["records"]))
            assert batch.validate_crc()
            out[(t["name"], p["index"])] = [r.value for r in batch]
    return out


def test_ready_batches_go_out_in_one_produce_request_per_leader():
    rig = Rig()
    futures = [rig.send(b"v%d" % i, partition=i % 2) for i in range(6)]
    rig.step()
    by_node = {r.node: r for r in rig.produce_requests()}
    assert sorted(by_node) == [0, 1]                  # partition 0 leads on 0, 1 on 1
    assert records(by_node[0]) == {("t", 0): [b"v0", b"v2", b"v4"]}
    assert records(by_node[1]) == {("t", 1): [b"v1", b"v3", b"v5"]}
    assert by_node[0].body["acks"] == -1
    assert not any(f.done() for f in futures)
    rig.client.answer(by_node[0], produce_response(by_node[0], base_offset=100))
    rig.client.answer(by_node[1], produce_response(by_node[1], base_offset=7))
    rig.step()
    assert [f.result(0).offset for f in futures] == [100, 7, 101, 8, 102, 9]


def test_a_lingering_batch_waits_for_linger_ms_of_the_clock():
    rig = Rig(linger_ms=50)
    rig.send(b"v", partition=0)
    rig.step()
    assert rig.produce_requests() == []
    assert 0 < rig.client.polls[-1] <= 50             # wakes up when the batch is due
    rig.step(advance_ms=49)
    assert rig.produce_requests() == []
    rig.step(advance_ms=1)
    (request,) = rig.produce_requests()
    assert records(request) == {("t", 0): [b"v"]}


def test_a_retriable_error_backs_off_then_resends_the_same_records():
    rig = Rig(retry_backoff_ms=100)
    future = rig.send(b"v", partition=0)
    rig.step()
    (first,) = rig.produce_requests()
    metadata_requests = sum(1 for r in rig.client.requests if r.api_key == API.METADATA)
    rig.client.answer(first, produce_response(
        first, errors={("t", 0): NotLeaderOrFollowerError.code}))
    rig.step()                                        # the answer: back in the queue
    assert not future.done()
    rig.step()
    assert rig.produce_requests() == []               # backing off (100 ms ± 20 %)
    rig.step(advance_ms=200)
    (second,) = rig.produce_requests()
    assert records(second) == records(first)
    # NOT_LEADER_OR_FOLLOWER is an invalid-metadata error: the leaders were asked for again
    assert sum(1 for r in rig.client.requests if r.api_key == API.METADATA) > metadata_requests
    rig.client.answer(second, produce_response(second, base_offset=5))
    rig.step()
    assert future.result(0).offset == 5


def test_a_non_retriable_error_fails_the_records_with_its_typed_error():
    rig = Rig()
    future = rig.send(b"v", partition=1)
    rig.step()
    (request,) = rig.produce_requests()
    rig.client.answer(request, produce_response(
        request, errors={("t", 1): TopicAuthorizationFailedError.code}))
    rig.step()
    error = future.exception(0)
    assert isinstance(error, TopicAuthorizationFailedError)
    assert (error.context["topic"], error.context["partition"]) == ("t", 1)
    assert not error.maybe_written                    # the broker refused it
    rig.step(advance_ms=10_000)
    assert rig.produce_requests() == []               # not retried


def test_a_lost_connection_resends_and_the_records_may_have_been_written():
    rig = Rig(delivery_timeout_ms=1000, retry_backoff_ms=100)
    future = rig.send(b"v", partition=0)
    rig.step()
    (first,) = rig.produce_requests()
    rig.client.answer(first, error=NetworkError("connection reset"))
    rig.step()
    rig.step(advance_ms=200)
    (second,) = rig.produce_requests()
    assert records(second) == records(first)
    rig.step(advance_ms=1000)                         # delivery.timeout.ms passes unanswered
    error = future.exception(0)
    assert isinstance(error, KafkaTimeoutError)
    assert error.maybe_written                        # the first attempt may be in the log


def test_an_unanswered_batch_fails_at_delivery_timeout_ms():
    rig = Rig(delivery_timeout_ms=1000)
    future = rig.send(b"v", partition=0)
    rig.step()
    assert len(rig.produce_requests()) == 1
    rig.step(advance_ms=999)
    assert not future.done()
    rig.step(advance_ms=1)
    assert isinstance(future.exception(0), KafkaTimeoutError)


def test_a_batch_refused_as_too_large_is_resent_in_pieces_in_record_order():
    rig = Rig(batch_size=8192)
    futures = [rig.send(b"%03d" % i + b"." * 60, partition=0) for i in range(40)]
    rig.step()
    (whole,) = rig.produce_requests()
    sent = records(whole)[("t", 0)]
    assert len(sent) == 40
    rig.client.answer(whole, produce_response(
        whole, errors={("t", 0): MessageTooLargeError.code}))
    rig.step()
    offset, again = 0, []
    for _ in range(40):                               # a piece per request, in order
        rig.step()
        requests = rig.produce_requests()
        if not requests:
            break
        for r in requests:
            piece = records(r)[("t", 0)]
            again += piece
            rig.client.answer(r, produce_response(r, base_offset=offset))
            offset += len(piece)
    assert again == sent
    assert [f.result(0).offset for f in futures] == list(range(40))


def test_a_leader_without_a_connection_is_connected_and_not_sent_to():
    rig = Rig()
    rig.client.ready = {0}
    rig.send(b"to-1", partition=1)
    rig.step()
    assert rig.produce_requests() == []
    assert 1 in rig.client.connects
    assert rig.client.polls[-1] <= 50                 # back when the connection may be up
    rig.client.ready = {0, 1}
    rig.step(advance_ms=50)
    (request,) = rig.produce_requests()
    assert request.node == 1


def _metadata_requests(rig: Rig) -> int:
    return sum(1 for r in rig.client.requests if r.api_key == API.METADATA)


def _settled(rig: Rig) -> None:
    """Past the first metadata answer: no update due before metadata.max.age.ms (300 s)."""
    rig.step()
    rig.step()
    assert rig.metadata.time_to_next_update_ms(rig.clock()) > 60_000


def test_a_leader_that_cannot_be_connected_to_makes_a_metadata_update_due_at_once():
    # as Java's handleServerDisconnect: the failed connection may mean a dead leader, which
    # only fresh metadata replaces; waiting for max.age.ms kept records waiting for minutes
    rig = Rig()
    _settled(rig)
    before = _metadata_requests(rig)
    rig.client.ready = {0}
    rig.send(b"to-1", partition=1)
    rig.step()
    assert 1 in rig.client.connects
    rig.step(advance_ms=200)                          # past retry.backoff.ms (100 ms)
    assert _metadata_requests(rig) > before, "no metadata update after the failed connection"


def test_a_rebootstrap_makes_a_metadata_update_due_at_once():
    # whoever rebootstrapped (the transaction manager, the sender), every broker address is
    # gone until a metadata answer names them again
    rig = Rig()
    _settled(rig)
    before = _metadata_requests(rig)
    rig.client.rebootstrap_count += 1
    assert rig.metadata.time_to_next_update_ms(rig.clock()) == 0
    rig.step()
    assert _metadata_requests(rig) == before + 1


@pytest.mark.parametrize("acks", [0])
def test_acks_0_completes_once_written_without_an_offset(acks):
    rig = Rig(acks=acks)
    future = rig.send(b"v", partition=0)
    rig.step()
    (request,) = [r for r in rig.client.requests if r.api_key == API.PRODUCE]
    assert not request.expect_response and request.body["acks"] == 0
    rig.step()
    assert future.result(0).offset == -1
