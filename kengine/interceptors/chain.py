"""InterceptorChain: runs the configured interceptors in order, with Java's rules.

* ``on_send`` runs each interceptor in order on the record the previous one returned; one that
  raises (or returns something other than a ProducerRecord) is logged with the record's topic
  and skipped: the record goes on as that interceptor received it, and the send does not fail.
* ``on_acknowledgement`` runs every interceptor once per record, delivered or failed, the
  failures before a batch included (``on_send_error``); one raising is logged and skipped.
* ``close`` closes each once.

Failures are logged (logger ``kengine.interceptors``) with their traceback the first time, and
then at most every 10 s per interceptor and method with how many happened since: a broken
interceptor must not flood the log at the producer's record rate.

Threads: ``on_send`` on user threads, ``on_acknowledgement`` on the sender thread (or the user
thread of a send that failed before reaching a batch). The chain's tuples are fixed at
construction; ``_failures`` is guarded by ``_lock`` (taken only when an interceptor raised).
"""
from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from ..errors import RecordRejectedError
from .base import FailedRecordMetadata, ProducerRecord

__all__ = ["InterceptorChain"]

_log = logging.getLogger("kengine.interceptors")
_LOG_EVERY_S = 10.0


class InterceptorChain:
    """The interceptors of one producer, in the order the settings list them."""

    def __init__(self, interceptors: Sequence[Any], client_id: str) -> None:
        self.interceptors: tuple[Any, ...] = tuple(interceptors)
        self._client_id = client_id
        #: (interceptor, its bound method) for those that have the method
        self._senders = self._bound("on_send")
        #: (interceptor, on_acknowledgement, whether it takes the record as third argument)
        self._ackers = tuple((i, fn, _takes_record(fn))
                             for i, fn in self._bound("on_acknowledgement"))
        self._batchers = self._bound("on_send_many")
        #: whether any interceptor wants outcomes: without, no callback is added per record
        self.acknowledges = bool(self._ackers)
        self._lock = threading.Lock()
        #: (id(interceptor), method) -> [failures not logged yet, monotonic s of the last log]
        self._failures: dict[tuple[int, str], list[float]] = {}

    def _bound(self, name: str) -> tuple[tuple[Any, Any], ...]:
        return tuple((i, getattr(i, name)) for i in self.interceptors
                     if callable(getattr(i, name, None)))

    def on_send(self, record: ProducerRecord) -> ProducerRecord:
        for interceptor, on_send in self._senders:
            try:
                out = on_send(record)
            except RecordRejectedError:
                raise   # a rule that cannot be applied fails the record (errors.py says why)
            except Exception as e:
                self._failed(interceptor, "on_send", record.topic, e)
                continue
            if isinstance(out, ProducerRecord):
                record = out
            else:
                self._failed(interceptor, "on_send", record.topic, TypeError(
                    f"on_send() returned {type(out).__name__}, not the ProducerRecord to send"))
        return record

    def on_acknowledgement(self, metadata: Any, error: BaseException | None,
                           record: ProducerRecord | None = None) -> None:
        for interceptor, on_ack, with_record in self._ackers:
            try:
                if with_record:
                    on_ack(metadata, error, record)
                else:
                    on_ack(metadata, error)
            except Exception as e:
                self._failed(interceptor, "on_acknowledgement", metadata.topic, e)

    def on_send_error(self, record: ProducerRecord, error: BaseException) -> None:
        """A record that failed before it reached a batch (Java's onSendError)."""
        partition = record.partition if isinstance(record.partition, int) else -1
        self.on_acknowledgement(FailedRecordMetadata(record.topic, partition), error, record)

    def on_send_many(self, records: list[ProducerRecord],
                     message_count: int | None = None) -> list[Any]:
        """The interceptors' hooks for one send_many() call: what to call with its result.
        ``message_count``: the call's record count when ``records`` are only the ones traced
        (the otel interceptor's decision in C, the chain's only interceptor then)."""
        done = []
        for interceptor, on_send_many in self._batchers:
            try:
                fn = (on_send_many(records) if message_count is None
                      else on_send_many(records, message_count=message_count))
            except Exception as e:
                self._failed(interceptor, "on_send_many", records[0].topic if records else None,
                             e)
                continue
            if fn is not None:
                done.append((interceptor, fn))
        return done

    def send_many_done(self, done: list[Any], result: Any) -> None:
        for interceptor, fn in done:
            try:
                fn(result)
            except Exception as e:
                self._failed(interceptor, "on_send_many", result.topic, e)

    def compiled_sampling(self) -> Any:
        """The TraceStamp with which send() decides OpenTelemetry's sampling in C
        (kengine/otel/fast_sampling.py), or None: only for a chain of one interceptor that
        offers it (the ``otel`` one), since skipping a record's Python path skips every
        interceptor's hooks for it."""
        if len(self.interceptors) != 1:
            return None
        offer = getattr(self.interceptors[0], "compiled_sampling", None)
        return offer() if callable(offer) else None

    def close(self) -> None:
        for interceptor in self.interceptors:
            close = getattr(interceptor, "close", None)
            if callable(close):
                try:
                    close()
                except Exception as e:
                    self._failed(interceptor, "close", None, e)

    def _failed(self, interceptor: Any, method: str, topic: str | None,
                error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._failures.get((id(interceptor), method))
            if state is None:
                self._failures[(id(interceptor), method)] = [0, now]
                first = True
            else:
                state[0] += 1
                if now - state[1] < _LOG_EVERY_S:
                    return
                first = False
                since, state[0], state[1] = state[0], 0, now
        where = f" for a record to {topic!r}" if topic is not None else ""
        if first:
            _log.warning("[%s] interceptor %r raised in %s()%s; the record goes on without "
                         "it: %s: %s", self._client_id, interceptor, method, where,
                         type(error).__name__, error, exc_info=error)
        else:
            _log.warning("[%s] interceptor %r raised in %s() %d more times in the last %.0f s, "
                         "last%s: %s: %s", self._client_id, interceptor, method, since,
                         _LOG_EVERY_S, where, type(error).__name__, error)

    def __repr__(self) -> str:
        return f"InterceptorChain({list(self.interceptors)!r})"


def _takes_record(fn: Any) -> bool:
    """on_acknowledgement(metadata, error, record) rather than Java's two arguments."""
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:   # no signature (a C callable): Java's form
        return False
    return True
