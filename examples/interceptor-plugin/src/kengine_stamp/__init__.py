"""An example interceptor plugin: a ``stamp`` header on every record, outcomes counted."""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from kengine.interceptors import ProducerRecord

__all__ = ["StampInterceptor"]


class StampInterceptor:
    """Adds ``("stamp", client.id)`` to every record; counts delivered and failed records."""

    def __init__(self) -> None:
        self.stamp = b""
        self.delivered = 0
        self.failed = 0
        self._lock = threading.Lock()   # acknowledgements come from the sender thread

    def configure(self, settings: Mapping[str, Any]) -> None:
        self.stamp = str(settings.get("client.id", "")).encode()

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        record.headers.append(("stamp", self.stamp))
        return record

    def on_acknowledgement(self, metadata: Any, error: BaseException | None) -> None:
        with self._lock:
            if error is None:
                self.delivered += 1
            else:
                self.failed += 1
