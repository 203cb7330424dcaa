"""A Schema Registry client speaking Confluent's REST API (Confluent Schema Registry, Apicurio's
``/apis/ccompat/v7``, Karapace, Redpanda...).

``SchemaRegistryClient({"url": "http://registry:8081"})``: register, look up, fetch by id, by
version or the latest, test compatibility, read and set the compatibility level. Every answer
that cannot change is cached (an id's schema, a subject's id for a schema text, a version), so a
serializer asks the registry once per schema, not once per record. Thread-safe: caches behind
one lock that is never held during a request; each thread keeps its own keep-alive connection.

Settings take the names of confluent-kafka's client: ``url`` (comma-separated for several; the
next is tried when one fails), ``basic.auth.user.info`` ("user:password"; or user info in the
URL), ``bearer.auth.token``, ``ssl.ca.location``, ``ssl.certificate.location``,
``ssl.key.location``, ``ssl.key.password``, ``ssl.endpoint.identification.algorithm`` ("https"
or "none"), ``timeout`` (seconds per request), ``max.retries``, ``retries.wait.ms``,
``retries.max.wait.ms`` and ``latest.cache.ttl.secs``.
"""
from __future__ import annotations

import base64
import http.client
import json
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, SchemaRegistryError

__all__ = ["RegisteredSchema", "Schema", "SchemaReference", "SchemaRegistryClient",
           "CLIENT_SETTINGS"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# what a registry sends when it is overloaded or restarting: worth another try
_RETRIABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: setting -> (default, meaning); the client's whole configuration
CLIENT_SETTINGS: dict[str, tuple[Any, str]] = {
    "url": (None, "the registry's base URL(s), comma-separated"),
    "basic.auth.user.info": (None, "'user:password' for HTTP basic authentication"),
    "bearer.auth.token": (None, "a static bearer token (Authorization: Bearer ...)"),
    "ssl.ca.location": (None, "CA bundle (PEM) that signed the registry's certificate"),
    "ssl.certificate.location": (None, "client certificate (PEM) for mutual TLS"),
    "ssl.key.location": (None, "the client certificate's private key (PEM)"),
    "ssl.key.password": (None, "password of that key"),
    "ssl.endpoint.identification.algorithm": ("https", "https: check the host name; none: don't"),
    "timeout": (30.0, "seconds a single request may take"),
    "max.retries": (3, "retries of a request that got no answer, a 5xx or a 429"),
    "retries.wait.ms": (1000, "first wait before a retry (doubles each time, with jitter)"),
    "retries.max.wait.ms": (20000, "longest wait between retries"),
    "latest.cache.ttl.secs": (None, "seconds a subject's latest version is cached (None: "
                                    "until the process ends)"),
}


@dataclass(frozen=True)
class SchemaReference:
    """A schema another one uses: its ``name`` as the referring schema spells it (an Avro full
    name, a .proto import path, a JSON Schema $ref), and where it is registered."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class Schema:
    """A schema's text, type ("AVRO", "PROTOBUF" or "JSON") and references."""

    schema_str: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schema": self.schema_str}
        if self.schema_type != "AVRO":   # the API's default; some registries reject it spelled
            body["schemaType"] = self.schema_type
        if self.references:
            body["references"] = [r.to_json() for r in self.references]
        return body

    @staticmethod
    def from_json(body: Mapping[str, Any]) -> Schema:
        return Schema(body["schema"], body.get("schemaType") or "AVRO",
                      tuple(SchemaReference(r["name"], r["subject"], int(r["version"]))
                            for r in body.get("references") or ()))


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as registered under a subject: its global ``schema_id`` and the ``version``."""

    schema_id: int
    schema: Schema
    subject: str
    version: int


def _setting(config: Mapping[str, Any], key: str) -> Any:
    return config[key] if key in config else CLIENT_SETTINGS[key][0]


class _Endpoint:
    """One base URL: where to connect and the path prefix of every request."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url", url, "http(s)://host[:port][/path] of a Schema Registry")
        self.url = url.strip().rstrip("/")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.prefix = parts.path.rstrip("/")
        self.userinfo = (urllib.parse.unquote(parts.username or "") + ":"
                         + urllib.parse.unquote(parts.password or "")) if parts.username else None


class SchemaRegistryClient:
    """A thread-safe, caching client of a Schema Registry's Confluent REST API."""

    def __init__(self, config: Mapping[str, Any] | str) -> None:
        if isinstance(config, str):
            config = {"url": config}
        unknown = sorted(set(config) - set(CLIENT_SETTINGS))
        if unknown:
            raise ConfigError(unknown[0], config[unknown[0]],
                              f"not a Schema Registry client setting (known: "
                              f"{', '.join(CLIENT_SETTINGS)})")
        urls = _setting(config, "url")
        if not urls or not isinstance(urls, str):
            raise ConfigError("url", urls, "the Schema Registry's URL, e.g. http://host:8081")
        self._endpoints = [_Endpoint(u) for u in urls.split(",") if u.strip()]
        self._timeout_s = float(_setting(config, "timeout"))
        self._max_retries = int(_setting(config, "max.retries"))
        self._wait_ms = int(_setting(config, "retries.wait.ms"))
        self._max_wait_ms = int(_setting(config, "retries.max.wait.ms"))
        ttl = _setting(config, "latest.cache.ttl.secs")
        self._latest_ttl_s: float | None = None if ttl is None else float(ttl)
        self._headers = {"Accept": _CONTENT_TYPE, "Content-Type": _CONTENT_TYPE}
        userinfo = _setting(config, "basic.auth.user.info") or self._endpoints[0].userinfo
        token = _setting(config, "bearer.auth.token")
        if userinfo and token:
            raise ConfigError("bearer.auth.token", "***",
                              "set either basic.auth.user.info or bearer.auth.token, not both")
        if userinfo:
            if ":" not in userinfo:
                raise ConfigError("basic.auth.user.info", "***", "'user:password'")
            self._headers["Authorization"] = "Basic " + base64.b64encode(
                userinfo.encode()).decode()
        elif token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._ssl_context = self._make_ssl_context(config) \
            if any(e.tls for e in self._endpoints) else None
        self._local = threading.local()   # each thread's connections, by endpoint index
        self._preferred = 0               # the endpoint that answered last (any thread writes)
        # caches: guarded by _lock, which is never held while a request is in flight
        self._lock = threading.Lock()
        self._schemas_by_id: dict[int, Schema] = {}
        self._ids_by_schema: dict[tuple[str, Schema, bool], RegisteredSchema | int] = {}
        self._versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._latest: dict[str, tuple[float, RegisteredSchema]] = {}

    @staticmethod
    def _make_ssl_context(config: Mapping[str, Any]) -> ssl.SSLContext:
        ca = _setting(config, "ssl.ca.location")
        ctx = ssl.create_default_context(cafile=ca)
        cert = _setting(config, "ssl.certificate.location")
        if cert:
            ctx.load_cert_chain(cert, _setting(config, "ssl.key.location"),
                                _setting(config, "ssl.key.password"))
        check = str(_setting(config, "ssl.endpoint.identification.algorithm")).lower()
        if check in ("none", ""):
            ctx.check_hostname = False
        elif check != "https":
            raise ConfigError("ssl.endpoint.identification.algorithm", check, "https or none")
        return ctx

    @property
    def url(self) -> str:
        return ",".join(e.url for e in self._endpoints)

    # ------------------------------------------------------------------ the REST API

    def register_schema(self, subject: str, schema: Schema, normalize: bool = False,
                        deadline: float | None = None) -> int:
        """Registers ``schema`` under ``subject`` (a no-op answer with the existing id when it
        is there already) and returns its global id. A schema the subject's compatibility
        level refuses raises :class:`SchemaRegistryError` (HTTP 409) with the registry's
        reason."""
        key = (subject, schema, normalize)
        with self._lock:
            known = self._ids_by_schema.get(key)
        if known is not None:
            return known if isinstance(known, int) else known.schema_id
        body = self._request("POST", f"/subjects/{quote(subject, safe='')}/versions",
                             schema.to_json(), {"normalize": "true"} if normalize else None,
                             deadline=deadline)
        schema_id = int(body["id"])
        with self._lock:
            self._ids_by_schema.setdefault(key, schema_id)
            self._schemas_by_id.setdefault(schema_id, schema)
        return schema_id

    def lookup_schema(self, subject: str, schema: Schema, normalize: bool = False,
                      deadline: float | None = None) -> RegisteredSchema:
        """The registered version of ``schema`` under ``subject``; raises
        :class:`SchemaRegistryError` (HTTP 404) when it is not registered there."""
        key = (subject, schema, normalize)
        with self._lock:
            known = self._ids_by_schema.get(key)
        if isinstance(known, RegisteredSchema):
            return known
        body = self._request("POST", f"/subjects/{quote(subject, safe='')}",
                             schema.to_json(), {"normalize": "true"} if normalize else None,
                             deadline=deadline)
        found = RegisteredSchema(int(body["id"]), schema, body.get("subject", subject),
                                 int(body["version"]))
        with self._lock:
            self._ids_by_schema[key] = found
            self._schemas_by_id.setdefault(found.schema_id, schema)
        return found

    def get_schema(self, schema_id: int, deadline: float | None = None) -> Schema:
        """The schema with global id ``schema_id`` (HTTP 404 when there is none)."""
        with self._lock:
            known = self._schemas_by_id.get(schema_id)
        if known is not None:
            return known
        schema = Schema.from_json(self._request("GET", f"/schemas/ids/{int(schema_id)}",
                                                deadline=deadline))
        with self._lock:
            return self._schemas_by_id.setdefault(schema_id, schema)

    def get_version(self, subject: str, version: int,
                    deadline: float | None = None) -> RegisteredSchema:
        """Version ``version`` of ``subject``."""
        key = (subject, int(version))
        with self._lock:
            known = self._versions.get(key)
        if known is not None:
            return known
        found = self._registered(self._request(
            "GET", f"/subjects/{quote(subject, safe='')}/versions/{int(version)}",
            deadline=deadline), subject)
        with self._lock:
            self._versions[key] = found
        return found

    def get_latest_version(self, subject: str, deadline: float | None = None) -> RegisteredSchema:
        """The newest version of ``subject`` (cached for ``latest.cache.ttl.secs``)."""
        now = time.monotonic()
        with self._lock:
            cached = self._latest.get(subject)
        if cached is not None and (self._latest_ttl_s is None
                                   or now - cached[0] < self._latest_ttl_s):
            return cached[1]
        found = self._registered(self._request(
            "GET", f"/subjects/{quote(subject, safe='')}/versions/latest", deadline=deadline),
            subject)
        with self._lock:
            self._latest[subject] = (now, found)
            self._versions[(subject, found.version)] = found
        return found

    def get_subjects(self) -> list[str]:
        return list(self._request("GET", "/subjects"))

    def get_versions(self, subject: str) -> list[int]:
        return [int(v) for v in self._request("GET",
                                              f"/subjects/{quote(subject, safe='')}/versions")]

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Deletes every version of ``subject`` (soft; ``permanent=True`` after a soft delete
        removes it for good) and forgets what the caches held about it."""
        versions = self._request("DELETE", f"/subjects/{quote(subject, safe='')}",
                                 params={"permanent": "true"} if permanent else None)
        with self._lock:
            self._latest.pop(subject, None)
            for version_key in [k for k in self._versions if k[0] == subject]:
                del self._versions[version_key]
            for schema_key in [k for k in self._ids_by_schema if k[0] == subject]:
                del self._ids_by_schema[schema_key]
        return [int(v) for v in versions]

    def test_compatibility(self, subject: str, schema: Schema, version: int | str = "latest",
                           verbose: bool = False) -> bool | tuple[bool, list[str]]:
        """Whether ``schema`` may be registered under ``subject`` after ``version``, by the
        subject's compatibility level. ``verbose=True`` returns (answer, the registry's
        reasons)."""
        body = self._request(
            "POST", f"/compatibility/subjects/{quote(subject, safe='')}/versions/{version}",
            schema.to_json(), {"verbose": "true"} if verbose else None)
        ok = bool(body["is_compatible"])
        return (ok, list(body.get("messages") or [])) if verbose else ok

    def get_compatibility(self, subject: str | None = None) -> str:
        """The compatibility level of ``subject`` (its own or the global default), or the
        global one."""
        path = "/config" if subject is None else f"/config/{quote(subject, safe='')}"
        params = {"defaultToGlobal": "true"} if subject is not None else None
        body = self._request("GET", path, params=params)
        return str(body.get("compatibilityLevel") or body.get("compatibility"))

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Sets the compatibility level (BACKWARD, FORWARD, FULL, NONE, or a ``_TRANSITIVE``
        one) globally or of one subject."""
        path = "/config" if subject is None else f"/config/{quote(subject, safe='')}"
        body = self._request("PUT", path, {"compatibility": level.upper()})
        return str(body.get("compatibility") or body.get("compatibilityLevel"))

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _registered(body: Mapping[str, Any], subject: str) -> RegisteredSchema:
        return RegisteredSchema(int(body["id"]), Schema.from_json(body),
                                body.get("subject", subject), int(body["version"]))

    def _request(self, method: str, path: str, body: Any = None,
                 params: Mapping[str, str] | None = None, deadline: float | None = None) -> Any:
        """One API call, retried (within ``max.retries`` and ``deadline``, a time.monotonic()
        instant) when no answer came or the answer was 5xx/429; endpoints are tried in turn."""
        data = None if body is None else json.dumps(body).encode()
        query = "?" + urllib.parse.urlencode(params) if params else ""
        attempt = 0
        started = time.monotonic()
        while True:
            index = self._preferred
            endpoint = self._endpoints[index]
            try:
                status, payload = self._exchange(index, endpoint, method,
                                                 endpoint.prefix + path + query, data, deadline)
            except (OSError, http.client.HTTPException) as e:
                error = SchemaRegistryError(
                    f"Schema Registry {endpoint.url} did not answer {method} {path}: "
                    f"{type(e).__name__}: {e}", retriable=True)
                # the next endpoint, if there are several, gets the next try
                self._preferred = (index + 1) % len(self._endpoints)
            else:
                if 200 <= status < 300:
                    return json.loads(payload) if payload else None
                error = self._http_error(endpoint, method, path, status, payload)
                if not error.retriable:
                    raise error
            attempt += 1
            wait_s = min(self._max_wait_ms, self._wait_ms * 2 ** (attempt - 1)) / 1000.0
            wait_s *= random.uniform(0.8, 1.2)
            now = time.monotonic()
            out_of_time = deadline is not None and now + wait_s >= deadline
            if attempt > self._max_retries and deadline is None or out_of_time:
                spent_ms = (now - started) * 1000
                raise SchemaRegistryError(
                    f"{error} (gave up after {attempt} attempt{'s' * (attempt > 1)} in "
                    f"{spent_ms:.0f} ms)", http_status=error.http_status,
                    error_code=error.error_code, retriable=True) from None
            time.sleep(wait_s)

    @staticmethod
    def _http_error(endpoint: _Endpoint, method: str, path: str, status: int,
                    payload: bytes) -> SchemaRegistryError:
        code = None
        message = payload.decode(errors="replace").strip()[:2000]
        try:
            answer = json.loads(payload)
            if isinstance(answer, dict):
                code = answer.get("error_code")
                message = str(answer.get("message") or message)
        except ValueError:
            pass
        return SchemaRegistryError(
            f"Schema Registry {endpoint.url} answered {method} {path} with HTTP {status}"
            f"{f' (error {code})' if code is not None else ''}: {message}",
            http_status=status, error_code=code if isinstance(code, int) else None,
            retriable=status in _RETRIABLE_STATUSES)

    def _exchange(self, index: int, endpoint: _Endpoint, method: str, target: str,
                  data: bytes | None, deadline: float | None) -> tuple[int, bytes]:
        timeout = self._timeout_s
        if deadline is not None:
            timeout = max(0.05, min(timeout, deadline - time.monotonic()))
        conns: dict[int, http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "conns", {})
        conn = conns.get(index)
        for reuse in (True, False):
            if conn is None:
                if endpoint.tls:
                    conn = http.client.HTTPSConnection(endpoint.host, endpoint.port,
                                                       timeout=timeout, context=self._ssl_context)
                else:
                    conn = http.client.HTTPConnection(endpoint.host, endpoint.port,
                                                      timeout=timeout)
                conns[index] = conn
                reuse = False
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            try:
                conn.request(method, target, body=data, headers=self._headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                conns.pop(index, None)
                conn = None
                if reuse:   # a kept-alive connection the server closed meanwhile: once more
                    continue
                raise
            if response.will_close:
                conn.close()
                conns.pop(index, None)
            return response.status, payload
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Closes this thread's connections (other threads' close when they end)."""
        for conn in self._local.__dict__.pop("conns", {}).values():
            conn.close()

    def __repr__(self) -> str:
        return f"SchemaRegistryClient({self.url!r})"


def references_from(refs: Sequence[SchemaReference | Mapping[str, Any]] | None
                    ) -> tuple[SchemaReference, ...]:
    """References given as SchemaReference or {"name", "subject", "version"} mappings."""
    out = []
    for r in refs or ():
        out.append(r if isinstance(r, SchemaReference)
                   else SchemaReference(r["name"], r["subject"], int(r["version"])))
    return tuple(out)
