"""Producer configuration: one table of every setting, with Kafka's own property names.

Each :class:`Setting` gives the name, the default (Kafka 4.x's where Kafka has the setting), how a
value is parsed and checked, and a line of documentation. :func:`resolve` turns what the user
passed (a dict with dotted names and/or keyword arguments with underscores) into a validated
:class:`ProducerConfig`, raising :class:`~kengine.errors.ConfigError` for an unknown key, a bad
value or an inconsistent combination, always naming the key, the value and what is allowed.

A setting is declared by the code that reads it. This module declares the producer's own
(connection, batching, delivery, idempotence...); TLS (``kengine.security``), SASL
(``kengine.sasl``) and the partitioners (``kengine.partitioners``) declare theirs, with the
rules between them, as a :class:`SettingsGroup` handed to :func:`contribute`, which puts them in
the one table. This module imports none of them: importing ``kengine`` imports every
contributor, so the table is complete before anything reads it.
"""
from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import java_settings
from .errors import ConfigError

__all__ = ["Setting", "SettingsGroup", "SETTINGS", "ProducerConfig", "contribute", "resolve",
           "describe", "HIDDEN", "shown", "parse_int", "parse_bool", "parse_choice",
           "parse_str", "parse_optional_str", "parse_secret_str", "parse_optional_callable",
           "parse_mapping"]

_INT32_MAX = 2**31 - 1
#: what errors and reprs show instead of a credential
HIDDEN = "[hidden]"
_client_ids = itertools.count(1)


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    parse: Callable[[str, Any], Any]
    doc: str
    #: a credential: never shown in errors, reprs or logs
    secret: bool = False


#: A rule between settings: (parsed values by name, names the user set) -> None, raising
#: ConfigError for a bad combination.
Check = Callable[[dict[str, Any], frozenset[str]], None]


@dataclass(frozen=True)
class SettingsGroup:
    """Settings declared by the module that reads them (``owner``), and the rules about them.

    ``applies(values)`` says whether the group's settings mean anything with the other
    settings: None when they do, else what they need, and then setting any of them is an error
    naming that (a TLS setting without TLS, a partitioner's setting with another
    partitioner). ``check`` runs the rules between the values when the group applies. In
    SETTINGS (and describe()) the settings follow ``after`` (the end of the table if None)."""

    owner: str
    settings: tuple[Setting, ...]
    applies: Callable[[dict[str, Any]], str | None] | None = None
    check: Check | None = None
    after: str | None = None


# ---- value parsers: each returns the normalised value or raises ConfigError(key, value, allowed)


def parse_int(lo: int = 0, hi: int = _INT32_MAX) -> Callable[[str, Any], int]:
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


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(key, value, "true or false")


def parse_choice(*choices: str) -> Callable[[str, Any], str]:
    def parse(key: str, value: Any) -> str:
        text = str(value).strip()
        for choice in choices:
            if text.lower() == choice.lower():
                return choice
        raise ConfigError(key, value, "one of " + ", ".join(choices))

    return parse


def parse_optional_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, value, "a string")
    return value


def parse_str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(key, value, "a string")
    return value


def parse_optional_callable(key: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise ConfigError(key, value, "a callable or None")
    return value


def parse_mapping(key: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "a mapping of option names to values")
    return dict(value)


def parse_secret_str(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(key, HIDDEN, "a string")
    return value


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


def _setting(name: str, default: Any, parse: Callable[[str, Any], Any], doc: str, *,
             secret: bool = False) -> Setting:
    return Setting(name, default, parse, doc, secret)


#: Every setting by name, in documentation order. Defaults follow Apache Kafka 4.x's producer where
#: Kafka has the setting. Declared here: the producer's own; contribute() adds the others.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in [
        # -- connection
        _setting("bootstrap.servers", None, _servers,
                 "host:port list used to discover the cluster (any one broker is enough)"),
        _setting("client.id", None, parse_optional_str,
                 "name sent to brokers in every request, used in logs and quotas"),
        _setting("security.protocol", "PLAINTEXT",
                 parse_choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
                 "how to talk to brokers: SSL and SASL_SSL encrypt (TLS), SASL_* authenticate"),
        _setting("request.timeout.ms", 30000, parse_int(0),
                 "how long to wait for a response before failing or retrying the request"),
        _setting("socket.connection.setup.timeout.ms", 10000, parse_int(0),
                 "how long a TCP/TLS/SASL connection set-up may take before it is abandoned"),
        _setting("connections.max.idle.ms", 540000, parse_int(-1, 2**62),
                 "close connections idle this long (-1: never)"),
        _setting("reconnect.backoff.ms", 50, parse_int(0),
                 "first wait before reconnecting to a broker"),
        _setting("reconnect.backoff.max.ms", 1000, parse_int(0),
                 "upper bound of the exponential reconnect backoff"),
        _setting("client.dns.lookup", "use_all_dns_ips",
                 parse_choice("use_all_dns_ips", "resolve_canonical_bootstrap_servers_only"),
                 "use_all_dns_ips: try every address a broker's name resolves to, in turn; "
                 "resolve_canonical_bootstrap_servers_only: also expand each bootstrap name "
                 "to the canonical names of its addresses (e.g. behind a load balancer)"),
        _setting("metadata.recovery.strategy", "rebootstrap", parse_choice("rebootstrap", "none"),
                 "KIP-899: when no known broker can be reached (or the cluster answers with "
                 "no brokers), start again from bootstrap.servers (rebootstrap) or keep "
                 "trying the known brokers (none)"),
        _setting("metadata.recovery.rebootstrap.trigger.ms", 300000, parse_int(0),
                 "rebootstrap: how long metadata may go without a successful refresh (while "
                 "one is wanted) before the producer starts again from bootstrap.servers"),
        _setting("send.buffer.bytes", 131072, parse_int(-1), "SO_SNDBUF (-1: OS default)"),
        _setting("receive.buffer.bytes", 32768, parse_int(-1), "SO_RCVBUF (-1: OS default)"),
        # -- metadata
        _setting("metadata.max.age.ms", 300000, parse_int(0),
                 "refresh metadata at least this often, even without errors"),
        _setting("metadata.max.idle.ms", 300000, parse_int(5000),
                 "stop refreshing a topic nothing was sent to for this long (a later send "
                 "fetches it again)"),
        # -- batching and memory
        _setting("acks", -1, _acks,
                 "0: no response; 1: the leader wrote it; all: every in-sync replica has it"),
        _setting("linger.ms", 5, parse_int(0),
                 "wait up to this long for more records to fill a batch"),
        _setting("batch.size", 16384, parse_int(0),
                 "bytes per batch (after compression, estimated); 0 disables batching"),
        _setting("buffer.memory", 33554432, parse_int(0, 2**62),
                 "bytes of records waiting to be sent before send() blocks"),
        _setting("max.block.ms", 60000, parse_int(0),
                 "how long send() may block for buffer space or metadata before it raises"),
        _setting("max.request.size", 1048576, parse_int(1),
                 "largest request (and so largest record) the producer sends"),
        _setting("compression.type", "none", parse_choice("none", "gzip", "snappy", "lz4", "zstd"),
                 "codec for record batches"),
        _setting("compression.gzip.level", 6, _compression_level("gzip"), "1..9 (-1: 6)"),
        _setting("compression.lz4.level", 9, _compression_level("lz4"),
                 "1..17; the default 9 uses the fast compressor, as Java does"),
        _setting("compression.zstd.level", 3, _compression_level("zstd"), "-131072..22"),
        # -- delivery
        _setting("delivery.timeout.ms", 120000, parse_int(0),
                 "upper bound on the time from send() to success or failure, retries included"),
        _setting("retries", _INT32_MAX, parse_int(0), "how many times a failed batch is retried"),
        _setting("retry.backoff.ms", 100, parse_int(0), "first backoff before a retry"),
        _setting("retry.backoff.max.ms", 1000, parse_int(0),
                 "upper bound of the exponential retry backoff (with jitter, KIP-580)"),
        _setting("max.in.flight.requests.per.connection", 5, parse_int(1),
                 "unanswered produce requests per broker; 1 keeps order without idempotence"),
        # -- serialization and partitioning
        _setting("key.serializer", "bytes", _serializer,
                 "bytes, str (UTF-8), json, a callable value -> bytes (or (value, ctx) -> "
                 "bytes, given the topic, field and headers), or an object with "
                 "serialize(topic, value) (kengine.schema_registry's Avro, Protobuf, JSON "
                 "Schema)"),
        _setting("value.serializer", "bytes", _serializer, "as key.serializer, for values"),
        # -- idempotence and transactions
        _setting("enable.idempotence", True, parse_bool,
                 "exactly-once per partition: producer id + sequence numbers"),
        _setting("transactional.id", None, parse_optional_str,
                 "enables transactions; stable across restarts of the same logical producer"),
        _setting("transaction.timeout.ms", 60000, parse_int(1),
                 "the coordinator aborts a transaction left open this long"),
        # -- observability
        _setting("statistics.interval.ms", 0, parse_int(0),
                 "call stats_callback with producer metrics this often (0: off)"),
        _setting("stats_callback", None, parse_optional_callable,
                 "callable(dict) receiving metrics every statistics.interval.ms"),
        # -- dead letters (kengine.deadletter)
        _setting("dead.letter.topic", None, parse_optional_str,
                 "re-send records that fail with a non-retriable error to this topic, with "
                 "headers naming the original topic, partition and error"),
        _setting("dead_letter_router", None, parse_optional_callable,
                 "callable(record_topic, error) -> dead-letter topic or None (keep the "
                 "failure); overrides dead.letter.topic"),
        _setting("on_dead_letter", None, parse_optional_callable,
                 "callable(DeadLetter) run for every dead-lettered record once its dead-letter "
                 "write succeeded or failed (on a producer thread: keep it short)"),
    ]
}




#: The producer's own settings, as declared above; SETTINGS adds the contributed ones.
_OWN: dict[str, Setting] = dict(SETTINGS)
#: Every contributed group, by owner, in the order they were contributed.
_CONTRIBUTED: dict[str, SettingsGroup] = {}
#: The contributed groups, in table order (resolve() runs their rules in this order).
_GROUPS: list[SettingsGroup] = []


def contribute(group: SettingsGroup) -> None:
    """Adds a module's settings to SETTINGS (after ``group.after``, wherever that setting is
    declared) and its rules to resolve(). A module contributes once, when it is imported;
    contributing again (a reload) replaces its group. The table's order does not depend on
    the order modules are imported in."""
    global _GROUPS
    taken = {name for owner, g in _CONTRIBUTED.items() if owner != group.owner
             for name in (s.name for s in g.settings)} | set(_OWN)
    clash = [s.name for s in group.settings if s.name in taken]
    if clash:
        raise ValueError(f"{group.owner} declares {clash}, which the table already has")
    _CONTRIBUTED[group.owner] = group
    entries = list(_OWN.items())
    pending = [g for g in _CONTRIBUTED.values() if g.after is not None]
    while pending:
        names = [name for name, _ in entries]
        placed = [g for g in pending if g.after in names]
        if not placed:
            break   # anchored to a setting nobody declares (yet): at the end, below
        for g in placed:
            at = [name for name, _ in entries].index(g.after) + 1   # type: ignore[arg-type]
            entries[at:at] = [(s.name, s) for s in g.settings]
            pending.remove(g)
    for g in [*pending, *(g for g in _CONTRIBUTED.values() if g.after is None)]:
        entries += [(s.name, s) for s in g.settings]
    SETTINGS.clear()   # the same dict: modules holding it see the new table
    SETTINGS.update(entries)
    position = {name: i for i, name in enumerate(SETTINGS)}
    _GROUPS = sorted(_CONTRIBUTED.values(), key=lambda g: position[g.settings[0].name])


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
        shown = {k: (HIDDEN if SETTINGS[k].secret and v is not None else v)
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
                shown = HIDDEN if _looks_secret(name) else value
                raise ConfigError(key, shown, "a known producer setting",
                                  message=f"unknown setting {key!r}{hint}")
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
    _check_contributions(values, explicit)


def _check_contributions(values: dict[str, Any], explicit: frozenset[str]) -> None:
    """The contributed groups' rules, in table order: first every setting that means nothing
    with the others, then the rules between values."""
    applying = []
    for group in _GROUPS:
        needs = group.applies(values) if group.applies is not None else None
        if needs is None:
            applying.append(group)
            continue
        for s in group.settings:
            if s.name in explicit:
                raise ConfigError(s.name, shown(s.name, values[s.name]), needs)
    for group in applying:
        if group.check is not None:
            group.check(values, explicit)


def shown(key: str, value: Any) -> Any:
    """How a setting's value appears in errors: credentials never do."""
    return HIDDEN if SETTINGS[key].secret and value is not None else value


def describe() -> Iterable[tuple[str, Any, str]]:
    """(name, default, doc) for every setting, for documentation and the CLI."""
    for s in SETTINGS.values():
        yield s.name, s.default, s.doc
