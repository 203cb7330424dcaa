# Idempotent sequence numbers (KIP-98, KIP-360): declarations (part of kengine_ext._core).
#
# One owner: every field below, and the sequence fields of ProducerBatch (batch.pxd), are
# written only by functions of sequences.pyx, and only on the sender thread (the drain, produce
# answers, expiry, splits and the transaction manager's identity changes all run there).
# User threads never read them. The GIL makes each C-level function atomic with respect to
# Python code on other threads; nothing here releases it.
from libc.stdint cimport int16_t, int32_t, int64_t


# ProducerBatch.seq_status
cdef enum:
    SEQ_NONE = 0         # never drained: no producer id, epoch or sequence yet
    SEQ_UNFINISHED = 1   # drained at least once with a sequence, no final outcome yet
    SEQ_FINISHED = 2     # acknowledged, failed or expired; may still sit in a window

# Batches per producer and partition whose sequence ranges the broker remembers to answer a
# retry with the original offset (Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN). A window
# never grows past it, so a retry of a batch that was written always finds it remembered.
cdef enum:
    SEQ_WINDOW_BATCHES = 5

# Kafka error codes the sequence rules tell apart (a unit test checks them against
# kengine.errors, which is generated from Kafka's own table).
cdef enum:
    ERR_OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    ERR_DUPLICATE_SEQUENCE_NUMBER = 46
    ERR_INVALID_PRODUCER_EPOCH = 47
    ERR_UNKNOWN_PRODUCER_ID = 59


cdef class PartitionSequences:
    cdef readonly str topic
    cdef readonly int32_t partition
    # The producer id and epoch next_sequence counts for. It follows the producer's identity
    # only when no batch of an older identity is unfinished (they must finish first, or a new
    # epoch's sequence 0 could overtake them), or when an epoch bump renumbers the partition.
    cdef readonly int64_t producer_id            # -1: none yet
    cdef readonly int16_t producer_epoch
    cdef readonly int32_t next_sequence          # base sequence of the next batch given one
    cdef readonly int32_t last_acked_sequence    # last sequence the broker acknowledged, -1: none
    cdef readonly int64_t last_acked_offset      # log offset of that record, -1: unknown
    # The oldest unfinished batch and every batch given a sequence after it, in sequence
    # order. Finished batches stay until every older one is finished: together they are what
    # the broker may remember after the oldest unfinished one. window[0] is unfinished.
    cdef list window
    cdef readonly int32_t unfinished             # batches in window not finished
    cdef readonly int32_t reassign_pending       # unfinished batches waiting for a new sequence
    # After a batch expired in flight (written or not?): the sequence that follows it. No new
    # sequence is handed out until later acknowledgements settle it (-1: nothing unresolved).
    cdef readonly int32_t unresolved_next
    cdef bint rewrite                            # renumber at the next epoch bump
    # For that bump: the unfinished batches older than the one whose refusal asked for it, any
    # of which may have been written (None: none asked yet). They keep their old epoch and
    # sequences and are resent first: renumbered, a written one would be written twice.
    cdef list settle
    cdef readonly int32_t settling               # such batches still unfinished (seq_settle)

    cdef int trim(self) except -1


cdef class Sequences:
    cdef readonly int64_t producer_id            # -1 until InitProducerId answers
    cdef readonly int16_t producer_epoch
    cdef readonly bint transactional
    cdef readonly bint epoch_bump_requested      # idempotent producer: a partition needs one
    cdef list _rewrite                           # PartitionSequences to renumber at the bump
    cdef str _client_id                          # for log lines

    cdef bint may_drain(self, PartitionQueue q, ProducerBatch b) except -1
    cdef int on_drain(self, PartitionQueue q, ProducerBatch b) except -1
    cdef Py_ssize_t order_of(self, ProducerBatch b) except -2
    cdef bint stale(self, PartitionSequences ps, ProducerBatch b) noexcept
    cdef bint is_next(self, PartitionSequences ps, int32_t sequence) noexcept
    cdef int finish(self, PartitionSequences ps, ProducerBatch b) except -1
    cdef int restart(self, PartitionSequences ps) except -1
    cdef ProducerBatch refused_unwritten(self, ProducerBatch b)
    cdef list maybe_written(self, PartitionSequences ps, ProducerBatch first_unwritten)
    cdef int request_rewrite(self, PartitionSequences ps, list may_be_written) except -1
    cdef int start_settling(self, PartitionSequences ps) except -1
    cdef int close_gap(self, PartitionSequences ps, ProducerBatch failed) except -1
    cdef object maybe_resolve(self, PartitionSequences ps)
