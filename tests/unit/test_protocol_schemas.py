"""The committed schema table is what tools/gen_protocol.py makes of Kafka's JSON, and the
generator reads that JSON the way Kafka means it."""
from __future__ import annotations

from pathlib import Path

import pytest

from kengine_ext import schemas
from tests.support.tools import REPO, load_tool

gen = load_tool("gen_protocol")


def test_committed_table_matches_the_spec() -> None:
    spec = gen.default_spec_dir()
    assert spec.is_dir(), f"Kafka's JSON message schemas are not at {spec}"
    committed = (REPO / "kengine_ext" / "schemas.py").read_text(encoding="utf-8")
    assert gen.render(spec) == committed, \
        "kengine_ext/schemas.py is stale: run tools/gen_protocol.py"


def test_comments_are_stripped_but_not_inside_strings() -> None:
    text = '{\n  // a comment\n  "about": "see http://x//y", // trailing\n  "n": "a\\"//b"\n}'
    assert gen.strip_comments(text) == '{\n  \n  "about": "see http://x//y", \n  "n": "a\\"//b"\n}'


@pytest.mark.parametrize("name,snake", [
    ("ThrottleTimeMs", "throttle_time_ms"), ("timeoutMs", "timeout_ms"),
    ("V3AndBelowTransactionalId", "v3_and_below_transactional_id"), ("Enable2Pc", "enable2_pc"),
])
def test_snake_case(name: str, snake: str) -> None:
    assert gen.snake_case(name) == snake


def _render_one(tmp_path: Path, fields: str, common: str = "") -> str:
    (tmp_path / "TestRequest.json").write_text(
        '{"apiKey": 99, "type": "request", "name": "TestRequest", "validVersions": "0-3",'
        f' "flexibleVersions": "2+", "fields": [{fields}]'
        + (f', "commonStructs": [{common}]' if common else "") + "}")
    return gen.render(tmp_path)


def test_defaults_are_converted_to_python_values(tmp_path: Path) -> None:
    fields = [
        '{"name": "A", "type": "int32", "versions": "0+", "default": "0x7fffffff"}',
        '{"name": "B", "type": "int64", "versions": "0+", "default": -1}',
        '{"name": "C", "type": "bool", "versions": "0+", "default": "true"}',
        ('{"name": "D", "type": "string", "versions": "0+", "nullableVersions": "0+",'
         ' "default": "null"}'),
    ]
    text = _render_one(tmp_path, ", ".join(fields))
    assert "Field('a', 'int32', '0+', default=2147483647)" in text
    assert "Field('b', 'int64', '0+', default=-1)" in text
    assert "Field('c', 'bool', '0+', default=True)" in text
    assert "Field('d', 'string', '0+', nullable_versions='0+', default=None)" in text


def test_common_structs_are_resolved_in_place(tmp_path: Path) -> None:
    text = _render_one(tmp_path, '{"name": "Items", "type": "[]Item", "versions": "0+"}',
                       '{"name": "Item", "versions": "0+", "fields": ['
                       '{"name": "Id", "type": "int32", "versions": "0+"}]}')
    assert "Field('items', '[]Item', '0+', fields=(\n" in text
    assert "Field('id', 'int32', '0+')," in text


@pytest.mark.parametrize("field,problem", [
    ('{"name": "A", "type": "int32", "versions": "0+", "default": "null"}', "never nullable"),
    ('{"name": "A", "type": "[]Missing", "versions": "0+"}', "unknown struct type"),
    ('{"name": "A", "type": "int32", "versions": "0+", "tag": 0}', "tag and taggedVersions"),
    ('{"name": "A", "type": "int32", "versions": "x"}', "bad version range"),
    ('{"name": "A", "type": "S", "versions": "0+", "nullableVersions": "0+", "fields": []}',
     "nullable struct"),
])
def test_unsupported_spec_features_are_rejected(tmp_path: Path, field: str, problem: str) -> None:
    with pytest.raises(gen.SpecError, match=problem):
        _render_one(tmp_path, field)


def test_table_indexes() -> None:
    assert schemas.REQUESTS[0] is schemas.PRODUCE_REQUEST
    assert schemas.RESPONSES[18].name == "ApiVersionsResponse"
    assert schemas.MESSAGES["RequestHeader"].type == "header"
    assert {m.api_key for m in schemas.REQUESTS.values()} == {int(k) for k in schemas.ApiKey}
