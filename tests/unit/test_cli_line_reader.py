"""kengine produce's line parsing: Kafka's LineMessageReader rules and defaults."""
from __future__ import annotations

import pytest

from kengine.cli.line_reader import LineFormatError, LineReader, ParsedLine
from kengine.errors import ConfigError


def parse(line: bytes, **props: str) -> ParsedLine:
    return LineReader({k.replace("_", "."): v for k, v in props.items()}).parse(line, 7)


def test_by_default_the_whole_line_is_the_value() -> None:
    assert parse(b"a\tb:c,d") == ParsedLine(None, b"a\tb:c,d", None)
    assert parse(b"") == ParsedLine(None, b"", None)


def test_key_before_the_default_tab_separator_and_only_the_first_one() -> None:
    assert parse(b"k\tv\tw", parse_key="true") == ParsedLine(b"k", b"v\tw", None)
    assert parse(b"\tv", parse_key="TRUE ") == ParsedLine(b"", b"v", None)


def test_custom_multi_character_key_separator() -> None:
    assert parse(b"user-1::{\"a\": 1}", parse_key="true", key_separator="::") == \
        ParsedLine(b"user-1", b'{"a": 1}', None)


def test_missing_key_separator_is_an_error_naming_the_line() -> None:
    with pytest.raises(LineFormatError, match=r"line 7: no key separator found in 'novalue'") \
            as info:
        parse(b"novalue", parse_key="true", key_separator=":")
    assert info.value.line_number == 7


def test_ignore_error_makes_the_whole_line_the_value() -> None:
    assert parse(b"novalue", parse_key="true", key_separator=":", ignore_error="true") == \
        ParsedLine(None, b"novalue", None)


def test_headers_key_and_value() -> None:
    line = b"h1:v1,h2:v2,h1:again\tkey\tvalue"
    assert parse(line, parse_key="true", parse_headers="true") == ParsedLine(
        b"key", b"value", [("h1", b"v1"), ("h2", b"v2"), ("h1", b"again")])


def test_headers_without_key_and_header_value_with_separator_chars() -> None:
    # only the first headers.key.separator splits a header
    assert parse(b"url:http://x\tv", parse_headers="true") == ParsedLine(
        None, b"v", [("url", b"http://x")])


def test_custom_header_separators() -> None:
    assert parse(b"a=1;b=2|k|v", parse_key="true", parse_headers="true",
                 headers_delimiter="|", headers_separator=";", headers_key_separator="=",
                 key_separator="|") == ParsedLine(b"k", b"v", [("a", b"1"), ("b", b"2")])


def test_headers_separator_is_a_regular_expression_and_trailing_empties_go() -> None:
    assert parse(b"a:1;;b:2;;\tv", parse_headers="true", headers_separator=";+") == \
        ParsedLine(None, b"v", [("a", b"1"), ("b", b"2")])


def test_empty_headers_section_is_one_bad_pair() -> None:
    with pytest.raises(LineFormatError, match="no header key separator found in pair ''"):
        parse(b"\tv", parse_headers="true")


def test_header_without_key_separator_is_an_error_or_a_null_value() -> None:
    with pytest.raises(LineFormatError, match="no header key separator found in pair 'h'"):
        parse(b"h\tv", parse_headers="true")
    assert parse(b"h\tv", parse_headers="true", ignore_error="true") == \
        ParsedLine(None, b"v", [("h", None)])


def test_missing_headers_delimiter() -> None:
    with pytest.raises(LineFormatError, match="no headers delimiter found"):
        parse(b"h:1", parse_headers="true")
    assert parse(b"h:1", parse_headers="true", ignore_error="true") == \
        ParsedLine(None, b"h:1", None)


def test_null_marker_for_key_value_header_value_and_all_headers() -> None:
    props = {"parse_key": "true", "parse_headers": "true", "null_marker": "<null>"}
    assert parse(b"h:<null>\t<null>\t<null>", **props) == \
        ParsedLine(None, None, [("h", None)])
    assert parse(b"<null>\tk\tv", **props) == ParsedLine(b"k", b"v", None)
    # only whole fields match the marker
    assert parse(b"h:x<null>\tk<null>\t<null>v", **props) == \
        ParsedLine(b"k<null>", b"<null>v", [("h", b"x<null>")])


def test_header_key_equal_to_the_null_marker_is_always_an_error() -> None:
    with pytest.raises(LineFormatError, match="header keys cannot be null"):
        parse(b"N:v\tvalue", parse_headers="true", null_marker="N", ignore_error="true")


def test_bytes_pass_through_but_header_keys_must_be_utf8() -> None:
    assert parse(b"\xff\xfe\t\x00\x80", parse_key="true") == ParsedLine(b"\xff\xfe", b"\x00\x80",
                                                                        None)
    assert parse("ключ:значение\tv".encode(), parse_headers="true") == ParsedLine(
        None, b"v", [("ключ", "значение".encode())])
    with pytest.raises(LineFormatError, match="not UTF-8"):
        parse(b"\xff:v\tv", parse_headers="true")


@pytest.mark.parametrize("props,message", [
    ({"headers.delimiter": ","}, "headers.delimiter"),
    ({"headers.delimiter": ":"}, "headers.delimiter"),
    ({"headers.separator": ":"}, "headers.separator"),
    ({"null.marker": "\t"}, "null.marker"),
    ({"null.marker": ",", "key.separator": "|"}, "null.marker"),
    ({"headers.separator": "("}, "regular expression"),
])
def test_clashing_separators_are_configuration_errors(props: dict[str, str],
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LineReader(props)
