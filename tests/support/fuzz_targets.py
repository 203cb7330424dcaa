"""Fuzz targets over everything in kengine that reads bytes a broker chose: the response
stream of a connection (frames, correlation ids, every response decoder, the ApiVersions,
Metadata and Produce handlers behind them), RecordBatch decoding, SASL server messages and
``sasl.jaas.config``.

Each target takes one ``bytes`` input and returns normally, or raises ``FuzzFailure`` when
kengine let something other than its own typed errors out, or left a handler's exception
behind. Hypothesis drives them in-process (tests/unit/test_fuzz_targets.py); atheris drives
them from ``python -m tests.support.atheris_runner <target> [libFuzzer flags]``
(tests/unit/test_fuzz_atheris.py)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kengine_ext as k
from kengine.connection import API, Connection, ConnectionState
from kengine.errors import AuthenticationError, ConfigError, CorruptRecordError, KafkaError
from kengine.metadata import Metadata
from kengine.reachability import BrokerReachability
from kengine.sasl import OAuthBearerSession, ScramCache, ScramSession, parse_jaas_config
from kengine.sender import Sender, SenderSettings
from tests.support.core import Core

__all__ = ["TARGETS", "FuzzFailure", "seeds"]


class FuzzFailure(AssertionError):
    """kengine let an unexpected exception out, or a handler failed."""


# ------------------------------------------------------------------ a producer without sockets


def _core() -> Core:
    """The send path and accumulator with two topics whose leader is node 0."""
    return Core({"t": [0, 0], "u": [0, 0]}, linger_ms=0, max_block_ms=0)


class _Client:
    """What Metadata and Sender ask of a NetworkClient, without a network."""

    def __init__(self) -> None:
        self.addresses: dict[int, tuple[str, int]] = {0: ("127.0.0.1", 9092)}
        self.fatal_error = None
        self.reachability = BrokerReachability("fuzz")

    def set_brokers(self, brokers: dict[int, tuple[str, int]]) -> None:
        self.addresses.update(brokers)

    def replace_brokers(self, brokers: dict[int, tuple[str, int]]) -> None:
        self.addresses.update(brokers)

    def rebootstrap(self, reason: str) -> None:
        pass

    def wakeup(self) -> None:
        pass


class _Offline(Connection):
    """A Connection fed bytes directly instead of from a socket."""

    def _open_socket(self, sndbuf: int, rcvbuf: int) -> None:
        self.sock = None


class _Harness:
    def __init__(self) -> None:
        self.core = _core()
        self.client = _Client()
        self.metadata = Metadata(self.core.acc, self.client, client_id="fuzz",  # type: ignore[arg-type]
                                 max_age_ms=1000, refresh_backoff_ms=10,
                                 refresh_backoff_max_ms=100)
        self.sender = Sender(self.core.acc, self.client, self.metadata,  # type: ignore[arg-type]
                             SenderSettings(client_id="fuzz", acks=-1, request_timeout_ms=1000,
                                            delivery_timeout_ms=60_000, retries=5,
                                            retry_backoff_ms=10, retry_backoff_max_ms=100,
                                            max_request_size=1 << 20))
        self.handler_errors: list[BaseException] = []

    def guarded(self, handler: Callable[[Any, KafkaError | None], None]
                ) -> Callable[[Any, KafkaError | None], None]:
        # Connection logs and swallows handler exceptions; a fuzzer must see them
        def run(body: Any, error: KafkaError | None) -> None:
            try:
                handler(body, error)
            except BaseException as e:
                self.handler_errors.append(e)
                raise
        return run

    def batches(self) -> dict[tuple[str, int], Any]:
        for topic in ("t", "u"):
            for p in (0, 1):
                self.core.send(topic, b"value", key=b"key", partition=p)
        sent = {}
        for b in self.core.acc.drain({0}, 1 << 30, k.monotonic_ms() + 10_000).get(0, []):
            self.core.acc.seal(b)
            sent[(b.topic, b.partition)] = b
        return sent


# ------------------------------------------------------------------ targets


def response_stream(data: bytes) -> None:
    """A broker's bytes after kengine asked ApiVersions v3, then Metadata v12 and Produce v9:
    framing, correlation ids, decoders and handlers must all hold."""
    h = _Harness()
    conn = _Offline(0, "127.0.0.1", 9092, client_id="fuzz", request_timeout_ms=1000,
                    setup_timeout_ms=1000, now_ms=0)
    conn.send_internal(API.API_VERSIONS, 3, {"client_software_name": "fuzz",
                                             "client_software_version": "0"},
                       h.guarded(conn._on_api_versions))
    conn.state = ConnectionState.API_VERSIONS
    conn.send_internal(API.METADATA, 12, {"topics": [{"name": "t"}]},
                       h.guarded(h.metadata._on_response))
    sent = h.batches()
    conn.send_internal(API.PRODUCE, 9, {"acks": -1, "timeout_ms": 1000, "topic_data": []},
                       h.guarded(lambda body, err: h.sender._on_produce_response(
                           0, dict(sent), 0, body, err)))
    try:
        # in two pieces, as a socket may deliver them
        cut = len(data) // 3
        for piece in (data[:cut], data[cut:]):
            if conn.state is ConnectionState.CLOSED:
                break
            conn._in += piece
            conn._parse_frames()
        conn.close(None)
    except Exception as e:
        raise FuzzFailure(f"the connection let {type(e).__name__}: {e} out") from e
    if h.handler_errors:
        e = h.handler_errors[0]
        raise FuzzFailure(f"a response handler raised {type(e).__name__}: {e}") from e
    for b in sent.values():
        h.core.acc.complete(b)   # whatever the fuzzer made of them, nothing may be left locked


def record_batches(data: bytes) -> None:
    for verify in (True, False):
        try:
            k.decode_batches(data, verify_crc=verify)
        except CorruptRecordError:
            pass
        except Exception as e:
            raise FuzzFailure(f"decode_batches raised {type(e).__name__}: {e}") from e


_SCRAM_CACHE = ScramCache()


def scram_server_messages(data: bytes) -> None:
    """Server-first and server-final messages, split at the first newline."""
    first, _, final = data.partition(b"\n")
    session = ScramSession("SCRAM-SHA-256", "user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO",
                           cache=_SCRAM_CACHE)
    session.first_message()
    try:
        session.respond(first)
        session.respond(final)
    except AuthenticationError:
        pass
    except Exception as e:
        raise FuzzFailure(f"SCRAM raised {type(e).__name__}: {e}") from e
    try:
        oauth = OAuthBearerSession(lambda: "token")
        oauth.first_message()
        oauth.respond(first)
        oauth.respond(final)
    except AuthenticationError:
        pass
    except Exception as e:
        raise FuzzFailure(f"OAUTHBEARER raised {type(e).__name__}: {e}") from e


def jaas_config(data: bytes) -> None:
    try:
        parse_jaas_config(data.decode("utf-8", "replace"))
    except ConfigError:
        pass
    except Exception as e:
        raise FuzzFailure(f"parse_jaas_config raised {type(e).__name__}: {e}") from e


TARGETS: dict[str, Callable[[bytes], None]] = {
    "response_stream": response_stream,
    "record_batches": record_batches,
    "scram_server_messages": scram_server_messages,
    "jaas_config": jaas_config,
}


def _frame(api_key: int, version: int, cid: int, body: dict[str, Any]) -> bytes:
    return k.encode_response(api_key, version, cid, body)


def seeds(target: str) -> list[bytes]:
    """Well-formed inputs a fuzzer starts from and mutates."""
    if target == "response_stream":
        versions = _frame(API.API_VERSIONS, 3, 0, {"api_keys": [
            {"api_key": a, "min_version": 0, "max_version": k.supported_versions(a)[1]}
            for a in (API.PRODUCE, API.METADATA, API.API_VERSIONS)]})
        metadata = _frame(API.METADATA, 12, 1, {
            "brokers": [{"node_id": 0, "host": "127.0.0.1", "port": 9092}],
            "topics": [{"name": "t", "topic_id": bytes(range(16)), "partitions": [
                {"partition_index": i, "leader_id": 0, "leader_epoch": 1,
                 "replica_nodes": [0], "isr_nodes": [0]} for i in range(2)]}]})
        produce = _frame(API.PRODUCE, 9, 2, {"responses": [
            {"name": t, "partition_responses": [
                {"index": p, "error_code": code, "base_offset": 7} for p, code in
                ((0, 0), (1, 6))]} for t in ("t", "u")], "throttle_time_ms": 5})
        return [versions + metadata + produce, versions + metadata, versions]
    if target == "record_batches":
        return [bytes(k.encode_batch([b"v%d" % i for i in range(5)], keys=[b"k"] * 5,
                                     headers=[[("h", b"x")]] * 5, compression=codec))
                for codec in ("none", "gzip", "snappy", "lz4", "zstd")]
    if target == "scram_server_messages":
        return [(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                b"i=4096\nv=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")]
    if target == "jaas_config":
        return [(b'org.apache.kafka.common.security.scram.ScramLoginModule required '
                b'username="alice" password="a\\"b" tokenauth=true;')]
    raise KeyError(target)
