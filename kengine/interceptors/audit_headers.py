"""The ``audit_headers`` interceptor: headers saying who produced each record.

With ``interceptors=["audit_headers", ...]`` every record gets (prefix
``interceptor.audit.header.prefix``, default ``audit.``):

=====================  ====================================================================
``audit.client.id``    the producer's ``client.id``
``audit.host``         the host name of the machine (``socket.gethostname()``)
``audit.application``  ``interceptor.audit.application`` (default: the program's name,
                       ``sys.argv[0]``'s file name)
``audit.schema.id``    when ``value.serializer`` is a schema-registry serializer
                       (``kengine.schema_registry``): the id of the schema the value is
                       written with, and ``audit.schema.subject`` its subject
=====================  ====================================================================

Values are UTF-8 bytes. The schema id is the serializer's own for the record's topic (asked of
the registry once per topic, as the serializer does; the asyncio producer asks it off the event
loop first). A record whose serializer cannot get one goes without the schema headers; its
send then fails with the serializer's error.
"""
from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from typing import Any

from ..config import Setting, SettingsGroup, contribute, parse_optional_str, parse_str
from .base import ProducerRecord

__all__ = ["AuditHeaders", "SETTINGS"]


def _applies(values: dict[str, Any]) -> str | None:
    entries = [*values.get("interceptors", ()), *values.get("interceptor.classes", ())]
    if any(e == "audit_headers" or e is AuditHeaders or isinstance(e, AuditHeaders)
           for e in entries):
        return None
    return "interceptors to include audit_headers"


def _program_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name or "python"


class AuditHeaders:
    """Adds the audit headers (see the module's text)."""

    def __init__(self, application: str | None = None, *, prefix: str | None = None) -> None:
        self._application = application
        self._prefix = prefix
        self._fixed: list[tuple[str, bytes]] = []
        self._serializer: Any = None
        #: topic -> its schema headers (user threads; a dict write is atomic under the GIL)
        self._schema_headers: dict[str, list[tuple[str, bytes]]] = {}

    def configure(self, settings: Mapping[str, Any]) -> None:
        prefix = self._prefix if self._prefix is not None else \
            settings.get("interceptor.audit.header.prefix", "audit.")
        application = self._application or settings.get("interceptor.audit.application") \
            or _program_name()
        self._prefix = prefix
        self._fixed = [
            (prefix + "client.id", str(settings.get("client.id") or "").encode()),
            (prefix + "host", socket.gethostname().encode()),
            (prefix + "application", application.encode()),
        ]
        serializer = settings.get("value.serializer")
        if callable(getattr(serializer, "target", None)) and \
                hasattr(serializer, "schema_type"):
            self._serializer = serializer

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        if not self._fixed:   # constructed directly and given to no producer yet
            self.configure({})
        record.headers.extend(self._fixed)
        if self._serializer is not None:
            record.headers.extend(self._schema_for(record.topic))
        return record

    def _schema_for(self, topic: str) -> list[tuple[str, bytes]]:
        found = self._schema_headers.get(topic)
        if found is None:
            target = self._serializer.target(topic)   # raises as the serializer would
            schema_id = int.from_bytes(target.prefix[1:5], "big")   # magic byte, then the id
            found = [(self._prefix + "schema.id", str(schema_id).encode())]   # type: ignore[operator]
            if target.subject is not None:
                found.append((self._prefix + "schema.subject",   # type: ignore[operator]
                              target.subject.encode()))
            self._schema_headers[topic] = found
        return found

    def __repr__(self) -> str:
        return f"AuditHeaders(prefix={self._prefix!r})"


SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("interceptor.audit.application", None, parse_optional_str,
                "audit_headers: the application name written in audit.application (default: "
                "the program's file name)"),
        Setting("interceptor.audit.header.prefix", "audit.", parse_str,
                "audit_headers: the prefix of the headers' names"),
    ),
    applies=_applies,
    after="interceptor.mask.salt",
)
contribute(SETTINGS)
