"""A Metadata request to one given broker, over a plain socket.

The launcher asks *each* node whether it is up and which brokers and leaders it sees; an admin
client cannot be pointed at one node, and this keeps starting a cluster free of any Python
Kafka client. Metadata v11 (flexible encoding, request header v2, response header v1), which every
Kafka 3.x and 4.x broker answers (3.0 knows no v12; v12 differs only in letting a requested
topic name be null, which this probe never sends); the schema is Kafka's
``MetadataRequest.json`` and ``MetadataResponse.json``.
"""
from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ProtocolError

__all__ = ["BrokerInfo", "ClusterMetadata", "PartitionInfo", "TopicInfo", "fetch_metadata",
           "read_frame"]

_API_KEY_METADATA = 3
_METADATA_VERSION = 11
_CLIENT_ID = b"kengine-localkafka"
_correlation = itertools.count(1)


@dataclass(frozen=True)
class BrokerInfo:
    node_id: int
    host: str
    port: int
    rack: str | None


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    #: -1 while the partition has no leader
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    offline_replicas: tuple[int, ...]
    #: Kafka error code for this partition, 0 if none
    error_code: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    #: Kafka error code for this topic (3 = UNKNOWN_TOPIC_OR_PARTITION), 0 if none
    error_code: int
    is_internal: bool
    partitions: tuple[PartitionInfo, ...]


@dataclass(frozen=True)
class ClusterMetadata:
    """One broker's view of the cluster."""

    brokers: tuple[BrokerInfo, ...]
    cluster_id: str | None
    controller_id: int
    topics: dict[str, TopicInfo]

    @property
    def broker_ids(self) -> frozenset[int]:
        return frozenset(b.node_id for b in self.brokers)


def fetch_metadata(host: str, port: int, topics: Sequence[str] | None = (),
                   timeout: float = 5.0) -> ClusterMetadata:
    """Ask the broker at ``host:port`` for metadata: of ``topics`` (``None``: every topic;
    empty: only brokers). Raises :class:`OSError` (including ``TimeoutError``) when the broker
    does not answer and :class:`kengine.errors.ProtocolError` when the answer does not decode."""
    correlation_id = next(_correlation) & 0x7FFFFFFF
    request = _encode_request(correlation_id, topics)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        body = read_frame(sock)
    r = _Reader(body)
    if r.int32() != correlation_id:
        raise ProtocolError(f"Metadata response from {host}:{port} has the wrong correlation id")
    r.tagged_fields()
    return _decode_response(r, f"{host}:{port}")


def read_frame(sock: socket.socket) -> bytes:
    """One size-prefixed Kafka response frame from a blocking socket, without its size."""
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    return _recv_exact(sock, size)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionResetError("broker closed the connection mid-response")
        buf += chunk
    return bytes(buf)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_request(correlation_id: int, topics: Sequence[str] | None) -> bytes:
    out = bytearray(struct.pack(">hhih", _API_KEY_METADATA, _METADATA_VERSION, correlation_id,
                                len(_CLIENT_ID)))
    out += _CLIENT_ID
    out += b"\x00"  # header tagged fields
    if topics is None:
        out += b"\x00"  # null array: all topics
    else:
        out += _uvarint(len(topics) + 1)
        for name in topics:
            encoded = name.encode()
            out += bytes(16)  # topic id: zero, the topic is named
            out += _uvarint(len(encoded) + 1) + encoded
            out += b"\x00"
    out += b"\x00"  # allow_auto_topic_creation: never create topics by looking at them
    out += b"\x00"  # include_topic_authorized_operations
    out += b"\x00"  # tagged fields
    return bytes(out)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise ProtocolError(f"Metadata response truncated at byte {self.pos} (needs {n} more)")
        chunk = self.data[self.pos:end]
        self.pos = end
        return chunk

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def boolean(self) -> bool:
        return self._take(1) != b"\x00"

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self._take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 28:
                raise ProtocolError("unsigned varint longer than 5 bytes in Metadata response")

    def compact_string(self) -> str | None:
        n = self.uvarint()
        return None if n == 0 else self._take(n - 1).decode()

    def compact_length(self) -> int:
        # compact arrays encode length + 1; 0 is null, which Metadata never sends for these
        return max(self.uvarint() - 1, 0)

    def int32_array(self) -> tuple[int, ...]:
        n = self.compact_length()
        return struct.unpack(f">{n}i", self._take(4 * n))

    def tagged_fields(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            self._take(self.uvarint())


def _decode_response(r: _Reader, where: str) -> ClusterMetadata:
    r.int32()  # throttle_time_ms
    brokers = []
    for _ in range(r.compact_length()):
        node_id = r.int32()
        host = r.compact_string() or ""
        port = r.int32()
        rack = r.compact_string()
        r.tagged_fields()
        brokers.append(BrokerInfo(node_id, host, port, rack))
    cluster_id = r.compact_string()
    controller_id = r.int32()
    topics = {}
    for _ in range(r.compact_length()):
        error_code = r.int16()
        name = r.compact_string()
        r._take(16)  # topic id
        is_internal = r.boolean()
        partitions = []
        for _ in range(r.compact_length()):
            p_error = r.int16()
            index = r.int32()
            leader = r.int32()
            epoch = r.int32()
            replicas = r.int32_array()
            isr = r.int32_array()
            offline = r.int32_array()
            r.tagged_fields()
            partitions.append(PartitionInfo(index, leader, epoch, replicas, isr, offline, p_error))
        r.int32()  # topic_authorized_operations
        r.tagged_fields()
        if name is None:
            raise ProtocolError(f"Metadata response from {where} has a topic without a name")
        partitions.sort(key=lambda p: p.partition)
        topics[name] = TopicInfo(name, error_code, is_internal, tuple(partitions))
    r.tagged_fields()
    return ClusterMetadata(tuple(sorted(brokers, key=lambda b: b.node_id)), cluster_id,
                           controller_id, topics)
