"""Values of kengine's protocol messages for property tests, derived from the schema table
(kengine_ext.schemas) independently of the codec: hypothesis strategies for any message and
version, and the dict a decoder must return for a drawn value."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

from kengine_ext.schemas import MESSAGES, TYPE_DEFAULT, Field, Message

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1),
}
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


def version_range(text: str) -> range:
    if text == "none":
        return range(0)
    if text.endswith("+"):
        return range(int(text[:-1]), 0x8000)
    lo, _, hi = text.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def valid_versions(msg: Message) -> range:
    return version_range(msg.valid_versions)


def all_message_versions() -> Iterator[tuple[str, int]]:
    for name, msg in MESSAGES.items():
        for version in valid_versions(msg):
            yield name, version


def present(fields: tuple[Field, ...], version: int) -> list[Field]:
    return [f for f in fields if version in version_range(f.versions)]


def is_tagged(f: Field, version: int) -> bool:
    return f.tag is not None and version in version_range(f.tagged_versions)


def _scalar(ftype: str, nullable: bool) -> st.SearchStrategy[Any]:
    if ftype in INT_RANGES:
        s: st.SearchStrategy[Any] = st.integers(*INT_RANGES[ftype])
    elif ftype == "bool":
        s = st.booleans()
    elif ftype == "float64":
        s = st.floats(allow_nan=False)
    elif ftype == "string":
        s = TEXT
    elif ftype == "bytes":
        s = st.binary(max_size=24)
    elif ftype == "uuid":
        s = st.binary(min_size=16, max_size=16) | st.uuids()
    elif ftype == "records":
        # one buffer or several written back to back
        s = st.binary(max_size=64) | st.lists(st.binary(max_size=32), max_size=3)
    else:
        raise AssertionError(ftype)
    return st.none() | s if nullable else s


def field_strategy(f: Field, version: int, *, tagged: bool = True) -> st.SearchStrategy[Any]:
    nullable = version in version_range(f.nullable_versions)
    is_array = f.type.startswith("[]")
    elem = f.type[2:] if is_array else f.type
    if f.fields:
        s = body_strategy(f.fields, version, tagged=tagged)
    else:
        s = _scalar(elem, nullable and not is_array)
    if is_array:
        s = st.lists(s, max_size=3)
        if nullable:
            s = st.none() | s
    return s


def body_strategy(fields: tuple[Field, ...], version: int, *,
                  tagged: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of a struct's fields in `version`; any key may be missing (default).
    tagged=False leaves tagged fields out (for decoders that do not read them)."""
    optional = {f.name: field_strategy(f, version, tagged=tagged) for f in present(fields, version)
                if tagged or not is_tagged(f, version)}
    return st.fixed_dictionaries({}, optional=optional)


def message_strategy(name: str, version: int, *, tagged: bool = True) -> st.SearchStrategy[dict]:
    return body_strategy(MESSAGES[name].fields, version, tagged=tagged)


def default(f: Field, version: int) -> Any:
    if f.default is not TYPE_DEFAULT:
        return f.default
    if f.type.startswith("[]"):
        return []
    if f.fields:
        return expected(f.fields, version, {})
    return {"bool": False, "float64": 0.0, "string": "", "bytes": b"", "records": None,
            "uuid": bytes(16)}.get(f.type, 0)


def _normalize(f: Field, version: int, value: Any) -> Any:
    if value is None:
        return None
    if f.type.startswith("[]"):
        one = f._replace(type=f.type[2:])
        return [_normalize(one, version, v) for v in value]
    if f.fields:
        return expected(f.fields, version, value)
    if f.type == "uuid":
        return value.bytes if isinstance(value, uuid.UUID) else bytes(value)
    if f.type == "records":
        return b"".join(bytes(v) for v in value) if isinstance(value, list) else bytes(value)
    if f.type == "bytes":
        return bytes(value)
    return value


def expected(fields: tuple[Field, ...], version: int, value: dict[str, Any]) -> dict[str, Any]:
    """What decoding the encoding of `value` must give: every field of the version, drawn
    values normalized (uuid.UUID -> bytes, records pieces joined), the rest defaults."""
    return {f.name: _normalize(f, version, value[f.name]) if f.name in value
            else default(f, version) for f in present(fields, version)}


def expected_message(name: str, version: int, value: dict[str, Any]) -> dict[str, Any]:
    return expected(MESSAGES[name].fields, version, value)
