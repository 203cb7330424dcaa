"""The producers of one process running ``to_kafka()`` tasks (a Dask worker, or the caller's
own process under Dask's local schedulers), and the worker plugin that closes them.

* At-least-once: one ``Producer`` per process and producer configuration, made by the first
  task that needs it and reused by every later task (and later ``to_kafka()`` calls with the
  same configuration), so its connections, metadata and batches are shared.
* Exactly-once needs one ``transactional.id`` per Dask partition (see ``partition_writer``),
  and a producer's ``transactional.id`` is fixed for its life: each such task makes its own
  producer and closes it when its transaction is done. What the tasks of a process do share
  is the ``AdminClient`` that reads the done-markers, kept here.

``KengineProducers`` is the ``distributed`` worker plugin (registered by ``to_kafka()``, once
per cluster: ``idempotent``) whose ``teardown`` closes the process's producers and admin
clients when the worker closes. Under Dask's local schedulers ``to_kafka()`` closes them
itself at the end of the call.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from ..admin import AdminClient
from ..producer import Producer

__all__ = ["KengineProducers", "ProducerPool", "process_pool"]

_log = logging.getLogger("kengine.dask")

#: the connection settings an admin client takes from a producer configuration (it refuses
#: none of the producer's settings, but must not get a transactional.id or serializers)
_NOT_FOR_ADMIN = ("transactional.id", "transactional_id", "key.serializer", "key_serializer",
                  "value.serializer", "value_serializer", "partitioner", "interceptors",
                  "interceptor.classes", "dead.letter.topic", "dead_letter_router")


class ProducerPool:
    """This process's shared producers and admin clients, by configuration key (a string the
    caller computed once from the configuration, so equal settings share). Used by the tasks
    on the worker's threads: every field is guarded by ``_lock``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._producers: dict[str, Producer] = {}     # guarded by _lock
        self._admins: dict[str, AdminClient] = {}     # guarded by _lock

    def shared_producer(self, key: str, config: Mapping[str, Any]) -> Producer:
        """The process's at-least-once producer for ``config``, made on first use."""
        with self._lock:
            producer = self._producers.get(key)
            if producer is None:
                producer = self._producers[key] = Producer(dict(config))
            return producer

    def admin(self, key: str, config: Mapping[str, Any]) -> AdminClient:
        """The process's admin client for the brokers of ``config``, made on first use."""
        with self._lock:
            admin = self._admins.get(key)
            if admin is None:
                settings = {k: v for k, v in config.items() if k not in _NOT_FOR_ADMIN}
                admin = self._admins[key] = AdminClient(settings)
            return admin

    def close(self) -> None:
        """Delivers what the shared producers still hold and closes everything."""
        with self._lock:
            producers, self._producers = list(self._producers.values()), {}
            admins, self._admins = list(self._admins.values()), {}
        for producer in producers:
            try:
                producer.close()
            except Exception as exc:   # one failing close must not keep the others open
                _log.warning("closing a kengine.dask producer failed: %s", exc)
        for admin in admins:
            admin.close()


_POOL = ProducerPool()


def process_pool() -> ProducerPool:
    """The one pool of this process."""
    return _POOL


def _worker_plugin_base() -> type:
    try:
        from distributed.diagnostics.plugin import WorkerPlugin
    except ImportError:   # local schedulers only: no worker will ever load the plugin
        return object
    return WorkerPlugin


class KengineProducers(_worker_plugin_base()):  # type: ignore[misc]
    """Closes a worker's kengine producers when the worker closes."""

    name = "kengine-producers"
    #: registering it again (every to_kafka() call does) keeps the one already there
    idempotent = True

    def setup(self, worker: Any) -> None:
        pass   # the pool is made by the first task that needs it

    def teardown(self, worker: Any) -> None:
        process_pool().close()
