"""AIOProducer: kengine's producer for asyncio programs, on the same core and sender thread.

``await send()`` is the synchronous ``send()`` of the Cython core plus what the event loop
needs instead of blocking. ``send()`` is compiled (``kengine_ext.AsyncSendMethods``): a record
that need not wait is appended in the call, which returns an already finished awaitable; one
that must wait gets ``_send_later()``, the coroutine below. What it may wait for:

* buffer.memory used up: the core raises BufferFullError instead of waiting, and the send
  waits on the loop in a FIFO (``MemoryGate``) for the sender thread to release memory;
* a topic whose partitions are not known yet: the metadata wait (and any other call that
  blocks on the network: transactions, ``close()``) runs on a worker thread of the loop's
  default executor while the loop goes on;
* serializers with a ``prepare(topic)`` method (``kengine.schema_registry``'s, which ask a
  Schema Registry for a topic's schema id once): the first record to each topic has it run on
  a worker thread, so the loop never waits for the registry;
* deliveries: futures are the core's ``DeliveryFuture`` / ``BulkFuture``, awaitable through
  ``kengine_ext.loop_bridge`` (one hand-off per completed batch, not per record), and
  ``on_delivery`` callbacks run on the loop, in completion order.

The producer belongs to the event loop it is first used on; using it from another one raises
IllegalStateError.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from kengine_ext import AsyncSendMethods, DeliveryFuture, arrow_input
from kengine_ext.loop_bridge import LoopBridge, bridge_for

from ..errors import (
    BufferFullError,
    IllegalStateError,
    KafkaError,
    KafkaTimeoutError,
    SerializationError,
    TransactionAbortableError,
)
from ..metadata import PartitionInfo
from ..producer import Producer
from ..transactions import ConsumerGroupMetadata, TxnState
from .backpressure import MemoryGate
from .bulk import ResumedBulkFuture

__all__ = ["AIOProducer"]

_log = logging.getLogger("kengine.aio")

DeliveryCallback = Callable[[KafkaError | None, Any], None]


class _MetadataPending(Exception):
    """The send needs metadata that is not here yet: wait for it off the loop, then retry."""


class _SerializersPending(Exception):
    """A serializer must ask its registry about the topic first: do that off the loop, then
    retry."""


#: what an append on the loop raises when the send must wait (memory, metadata, a
#: serializer's prepare()) and try again: the compiled send() and _send_later() both use it
_WAIT_AND_RETRY = (BufferFullError, _MetadataPending, _SerializersPending)


class _LoopProducer(Producer):
    """The synchronous producer underneath, told which thread is the event loop's: there the
    up-calls that would block (metadata waits) raise instead, and send_many()'s refusals for
    want of memory are not refusals (the asyncio layer sends those records again)."""

    _loop_thread: int | None = None
    _intercepts_sends = False   # AIOProducer runs them, once per record (aio/intercepted.py)

    def _await_metadata(self, topic: str, partition: int | None = None) -> Any:
        if threading.get_ident() == self._loop_thread:
            raise _MetadataPending(topic, partition)
        return super()._await_metadata(topic, partition)

    def _records_refused(self, topic: str, count: int, first_index: int,
                         first_error: KafkaError) -> None:
        if threading.get_ident() != self._loop_thread:
            super()._records_refused(topic, count, first_index, first_error)
        # on the loop AIOProducer.send_many reports the refusals it does not retry


class _Unbound:
    """The gate of a producer not bound to a loop yet: every send takes the slow path, which
    binds it."""
    idle = False


_UNBOUND: Any = _Unbound()


class AIOProducer(AsyncSendMethods):
    """A Kafka producer for asyncio: the settings, partitioners, idempotence and transactions
    of ``kengine.Producer`` (same settings table), with coroutines instead of blocking calls.

    ``async with AIOProducer(bootstrap_servers="host:9092") as p:``, then
    ``fut = await p.send(topic, value, key=...)`` (returns once the record is in a batch;
    ``await fut`` gives its RecordMetadata or raises its error), ``await p.send_and_wait(...)``,
    ``await p.send_many(...)`` (``await`` the result for a BulkResult), ``await p.flush()``,
    ``async with p.transaction():``. ``on_delivery(error, metadata)`` callbacks run on the
    event loop. When buffer.memory is full, ``await send()`` waits without blocking the loop
    and raises KafkaTimeoutError after max.block.ms.
    """

    def __init__(self, config: Mapping[str, Any] | None = None, **settings: Any) -> None:
        self._producer = _LoopProducer(config, **settings)
        chain = self._producer._interceptors
        if chain is not None:
            from ..interceptors.intercepted import intercepted_class
            from .intercepted import InterceptedAIOSends, TracedAIOSends
            # a subclass, so that an AIOProducer without interceptors pays nothing per record;
            # with the otel interceptor alone, send() may decide sampling in C
            stamp = chain.compiled_sampling()
            self.__class__ = intercepted_class(
                type(self), InterceptedAIOSends if stamp is None else TracedAIOSends)
            if stamp is not None:
                self._send_sampled = self._traced_send   # type: ignore[attr-defined]
                self._trace = stamp
        self.config = self._producer.config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: MemoryGate = _UNBOUND
        self._bridge: LoopBridge | None = None
        self._send = self._producer.send
        self._send_many = self._producer.send_many
        # send() (AsyncSendMethods, compiled) appends through the inner producer's send path
        # when it need not wait; these make it take the waiting path instead
        self._send_path = self._producer._send_path
        self._retry_errors = _WAIT_AND_RETRY
        # Serializers that may block on a topic's first record (a registry lookup) say so with
        # prepare(topic); then every send checks the topic was prepared (a set lookup: the
        # producers without such serializers pay nothing).
        self._preparers = tuple(
            prepare for prepare in (getattr(self.config[name], "prepare", None)
                                    for name in ("key.serializer", "value.serializer")
                                    if not isinstance(self.config[name], str))
            if callable(prepare))
        #: loop thread: topics whose serializers are ready; None when no serializer needs
        #: preparing (then no send looks)
        self._prepared: set[str] | None = set() if self._preparers else None
        if self._preparers:
            self._send, self._send_many = self._checked(self._send, self._send_many)
        self._closed = False

    # ------------------------------------------------------------------ the event loop

    def _bind(self) -> asyncio.AbstractEventLoop:
        """The producer's loop, which must be the running one; the first call binds it."""
        # every call that waits comes here; in a fork() child the executor's and the
        # sender's threads are the parent's: fail before waiting on them
        self._producer._check_process("an AIOProducer call")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise IllegalStateError(
                "AIOProducer's methods are coroutines: await them in a coroutine running on "
                "an asyncio event loop (kengine.Producer is the producer for threads)") from None
        if self._loop is loop:
            return loop
        if self._loop is not None:
            if self._loop.is_closed():
                raise IllegalStateError(
                    "the event loop this AIOProducer was started on is closed: create a new "
                    "AIOProducer on the running loop")
            raise IllegalStateError(
                f"this AIOProducer belongs to the event loop it was started on "
                f"({self._loop!r}) and was used from another one ({loop!r}): create one "
                f"producer per event loop")
        self._loop = loop
        self._producer._loop_thread = threading.get_ident()
        self._gate = MemoryGate(self._producer._memory, loop, self.config["max.block.ms"])
        self._bridge = bridge_for(loop)
        return loop

    def _checked(self, send: Callable[..., Any],
                 send_many: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """send and send_many, refusing (before anything is serialized) a topic whose
        serializers were not prepared yet."""
        prepared = self._prepared
        assert prepared is not None

        def checked_send(topic: str, *args: Any) -> Any:
            if topic not in prepared:
                raise _SerializersPending(topic)
            return send(topic, *args)

        def checked_send_many(topic: str, *args: Any) -> Any:
            if topic not in prepared:
                raise _SerializersPending(topic)
            return send_many(topic, *args)
        return checked_send, checked_send_many

    async def _prepare_serializers(self, topic: str) -> bool:
        """Runs the serializers' prepare(topic) on a worker thread (a registry lookup may wait
        up to max.block.ms); False when one failed: then the send itself raises or refuses its
        records with that error, which the serializer remembers (so it does not block)."""
        def prepare() -> None:
            for fn in self._preparers:
                fn(topic)
        try:
            await self._off_loop(prepare)
        except SerializationError:
            return False
        assert self._prepared is not None
        self._prepared.add(topic)
        return True

    async def start(self) -> None:
        """Binds the producer to the running event loop (the sender thread runs already)."""
        self._bind()

    async def __aenter__(self) -> AIOProducer:
        self._bind()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) on a worker thread: for calls that block on the network."""
        return await self._bind().run_in_executor(None, fn, *args)

    # ------------------------------------------------------------------ sending

    # send() is AsyncSendMethods.send (kengine_ext/aio_send.pyx): when the record can go into
    # a batch at once it appends in C and returns an awaitable that is already finished;
    # otherwise it returns this coroutine, which waits on the loop and appends when awaited.

    async def _send_later(self, topic: str, value: Any, key: Any, headers: Any,
                          partition: int | None, timestamp_ms: int | None,
                          on_delivery: DeliveryCallback | None,
                          yield_first: bool) -> DeliveryFuture:
        if yield_first:   # before appending: a send cancelled here sent nothing
            await asyncio.sleep(0)
        fut: DeliveryFuture | None = None
        if self._gate.idle:
            try:
                fut = self._send(topic, value, key, headers, partition, timestamp_ms)
            except _WAIT_AND_RETRY:
                pass
        if fut is None:   # wait for memory (behind those already waiting) or metadata
            fut = await self._send_slow(topic, value, key, headers, partition, timestamp_ms)
        if on_delivery is not None:
            self._on_loop(fut, on_delivery)
        return fut

    async def _send_slow(self, topic: str, value: Any, key: Any, headers: Any,
                         partition: int | None, timestamp_ms: int | None) -> DeliveryFuture:
        self._bind()
        send = self._send

        def attempt() -> DeliveryFuture:
            return send(topic, value, key, headers, partition, timestamp_ms)
        while True:
            try:
                return await self._gate.call(attempt, topic)
            except _MetadataPending:
                await self._await_metadata(topic, partition)
            except _SerializersPending:
                if not await self._prepare_serializers(topic):
                    send = self._producer.send   # it raises the serializer's error

    async def _await_metadata(self, topic: str, partition: int | None) -> None:
        await self._off_loop(Producer._await_metadata, self._producer, topic, partition)

    def _on_loop(self, fut: DeliveryFuture, callback: DeliveryCallback) -> None:
        bridge = self._bridge
        assert bridge is not None

        def fire() -> None:
            batch = fut._pending_batch()
            if batch is not None:   # the batch was split: wait for the piece with the record
                bridge.call_when_done(batch, fire)
                return
            err = fut.exception(0)
            callback(err, None if err is not None else fut.result(0))

        batch = fut._pending_batch()
        if batch is None:
            self._loop.call_soon(fire)   # type: ignore[union-attr]
        else:
            bridge.call_when_done(batch, fire)

    async def send_and_wait(self, topic: str, value: Any = None, key: Any = None,
                            headers: Any = None, partition: int | None = None,
                            timestamp_ms: int | None = None) -> Any:
        """Sends one record and waits for its RecordMetadata (or raises its error)."""
        fut = await self.send(topic, value, key, headers, partition, timestamp_ms)
        return await fut

    async def send_many(self, topic: str, values: Sequence[Any], keys: Sequence[Any] | None = None,
                        headers: Sequence[Any] | None = None,
                        timestamps: Sequence[int] | None = None,
                        partition: int | None = None) -> Any:
        """Appends many records, like Producer.send_many(), and returns an awaitable whose
        result maps input indices to errors (BulkResult). When buffer.memory runs out part-way
        it waits on the loop and sends the rest in order; after max.block.ms the records still
        waiting are refused with KafkaTimeoutError, as the synchronous call refuses them."""
        self._bind()
        # one call appends thousands of records without suspending: let the loop run first
        # (before appending, so a send_many() cancelled here sent nothing)
        await asyncio.sleep(0)
        n = len(values)
        gate = self._gate
        send_many = self._send_many
        while True:
            try:
                if gate.idle:
                    bulk = send_many(topic, values, keys, headers, timestamps, partition)
                else:
                    bulk = await gate.call(functools.partial(
                        send_many, topic, values, keys, headers, timestamps, partition), topic)
                break
            except _MetadataPending:
                await self._await_metadata(topic, partition)
            except _SerializersPending:
                if not await self._prepare_serializers(topic):
                    # it refuses the serializer's records with its error, and sends the others
                    send_many = self._producer.send_many

        def send_again(index: list[int]) -> Any:
            return send_many(
                topic, [values[i] for i in index],
                None if keys is None else [keys[i] for i in index],
                None if headers is None else [headers[i] for i in index],
                None if timestamps is None else [timestamps[i] for i in index], partition)
        return await self._resume(topic, n, bulk, send_again, "send_many()")

    async def _resume(self, topic: str, n: int, bulk: Any,
                      send_again: Callable[[list[int]], Any], call: str) -> Any:
        """The outcome of a bulk call (send_many(), send_arrow()) whose first attempt gave
        bulk: the records it refused for want of buffer.memory wait their turn on the loop
        like sends and go again in input order (send_again(input indices) sends them),
        until max.block.ms runs out."""
        gate = self._gate
        refused = bulk.refused()
        pending = [i for i, e in refused.items() if isinstance(e, BufferFullError)]
        if not pending:
            self._report_refusals(topic, refused)
            return bulk
        parts: list[tuple[Any, Sequence[int] | None]] = [(bulk, None)]
        final: dict[int, KafkaError] = {i: e for i, e in refused.items()
                                         if not isinstance(e, BufferFullError)}

        def attempt() -> None:
            nonlocal pending
            index = sorted(pending)
            sub = send_again(index)
            parts.append((sub, index))
            pending = []
            need = 0
            for j, err in sub.refused().items():
                if isinstance(err, BufferFullError):
                    pending.append(index[j])
                    need = max(need, err.need_bytes)
                else:
                    final[index[j]] = err
            if pending:
                raise BufferFullError(f"{call} is waiting for buffer.memory", need)

        # the records refused for memory wait their turn like sends, then go in input order
        await asyncio.sleep(0)
        try:
            await gate.call(attempt, topic)
        except KafkaTimeoutError as e:
            for i in pending:
                final[i] = e
        self._report_refusals(topic, final)
        return ResumedBulkFuture(topic, n, parts, {i: final[i] for i in pending})

    async def send_arrow(self, topic: str, data: Any, value: str, key: str | None = None,
                         headers: Sequence[str] | Mapping[str, str] | None = None,
                         timestamp: str | None = None,
                         partition: int | str | None = None) -> Any:
        """Sends every row of Arrow data, like Producer.send_arrow(), and returns an awaitable
        whose result maps row indices to errors (BulkResult). The data is read once; rows
        refused for want of buffer.memory wait on the loop and are sent again in row order,
        as send_many()'s records are."""
        self._bind()
        await asyncio.sleep(0)   # as send_many(): let the loop run before a long append
        inp = arrow_input(data, value, key, headers, timestamp, partition)
        send_path = self._producer._send_path
        if send_path is None:
            raise IllegalStateError("the producer was not constructed")
        n = inp.row_count
        gate = self._gate

        def send(rows: Sequence[int] | None) -> Any:
            return send_path.send_arrow(topic, inp, value, key, headers, timestamp, partition,
                                        rows)

        while True:
            try:
                if gate.idle:
                    bulk = send(None)
                else:
                    bulk = await gate.call(functools.partial(send, None), topic)
                break
            except _MetadataPending:
                await self._await_metadata(topic, partition if isinstance(partition, int)
                                           else None)
        return await self._resume(topic, n, bulk, send, "send_arrow()")

    def _report_refusals(self, topic: str, refused: dict[int, KafkaError]) -> None:
        # Inside a transaction a record that was not sent makes it abortable (as for
        # Producer.send_many()); the ones retried for memory are not refusals.
        if refused:
            first = min(refused)
            Producer._records_refused(self._producer, topic, len(refused), first, refused[first])

    # ------------------------------------------------------------------ flush and close

    async def flush(self, timeout: float | None = None) -> None:
        """Sends everything buffered now (ignoring linger.ms) and waits, on the loop, until
        every record sent before the call has its outcome. KafkaTimeoutError after `timeout`
        seconds; the records stay queued."""
        self._bind()
        producer = self._producer
        acc = producer._accumulator
        acc.begin_flush()
        try:
            try:
                await asyncio.wait_for(self._settle(acc.incomplete_batches()), timeout)
            except asyncio.TimeoutError:
                raise KafkaTimeoutError(
                    f"flush() did not finish within {timeout} s: records are still waiting "
                    f"for a broker ({acc.queued_batch_count} batches queued)") from None
        finally:
            acc.end_flush()
        if producer.dead_letters is not None:
            await self._off_loop(producer.dead_letters.flush, timeout)

    async def purge(self) -> int:
        """As Producer.purge(), on a worker thread: drops the records not sent yet (their
        futures raise RecordPurgedError) and returns how many."""
        return await self._off_loop(self._producer.purge)   # type: ignore[no-any-return]

    async def _settle(self, batches: list[Any]) -> None:
        bridge = self._bridge
        assert bridge is not None
        stack = list(reversed(batches))
        while stack:
            b = stack.pop()
            if b.split_into is not None:
                stack.extend(reversed(b.split_into))
            elif not b.done:
                await bridge.wait(b)
                stack.append(b)

    async def close(self, timeout: float | None = None) -> None:
        """Stops accepting records, delivers what is buffered (up to `timeout` seconds; None:
        until done or delivery.timeout.ms), then stops the sender thread; records still
        unacknowledged at the deadline fail with an error, which their futures raise. Sends
        waiting for buffer.memory raise ProducerClosedError. Safe to call more than once."""
        if self._closed:
            return
        self._bind()
        self._closed = True
        self._gate.close("close() was called while this send waited for buffer.memory; "
                         "its record was not sent")
        await self._off_loop(self._producer.close, timeout)

    # ------------------------------------------------------------------ transactions

    async def init_transactions(self) -> None:
        """As Producer.init_transactions(), on a worker thread."""
        await self._off_loop(self._producer.init_transactions)

    async def begin_transaction(self) -> None:
        """Opens a transaction (a local state change: it does not wait)."""
        self._bind()
        self._producer.begin_transaction()

    async def send_offsets_to_transaction(
            self, offsets: Mapping[Any, Any] | Sequence[Any],
            group_metadata: ConsumerGroupMetadata | str | bytes | object) -> None:
        """As Producer.send_offsets_to_transaction(), on a worker thread."""
        await self._off_loop(self._producer.send_offsets_to_transaction, offsets,
                             group_metadata)

    async def commit_transaction(self) -> None:
        """As Producer.commit_transaction(), on a worker thread: sends what is buffered,
        waits for it, commits."""
        await self._off_loop(self._producer.commit_transaction)

    async def abort_transaction(self) -> None:
        """As Producer.abort_transaction(), on a worker thread."""
        await self._off_loop(self._producer.abort_transaction)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AIOProducer]:
        """``async with producer.transaction(): ...`` commits when the block ends; aborts (and
        re-raises) when it raises, is cancelled, or the commit finds the transaction failed
        (TransactionAbortableError)."""
        await self.begin_transaction()
        txn = self._producer._transactions()
        try:
            yield self
        except BaseException:
            if txn.state is not TxnState.FATAL_ERROR:
                await asyncio.shield(self.abort_transaction())
            raise
        try:
            await asyncio.shield(self.commit_transaction())
        except TransactionAbortableError:
            await asyncio.shield(self.abort_transaction())
            raise

    # ------------------------------------------------------------------ the rest

    async def partitions_for(self, topic: str) -> list[PartitionInfo]:
        """The topic's partitions, fetching metadata (off the loop) if needed."""
        return await self._off_loop(self._producer.partitions_for, topic)   # type: ignore[no-any-return]

    def metrics(self) -> dict[str, Any]:
        """As Producer.metrics() (a snapshot: it does not wait)."""
        return self._producer.metrics()

    @property
    def dead_letters(self) -> Any:
        return self._producer.dead_letters

    def __repr__(self) -> str:
        return f"AIOProducer(client_id={self.config['client.id']!r})"
