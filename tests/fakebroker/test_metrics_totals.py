"""The metrics that count events outside the sender's request hooks, against a fake broker
that misbehaves on cue: sends that gave up on a full buffer.memory (buffer-exhausted-*, the
blocking producer and the asyncio one), connections made and lost (connection-creation-*,
connection-close-*) and the bytes read from brokers (incoming-byte-*)."""
from __future__ import annotations

import asyncio

import pytest

from kengine import Producer
from kengine.aio import AIOProducer
from kengine.errors import KafkaTimeoutError
from tests.support.fake_broker import FakeBroker, Fault
from tests.support.wait import wait_until

SLOW = dict(batch_size=4096, buffer_memory=8192, linger_ms=0, max_block_ms=200,
            request_timeout_ms=30_000, enable_idempotence=False)
#: the topic's metadata is fetched before the sends that count: with max.block.ms 200 a busy
#: machine can take longer than that to connect and fetch it, and that timeout (a
#: KafkaTimeoutError too) is not buffer.memory giving up
METADATA_ATTEMPTS = 50


def _gave_up_on_memory(e: KafkaTimeoutError) -> bool:
    assert "buffer.memory" in str(e), f"a send gave up for another reason: {e}"
    return True


def test_sends_that_give_up_on_buffer_memory_are_counted():
    with FakeBroker({"t": 1}) as broker:
        broker.inject(Fault(latency_ms=2000, times=-1))     # nothing is freed for 2 s
        with Producer(bootstrap_servers=broker.bootstrap_servers, **SLOW) as p:
            for attempt in range(METADATA_ATTEMPTS):
                try:
                    p.partitions_for("t")
                    break
                except KafkaTimeoutError:
                    assert attempt < METADATA_ATTEMPTS - 1, "no metadata for 't' after 50 tries"
            gave_up = 0
            for i in range(40):
                try:
                    p.send("t", b"%04d" % i + b"x" * 900)
                except KafkaTimeoutError as e:
                    gave_up += _gave_up_on_memory(e)
                    if gave_up == 3:
                        break
            assert gave_up == 3
            bulk = p.send_many("t", [b"y" * 900] * 20)    # one call: counted once
            assert all(isinstance(e, KafkaTimeoutError) for e in bulk.refused().values())
            assert bulk.refused()
            m = p.metrics()
            assert m["buffer-exhausted-total"] == 4
            assert m["buffer-exhausted-rate"] > 0
            p.flush(60)


def test_async_sends_that_give_up_on_buffer_memory_are_counted():
    async def run(bootstrap: str) -> dict:
        async with AIOProducer(bootstrap_servers=bootstrap, **SLOW) as p:
            for attempt in range(METADATA_ATTEMPTS):
                try:
                    await p.partitions_for("t")
                    break
                except KafkaTimeoutError:
                    assert attempt < METADATA_ATTEMPTS - 1, "no metadata for 't' after 50 tries"
            gave_up = 0
            for i in range(40):
                try:
                    await p.send("t", b"%04d" % i + b"x" * 900)
                except KafkaTimeoutError as e:
                    gave_up += _gave_up_on_memory(e)
                    if gave_up == 2:
                        break
            assert gave_up == 2
            m = p.metrics()
            await p.flush()
            return m

    with FakeBroker({"t": 1}) as broker:
        broker.inject(Fault(latency_ms=2000, times=-1))
        m = asyncio.run(run(broker.bootstrap_servers))
    assert m["buffer-exhausted-total"] == 2


def test_connections_made_and_lost_and_bytes_read_are_counted():
    with FakeBroker({"t": 1}) as broker:
        with Producer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0,
                      retry_backoff_ms=10, reconnect_backoff_ms=10,
                      enable_idempotence=False) as p:
            p.send("t", b"first").result(30)
            before = p.metrics()
            assert before["connection-creation-total"] >= 1
            assert before["connection-close-total"] == 0
            assert before["incoming-byte-total"] > 0 and before["incoming-byte-rate"] > 0
            # the broker drops the connection after writing the next batch: the producer
            # reconnects and resends it (a duplicate, idempotence being off)
            broker.inject(Fault(drop="after"))
            p.send("t", b"second").result(30)
            after = wait_until(lambda: (m := p.metrics())["connection-close-total"] >= 1 and m,
                               what="the dropped connection in the metrics", timeout=30)
            assert after["connection-creation-total"] >= before["connection-creation-total"] + 1
            assert after["connection-close-rate"] > 0
            assert after["incoming-byte-total"] > before["incoming-byte-total"]
        assert broker.values("t")[:1] == [b"first"]


@pytest.mark.parametrize("name", ["buffer-exhausted-total", "connection-close-total"])
def test_a_fresh_producer_reports_zero(name):
    with FakeBroker({"t": 1}) as broker:
        with Producer(bootstrap_servers=broker.bootstrap_servers) as p:
            assert p.metrics()[name] == 0
