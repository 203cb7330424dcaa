"""Regenerates the broker error table in kengine_ext/errors.py from Kafka's errors.tsv.

    python tools/gen_errors.py [path/to/errors.tsv]

The table is the block between the BEGIN/END markers of kengine_ext/errors.py (re-exported as
kengine.errors); everything else in that file is written by hand. Extra base classes (metadata
refresh, authorization, ...) come from the small maps below, which follow how Kafka's Java
client groups its exceptions.
"""
from __future__ import annotations

import csv
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_TSV = ROOT / "spec" / "kafka-protocol" / "errors.tsv"
TARGET = ROOT / "kengine_ext" / "errors.py"
BEGIN = "# BEGIN GENERATED BROKER ERRORS (tools/gen_errors.py)"
END = "# END GENERATED BROKER ERRORS"

# Codes after which the client must refresh metadata before retrying (Java's
# InvalidMetadataException family).
INVALID_METADATA = {
    "UNKNOWN_TOPIC_OR_PARTITION", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER",
    "KAFKA_STORAGE_ERROR", "FENCED_LEADER_EPOCH", "UNKNOWN_LEADER_EPOCH", "UNKNOWN_TOPIC_ID",
    "INCONSISTENT_TOPIC_ID", "REPLICA_NOT_AVAILABLE", "NOT_CONTROLLER",
}
EXTRA_BASES = {
    "TOPIC_AUTHORIZATION_FAILED": "AuthorizationError",
    "GROUP_AUTHORIZATION_FAILED": "AuthorizationError",
    "CLUSTER_AUTHORIZATION_FAILED": "AuthorizationError",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED": "AuthorizationError",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED": "AuthorizationError",
    "SASL_AUTHENTICATION_FAILED": "AuthenticationError",
    "UNSUPPORTED_SASL_MECHANISM": "AuthenticationError",
    "ILLEGAL_SASL_STATE": "AuthenticationError",
    "REQUEST_TIMED_OUT": "KafkaTimeoutError",
}


def class_name(name: str) -> str:
    for suffix in ("_EXCEPTION", "_ERROR"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return "".join(part.capitalize() for part in name.split("_")) + "Error"


def render(rows: list[dict[str, str]]) -> str:
    out = [BEGIN]
    names = []
    for row in rows:
        code, name = int(row["code"]), row["name"]
        cls = class_name(name)
        names.append((code, cls))
        bases = ["BrokerError"]
        if name in EXTRA_BASES:
            bases.append(EXTRA_BASES[name])
        retriable = row["kind"] == "retriable"
        message = row["message"].replace("\\", "\\\\").replace('"', '\\"')
        out.extend(["", ""])
        out.append(f"class {cls}({', '.join(bases)}):")
        out.append(f"    code, name, retriable = {code}, \"{name}\", {retriable}")
        if name in INVALID_METADATA:
            out.append("    invalid_metadata = True")
        out.append(f"    default_message = \"{message}\"")
    out.append("")
    out.append("")
    out.append("#: Every broker error class by its code.")
    out.append("BROKER_ERRORS: dict[int, type[BrokerError]] = {")
    for code, cls in names:
        out.append(f"    {code}: {cls},")
    out.append("}")
    out.append("__all__ += [")
    for _, cls in names:
        out.append(f"    \"{cls}\",")
    out.append("]")
    out.append(END)
    return "\n".join(out)


def read_rows(tsv: pathlib.Path = DEFAULT_TSV) -> list[dict[str, str]]:
    """The error codes of ``tsv`` except 0 (NONE)."""
    with tsv.open(newline="") as f:
        return [r for r in csv.DictReader(f, delimiter="\t") if int(r["code"]) != 0]


def rewrite(text: str, rows: list[dict[str, str]]) -> str:
    """``text`` (kengine_ext/errors.py) with its generated block replaced by the table of rows."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + render(rows) + tail


def main() -> None:
    rows = read_rows(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_TSV)
    TARGET.write_text(rewrite(TARGET.read_text(), rows))
    print(f"wrote {len(rows)} broker errors into {TARGET.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
