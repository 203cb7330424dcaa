"""How ``kengine produce`` turns a line of input into a record: the rules and defaults of
Kafka's ``LineMessageReader`` (the console producer's reader).

Reader properties (``--reader-property name=value``, or ``--reader-config FILE``):

=====================  =========  ==============================================================
``parse.key``          false      the line holds a key before ``key.separator``
``key.separator``      ``\\t``     between key and value
``parse.headers``      false      the line starts with headers, ended by ``headers.delimiter``
``headers.delimiter``  ``\\t``     between the headers and the key (or value)
``headers.separator``  ``,``      between headers (a regular expression, as in Java)
``headers.key.separator``  ``:``  between a header's key and value
``null.marker``        (none)     a key, value or header value equal to it becomes null
``ignore.error``       false      a missing separator is not an error: no headers / no key
=====================  =========  ==============================================================

So ``h1:v1,h2:v2<TAB>key<TAB>value`` with both ``parse.*`` set. Lines are bytes: keys, values
and header values pass through unchanged (Java decodes and re-encodes them as UTF-8); header
keys must be UTF-8. Lines end at ``\\n``; a ``\\r`` before it is dropped.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["LineFormatError", "LineReader", "ParsedLine"]

Header = tuple[str, "bytes | None"]


class LineFormatError(ValueError):
    """A line does not have the shape the reader properties describe."""

    def __init__(self, line_number: int, message: str) -> None:
        self.line_number = line_number
        super().__init__(f"line {line_number}: {message}")


@dataclass(frozen=True)
class ParsedLine:
    key: bytes | None
    value: bytes | None
    headers: list[Header] | None


def _flag(props: Mapping[str, str], name: str) -> bool:
    # Java: props.get(name).toString().trim().equalsIgnoreCase("true")
    return str(props.get(name, "false")).strip().lower() == "true"


class LineReader:
    """Parses lines with LineMessageReader's rules; the constructor checks the properties as
    LineMessageReader.configure() does (ConfigError for separators that clash)."""

    def __init__(self, props: Mapping[str, str]) -> None:
        self.parse_key = _flag(props, "parse.key")
        self.parse_headers = _flag(props, "parse.headers")
        self.ignore_error = _flag(props, "ignore.error")
        key_separator = props.get("key.separator", "\t")
        headers_delimiter = props.get("headers.delimiter", "\t")
        headers_separator = props.get("headers.separator", ",")
        headers_key_separator = props.get("headers.key.separator", ":")
        null_marker = props.get("null.marker")
        for a, b in (("headers.delimiter", "headers.separator"),
                     ("headers.delimiter", "headers.key.separator"),
                     ("headers.separator", "headers.key.separator")):
            if props.get(a, _DEFAULTS[a]) == props.get(b, _DEFAULTS[b]):
                raise ConfigError(a, props.get(a, _DEFAULTS[a]), f"different from {b}")
        if null_marker is not None:
            for name, value in (("key.separator", key_separator),
                                ("headers.separator", headers_separator),
                                ("headers.delimiter", headers_delimiter),
                                ("headers.key.separator", headers_key_separator)):
                if value == null_marker:
                    raise ConfigError("null.marker", null_marker, f"different from {name}")
        try:
            self._headers_split = re.compile(headers_separator.encode())
        except re.error as e:
            raise ConfigError("headers.separator", headers_separator,
                              f"a regular expression ({e})") from None
        self._key_separator = key_separator.encode()
        self._headers_delimiter = headers_delimiter.encode()
        self._headers_key_separator = headers_key_separator.encode()
        self._null = None if null_marker is None else null_marker.encode()

    def parse(self, line: bytes, line_number: int) -> ParsedLine:
        """The record on ``line`` (without its line ending); raises LineFormatError."""
        headers_text = self._field(self.parse_headers, line, 0, self._headers_delimiter,
                                   "headers delimiter", line_number)
        start = 0 if headers_text is None else len(headers_text) + len(self._headers_delimiter)
        key = self._field(self.parse_key, line, start, self._key_separator, "key separator",
                          line_number)
        if key is not None:
            start += len(key) + len(self._key_separator)
        value: bytes | None = line[start:]
        null = self._null
        headers = None
        if headers_text is not None and headers_text != null:
            headers = [self._header(pair, line_number) for pair in self._split(headers_text)]
        return ParsedLine(None if key == null else key, None if value == null else value,
                          headers)

    def _field(self, enabled: bool, line: bytes, start: int, separator: bytes, what: str,
               line_number: int) -> bytes | None:
        if not enabled:
            return None
        end = line.find(separator, start)
        if end < 0:
            if self.ignore_error:
                return None
            raise LineFormatError(line_number, f"no {what} found in {_show(line)}")
        return line[start:end]

    def _split(self, headers: bytes) -> list[bytes]:
        # Java's Pattern.split: no match gives the whole input; trailing empty parts are dropped
        parts = self._headers_split.split(headers)
        if len(parts) > 1:
            while parts and not parts[-1]:
                parts.pop()
        return parts

    def _header(self, pair: bytes, line_number: int) -> Header:
        i = pair.find(self._headers_key_separator)
        if i < 0:
            if self.ignore_error:
                return self._header_key(pair, line_number), None
            raise LineFormatError(line_number,
                                  f"no header key separator found in pair {_show(pair)}")
        key = pair[:i]
        if key == self._null:
            # not subject to ignore.error in Java either: a header key cannot be null
            raise LineFormatError(line_number, f"header key equals the null marker "
                                               f"{_show(key)}; header keys cannot be null")
        value = pair[i + len(self._headers_key_separator):]
        return self._header_key(key, line_number), None if value == self._null else value

    @staticmethod
    def _header_key(key: bytes, line_number: int) -> str:
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LineFormatError(line_number, f"header key {_show(key)} is not UTF-8 ({e.reason}"
                                               f" at byte {e.start})") from None


_DEFAULTS = {"headers.delimiter": "\t", "headers.separator": ",", "headers.key.separator": ":"}


def _show(text: bytes, limit: int = 200) -> str:
    shown = repr(text[:limit])[1:]    # b'...' -> '...'
    return shown + ("..." if len(text) > limit else "")
