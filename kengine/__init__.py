"""kengine: a Kafka producer engine for Python with a Cython hot path."""
from __future__ import annotations

from . import errors

__all__ = ["errors"]
__version__ = "0.1.0"
