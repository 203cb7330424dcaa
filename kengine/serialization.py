"""The serialization context given to ``fn(value, ctx)`` serializers: ``SerializationContext``
(topic, field, headers a serializer may append to), ``MessageField``, and ``takes_context()``,
the rule that tells ``(value, ctx)`` serializers from one-argument ones.

They are defined in :mod:`kengine_ext.serialization`, beside the send path that builds the
contexts (the core imports nothing of this package); this module is their public name.
"""
from __future__ import annotations

from kengine_ext.serialization import MessageField, SerializationContext, takes_context

__all__ = ["MessageField", "SerializationContext", "takes_context"]
