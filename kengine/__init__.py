"""kengine: a Kafka producer engine for Python with a Cython hot path."""
from __future__ import annotations

from kengine_ext import BulkFuture, BulkResult, DeliveryFuture, RecordMetadata

from . import errors
from .producer import Producer

__all__ = ["Producer", "DeliveryFuture", "BulkFuture", "BulkResult", "RecordMetadata", "errors"]
__version__ = "0.1.0"
