"""The broker error classes in kengine/errors.py are what tools/gen_errors.py makes of Kafka's
errors.tsv (spec/kafka-protocol), and they classify errors as the table says."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from kengine import errors

REPO = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_errors", REPO / "tools" / "gen_errors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


gen = _load_generator()
ROWS = gen.read_rows()


def test_committed_table_matches_errors_tsv() -> None:
    committed = (REPO / "kengine" / "errors.py").read_text(encoding="utf-8")
    assert gen.rewrite(committed, ROWS) == committed, \
        "kengine/errors.py is stale: run tools/gen_errors.py"


def test_every_code_of_the_table_has_a_class_with_its_name_and_kind() -> None:
    assert len(ROWS) > 100
    for row in ROWS:
        cls = errors.BROKER_ERRORS[int(row["code"])]
        assert (cls.name, cls.retriable) == (row["name"], row["kind"] == "retriable"), row
