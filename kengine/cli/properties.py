"""Settings for the command-line tools as Kafka's own tools take them: ``.properties`` files
(``--producer.config``, ``--reader-config``, ``--command-config``) in the format of Java's
``Properties.load``, and ``key=value`` arguments (``--producer-property``, ``--property``,
``--producer-props``)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError

__all__ = ["load_properties", "parse_assignments", "parse_properties", "producer_settings"]

# Settings Kafka's tools write into their producer configuration that kengine's tools fix
# themselves: records are bytes, and serializers named as Java classes mean nothing here.
_TOOL_OWNED = frozenset({"key.serializer", "value.serializer"})

_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_HEX = frozenset("0123456789abcdefABCDEF")


def load_properties(path: str | os.PathLike[str]) -> dict[str, str]:
    """Reads a Java ``.properties`` file (ISO-8859-1 in Java; UTF-8 here, which covers ASCII
    files and ``\\uXXXX`` escapes alike). Raises ConfigError naming the file when it cannot be
    read."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("config file", os.fspath(path), f"a readable properties file ({e})") \
            from None
    return parse_properties(text)


def parse_properties(text: str) -> dict[str, str]:
    """Java's ``Properties.load`` rules: ``#`` and ``!`` comment lines; ``key=value``,
    ``key: value`` or ``key value``; a line ending in an odd number of backslashes continues
    on the next one (whose leading blanks are dropped); ``\\t \\n \\r \\f \\uXXXX`` escapes,
    and a backslash before any other character keeps that character."""
    out: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]    # a continuation at the end of the file continues into nothing
        key, value = _split_entry(line)
        out[key] = value
    return out


def _continues(line: str) -> bool:
    backslashes = len(line) - len(line.rstrip("\\"))
    return backslashes % 2 == 1


def _split_entry(line: str) -> tuple[str, str]:
    # the key ends at the first unescaped '=', ':' or blank
    pos, n = 0, len(line)
    while pos < n:
        c = line[pos]
        if c == "\\":
            pos += 2
            continue
        if c in "=: \t\f":
            break
        pos += 1
    key = line[:min(pos, n)]
    rest = line[pos:].lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\" or i + 1 == n:
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "u":
            digits = text[i + 2:i + 6]
            if len(digits) != 4 or any(c not in _HEX for c in digits):
                raise ConfigError("properties", text, f"a valid \\uXXXX escape, not \\u{digits}")
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


def parse_assignments(items: Iterable[str], option: str) -> dict[str, str]:
    """``key=value`` arguments (split at the first ``=``; the value may be empty), as Kafka's
    ``CommandLineUtils.parseKeyValueArgs`` does. Raises ConfigError naming ``option``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(option, item, "KEY=VALUE")
        out[key.strip()] = value
    return out


def producer_settings(props: Mapping[str, Any]) -> dict[str, Any]:
    """Producer settings from tool properties, without the serializer classes Kafka's tools
    write (kengine's tools send bytes). Other names go to the Producer as they are; an unknown
    one fails there with the closest known name."""
    return {key: value for key, value in props.items() if key not in _TOOL_OWNED}
