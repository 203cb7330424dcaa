"""A network client without sockets, for stepping the Sender (as Java's SenderTest does with
MockClient): requests are encoded with kengine's codec and decoded again, so what the sender
would put on the wire is what the test sees; Metadata requests are answered from a described
cluster when the sender polls; Produce requests wait for the test to answer them.

    client = FakeNetworkClient({0: ("h0", 1), 1: ("h1", 1)}, topics={"t": [0, 1]})
    ...sender.run_once()...
    (request,) = client.take(API.PRODUCE)
    client.answer(request, produce_response(request))      # every partition written
    sender.run_once()                                       # runs the callbacks
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kengine.errors import KafkaError
from kengine.reachability import BrokerReachability
from kengine_ext import (
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    monotonic_ms,
    supported_versions,
)
from kengine_ext.schemas import ApiKey as API

__all__ = ["FakeClock", "FakeNetworkClient", "Request", "produce_response"]


class FakeClock:
    """Monotonic ms that moves only when told. Batches take their creation time from the real
    monotonic clock, so the fake one must never be behind it: ``catch_up(ms)`` moves it to a
    batch's creation time if it is behind (a test then counts waits from that batch)."""

    def __init__(self) -> None:
        self.now_ms = monotonic_ms()

    def __call__(self) -> int:
        return self.now_ms

    def catch_up(self, ms: int) -> None:
        self.now_ms = max(self.now_ms, ms)

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@dataclass
class Request:
    node: int
    api_key: int
    version: int
    header: dict[str, Any]
    body: dict[str, Any]          # as a broker decodes it
    callback: Callable[[Any, KafkaError | None], None]
    expect_response: bool
    answered: bool = False


@dataclass
class _Connection:
    versions: dict[int, int] = field(default_factory=dict)
    #: the broker's advertised (min, max) per API key; empty: as if not set up yet
    broker_ranges: dict[int, tuple[int, int]] = field(default_factory=dict)

    def version(self, api_key: int) -> int | None:
        return self.versions.get(api_key)


class FakeNetworkClient:
    """``brokers``: node -> (host, port); ``topics``: topic -> leader of each partition.
    ``ready`` holds the nodes with an open connection (all by default); ``in_flight_max``
    requests per node at most, as max.in.flight.requests.per.connection."""

    def __init__(self, brokers: Mapping[int, tuple[str, int]],
                 topics: Mapping[str, Sequence[int]], *, in_flight_max: int = 5,
                 versions: Mapping[int, int] | None = None) -> None:
        self.brokers = dict(brokers)
        self.topics = {t: list(leaders) for t, leaders in topics.items()}
        self.ready = set(self.brokers)
        self.in_flight_max = in_flight_max
        top = {int(key): supported_versions(key)[1] for key in API}
        top.update(versions or {})
        self._conn = _Connection(top)
        self.requests: list[Request] = []       # every request sent, in order
        self.polls: list[int] = []              # the timeout of every poll()
        self.connects: list[int] = []           # nodes connect() was asked for
        self.wakeups = 0
        #: KIP-899 rebootstraps so far, as NetworkClient counts them (Metadata reads it to
        #: make an update due at once); this client never rebootstraps
        self.rebootstrap_count = 0
        self.fatal_error: KafkaError | None = None
        self.last_error: KafkaError | None = None
        self.addresses = self.brokers
        self.reachability = BrokerReachability("fake")
        #: the cluster's finalized feature levels, as NetworkClient keeps them (none here
        #: unless a test sets them: transactions then run under v1)
        self.finalized_features: dict[str, int] = {}
        self._correlation = 0
        self._due: list[tuple[Request, Any, KafkaError | None]] = []

    # ---- what the sender and Metadata call

    def least_loaded_node(self, now_ms: int) -> int | None:
        return min(self.ready) if self.ready else None

    def is_ready(self, node: int) -> bool:
        return node in self.ready

    def can_send(self, node: int) -> bool:
        return node in self.ready and self.in_flight(node) < self.in_flight_max

    def connect(self, node: int, now_ms: int) -> bool:
        self.connects.append(node)
        return False            # a test opens a connection by adding the node to `ready`

    def backoff_remaining_ms(self, node: int, now_ms: int) -> int:
        return 50

    def connection(self, node: int) -> _Connection | None:
        return self._conn if node in self.ready else None

    def send(self, node: int, api_key: int, body: Any,
             callback: Callable[[Any, KafkaError | None], None], *, now_ms: int,
             version: int | None = None, expect_response: bool = True,
             timeout_ms: int | None = None) -> bool:
        if not self.can_send(node):
            return False
        version = self._conn.versions[api_key] if version is None else version
        self._correlation += 1
        frame = encode_request(api_key, version, self._correlation, "fake", body)
        header, decoded = decode_request(frame[4:])
        request = Request(node, api_key, version, header, decoded, callback, expect_response)
        self.requests.append(request)
        if api_key == API.METADATA:
            self._due.append((request, self._metadata_response(request), None))
        elif not expect_response:
            request.answered = True
            self._due.append((request, None, None))
        return True

    def poll(self, timeout_ms: int) -> None:
        """Runs the callbacks of the answers due (no waiting: the test's clock is fake)."""
        self.polls.append(timeout_ms)
        due, self._due = self._due, []
        for request, body, error in due:
            request.callback(body, error)

    def wakeup(self) -> None:
        self.wakeups += 1

    def replace_brokers(self, brokers: Mapping[int, tuple[str, int]]) -> None:
        pass

    def rebootstrap(self, reason: str) -> None:
        raise AssertionError(f"unexpected rebootstrap: {reason}")

    def close(self) -> None:
        pass

    # ---- what the test calls

    def in_flight(self, node: int) -> int:
        return sum(1 for r in self.requests
                   if r.node == node and r.expect_response and not r.answered)

    def take(self, api_key: int) -> list[Request]:
        """The unanswered requests of one API, oldest first."""
        return [r for r in self.requests
                if r.api_key == api_key and not r.answered and r.expect_response]

    def answer(self, request: Request, body: dict[str, Any] | None = None,
               error: KafkaError | None = None) -> None:
        """Answers at the next poll(): ``body`` (encoded and decoded as the sender would
        receive it) or a connection-level ``error``."""
        assert not request.answered
        request.answered = True
        decoded = None
        if error is None:
            frame = encode_response(request.api_key, request.version,
                                    request.header["correlation_id"], body or {})
            decoded = decode_response(request.api_key, request.version, frame[4:])[1]
        self._due.append((request, decoded, error))

    def _metadata_response(self, request: Request) -> dict[str, Any]:
        asked = request.body.get("topics")
        names = list(self.topics) if asked is None else [t["name"] for t in asked]
        body = {
            "brokers": [{"node_id": n, "host": h, "port": p} for n, (h, p) in
                        sorted(self.brokers.items())],
            "cluster_id": "fake", "controller_id": min(self.brokers),
            "topics": [{"error_code": 0, "name": name, "topic_id": bytes(16),
                        "partitions": [{"error_code": 0, "partition_index": i,
                                        "leader_id": leader, "leader_epoch": 0,
                                        "replica_nodes": [leader], "isr_nodes": [leader]}
                                       for i, leader in enumerate(self.topics[name])]}
                       for name in names if name in self.topics],
        }
        frame = encode_response(API.METADATA, request.version,
                                request.header["correlation_id"], body)
        request.answered = True
        return decode_response(API.METADATA, request.version, frame[4:])[1]


def produce_response(request: Request, errors: Mapping[tuple[str, int], int] | None = None,
                     base_offset: int = 0) -> dict[str, Any]:
    """A Produce answer to every partition of ``request``: written at ``base_offset``, or
    refused with the error code ``errors`` gives for it."""
    errors = errors or {}
    return {"responses": [
        {"name": t["name"], "topic_id": t.get("topic_id", bytes(16)), "partition_responses": [
            {"index": p["index"], "error_code": errors.get((t["name"], p["index"]), 0),
             "base_offset": -1 if errors.get((t["name"], p["index"])) else base_offset,
             "log_append_time_ms": -1, "log_start_offset": 0}
            for p in t["partition_data"]]}
        for t in request.body["topic_data"]], "throttle_time_ms": 0}
