"""kengine: a Kafka producer engine for Python with a Cython hot path.

The compiled core (``kengine_ext``) imports nothing of this package, so the public names are
plain imports. Importing the package imports every module that declares settings (TLS, SASL,
the partitioners), so kengine.config's table is complete before anything reads it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kengine_ext import BulkFuture, BulkResult, DeliveryFuture, RecordMetadata

from . import errors, interceptors, partitioners, sasl, security  # noqa: F401  (settings)
from .producer import Producer
from .transactions import ConsumerGroupMetadata
from .version import __version__ as __version__

if TYPE_CHECKING:
    from .aio import AIOProducer

__all__ = ["Producer", "AIOProducer", "ConsumerGroupMetadata", "DeliveryFuture", "BulkFuture",
           "BulkResult", "RecordMetadata", "errors"]


def __getattr__(name: str) -> Any:
    # AIOProducer imports asyncio: only programs that use it pay for that import
    if name == "AIOProducer":
        from .aio import AIOProducer

        globals()[name] = AIOProducer
        return AIOProducer
    raise AttributeError(f"module 'kengine' has no attribute {name!r}")
