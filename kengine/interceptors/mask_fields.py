"""The ``mask_fields`` interceptor: named fields of JSON values hashed or removed before sending.

Settings (with ``interceptors=["mask_fields", ...]``):

``interceptor.mask.fields``
    the fields to mask: a list of paths for every topic, or ``{topic: [paths]}`` (key ``"*"``:
    every topic without an entry of its own). A path is a field name or a dotted path into
    nested objects (``"customer.email"``); where a step meets a list, it applies to each
    object of the list (``"items.card"``).
``interceptor.mask.mode``
    ``hash`` (default): the field's value becomes ``"sha256:<hex>"`` of the salt and the value's
    compact JSON, so equal values still match each other (joins, counts) without being
    readable; ``remove``: the field is dropped.
``interceptor.mask.salt``
    prepended to what is hashed (a secret). Without it a hash of a low-entropy value (a phone
    number, a birth date) can be reversed by hashing every candidate: set one.

A value is masked where it is a ``dict`` (``value.serializer="json"``) or the bytes / str of a
JSON object; the caller's objects are never changed (the masked value is a copy). A value on a
masked topic that is neither (not JSON, a JSON array) cannot be masked: the record fails with
:class:`~kengine.errors.RecordRejectedError` instead of leaving unmasked. Null values
(tombstones) pass.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..config import Setting, SettingsGroup, contribute, parse_choice
from ..errors import ConfigError, RecordRejectedError
from .base import ProducerRecord

__all__ = ["MaskFields", "SETTINGS"]

_ALL = "*"


def _parse_fields(key: str, value: Any) -> dict[str, tuple[tuple[str, ...], ...]]:
    """{topic or "*": (path as a tuple of steps, ...)}."""
    allowed = "a list of field paths, or {topic: [field paths]} ('*': every other topic)"
    if value is None:
        return {}
    if isinstance(value, str):
        value = [p for p in value.split(",")]
    if isinstance(value, (list, tuple)):
        value = {_ALL: value}
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, allowed)
    out: dict[str, tuple[tuple[str, ...], ...]] = {}
    for topic, paths in value.items():
        if isinstance(paths, str):
            paths = paths.split(",")
        if not isinstance(topic, str) or not isinstance(paths, (list, tuple)):
            raise ConfigError(key, value, allowed)
        steps = []
        for path in paths:
            parts = tuple(path.strip().split(".")) if isinstance(path, str) else ()
            if not parts or not all(parts):
                raise ConfigError(key, value, f"{allowed}; {path!r} is not a field path")
            steps.append(parts)
        out[topic] = tuple(steps)
    return out


def _parse_salt(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(key, "[hidden]", "a string")


def _applies(values: dict[str, Any]) -> str | None:
    entries = [*values.get("interceptors", ()), *values.get("interceptor.classes", ())]
    if any(e == "mask_fields" or e is MaskFields or isinstance(e, MaskFields) for e in entries):
        return None
    return "interceptors to include mask_fields"


class MaskFields:
    """Masks fields of JSON values (see the module's text). Constructed by the producer from
    the settings, or directly: ``MaskFields({"orders": ["email"]}, mode="remove")``."""

    def __init__(self, fields: Any = None, *, mode: str | None = None,
                 salt: str | None = None) -> None:
        self._fields = _parse_fields("interceptor.mask.fields", fields)
        self._given = fields is not None
        self._mode = mode or "hash"
        if self._mode not in ("hash", "remove"):
            raise ConfigError("interceptor.mask.mode", mode, "hash or remove")
        self._salt = (salt or "").encode()

    def configure(self, settings: Mapping[str, Any]) -> None:
        if not self._given:
            self._fields = settings.get("interceptor.mask.fields") or {}
            self._mode = settings.get("interceptor.mask.mode") or "hash"
            self._salt = (settings.get("interceptor.mask.salt") or "").encode()
        if not self._fields:
            raise ConfigError("interceptor.mask.fields", None,
                              "the fields mask_fields masks: a list of paths or {topic: paths}")

    def paths_for(self, topic: str) -> tuple[tuple[str, ...], ...]:
        found = self._fields.get(topic)
        return found if found is not None else self._fields.get(_ALL, ())

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        paths = self.paths_for(record.topic)
        value = record.value
        if not paths or value is None:
            return record
        if isinstance(value, dict):
            record.value = self._masked(value, paths)
            return record
        if isinstance(value, (bytes, bytearray, memoryview, str)):
            try:
                doc = json.loads(bytes(value) if not isinstance(value, str) else value)
            except (ValueError, UnicodeDecodeError) as e:
                raise RecordRejectedError(
                    f"mask_fields: the value of a record to {record.topic!r} is not JSON "
                    f"({e}), so its fields {self._names(paths)} cannot be masked; it was not "
                    f"sent", interceptor="mask_fields") from None
            if isinstance(doc, dict):
                out = json.dumps(self._masked(doc, paths), separators=(",", ":"),
                                 ensure_ascii=False)
                record.value = out if isinstance(value, str) else out.encode()
                return record
        raise RecordRejectedError(
            f"mask_fields: the value of a record to {record.topic!r} is a "
            f"{type(value).__name__}, not a JSON object (a dict, or its bytes or str), so its "
            f"fields {self._names(paths)} cannot be masked; it was not sent",
            interceptor="mask_fields")

    @staticmethod
    def _names(paths: tuple[tuple[str, ...], ...]) -> str:
        return ", ".join(".".join(p) for p in paths)

    def _masked(self, doc: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> dict[str, Any]:
        out = dict(doc)   # copy on write: the caller's dict is left as it was
        for path in paths:
            out = self._mask_path(out, path)
        return out

    def _mask_path(self, obj: Any, path: tuple[str, ...]) -> Any:
        if isinstance(obj, list):
            return [self._mask_path(item, path) for item in obj]
        if not isinstance(obj, dict) or path[0] not in obj:
            return obj
        out = dict(obj)
        name = path[0]
        if len(path) > 1:
            out[name] = self._mask_path(obj[name], path[1:])
        elif self._mode == "remove":
            del out[name]
        else:
            out[name] = self.hash(obj[name])
        return out

    def hash(self, value: Any) -> str:
        """What ``hash`` mode writes for ``value``."""
        data = json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                          sort_keys=True).encode()
        return "sha256:" + hashlib.sha256(self._salt + data).hexdigest()

    def __repr__(self) -> str:
        return f"MaskFields(mode={self._mode!r}, topics={sorted(self._fields)})"


SETTINGS = SettingsGroup(
    owner=__name__,
    settings=(
        Setting("interceptor.mask.fields", {}, _parse_fields,
                "mask_fields: the JSON fields to mask, a list of (dotted) paths for every topic "
                "or {topic: [paths]} ('*': every other topic)"),
        Setting("interceptor.mask.mode", "hash", parse_choice("hash", "remove"),
                "mask_fields: hash (sha256 of salt + value, equal values still match) or "
                "remove"),
        Setting("interceptor.mask.salt", None, _parse_salt,
                "mask_fields: a secret prepended to hashed values (without one, low-entropy "
                "values can be guessed back)", secret=True),
    ),
    applies=_applies,
    after="interceptor.classes",
)
contribute(SETTINGS)
