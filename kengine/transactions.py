"""Idempotence and transactions: the producer id and epoch, per-partition sequence numbers, and
the transaction state machine (Kafka's KIP-98, KIP-360 epoch bumps, KIP-890 transactions v2).

Two threads meet here: user threads call the transactional API (``init_transactions()``,
``begin_transaction()``, ``commit_transaction()``...) and wait for results; the sender thread
sends the coordinator requests one at a time (``poll()``), and reports what happened to every
batch that carried sequence numbers. Everything below is guarded by ``self._lock``.

Sequence numbers are not kept here: ``kengine_ext.Sequences`` (sequences.pyx) owns them and
every rule about them, on the sender thread. This module sets the producer id and epoch it
hands out (after InitProducerId, an idempotent epoch bump, or EndTxn v5), bumps the epoch when
the sequences ask for it, and turns the failures the sender reports into transaction states.
"""
from __future__ import annotations

import enum
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kengine_ext import PartitionQueue, monotonic_ms

from .connection import API
from .errors import (
    AuthorizationError,
    ConcurrentTransactionsError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    IllegalStateError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    KafkaError,
    KafkaTimeoutError,
    NotCoordinatorError,
    ProducerFencedError,
    TopicAuthorizationFailedError,
    TransactionAbortableError,
    TransactionAbortedError,
    UnknownProducerIdError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
    error_for_code,
)

if TYPE_CHECKING:
    from kengine_ext import ProducerCore, Sequences

    from .metadata import Metadata
    from .network import NetworkClient

__all__ = ["TransactionManager", "TxnState", "TRANSITIONS", "ConsumerGroupMetadata"]

_log = logging.getLogger("kengine.transactions")

_INT32_MAX = 0x7FFFFFFF
_EPOCH_MAX = 0x7FFF


class TxnState(enum.Enum):
    UNINITIALIZED = "uninitialized"      # no producer id yet
    INITIALIZING = "initializing"        # InitProducerId in progress
    READY = "ready"                      # has a producer id; no open transaction
    IN_TRANSACTION = "in-transaction"    # begin_transaction() called
    COMMITTING = "committing"            # commit_transaction() in progress
    ABORTING = "aborting"                # abort_transaction() in progress
    ABORTABLE_ERROR = "abortable-error"  # the transaction failed; abort_transaction() recovers
    FATAL_ERROR = "fatal-error"          # fenced, unauthorized...: only close() is left


S = TxnState
#: The state machine, in one table: each state and the states it may be entered from
#: (Java's TransactionManager.State.isTransitionValid). FATAL_ERROR is reachable from anywhere.
TRANSITIONS: dict[TxnState, frozenset[TxnState]] = {
    S.UNINITIALIZED: frozenset({S.READY, S.ABORTABLE_ERROR}),
    S.INITIALIZING: frozenset({S.UNINITIALIZED, S.COMMITTING, S.ABORTING}),
    S.READY: frozenset({S.INITIALIZING, S.COMMITTING, S.ABORTING}),
    S.IN_TRANSACTION: frozenset({S.READY}),
    S.COMMITTING: frozenset({S.IN_TRANSACTION}),
    S.ABORTING: frozenset({S.IN_TRANSACTION, S.ABORTABLE_ERROR}),
    S.ABORTABLE_ERROR: frozenset({S.IN_TRANSACTION, S.COMMITTING, S.ABORTABLE_ERROR,
                                  S.INITIALIZING}),
    S.FATAL_ERROR: frozenset(TxnState),
}


@dataclass(frozen=True)
class ConsumerGroupMetadata:
    """The consumer group whose offsets a transaction commits (KIP-447 fencing fields)."""

    group_id: str
    generation_id: int = -1
    member_id: str = ""
    group_instance_id: str | None = None


class _Result:
    """The outcome of one transactional call, awaited by the user thread."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        self._event = threading.Event()
        self.error: KafkaError | None = None

    def done(self, error: KafkaError | None = None) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()

    @property
    def is_done(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> None:
        if not self._event.wait(timeout_s):
            raise KafkaTimeoutError(
                f"{self.operation} did not finish within {timeout_s * 1000:.0f} ms "
                f"(max.block.ms); it may still complete: call it again to wait for it")
        if self.error is not None:
            raise self.error


# Request priorities (lower goes first), as Java orders them.
_FIND_COORDINATOR, _INIT_PRODUCER_ID, _ADD_PARTITIONS_OR_OFFSETS, _END_TXN, _EPOCH_BUMP = range(5)
_TXN, _GROUP = 1, 0   # FindCoordinator key types


class _Request:
    """One coordinator request: built, sent and handled by the sender thread."""

    api_key: int
    priority: int
    coordinator: int | None = _TXN   # which coordinator it goes to; None: any broker
    max_version: int | None = None

    def __init__(self, result: _Result) -> None:
        self.result = result
        self.not_before_ms = 0

    def key(self, tm: TransactionManager) -> str | None:
        return tm.transactional_id

    def version_cap(self, tm: TransactionManager) -> int | None:
        """The highest version this request may use now (None: what the broker offers)."""
        return self.max_version

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        raise NotImplementedError

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        raise NotImplementedError

    def handled_alike(self, tm: TransactionManager, err: KafkaError) -> bool:
        """The answers every coordinator request treats the same way (Java's handlers do too):
        a moved or unavailable coordinator is looked up again and the request retried; a loading
        coordinator or a transaction still completing means retry; an older epoch means this
        producer was fenced. True when err was one of those."""
        if isinstance(err, (CoordinatorNotAvailableError, NotCoordinatorError)):
            if self.coordinator is not None:
                tm._coordinators.pop((self.coordinator, self.key(tm) or ""), None)
            tm._requeue(self)
            return True
        if isinstance(err, (CoordinatorLoadInProgressError, ConcurrentTransactionsError)):
            tm._requeue(self)
            return True
        if isinstance(err, (InvalidProducerEpochError, ProducerFencedError)):
            raise ProducerFencedError(
                f"transactional.id {tm.transactional_id!r} is used by a newer producer: this "
                f"one is fenced and its open transaction will not become visible")
        return False


class TransactionManager:
    def __init__(self, core: ProducerCore, client: NetworkClient, metadata: Metadata, *,
                 client_id: str, transactional_id: str | None, transaction_timeout_ms: int,
                 retry_backoff_ms: int, max_block_ms: int, wakeup: Callable[[], None]) -> None:
        self._core = core
        self._client = client
        self._metadata = metadata
        self.client_id = client_id
        self.transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms
        self._backoff_ms = retry_backoff_ms
        self._max_block_s = max_block_ms / 1000.0
        self._wakeup = wakeup
        self._lock = threading.RLock()
        self.state = TxnState.UNINITIALIZED
        self.last_error: KafkaError | None = None
        # the producer id/epoch and the sequences (their rules run on the sender thread)
        if core.sequences is None:
            raise IllegalStateError("a TransactionManager needs a core built with idempotence")
        self._sequences: Sequences = core.sequences
        #: transactional: the next transaction needs a new epoch (set under self._lock)
        self._epoch_bump_required = False
        #: abort_transaction() asked the sender thread to drop the batches never sent
        self._drop_unsent = False
        self._pending: list[tuple[int, int, _Request]] = []   # heap of (priority, n, request)
        self._seq = itertools.count()
        self._in_flight: _Request | None = None
        self._coordinators: dict[tuple[int, str], int] = {}   # (key type, key) -> node
        self._new_partitions: set[PartitionQueue] = set()     # to add (transactions v1)
        self._pending_partitions: set[PartitionQueue] = set()
        self._transaction_started = False
        self._transactions_v2 = False
        self._pending_result: _Result | None = None
        self._pending_state: TxnState | None = None

    @property
    def transactional(self) -> bool:
        return self.transactional_id is not None

    # ================================================================== state machine

    def _transition(self, target: TxnState, error: KafkaError | None = None) -> None:
        if self.state not in TRANSITIONS[target]:
            raise IllegalStateError(self._describe_bad_call(target))
        if target in (S.ABORTABLE_ERROR, S.FATAL_ERROR):
            assert error is not None
            self.last_error = error
        else:
            self.last_error = None
        _log.debug("[%s] transaction state %s -> %s%s", self.client_id, self.state.value,
                   target.value, f" ({error})" if error else "")
        self.state = target

    def _describe_bad_call(self, target: TxnState) -> str:
        what = {
            S.IN_TRANSACTION: "begin_transaction() needs a producer that is initialised and has no "
                              "open transaction",
            S.COMMITTING: "commit_transaction() needs an open transaction: call "
                          "begin_transaction() first",
            S.ABORTING: "abort_transaction() needs an open transaction",
            S.INITIALIZING: "init_transactions() may be called once, before the first "
                            "transaction",
        }.get(target, f"cannot move from {self.state.value} to {target.value}")
        return f"{what} (transactional.id {self.transactional_id!r} is {self.state.value})"

    def _abortable(self, error: KafkaError) -> None:
        if self.state is S.ABORTING:
            return   # aborting already: the error changes nothing
        if self.state is S.FATAL_ERROR:
            return
        _log.info("[%s] transaction must be aborted: %s", self.client_id, error)
        if self.state in TRANSITIONS[S.ABORTABLE_ERROR]:
            self._transition(S.ABORTABLE_ERROR, error)
        self._core._set_in_transaction(False)

    def _fatal(self, error: KafkaError) -> None:
        _log.error("[%s] producer is unusable: %s", self.client_id, error)
        self._transition(S.FATAL_ERROR, error)
        self._core._set_in_transaction(False)
        if self._pending_result is not None:
            self._pending_result.done(error)
        for _, _, req in self._pending:
            req.result.done(error)
        self._pending.clear()

    def _abort_needed(self) -> TransactionAbortableError:
        error = TransactionAbortableError(
            f"the transaction failed and must be aborted with abort_transaction(): "
            f"{self.last_error}")
        error.__cause__ = self.last_error
        return error

    def _fail_if_error(self) -> None:
        if self.state is S.FATAL_ERROR:
            assert self.last_error is not None
            if isinstance(self.last_error, ProducerFencedError):
                raise ProducerFencedError(
                    f"transactional.id {self.transactional_id!r} was taken over by a newer "
                    f"producer (fenced); close this producer")
            raise self.last_error
        if self.state is S.ABORTABLE_ERROR:
            raise self._abort_needed()

    # ================================================================== user API

    def _run(self, start: Callable[[], _Result], target: TxnState) -> None:
        """Starts an operation (or rejoins one that timed out earlier) and waits for it."""
        with self._lock:
            if self._pending_result is not None and self._pending_state is target:
                result = self._pending_result
            else:
                result = start()
                self._pending_result, self._pending_state = result, target
        self._wakeup()
        try:
            result.wait(self._max_block_s)
        finally:
            with self._lock:
                if result.is_done and self._pending_result is result:
                    self._pending_result = self._pending_state = None

    def init_transactions(self) -> None:
        self._require_transactional("init_transactions()")

        def start() -> _Result:
            self._fail_if_error()
            self._transition(S.INITIALIZING)
            result = _Result("init_transactions()")
            self._enqueue(_InitProducerId(result, bump=False, transactional=True))
            return result

        self._run(start, S.INITIALIZING)

    def begin_transaction(self) -> None:
        self._require_transactional("begin_transaction()")
        with self._lock:
            self._fail_if_error()
            self._transition(S.IN_TRANSACTION)
            # Decided per transaction, never in the middle of one (KIP-890).
            self._transactions_v2 = self._coordinator_supports_v2()
            self._core._set_implicit_txn_partitions(self._transactions_v2)
            self._transaction_started = False
            self._core._set_in_transaction(True)

    def commit_transaction(self) -> None:
        self._require_transactional("commit_transaction()")

        def start() -> _Result:
            self._fail_if_error()
            self._transition(S.COMMITTING)
            self._core._set_in_transaction(False)
            return self._end_transaction(commit=True)

        self._core.begin_flush()   # send what is buffered now, linger or not
        try:
            self._run(start, S.COMMITTING)
        finally:
            self._core.end_flush()

    def abort_transaction(self) -> None:
        self._require_transactional("abort_transaction()")

        def start() -> _Result:
            if self.state is S.FATAL_ERROR:
                self._fail_if_error()
            self._transition(S.ABORTING)
            self._core._set_in_transaction(False)
            self._new_partitions.clear()
            self._drop_unsent = True   # done by the sender thread: it owns the queues
            return self._end_transaction(commit=False)

        self._core.begin_flush()
        try:
            self._run(start, S.ABORTING)
        finally:
            self._core.end_flush()

    def send_offsets_to_transaction(self, offsets: Mapping[Any, Any],
                                    group: ConsumerGroupMetadata | str) -> None:
        self._require_transactional("send_offsets_to_transaction()")
        if isinstance(group, str):
            group = ConsumerGroupMetadata(group)
        committed = _normalise_offsets(offsets)

        def start() -> _Result:
            self._fail_if_error()
            if self.state is not S.IN_TRANSACTION:
                raise IllegalStateError(
                    "send_offsets_to_transaction() needs an open transaction: call "
                    f"begin_transaction() first (state {self.state.value})")
            result = _Result("send_offsets_to_transaction()")
            if self._transactions_v2:
                # v2: TxnOffsetCommit adds the group to the transaction itself
                self._transaction_started = True
                self._enqueue(_TxnOffsetCommit(result, group, committed))
            else:
                self._enqueue(_AddOffsetsToTxn(result, group, committed))
            return result

        self._run(start, S.IN_TRANSACTION)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """begin; commit when the block ends; abort (and re-raise) when it raises, or when
        the commit finds the transaction failed (TransactionAbortableError)."""
        self.begin_transaction()
        try:
            yield
        except BaseException:
            with self._lock:
                fatal = self.state is S.FATAL_ERROR
            if not fatal:
                self.abort_transaction()
            raise
        try:
            self.commit_transaction()
        except TransactionAbortableError:
            self.abort_transaction()
            raise

    def _require_transactional(self, call: str) -> None:
        if not self.transactional:
            raise IllegalStateError(f"{call} needs transactional.id to be set")

    def _end_transaction(self, commit: bool) -> _Result:
        result = _Result("commit_transaction()" if commit else "abort_transaction()")
        self._collect_new_partitions()
        if self._new_partitions and not self._transactions_v2:
            self._enqueue(_AddPartitionsToTxn(_Result("AddPartitionsToTxn")))
        self._enqueue(_EndTxn(result, commit))
        return result

    def _drop_unsent_batches(self) -> None:
        """Sender thread: fail the aborted transaction's records that were never sent. Those
        sent before (waiting for a retry) still go: their sequences are taken, and the abort
        marker discards them."""
        err = TransactionAbortedError(
            "the transaction was aborted before this record was sent")
        for batch in self._core.take_unsent_queued():
            self._core.complete(batch, error=err)

    def close(self) -> None:
        with self._lock:
            err = KafkaError("the producer was closed")
            if self._pending_result is not None:
                self._pending_result.done(err)
            for _, _, req in self._pending:
                req.result.done(err)
            self._pending.clear()

    # ================================================================== sender thread: requests

    def poll(self, now: int) -> bool:
        """One step on the sender thread, before it drains batches: epoch bumps, new
        transaction partitions, the next coordinator request. Returns whether batches may be
        drained now."""
        with self._lock:
            if self.state is S.FATAL_ERROR:
                return False
            if self._drop_unsent:
                self._drop_unsent = False
                self._drop_unsent_batches()
            if not self.transactional:
                if self._sequences.epoch_bump_requested and self._core.producer_id >= 0:
                    self._bump_idempotent_epoch()
                if self.state is S.UNINITIALIZED and self._core.producer_id < 0:
                    self._transition(S.INITIALIZING)
                    self._enqueue(_InitProducerId(_Result("InitProducerId"), bump=False,
                                                  transactional=False))
            else:
                self._collect_new_partitions()
                if self._new_partitions and self.state in (S.IN_TRANSACTION, S.COMMITTING) \
                        and not self._transactions_v2 \
                        and not any(isinstance(r, _AddPartitionsToTxn)
                                    for _, _, r in self._pending) \
                        and not isinstance(self._in_flight, _AddPartitionsToTxn):
                    self._enqueue(_AddPartitionsToTxn(_Result("AddPartitionsToTxn")))
            self._maybe_send(now)
            return self._core.producer_id >= 0

    def _collect_new_partitions(self) -> None:
        for q in self._core.take_new_txn_partitions():
            if self._transactions_v2:
                self._transaction_started = True   # Produce v12 adds it for us
            else:
                self._new_partitions.add(q)

    def _enqueue(self, request: _Request) -> None:
        heapq.heappush(self._pending, (request.priority, next(self._seq), request))

    def _requeue(self, request: _Request, backoff_ms: int | None = None) -> None:
        request.not_before_ms = monotonic_ms() + (self._backoff_ms if backoff_ms is None
                                                  else backoff_ms)
        self._enqueue(request)

    def _maybe_send(self, now: int) -> None:
        if self._in_flight is not None or not self._pending:
            return
        _, _, request = self._pending[0]
        if request.not_before_ms > now:
            return
        if isinstance(request, _EndTxn) and self._core.incomplete_batches():
            return   # EndTxn only once every batch of the transaction is finished
        if self.state is S.ABORTABLE_ERROR and (
                not isinstance(request, (_FindCoordinator, _EndTxn))
                or (isinstance(request, _EndTxn) and request.commit)):
            # Only an abort may end a failed transaction: a commit waiting for the batches
            # (one of which just failed for good) is never sent, or the records that did
            # arrive would become visible without the failed ones.
            heapq.heappop(self._pending)
            assert self.last_error is not None
            request.result.done(self._abort_needed() if isinstance(request, _EndTxn)
                                else self.last_error)
            return
        if isinstance(request, _EndTxn) and not self._transaction_started:
            heapq.heappop(self._pending)   # nothing reached the coordinator: nothing to end
            self._complete_transaction()
            request.result.done()
            return
        node = self._target_node(request, now)
        if node is None:
            return
        if not self._client.is_ready(node):
            self._client.connect(node, now)
            return
        conn = self._client.connection(node)
        assert conn is not None
        version = conn.version(request.api_key)
        if version is None:
            heapq.heappop(self._pending)
            err = UnsupportedVersionError(
                f"broker {node} does not support api key {request.api_key}, which "
                f"{type(request).__name__[1:]} needs")
            request.result.done(err)
            self._fatal(err)
            return
        cap = request.version_cap(self)
        if cap is not None:
            version = min(version, cap)
        heapq.heappop(self._pending)
        self._in_flight = request
        body = request.body(self, version)

        def on_response(resp: Any, error: KafkaError | None) -> None:
            with self._lock:
                self._in_flight = None
                if error is not None:
                    # disconnected or timed out: find the coordinator again, then retry
                    if request.coordinator is not None:
                        self._coordinators.pop((request.coordinator, request.key(self) or ""), None)
                    self._requeue(request)
                    return
                try:
                    request.handle(self, resp)
                except KafkaError as e:
                    request.result.done(e)
                    self._fatal(e)
            self._wakeup()

        self._client.send(node, request.api_key, body, on_response, now_ms=now, version=version)

    def _target_node(self, request: _Request, now: int) -> int | None:
        if request.coordinator is None:
            return self._client.least_loaded_node(now)
        key = request.key(self) or ""
        node = self._coordinators.get((request.coordinator, key))
        if node is None:
            if not any(isinstance(r, _FindCoordinator) and r.key_type == request.coordinator
                       and r.coordinator_key == key for _, _, r in self._pending):
                self._enqueue(_FindCoordinator(_Result("FindCoordinator"), request.coordinator,
                                               key))
            return None
        return node

    def _coordinator_supports_v2(self) -> bool:
        """Transactions v2 (KIP-890 part 2): the cluster finalized transaction.version >= 2 and
        the coordinator speaks EndTxn v5 and Produce v12."""
        node = self._coordinators.get((_TXN, self.transactional_id or ""))
        conn = self._client.connection(node) if node is not None else None
        if conn is None:
            return False
        level = conn.finalized_features.get("transaction.version", 0)
        return level >= 2 and conn.version(API.END_TXN) == 5 and \
            (conn.version(API.PRODUCE) or 0) >= 12

    @property
    def transactions_v2(self) -> bool:
        return self._transactions_v2

    def produce_version_cap(self) -> int | None:
        """Produce v12+ in a transaction means transactions v2: cap it at 11 otherwise."""
        if self.transactional and not self._transactions_v2:
            return 11
        return None

    def _set_identity(self, producer_id: int, epoch: int) -> None:
        _log.info("[%s] producer id %d, epoch %d", self.client_id, producer_id, epoch)
        self._sequences.set_identity(producer_id, epoch)

    def _complete_transaction(self) -> None:
        self._core.reset_txn_partitions()
        self._new_partitions.clear()
        self._pending_partitions.clear()
        self._transaction_started = False
        if self._epoch_bump_required and not self._transactions_v2:
            self._transition(S.INITIALIZING)
            self._enqueue(_InitProducerId(_Result("InitProducerId (epoch bump)"), bump=True,
                                          transactional=True))
        else:
            self._transition(S.READY)
        self._epoch_bump_required = False

    # ================================================================== sender thread: batches

    def on_batch_failed(self, error: KafkaError) -> None:
        """A batch failed for good (an answer, or delivery.timeout.ms): fencing and
        authorization errors end the producer; in a transaction, any failure makes it
        abortable (Java's maybeTransitionToErrorState)."""
        with self._lock:
            self._maybe_transition_to_error(error)

    def on_sequences_lost(self, error: KafkaError) -> None:
        """The sequences cannot account for a batch this transaction sent (kengine_ext
        Sequences): abort, with a new epoch after that."""
        with self._lock:
            self._epoch_bump_required = True
            self._abortable(error)

    def send_refusal(self) -> KafkaError | None:
        """Why sends are refused now, when the transaction failed (abortable) or the producer
        did (fatal); None otherwise."""
        with self._lock:
            if self.state is S.ABORTABLE_ERROR:
                return self._abort_needed()
            if self.state is S.FATAL_ERROR:
                assert self.last_error is not None
                return self.last_error
            return None

    def on_records_refused(self, topic: str, count: int, first_index: int,
                           first_error: KafkaError) -> None:
        """send_many() could not send some of a transaction's records (see ProducerCore)."""
        with self._lock:
            if self.state is S.IN_TRANSACTION:
                error = type(first_error)(
                    f"send_many() to {topic!r} refused {count} record(s) of the transaction, "
                    f"the first: {first_error}")
                error.__cause__ = first_error
                self._abortable(error)

    def _maybe_transition_to_error(self, error: KafkaError) -> None:
        # A topic authorization failure is per record (abortable in a transaction); cluster
        # and transactional-id authorization, fencing and version mismatches are fatal.
        if isinstance(error, (AuthorizationError, ProducerFencedError, UnsupportedVersionError)) \
                and not isinstance(error, TopicAuthorizationFailedError):
            self._fatal(error)
        elif self.transactional and not isinstance(error, TransactionAbortedError):
            if self.state not in (S.COMMITTING, S.ABORTING):
                self._epoch_bump_required = True
            self._abortable(error)

    def _bump_idempotent_epoch(self) -> None:
        """KIP-360 for the idempotent producer: a new epoch, with which the partitions whose
        sequences parted from the broker's start over at 0 (Sequences.set_identity)."""
        pid, epoch = self._core.producer_id, self._core.producer_epoch
        if epoch >= _EPOCH_MAX:
            # the epoch is exhausted: a fresh producer id (every partition restarts at 0)
            self._set_identity(-1, -1)
            self.state = S.UNINITIALIZED
        else:
            self._set_identity(pid, epoch + 1)

    def fail_all(self, error: KafkaError) -> None:
        """The producer is going down (or hit a fatal error): wake every waiter."""
        with self._lock:
            if self.state is not S.FATAL_ERROR:
                self._fatal(error)


def _normalise_offsets(offsets: Mapping[Any, Any]) -> dict[tuple[str, int], tuple[int, str | None]]:
    out = {}
    for tp, value in offsets.items():
        topic, partition = (tp.topic, tp.partition) if hasattr(tp, "topic") else tp
        if isinstance(value, int):
            offset, meta = value, None
        elif hasattr(value, "offset"):
            offset, meta = value.offset, getattr(value, "metadata", None)
        else:
            offset, meta = value
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset for {topic}-{partition} must be an int >= 0, not {offset!r}")
        out[(str(topic), int(partition))] = (offset, meta)
    if not out:
        raise ValueError("send_offsets_to_transaction() needs at least one offset")
    return out


# ====================================================================== the requests


class _FindCoordinator(_Request):
    api_key = API.FIND_COORDINATOR
    priority = _FIND_COORDINATOR
    coordinator = None

    def __init__(self, result: _Result, key_type: int, key: str) -> None:
        super().__init__(result)
        self.key_type = key_type
        self.coordinator_key = key

    def key(self, tm: TransactionManager) -> str | None:
        return self.coordinator_key

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        if version >= 4:
            return {"key_type": self.key_type, "coordinator_keys": [self.coordinator_key]}
        return {"key_type": self.key_type, "key": self.coordinator_key}

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        entry = body["coordinators"][0] if body.get("coordinators") else body
        code = entry["error_code"]
        if code == 0:
            tm._client.set_brokers({entry["node_id"]: (entry["host"], entry["port"])})
            tm._coordinators[(self.key_type, self.coordinator_key)] = entry["node_id"]
            _log.info("[%s] %s coordinator for %r is broker %d", tm.client_id,
                      "transaction" if self.key_type == _TXN else "group", self.coordinator_key,
                      entry["node_id"])
            self.result.done()
            return
        err = error_for_code(code, entry.get("error_message"))
        if isinstance(err, (CoordinatorNotAvailableError, NotCoordinatorError,
                            CoordinatorLoadInProgressError)) or err.retriable:
            tm._requeue(self)
        elif self.key_type == _GROUP and not isinstance(err, ProducerFencedError):
            self.result.done(err)
            tm._abortable(err)
        else:
            raise err


class _InitProducerId(_Request):
    api_key = API.INIT_PRODUCER_ID

    def __init__(self, result: _Result, bump: bool, transactional: bool) -> None:
        super().__init__(result)
        self.bump = bump
        self.priority = _EPOCH_BUMP if bump else _INIT_PRODUCER_ID
        # the idempotent producer asks any broker; the transactional one its coordinator
        self.coordinator = _TXN if transactional else None

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        body: dict[str, Any] = {
            "transactional_id": tm.transactional_id,
            "transaction_timeout_ms": tm._timeout_ms if tm.transactional else _INT32_MAX,
        }
        if self.bump and version >= 3:
            body["producer_id"] = tm._core.producer_id
            body["producer_epoch"] = tm._core.producer_epoch
        return body

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            tm._set_identity(body["producer_id"], body["producer_epoch"])
            tm._transition(S.READY)
            self.result.done()
            return
        err = error_for_code(code)
        if self.handled_alike(tm, err):
            return
        if err.retriable and not isinstance(err, UnknownTopicOrPartitionError):
            tm._requeue(self)
        else:
            self.result.done(err)
            tm._fatal(err)


class _AddPartitionsToTxn(_Request):
    api_key = API.ADD_PARTITIONS_TO_TXN
    priority = _ADD_PARTITIONS_OR_OFFSETS
    max_version = 3   # v4+ is the brokers' batched form

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        tm._pending_partitions |= tm._new_partitions
        tm._new_partitions.clear()
        topics: dict[str, list[int]] = {}
        for q in tm._pending_partitions:
            topics.setdefault(q.topic, []).append(q.partition)
        self.sent = set(tm._pending_partitions)
        return {
            "v3_and_below_transactional_id": tm.transactional_id,
            "v3_and_below_producer_id": tm._core.producer_id,
            "v3_and_below_producer_epoch": tm._core.producer_epoch,
            "v3_and_below_topics": [{"name": t, "partitions": sorted(ps)}
                                    for t, ps in topics.items()],
        }

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        unauthorized: list[str] = []
        other: list[str] = []
        for t in body["results_by_topic_v3_and_below"]:
            for p in t["results_by_partition"]:
                code = p["partition_error_code"]
                if code == 0:
                    continue
                err = error_for_code(code)
                if isinstance(err, (CoordinatorNotAvailableError, NotCoordinatorError)):
                    tm._coordinators.pop((_TXN, tm.transactional_id or ""), None)
                    tm._requeue(self)
                    return
                if isinstance(err, ConcurrentTransactionsError):
                    # the previous transaction is still completing: try again soon
                    tm._requeue(self, backoff_ms=20 if not tm._transaction_started else None)
                    return
                if isinstance(err, (CoordinatorLoadInProgressError, UnknownTopicOrPartitionError)):
                    tm._requeue(self)
                    return
                if isinstance(err, (InvalidProducerEpochError, ProducerFencedError)):
                    raise ProducerFencedError(
                        f"transactional.id {tm.transactional_id!r} is used by a newer producer")
                if isinstance(err, (UnknownProducerIdError, InvalidProducerIdMappingError)):
                    tm._epoch_bump_required = True
                    tm._abortable(err)
                    self.result.done(err)
                    return
                if err.name in ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED", "INVALID_TXN_STATE"):
                    raise err
                if isinstance(err, TopicAuthorizationFailedError):
                    unauthorized.append(t["name"])
                elif err.name != "OPERATION_NOT_ATTEMPTED":   # it only echoes another failure
                    other.append(f"{t['name']}-{p['partition_index']}: {err}")
        tm._pending_partitions -= self.sent
        if unauthorized:
            err = TopicAuthorizationFailedError(
                f"not authorized to write to {sorted(set(unauthorized))} in a transaction")
            tm._abortable(err)
            self.result.done(err)
            return
        if other:
            failure = KafkaError("could not add partitions to the transaction: "
                                 + "; ".join(other))
            tm._abortable(failure)
            self.result.done(failure)
            return
        for q in self.sent:
            q.txn_state = 2   # TXN_ADDED: its batches may go now
        tm._transaction_started = True
        self.result.done()


class _AddOffsetsToTxn(_Request):
    api_key = API.ADD_OFFSETS_TO_TXN
    priority = _ADD_PARTITIONS_OR_OFFSETS

    def __init__(self, result: _Result, group: ConsumerGroupMetadata,
                 offsets: dict[tuple[str, int], tuple[int, str | None]]) -> None:
        super().__init__(result)
        self.group = group
        self.offsets = offsets

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        return {"transactional_id": tm.transactional_id, "producer_id": tm._core.producer_id,
                "producer_epoch": tm._core.producer_epoch, "group_id": self.group.group_id}

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            tm._transaction_started = True
            tm._enqueue(_TxnOffsetCommit(self.result, self.group, self.offsets))
            return
        err = error_for_code(code)
        if self.handled_alike(tm, err):
            return
        if isinstance(err, (UnknownProducerIdError, InvalidProducerIdMappingError)):
            tm._epoch_bump_required = True
            tm._abortable(err)
            self.result.done(err)
        elif err.name == "GROUP_AUTHORIZATION_FAILED":
            tm._abortable(err)
            self.result.done(err)
        else:
            raise err


class _TxnOffsetCommit(_Request):
    api_key = API.TXN_OFFSET_COMMIT
    priority = _ADD_PARTITIONS_OR_OFFSETS
    coordinator = _GROUP

    def __init__(self, result: _Result, group: ConsumerGroupMetadata,
                 offsets: dict[tuple[str, int], tuple[int, str | None]]) -> None:
        super().__init__(result)
        self.group = group
        self.offsets = dict(offsets)

    def key(self, tm: TransactionManager) -> str | None:
        return self.group.group_id

    def version_cap(self, tm: TransactionManager) -> int | None:
        return None if tm._transactions_v2 else 4   # v5 adds the group itself (v2 only)

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), (offset, meta) in self.offsets.items():
            topics.setdefault(topic, []).append({
                "partition_index": partition, "committed_offset": offset,
                "committed_leader_epoch": -1, "committed_metadata": meta})
        return {
            "transactional_id": tm.transactional_id, "group_id": self.group.group_id,
            "producer_id": tm._core.producer_id, "producer_epoch": tm._core.producer_epoch,
            "generation_id": self.group.generation_id, "member_id": self.group.member_id,
            "group_instance_id": self.group.group_instance_id,
            "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
        }

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        retry = False
        for t in body["topics"]:
            for p in t["partitions"]:
                code = p["error_code"]
                tp = (t["name"], p["partition_index"])
                if code == 0:
                    self.offsets.pop(tp, None)
                    continue
                err = error_for_code(code)
                if isinstance(err, (CoordinatorNotAvailableError, NotCoordinatorError)) or \
                        err.name == "REQUEST_TIMED_OUT":
                    tm._coordinators.pop((_GROUP, self.group.group_id), None)
                    retry = True
                elif err.retriable:
                    # as Java: an unknown topic, a loading coordinator, CONCURRENT_TRANSACTIONS
                    # (transactions v2: the previous transaction's markers are still being
                    # written to the offsets topic)... retry with the same coordinator
                    retry = True
                elif isinstance(err, (InvalidProducerEpochError, ProducerFencedError)):
                    raise ProducerFencedError(
                        f"transactional.id {tm.transactional_id!r} is used by a newer producer")
                elif err.name in ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
                                  "UNSUPPORTED_FOR_MESSAGE_FORMAT"):
                    raise err
                else:
                    # group authorization, fenced instance, stale generation/member...
                    tm._abortable(err)
                    self.result.done(err)
                    return
        if retry and self.offsets:
            tm._requeue(self)
        else:
            self.result.done()


class _EndTxn(_Request):
    api_key = API.END_TXN
    priority = _END_TXN

    def __init__(self, result: _Result, commit: bool) -> None:
        super().__init__(result)
        self.commit = commit

    def version_cap(self, tm: TransactionManager) -> int | None:
        return None if tm._transactions_v2 else 4   # v5 bumps the epoch (transactions v2)

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        return {"transactional_id": tm.transactional_id, "producer_id": tm._core.producer_id,
                "producer_epoch": tm._core.producer_epoch, "committed": self.commit}

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            if tm._transactions_v2 and body.get("producer_id", -1) >= 0:
                # v2: every transaction ends with a new epoch (sequences restart at 0)
                tm._set_identity(body["producer_id"], body["producer_epoch"])
            tm._complete_transaction()
            self.result.done()
            return
        err = error_for_code(code)
        if self.handled_alike(tm, err):
            return
        if isinstance(err, (UnknownProducerIdError, InvalidProducerIdMappingError)) or \
                err.name == "TRANSACTION_ABORTABLE":
            tm._epoch_bump_required = True
            tm._abortable(err)
            self.result.done(err)
        else:
            raise err
