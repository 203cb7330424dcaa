"""Paths that other platforms take, run here: the write path of sockets without sendmsg
(Windows), against the fake broker."""
from __future__ import annotations

import socket

import kengine.connection
from kengine import Producer
from tests.support.fake_broker import FakeBroker


def test_without_sendmsg_every_buffer_is_written_with_send(monkeypatch):
    def no_sendmsg(self, *args, **kwargs):
        raise AssertionError("sendmsg called on a platform said to lack it")

    monkeypatch.setattr(kengine.connection, "_HAS_SENDMSG", False)
    monkeypatch.setattr(socket.socket, "sendmsg", no_sendmsg)
    # small records are copied into the request; large ones travel as views of their batch
    values = [b"small-%d" % i for i in range(50)] + [bytes([i]) * 50_000 for i in range(20)]
    with FakeBroker({"t": 2}) as broker, \
            Producer(bootstrap_servers=broker.bootstrap_servers, linger_ms=0) as producer:
        futures = [producer.send("t", v, partition=i % 2) for i, v in enumerate(values)]
        for future in futures:
            future.result(timeout=30)
        assert sorted(broker.values("t")) == sorted(values)


def test_the_fallback_is_taken_exactly_where_sendmsg_is_missing():
    assert kengine.connection._HAS_SENDMSG is hasattr(socket.socket, "sendmsg")
