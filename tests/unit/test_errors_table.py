"""The broker error classes in kengine_ext/errors.py (public as kengine.errors) are what
tools/gen_errors.py makes of Kafka's errors.tsv (spec/kafka-protocol), and they classify errors
as the table says."""
from __future__ import annotations

from kengine import errors
from tests.support.tools import REPO, load_tool

gen = load_tool("gen_errors")
ROWS = gen.read_rows()


def test_committed_table_matches_errors_tsv() -> None:
    committed = (REPO / "kengine_ext" / "errors.py").read_text(encoding="utf-8")
    assert gen.rewrite(committed, ROWS) == committed, \
        "kengine_ext/errors.py is stale: run tools/gen_errors.py"


def test_every_code_of_the_table_has_a_class_with_its_name_and_kind() -> None:
    assert len(ROWS) > 100
    for row in ROWS:
        cls = errors.BROKER_ERRORS[int(row["code"])]
        assert (cls.name, cls.retriable) == (row["name"], row["kind"] == "retriable"), row
