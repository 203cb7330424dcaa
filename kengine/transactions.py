"""The transaction state machine and the coordinator requests (Kafka's KIP-98, KIP-360 epoch
bumps, KIP-890 transactions v2), and the producer identity those requests obtain.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from kengine_ext import PartitionQueue, monotonic_ms

from .connection import API
from .errors import (
    AuthorizationError,
    BrokerError,
    ConcurrentTransactionsError,
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    GroupAuthorizationFailedError,
    IllegalStateError,
    InvalidProducerEpochError,
    InvalidProducerIdMappingError,
    KafkaError,
    KafkaTimeoutError,
    NotCoordinatorError,
    ProducerFencedError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    TransactionAbortableError,
    TransactionAbortedError,
    TransactionNotRecoverableError,
    UnknownProducerIdError,
    UnknownTopicOrPartitionError,
    UnsupportedVersionError,
    error_for_code,
)
from .group_metadata import CommitOffsets, ConsumerGroupMetadata, commit_offsets, group_metadata

if TYPE_CHECKING:
    from kengine_ext import RecordAccumulator, Sequences

    from .metadata import Metadata
    from .network import NetworkClient

__all__ = ["TransactionManager", "TxnState", "TRANSITIONS", "ConsumerGroupMetadata"]

_log = logging.getLogger("kengine.transactions")

_INT32_MAX = 0x7FFFFFFF
_EPOCH_MAX = 0x7FFF
#: The first InitProducerId version that names the current producer id and epoch, so that the
#: coordinator can bump the epoch of this very producer (KIP-360, Kafka 2.5).
_EPOCH_BUMP_VERSION = 3


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
    """The transaction state machine and the coordinator requests (and the idempotent
    producer's InitProducerId and epoch bumps). It holds the record accumulator: the
    transaction's partitions, the flush for a commit, the batches an abort drops, and the
    producer id/epoch it hands to the sequences (kengine_ext.Sequences)."""

    def __init__(self, accumulator: RecordAccumulator, client: NetworkClient, metadata: Metadata, *,
                 client_id: str, transactional_id: str | None, transaction_timeout_ms: int,
                 retry_backoff_ms: int, max_block_ms: int, wakeup: Callable[[], None]) -> None:
        self._acc = accumulator
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
        if accumulator.sequences is None:
            raise IllegalStateError("a TransactionManager needs an accumulator built with "
                                    "idempotence")
        self._sequences: Sequences = accumulator.sequences
        #: transactional: the next transaction needs a new epoch (set under self._lock)
        self._epoch_bump_required = False
        #: the newest InitProducerId version the transaction coordinator speaks, read from its
        #: ApiVersions whenever a request goes to it (Java's handleCoordinatorReady); None
        #: until then. Below _EPOCH_BUMP_VERSION it cannot bump the epoch (can_bump_epoch).
        #: Written by the sender thread under self._lock.
        self._coordinator_init_pid_version: int | None = None
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
        #: The current epoch ended a transaction under v1 (EndTxn sent): no epoch bump came
        #: with it and its markers may still be on their way to the partitions. A v2
        #: transaction must not reuse that epoch: a partition leader that still sees the
        #: old transaction open for it appends the new batches into it unverified, and the
        #: late marker then commits (or aborts) them with it. Under self._lock; cleared by
        #: every new identity.
        self._epoch_ended_v1 = False
        self._pending_result: _Result | None = None
        self._pending_state: TxnState | None = None
        #: A partition leader refused a batch of the transaction with INVALID_PRODUCER_EPOCH:
        #: the abort it calls for is under way (see _start_fence_check), and its answer says
        #: whether a newer producer fenced this one. Set by the sender thread, cleared when
        #: the transaction completes (under self._lock); user threads wait for it, unlocked.
        self._fence_check: _Result | None = None
        #: monotonic time (ms) begin_transaction() last ran: no earlier than the coordinator
        #: started timing the transaction, so a transaction younger than
        #: transaction.timeout.ms by this clock was not aborted for its age. Written by the
        #: user thread under self._lock, read by the sender thread (an int: one store).
        self._began_ms = 0

    @property
    def transactional(self) -> bool:
        return self.transactional_id is not None

    @property
    def can_bump_epoch(self) -> bool:
        """Whether an error that needs a new epoch can be recovered from (Java's canBumpEpoch):
        always for the idempotent producer, which bumps its epoch itself and which every broker
        accepts at sequence 0; for a transactional one, only when its coordinator speaks
        InitProducerId v3+ (Kafka 2.5+, KIP-360). An older coordinator given InitProducerId
        for the transactional.id bumps the epoch of whichever producer asks, a zombie
        included, so the producer does not ask it."""
        if not self.transactional:
            return True
        v = self._coordinator_init_pid_version
        return v is not None and v >= _EPOCH_BUMP_VERSION

    def _not_recoverable(self, what: str, cause: KafkaError | None) -> KafkaError:
        """The fatal error of a transactional producer whose coordinator cannot bump the
        epoch (Kafka before 2.5) after `what` happened."""
        v = self._coordinator_init_pid_version
        error = TransactionNotRecoverableError(
            f"transactional.id {self.transactional_id!r}: {what}. Going on safely needs a new "
            f"producer epoch (KIP-360), which the transaction coordinator cannot give: it "
            f"speaks InitProducerId up to v{v} and needs v{_EPOCH_BUMP_VERSION} (Kafka 2.5 or "
            f"later). The producer stopped and its open transaction will not be committed "
            f"(transactions committed before are not affected). Close this producer and create "
            f"a new one with the same transactional.id (init_transactions() resumes safely), "
            f"or upgrade the brokers to Kafka 2.5 or later, where the producer aborts the "
            f"transaction and carries on by itself", init_producer_id_max_version=v)
        error.__cause__ = cause
        return error

    def _abortable_if_possible(self, error: KafkaError) -> None:
        """An error after which the producer may only go on with a new epoch (the coordinator
        forgot or no longer maps this producer): abortable when the coordinator can bump the
        epoch, fatal otherwise (Java's abortableErrorIfPossible)."""
        if self.can_bump_epoch:
            self._epoch_bump_required = True
            self._abortable(error)
        else:
            # the broker's name of the error only (its long text stays in __cause__)
            self._fatal(self._not_recoverable(
                f"the transaction coordinator answered {getattr(error, 'name', error)}: it no "
                f"longer knows this producer id and epoch", error))

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
        self._acc.set_in_transaction(False)

    def _fatal(self, error: KafkaError) -> None:
        _log.error("[%s] producer is unusable: %s", self.client_id, error)
        self._transition(S.FATAL_ERROR, error)
        self._acc.set_in_transaction(False)
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

    def _await_fence_check(self) -> None:
        """Before a transactional call reports the state: when the answer to a fence check
        (_start_fence_check) is coming, wait for it (up to max.block.ms), so that a fenced
        producer's first error is ProducerFencedError rather than the abort it would ask for."""
        check = self._fence_check
        if check is not None and not check.is_done:
            check._event.wait(self._max_block_s)

    def _run(self, start: Callable[[], _Result], target: TxnState) -> None:
        """Starts an operation (or rejoins one that timed out earlier) and waits for it."""
        self._await_fence_check()
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
        self._await_fence_check()
        with self._lock:
            self._fail_if_error()
            self._transition(S.IN_TRANSACTION)
            # Decided per transaction, never in the middle of one (KIP-890).
            self._transactions_v2 = self._v2_available() and not self._epoch_ended_v1
            self._acc.set_implicit_txn_partitions(self._transactions_v2)
            self._transaction_started = False
            self._began_ms = monotonic_ms()
            self._acc.set_in_transaction(True)

    def commit_transaction(self) -> None:
        self._require_transactional("commit_transaction()")

        def start() -> _Result:
            self._fail_if_error()
            self._transition(S.COMMITTING)
            self._acc.set_in_transaction(False)
            return self._end_transaction(commit=True)

        self._acc.begin_flush()   # send what is buffered now, linger or not
        try:
            self._run(start, S.COMMITTING)
        finally:
            self._acc.end_flush()

    def abort_transaction(self) -> None:
        self._require_transactional("abort_transaction()")

        def start() -> _Result:
            if self.state is S.FATAL_ERROR:
                self._fail_if_error()
            self._transition(S.ABORTING)
            self._acc.set_in_transaction(False)
            self._new_partitions.clear()
            self._drop_unsent = True   # done by the sender thread: it owns the queues
            return self._end_transaction(commit=False)

        self._acc.begin_flush()
        try:
            self._run(start, S.ABORTING)
        finally:
            self._acc.end_flush()

    def send_offsets_to_transaction(self, offsets: Any, group: Any) -> None:
        self._require_transactional("send_offsets_to_transaction()")
        # both read and checked before anything is queued: bad input leaves the transaction
        # as it was (kengine.group_metadata lists the accepted forms)
        group = group_metadata(group)
        committed = commit_offsets(offsets)

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
        for batch in self._acc.take_unsent_queued():
            self._acc.complete(batch, error=err)

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
                if self._sequences.epoch_bump_requested and self._acc.producer_id >= 0:
                    self._bump_idempotent_epoch()
                if self.state is S.UNINITIALIZED and self._acc.producer_id < 0:
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
            return self._acc.producer_id >= 0

    def _collect_new_partitions(self) -> None:
        for q in self._acc.take_new_txn_partitions():
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

    def time_to_next_request_ms(self, now: int) -> int | None:
        """How long the sender may sleep before the next coordinator request's backoff ends (a
        retry); None when no request waits for time: nothing queued, a request in flight
        (its answer wakes the sender), or the next one due and waiting for something else
        (an EndTxn for its batches, a connection), whose event wakes the sender, so that it
        never spins. Sender thread."""
        with self._lock:
            if self._in_flight is not None or not self._pending:
                return None
            wait_ms = self._pending[0][2].not_before_ms - now
            return wait_ms if wait_ms > 0 else None

    def _maybe_send(self, now: int) -> None:
        if self._in_flight is not None or not self._pending:
            return
        _, _, request = self._pending[0]
        if request.not_before_ms > now:
            return
        if self.state is S.ABORTABLE_ERROR and self._fence_check is not None \
                and not self._fence_check.is_done and request.result is not self._fence_check \
                and not isinstance(request, _FindCoordinator):
            return   # the answer to the fence check decides how the others end
        if self.state is S.ABORTABLE_ERROR and (
                not isinstance(request, (_FindCoordinator, _EndTxn))
                or (isinstance(request, _EndTxn) and request.commit)):
            # Only an abort may end a failed transaction: a commit waiting for the batches
            # (one of which just failed for good) is never sent, or the records that did
            # arrive would become visible without the failed ones. It is refused at once,
            # not after the batches: those of partitions that failed to join the
            # transaction would never go, and the commit would wait for max.block.ms.
            heapq.heappop(self._pending)
            assert self.last_error is not None
            request.result.done(self._abort_needed() if isinstance(request, _EndTxn)
                                else self.last_error)
            return
        if isinstance(request, _EndTxn) and self._acc.incomplete_batches():
            return   # EndTxn only once every batch of the transaction is finished
        if isinstance(request, _EndTxn) and not self._transaction_started:
            heapq.heappop(self._pending)   # nothing reached the coordinator: nothing to end
            if request.fence_check:
                self._fence_check_passed()
            else:
                self._complete_transaction(request.result)
            return
        node = self._target_node(request, now)
        if node is None:
            if self._pending and self._pending[0][2] is not request:
                # it queued the FindCoordinator this request needs, which goes first: send it
                # now. Nothing else would wake the sender for it (time_to_next_request_ms()
                # counts a due request as waiting for an event), so it would sleep up to
                # _MAX_POLL_MS (1 s) first: init_transactions() took 1 s now and then.
                self._maybe_send(now)
            return
        if not self._client.is_ready(node):
            if not self._client.connect(node, now) and request.coordinator is not None:
                # the coordinator cannot be connected to (refused: a dead broker; its
                # reconnect backoff running): as Java's sender, look it up again, after
                # retry.backoff.ms, instead of waiting for that broker to come back while
                # another one has taken its coordinator partitions
                self._coordinators.pop((request.coordinator, request.key(self) or ""), None)
                request.not_before_ms = now + self._backoff_ms
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
        if request.coordinator == _TXN:
            self._coordinator_init_pid_version = conn.version(API.INIT_PRODUCER_ID)
        if isinstance(request, _InitProducerId) and request.bump \
                and not self.can_bump_epoch:
            # The coordinator changed for one that cannot bump the epoch since the bump was
            # decided: an InitProducerId without the current epoch could fence a newer producer.
            heapq.heappop(self._pending)
            fatal = self._not_recoverable(
                "the transaction needs a new epoch after an earlier error, and the transaction "
                f"coordinator is now broker {node}", self.last_error)
            request.result.done(fatal)
            self._fatal(fatal)
            return
        cap = request.version_cap(self)
        if cap is not None:
            version = min(version, cap)
        heapq.heappop(self._pending)
        self._in_flight = request
        body = request.body(self, version)

        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("[%s] %s v%d to broker %d: %s", self.client_id, type(request).__name__[1:],
                       version, node, body)

        def on_response(resp: Any, error: KafkaError | None) -> None:
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("[%s] %s answered by broker %d: %s", self.client_id,
                           type(request).__name__[1:], node, error or resp)
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

    def _v2_available(self) -> bool:
        """Transactions v2 (KIP-890 part 2): the cluster finalized transaction.version >= 2
        (the newest levels any broker reported), and the coordinator, when a connection to it
        is set up, speaks EndTxn v5 and Produce v12 (a cluster finalizes a level only once
        every broker supports it). Not whether the coordinator is connected right now: a
        coordinator moving or reconnecting at begin_transaction() once made a transaction
        run under v1 between two v2 ones, and the v1 commit, which keeps the epoch, let the
        next transaction's batches into its own (see _epoch_ended_v1). Called on the user's
        thread by begin_transaction(): it reads only dicts the sender thread replaces whole
        (the levels, the broker's advertised ranges), never one it is filling."""
        if self._client.finalized_features.get("transaction.version", 0) < 2:
            return False
        node = self._coordinators.get((_TXN, self.transactional_id or ""))
        conn = self._client.connection(node) if node is not None else None
        ranges = conn.broker_ranges if conn is not None else {}
        if not ranges:
            return True   # not set up yet: what the cluster finalized decides
        return ranges.get(API.END_TXN, (0, -1))[1] >= 5 and \
            ranges.get(API.PRODUCE, (0, -1))[1] >= 12

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
        self._epoch_ended_v1 = False

    def _complete_transaction(self, result: _Result, ended_v1: bool = False) -> None:
        """The transaction ended; `result` (the caller's commit or abort) is done once the
        producer is ready for the next one: after the epoch bump when one is needed, so that
        begin_transaction() may follow abort_transaction() at once (Java returns the
        InitProducerId's result from the abort too). ``ended_v1``: an EndTxn of transactions
        v1 ended it (the epoch stays; its markers may still be on their way)."""
        self._acc.reset_txn_partitions()
        self._new_partitions.clear()
        self._pending_partitions.clear()
        self._transaction_started = False
        self._fence_check = None
        if ended_v1:
            self._epoch_ended_v1 = True
            if self._v2_available() and self.can_bump_epoch:
                # the cluster offers v2 now: move to it with a new epoch, which the
                # coordinator grants once this transaction's markers are written
                self._epoch_bump_required = True
        if self._epoch_bump_required and not self._transactions_v2:
            self._transition(S.INITIALIZING)
            self._enqueue(_InitProducerId(result, bump=True, transactional=True))
        else:
            self._transition(S.READY)
            result.done()
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
            if self.can_bump_epoch:
                self._epoch_bump_required = True
                self._abortable(error)
            else:
                # (not error's text: it advises an abort, which is no way out here)
                self._fatal(self._not_recoverable(
                    "records sent in this transaction were never acknowledged and can no "
                    "longer be retried, so whether the broker wrote them is unknown; it isn't "
                    "safe to continue", error))

    def send_refusal(self) -> KafkaError | None:
        """Why sends are refused now, when the transaction failed (abortable) or the producer
        did (fatal); None otherwise."""
        self._await_fence_check()
        with self._lock:
            if self.state is S.ABORTABLE_ERROR:
                return self._abort_needed()
            if self.state is S.FATAL_ERROR:
                assert self.last_error is not None
                return self.last_error
            return None

    def on_records_refused(self, topic: str, count: int, first_index: int,
                           first_error: KafkaError) -> None:
        """send_many() could not send some of a transaction's records (see SendPath)."""
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
            # Without a coordinator that can bump the epoch the transaction is still aborted,
            # and the next one goes on with the same epoch (Java does the same).
            if self.can_bump_epoch and self.state not in (S.COMMITTING, S.ABORTING):
                self._epoch_bump_required = True
            self._abortable(error)
            if isinstance(error, InvalidProducerEpochError) and self.state is S.ABORTABLE_ERROR \
                    and self._fence_check is None:
                self._start_fence_check()

    def _start_fence_check(self) -> None:
        """A partition leader refused the transaction's batch with INVALID_PRODUCER_EPOCH: the
        coordinator has a newer epoch, because a newer producer with this transactional.id
        fenced this one, or because it aborted the transaction when transaction.timeout.ms
        passed. Java treats the error as abortable for the second case (KIP-588) and learns
        which it was from the abort it asks the user for: the coordinator answers its EndTxn
        with PRODUCER_FENCED, which is fatal. The transaction cannot commit either way, so that
        abort is started here at once (as Java, the batches not sent yet are dropped), and the
        transactional calls wait for its answer: a fenced producer's first error from them is
        ProducerFencedError, not a request to abort. When the coordinator accepts the abort,
        the transaction stays abortable and abort_transaction() finishes it."""
        self._fence_check = _Result("the abort after INVALID_PRODUCER_EPOCH")
        self._drop_unsent = True
        self._new_partitions.clear()
        self._enqueue(_EndTxn(self._fence_check, commit=False, fence_check=True))

    def _fence_check_passed(self) -> None:
        """The coordinator accepted the abort of _start_fence_check (not fenced): the
        transaction is over there; abort_transaction() has nothing left to send."""
        self._acc.reset_txn_partitions()
        self._new_partitions.clear()
        self._pending_partitions.clear()
        self._transaction_started = False
        assert self._fence_check is not None
        self._fence_check.done()

    def _bump_idempotent_epoch(self) -> None:
        """KIP-360 for the idempotent producer: a new epoch, with which the partitions whose
        sequences parted from the broker's start over at 0 (Sequences.set_identity)."""
        pid, epoch = self._acc.producer_id, self._acc.producer_epoch
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


# ====================================================================== the requests


def _coordinator_error(tm: TransactionManager, code: int, message: str | None = None,
                       group_id: str | None = None) -> BrokerError:
    """The typed error of a coordinator's answer; an authorization failure names what was
    refused and the ACL it needs (the broker's own text says only "... authorization
    failed")."""
    err = error_for_code(code, message)
    tid = tm.transactional_id
    if err.name == "TRANSACTIONAL_ID_AUTHORIZATION_FAILED":
        err = error_for_code(code, (
            f"not authorized to use transactional.id {tid!r}: the principal needs WRITE and "
            f"DESCRIBE on TransactionalId {tid!r} (kafka-acls.sh --add --transactional-id "
            f"{tid} --operation Write --operation Describe ...)"), transactional_id=tid)
    elif err.name == "GROUP_AUTHORIZATION_FAILED" and group_id is not None:
        err = error_for_code(code, (
            f"not authorized to commit offsets of consumer group {group_id!r} in the "
            f"transaction of transactional.id {tid!r}: the principal needs READ on Group "
            f"{group_id!r} (kafka-acls.sh --add --group {group_id} --operation Read ...)"),
            group_id=group_id)
    elif err.name == "CLUSTER_AUTHORIZATION_FAILED":
        err = error_for_code(code, (
            "not authorized to get a producer id: an idempotent producer on brokers before "
            "Kafka 2.8 needs IDEMPOTENT_WRITE on the cluster (kafka-acls.sh --add --cluster "
            "--operation IdempotentWrite ...), or set enable.idempotence=false"))
    return err


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
        err = _coordinator_error(tm, code, entry.get("error_message"),
                                 self.coordinator_key if self.key_type == _GROUP else None)
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
            body["producer_id"] = tm._acc.producer_id
            body["producer_epoch"] = tm._acc.producer_epoch
        return body

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            tm._set_identity(body["producer_id"], body["producer_epoch"])
            tm._transition(S.READY)
            self.result.done()
            return
        err = _coordinator_error(tm, code)
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
            "v3_and_below_producer_id": tm._acc.producer_id,
            "v3_and_below_producer_epoch": tm._acc.producer_epoch,
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
                err = _coordinator_error(tm, code)
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
                    tm._abortable_if_possible(err)
                    self.result.done(tm.last_error if tm.state is S.FATAL_ERROR else err)
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
        tm._acc.txn_partitions_added(self.sent)   # their batches may go now
        tm._transaction_started = True
        self.result.done()


class _AddOffsetsToTxn(_Request):
    api_key = API.ADD_OFFSETS_TO_TXN
    priority = _ADD_PARTITIONS_OR_OFFSETS

    def __init__(self, result: _Result, group: ConsumerGroupMetadata,
                 offsets: CommitOffsets) -> None:
        super().__init__(result)
        self.group = group
        self.offsets = offsets

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        return {"transactional_id": tm.transactional_id, "producer_id": tm._acc.producer_id,
                "producer_epoch": tm._acc.producer_epoch, "group_id": self.group.group_id}

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            tm._transaction_started = True
            tm._enqueue(_TxnOffsetCommit(self.result, self.group, self.offsets))
            return
        err = _coordinator_error(tm, code, None, self.group.group_id)
        if self.handled_alike(tm, err):
            return
        if isinstance(err, (UnknownProducerIdError, InvalidProducerIdMappingError)):
            tm._abortable_if_possible(err)
            self.result.done(tm.last_error if tm.state is S.FATAL_ERROR else err)
        elif isinstance(err, GroupAuthorizationFailedError):
            tm._abortable(err)
            self.result.done(err)
        else:
            raise err


class _TxnOffsetCommit(_Request):
    api_key = API.TXN_OFFSET_COMMIT
    priority = _ADD_PARTITIONS_OR_OFFSETS
    coordinator = _GROUP

    def __init__(self, result: _Result, group: ConsumerGroupMetadata,
                 offsets: CommitOffsets) -> None:
        super().__init__(result)
        self.group = group
        self.offsets = dict(offsets)

    def key(self, tm: TransactionManager) -> str | None:
        return self.group.group_id

    def version_cap(self, tm: TransactionManager) -> int | None:
        return None if tm._transactions_v2 else 4   # v5 adds the group itself (v2 only)

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        topics: dict[str, list[dict[str, Any]]] = {}
        for (topic, partition), (offset, leader_epoch, meta) in self.offsets.items():
            topics.setdefault(topic, []).append({
                "partition_index": partition, "committed_offset": offset,
                "committed_leader_epoch": leader_epoch, "committed_metadata": meta})
        return {
            "transactional_id": tm.transactional_id, "group_id": self.group.group_id,
            "producer_id": tm._acc.producer_id, "producer_epoch": tm._acc.producer_epoch,
            "generation_id": self.group.generation_id, "member_id": self.group.member_id,
            "group_instance_id": self.group.group_instance_id,
            "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()],
        }

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        retry = False
        backoff_ms: int | None = None
        for t in body["topics"]:
            for p in t["partitions"]:
                code = p["error_code"]
                tp = (t["name"], p["partition_index"])
                if code == 0:
                    self.offsets.pop(tp, None)
                    continue
                err = _coordinator_error(tm, code, None, self.group.group_id)
                if isinstance(err, (CoordinatorNotAvailableError, NotCoordinatorError,
                                    RequestTimedOutError)):
                    tm._coordinators.pop((_GROUP, self.group.group_id), None)
                    retry = True
                elif err.retriable:
                    # as Java: an unknown topic, a loading coordinator, CONCURRENT_TRANSACTIONS
                    # (transactions v2: the previous transaction's markers are still being
                    # written to the offsets topic)... retry with the same coordinator
                    retry = True
                    if isinstance(err, ConcurrentTransactionsError):
                        # the previous transaction completes within milliseconds: in a
                        # consume-transform-produce loop this is met in every transaction,
                        # so the short backoff of the first AddPartitionsToTxn (as Java's
                        # ADD_PARTITIONS_RETRY_BACKOFF_MS) rather than retry.backoff.ms
                        backoff_ms = 20
                elif isinstance(err, (InvalidProducerEpochError, ProducerFencedError)):
                    raise ProducerFencedError(
                        f"transactional.id {tm.transactional_id!r} is used by a newer producer")
                elif err.name in ("TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
                                  "UNSUPPORTED_FOR_MESSAGE_FORMAT"):
                    raise err
                else:
                    # group authorization, fenced instance, stale generation/member...
                    err = _group_refusal(err, self.group) or err
                    tm._abortable(err)
                    self.result.done(err)
                    return
        if retry and self.offsets:
            tm._requeue(self, backoff_ms=backoff_ms)
        else:
            self.result.done()


def _group_refusal(err: BrokerError, group: ConsumerGroupMetadata) -> BrokerError | None:
    """The group coordinator's refusal of a stale member (KIP-447), in words: which member of
    which generation was refused, why that happens, and what to do. The error keeps its class
    (IllegalGenerationError, UnknownMemberIdError, FencedInstanceIdError)."""
    who = (f"member {group.member_id!r} of consumer group {group.group_id!r} "
           f"(generation {group.generation_id}"
           + (f", group.instance.id {group.group_instance_id!r})" if group.group_instance_id
              else ")"))
    what_to_do = (
        "its partitions may now belong to another member, which will process the same input: "
        "abort the transaction, let the consumer rejoin the group (poll() it), rewind it to the "
        "committed offsets of the partitions it still owns and start over with the group "
        "metadata it has then")
    if err.name == "ILLEGAL_GENERATION":
        why = ("the group has moved to a newer generation since this member's metadata was "
               "taken (a rebalance, or this consumer missed its session timeout)")
    elif err.name == "UNKNOWN_MEMBER_ID":
        why = ("the group no longer knows this member (its session timed out, or it left the "
               "group)")
    elif err.name == "FENCED_INSTANCE_ID":
        why = "another consumer with the same group.instance.id has joined the group"
        what_to_do = ("this consumer is a zombie: abort the transaction and stop it; check that "
                      "no two consumers are given the same group.instance.id")
    else:
        return None
    return error_for_code(
        err.code, f"the group coordinator refused the transaction's offsets of {who}: {why}; "
        f"{what_to_do}", group_id=group.group_id)


class _EndTxn(_Request):
    api_key = API.END_TXN
    priority = _END_TXN

    def __init__(self, result: _Result, commit: bool, fence_check: bool = False) -> None:
        super().__init__(result)
        self.commit = commit
        #: the abort started by _start_fence_check, ahead of the user's calls
        self.fence_check = fence_check
        if fence_check:
            self.priority = _INIT_PRODUCER_ID

    def version_cap(self, tm: TransactionManager) -> int | None:
        return None if tm._transactions_v2 else 4   # v5 bumps the epoch (transactions v2)

    def body(self, tm: TransactionManager, version: int) -> dict[str, Any]:
        return {"transactional_id": tm.transactional_id, "producer_id": tm._acc.producer_id,
                "producer_epoch": tm._acc.producer_epoch, "committed": self.commit}

    def handle(self, tm: TransactionManager, body: dict[str, Any]) -> None:
        code = body["error_code"]
        if code == 0:
            if tm._transactions_v2 and body.get("producer_id", -1) >= 0:
                # v2: every transaction ends with a new epoch (sequences restart at 0)
                tm._set_identity(body["producer_id"], body["producer_epoch"])
            if self.fence_check:
                tm._epoch_ended_v1 = not tm._transactions_v2
                tm._fence_check_passed()
            else:
                tm._complete_transaction(self.result, ended_v1=not tm._transactions_v2)
            return
        err = _coordinator_error(tm, code)
        if self.commit and (
                (err.name == "INVALID_TXN_STATE" and tm._transactions_v2)
                or isinstance(err, (InvalidProducerEpochError, ProducerFencedError))):
            raise _aborted_by_coordinator(tm, err)
        if self.handled_alike(tm, err):
            return
        if isinstance(err, (UnknownProducerIdError, InvalidProducerIdMappingError)):
            tm._abortable_if_possible(err)
            self.result.done(tm.last_error if tm.state is S.FATAL_ERROR else err)
        elif isinstance(err, TransactionAbortableError):
            tm._epoch_bump_required = tm.can_bump_epoch
            tm._abortable(err)
            self.result.done(err)
        else:
            raise err


def _aborted_by_coordinator(tm: TransactionManager, err: BrokerError) -> ProducerFencedError:
    """A commit refused because the coordinator had already aborted the transaction on its
    own: it outlived transaction.timeout.ms, or a newer producer with the same transactional.id
    fenced this one. Either abort bumped the epoch. Transactions v1 coordinators answer
    PRODUCER_FENCED. Under v2 the commit's epoch, one below the coordinator's, is what a
    retried EndTxn looks like: brokers before KAFKA-20785 then answer INVALID_TXN_STATE (which
    reads as a broken client), later ones PRODUCER_FENCED. All mean the same to the user:
    nothing of the transaction is visible and this producer's epoch is gone, so the error is
    ProducerFencedError (fatal, as in Java), saying which of the two it most likely was."""
    age_ms = monotonic_ms() - tm._began_ms
    tid = tm.transactional_id
    if age_ms >= tm._timeout_ms:
        why = (f"the transaction was open for {age_ms} ms, longer than transaction.timeout.ms="
               f"{tm._timeout_ms}, so the coordinator aborted it")
    else:
        why = (f"a newer producer with transactional.id {tid!r} fenced this one and the "
               f"coordinator aborted its transaction")
    return ProducerFencedError(
        f"commit_transaction() of transactional.id {tid!r} refused ({err.name}): {why}; "
        f"nothing the transaction wrote becomes visible and this producer's epoch is gone. "
        f"Close it, create a new producer with the same transactional.id, call "
        f"init_transactions() and redo the transaction (raise transaction.timeout.ms if "
        f"transactions legitimately take longer)", transactional_id=tid)
