"""The public Producer exposes the documented API and nothing else: no method of its parts
(the accumulator's drain(), seal(), complete()... would corrupt a producer if called)."""
from __future__ import annotations

import re
from pathlib import Path

from kengine import Producer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")

#: Everything README.md documents on a producer.
DOCUMENTED = {
    "send", "send_many", "send_arrow", "flush", "purge", "close", "partitions_for", "metrics",
    "config",
    "dead_letters", "init_transactions", "begin_transaction", "send_offsets_to_transaction",
    "commit_transaction", "abort_transaction", "transaction",
}


def test_every_name_of_the_list_is_in_the_readme():
    for name in DOCUMENTED:
        assert re.search(rf"(`|producer\.){name}\b", README), name


def test_a_producer_has_no_public_attribute_but_the_documented_ones():
    with Producer(bootstrap_servers="127.0.0.1:1", client_id="public-api") as p:
        public = {name for name in dir(p) if not name.startswith("_")}
    assert public == DOCUMENTED
