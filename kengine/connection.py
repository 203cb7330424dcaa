"""One non-blocking connection to one Kafka broker, driven by the sender thread's selector.

A connection goes CONNECTING -> (TLS handshake) -> API_VERSIONS -> (SASL) -> READY, then carries
pipelined requests; when a SASL session's lifetime (KIP-368) nears its end it goes RETIRING:
it finishes what is in flight, takes nothing new, and closes so that a fresh, re-authenticated
connection replaces it. Kafka answers requests on a connection in the order they were sent, so the
unanswered ones are a FIFO matched by correlation id. A response that does not decode, a
request that outlives ``request.timeout.ms`` or a socket error closes the connection and fails
every unanswered request with a retriable error; the sender decides what to retry.

Everything here runs on the sender thread only; nothing is locked.
"""
from __future__ import annotations

import errno
import logging
import random
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from kengine_ext import WriteBuffer, decode_response, pick_version, write_request
from kengine_ext.schemas import ApiKey as API  # the one table of API keys (generated)

from .errors import (
    KafkaError,
    KafkaTimeoutError,
    NetworkError,
    ProtocolError,
    UnsupportedVersionError,
    error_for_code,
)
from .security import tls_error
from .version import __version__

__all__ = ["Connection", "ConnectionState", "ResponseCallback", "Authenticator", "API"]

_log = logging.getLogger("kengine.connection")

#: Response callback: (body, None) on success, (None, error) on failure.
ResponseCallback = Callable[[Any, "KafkaError | None"], None]


class ConnectionState(Enum):
    CONNECTING = "connecting"
    TLS_HANDSHAKE = "tls-handshake"
    AUTHENTICATING = "authenticating"
    API_VERSIONS = "api-versions"
    READY = "ready"
    RETIRING = "retiring"   # SASL session expiring: finishing in-flight requests, then closing
    CLOSED = "closed"


class Authenticator(Protocol):
    """SASL (or other) authentication run after TLS and before ApiVersions-gated traffic.

    ``start(conn)`` sends the first request(s) with ``conn.send_internal``; the responses'
    callbacks drive the exchange; it calls ``conn.authenticated(session_lifetime_ms=...)`` when
    done or ``conn.close(AuthenticationError(...))`` on failure. Some mechanisms need the
    negotiated SaslHandshake/SaslAuthenticate versions, so authentication runs after
    ApiVersions (which Kafka answers before authentication).
    """

    def start(self, conn: Connection) -> None: ...


@dataclass
class _InFlight:
    correlation_id: int
    api_key: int
    api_version: int
    deadline_ms: int
    callback: ResponseCallback
    sent_ms: int


_SIZE = struct.Struct(">i")
# The newest ApiVersions version kengine speaks (v4: Kafka 3.9+); older brokers answer it with
# UNSUPPORTED_VERSION and their own range, and the connection asks again at their version.
_API_VERSIONS_MAX = 4
# Record batches at least this large go to the socket as views of their own buffers (sendmsg)
# instead of being copied into the request's buffer.
_ZERO_COPY_MIN_BYTES = 2048
_MAX_IOVECS = 512
# Windows sockets have no sendmsg: there every buffer is written with its own send(), as on TLS
# sockets. Read once; tests switch it off to run that path on Linux.
_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
# A response larger than this is refused as malformed (Kafka's own socket.request.max.bytes
# default is 100 MiB; a Fetch could legitimately be larger only if asked to be).
MAX_RESPONSE_BYTES = 256 * 1024 * 1024


class Connection:
    def __init__(
        self,
        node_id: int,
        host: str,
        port: int,
        *,
        client_id: str,
        request_timeout_ms: int,
        setup_timeout_ms: int,
        now_ms: int,
        ssl_context: ssl.SSLContext | None = None,
        ssl_server_hostname: str | None = None,
        authenticator: Authenticator | None = None,
        send_buffer_bytes: int = -1,
        receive_buffer_bytes: int = -1,
        on_ready: Callable[[Connection], None] | None = None,
        on_close: Callable[[Connection, KafkaError | None], None] | None = None,
        client_software: tuple[str, str] = ("kengine", __version__),
        address: tuple[int, Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.host, self.port = host, port
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self.state = ConnectionState.CONNECTING
        #: negotiated version per API key (from ApiVersions)
        self.versions: dict[int, int] = {}
        #: broker's (min, max) per API key, as advertised
        self.broker_ranges: dict[int, tuple[int, int]] = {}
        #: cluster-wide finalized feature levels (ApiVersions v3+), e.g. transaction.version
        self.finalized_features: dict[str, int] = {}
        #: the epoch of those levels (-1: none given); a higher epoch is a newer finalization
        self.finalized_features_epoch = -1
        #: the ApiVersions version of the request that set this connection up
        self.api_versions_version = _API_VERSIONS_MAX
        self.last_activity_ms = now_ms
        #: monotonic ms after which the connection retires (SASL session lifetime), or None
        self.retire_at_ms: int | None = None
        self.error: KafkaError | None = None
        self._setup_deadline_ms = now_ms + setup_timeout_ms
        self._ssl_context = ssl_context
        self._ssl_server_hostname = ssl_server_hostname or host
        self._authenticator = authenticator
        self._on_ready = on_ready
        self._on_close = on_close
        self._client_software = client_software
        self._next_correlation_id = 0
        self._in_flight: deque[_InFlight] = deque()
        # Encoded requests not yet written, as buffers in wire order: a request's header and
        # field bytes, and views of the record batches themselves (sent with sendmsg, never
        # copied). A callable in the queue completes a fire-and-forget request (acks=0) once
        # everything before it was written. Bounded by the in-flight limit: the sender adds a
        # request only when fewer than max.in.flight.requests.per.connection are unanswered.
        self._out: deque[memoryview | ResponseCallback] = deque()
        self._out_bytes = 0                # bytes queued in _out, for wants_write()
        self._in = bytearray()             # received bytes not yet parsed
        #: bytes read from the broker after the TLS handshake (decrypted), for
        #: incoming-byte-*: written by the sender thread, read by metrics snapshots
        self.bytes_received = 0
        self._raw: socket.socket | None = None
        self.sock: socket.socket | None = None
        #: (family, sockaddr) connected to: given (resolved by the network client, which tries
        #: each address of a name in turn), or the first one the name resolves to
        self.address = address
        self._open_socket(send_buffer_bytes, receive_buffer_bytes)

    # ------------------------------------------------------------------ set-up

    def _open_socket(self, sndbuf: int, rcvbuf: int) -> None:
        if self.address is None:
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            except socket.gaierror as e:
                self._fail_setup(NetworkError(
                    f"cannot resolve broker address {self.host}:{self.port}: {e.strerror}",
                    node=self.node_id))
                return
            self.address = (infos[0][0], infos[0][4])
        family, addr = self.address
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sndbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if rcvbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._raw = self.sock = sock
        err = sock.connect_ex(addr)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._fail_setup(NetworkError(
                f"cannot connect to broker {self.host}:{self.port}: "
                f"{errno.errorcode.get(err, err)}",
                node=self.node_id))

    def _fail_setup(self, error: KafkaError) -> None:
        self.close(error)

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.READY

    @property
    def closed(self) -> bool:
        """Read again after every call that may close it (mypy narrows the enum otherwise)."""
        return self.state is ConnectionState.CLOSED

    def wants_write(self) -> bool:
        if self.state is ConnectionState.CONNECTING:
            return True
        if self.state is ConnectionState.TLS_HANDSHAKE:
            return self._tls_wants_write
        return self._out_bytes > 0

    def _on_connected(self, now_ms: int) -> None:
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.close(NetworkError(
                f"connection to broker {self.host}:{self.port} failed: "
                f"{errno.errorcode.get(err, err)}", node=self.node_id))
            return
        if self._ssl_context is not None:
            try:
                self.sock = self._ssl_context.wrap_socket(
                    self.sock, server_hostname=self._ssl_server_hostname,
                    do_handshake_on_connect=False)
            except (OSError, ValueError) as e:
                self.close(tls_error(OSError(str(e)) if isinstance(e, ValueError) else e,
                                     self.host, self.port, self.node_id, "set-up"))
                return
            self.state = ConnectionState.TLS_HANDSHAKE
            self._tls_wants_write = True
            self._tls_step()
        else:
            self._start_api_versions()

    def _tls_step(self) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._tls_wants_write = False
            return
        except ssl.SSLWantWriteError:
            self._tls_wants_write = True
            return
        except OSError as e:
            self.close(tls_error(e, self.host, self.port, self.node_id, "handshake"))
            return
        self._start_api_versions()

    def _start_api_versions(self) -> None:
        self.state = ConnectionState.API_VERSIONS
        self._send_api_versions(_API_VERSIONS_MAX)

    def _send_api_versions(self, version: int) -> None:
        #: the ApiVersions version asked with, for the negotiation report
        self.api_versions_version = version
        name, software_version = self._client_software
        # v3+ carries the client's name and version; a broker refuses a v3+ request without
        # them (INVALID_REQUEST), so a retry at a lower version keeps them
        body = ({"client_software_name": name, "client_software_version": software_version}
                if version >= 3 else {})
        self.send_internal(API.API_VERSIONS, version, body, self._on_api_versions)

    def _on_api_versions(self, body: Any, error: KafkaError | None) -> None:
        if error is not None:
            return  # the connection is closing with that error already
        code = body["error_code"]
        ranges = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
        if code == UnsupportedVersionError.code and self.api_versions_version > 0:
            # UNSUPPORTED_VERSION: the broker answered in v0 and listed its own ApiVersions
            # range; retry at its highest version (as Java does), or v0 if it listed none
            lo, hi = ranges.get(API.API_VERSIONS, (0, 0))
            self._send_api_versions(max(0, min(hi, self.api_versions_version - 1)))
            return
        if code:
            self.close(error_for_code(code, node=self.node_id, api="ApiVersions"))
            return
        self.broker_ranges = ranges
        self.finalized_features = {f["name"]: f["max_version_level"]
                                   for f in body.get("finalized_features") or ()}
        self.finalized_features_epoch = body.get("finalized_features_epoch", -1)
        for api_key, (lo, hi) in ranges.items():
            try:
                version = pick_version(api_key, lo, hi)
            except UnsupportedVersionError:
                continue  # an API kengine has no schema for
            if version is not None:
                self.versions[api_key] = version
        if API.PRODUCE not in self.versions:
            self.close(UnsupportedVersionError(
                f"broker {self.host}:{self.port} supports no Produce version kengine speaks "
                f"(it offers {ranges.get(API.PRODUCE)}, kengine needs 3-13)"))
            return
        if self._authenticator is not None:
            self.state = ConnectionState.AUTHENTICATING
            self._authenticator.start(self)
        else:
            self.authenticated()

    def authenticated(self, session_lifetime_ms: int = 0) -> None:
        """Called when set-up is complete (directly, or by the authenticator). A SASL session
        with a lifetime (the broker's connections.max.reauth.ms) retires at a random 85-95%
        of it, as Java's client re-authenticates, so the broker never cuts it off mid-request."""
        self.state = ConnectionState.READY
        if session_lifetime_ms > 0:
            self.retire_at_ms = self.last_activity_ms + int(
                session_lifetime_ms * random.uniform(0.85, 0.95))
        if self._on_ready is not None:
            self._on_ready(self)

    # ------------------------------------------------------------------ requests

    @property
    def in_flight_count(self) -> int:
        return len(self._in_flight)

    def version(self, api_key: int) -> int | None:
        return self.versions.get(api_key)

    def send(self, api_key: int, body: Any, callback: ResponseCallback, *, now_ms: int,
             version: int | None = None, expect_response: bool = True,
             timeout_ms: int | None = None) -> bool:
        """Queues a request on a READY connection. Returns False when it is not ready.
        Without expect_response (Produce with acks=0) the callback runs, with a None body,
        once the request's bytes are handed to the kernel."""
        if self.state is not ConnectionState.READY:
            return False
        v = self.versions.get(api_key) if version is None else version
        if v is None:
            callback(None, UnsupportedVersionError(
                f"broker {self.node_id} ({self.host}:{self.port}) does not support api key "
                f"{api_key}", node=self.node_id))
            return True
        self._enqueue(api_key, v, body, callback, now_ms, expect_response, timeout_ms)
        return True

    def send_internal(self, api_key: int, version: int, body: Any,
                      callback: ResponseCallback) -> None:
        """A set-up request (ApiVersions, SASL) sent before the connection is READY."""
        self._enqueue(api_key, version, body, callback, self.last_activity_ms, True, None)

    def _enqueue(self, api_key: int, version: int, body: Any, callback: ResponseCallback,
                 now_ms: int, expect_response: bool, timeout_ms: int | None) -> None:
        cid = self._next_correlation_id
        self._next_correlation_id = (cid + 1) & 0x7FFFFFFF
        frame = WriteBuffer(_ZERO_COPY_MIN_BYTES)
        try:
            write_request(frame, api_key, version, cid, self.client_id, body)
        except KafkaError as e:
            callback(None, e)
            return
        for segment in frame.segments():
            view = memoryview(segment).cast("B")
            self._out.append(view)
            self._out_bytes += view.nbytes
        deadline = now_ms + (self.request_timeout_ms if timeout_ms is None else timeout_ms)
        if expect_response:
            self._in_flight.append(_InFlight(cid, api_key, version, deadline, callback, now_ms))
        else:
            self._out.append(callback)

    # ------------------------------------------------------------------ I/O

    def on_writable(self, now_ms: int) -> None:
        if self.state is ConnectionState.CONNECTING:
            self._on_connected(now_ms)
            return
        if self.state is ConnectionState.TLS_HANDSHAKE:
            self._tls_step()
            return
        self._flush(now_ms)

    def _flush(self, now_ms: int) -> None:
        sock = self.sock
        assert sock is not None
        out = self._out
        # TLS sockets (and Windows sockets) have no sendmsg: they take one buffer per call
        gather = _HAS_SENDMSG and not isinstance(sock, ssl.SSLSocket)
        while out:
            head = out[0]
            if not isinstance(head, memoryview):
                out.popleft()
                head(None, None)   # an acks=0 request fully written: done
                continue
            try:
                if gather:
                    buffers: list[memoryview] = []
                    for item in out:
                        if not isinstance(item, memoryview) or len(buffers) == _MAX_IOVECS:
                            break
                        buffers.append(item)
                    n = sock.sendmsg(buffers)
                else:
                    n = sock.send(head)
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                break
            except OSError as e:
                self.close(self._io_error(e, "write"))
                return
            self._out_bytes -= n
            self.last_activity_ms = now_ms
            while n > 0:
                head = out[0]
                assert isinstance(head, memoryview)
                if n >= head.nbytes:
                    n -= head.nbytes
                    out.popleft()
                    head.release()
                else:
                    out[0] = head[n:]   # partly written: keep the rest
                    n = 0

    def on_readable(self, now_ms: int) -> None:
        if self.state is ConnectionState.CONNECTING:
            self._on_connected(now_ms)
            return
        if self.state is ConnectionState.TLS_HANDSHAKE:
            self._tls_step()
            return
        assert self.sock is not None
        while True:
            try:
                chunk = self.sock.recv(262144)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except OSError as e:
                self.close(self._io_error(e, "read"))
                return
            if not chunk:
                self.close(NetworkError(f"broker {self.node_id} ({self.host}:{self.port}) "
                                        f"closed the connection", node=self.node_id))
                return
            self._in += chunk
            self.bytes_received += len(chunk)
            self.last_activity_ms = now_ms
            if len(chunk) < 262144 and not (isinstance(self.sock, ssl.SSLSocket)
                                            and self.sock.pending()):
                break
        self._parse_frames()

    def _io_error(self, e: OSError, what: str) -> KafkaError:
        # With TLS 1.3 the broker checks our certificate after our side of the handshake is
        # done: its refusal arrives as an alert on the first read, and is as fatal as a
        # refusal during the handshake.
        if isinstance(e, ssl.SSLError):
            return tls_error(e, self.host, self.port, self.node_id, "session")
        return NetworkError(f"{what} to broker {self.node_id} ({self.host}:{self.port}) "
                            f"failed: {e}", node=self.node_id)

    def _parse_frames(self) -> None:
        buf = self._in
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _SIZE.unpack_from(buf, pos)
            if size < 4 or size > MAX_RESPONSE_BYTES:
                self.close(ProtocolError(
                    f"broker {self.node_id} sent a response frame of {size} bytes",
                    ))
                return
            if len(buf) - pos - 4 < size:
                break
            frame = bytes(buf[pos + 4:pos + 4 + size])
            pos += 4 + size
            if not self._dispatch(frame):
                return
        if pos:
            del buf[:pos]

    def _dispatch(self, frame: bytes) -> bool:
        if not self._in_flight:
            self.close(ProtocolError(f"broker {self.node_id} sent a response nobody asked for"))
            return False
        req = self._in_flight.popleft()
        try:
            cid, body = decode_response(req.api_key, req.api_version, frame)
        except KafkaError as e:
            self._in_flight.appendleft(req)
            self.close(ProtocolError(
                f"broker {self.node_id} sent a malformed response to api key {req.api_key} "
                f"v{req.api_version}: {e}"))
            return False
        if cid != req.correlation_id:
            self._in_flight.appendleft(req)
            self.close(ProtocolError(
                f"broker {self.node_id} answered correlation id {cid}, expected "
                f"{req.correlation_id}"))
            return False
        try:
            req.callback(body, None)
        except Exception:
            _log.exception("[%s] handling the response to api key %d from broker %d failed",
                           self.client_id, req.api_key, self.node_id)
        return self.state is not ConnectionState.CLOSED

    # ------------------------------------------------------------------ timeouts and close

    def check_timeouts(self, now_ms: int) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        if self.retire_at_ms is not None and now_ms >= self.retire_at_ms:
            if self.state is ConnectionState.READY:
                self.state = ConnectionState.RETIRING
            if not self._in_flight and not self._out:
                _log.debug("[%s] closing connection to broker %d: its SASL session expires; "
                           "the next one re-authenticates", self.client_id, self.node_id)
                self.close(None)
                return
        if self.state is not ConnectionState.READY and self.state is not \
                ConnectionState.RETIRING and now_ms >= self._setup_deadline_ms:
            self.close(NetworkError(
                f"connection set-up to broker {self.node_id} ({self.host}:{self.port}) took "
                f"longer than socket.connection.setup.timeout.ms ({self.state.value})",
                node=self.node_id))
            return
        if self._in_flight and now_ms >= self._in_flight[0].deadline_ms:
            req = self._in_flight[0]
            self.close(KafkaTimeoutError(
                f"broker {self.node_id} ({self.host}:{self.port}) did not answer api key "
                f"{req.api_key} within {req.deadline_ms - req.sent_ms} ms (request.timeout.ms); "
                f"disconnected"))

    def next_deadline_ms(self) -> int | None:
        if self.state is ConnectionState.RETIRING:
            return self._in_flight[0].deadline_ms if self._in_flight else 0
        if self.state is not ConnectionState.READY:
            return self._setup_deadline_ms
        deadline = self._in_flight[0].deadline_ms if self._in_flight else None
        if self.retire_at_ms is not None and (deadline is None or self.retire_at_ms < deadline):
            return self.retire_at_ms
        return deadline

    def close(self, error: KafkaError | None = None) -> None:
        """Closes the socket and fails every unanswered request with `error` (a retriable
        NetworkError when None)."""
        if self.state is ConnectionState.CLOSED:
            return
        self.state = ConnectionState.CLOSED
        self.error = error
        if self._on_close is not None:
            self._on_close(self, error)  # before the socket closes: its fd leaves the selector
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        failure = error or NetworkError(f"connection to broker {self.node_id} closed",
                                        node=self.node_id)
        pending = [req.callback for req in self._in_flight]
        self._in_flight.clear()
        pending += [cb for cb in self._out if not isinstance(cb, memoryview)]  # acks=0 unsent
        self._out.clear()
        self._out_bytes = 0
        if error is not None:
            level = logging.WARNING if not isinstance(error, NetworkError) else logging.INFO
            _log.log(level, "[%s] connection to broker %d (%s:%d) closed: %s", self.client_id,
                     self.node_id, self.host, self.port, error)
        for callback in pending:
            try:
                callback(None, failure)
            except Exception:
                _log.exception("[%s] failing a request to broker %d raised", self.client_id,
                               self.node_id)

    def __repr__(self) -> str:
        return (f"Connection(node={self.node_id}, {self.host}:{self.port}, {self.state.value}, "
                f"in_flight={len(self._in_flight)})")
