#!/usr/bin/env python3
"""Generates ``kengine_ext/schemas.py`` from Kafka's JSON message schemas.

The output is a plain data table (one ``Message`` per JSON file, ``Field`` rows with snake_case
names, ``commonStructs`` resolved in place, defaults converted to Python values) that the codec
in ``kengine_ext/protocol.pyx`` compiles per (message, version). Rerun after changing the spec
or this file; ``tests/unit/test_protocol_schemas.py`` fails while the committed table is stale.

    python tools/gen_protocol.py                      # spec from spec/kafka-protocol/messages
    python tools/gen_protocol.py --spec DIR --out FILE
    python tools/gen_protocol.py --check              # exit 1 if the committed file is stale
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "kengine_ext" / "schemas.py"
LINE_LIMIT = 100

INT_TYPES = {"int8", "int16", "uint16", "int32", "uint32", "int64"}
SCALAR_TYPES = INT_TYPES | {"bool", "float64", "string", "bytes", "records", "uuid"}


class SpecError(ValueError):
    """The JSON spec uses something this generator (and so the codec) does not understand."""


def default_spec_dir() -> Path:
    """``$KENGINE_PROTOCOL_SPEC`` if set, else the copy in ``spec/kafka-protocol/messages``."""
    env = os.environ.get("KENGINE_PROTOCOL_SPEC")
    if env:
        return Path(env)
    return REPO_ROOT / "spec" / "kafka-protocol" / "messages"


def strip_comments(text: str) -> str:
    """Kafka's schema files are JSON with ``//`` line comments. A regex would also cut
    ``//`` inside strings (URLs in "about" texts), so this tracks string state."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif c == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def snake_case(name: str) -> str:
    """``ThrottleTimeMs`` -> ``throttle_time_ms``; ``timeoutMs`` -> ``timeout_ms``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def message_constant(name: str) -> str:
    """``ProduceRequest`` -> ``PRODUCE_REQUEST`` (the module-level name of its table)."""
    return snake_case(name).upper()


def _parse_versions(text: str, where: str) -> tuple[int, int] | None:
    """Checks a version range written in Kafka's notation; the table keeps the text."""
    if text == "none":
        return None
    m = re.fullmatch(r"(\d+)(\+|-(\d+))?", text)
    if not m:
        raise SpecError(f"{where}: bad version range {text!r}")
    lo = int(m.group(1))
    if m.group(2) == "+":
        return lo, 0x7FFF
    hi = int(m.group(3)) if m.group(3) else lo
    if hi < lo:
        raise SpecError(f"{where}: empty version range {text!r}")
    return lo, hi


def _convert_default(raw: Any, ftype: str, nullable: bool, where: str) -> Any:
    """The JSON ``default`` as the Python value the codec uses (JSON gives strings or literals)."""
    if isinstance(raw, str) and raw == "null":
        if not nullable:
            raise SpecError(f"{where}: default null on a field that is never nullable")
        return None
    if ftype in INT_TYPES:
        if isinstance(raw, bool):
            raise SpecError(f"{where}: boolean default on an integer field")
        return raw if isinstance(raw, int) else int(raw, 0)
    if ftype == "bool":
        if isinstance(raw, bool):
            return raw
        if raw in ("true", "false"):
            return raw == "true"
        raise SpecError(f"{where}: bad boolean default {raw!r}")
    if ftype == "float64":
        return float(raw)
    if ftype == "string":
        return str(raw)
    raise SpecError(f"{where}: a default on a {ftype} field is not supported")


class _Converter:
    """Turns one JSON message into nested ``Field(...)`` source lines."""

    def __init__(self, spec: dict[str, Any], filename: str) -> None:
        self.msg_name = spec["name"]
        self.where = filename
        self.common = {s["name"]: s for s in spec.get("commonStructs", [])}

    def field_lines(self, fields: list[dict[str, Any]], indent: int, path: str) -> list[str]:
        lines: list[str] = []
        for f in fields:
            lines.extend(self.field(f, indent, path))
        return lines

    def field(self, f: dict[str, Any], indent: int, path: str) -> list[str]:
        name = f["name"]
        where = f"{self.where}: {path}{name}"
        ftype = f["type"]
        versions = f.get("versions")
        if versions is None:
            raise SpecError(f"{where}: no versions")
        _parse_versions(versions, where)
        nullable = f.get("nullableVersions", "none")
        _parse_versions(nullable, where)
        tagged = f.get("taggedVersions", "none")
        _parse_versions(tagged, where)
        tag = f.get("tag")
        if (tag is None) != (tagged == "none"):
            raise SpecError(f"{where}: tag and taggedVersions must be given together")
        flexible = f.get("flexibleVersions")
        if flexible is not None:
            _parse_versions(flexible, where)
            if ftype not in ("string", "bytes"):
                raise SpecError(f"{where}: flexibleVersions is only allowed on string/bytes")

        elem = ftype.removeprefix("[]")
        nested = f.get("fields")
        if elem not in SCALAR_TYPES:
            if nested is None:
                if elem not in self.common:
                    raise SpecError(f"{where}: unknown struct type {elem!r}")
                nested = self.common[elem]["fields"]
            if ftype == elem and nullable != "none":
                raise SpecError(f"{where}: nullable struct fields are not supported")
        elif nested is not None:
            raise SpecError(f"{where}: a {ftype} field cannot have nested fields")

        args = [repr(snake_case(name)), repr(ftype), repr(versions)]
        if nullable != "none":
            args.append(f"nullable_versions={nullable!r}")
        if tag is not None:
            args.append(f"tagged_versions={tagged!r}")
            args.append(f"tag={int(tag)}")
        if "default" in f:
            if ftype.startswith("[]") or elem not in SCALAR_TYPES:
                if f["default"] != "null":
                    raise SpecError(f"{where}: arrays and structs only take a null default")
                if nullable == "none":
                    raise SpecError(f"{where}: default null on a field that is never nullable")
                args.append("default=None")
            else:
                value = _convert_default(f["default"], ftype, nullable != "none", where)
                args.append(f"default={value!r}")
        if f.get("ignorable"):
            args.append("ignorable=True")
        if flexible is not None:
            args.append(f"flexible_versions={flexible!r}")

        pad = " " * indent
        if nested is None:
            return _wrap(pad, "Field(", args, "),")
        head = _wrap(pad, "Field(", args + ["fields=("], "")
        body = self.field_lines(nested, indent + 4, f"{path}{name}.")
        return head + body + [pad + ")),"]


def _wrap(pad: str, opener: str, args: list[str], closer: str) -> list[str]:
    """One line if it fits in LINE_LIMIT, else greedy continuation lines."""
    one = pad + opener + ", ".join(args) + closer
    if len(one) <= LINE_LIMIT:
        return [one]
    cont = pad + " " * len(opener)
    lines: list[str] = []
    cur = ""
    for i, arg in enumerate(args):
        piece = arg + ("," if i < len(args) - 1 else closer)
        if not cur:
            cur = pad + opener + piece
        elif len(cur) + 1 + len(piece) > LINE_LIMIT:
            lines.append(cur)
            cur = cont + piece
        else:
            cur += " " + piece
    lines.append(cur)
    return lines


HEADER = '''\
# Generated by tools/gen_protocol.py from Kafka's JSON message schemas
# (kafka-protocol/messages/*.json). Do not edit: change the spec or the generator and rerun it.
"""Kafka protocol messages as data: the table the codec in kengine_ext._core compiles.

Versions use Kafka's notation: ``"3+"`` (3 and later), ``"0-12"``, ``"5"`` or ``"none"``.
A field without ``default`` takes its type's zero value: 0, False, ``""``, an empty array, a
struct of defaults, 16 zero bytes for a uuid, empty bytes, null records. Struct types (including
Kafka's ``commonStructs``) are resolved in place into ``fields``. A field is tagged (KIP-482) in
``tagged_versions`` under ``tag``; ``flexible_versions`` on a field overrides the message's for
that field's encoding (only the request header's client id, which stays a classic string).
``ignorable`` fields are silently dropped when encoding a version that lacks them.
"""
from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class _TypeDefault:
    """Marks a field whose default is its type's zero value."""

    def __repr__(self) -> str:
        return "TYPE_DEFAULT"


TYPE_DEFAULT = _TypeDefault()


class Field(NamedTuple):
    name: str                     # snake_case of Kafka's field name
    type: str                     # int8..int64, uint16, uint32, float64, bool, string, bytes,
                                  # records, uuid, a struct name, or "[]" + any of these
    versions: str                 # versions the field exists in
    nullable_versions: str = "none"
    tagged_versions: str = "none"
    tag: int | None = None
    default: object = TYPE_DEFAULT
    ignorable: bool = False
    flexible_versions: str | None = None  # None: the message's flexible versions
    fields: tuple[Field, ...] = ()        # the struct's fields, for struct and []struct types


class Message(NamedTuple):
    name: str
    type: str                     # "request", "response" or "header"
    api_key: int | None           # None for headers
    valid_versions: str
    flexible_versions: str
    latest_version_unstable: bool
    fields: tuple[Field, ...]


'''


def render(spec_dir: Path) -> str:
    files = sorted(spec_dir.glob("*.json"))
    if not files:
        raise SpecError(f"no *.json message schemas in {spec_dir}")
    specs = []
    for path in files:
        spec = json.loads(strip_comments(path.read_text(encoding="utf-8")))
        if spec.get("type") not in ("request", "response", "header"):
            raise SpecError(f"{path.name}: unknown message type {spec.get('type')!r}")
        specs.append((path.name, spec))
    # headers first, then by api key, request before response: the order a reader expects
    specs.sort(key=lambda s: (s[1].get("apiKey", -1), s[1]["type"] != "request", s[1]["name"]))

    out = [HEADER]
    names = []
    for filename, spec in specs:
        name = spec["name"]
        for key in ("validVersions", "flexibleVersions"):
            _parse_versions(spec[key], f"{filename}: {key}")
        const = message_constant(name)
        names.append((const, spec))
        api_key = spec.get("apiKey")
        unstable = bool(spec.get("latestVersionUnstable", False))
        out.append(f"{const} = Message(\n")
        out.append(f"    {name!r}, {spec['type']!r}, api_key={api_key!r},\n")
        out.append(f"    valid_versions={spec['validVersions']!r}, "
                   f"flexible_versions={spec['flexibleVersions']!r},\n")
        out.append(f"    latest_version_unstable={unstable!r}, fields=(\n")
        conv = _Converter(spec, filename)
        for line in conv.field_lines(spec["fields"], 8, ""):
            out.append(line + "\n")
        out.append("    ))\n\n")

    out.append("\nMESSAGES: dict[str, Message] = {m.name: m for m in (\n")
    for const, _ in names:
        out.append(f"    {const},\n")
    out.append(")}\n")
    for kind, table in (("request", "REQUESTS"), ("response", "RESPONSES")):
        out.append(f"{table}: dict[int, Message] = {{\n")
        for const, spec in names:
            if spec["type"] == kind:
                out.append(f"    {spec['apiKey']}: {const},\n")
        out.append("}\n")

    out.append("\n\nclass ApiKey(IntEnum):\n")
    out.append('    """Kafka API keys of the messages in this table."""\n\n')
    for _, spec in names:
        if spec["type"] == "request":
            api = message_constant(spec["name"][: -len("Request")])
            out.append(f"    {api} = {spec['apiKey']}\n")
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=None,
                    help="folder of Kafka's *.json message schemas "
                         "(default: $KENGINE_PROTOCOL_SPEC or spec/kafka-protocol/messages)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the output file is not what would be generated")
    args = ap.parse_args(argv)
    text = render(args.spec or default_spec_dir())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run tools/gen_protocol.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
