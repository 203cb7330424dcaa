"""The serialization context: what a serializer may know about the record it serializes, in
confluent-kafka's ``SerializationContext`` shape.

A serializer written as ``fn(value, ctx)`` (a second parameter that is required, or is named
``ctx``/``context``; confluent-kafka's serializers have this shape) is called with a
:class:`SerializationContext`: ``ctx.topic``, ``ctx.field`` ("key" or "value") and
``ctx.headers``, the record's headers as a list of ``(str, bytes | None)`` pairs, to which the
serializer may append (a schema id, a content type): what it adds is sent with the record. Key
first, then value, with the same context, so a value serializer sees what the key's added.

The other shapes are unchanged and cost no context: ``"bytes"``, ``"str"``, ``"json"`` (no Python
call per record), one-argument callables ``fn(value)``, and objects with Kafka's
``serialize(topic, value)``.

Defined here, beside the send path (``send_path.pyx``) that builds the contexts, so that the
core imports nothing of the Python layer; ``kengine.serialization`` is the public name.
"""
from __future__ import annotations

import inspect
from typing import Any

__all__ = ["MessageField", "SerializationContext", "takes_context"]


class MessageField:
    """The values of :attr:`SerializationContext.field` (confluent-kafka's names)."""

    KEY = "key"
    VALUE = "value"


class SerializationContext:
    """The record a serializer is called for: its topic, the field being serialized, and its
    headers (a list the serializer may append to)."""

    __slots__ = ("topic", "field", "headers")

    def __init__(self, topic: str, field: str = MessageField.VALUE,
                 headers: Any = None) -> None:
        self.topic = topic
        self.field = field
        if headers is None:
            self.headers: list[tuple[str, bytes | None]] = []
        elif isinstance(headers, dict):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)

    def headers_to_send(self) -> list[tuple[str, bytes | None]] | None:
        """The record's headers after serialization (None when there are none)."""
        return self.headers or None

    def __repr__(self) -> str:
        return (f"SerializationContext(topic={self.topic!r}, field={self.field!r}, "
                f"headers={self.headers!r})")


def takes_context(serializer: Any) -> bool:
    """Whether a callable serializer has the ``(value, ctx)`` shape (see the module's doc): a
    second positional parameter that is required or named ctx/context. A one-argument callable
    with an optional second parameter (``fn(value, encoding="utf-8")``) keeps being called with
    the value alone."""
    try:
        params = list(inspect.signature(serializer).parameters.values())
    except (TypeError, ValueError):   # builtins without a signature: one argument, as before
        return False
    positional = [p for p in params
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        return False
    second = positional[1]
    return second.default is inspect.Parameter.empty or second.name in ("ctx", "context")


#: The classes' public home (what the docs, reprs of the class and pickles name).
PUBLIC_MODULE = "kengine.serialization"
MessageField.__module__ = SerializationContext.__module__ = PUBLIC_MODULE
