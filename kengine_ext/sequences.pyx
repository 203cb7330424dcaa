# Idempotent sequence numbers (part of kengine_ext._core): the producer id and epoch, and each
# partition's sequences, with every rule about them in one place (see sequences.pxd for the
# fields, their owner and thread).
#
# The broker accepts a producer's batches for a partition only in sequence order, and answers a
# resent batch with its original offset if it is among the last five it wrote (Kafka's
# ProducerStateEntry). Three rules follow, and everything below serves them:
#
# 1. A batch gets its sequence when, and only when, it goes into a request (on_drain): a batch
#    given a sequence stays closed to appends, and the next batch's sequences start after its
#    last record. Sequences handed to batches that did not go out would overlap later ones.
# 2. A partition's batches go out in sequence order: a resent batch goes only when it is the
#    oldest unfinished one, and a new batch waits while batches of an older producer id/epoch,
#    renumbered batches or a batch of unknown fate are unfinished.
# 3. Never more than SEQ_WINDOW_BATCHES batches from the oldest unfinished one on: whatever the
#    broker wrote after it, it still remembers it, so a retry of a written batch is answered with
#    its offset. Acknowledged therefore always means "written at this offset": nothing here
#    infers success from other batches.
# 4. Nothing is pipelined behind a partition's first batch of a producer id/epoch until the
#    broker acknowledged it: a leader with no state for the producer accepts any first sequence
#    (Kafka's ProducerAppendInfo.checkSequence), so a second batch reaching it before a first
#    one that was refused (a partition still loading: NOT_LEADER_OR_FOLLOWER) would be written
#    first, and the first could never follow.
#
# Renumbering (a new epoch for the idempotent producer, a gap closed in a transaction, the
# broker forgetting the producer) marks unfinished batches `seq_reassign`; each gets its new
# sequence when it next goes out, in window order, so a batch still in flight under its old
# sequence is never overtaken and its bytes are never patched while a request holds them.
#
# 5. A batch that may have been written under the old epoch is never renumbered by an
#    idempotent epoch bump. The bump is asked for because the leader refused a batch R: R and
#    every later sequence of that epoch are unwritten (the leader writes a producer's sequences
#    only in order), but a batch before R may have been written by an attempt whose answer was
#    lost. Renumbered, it would be written a second time under the new epoch (Java's
#    startSequencesAtBeginning does that). Those batches `settle` first: resent under their old
#    epoch and sequences (the leader has seen no newer epoch for the partition, since nothing
#    of the new one goes out before they finish), they are answered with their offset if they
#    were written; refused OUT_OF_ORDER as the oldest, they were not (rule 3). Then the
#    partition restarts under the new epoch.
#
# The rules follow Java's TransactionManager (canRetry, handleFailedBatch,
# maybeResolveSequences) and RecordAccumulator.shouldStopDrainBatchesForPartition, with two
# differences: the window of rule 3, and DUPLICATE_SEQUENCE_NUMBER, which counts as success only
# for a batch already sent before with the same producer id, epoch and sequence.

from kengine_ext.errors import KafkaError

_seq_log = logging.getLogger("kengine.sequences")

__all__ += ["Sequences", "PartitionSequences", "SEQUENCE_ERROR_CODES"]

#: The Kafka error codes the rules below tell apart, by Kafka's name (a test compares them with
#: kengine.errors, generated from Kafka's own table).
SEQUENCE_ERROR_CODES = {
    "OUT_OF_ORDER_SEQUENCE_NUMBER": ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
    "DUPLICATE_SEQUENCE_NUMBER": ERR_DUPLICATE_SEQUENCE_NUMBER,
    "INVALID_PRODUCER_EPOCH": ERR_INVALID_PRODUCER_EPOCH,
    "UNKNOWN_PRODUCER_ID": ERR_UNKNOWN_PRODUCER_ID,
}


cdef inline int32_t sequence_after(int32_t seq, int32_t count) noexcept:
    # Kafka's sequences wrap from INT32_MAX to 0 (DefaultRecordBatch.incrementSequence)
    if seq > 0x7FFFFFFF - count:
        return count - (0x7FFFFFFF - seq) - 1
    return seq + count


cdef inline int32_t last_sequence_of(ProducerBatch b) noexcept:
    return sequence_after(b.builder._base_sequence, b.record_count - 1)


cdef inline bint sequence_is_after(int32_t a, int32_t b) noexcept:
    """a comes after b (sequences wrap at INT32_MAX: compare the distance)."""
    return a != b and ((a - b) & 0x7FFFFFFF) < 0x40000000


cdef inline void take_reassignment(PartitionSequences ps, ProducerBatch b) noexcept:
    """b no longer waits for a new sequence (it took one, or it will never need one): the one
    place that clears seq_reassign for a single batch, so reassign_pending keeps counting the
    batches that still wait."""
    if b.seq_reassign:
        b.seq_reassign = False
        ps.reassign_pending -= 1


cdef class PartitionSequences:
    """The sequence state of one partition (read-only outside this file)."""

    def __cinit__(self, str topic, int32_t partition):
        self.topic = topic
        self.partition = partition
        self.producer_id = -1
        self.producer_epoch = -1
        self.last_acked_sequence = -1
        self.last_acked_offset = -1
        self.unresolved_next = -1
        self.window = []

    cdef int trim(self) except -1:
        """Drops finished batches from the front: the window starts at the oldest unfinished."""
        cdef list w = self.window
        cdef Py_ssize_t n = 0
        while n < len(w) and (<ProducerBatch>w[n]).seq_status == SEQ_FINISHED:
            n += 1
        if n:
            del w[:n]
        return 0

    def batches(self) -> list:
        """The window's batches (a snapshot, for tests and debugging)."""
        return list(self.window)

    def _continue_from(self, int64_t producer_id, int producer_epoch, int32_t next_sequence):
        """Tests: the partition's sequences continue from next_sequence for this producer, as
        if that many records had been acknowledged (reaching INT32_MAX takes 2^31 records)."""
        if self.unfinished:
            raise IllegalStateError("only a partition with nothing unfinished can be moved")
        self.producer_id = producer_id
        self.producer_epoch = <int16_t>producer_epoch
        self.next_sequence = next_sequence
        self.last_acked_sequence = sequence_after(next_sequence, 0x7FFFFFFF) \
            if next_sequence > 0 else 0x7FFFFFFF
        del self.window[:]

    def __repr__(self):
        return (f"PartitionSequences({self.topic}-{self.partition}, producer={self.producer_id}/{self.producer_epoch}, "
                f"next={self.next_sequence}, last_acked={self.last_acked_sequence}, "
                f"window={len(self.window)}, unfinished={self.unfinished}, "
                f"reassign={self.reassign_pending}, unresolved_next={self.unresolved_next})")


cdef class Sequences:
    """The idempotent producer's identity and sequence rules. The accumulator's drain asks
    may_drain()/on_drain(); the sender reports every answer and expiry of a batch; the
    transaction manager sets the identity. Sender thread only.

    on_success(), on_failed() and on_expired() return None, or, for a transactional producer
    that can no longer account for a sent batch, the error that makes the transaction
    abortable (the caller hands it to the transaction manager, which also bumps the epoch)."""

    def __cinit__(self, *, bint transactional=False, str client_id=""):
        self.producer_id = -1
        self.producer_epoch = -1
        self.transactional = transactional
        self._client_id = client_id
        self._rewrite = []

    # -- identity (the transaction manager, after InitProducerId or EndTxn v5) --

    def set_identity(self, int64_t producer_id, int producer_epoch):
        """A new producer id or epoch. Partitions asked to renumber (an idempotent epoch bump)
        restart at sequence 0 with it now; every other partition moves to it once its batches
        of the old identity are finished."""
        cdef PartitionSequences ps
        self.producer_id = producer_id
        self.producer_epoch = <int16_t>producer_epoch
        if producer_id < 0:
            return   # the epoch ran out: renumbering waits for the new producer id
        for ps in self._rewrite:
            ps.rewrite = False
            self.start_settling(ps)
        self._rewrite = []
        self.epoch_bump_requested = False

    # -- the drain (accumulator.pyx) --

    cdef bint may_drain(self, PartitionQueue q, ProducerBatch b) except -1:
        """Whether b, the head of q, may go into a request now (rules 2 and 3)."""
        cdef PartitionSequences ps = q.sequences
        if ps.rewrite:
            return False   # an epoch bump will renumber the partition first
        if b.seq_status == SEQ_UNFINISHED:
            # sent before (a retry, a split piece, a renumbered batch): only as the oldest
            return <ProducerBatch>ps.window[0] is b
        if ps.unresolved_next >= 0:
            return False
        if ps.unfinished > 0:
            if ps.producer_id != self.producer_id or ps.producer_epoch != self.producer_epoch:
                return False   # batches of the old identity first
            if ps.reassign_pending > 0:
                return False   # renumbered batches take the next sequences first
            if len(ps.window) >= SEQ_WINDOW_BATCHES:
                return False
            if ps.last_acked_sequence < 0:
                return False   # rule 4: the broker may not know this producer yet
        return True

    cdef int on_drain(self, PartitionQueue q, ProducerBatch b) except -1:
        """b goes into a request now: gives it its sequence (rule 1) and writes its producer
        id, epoch and sequence into its bytes if they changed since it was last sent (no
        request holds them: it was answered before it came back to the queue)."""
        cdef PartitionSequences ps = q.sequences
        cdef RecordBatchBuilder builder = b.builder
        cdef int64_t pid = builder._producer_id
        cdef int16_t epoch = builder._producer_epoch
        cdef int32_t seq = builder._base_sequence
        if b.seq_status == SEQ_NONE:
            if ps.unfinished == 0 and (ps.producer_id != self.producer_id
                                       or ps.producer_epoch != self.producer_epoch):
                # a new producer id or epoch starts the partition's sequences over
                ps.producer_id = self.producer_id
                ps.producer_epoch = self.producer_epoch
                ps.next_sequence = 0
                ps.last_acked_sequence = -1
                del ps.window[:]
            b.seq_status = SEQ_UNFINISHED
            ps.window.append(b)
            ps.unfinished += 1
            pid, epoch, seq = ps.producer_id, ps.producer_epoch, ps.next_sequence
            ps.next_sequence = sequence_after(seq, b.record_count)
        elif b.seq_reassign:
            take_reassignment(ps, b)
            pid, epoch, seq = ps.producer_id, ps.producer_epoch, ps.next_sequence
            ps.next_sequence = sequence_after(seq, b.record_count)
        if pid != builder._producer_id or epoch != builder._producer_epoch \
                or seq != builder._base_sequence:
            builder.set_producer_state(pid, epoch, seq)
            b.identity_attempts = 0
        b.identity_attempts += 1
        return 0

    cdef Py_ssize_t order_of(self, ProducerBatch b) except -2:
        """b's place in its partition's window (retries go back into the queue in this order),
        -1 for a batch without a sequence."""
        cdef list w
        if b.seq_status != SEQ_UNFINISHED:
            return -1
        w = b.queue.sequences.window
        for i in range(len(w)):
            if w[i] is b:
                return i
        return -1

    # -- answers and expiry (the sender) --

    cdef bint stale(self, PartitionSequences ps, ProducerBatch b) noexcept:
        """The answer for b is about sequences it will not carry again: it has been
        renumbered since, or its partition moved to another producer id/epoch."""
        return b.seq_reassign or b.builder is None or \
            b.builder._producer_id != ps.producer_id or \
            b.builder._producer_epoch != ps.producer_epoch

    cdef bint is_next(self, PartitionSequences ps, int32_t sequence) noexcept:
        if ps.last_acked_sequence < 0:
            return sequence == 0
        return sequence == sequence_after(ps.last_acked_sequence, 1)

    def duplicate_is_written(self, ProducerBatch b) -> bool:
        """DUPLICATE_SEQUENCE_NUMBER for b: success only if an earlier attempt carried these
        very sequences (the broker then says it has them, without their offset). For a first
        attempt it means other records hold them: b was not written."""
        if b.seq_status != SEQ_UNFINISHED:
            return False
        return not self.stale(b.queue.sequences, b) and b.identity_attempts >= 2

    def refusal_proves_unwritten(self, ProducerBatch b, object error) -> bool:
        """Does the broker's refusal of b prove that no earlier attempt of b was written? Only
        OUT_OF_ORDER_SEQUENCE_NUMBER does, when every attempt carried the same producer id,
        epoch and sequence: the leader looked for b among the batches it remembers (a written
        one would still be there, rule 3, and be answered with its offset) and did not find
        it. Other refusals (not the leader, too large...) come before that look."""
        return getattr(error, "code", 0) == ERR_OUT_OF_ORDER_SEQUENCE_NUMBER \
            and b.seq_status == SEQ_UNFINISHED and not self.stale(b.queue.sequences, b) \
            and b.identity_attempts == b.attempts

    def on_success(self, ProducerBatch b, int64_t base_offset):
        """The broker wrote b (or answered a retry of it with its original offset)."""
        cdef PartitionSequences ps
        cdef int32_t last
        if b.seq_status != SEQ_UNFINISHED:
            return
        ps = b.queue.sequences
        if self.stale(ps, b):
            # written under the sequences it had before a renumbering: nothing of the new
            # numbering was used for it
            take_reassignment(ps, b)
        else:
            last = last_sequence_of(b)
            if ps.last_acked_sequence < 0 or sequence_is_after(last, ps.last_acked_sequence):
                ps.last_acked_sequence = last
            if base_offset >= 0 and base_offset + b.record_count - 1 > ps.last_acked_offset:
                ps.last_acked_offset = base_offset + b.record_count - 1
        self.finish(ps, b)
        return self.maybe_resolve(ps)

    def can_retry(self, ProducerBatch b, object error, int64_t log_start_offset) -> bool:
        """Whether b, answered with `error` by its partition leader, is resent (Java's
        TransactionManager.canRetry); asks for an epoch bump or renumbers when the answer
        shows the broker's sequences and ours have parted."""
        cdef PartitionSequences ps
        cdef int code = getattr(error, "code", 0)
        cdef bint stale
        if b.seq_status != SEQ_UNFINISHED:
            return error.retriable
        ps = b.queue.sequences
        stale = self.stale(ps, b)
        if b.seq_settle and <ProducerBatch>ps.window[0] is b and (
                code == ERR_OUT_OF_ORDER_SEQUENCE_NUMBER or code == ERR_DUPLICATE_SEQUENCE_NUMBER):
            # resent under its old epoch as the oldest unfinished batch: had an attempt been
            # written, the leader would remember it (rule 3) and answer with its offset. It was
            # not: the partition restarts under the new epoch now, this batch first (rule 5)
            _seq_log.info("[%s] %s-%d: the batch at sequence %d of epoch %d was not written "
                          "(%s); renumbering the partition under epoch %d", self._client_id,
                          b.topic, b.partition, b.builder._base_sequence,
                          b.builder._producer_epoch, getattr(error, "name", error),
                          self.producer_epoch)
            self.restart(ps)
            return True
        if code == ERR_UNKNOWN_PRODUCER_ID:
            if log_start_offset == -1 or stale:
                return True
            if ps.last_acked_offset < log_start_offset:
                # retention removed the log's head, and with it the producer's state
                if self.transactional:
                    self.restart(ps)
                else:
                    # the leader forgot the producer: no old epoch to settle anything under
                    self.request_rewrite(ps, [])
                return True
            if not self.transactional:
                self.request_rewrite(ps, [])
                return True
            return False
        if code == ERR_OUT_OF_ORDER_SEQUENCE_NUMBER or code == ERR_DUPLICATE_SEQUENCE_NUMBER:
            # (a DUPLICATE that counts as success never gets here: see duplicate_is_written)
            if not stale and ps.last_acked_sequence >= 0 and <ProducerBatch>ps.window[0] is b \
                    and sequence_is_after(ps.last_acked_sequence, last_sequence_of(b)):
                # The oldest unfinished batch, and the broker acknowledged later sequences: it
                # holds them without this one (by rule 3 it would still remember this one had
                # it been written), which no retry under these sequences can mend.
                _seq_log.error(
                    "[%s] the broker acknowledged sequences of %s-%d after %d but refuses "
                    "%d-%d (%s): those records were not written; %s", self._client_id, b.topic,
                    b.partition, ps.last_acked_sequence, b.builder._base_sequence,
                    last_sequence_of(b), getattr(error, "name", error),
                    "failing them, the transaction must be aborted" if self.transactional
                    else "resending them under a new epoch")
                if self.transactional:
                    return False
                self.request_rewrite(ps, [])   # b is the oldest: nothing before it
                return True
            if ps.unresolved_next < 0 and (stale or not self.is_next(ps, b.builder._base_sequence)):
                return True   # not the next batch: it follows an earlier one being resent
            if not self.transactional:
                if ps.unresolved_next < 0 or ps.unresolved_next == b.builder._base_sequence:
                    _seq_log.error(
                        "[%s] the broker's sequences for %s-%d disagree with ours at sequence %d "
                        "(%s): it lost records it had acknowledged (unclean leader election?) or "
                        "holds records it never acknowledged; bumping the epoch to go on",
                        self._client_id, b.topic, b.partition, b.builder._base_sequence,
                        getattr(error, "name", error))
                    self.request_rewrite(ps, self.maybe_written(ps, self.refused_unwritten(b)))
                return True
            return False
        if code == ERR_INVALID_PRODUCER_EPOCH and stale and not self.transactional:
            return True   # sent with the epoch before our own bump: resend with the new one
        return error.retriable

    def on_failed(self, ProducerBatch b, object error, bint adjust_sequences):
        """b failed for good on an answer from its leader (Java's handleFailedBatch)."""
        cdef PartitionSequences ps
        cdef int code = getattr(error, "code", 0)
        if b.seq_status != SEQ_UNFINISHED:
            return
        ps = b.queue.sequences
        if self.stale(ps, b):
            take_reassignment(ps, b)
            self.finish(ps, b)
        elif code == ERR_OUT_OF_ORDER_SEQUENCE_NUMBER and not self.transactional:
            unwritten = self.refused_unwritten(b)
            self.finish(ps, b)
            self.request_rewrite(ps, self.maybe_written(ps, unwritten))
        elif code == ERR_UNKNOWN_PRODUCER_ID:
            self.finish(ps, b)
            self.restart(ps)   # the broker forgot this producer: sequences start over
        elif adjust_sequences:
            if self.transactional:
                self.close_gap(ps, b)
            else:
                # an earlier attempt of b may have been written, and so may later batches
                self.finish(ps, b)
                self.request_rewrite(ps, self.maybe_written(ps, None))
        else:
            self.finish(ps, b)
        return self.maybe_resolve(ps)

    def on_expired(self, ProducerBatch b):
        """b passed delivery.timeout.ms after it was sent (waiting for its answer or for a
        retry): whether the broker wrote it is unknown until later batches tell."""
        cdef PartitionSequences ps
        cdef int32_t nxt
        if b.seq_status != SEQ_UNFINISHED:
            return
        ps = b.queue.sequences
        if self.stale(ps, b):
            take_reassignment(ps, b)
        else:
            nxt = sequence_after(last_sequence_of(b), 1)
            if ps.unresolved_next < 0 or sequence_is_after(nxt, ps.unresolved_next):
                ps.unresolved_next = nxt
        self.finish(ps, b)
        return self.maybe_resolve(ps)

    def on_abandoned(self, ProducerBatch b):
        """b will never be sent again and its fate does not matter for later sequences (the
        producer is closing, or failed fatally)."""
        if b.seq_status == SEQ_UNFINISHED:
            take_reassignment(b.queue.sequences, b)
            self.finish(b.queue.sequences, b)

    def on_split(self, ProducerBatch big, list pieces):
        """The broker refused `big` as too large and its records went into `pieces`, which
        carry its sequences: they take its place in the window, unsent."""
        cdef PartitionSequences ps
        cdef ProducerBatch p
        cdef Py_ssize_t i
        if big.seq_status != SEQ_UNFINISHED:
            return
        ps = big.queue.sequences
        i = self.order_of(big)
        for p in pieces:
            p.seq_status = SEQ_UNFINISHED
            p.seq_reassign = big.seq_reassign
            p.seq_settle = big.seq_settle
            p.identity_attempts = 0
        ps.window[i:i + 1] = pieces
        ps.unfinished += len(pieces) - 1
        if big.seq_reassign:
            ps.reassign_pending += len(pieces) - 1
        if big.seq_settle:
            ps.settling += len(pieces) - 1
        big.seq_status = SEQ_FINISHED
        big.seq_reassign = False
        big.seq_settle = False
        if ps.settle is not None:
            # a bump not made yet: the pieces stand where big stood among those to settle
            for i in range(len(ps.settle)):
                if ps.settle[i] is big:
                    ps.settle[i:i + 1] = pieces
                    break

    # -- bookkeeping --

    cdef int finish(self, PartitionSequences ps, ProducerBatch b) except -1:
        b.seq_status = SEQ_FINISHED
        ps.unfinished -= 1
        ps.trim()
        if b.seq_settle:
            b.seq_settle = False
            ps.settling -= 1
            if ps.settling == 0:
                # every batch that may have been written under the old epoch has its outcome:
                # the rest of the partition goes on under the new one (rule 5)
                self.restart(ps)
        return 0

    cdef int restart(self, PartitionSequences ps) except -1:
        """Sequences of the partition start over at 0 with the current identity: every
        unfinished batch gets a new sequence when it next goes out, oldest first."""
        cdef ProducerBatch b
        ps.producer_id = self.producer_id
        ps.producer_epoch = self.producer_epoch
        ps.next_sequence = 0
        ps.last_acked_sequence = -1
        ps.unresolved_next = -1
        ps.trim()
        ps.window = [b for b in ps.window if b.seq_status == SEQ_UNFINISHED]
        ps.settling = 0
        for b in ps.window:
            b.seq_settle = False
            if not b.seq_reassign:
                b.seq_reassign = True
                ps.reassign_pending += 1
        return 0

    cdef ProducerBatch refused_unwritten(self, ProducerBatch b):
        """b, refused OUT_OF_ORDER_SEQUENCE_NUMBER, if that proves no attempt of it was
        written (see refusal_proves_unwritten), else None."""
        if b.identity_attempts == b.attempts and not self.stale(b.queue.sequences, b):
            return b
        return None

    cdef list maybe_written(self, PartitionSequences ps, ProducerBatch first_unwritten):
        """The unfinished batches of the partition an attempt of which may have been written:
        those before first_unwritten (the leader writes a producer's sequences in order, so
        nothing after an unwritten batch was written), all of them without one."""
        cdef list out = []
        cdef object x
        for x in ps.window:
            if x is first_unwritten:
                return out
            if (<ProducerBatch>x).seq_status == SEQ_UNFINISHED:
                out.append(x)
        if first_unwritten is not None:
            return []   # not in the window: it was the oldest, nothing came before it
        return out

    cdef int request_rewrite(self, PartitionSequences ps, list may_be_written) except -1:
        """Idempotent producer: the partition continues under a new epoch, from sequence 0.
        may_be_written (a prefix of its unfinished batches) settle first (rule 5)."""
        if ps.settle is None:
            ps.settle = may_be_written
        else:
            # asked again before the bump: only what both answers leave possibly written
            ps.settle = [x for x in ps.settle if any(x is y for y in may_be_written)]
        if not ps.rewrite:
            ps.rewrite = True
            self._rewrite.append(ps)
        self.epoch_bump_requested = True
        return 0

    cdef int start_settling(self, PartitionSequences ps) except -1:
        """At the bump: the batches that may have been written keep their old epoch and go
        out first, oldest first (rule 5); without any, the partition restarts now."""
        cdef list settle = []
        cdef object x
        cdef ProducerBatch b
        for x in (ps.settle or ()):
            b = <ProducerBatch>x
            if b.seq_status != SEQ_UNFINISHED:
                continue   # answered since the bump was asked for
            if self.stale(ps, b) or b.identity_attempts == 0:
                # never sent with these sequences (a renumbered batch, a split's piece): it was
                # not written, so nothing after it was either (sequences are written in order)
                break
            settle.append(b)
        ps.settle = None
        for b in ps.window:
            b.seq_settle = False
        ps.settling = 0
        if not settle:
            self.restart(ps)
            return 0
        for b in settle:
            b.seq_settle = True
        ps.settling = len(settle)
        _seq_log.info("[%s] %s-%d: %d batch(es) from sequence %d of epoch %d may have been "
                      "written; resending them under that epoch before the partition goes on "
                      "under epoch %d", self._client_id, ps.topic, ps.partition, len(settle),
                      (<ProducerBatch>settle[0]).builder._base_sequence, ps.producer_epoch,
                      self.producer_epoch)
        return 0

    cdef int close_gap(self, PartitionSequences ps, ProducerBatch failed) except -1:
        """Transactional: a batch the broker refused for good was not written, and leaves a
        hole in the sequences; the batches after it take its sequences over (Java's
        adjustSequencesDueToFailedBatch)."""
        cdef ProducerBatch b
        cdef bint after = False
        cdef int32_t first = failed.builder._base_sequence
        for b in ps.window:
            if b is failed:
                after = True
            elif after and b.seq_status == SEQ_UNFINISHED and not b.seq_reassign:
                b.seq_reassign = True
                ps.reassign_pending += 1
        self.finish(ps, failed)
        ps.next_sequence = first
        return 0

    cdef object maybe_resolve(self, PartitionSequences ps):
        """Once nothing of the partition is unfinished, a batch of unknown fate is settled:
        written if every sequence handed out was acknowledged (Java's maybeResolveSequences),
        otherwise the sequences start over (a new epoch; in a transaction, after an abort)."""
        if ps.unresolved_next < 0 or ps.unfinished > 0:
            return None
        if self.is_next(ps, ps.next_sequence):
            ps.unresolved_next = -1
            return None
        ps.unresolved_next = -1
        if self.transactional:
            return KafkaError(
                f"some records sent to {ps.topic}-{ps.partition} in this transaction were never "
                f"acknowledged; abort the transaction (it is safe to continue after that)")
        else:
            _seq_log.info("[%s] nothing of %s-%d is in flight, the last acknowledged sequence "
                          "is %d and the next %d: bumping the epoch", self._client_id,
                          ps.topic, ps.partition, ps.last_acked_sequence, ps.next_sequence)
            self.request_rewrite(ps, [])   # nothing unfinished: nothing to settle
        return None

