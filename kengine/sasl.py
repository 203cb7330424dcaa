"""SASL authentication of a broker connection: PLAIN, SCRAM-SHA-256/512 and OAUTHBEARER.

A :class:`SaslAuthenticator` is the ``Authenticator`` a :class:`~kengine.connection.Connection`
runs after ApiVersions: it sends SaslHandshake (v1) naming the mechanism, then one
SaslAuthenticate request per client message of the mechanism's exchange (KIP-152), and calls
``conn.authenticated()`` when the exchange completes or ``conn.close(error)`` with an
:class:`~kengine.errors.AuthenticationError` when it fails. The sender treats that error as
fatal: retrying cannot fix a wrong password.

The exchanges themselves are small state machines, one object per connection attempt:

* PLAIN (RFC 4616): one message, ``\\0user\\0password``. Send it over TLS only.
* SCRAM (RFC 5802, RFC 7677): client-first, server-first (nonce, salt, iterations),
  client-final with the proof, server-final whose signature is checked, so a broker that does
  not know the password (or an impostor in the middle) is refused too.
* OAUTHBEARER (RFC 7628, KIP-255/342): the token from the user's callback in one message;
  a broker that rejects it answers with a JSON error, acknowledged with a lone ``0x01``.

Everything runs on the sender thread; nothing is locked.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .config import (
    HIDDEN,
    ProducerConfig,
    Setting,
    SettingsGroup,
    contribute,
    parse_optional_callable,
    parse_optional_str,
    parse_secret_str,
    shown,
)
from .errors import (
    AuthenticationError,
    ConfigError,
    KafkaError,
    error_for_code,
)

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "SETTINGS",
    "JaasConfig",
    "OAuthBearerSession",
    "PlainSession",
    "SaslAuthenticator",
    "SaslSession",
    "ScramSession",
    "authenticator_factory",
    "parse_jaas_config",
]

_log = logging.getLogger("kengine.sasl")

_SASL_HANDSHAKE = 17
_SASL_AUTHENTICATE = 36

# -------------------------------------------------------------------------------- JAAS

_LOGIN_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": "PLAIN",
    "org.apache.kafka.common.security.scram.ScramLoginModule": "SCRAM",
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule": "OAUTHBEARER",
}
_CONTROL_FLAGS = ("required", "requisite", "sufficient", "optional")
_JAAS_WORD = re.compile(r"[A-Za-z0-9_.$-]+")
_JAAS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


@dataclass(frozen=True)
class JaasConfig:
    """One login module of a ``sasl.jaas.config`` string, as Kafka's Java client reads it."""

    login_module: str
    control_flag: str
    options: Mapping[str, str] = field(repr=False)

    @property
    def mechanism_family(self) -> str:
        """PLAIN, SCRAM or OAUTHBEARER."""
        return _LOGIN_MODULES[self.login_module]


def parse_jaas_config(text: str) -> JaasConfig:
    """Parses ``<LoginModule> <flag> key="value" ...;`` (one module, as Kafka requires).

    Values may be double-quoted (with backslash escapes) or bare words. Errors name the
    position and what was expected, never the text around it: it holds a password."""
    pos = 0
    n = len(text)

    def fail(what: str) -> ConfigError:
        return ConfigError("sasl.jaas.config", "[hidden]",
                           f"{what} at character {pos} (format: '<LoginModule> required "
                           f"username=\"...\" password=\"...\";')")

    def skip_space() -> None:
        nonlocal pos
        while pos < n and text[pos].isspace():
            pos += 1

    def word(what: str) -> str:
        nonlocal pos
        skip_space()
        m = _JAAS_WORD.match(text, pos)
        if m is None:
            raise fail(f"expected {what}")
        pos = m.end()
        return m.group()

    module = word("a login module class name")
    simple = {name.rsplit(".", 1)[1]: name for name in _LOGIN_MODULES}
    module = simple.get(module, module)
    if module not in _LOGIN_MODULES:
        raise ConfigError("sasl.jaas.config", "[hidden]",
                          "a login module kengine implements: PlainLoginModule, "
                          "ScramLoginModule or OAuthBearerLoginModule (GSSAPI/Kerberos is not "
                          "supported)")
    flag = word("a control flag (required)")
    if flag.lower() not in _CONTROL_FLAGS:
        raise fail("expected a control flag (required)")
    options: dict[str, str] = {}
    while True:
        skip_space()
        if pos < n and text[pos] == ";":
            pos += 1
            break
        if pos >= n:
            raise fail("expected ';' at the end of the login module")
        key = word("an option name or ';'")
        skip_space()
        if pos >= n or text[pos] != "=":
            raise fail("expected '=' after an option name")
        pos += 1
        skip_space()
        if pos < n and text[pos] == '"':
            pos += 1
            chars = []
            while True:
                if pos >= n:
                    raise fail("unterminated quoted value")
                c = text[pos]
                if c == '"':
                    pos += 1
                    break
                if c == "\\" and pos + 1 < n:
                    chars.append(_JAAS_ESCAPES.get(text[pos + 1], text[pos + 1]))
                    pos += 2
                    continue
                chars.append(c)
                pos += 1
            value = "".join(chars)
        else:
            value = word("an option value")
        if key in options:
            raise fail("an option given twice")
        options[key] = value
    skip_space()
    if pos < n:
        raise fail("kengine takes exactly one login module; unexpected text")
    return JaasConfig(module, flag.lower(), options)


# -------------------------------------------------------------------------------- sessions


class SaslSession(Protocol):
    """One client side of a SASL exchange. ``first_message()`` starts it; ``respond()`` takes
    each server message and returns the next client message, or None when the exchange is
    complete. Both raise AuthenticationError when the server's messages are wrong."""

    mechanism: str

    def first_message(self) -> bytes: ...

    def respond(self, server_message: bytes) -> bytes | None: ...


class PlainSession:
    """RFC 4616: the user name and password in one message, no authorization id."""

    mechanism = "PLAIN"

    def __init__(self, username: str, password: str) -> None:
        self._message = b"\0" + username.encode() + b"\0" + password.encode()

    def first_message(self) -> bytes:
        return self._message

    def respond(self, server_message: bytes) -> bytes | None:
        if server_message:
            raise AuthenticationError("SASL PLAIN: the broker sent a challenge after the "
                                      "credentials; PLAIN has none")
        return None


#: SCRAM mechanisms: hash name, and Kafka's bounds on the iteration count. The upper bound is
#: the largest count Kafka stores; a broker asking for more is refused rather than let it make
#: the sender thread hash for minutes.
_SCRAM = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
_SCRAM_MIN_ITERATIONS = 4096
_SCRAM_MAX_ITERATIONS = 16384
_GS2_HEADER = b"n,,"   # no channel binding, no authorization id


class ScramCache:
    """The last salted password per mechanism: PBKDF2 costs milliseconds, and every connection
    to the cluster gets the same salt and iteration count. Sender thread only."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[tuple[str, bytes, int], bytes] = {}

    def salted_password(self, hash_name: str, password: bytes, salt: bytes,
                        iterations: int) -> bytes:
        key = (hash_name, salt, iterations)
        found = self._entries.get(key)
        if found is None:
            found = hashlib.pbkdf2_hmac(hash_name, password, salt, iterations)
            # one entry per mechanism: a broker cannot grow this by inventing salts
            for old in [k for k in self._entries if k[0] == hash_name]:
                del self._entries[old]
            self._entries[key] = found
        return found


class ScramSession:
    """RFC 5802 client with Kafka's extensions (``tokenauth=true`` for delegation tokens)."""

    def __init__(self, mechanism: str, username: str, password: str, *,
                 token_auth: bool = False, cache: ScramCache | None = None,
                 nonce: str | None = None) -> None:
        if mechanism not in _SCRAM:
            raise ConfigError("sasl.mechanism", mechanism, "SCRAM-SHA-256 or SCRAM-SHA-512")
        self.mechanism = mechanism
        self._hash = _SCRAM[mechanism]
        self._password = password.encode()
        self._cache = cache or ScramCache()
        # RFC 5802 saslname: ',' and '=' escaped
        name = username.replace("=", "=3D").replace(",", "=2C")
        # printable, no ',': token_urlsafe's alphabet is [A-Za-z0-9_-]
        self._client_nonce = nonce or secrets.token_urlsafe(24)
        extensions = ",tokenauth=true" if token_auth else ""
        self._client_first_bare = f"n={name},r={self._client_nonce}{extensions}".encode()
        self._server_signature: bytes | None = None
        self._state = "start"

    def first_message(self) -> bytes:
        self._state = "client-first"
        return _GS2_HEADER + self._client_first_bare

    def respond(self, server_message: bytes) -> bytes | None:
        if self._state == "client-first":
            self._state = "client-final"
            return self._client_final(server_message)
        if self._state == "client-final":
            self._state = "done"
            self._verify_server_final(server_message)
            return None
        raise AuthenticationError(f"{self.mechanism}: the broker sent a message after the "
                                  f"exchange completed")

    def _fail(self, what: str) -> AuthenticationError:
        return AuthenticationError(f"{self.mechanism}: {what}")

    def _client_final(self, server_first: bytes) -> bytes:
        attrs = self._attributes(server_first, "server-first message")
        if "m" in attrs:
            raise self._fail("the broker requires a SCRAM extension kengine does not know")
        nonce, salt_b64, iterations_text = attrs.get("r"), attrs.get("s"), attrs.get("i")
        if nonce is None or salt_b64 is None or iterations_text is None:
            raise self._fail("the broker's server-first message lacks the nonce, salt or "
                             "iteration count")
        if not nonce.startswith(self._client_nonce) or len(nonce) == len(self._client_nonce):
            raise self._fail("the broker's nonce does not extend kengine's (a replayed or "
                             "forged exchange)")
        if not nonce.isascii() or not nonce.isprintable():
            raise self._fail("the broker's nonce is not printable ASCII")
        try:
            salt = base64.b64decode(salt_b64, validate=True)
        except (binascii.Error, ValueError):
            raise self._fail("the broker's salt is not base64") from None
        if not iterations_text.isdigit() or len(iterations_text) > 9:
            raise self._fail("the broker's iteration count is not a number")
        iterations = int(iterations_text)
        if not _SCRAM_MIN_ITERATIONS <= iterations <= _SCRAM_MAX_ITERATIONS:
            raise self._fail(f"the broker asks for {iterations} iterations; Kafka uses "
                             f"{_SCRAM_MIN_ITERATIONS} to {_SCRAM_MAX_ITERATIONS}")
        salted = self._cache.salted_password(self._hash, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = b"c=" + base64.b64encode(_GS2_HEADER) + b",r=" + nonce.encode()
        auth_message = b",".join((self._client_first_bare, server_first, without_proof))
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return without_proof + b",p=" + base64.b64encode(proof)

    def _verify_server_final(self, server_final: bytes) -> None:
        attrs = self._attributes(server_final, "server-final message")
        if "e" in attrs:
            raise self._fail(f"the broker refused the proof: {attrs['e']}")
        verifier = attrs.get("v")
        try:
            signature = base64.b64decode(verifier or "", validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        assert self._server_signature is not None
        if not signature or not hmac.compare_digest(signature, self._server_signature):
            raise self._fail("the broker's signature does not match the password: it does not "
                             "know the credentials (check the broker, or a man in the middle)")

    def _attributes(self, message: bytes, what: str) -> dict[str, str]:
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise self._fail(f"the broker's {what} is not UTF-8") from None
        attrs: dict[str, str] = {}
        for part in text.split(","):
            if len(part) < 2 or part[1] != "=" or not part[0].isalpha():
                raise self._fail(f"the broker's {what} is malformed")
            attrs.setdefault(part[0], part[2:])
        return attrs

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()


# RFC 6750 b64token, and KIP-342's extension names and values
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_EXTENSION_KEY = re.compile(r"[A-Za-z]+")
_EXTENSION_VALUE = re.compile(r"[\x21-\x7E \t\r\n]+")

TokenCallback = Callable[[], "str | tuple[str, Mapping[str, str]]"]


class OAuthBearerSession:
    """RFC 7628 client: ``n,,\\x01auth=Bearer <token>\\x01[key=value\\x01]*\\x01``."""

    mechanism = "OAUTHBEARER"

    def __init__(self, token_callback: TokenCallback) -> None:
        self._callback = token_callback
        self._server_error: str | None = None

    def first_message(self) -> bytes:
        try:
            result = self._callback()
        except Exception as e:
            raise AuthenticationError(
                f"sasl.oauthbearer.token.callback raised {type(e).__name__}: {e}") from e
        token, extensions = (result, {}) if isinstance(result, str) else _token_pair(result)
        if not isinstance(token, str) or not _BEARER_TOKEN.fullmatch(token):
            raise AuthenticationError(
                "sasl.oauthbearer.token.callback returned no usable token: it must return a "
                "non-empty str of base64url/JWT characters, or (token, {extension: value})")
        parts = [f"auth=Bearer {token}"]
        for key, value in extensions.items():
            if (not isinstance(key, str) or not _EXTENSION_KEY.fullmatch(key) or key == "auth"
                    or not isinstance(value, str) or not _EXTENSION_VALUE.fullmatch(value)):
                raise AuthenticationError(
                    f"sasl.oauthbearer.token.callback returned extension {key!r}: names are "
                    f"ASCII letters (not 'auth'), values printable ASCII")
            parts.append(f"{key}={value}")
        return ("n,,\x01" + "\x01".join(parts) + "\x01\x01").encode()

    def respond(self, server_message: bytes) -> bytes | None:
        if not server_message:
            return None
        if self._server_error is not None:
            raise AuthenticationError("OAUTHBEARER: the broker sent a second error message")
        # The broker rejected the token: its message is a JSON status (RFC 7628 3.2.2);
        # the client acknowledges with 0x01 and the broker then fails the exchange.
        self._server_error = server_message.decode("utf-8", "replace")[:500]
        return b"\x01"

    @property
    def server_error(self) -> str | None:
        """The broker's JSON error for a rejected token, if it sent one."""
        return self._server_error


def _token_pair(result: Any) -> tuple[Any, Mapping[str, str]]:
    try:
        token, extensions = result
    except (TypeError, ValueError):
        return None, {}
    return token, extensions if isinstance(extensions, Mapping) else {}


# -------------------------------------------------------------------------------- exchange


class SaslAuthenticator:
    """Runs one SASL exchange on one connection (the ``Authenticator`` of
    :mod:`kengine.connection`): SaslHandshake v1, then SaslAuthenticate round trips."""

    def __init__(self, session: SaslSession) -> None:
        self._session = session
        self._conn: Connection | None = None

    def start(self, conn: Connection) -> None:
        self._conn = conn
        handshake = conn.version(_SASL_HANDSHAKE)
        if handshake is None or handshake < 1 or conn.version(_SASL_AUTHENTICATE) is None:
            conn.close(AuthenticationError(
                f"broker {conn.host}:{conn.port} does not offer SaslHandshake v1 and "
                f"SaslAuthenticate (Kafka 1.0+): kengine cannot authenticate to it"))
            return
        conn.send_internal(_SASL_HANDSHAKE, handshake, {"mechanism": self._session.mechanism},
                           self._on_handshake)

    def _on_handshake(self, body: Any, error: KafkaError | None) -> None:
        conn = self._conn
        assert conn is not None
        if error is not None:
            return   # the connection is closing with that error
        code = body["error_code"]
        if code:
            enabled = ", ".join(body.get("mechanisms") or ()) or "none"
            conn.close(error_for_code(
                code, f"broker {conn.host}:{conn.port} does not enable SASL mechanism "
                f"{self._session.mechanism} (it enables: {enabled}); check sasl.mechanism",
                node=conn.node_id))
            return
        try:
            first = self._session.first_message()
        except AuthenticationError as e:
            conn.close(e)
            return
        self._send(first)

    def _send(self, auth_bytes: bytes) -> None:
        conn = self._conn
        assert conn is not None
        version = conn.version(_SASL_AUTHENTICATE)
        assert version is not None
        conn.send_internal(_SASL_AUTHENTICATE, version, {"auth_bytes": auth_bytes},
                           self._on_authenticate)

    def _on_authenticate(self, body: Any, error: KafkaError | None) -> None:
        conn = self._conn
        assert conn is not None
        if error is not None:
            return
        code = body["error_code"]
        if code:
            conn.close(self._failure(code, body.get("error_message")))
            return
        try:
            reply = self._session.respond(bytes(body.get("auth_bytes") or b""))
        except AuthenticationError as e:
            conn.close(e)
            return
        if reply is not None:
            self._send(reply)
            return
        lifetime_ms = body.get("session_lifetime_ms", 0)
        _log.debug("authenticated to broker %d (%s:%d) with %s%s", conn.node_id, conn.host,
                   conn.port, self._session.mechanism,
                   f"; session lifetime {lifetime_ms} ms" if lifetime_ms else "")
        conn.authenticated(session_lifetime_ms=max(0, lifetime_ms))

    def _failure(self, code: int, message: str | None) -> KafkaError:
        conn = self._conn
        assert conn is not None
        detail = message or "no reason given"
        server_error = getattr(self._session, "server_error", None)
        if server_error:
            detail += f"; the broker's reply to the token: {server_error}"
        return error_for_code(
            code, f"SASL {self._session.mechanism} authentication to broker {conn.host}:"
            f"{conn.port} failed: {detail}. Check the credentials (sasl.username/sasl.password "
            f"or sasl.jaas.config); the producer cannot continue", node=conn.node_id)


def authenticator_factory(cfg: ProducerConfig) -> Callable[[], SaslAuthenticator] | None:
    """A factory of one authenticator per connection for the configured SASL mechanism, or
    None when security.protocol does not use SASL. The configuration is already validated."""
    if not cfg["security.protocol"].startswith("SASL_"):
        return None
    mechanism: str = cfg["sasl.mechanism"]
    if mechanism == "OAUTHBEARER":
        callback = cfg["sasl.oauthbearer.token.callback"]
        return lambda: SaslAuthenticator(OAuthBearerSession(callback))
    options: Mapping[str, str] = {}
    if cfg["sasl.jaas.config"]:
        options = parse_jaas_config(cfg["sasl.jaas.config"]).options
    username = options.get("username", cfg["sasl.username"])
    password = options.get("password", cfg["sasl.password"])
    if mechanism == "PLAIN":
        return lambda: SaslAuthenticator(PlainSession(username, password))
    token_auth = options.get("tokenauth", "false").lower() == "true"
    cache = ScramCache()
    return lambda: SaslAuthenticator(ScramSession(mechanism, username, password,
                                                  token_auth=token_auth, cache=cache))


# ---------------------------------------------------------------- the sasl.* settings

def _sasl_mechanism(key: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in _SASL_MECHANISMS:
        return text
    if text == "GSSAPI":
        raise ConfigError(key, value, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER: "
                                      "kengine does not support GSSAPI (Kerberos)")
    raise ConfigError(key, value, "one of " + ", ".join(_SASL_MECHANISMS))


_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def _jaas(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, HIDDEN, "a JAAS string such as "
                                        "'...PlainLoginModule required username=\"u\" "
                                        "password=\"p\";'")
    parse_jaas_config(value)   # raises ConfigError naming what is wrong, without the secrets
    return value


def _check_sasl(values: dict[str, Any], explicit: frozenset[str]) -> None:
    mechanism = values["sasl.mechanism"]
    if mechanism is None:
        raise ConfigError("sasl.mechanism", None, f"required with security.protocol="
                          f"{values['security.protocol']}: one of {', '.join(_SASL_MECHANISMS)}")
    jaas = parse_jaas_config(values["sasl.jaas.config"]) if values["sasl.jaas.config"] else None
    if jaas is not None and jaas.mechanism_family != mechanism.split("-")[0]:
        raise ConfigError("sasl.jaas.config", HIDDEN,
                          f"a login module for {mechanism} ({jaas.login_module} is for "
                          f"{jaas.mechanism_family})")
    if mechanism == "OAUTHBEARER":
        if values["sasl.oauthbearer.token.callback"] is None:
            raise ConfigError("sasl.oauthbearer.token.callback", None,
                              "required with sasl.mechanism=OAUTHBEARER: a callable returning "
                              "the token")
        for key in ("sasl.username", "sasl.password"):
            if values[key] is not None:
                raise ConfigError(key, shown(key, values[key]),
                                  "unset with OAUTHBEARER (the token callback authenticates)")
        return
    if values["sasl.oauthbearer.token.callback"] is not None:
        raise ConfigError("sasl.oauthbearer.token.callback",
                          values["sasl.oauthbearer.token.callback"],
                          f"set only with sasl.mechanism=OAUTHBEARER (it is {mechanism})")
    user, password = values["sasl.username"], values["sasl.password"]
    if jaas is not None:
        if user is not None or password is not None:
            key = "sasl.username" if user is not None else "sasl.password"
            raise ConfigError(key, shown(key, values[key]),
                              "unset when sasl.jaas.config gives the credentials")
        user, password = jaas.options.get("username"), jaas.options.get("password")
    if not user or password is None:
        raise ConfigError("sasl.username" if not user else "sasl.password", None,
                          f"required with sasl.mechanism={mechanism}: set sasl.username and "
                          f"sasl.password, or sasl.jaas.config")


def _sasl_applies(values: dict[str, Any]) -> str | None:
    protocol = values["security.protocol"]
    if protocol.startswith("SASL_"):
        return None
    return f"set only with security.protocol SASL_PLAINTEXT or SASL_SSL (it is {protocol})"


#: SASL (security.protocol SASL_PLAINTEXT or SASL_SSL).
SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("sasl.mechanism", None, _sasl_mechanism,
                "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
        Setting("sasl.jaas.config", None, _jaas,
                "Java's form: '<PlainLoginModule|ScramLoginModule> required username=\"...\" "
                "password=\"...\";' (or sasl.username / sasl.password)", secret=True),
        Setting("sasl.username", None, parse_optional_str, "user name for PLAIN and SCRAM"),
        Setting("sasl.password", None, parse_secret_str, "password for PLAIN and SCRAM",
                secret=True),
        Setting("sasl.oauthbearer.token.callback", None, parse_optional_callable,
                "OAUTHBEARER: callable() -> token str, or (token, {extension: value}); called "
                "on the sender thread for every new connection, so cache tokens in it"),
    ),
    applies=_sasl_applies,
    check=_check_sasl,
    after="ssl.context",
)
contribute(SETTINGS)
