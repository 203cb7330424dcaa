"""Subject name strategies: which registry subject a topic's key or value schema lives under.

Confluent's three, with their names and meanings:

* ``TopicNameStrategy`` (the default): ``<topic>-key`` / ``<topic>-value``, one schema (and its
  versions) per topic and field.
* ``RecordNameStrategy``: the record's fully-qualified name, so one record type may go to any
  topic and a topic may carry several types.
* ``TopicRecordNameStrategy``: ``<topic>-<record full name>``.

A strategy is a callable ``(topic, field, record_name) -> subject`` where field is "key" or
"value" and record_name the schema's full name (None for a schema without one).
"""
from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError

__all__ = ["STRATEGIES", "SubjectNameStrategy", "record_name_strategy", "resolve_strategy",
           "topic_name_strategy", "topic_record_name_strategy"]

SubjectNameStrategy = Callable[[str, str, "str | None"], str]


def topic_name_strategy(topic: str, field: str, record_name: str | None) -> str:
    return f"{topic}-{field}"


def _need_name(strategy: str, record_name: str | None) -> str:
    if not record_name:
        raise ValueError(f"{strategy} needs a named schema (an Avro record, a Protobuf message, "
                         f"a JSON Schema with a title); this one has no name")
    return record_name


def record_name_strategy(topic: str, field: str, record_name: str | None) -> str:
    return _need_name("RecordNameStrategy", record_name)


def topic_record_name_strategy(topic: str, field: str, record_name: str | None) -> str:
    return f"{topic}-{_need_name('TopicRecordNameStrategy', record_name)}"


STRATEGIES: dict[str, SubjectNameStrategy] = {
    "TopicNameStrategy": topic_name_strategy,
    "RecordNameStrategy": record_name_strategy,
    "TopicRecordNameStrategy": topic_record_name_strategy,
}


def resolve_strategy(value: object) -> SubjectNameStrategy:
    """A strategy from its Confluent name (short, or Java's full class name) or a callable."""
    if callable(value):
        return value
    if isinstance(value, str):
        name = value.rsplit(".", 1)[-1]
        if name in STRATEGIES:
            return STRATEGIES[name]
    raise ConfigError("subject.name.strategy", value,
                      f"one of {', '.join(STRATEGIES)}, or a callable (topic, field, "
                      f"record_name) -> subject")
