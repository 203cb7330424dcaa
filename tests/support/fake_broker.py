"""A fault-injecting fake Kafka broker on 127.0.0.1, built on kengine's own codec
(``decode_request`` / ``encode_response``).

It answers ApiVersions, Metadata, Produce and InitProducerId (and SaslHandshake /
SaslAuthenticate when given a SASL script) as a single-node cluster leading every partition,
keeps what it accepted in :attr:`FakeBroker.partitions` (with the idempotent producer state a
Kafka leader keeps: tests/support/broker_model.py), is the transaction coordinator of every
transactional.id (FindCoordinator, InitProducerId with KIP-360's epoch bump from v3 on,
AddPartitionsToTxn, EndTxn writing commit or abort markers: :meth:`FakeBroker.committed`),
advertises lower versions than kengine's on demand (``max_versions={22: 2}``: a broker older
than Kafka 2.5), and misbehaves on demand:

    with FakeBroker({"orders": 3}) as broker:
        broker.inject(Fault(error_code=6, times=2),        # NOT_LEADER_OR_FOLLOWER twice
                      Fault(drop="before"),                 # then hang up without answering
                      Fault(latency_ms=200, throttle_ms=300))
        producer = Producer(bootstrap_servers=broker.bootstrap_servers)

A :class:`Fault` applies to the next request(s) of its API (Produce unless told otherwise);
:class:`Chaos` draws random faults from a seeded generator for every request;
``max_message_bytes={"orders": 1000}`` refuses larger batches with MESSAGE_TOO_LARGE, as a
topic's ``max.message.bytes`` does. Each client connection has its own thread and blocking
socket: pipelined requests are answered in order, so latency on one delays the ones behind it,
as on a real broker.
"""
from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from typing_extensions import Self

from kengine.errors import KafkaError, UnsupportedVersionError
from kengine_ext import decode_batches, decode_request, encode_response, supported_versions
from tests.support.broker_model import PartitionLog, StoredRecord

__all__ = ["Chaos", "FakeBroker", "Fault", "Marker", "SaslScript", "Seen", "StoredRecord",
           "TxnEntry"]

PRODUCE, METADATA, SASL_HANDSHAKE, API_VERSIONS, INIT_PRODUCER_ID, SASL_AUTHENTICATE = (
    0, 3, 17, 18, 22, 36)
FIND_COORDINATOR, ADD_PARTITIONS_TO_TXN, END_TXN = 10, 24, 26
_INVALID_PRODUCER_EPOCH = 47
_SIZE = struct.Struct(">i")

#: error codes a Produce can meet on a real cluster, retriable and not
RETRIABLE_PRODUCE_ERRORS = (6, 7, 13, 19, 20, 3, 5, 56, 74)
FATAL_PRODUCE_ERRORS = (10, 18, 29, 87, 32, 40)


@dataclass
class Fault:
    """How to misbehave on the next ``times`` requests of ``api_key`` (-1 times: forever)."""

    api_key: int = PRODUCE
    times: int = 1
    #: only requests naming this topic (Produce, Metadata); None: any request of the API
    topic: str | None = None
    #: Produce: every partition answers this code (nothing is written); Metadata: every
    #: requested topic; other APIs: the top-level error code
    error_code: int = 0
    error_message: str | None = None
    #: Produce: KIP-467 record errors, (index in batch, message), with error_code 87
    record_errors: tuple[tuple[int, str], ...] = ()
    #: wait this long before answering
    latency_ms: int = 0
    #: close the connection without answering: "before" writing the records, "after" them,
    #: or "mid-response" (half the response frame, then close)
    drop: Literal["before", "after", "mid-response"] | None = None
    #: answer with a frame whose body is cut short (records are written)
    truncate: bool = False
    #: overwrite a few bytes of the answer after its correlation id (records are written)
    corrupt: bool = False
    #: throttle_time_ms in the answer (KIP-219: the client must hold back that long)
    throttle_ms: int = 0


@dataclass
class Chaos:
    """A random fault for a share of the requests of ``api_key``, reproducible by ``seed``."""

    seed: int
    rate: float = 0.3
    api_key: int = PRODUCE
    error_codes: tuple[int, ...] = RETRIABLE_PRODUCE_ERRORS
    kinds: tuple[str, ...] = ("error", "drop", "truncate", "corrupt", "latency", "throttle")
    max_latency_ms: int = 300

    def draw(self, rng: random.Random) -> Fault | None:
        if rng.random() >= self.rate:
            return None
        kind = rng.choice(self.kinds)
        if kind == "error":
            return Fault(self.api_key, error_code=rng.choice(self.error_codes))
        if kind == "drop":
            return Fault(self.api_key, drop=rng.choice(("before", "after", "mid-response")))
        if kind == "truncate":
            return Fault(self.api_key, truncate=True)
        if kind == "corrupt":
            return Fault(self.api_key, corrupt=True)
        if kind == "latency":
            return Fault(self.api_key, latency_ms=rng.randint(1, self.max_latency_ms))
        return Fault(self.api_key, throttle_ms=rng.randint(1, self.max_latency_ms))


#: SASL on the fake broker: (mechanism, client message, step) -> (error code, server
#: message, error message, exchange complete). Step counts SaslAuthenticate requests from 0.
SaslScript = Callable[[str, bytes, int], "tuple[int, bytes, str | None, bool]"]


@dataclass(frozen=True)
class Seen:
    """One request the broker read."""

    api_key: int
    version: int
    at: float                          # time.monotonic() when it was read
    connection: int                    # which client connection (1, 2, ...)
    fault: Fault | None
    #: Produce: records per (topic, partition) in the request
    record_counts: Mapping[tuple[str, int], int] = field(default_factory=dict)


class FakeBroker:
    def __init__(self, topics: Mapping[str, int] | None = None, *, node_id: int = 0,
                 ssl_context: ssl.SSLContext | None = None,
                 sasl_mechanisms: tuple[str, ...] = (), sasl: SaslScript | None = None,
                 sasl_session_lifetime_ms: int = 0, chaos: Chaos | None = None,
                 max_message_bytes: Mapping[str, int] | None = None,
                 max_versions: Mapping[int, int] | None = None) -> None:
        self.node_id = node_id
        #: api key -> the highest version advertised, where lower than kengine's (an older
        #: broker: {INIT_PRODUCER_ID: 2} is Kafka 2.4, which cannot bump epochs, KIP-360)
        self.max_versions: dict[int, int] = dict(max_versions or {})
        #: the transaction coordinator's state per transactional.id, and the markers EndTxn
        #: wrote per partition (guarded by lock)
        self.transactions: dict[str, TxnEntry] = {}
        self.markers: dict[tuple[str, int], list[Marker]] = defaultdict(list)
        #: every InitProducerId request as read: (version, body)
        self.init_producer_id_requests: list[tuple[int, dict[str, Any]]] = []
        self._next_producer_id = 1000
        #: the epoch InitProducerId gives an idempotent producer (Kafka: 0; near 32767 to
        #: test what happens when an idempotent producer's epochs run out)
        self.idempotent_epoch = 0
        #: topic -> its max.message.bytes: a larger batch is refused with MESSAGE_TOO_LARGE
        #: before its sequence is looked at, as a broker does
        self.max_message_bytes: dict[str, int] = dict(max_message_bytes or {})
        #: topic -> partition count; edit it (under ``lock``) to add topics
        self.topics: dict[str, int] = dict(topics or {"t": 1})
        self.topic_ids = {t: uuid.uuid4().bytes for t in self.topics}
        #: what was written per (topic, partition), in offset order, with the idempotent
        #: producer state its leader keeps (tests/support/broker_model.py: Kafka's checks)
        self.partitions: dict[tuple[str, int], PartitionLog] = defaultdict(PartitionLog)
        self.seen: list[Seen] = []
        #: guards topics, log, seen and the fault queue
        self.lock = threading.Lock()
        self._faults: list[Fault] = []
        self._chaos = chaos
        self._rng = random.Random(chaos.seed if chaos else 0)
        self._ssl = ssl_context
        self._sasl_mechanisms = sasl_mechanisms
        self._sasl = sasl
        self._sasl_lifetime_ms = sasl_session_lifetime_ms
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.host, self.port = self._listener.getsockname()[:2]
        self._closing = threading.Event()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._next_connection = 0
        self._accept_thread = threading.Thread(target=self._accept, daemon=True,
                                               name=f"fake-broker-{self.port}")
        self._accept_thread.start()

    # ------------------------------------------------------------------ control

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def inject(self, *faults: Fault) -> None:
        """Queues faults; each request takes the first queued fault for its API."""
        with self.lock:
            self._faults.extend(faults)

    def add_topic(self, name: str, partitions: int) -> None:
        with self.lock:
            self.topics[name] = partitions
            self.topic_ids.setdefault(name, uuid.uuid4().bytes)

    def records(self, topic: str, partition: int = 0) -> list[StoredRecord]:
        with self.lock:
            log = self.partitions.get((topic, partition))
            return [] if log is None else list(log.records)

    def values(self, topic: str) -> list[bytes | None]:
        """Every value written to ``topic``, partition by partition, in offset order."""
        with self.lock:
            return [r.value for (t, p), log in sorted(self.partitions.items()) if t == topic
                    for r in log.records]

    def committed(self, topic: str) -> list[bytes | None]:
        """What a read_committed consumer reads of ``topic``, partition by partition: records
        without a producer id or of an idempotent producer, and those of transactions that a
        commit marker closed (an open or aborted transaction's records are left out)."""
        with self.lock:
            txn_pids = {e.producer_id for e in self.transactions.values()}
            out: list[bytes | None] = []
            for (t, p), log in sorted(self.partitions.items()):
                if t != topic:
                    continue
                markers = self.markers.get((t, p), [])
                for i, r in enumerate(log.records):
                    if r.producer_id not in txn_pids:
                        out.append(r.value)
                        continue
                    closing = next((m for m in markers if m.producer_id == r.producer_id
                                    and m.position > i), None)
                    if closing is not None and closing.commit:
                        out.append(r.value)
            return out

    def requests(self, api_key: int = PRODUCE) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.api_key == api_key]

    def drop_connections(self) -> None:
        """Closes every client connection at once (a broker restart, seen from the client)."""
        with self.lock:
            conns, self._connections = self._connections, []
        for c in conns:
            _close(c)

    def close(self) -> None:
        self._closing.set()
        _close(self._listener)
        self.drop_connections()
        self._accept_thread.join(5)
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connections

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._next_connection += 1
            t = threading.Thread(target=self._serve, args=(sock, self._next_connection),
                                 daemon=True, name=f"fake-broker-{self.port}-conn")
            self._threads.append(t)
            t.start()

    def _serve(self, sock: socket.socket, conn_id: int) -> None:
        sock.settimeout(10)
        try:
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_side=True)
        except (OSError, ValueError):
            _close(sock)   # the client's TLS was refused: what it sees is its test
            return
        sock.settimeout(None)   # idle clients stay connected; close() shuts the socket
        with self.lock:
            if self._closing.is_set():
                _close(sock)
                return
            self._connections.append(sock)
        state = _ConnectionState(authenticated=not self._sasl_mechanisms)
        try:
            while not self._closing.is_set():
                frame = _read_frame(sock)
                if frame is None:
                    return
                if not self._handle(sock, conn_id, frame, state):
                    return
        except (OSError, ValueError):
            return
        finally:
            _close(sock)

    # ------------------------------------------------------------------ requests

    def _next_fault(self, api_key: int, topics: set[str]) -> Fault | None:
        with self.lock:
            for f in self._faults:
                if f.api_key == api_key and f.times != 0 and (f.topic is None
                                                              or f.topic in topics):
                    if f.times > 0:
                        f.times -= 1
                    if f.times == 0:
                        self._faults.remove(f)
                    return f
            if self._chaos is not None and self._chaos.api_key == api_key:
                return self._chaos.draw(self._rng)
        return None

    def _handle(self, sock: socket.socket, conn_id: int, frame: bytes,
                state: _ConnectionState) -> bool:
        try:
            header, body = decode_request(frame)
        except UnsupportedVersionError as e:
            if e.context.get("api_key") == API_VERSIONS:   # KIP-511: answer in v0
                _send(sock, encode_response(API_VERSIONS, 0, e.context["correlation_id"],
                                            self._api_versions_body(35)))
                return True
            return False
        api_key, version = header["request_api_key"], header["request_api_version"]
        cid = header["correlation_id"]
        if not state.authenticated and api_key not in (API_VERSIONS, SASL_HANDSHAKE,
                                                       SASL_AUTHENTICATE):
            return False   # as Kafka: anything else before authentication closes the socket
        topics: set[str] = set()
        if api_key == PRODUCE:
            topics = {t.get("name") or self._topic_by_id(t.get("topic_id"))
                      for t in body["topic_data"]}
        elif api_key == METADATA:
            topics = {t["name"] for t in body.get("topics") or ()}
        fault = self._next_fault(api_key, topics)
        counts: dict[tuple[str, int], int] = {}
        if api_key == PRODUCE:
            for t in body["topic_data"]:
                name = t.get("name") or self._topic_by_id(t.get("topic_id"))
                for p in t["partition_data"]:
                    counts[(name, p["index"])] = sum(
                        len(b.records) for b in decode_batches(bytes(p["records"] or b"")))
        with self.lock:
            self.seen.append(Seen(api_key, version, time.monotonic(), conn_id, fault, counts))
        if fault is not None and fault.latency_ms:
            time.sleep(fault.latency_ms / 1000)
        if fault is not None and fault.drop == "before":
            return False
        write = fault is None or not fault.error_code
        if api_key == PRODUCE:
            response = self._produce(body, version, fault, write)
            if body["acks"] == 0:
                return fault is None or fault.drop is None
        elif api_key == METADATA:
            response = self._metadata(body, version, fault)
        elif api_key == API_VERSIONS:
            response = self._api_versions_body(fault.error_code if fault else 0)
        elif version > self._max_version(api_key):
            return False   # as Kafka: a version it does not speak closes the connection
        elif api_key == INIT_PRODUCER_ID:
            response = self._init_producer_id(body, version, fault)
        elif api_key == FIND_COORDINATOR:
            response = self._find_coordinator(body, version, fault)
        elif api_key == ADD_PARTITIONS_TO_TXN:
            response = self._add_partitions(body, fault)
        elif api_key == END_TXN:
            response = self._end_txn(body, fault)
        elif api_key == SASL_HANDSHAKE:
            ok = body["mechanism"] in self._sasl_mechanisms
            state.mechanism = body["mechanism"]
            response = {"error_code": 0 if ok else 33, "mechanisms": list(self._sasl_mechanisms)}
        elif api_key == SASL_AUTHENTICATE:
            assert self._sasl is not None and state.mechanism is not None
            code, reply, message, done = self._sasl(state.mechanism,
                                                    bytes(body["auth_bytes"]), state.sasl_step)
            state.sasl_step += 1
            response = {"error_code": code, "error_message": message, "auth_bytes": reply,
                        "session_lifetime_ms": self._sasl_lifetime_ms if done else 0}
            if code:
                _send(sock, encode_response(api_key, version, cid, response))
                return False
            state.authenticated = state.authenticated or done
        else:
            return False
        if fault is not None and fault.drop == "after":
            return False
        if fault is not None and fault.throttle_ms:
            response["throttle_time_ms"] = fault.throttle_ms
        data = encode_response(api_key, version, cid, response)
        if fault is not None and fault.truncate:
            cut = max(8, (len(data) - 4) // 2)
            data = _SIZE.pack(cut) + data[4:4 + cut]
        if fault is not None and fault.corrupt:
            raw = bytearray(data)
            for _ in range(1 + self._rng.randrange(4)):
                if len(raw) > 8:
                    raw[self._rng.randrange(8, len(raw))] = self._rng.randrange(256)
            data = bytes(raw)
        if fault is not None and fault.drop == "mid-response":
            sock.sendall(data[:max(1, len(data) // 2)])
            return False
        _send(sock, data)
        return True

    def _topic_by_id(self, topic_id: Any) -> str:
        with self.lock:
            for name, tid in self.topic_ids.items():
                if tid == bytes(topic_id or b""):
                    return name
        return "?"

    def _max_version(self, api_key: int) -> int:
        return min(supported_versions(api_key)[1], self.max_versions.get(api_key, 1 << 15))

    def _api_versions_body(self, error_code: int) -> dict[str, Any]:
        keys = [PRODUCE, METADATA, API_VERSIONS, INIT_PRODUCER_ID, FIND_COORDINATOR,
                ADD_PARTITIONS_TO_TXN, END_TXN]
        if self._sasl_mechanisms:
            keys += [SASL_HANDSHAKE, SASL_AUTHENTICATE]
        return {"error_code": error_code, "throttle_time_ms": 0, "api_keys": [
            {"api_key": k, "min_version": supported_versions(k)[0],
             "max_version": self._max_version(k)} for k in keys]}

    # ------------------------------------------------------------------ transactions

    def _init_producer_id(self, body: dict[str, Any], version: int,
                          fault: Fault | None) -> dict[str, Any]:
        with self.lock:
            self.init_producer_id_requests.append((version, dict(body)))
            if fault is not None and fault.error_code:
                return {"error_code": fault.error_code, "producer_id": -1, "producer_epoch": -1}
            tid = body.get("transactional_id")
            entry = self.transactions.get(tid) if tid is not None else None
            if entry is None:
                pid, self._next_producer_id = self._next_producer_id, self._next_producer_id + 1
                if tid is not None:
                    self.transactions[tid] = TxnEntry(pid, 0)
                return {"error_code": 0, "producer_id": pid,
                        "producer_epoch": 0 if tid is not None else self.idempotent_epoch}
            # Kafka's TransactionCoordinator.handleInitProducerId: from v3 on a request naming
            # a producer is refused unless it is the current one (a zombie cannot fence its
            # successor); before v3 (Kafka 2.4-) there is nothing to check, whoever asks gets
            # the next epoch. An open transaction is aborted first.
            named = body.get("producer_id", -1)
            if version >= 3 and named >= 0 and (named, body.get("producer_epoch", -1)) != (
                    entry.producer_id, entry.epoch):
                return {"error_code": _INVALID_PRODUCER_EPOCH, "producer_id": -1,
                        "producer_epoch": -1}
            self._write_markers(entry, commit=False)
            entry.epoch += 1
            return {"error_code": 0, "producer_id": entry.producer_id,
                    "producer_epoch": entry.epoch}

    def _find_coordinator(self, body: dict[str, Any], version: int,
                          fault: Fault | None) -> dict[str, Any]:
        code = fault.error_code if fault else 0
        if version >= 4:
            return {"throttle_time_ms": 0, "coordinators": [
                {"key": k, "node_id": self.node_id, "host": self.host, "port": self.port,
                 "error_code": code, "error_message": None}
                for k in body["coordinator_keys"]]}
        return {"throttle_time_ms": 0, "error_code": code, "error_message": None,
                "node_id": self.node_id, "host": self.host, "port": self.port}

    def _txn_entry(self, body: dict[str, Any], prefix: str = "") -> TxnEntry | int:
        """The transaction of the request's producer, or the error code refusing it."""
        entry = self.transactions.get(body[prefix + "transactional_id"])
        if entry is None:
            return 49   # INVALID_PRODUCER_ID_MAPPING
        if (body[prefix + "producer_id"], body[prefix + "producer_epoch"]) != (
                entry.producer_id, entry.epoch):
            return _INVALID_PRODUCER_EPOCH
        return entry

    def _add_partitions(self, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        prefix = "v3_and_below_"
        with self.lock:
            entry = self._txn_entry(body, prefix)
            results = []
            for t in body[prefix + "topics"]:
                parts = []
                for p in t["partitions"]:
                    code = fault.error_code if fault and fault.error_code else \
                        entry if isinstance(entry, int) else 0
                    if code == 0:
                        assert isinstance(entry, TxnEntry)
                        entry.partitions.add((t["name"], p))
                    parts.append({"partition_index": p, "partition_error_code": code})
                results.append({"name": t["name"], "results_by_partition": parts})
        return {"throttle_time_ms": 0, "error_code": 0,
                "results_by_topic_v3_and_below": results}

    def _end_txn(self, body: dict[str, Any], fault: Fault | None) -> dict[str, Any]:
        with self.lock:
            if fault is not None and fault.error_code:
                return {"throttle_time_ms": 0, "error_code": fault.error_code}
            entry = self._txn_entry(body)
            if isinstance(entry, int):
                return {"throttle_time_ms": 0, "error_code": entry}
            self._write_markers(entry, commit=bool(body["committed"]))
            return {"throttle_time_ms": 0, "error_code": 0}

    def _write_markers(self, entry: TxnEntry, commit: bool) -> None:
        """Closes the producer's open transaction (caller holds lock)."""
        for tp in sorted(entry.partitions):
            self.markers[tp].append(Marker(len(self.partitions[tp].records),
                                           entry.producer_id, entry.epoch, commit))
        entry.partitions.clear()

    def _metadata(self, body: dict[str, Any], version: int, fault: Fault | None) -> dict[str, Any]:
        with self.lock:
            wanted = ([t["name"] for t in body["topics"]] if body.get("topics") is not None
                      else list(self.topics))
            topics = []
            for name in wanted:
                if fault is not None and fault.error_code and fault.topic in (None, name):
                    topics.append({"error_code": fault.error_code, "name": name,
                                   "partitions": []})
                elif name not in self.topics:
                    topics.append({"error_code": 3, "name": name, "partitions": []})
                else:
                    topics.append({"error_code": 0, "name": name,
                                   "topic_id": self.topic_ids[name], "partitions": [
                                       {"error_code": 0, "partition_index": i,
                                        "leader_id": self.node_id, "leader_epoch": 0,
                                        "replica_nodes": [self.node_id],
                                        "isr_nodes": [self.node_id], "offline_replicas": []}
                                       for i in range(self.topics[name])]})
        return {"throttle_time_ms": 0, "cluster_id": "fake-cluster",
                "controller_id": self.node_id, "topics": topics,
                "brokers": [{"node_id": self.node_id, "host": self.host, "port": self.port,
                             "rack": None}]}

    def _produce(self, body: dict[str, Any], version: int, fault: Fault | None,
                 write: bool) -> dict[str, Any]:
        responses = []
        for t in body["topic_data"]:
            name = t.get("name") or self._topic_by_id(t.get("topic_id"))
            parts = []
            for p in t["partition_data"]:
                index = p["index"]
                entry: dict[str, Any] = {"index": index, "error_code": 0, "base_offset": -1,
                                         "log_append_time_ms": -1, "log_start_offset": 0}
                with self.lock:
                    known = name in self.topics and 0 <= index < self.topics[name]
                if not known:
                    entry["error_code"] = 3
                elif not write and (fault is None or fault.topic in (None, name)):
                    entry["error_code"] = fault.error_code if fault else 0
                    entry["error_message"] = fault.error_message if fault else None
                    entry["record_errors"] = [
                        {"batch_index": i, "batch_index_error_message": m}
                        for i, m in (fault.record_errors if fault else ())]
                elif max(_batch_sizes(bytes(p["records"] or b"")), default=0) > \
                        self.max_message_bytes.get(name, 1 << 30):
                    entry["error_code"] = 10   # MESSAGE_TOO_LARGE: nothing of it is written
                else:
                    try:
                        batches = decode_batches(bytes(p["records"] or b""))
                    except KafkaError:
                        entry["error_code"] = 2   # CORRUPT_MESSAGE
                    else:
                        with self.lock:
                            log = self.partitions[(name, index)]
                            for b in batches:   # a client sends one batch per partition
                                code, base = log.append(b)
                                entry["error_code"] = code
                                entry["base_offset"] = base
                                if code:
                                    break
                parts.append(entry)
            responses.append({"name": name, "topic_id": t.get("topic_id") or bytes(16),
                              "partition_responses": parts})
        return {"responses": responses, "throttle_time_ms": 0}


def _batch_sizes(records: bytes) -> list[int]:
    """The size of each batch of a Produce payload (baseOffset and batchLength included)."""
    sizes, pos = [], 0
    while pos + 12 <= len(records):
        size = 12 + int.from_bytes(records[pos + 8:pos + 12], "big", signed=True)
        sizes.append(size)
        pos += max(size, 12)
    return sizes


@dataclass
class TxnEntry:
    """What the coordinator keeps of one transactional.id."""

    producer_id: int
    epoch: int
    partitions: set[tuple[str, int]] = field(default_factory=set)


@dataclass(frozen=True)
class Marker:
    """A commit or abort marker: it closes the transaction of ``producer_id`` for the records
    of the partition before ``position`` (an index into its records)."""

    position: int
    producer_id: int
    epoch: int
    commit: bool


@dataclass
class _ConnectionState:
    authenticated: bool
    mechanism: str | None = None
    sasl_step: int = 0


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    (size,) = _SIZE.unpack(head)
    if size < 0 or size > 64 * 1024 * 1024:
        return None
    return _read_exact(sock, size)


def _send(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
