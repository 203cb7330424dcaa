"""The sender thread's view of the cluster's sockets: one connection per broker, bootstrap
connections, reconnect backoff, request timeouts and one selector to wait on all of them.

Broker names are resolved off the sender thread (``client.dns.lookup``): a name whose DNS
answer is slow leaves the connections to every other broker alone. With ``use_all_dns_ips``
(the default, as in Java) each connection attempt to a node takes the next of the addresses
its name resolved to, and the name is resolved again once all were tried or after a
connection that had worked is lost. ``resolve_canonical_bootstrap_servers_only`` expands each
bootstrap name to the canonical names of its addresses once, at start-up.

KIP-899 rebootstrap (``metadata.recovery.strategy=rebootstrap``): when no broker of the last
metadata can be connected to, the client forgets them and starts again from
``bootstrap.servers`` (re-resolved), so a cluster whose brokers were all replaced is found
again through its bootstrap address.

Only the sender thread calls into a NetworkClient, except ``wakeup()`` (any thread).
"""
from __future__ import annotations

import ipaddress
import logging
import random
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kengine_ext import monotonic_ms

from .connection import Authenticator, Connection, ConnectionState, ResponseCallback
from .errors import AuthenticationError, KafkaError, NetworkError
from .reachability import BrokerReachability
from .sasl import authenticator_factory
from .security import ssl_context

if TYPE_CHECKING:
    from .config import ProducerConfig

__all__ = ["NetworkClient", "BrokerAddress", "canonical_bootstrap", "resolve"]

_log = logging.getLogger("kengine.network")

BrokerAddress = tuple[str, int]
#: (address family, socket address) as getaddrinfo gives them
SocketAddress = tuple[int, Any]


def resolve(host: str, port: int) -> list[SocketAddress]:
    """Every TCP address of ``host``, in the resolver's order, without repeats. Blocking: the
    network client calls it on a thread of its own. Raises OSError (socket.gaierror)."""
    out: list[SocketAddress] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if (family, sockaddr) not in out:
            out.append((family, sockaddr))
    return out


def canonical_bootstrap(servers: Iterable[BrokerAddress]) -> list[BrokerAddress]:
    """``resolve_canonical_bootstrap_servers_only``: each bootstrap name becomes the canonical
    names of its addresses (a reverse lookup of each; the address itself when it has none), as
    Java's ``InetAddress.getCanonicalHostName()``. A name that does not resolve stays as it is
    (its connection attempts report the error)."""
    out: list[BrokerAddress] = []
    for host, port in servers:
        try:
            addresses = resolve(host, port)
        except OSError as e:
            _log.warning("bootstrap server %s:%d does not resolve (%s)", host, port, e)
            out.append((host, port))
            continue
        for _, sockaddr in addresses:
            try:
                name = socket.getnameinfo(sockaddr, socket.NI_NAMEREQD)[0]
            except OSError:
                name = sockaddr[0]
            if (name, port) not in out:
                out.append((name, port))
    return out


def _literal_address(host: str, port: int) -> SocketAddress | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 4:
        return (socket.AF_INET, (host, port))
    return (socket.AF_INET6, (host, port, 0, 0))


class _Resolution:
    """The addresses of one node's host name and which one the next attempt takes."""

    __slots__ = ("host", "port", "addresses", "index", "used", "pending", "error",
                 "deadline_ms", "connected")

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.addresses: list[SocketAddress] = []
        self.index = 0
        self.used = False           # an attempt used addresses[index]: the next one moves on
        #: a resolution in progress on a resolver thread: [result or None, done flag]
        self.pending: list[Any] | None = None
        self.error: OSError | None = None
        self.deadline_ms = 0
        self.connected = False      # a connection to one of the addresses became ready


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
        dns_lookup: str = "use_all_dns_ips",
        rebootstrap: bool = True,
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
        self._use_all_ips = dns_lookup != "default"
        self._rebootstrap_enabled = rebootstrap
        self._bootstrap: list[BrokerAddress] = (
            canonical_bootstrap(bootstrap)
            if dns_lookup == "resolve_canonical_bootstrap_servers_only" else list(bootstrap))
        #: node id -> (host, port); bootstrap servers get ids -1, -2, ... until metadata names them
        self.addresses: dict[int, BrokerAddress] = {}
        self._bootstrap_ids: list[int] = []
        for i, addr in enumerate(self._bootstrap):
            self.addresses[-(i + 1)] = addr
            self._bootstrap_ids.append(-(i + 1))
        self._resolutions: dict[int, _Resolution] = {}
        #: how many times the client went back to bootstrap.servers (KIP-899)
        self.rebootstrap_count = 0
        self.connections: dict[int, Connection] = {}
        self._backoffs: dict[int, _Backoff] = {}
        #: the last connection failure, for errors that must reach the user (unreachable
        #: brokers); cleared when a connection becomes ready
        self.last_error: KafkaError | None = None
        #: set once when TLS or SASL authentication fails: retrying cannot fix credentials or
        #: certificates, so the sender fails everything with it and stops connecting
        self.fatal_error: AuthenticationError | None = None
        #: outages by address: a WARNING when a broker becomes unreachable and when it is
        #: back, and the words for errors of records that waited for it
        self.reachability = BrokerReachability(client_id)
        #: connections that became ready: a close of one is a disconnect, not a failed attempt
        self._ready: set[Connection] = set()
        #: the cluster's finalized feature levels (transaction.version...), from the newest
        #: ApiVersions answer of any broker (highest epoch), kept when connections close:
        #: what the cluster finalized does not change because one broker is unreachable.
        #: Written by the sender thread (connection set-up), replaced whole, never mutated:
        #: a reader on another thread sees one answer's levels.
        self.finalized_features: dict[str, int] = {}
        self._finalized_features_epoch = -1
        # Counters for the connection-creation-*, connection-close-* and incoming-byte-*
        # metrics; written by the sender thread, read by metrics snapshots on any thread.
        #: connections that became ready (TCP, TLS, SASL and ApiVersions done)
        self.connections_created = 0
        #: connections closed after they became ready
        self.connections_closed = 0
        #: bytes the closed connections received (the open ones count their own)
        self._closed_bytes_received = 0
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
            dns_lookup=cfg["client.dns.lookup"],
            rebootstrap=cfg["metadata.recovery.strategy"] == "rebootstrap",
        )

    # ------------------------------------------------------------------ topology

    def set_brokers(self, brokers: dict[int, BrokerAddress]) -> None:
        """Broker addresses from metadata (or a KIP-951 hint naming some of them). Connections
        to brokers whose address changed are closed; bootstrap entries stay for rebootstrap."""
        for node_id, addr in brokers.items():
            old = self.addresses.get(node_id)
            self.addresses[node_id] = addr
            conn = self.connections.get(node_id)
            if old is not None and old != addr and conn is not None:
                conn.close(None)

    def replace_brokers(self, brokers: dict[int, BrokerAddress]) -> None:
        """The complete broker list of a metadata response: brokers it no longer names are
        forgotten (their idle connections closed), so that a replaced cluster's old node ids
        do not count as brokers to try."""
        if not brokers:
            return
        self.set_brokers(brokers)
        for node_id in [n for n in self.addresses if n >= 0 and n not in brokers]:
            del self.addresses[node_id]
            self._resolutions.pop(node_id, None)
            self._backoffs.pop(node_id, None)
            conn = self.connections.get(node_id)
            if conn is not None and conn.in_flight_count == 0:
                conn.close(None)

    @property
    def bytes_received(self) -> int:
        """Bytes received from every broker so far, over closed and open connections."""
        # list() copies the dict's values in one step under the GIL: the sender thread may
        # add or drop connections meanwhile
        return self._closed_bytes_received + sum(
            c.bytes_received for c in list(self.connections.values()))

    def known_nodes(self) -> list[int]:
        return [n for n in self.addresses if n >= 0] or list(self._bootstrap_ids)

    def rebootstrap(self, reason: str) -> None:
        """KIP-899: forget every broker of the last metadata and start again from
        bootstrap.servers, resolved afresh."""
        self.rebootstrap_count += 1
        _log.info("[%s] rebootstrapping from %s: %s", self.client_id,
                  ",".join(f"{h}:{p}" for h, p in self._bootstrap), reason)
        for node_id in [n for n in self.addresses if n >= 0]:
            del self.addresses[node_id]
            self._resolutions.pop(node_id, None)
            self._backoffs.pop(node_id, None)
            conn = self.connections.get(node_id)
            if conn is not None:
                conn.close(None)
        for node_id in self._bootstrap_ids:
            self._resolutions.pop(node_id, None)
            self._backoffs.pop(node_id, None)

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
        res = self._resolutions.get(node_id)
        if res is None or (res.host, res.port) != addr:
            res = self._resolutions[node_id] = _Resolution(host, port)
        if res.pending is not None:
            return True          # resolving: poll() connects once the answer is in
        if res.used and res.addresses:
            # Java's use_all_dns_ips: each attempt takes the next address; once all were
            # tried, the name is resolved again
            res.index += 1
            if not self._use_all_ips or res.index >= len(res.addresses):
                res.addresses, res.index = [], 0
        if not res.addresses:
            literal = _literal_address(host, port)
            if literal is None:
                self._start_resolution(node_id, res, now_ms)
                return True
            res.addresses = [literal]
        res.used = True
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
            address=res.addresses[res.index],
        )
        if conn.state is ConnectionState.CLOSED:
            # failed at once (unresolvable name, refused): its backoff is set; keeping it
            # would make it look like a connection in progress to least_loaded_node()
            return False
        self.connections[node_id] = conn
        self._update_registration(conn)
        _log.debug("[%s] connecting to broker %d at %s:%d", self.client_id, node_id, host, port)
        return True

    def _start_resolution(self, node_id: int, res: _Resolution, now_ms: int) -> None:
        """getaddrinfo on a thread of its own (one per lookup: lookups are rare, and a hung one
        must not queue the others behind it); poll() picks the answer up."""
        box: list[Any] = [None, False]
        res.pending = box
        res.deadline_ms = now_ms + self._setup_timeout_ms

        def lookup() -> None:
            try:
                box[0] = resolve(res.host, res.port)
            except OSError as e:
                box[0] = e
            box[1] = True
            self.wakeup()

        threading.Thread(target=lookup, daemon=True,
                         name=f"kengine-dns-{self.client_id}-{res.host}").start()

    def _collect_resolutions(self, now_ms: int) -> None:
        for node_id, res in list(self._resolutions.items()):
            box = res.pending
            if box is None:
                continue
            if not box[1]:
                if now_ms >= res.deadline_ms:
                    res.pending = None   # abandoned: its thread ends on its own
                    self._resolution_failed(node_id, res, TimeoutError(
                        "no answer within socket.connection.setup.timeout.ms"))
                continue
            res.pending = None
            result = box[0]
            if isinstance(result, OSError) or not result:
                self._resolution_failed(node_id, res, result or OSError("no address"))
                continue
            res.addresses, res.index, res.used = result, 0, False
            self.connect(node_id, now_ms)

    def _resolution_failed(self, node_id: int, res: _Resolution, error: OSError) -> None:
        reason = getattr(error, "strerror", None) or str(error)
        self.last_error = NetworkError(
            f"cannot resolve broker address {res.host}:{res.port}: {reason}", node=node_id)
        _log.info("[%s] %s", self.client_id, self.last_error)
        self.reachability.failed(node_id, f"{res.host}:{res.port}", self.last_error)
        self._fail_attempt(node_id)

    def _fail_attempt(self, node_id: int) -> None:
        b = self._backoffs.setdefault(node_id, _Backoff())
        b.failures += 1
        delay = min(self._backoff_max_ms, self._backoff_ms * (2 ** min(b.failures - 1, 20)))
        delay = int(delay * random.uniform(0.8, 1.2))
        b.not_before_ms = monotonic_ms() + delay

    def resolving(self, node_id: int) -> bool:
        res = self._resolutions.get(node_id)
        return res is not None and res.pending is not None

    def _connection_ready(self, conn: Connection) -> None:
        res = self._resolutions.get(conn.node_id)
        if res is not None:
            res.connected = True
        self._backoffs.pop(conn.node_id, None)
        self.last_error = None
        self._ready.add(conn)
        self.connections_created += 1
        if conn.finalized_features_epoch >= 0 and \
                conn.finalized_features_epoch >= self._finalized_features_epoch:
            self.finalized_features = conn.finalized_features
            self._finalized_features_epoch = conn.finalized_features_epoch
        self.reachability.connected(f"{conn.host}:{conn.port}")
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
        res = self._resolutions.get(conn.node_id)
        if res is not None and res.connected:
            # a connection that worked is gone: the node's addresses may have changed
            res.addresses, res.index, res.used, res.connected = [], 0, False, False
        was_ready = conn in self._ready
        self._ready.discard(conn)
        self._closed_bytes_received += conn.bytes_received
        if was_ready:
            self.connections_closed += 1
        if error is not None:
            self.last_error = error
            if isinstance(error, AuthenticationError) and self.fatal_error is None:
                self.fatal_error = error
            if not was_ready and not isinstance(error, AuthenticationError):
                self.reachability.failed(conn.node_id, f"{conn.host}:{conn.port}", error)
            self._fail_attempt(conn.node_id)

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
        """A ready broker with the fewest unanswered requests; else one to connect to. When
        every known broker is backing off after failed attempts: with rebootstrap (KIP-899)
        the client starts again from bootstrap.servers; without, None (wait)."""
        node = self._least_loaded(now_ms)
        if node is None and self._rebootstrap_enabled and not self.closed and \
                any(n >= 0 for n in self.addresses):
            self.rebootstrap("no broker of the last metadata can be reached")
            node = self._least_loaded(now_ms)
        return node

    def _least_loaded(self, now_ms: int) -> int | None:
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
        # a node whose name is still being looked up may take long (a slow DNS server): try
        # another one meanwhile rather than wait for it
        for node_id in candidates:
            if not self.resolving(node_id) and self.backoff_remaining_ms(node_id, now_ms) == 0:
                return node_id
        for node_id in candidates:
            if self.resolving(node_id):
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
        for res in self._resolutions.values():
            if res.pending is not None:
                timeout_ms = min(timeout_ms, max(0, res.deadline_ms - now_ms))
        events = self._selector.select(max(0, timeout_ms) / 1000.0)
        now_ms = monotonic_ms()
        self._collect_resolutions(now_ms)
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
