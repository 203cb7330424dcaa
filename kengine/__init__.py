"""kengine: a Kafka producer engine for Python with a Cython hot path.

Public names are resolved on first use: the compiled core imports ``kengine.errors`` while it
initialises, so this package must not import the core at import time.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from kengine_ext import BulkFuture, BulkResult, DeliveryFuture, RecordMetadata

    from .producer import Producer
    from .transactions import ConsumerGroupMetadata

__all__ = ["Producer", "ConsumerGroupMetadata", "DeliveryFuture", "BulkFuture", "BulkResult",
           "RecordMetadata", "errors"]
__version__ = "0.1.0"

_LAZY = {
    "Producer": ("kengine.producer", "Producer"),
    "ConsumerGroupMetadata": ("kengine.transactions", "ConsumerGroupMetadata"),
    "DeliveryFuture": ("kengine_ext", "DeliveryFuture"),
    "BulkFuture": ("kengine_ext", "BulkFuture"),
    "BulkResult": ("kengine_ext", "BulkResult"),
    "RecordMetadata": ("kengine_ext", "RecordMetadata"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'kengine' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
