"""Producer configuration: one table of every setting, with Kafka's own property names.

Each :class:`Setting` gives the name, the default (Kafka 4.x's where Kafka has the setting), how a
value is parsed and checked, and a line of documentation. :func:`resolve` turns what the user
passed (a dict with dotted names and/or keyword arguments with underscores) into a validated
:class:`ProducerConfig`, raising :class:`~kengine.errors.ConfigError` for an unknown key, a bad
value or an inconsistent combination, always naming the key, the value and what is allowed.
"""
from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import java_settings
from .errors import ConfigError

__all__ = ["Setting", "SETTINGS", "ProducerConfig", "resolve", "describe"]

_INT32_MAX = 2**31 - 1
#: what errors and reprs show instead of a credential
_HIDDEN = "[hidden]"
_client_ids = itertools.count(1)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str, Any], Any]
    doc: str
    #: a credential: never shown in errors, reprs or logs
    secret: bool = False


# ---- value parsers: each returns the normalised value or raises ConfigError(key, value, allowed)


def _int(lo: int = 0, hi: int = _INT32_MAX) -> Callable[[str, Any], int]:
    def parse(key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise ConfigError(key, value, f"an integer in [{lo}, {hi}]")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(key, value, f"an integer in [{lo}, {hi}]") from None
        if isinstance(value, float) and value != number:
            raise ConfigError(key, value, f"an integer in [{lo}, {hi}]")
        if not lo <= number <= hi:
            raise ConfigError(key, value, f"an integer in [{lo}, {hi}]")
        return number

    return parse


def _optional_int(lo: int, hi: int) -> Callable[[str, Any], int | None]:
    inner = _int(lo, hi)

    def parse(key: str, value: Any) -> int | None:
        return None if value is None else inner(key, value)

    return parse


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, value, "true or false")


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).strip()
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ConfigError(key, value, "one of " + ", ".join(choices))

    return parse


def _acks(key: str, value: Any) -> int:
    text = str(value).strip().lower()
    mapping = {"all": -1, "-1": -1, "0": 0, "1": 1}
    if text not in mapping:
        raise ConfigError(key, value, "all (or -1), 0 or 1")
    return mapping[text]


def _servers(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:   # already parsed: (host, port)
            item = f"[{item[0]}]:{item[1]}" if ":" in str(item[0]) else f"{item[0]}:{item[1]}"
        item = str(item).strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")  # [::1]:9092
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(key, value, "a list of host:port addresses, e.g. 127.0.0.1:9092")
        out.append((host, int(port)))
    if not out:
        raise ConfigError(key, value, "at least one host:port address")
    return tuple(out)


def _optional_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, value, "a string")
    return value


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a string")
    return value


def _optional_callable(key: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(key, value, "a callable or None")
    return value


def _serializer(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if value in ("bytes", "str", "json"):
            return value
        raise ConfigError(key, value, "bytes, str, json, a callable, or an object with serialize()")
    if callable(value) or callable(getattr(value, "serialize", None)):
        return value
    raise ConfigError(key, value, "bytes, str, json, a callable, or an object with serialize()")


def _compression_level(codec: Literal["gzip", "lz4", "zstd"]) -> Callable[[str, Any], int]:
    from kengine_ext import validate_compression_level

    def parse(key: str, value: Any) -> int:
        if codec == "gzip" and str(value).strip() == "-1":
            return 6  # Java's Deflater.DEFAULT_COMPRESSION
        try:
            level = validate_compression_level(codec, int(value))
        except (TypeError, ValueError) as e:
            raise ConfigError(key, value, str(e).split(": ", 1)[-1]) from None
        assert level is not None
        return level

    return parse


def _partitioner(key: str, value: Any) -> Any:
    allowed = ("a built-in or plugin partitioner name, 'module:Class', a class, or an object with "
               "partition()")
    if value is None:
        return "default"
    if isinstance(value, str):
        if not value.strip():
            raise ConfigError(key, value, allowed)
        return value.strip()
    if isinstance(value, type) or callable(getattr(value, "partition", None)):
        return value
    raise ConfigError(key, value, allowed)


def _keys(key: str, value: Any) -> tuple[bytes, ...]:
    allowed = "a list of keys (str or bytes) or a comma-separated string"
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(k.strip().encode() for k in value.split(",") if k.strip())
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise ConfigError(key, value, allowed + " (a bytes value must be inside a list)")
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(key, value, allowed) from None
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(item.encode())
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out.append(bytes(item))
        else:
            raise ConfigError(key, value, f"{allowed}; {item!r} is neither")
    return tuple(out)


def _share(key: str, value: Any) -> float:
    allowed = "a share in [0, 1] (0: off)"
    if isinstance(value, bool):
        raise ConfigError(key, value, allowed)
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ConfigError(key, value, allowed) from None
    if not 0.0 <= share <= 1.0:
        raise ConfigError(key, value, allowed)
    return share


def _composite_fields(key: str, value: Any) -> tuple[Any, ...]:
    from .partitioners.composite import parse_fields

    if value is None:
        return ()
    parse_fields(value)  # raises ConfigError naming the bad field
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(item.strip() if isinstance(item, str) else item for item in items)


def _mapping(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "a mapping of option names to values")
    return dict(value)


def _secret_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, _HIDDEN, "a string")
    return value


def _pem_store_type(key: str, value: Any) -> str:
    text = str(value).strip().upper()
    if text == "PEM":
        return "PEM"
    store = "trust store" if key.startswith("ssl.truststore") else "key store"
    convert = (_TRUSTSTORE_CONVERSION if key.startswith("ssl.truststore")
               else _KEYSTORE_CONVERSION)
    raise ConfigError(key, value, f"PEM: kengine reads PEM files only (Python's ssl module "
                                  f"cannot load a {text} {store}); convert it: {convert}")


_TRUSTSTORE_CONVERSION = (
    "`keytool -exportcert -rfc -keystore truststore.jks -alias CARoot -file ca.pem` (JKS) or "
    "`openssl pkcs12 -in truststore.p12 -nokeys -out ca.pem` (PKCS12), then "
    "ssl.truststore.location=ca.pem")
_KEYSTORE_CONVERSION = (
    "`keytool -importkeystore -srckeystore keystore.jks -destkeystore keystore.p12 "
    "-deststoretype PKCS12` (JKS only), then `openssl pkcs12 -in keystore.p12 -out "
    "keystore.pem` and ssl.keystore.location=keystore.pem (ssl.key.password if the key "
    "stays encrypted)")

_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


def _tls_protocol(key: str, value: Any) -> str:
    text = str(value).strip()
    for choice in ("TLS", *_TLS_VERSIONS):
        if text.lower() == choice.lower():
            return choice
    raise ConfigError(key, value, "TLS, TLSv1.2 or TLSv1.3 (older versions are insecure and "
                                  "disabled by OpenSSL)")


def _tls_versions(key: str, value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value or ())
    out = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        match = [v for v in _TLS_VERSIONS if v.lower() == text.lower()]
        if not match:
            raise ConfigError(key, value, "a list of TLSv1.2, TLSv1.3 (older versions are "
                                          "insecure and disabled by OpenSSL)")
        out.append(match[0])
    if not out:
        raise ConfigError(key, value, "at least one of TLSv1.2, TLSv1.3")
    return tuple(dict.fromkeys(out))


def _optional_names(key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(i).strip() for i in items if str(i).strip())
    if not names:
        raise ConfigError(key, value, "a non-empty list of cipher suite names, or None")
    return names


def _endpoint_identification(key: str, value: Any) -> str:
    text = "" if value is None else str(value).strip().lower()
    if text not in ("https", ""):
        raise ConfigError(key, value, "https (verify the broker's host name, the default) or "
                                      "an empty string (do not)")
    return text


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
        raise ConfigError(key, _HIDDEN, "a JAAS string such as "
                                        "'...PlainLoginModule required username=\"u\" "
                                        "password=\"p\";'")
    from .sasl import parse_jaas_config

    parse_jaas_config(value)   # raises ConfigError naming what is wrong, without the secrets
    return value


def _ssl_context(key: str, value: Any) -> Any:
    import ssl

    if value is not None and not isinstance(value, ssl.SSLContext):
        raise ConfigError(key, value, "an ssl.SSLContext (client side) or None")
    return value


def _setting(name: str, default: Any, parse: Callable[[str, Any], Any], doc: str, *,
             secret: bool = False) -> Setting:
    return Setting(name, default, parse, doc, secret)


#: Every producer setting. Defaults follow Apache Kafka 4.x's producer where Kafka has the setting.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        # -- connection
        _setting("bootstrap.servers", None, _servers,
                 "host:port list used to discover the cluster (any one broker is enough)"),
        _setting("client.id", None, _optional_str,
                 "name sent to brokers in every request, used in logs and quotas"),
        _setting("security.protocol", "PLAINTEXT",
                 _choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
                 "how to talk to brokers: SSL and SASL_SSL encrypt (TLS), SASL_* authenticate"),
        # -- TLS (security.protocol SSL or SASL_SSL); PEM files, mapped onto Python's ssl module
        _setting("ssl.truststore.location", None, _optional_str,
                 "PEM file of the CA certificates that sign the brokers' certificates "
                 "(default: the system's trusted CAs)"),
        _setting("ssl.truststore.certificates", None, _optional_str,
                 "the same CA certificates as PEM text instead of a file"),
        _setting("ssl.truststore.type", "PEM", _pem_store_type,
                 "PEM only; JKS and PKCS12 trust stores must be converted"),
        _setting("ssl.truststore.password", None, _secret_str,
                 "not used: a PEM trust store has no password (accepted only as None)",
                 secret=True),
        _setting("ssl.keystore.location", None, _optional_str,
                 "PEM file with this client's private key and certificate chain (mutual TLS)"),
        _setting("ssl.keystore.certificate.chain", None, _optional_str,
                 "this client's certificate chain as PEM text (with ssl.keystore.key)"),
        _setting("ssl.keystore.key", None, _secret_str,
                 "this client's private key as PEM text (with ssl.keystore.certificate.chain)",
                 secret=True),
        _setting("ssl.keystore.type", "PEM", _pem_store_type,
                 "PEM only; JKS and PKCS12 key stores must be converted"),
        _setting("ssl.keystore.password", None, _secret_str,
                 "not used: a PEM key store has no store password; an encrypted key takes "
                 "ssl.key.password (accepted only as None)", secret=True),
        _setting("ssl.key.password", None, _secret_str,
                 "password of an encrypted private key", secret=True),
        _setting("ssl.protocol", "TLSv1.3", _tls_protocol,
                 "highest TLS version to offer (TLS: the newest OpenSSL has)"),
        _setting("ssl.enabled.protocols", ("TLSv1.2", "TLSv1.3"), _tls_versions,
                 "TLS versions allowed, e.g. TLSv1.3 alone"),
        _setting("ssl.cipher.suites", None, _optional_names,
                 "allowed cipher suites, IANA (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) or "
                 "OpenSSL (ECDHE-RSA-AES128-GCM-SHA256) names (default: OpenSSL's secure set)"),
        _setting("ssl.endpoint.identification.algorithm", "https", _endpoint_identification,
                 "https: the broker's certificate must name the host connected to; "
                 "empty: do not check the name (the certificate is still verified)"),
        _setting("ssl.context", None, _ssl_context,
                 "an ssl.SSLContext used as is, instead of the ssl.* settings above"),
        # -- SASL (security.protocol SASL_PLAINTEXT or SASL_SSL)
        _setting("sasl.mechanism", None, _sasl_mechanism,
                 "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
        _setting("sasl.jaas.config", None, _jaas,
                 "Java's form: '<PlainLoginModule|ScramLoginModule> required username=\"...\" "
                 "password=\"...\";' (or sasl.username / sasl.password)", secret=True),
        _setting("sasl.username", None, _optional_str, "user name for PLAIN and SCRAM"),
        _setting("sasl.password", None, _secret_str, "password for PLAIN and SCRAM",
                 secret=True),
        _setting("sasl.oauthbearer.token.callback", None, _optional_callable,
                 "OAUTHBEARER: callable() -> token str, or (token, {extension: value}); called "
                 "on the sender thread for every new connection, so cache tokens in it"),
        _setting("request.timeout.ms", 30000, _int(0),
                 "how long to wait for a response before failing or retrying the request"),
        _setting("socket.connection.setup.timeout.ms", 10000, _int(0),
                 "how long a TCP/TLS/SASL connection set-up may take before it is abandoned"),
        _setting("connections.max.idle.ms", 540000, _int(-1, 2**62),
                 "close connections idle this long (-1: never)"),
        _setting("reconnect.backoff.ms", 50, _int(0), "first wait before reconnecting to a broker"),
        _setting("reconnect.backoff.max.ms", 1000, _int(0),
                 "upper bound of the exponential reconnect backoff"),
        _setting("client.dns.lookup", "use_all_dns_ips",
                 _choice("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only"),
                 "use_all_dns_ips: try every address a broker's name resolves to, in turn; "
                 "resolve_canonical_bootstrap_servers_only: also expand each bootstrap name "
                 "to the canonical names of its addresses (e.g. behind a load balancer)"),
        _setting("metadata.recovery.strategy", "rebootstrap", _choice("rebootstrap", "none"),
                 "KIP-899: when no known broker can be reached (or the cluster answers with "
                 "no brokers), start again from bootstrap.servers (rebootstrap) or keep "
                 "trying the known brokers (none)"),
        _setting("metadata.recovery.rebootstrap.trigger.ms", 300000, _int(0),
                 "rebootstrap: how long metadata may go without a successful refresh (while "
                 "one is wanted) before the producer starts again from bootstrap.servers"),
        _setting("send.buffer.bytes", 131072, _int(-1), "SO_SNDBUF (-1: OS default)"),
        _setting("receive.buffer.bytes", 32768, _int(-1), "SO_RCVBUF (-1: OS default)"),
        # -- metadata
        _setting("metadata.max.age.ms", 300000, _int(0),
                 "refresh metadata at least this often, even without errors"),
        _setting("metadata.max.idle.ms", 300000, _int(5000),
                 "stop refreshing a topic nothing was sent to for this long (a later send "
                 "fetches it again)"),
        # -- batching and memory
        _setting("acks", -1, _acks,
                 "0: no response; 1: the leader wrote it; all: every in-sync replica has it"),
        _setting("linger.ms", 5, _int(0), "wait up to this long for more records to fill a batch"),
        _setting("batch.size", 16384, _int(0),
                 "bytes per batch (after compression, estimated); 0 disables batching"),
        _setting("buffer.memory", 33554432, _int(0, 2**62),
                 "bytes of records waiting to be sent before send() blocks"),
        _setting("max.block.ms", 60000, _int(0),
                 "how long send() may block for buffer space or metadata before it raises"),
        _setting("max.request.size", 1048576, _int(1),
                 "largest request (and so largest record) the producer sends"),
        _setting("compression.type", "none", _choice("none", "gzip", "snappy", "lz4", "zstd"),
                 "codec for record batches"),
        _setting("compression.gzip.level", 6, _compression_level("gzip"), "1..9 (-1: 6)"),
        _setting("compression.lz4.level", 9, _compression_level("lz4"),
                 "1..17; the default 9 uses the fast compressor, as Java does"),
        _setting("compression.zstd.level", 3, _compression_level("zstd"), "-131072..22"),
        # -- delivery
        _setting("delivery.timeout.ms", 120000, _int(0),
                 "upper bound on the time from send() to success or failure, retries included"),
        _setting("retries", _INT32_MAX, _int(0), "how many times a failed batch is retried"),
        _setting("retry.backoff.ms", 100, _int(0), "first backoff before a retry"),
        _setting("retry.backoff.max.ms", 1000, _int(0),
                 "upper bound of the exponential retry backoff (with jitter, KIP-580)"),
        _setting("max.in.flight.requests.per.connection", 5, _int(1),
                 "unanswered produce requests per broker; 1 keeps order without idempotence"),
        # -- serialization and partitioning
        _setting("key.serializer", "bytes", _serializer,
                 "bytes, str (UTF-8), json, a callable value -> bytes, or an object with "
                 "serialize()"),
        _setting("value.serializer", "bytes", _serializer, "as key.serializer, for values"),
        _setting("partitioner", "default", _partitioner,
                 "default, round_robin, consistent_random, murmur2_random, salted_hot_key, "
                 "composite, an installed plugin's name (entry point group "
                 "'kengine.partitioners'), 'module:Class', a class, or a Partitioner instance"),
        _setting("partitioner.ignore.keys", False, _bool,
                 "default partitioner: place keyed records like unkeyed ones (sticky)"),
        _setting("partitioner.adaptive.partitioning.enable", True, _bool,
                 "sticky placement: pick the next partition with weights from queue sizes, so "
                 "partitions of slower brokers get less"),
        _setting("partitioner.availability.timeout.ms", 0, _int(0, 2**62),
                 "sticky placement (adaptive): skip partitions whose leader had data waiting "
                 "this long without taking any (0: never)"),
        _setting("partitioner.salted.hot.keys", (), _keys,
                 "salted_hot_key: keys always spread over salted sub-keys (list of str/bytes, or "
                 "a comma-separated string)"),
        _setting("partitioner.salted.buckets", 8, _int(2, 1 << 16),
                 "salted_hot_key: salted sub-keys (so at most partitions) per hot key"),
        _setting("partitioner.salted.detect.share", 0.0, _share,
                 "salted_hot_key: also salt keys carrying at least this share of the records of "
                 "a detection window (0: no detection)"),
        _setting("partitioner.salted.detect.window.records", 10000, _int(1),
                 "salted_hot_key: records per detection window"),
        _setting("partitioner.composite.fields", (), _composite_fields,
                 "composite: the key's fields in order: 'key', 'header:NAME', 'value:NAME' or "
                 "callables of the value (list, or a comma-separated string)"),
        _setting("partitioner.config", {}, _mapping,
                 "options for a plugin partitioner, passed to its configure() with the settings"),
        # -- idempotence and transactions
        _setting("enable.idempotence", True, _bool,
                 "exactly-once per partition: producer id + sequence numbers"),
        _setting("transactional.id", None, _optional_str,
                 "enables transactions; stable across restarts of the same logical producer"),
        _setting("transaction.timeout.ms", 60000, _int(1),
                 "the coordinator aborts a transaction left open this long"),
        # -- observability
        _setting("statistics.interval.ms", 0, _int(0),
                 "call stats_callback with producer metrics this often (0: off)"),
        _setting("stats_callback", None, _optional_callable,
                 "callable(dict) receiving metrics every statistics.interval.ms"),
        # -- dead letters (kengine.deadletter)
        _setting("dead.letter.topic", None, _optional_str,
                 "re-send records that fail with a non-retriable error to this topic, with "
                 "headers naming the original topic, partition and error"),
        _setting("dead_letter_router", None, _optional_callable,
                 "callable(record_topic, error) -> dead-letter topic or None (keep the "
                 "failure); overrides dead.letter.topic"),
        _setting("on_dead_letter", None, _optional_callable,
                 "callable(DeadLetter) run for every dead-lettered record once its dead-letter "
                 "write succeeded or failed (on a producer thread: keep it short)"),
    ]
}


@dataclass(frozen=True)
class ProducerConfig:
    """Validated settings, by their Kafka names; ``explicit`` lists what the user set."""

    values: Mapping[str, Any]
    explicit: frozenset[str]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def __repr__(self) -> str:
        shown = {k: (_HIDDEN if SETTINGS[k].secret and v is not None else v)
                 for k, v in self.values.items() if k in self.explicit}
        return f"ProducerConfig({shown!r})"


def _normalise_keys(config: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for source in (config or {}), kwargs:
        for key, value in source.items():
            name = key if key in SETTINGS else key.replace("_", ".")
            mapped = java_settings.translate(name, value)   # Java names; Java-only refused
            if mapped is not None:
                merged.update(mapped)
                continue
            if name not in SETTINGS:
                near = difflib.get_close_matches(name, list(SETTINGS), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                shown = _HIDDEN if _looks_secret(name) else value
                raise ConfigError(key, shown, f"a known producer setting{hint}")
            merged[name] = value
    return merged


def _looks_secret(name: str) -> bool:
    # an unknown key may be a misspelt credential: do not echo its value
    return any(word in name for word in ("pass", "secret", "jaas", "token", "key"))


def resolve(config: Mapping[str, Any] | None = None, **kwargs: Any) -> ProducerConfig:
    """Validates user settings against :data:`SETTINGS` and the rules between them."""
    given = _normalise_keys(config, kwargs)
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        if name in given:
            values[name] = setting.parse(name, given[name])
        else:
            values[name] = setting.default
    if values["bootstrap.servers"] is None:
        raise ConfigError("bootstrap.servers", None, "required: a list of host:port addresses")
    if values["client.id"] is None:
        values["client.id"] = f"kengine-producer-{next(_client_ids)}"
    explicit = frozenset(given)
    _check_combinations(values, explicit)
    return ProducerConfig(values, explicit)


def _check_combinations(values: dict[str, Any], explicit: frozenset[str]) -> None:
    # delivery.timeout.ms must leave room for one linger plus one request (Java's rule: an
    # explicit value that is too small is an error, the default is raised to fit).
    floor = values["linger.ms"] + values["request.timeout.ms"]
    if values["delivery.timeout.ms"] < floor:
        if "delivery.timeout.ms" in explicit:
            raise ConfigError("delivery.timeout.ms", values["delivery.timeout.ms"],
                              f"at least linger.ms + request.timeout.ms = {floor}")
        values["delivery.timeout.ms"] = floor
    if values["retry.backoff.max.ms"] < values["retry.backoff.ms"]:
        values["retry.backoff.max.ms"] = values["retry.backoff.ms"]
    if values["reconnect.backoff.max.ms"] < values["reconnect.backoff.ms"]:
        values["reconnect.backoff.max.ms"] = values["reconnect.backoff.ms"]

    # Idempotence (Java >= 3.2): explicit conflicts are errors; when it is only on by default,
    # conflicting settings switch it off.
    conflicts = []
    if values["acks"] != -1:
        conflicts.append(("acks", values["acks"], "all (idempotence needs every in-sync replica)"))
    if values["retries"] == 0:
        conflicts.append(("retries", 0, "greater than 0 (idempotence retries by design)"))
    if values["max.in.flight.requests.per.connection"] > 5:
        conflicts.append(("max.in.flight.requests.per.connection",
                          values["max.in.flight.requests.per.connection"],
                          "at most 5 with idempotence (the broker tracks 5 batches per producer)"))
    transactional = values["transactional.id"] is not None
    if values["enable.idempotence"] and conflicts:
        if "enable.idempotence" in explicit or transactional:
            key, value, allowed = conflicts[0]
            raise ConfigError(key, value, allowed)
        values["enable.idempotence"] = False
    if transactional and not values["enable.idempotence"]:
        raise ConfigError("enable.idempotence", False,
                          "true when transactional.id is set (transactions need idempotence)")
    if values["buffer.memory"] < values["batch.size"]:
        raise ConfigError("buffer.memory", values["buffer.memory"],
                          f"at least batch.size ({values['batch.size']})")
    _check_partitioner(values, explicit)
    _check_security(values, explicit)


def _check_partitioner(values: dict[str, Any], explicit: frozenset[str]) -> None:
    # A partitioner's own settings with another partitioner would be silently ignored.
    partitioner = values["partitioner"]
    for key in sorted(explicit):
        owner = ("salted_hot_key" if key.startswith("partitioner.salted.") else
                 "composite" if key == "partitioner.composite.fields" else None)
        if owner is not None and partitioner != owner and not isinstance(partitioner, type):
            raise ConfigError(key, values[key], f"only used with partitioner={owner!r}, "
                                                f"not {partitioner!r}")
    if partitioner == "composite" and not values["partitioner.composite.fields"]:
        raise ConfigError("partitioner.composite.fields", values["partitioner.composite.fields"],
                          "at least one field when partitioner='composite'")
    if values["partitioner.ignore.keys"] and partitioner != "default":
        raise ConfigError("partitioner.ignore.keys", True,
                          f"false unless partitioner='default' (the {partitioner!r} partitioner "
                          f"decides itself how keys are used)")


_SSL_KEYS = tuple(k for k in SETTINGS if k.startswith("ssl."))
_SASL_KEYS = tuple(k for k in SETTINGS if k.startswith("sasl."))


def _check_security(values: dict[str, Any], explicit: frozenset[str]) -> None:
    """Settings that do nothing under the chosen security.protocol are errors: a TLS or SASL
    setting with PLAINTEXT almost always means security.protocol was forgotten."""
    protocol = values["security.protocol"]
    uses_tls = protocol in ("SSL", "SASL_SSL")
    uses_sasl = protocol.startswith("SASL_")
    for keys, used, needs in ((_SSL_KEYS, uses_tls, "SSL or SASL_SSL"),
                              (_SASL_KEYS, uses_sasl, "SASL_PLAINTEXT or SASL_SSL")):
        unused = [k for k in keys if k in explicit and not used]
        if unused:
            raise ConfigError(unused[0], _shown(unused[0], values[unused[0]]),
                              f"set only with security.protocol {needs} (it is {protocol})")
    if uses_tls:
        _check_tls(values, explicit)
    if uses_sasl:
        _check_sasl(values)


def _shown(key: str, value: Any) -> Any:
    return _HIDDEN if SETTINGS[key].secret and value is not None else value


def _check_tls(values: dict[str, Any], explicit: frozenset[str]) -> None:
    if values["ssl.context"] is not None:
        others = [k for k in _SSL_KEYS if k in explicit and k != "ssl.context"]
        if others:
            raise ConfigError(others[0], _shown(others[0], values[others[0]]),
                              "unset when ssl.context is given (the context is used as is)")
        return
    for key in ("ssl.truststore.password", "ssl.keystore.password"):
        if values[key] is not None:
            raise ConfigError(key, _HIDDEN, "None: PEM stores have no store password (an "
                                            "encrypted private key takes ssl.key.password)")
    if values["ssl.truststore.location"] and values["ssl.truststore.certificates"]:
        raise ConfigError("ssl.truststore.certificates", "...",
                          "unset when ssl.truststore.location is set (one source of CAs)")
    chain, key = values["ssl.keystore.certificate.chain"], values["ssl.keystore.key"]
    if values["ssl.keystore.location"] and (chain or key):
        name = "ssl.keystore.certificate.chain" if chain else "ssl.keystore.key"
        raise ConfigError(name, _shown(name, values[name]),
                          "unset when ssl.keystore.location is set (one source of the key)")
    if bool(chain) != bool(key):
        missing = "ssl.keystore.key" if chain else "ssl.keystore.certificate.chain"
        raise ConfigError(missing, None, "set together with "
                          + ("ssl.keystore.certificate.chain" if chain else "ssl.keystore.key"))
    if values["ssl.key.password"] is not None and not (values["ssl.keystore.location"] or key):
        raise ConfigError("ssl.key.password", _HIDDEN,
                          "set only with ssl.keystore.location or ssl.keystore.key")
    top = "TLSv1.3" if values["ssl.protocol"] == "TLS" else values["ssl.protocol"]
    if not [v for v in values["ssl.enabled.protocols"] if v <= top]:
        raise ConfigError("ssl.enabled.protocols", ",".join(values["ssl.enabled.protocols"]),
                          f"a version no newer than ssl.protocol ({values['ssl.protocol']})")


def _check_sasl(values: dict[str, Any]) -> None:
    mechanism = values["sasl.mechanism"]
    if mechanism is None:
        raise ConfigError("sasl.mechanism", None, f"required with security.protocol="
                          f"{values['security.protocol']}: one of {', '.join(_SASL_MECHANISMS)}")
    from .sasl import parse_jaas_config

    jaas = parse_jaas_config(values["sasl.jaas.config"]) if values["sasl.jaas.config"] else None
    if jaas is not None and jaas.mechanism_family != mechanism.split("-")[0]:
        raise ConfigError("sasl.jaas.config", _HIDDEN,
                          f"a login module for {mechanism} ({jaas.login_module} is for "
                          f"{jaas.mechanism_family})")
    if mechanism == "OAUTHBEARER":
        if values["sasl.oauthbearer.token.callback"] is None:
            raise ConfigError("sasl.oauthbearer.token.callback", None,
                              "required with sasl.mechanism=OAUTHBEARER: a callable returning "
                              "the token")
        for key in ("sasl.username", "sasl.password"):
            if values[key] is not None:
                raise ConfigError(key, _shown(key, values[key]),
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
            raise ConfigError(key, _shown(key, values[key]),
                              "unset when sasl.jaas.config gives the credentials")
        user, password = jaas.options.get("username"), jaas.options.get("password")
    if not user or password is None:
        raise ConfigError("sasl.username" if not user else "sasl.password", None,
                          f"required with sasl.mechanism={mechanism}: set sasl.username and "
                          f"sasl.password, or sasl.jaas.config")


def describe() -> Iterable[tuple[str, Any, str]]:
    """(name, default, doc) for every setting, for documentation and the CLI."""
    for s in SETTINGS.values():
        yield s.name, s.default, s.doc
