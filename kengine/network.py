"""The sender thread's view of the cluster's sockets: one connection per broker, bootstrap
connections, reconnect backoff, request timeouts and one selector to wait on all of them.

Only the sender thread calls into a NetworkClient, except ``wakeup()`` (any thread).
"""
from __future__ import annotations

import logging
import random
import selectors
import socket
import ssl
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kengine_ext import monotonic_ms

from .connection import Authenticator, Connection, ConnectionState, ResponseCallback
from .errors import AuthenticationError, KafkaError
from .sasl import authenticator_factory
from .security import ssl_context

if TYPE_CHECKING:
    from .config import ProducerConfig

__all__ = ["NetworkClient", "BrokerAddress"]

_log = logging.getLogger("kengine.network")

BrokerAddress = tuple[str, int]


class _Backoff:
    """Exponential reconnect backoff with +-20% jitter (KIP-144 / KIP-580 style)."""

    __slots__ = ("failures", "not_before_ms")

    def __init__(self) -> None:
        self.failures = 0
        self.not_before_ms = 0


class NetworkClient:
    def __init__(
        self,
        *,
        client_id: str,
        bootstrap: Iterable[BrokerAddress],
        request_timeout_ms: int,
        setup_timeout_ms: int,
        reconnect_backoff_ms: int,
        reconnect_backoff_max_ms: int,
        connections_max_idle_ms: int,
        max_in_flight: int,
        send_buffer_bytes: int = -1,
        receive_buffer_bytes: int = -1,
        ssl_context: ssl.SSLContext | None = None,
        authenticator_factory: Callable[[], Authenticator | None] | None = None,
        on_connection_ready: Callable[[Connection], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.max_in_flight = max_in_flight
        self._setup_timeout_ms = setup_timeout_ms
        self._backoff_ms = reconnect_backoff_ms
        self._backoff_max_ms = reconnect_backoff_max_ms
        self._idle_ms = connections_max_idle_ms
        self._sndbuf, self._rcvbuf = send_buffer_bytes, receive_buffer_bytes
        self._ssl_context = ssl_context
        self._authenticator_factory = authenticator_factory
        self._on_connection_ready = on_connection_ready
        #: node id -> (host, port); bootstrap servers get ids -1, -2, ... until metadata names them
        self.addresses: dict[int, BrokerAddress] = {}
        self._bootstrap_ids: list[int] = []
        for i, addr in enumerate(bootstrap):
            self.addresses[-(i + 1)] = addr
            self._bootstrap_ids.append(-(i + 1))
        self.connections: dict[int, Connection] = {}
        self._backoffs: dict[int, _Backoff] = {}
        #: the last connection failure, for errors that must reach the user (unreachable
        #: brokers); cleared when a connection becomes ready
        self.last_error: KafkaError | None = None
        #: set once when TLS or SASL authentication fails: retrying cannot fix credentials or
        #: certificates, so the sender fails everything with it and stops connecting
        self.fatal_error: AuthenticationError | None = None
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._registered: dict[int, int] = {}  # fd -> events currently registered
        self.closed = False

    @classmethod
    def from_config(cls, cfg: ProducerConfig, *, client_id: str, max_in_flight: int,
                    on_connection_ready: Callable[[Connection], None] | None = None,
                    ) -> NetworkClient:
        """A client with the connection settings of cfg (timeouts, backoff, socket buffers,
        TLS and SASL), so the producer and the admin client connect alike. Bad certificate
        files raise here, before any thread starts."""
        return cls(
            client_id=client_id,
            bootstrap=cfg["bootstrap.servers"],
            request_timeout_ms=cfg["request.timeout.ms"],
            setup_timeout_ms=cfg["socket.connection.setup.timeout.ms"],
            reconnect_backoff_ms=cfg["reconnect.backoff.ms"],
            reconnect_backoff_max_ms=cfg["reconnect.backoff.max.ms"],
            connections_max_idle_ms=cfg["connections.max.idle.ms"],
            max_in_flight=max_in_flight,
            send_buffer_bytes=cfg["send.buffer.bytes"],
            receive_buffer_bytes=cfg["receive.buffer.bytes"],
            ssl_context=ssl_context(cfg),
            authenticator_factory=authenticator_factory(cfg),
            on_connection_ready=on_connection_ready,
        )

    # ------------------------------------------------------------------ topology

    def set_brokers(self, brokers: dict[int, BrokerAddress]) -> None:
        """Broker addresses from metadata. Connections to brokers whose address changed are
        closed; bootstrap entries stay as fallbacks."""
        for node_id, addr in brokers.items():
            old = self.addresses.get(node_id)
            self.addresses[node_id] = addr
            conn = self.connections.get(node_id)
            if old is not None and old != addr and conn is not None:
                conn.close(None)

    def known_nodes(self) -> list[int]:
        return [n for n in self.addresses if n >= 0] or list(self._bootstrap_ids)

    # ------------------------------------------------------------------ connections

    def is_ready(self, node_id: int) -> bool:
        conn = self.connections.get(node_id)
        return conn is not None and conn.state is ConnectionState.READY

    def can_send(self, node_id: int) -> bool:
        conn = self.connections.get(node_id)
        return (conn is not None and conn.state is ConnectionState.READY
                and conn.in_flight_count < self.max_in_flight)

    def connection(self, node_id: int) -> Connection | None:
        return self.connections.get(node_id)

    def connect(self, node_id: int, now_ms: int) -> bool:
        """Starts connecting to node_id unless connected, connecting or backing off.
        Returns True when a connection exists (in any state) after the call."""
        conn = self.connections.get(node_id)
        if conn is not None and conn.state is not ConnectionState.CLOSED:
            return True
        if self.fatal_error is not None:
            return False
        backoff = self._backoffs.get(node_id)
        if backoff is not None and now_ms < backoff.not_before_ms:
            return False
        addr = self.addresses.get(node_id)
        if addr is None:
            return False
        host, port = addr
        conn = Connection(
            node_id, host, port,
            client_id=self.client_id,
            request_timeout_ms=self.request_timeout_ms,
            setup_timeout_ms=self._setup_timeout_ms,
            now_ms=now_ms,
            ssl_context=self._ssl_context,
            authenticator=self._authenticator_factory() if self._authenticator_factory else None,
            send_buffer_bytes=self._sndbuf,
            receive_buffer_bytes=self._rcvbuf,
            on_ready=self._connection_ready,
            on_close=self._connection_closed,
        )
        if conn.state is ConnectionState.CLOSED:
            # failed at once (unresolvable name, refused): its backoff is set; keeping it
            # would make it look like a connection in progress to least_loaded_node()
            return False
        self.connections[node_id] = conn
        self._update_registration(conn)
        _log.debug("[%s] connecting to broker %d at %s:%d", self.client_id, node_id, host, port)
        return True

    def _connection_ready(self, conn: Connection) -> None:
        self._backoffs.pop(conn.node_id, None)
        self.last_error = None
        _log.debug("[%s] connected to broker %d (%s:%d)", self.client_id, conn.node_id,
                   conn.host, conn.port)
        if self._on_connection_ready is not None:
            self._on_connection_ready(conn)

    def _connection_closed(self, conn: Connection, error: KafkaError | None) -> None:
        sock = conn.sock
        if sock is not None:
            try:
                fd = sock.fileno()
            except OSError:
                fd = -1
            if fd in self._registered:
                self._selector.unregister(sock)
                del self._registered[fd]
        if self.connections.get(conn.node_id) is conn:
            del self.connections[conn.node_id]
        if error is not None:
            self.last_error = error
            if isinstance(error, AuthenticationError) and self.fatal_error is None:
                self.fatal_error = error
            b = self._backoffs.setdefault(conn.node_id, _Backoff())
            b.failures += 1
            delay = min(self._backoff_max_ms, self._backoff_ms * (2 ** min(b.failures - 1, 20)))
            delay = int(delay * random.uniform(0.8, 1.2))
            b.not_before_ms = monotonic_ms() + delay

    def _update_registration(self, conn: Connection) -> None:
        if conn.sock is None or conn.state is ConnectionState.CLOSED:
            return
        try:
            fd = conn.sock.fileno()
        except OSError:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.wants_write() else 0)
        current = self._registered.get(fd)
        if current == events:
            return
        if current is None:
            self._selector.register(conn.sock, events, conn)
        else:
            self._selector.modify(conn.sock, events, conn)
        self._registered[fd] = events

    def backoff_remaining_ms(self, node_id: int, now_ms: int) -> int:
        b = self._backoffs.get(node_id)
        return max(0, b.not_before_ms - now_ms) if b is not None else 0

    # ------------------------------------------------------------------ requests

    def send(self, node_id: int, api_key: int, body: Any, callback: ResponseCallback, *,
             now_ms: int, version: int | None = None, expect_response: bool = True,
             timeout_ms: int | None = None) -> bool:
        conn = self.connections.get(node_id)
        if conn is None or not conn.send(api_key, body, callback, now_ms=now_ms, version=version,
                                         expect_response=expect_response,
                                         timeout_ms=timeout_ms):
            return False
        # Try to write at once: most requests go out without waiting for the selector.
        conn.on_writable(now_ms)
        if conn.state is not ConnectionState.CLOSED:
            self._update_registration(conn)
        return True

    def least_loaded_node(self, now_ms: int) -> int | None:
        """A ready broker with the fewest unanswered requests; else one to connect to."""
        best, best_load = None, None
        for node_id, conn in self.connections.items():
            if conn.state is ConnectionState.READY:
                load = conn.in_flight_count
                if best_load is None or load < best_load:
                    best, best_load = node_id, load
        if best is not None:
            return best
        candidates = self.known_nodes()
        random.shuffle(candidates)
        for node_id in candidates:
            if node_id in self.connections:
                return node_id  # connecting already
        for node_id in candidates:
            if self.backoff_remaining_ms(node_id, now_ms) == 0:
                return node_id
        # all are backing off: also consider bootstrap servers as a fallback
        for node_id in self._bootstrap_ids:
            if self.backoff_remaining_ms(node_id, now_ms) == 0:
                return node_id
        return None

    # ------------------------------------------------------------------ the loop

    def wakeup(self) -> None:
        """Interrupts poll() from any thread."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a wake-up is already pending, or the client is closed

    def poll(self, timeout_ms: int, now_ms: int | None = None) -> None:
        """Waits up to timeout_ms for socket events and handles them: completes connections,
        writes queued requests, reads responses (their callbacks run here), closes timed-out
        and idle connections."""
        if now_ms is None:
            now_ms = monotonic_ms()
        for conn in self.connections.values():
            deadline = conn.next_deadline_ms()
            if deadline is not None:
                timeout_ms = min(timeout_ms, max(0, deadline - now_ms))
        events = self._selector.select(max(0, timeout_ms) / 1000.0)
        now_ms = monotonic_ms()
        for key, mask in events:
            if key.fileobj is self._wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
                continue
            ready: Connection = key.data
            if ready.state is ConnectionState.CLOSED:
                continue
            if mask & selectors.EVENT_WRITE:
                ready.on_writable(now_ms)
            if not ready.closed and mask & selectors.EVENT_READ:
                ready.on_readable(now_ms)
            if not ready.closed:
                self._update_registration(ready)
        for conn in list(self.connections.values()):
            conn.check_timeouts(now_ms)
            if (self._idle_ms >= 0 and conn.state is ConnectionState.READY
                    and conn.in_flight_count == 0
                    and now_ms - conn.last_activity_ms > self._idle_ms):
                _log.debug("[%s] closing idle connection to broker %d", self.client_id,
                           conn.node_id)
                conn.close(None)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for conn in list(self.connections.values()):
            conn.close(None)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
