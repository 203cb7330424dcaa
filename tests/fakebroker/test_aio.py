"""AIOProducer against the fault-injecting fake broker: a broker slow enough to keep
buffer.memory full decides max.block.ms, cancelled waits and close() deadlines."""
from __future__ import annotations

import asyncio

import pytest

from kengine import AIOProducer
from kengine.errors import BufferFullError, KafkaError, KafkaTimeoutError, ProducerClosedError
from tests.support.fake_broker import FakeBroker, Fault
from tests.support.loops import LOOPS, LagProbe, run

VALUE = b"v" * 1000


@pytest.fixture(params=LOOPS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def producer(broker: FakeBroker, **settings) -> AIOProducer:
    settings.setdefault("enable_idempotence", False)
    settings.setdefault("linger_ms", 0)
    settings.setdefault("batch_size", 16384)
    settings.setdefault("buffer_memory", 32768)
    settings.setdefault("retry_backoff_ms", 10)
    return AIOProducer(bootstrap_servers=broker.bootstrap_servers, **settings)


async def fill(p: AIOProducer, topic: str) -> list:
    """Sends until a send has to wait for buffer.memory; returns the accepted futures."""
    futures = []
    while p._gate.idle:
        task = asyncio.ensure_future(p.send(topic, b"%06d" % len(futures) + VALUE))
        await asyncio.sleep(0)
        if not task.done():   # waiting for memory: leave it to the caller
            return futures + [task]
        futures.append(task.result())
    raise AssertionError("unreachable")


def test_a_full_buffer_raises_kafka_timeout_after_max_block_ms(loop_kind):
    with FakeBroker({"t": 1}) as broker:
        async def main():
            async with producer(broker, max_block_ms=700, request_timeout_ms=30_000) as p:
                await p.send_and_wait("t", b"warm")
                broker.inject(Fault(latency_ms=3000, times=3))
                async with LagProbe() as probe:
                    waiting = probe.ticks_when(lambda: not p._gate.idle)
                    *accepted, blocked = await fill(p, "t")
                    with pytest.raises(KafkaTimeoutError, match="max.block.ms") as raised:
                        await blocked
                    assert not isinstance(raised.value, BufferFullError)
                    assert waiting[0] > 0             # the loop ran during the wait
                    assert p._gate.idle               # and the queue is empty again
                    for f in accepted:                # what was accepted is delivered
                        assert (await f).offset >= 0
                    late = await p.send_and_wait("t", b"after")
                return len(accepted), late

        accepted, late = run(loop_kind, main)
        values = broker.values("t")
        assert values[0] == b"warm" and values[-1] == b"after"
        assert values[1:-1] == [b"%06d" % i + VALUE for i in range(accepted)]
        assert late.offset == accepted + 1


def test_a_cancelled_send_waiting_for_memory_sends_nothing_and_blocks_no_one(loop_kind):
    with FakeBroker({"t": 1}) as broker:
        async def main():
            async with producer(broker, max_block_ms=60_000) as p:
                await p.send_and_wait("t", b"warm")
                broker.inject(Fault(latency_ms=1500, times=2))
                *accepted, blocked = await fill(p, "t")
                behind = asyncio.ensure_future(p.send("t", b"behind"))
                await asyncio.sleep(0)
                blocked.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await blocked
                behind_fut = await behind   # served once memory is released
                for f in accepted:
                    await f
                await behind_fut
                await p.flush()
                assert p._gate.idle
                return len(accepted)

        accepted = run(loop_kind, main)
        values = broker.values("t")
        cancelled = b"%06d" % accepted + VALUE
        assert cancelled not in values
        assert values == [b"warm"] + [b"%06d" % i + VALUE for i in range(accepted)] + [b"behind"]


def test_close_fails_what_its_deadline_leaves_and_the_sends_waiting_for_memory(loop_kind):
    with FakeBroker({"t": 1}) as broker:
        async def main():
            p = producer(broker, max_block_ms=60_000, request_timeout_ms=30_000,
                         delivery_timeout_ms=60_000)
            await p.start()
            await p.send_and_wait("t", b"warm")
            broker.inject(Fault(latency_ms=5000, times=-1))
            *accepted, blocked = await fill(p, "t")
            await p.close(timeout=0.5)
            with pytest.raises(ProducerClosedError, match="buffer.memory"):
                await blocked
            outcomes = await asyncio.gather(*accepted, return_exceptions=True)
            with pytest.raises(ProducerClosedError):
                await p.send("t", b"late")
            await p.close()   # a second close is a no-op
            return outcomes

        outcomes = run(loop_kind, main)
        assert outcomes and all(isinstance(o, KafkaError) for o in outcomes), outcomes[:3]
