# Partition choice (part of kengine_ext._core). SendPath.choose_partition() comes here for
# every record sent without an explicit partition; see partitioner.pxd for the state and guards.
#
# The built-in partitioners run in C with no Python call per record:
#
# * default: a keyed record goes to (murmur2(key) & 0x7fffffff) % partitions, over all
#   partitions, exactly as Java's BuiltInPartitioner.partitionForKey (an empty key is hashed).
#   Null keys, or every key with partitioner.ignore.keys, use Java's KIP-794 uniform sticky
#   partitioner: stay on one partition until batch.size bytes went to it (and its last batch is
#   full; 2 x batch.size at most), then pick the next one at random, weighted by queue sizes
#   (adaptive) and skipping partitions whose leader stopped taking data (availability timeout).
# * murmur2_random (librdkafka): the same placement as default, by construction: librdkafka's
#   murmur2 is Java's, and it too places only null keys randomly.
# * consistent_random (librdkafka): CRC-32 (zlib's) of the key % partitions; null and empty keys
#   are placed randomly. librdkafka makes that random choice sticky for 10 ms; kengine uses the
#   KIP-794 sticky partitioner, which switches by bytes instead of time.
# * round_robin (Java's RoundRobinPartitioner): record i of a topic goes to the i-th available
#   partition (leader known) modulo their count, or modulo all partitions when none is
#   available; keys are ignored. Java calls partition() twice for a record that opens a batch,
#   which skipped every other partition until KAFKA-9965/KAFKA-17632 made the second call
#   return the first answer; the core calls it once per record, which is the fixed behaviour.
#
# A Python partitioner (PARTITIONER_PYTHON) is called once per record with the record's topic,
# key (bytes), value (as given to send()), headers, partition count and available partitions, and
# may return None to let the sticky partitioner place the record.

import logging
import time

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport uint32_t

cdef object _plog = logging.getLogger("kengine.partitioner")

__all__ += ["BUILTIN_PARTITIONERS", "Partitioning"]

#: Partitioner names the core runs itself (kengine.partitioners adds the Python ones).
BUILTIN_PARTITIONERS = ("default", "round_robin", "consistent_random", "murmur2_random")

cdef dict _KINDS = {
    "default": PARTITIONER_DEFAULT,
    "murmur2_random": PARTITIONER_DEFAULT,
    "round_robin": PARTITIONER_ROUND_ROBIN,
    "consistent_random": PARTITIONER_CONSISTENT_RANDOM,
}

# zlib's CRC-32 (reflected polynomial 0xEDB88320), which librdkafka's consistent partitioners
# use. Keys are short, so one table lookup per byte is enough.
cdef uint32_t CRC32_TABLE[256]


cdef void crc32_table_init() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (c >> 1) ^ 0xEDB88320u if c & 1 else c >> 1
        CRC32_TABLE[i] = c


crc32_table_init()


cdef inline uint32_t crc32_ieee(const char *data, Py_ssize_t n) noexcept nogil:
    cdef const unsigned char *p = <const unsigned char *>data
    cdef uint32_t c = 0xFFFFFFFFu
    cdef Py_ssize_t i
    for i in range(n):
        c = CRC32_TABLE[(c ^ p[i]) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFFu


cdef inline uint64_t xorshift(uint64_t *state) noexcept nogil:
    cdef uint64_t x = state[0]
    x ^= x << 13
    x ^= x >> 7
    x ^= x << 17
    state[0] = x
    return x


cdef inline uint32_t random_positive(uint64_t *state) noexcept nogil:
    # 31 random bits: Java's Utils.toPositive(ThreadLocalRandom.nextInt())
    return <uint32_t>(xorshift(state) >> 33)


cdef class TopicPartitioner:
    """Partitioner state of one topic: the sticky partition, the round-robin counter, the
    available partitions and a bound Python partitioner."""

    def __cinit__(self):
        self.sticky_partition = -1
        self.available = ()

    def __dealloc__(self):
        PyMem_Free(self.available_ids)
        PyMem_Free(self.cft)
        PyMem_Free(self.cft_ids)

    cdef int refresh(self, list queues) except -1:
        """Recomputes the available partitions after a metadata update."""
        cdef PartitionQueue q
        cdef int32_t n = <int32_t>len(queues), i
        cdef int32_t *ids
        cdef int64_t *cft
        cdef int32_t *cft_ids
        # Python objects first: an allocation may run the garbage collector (and so Python
        # code), which must not find the C arrays half updated.
        available = tuple([q.partition for q in queues if q.leader_id >= 0])
        if n > self.capacity:
            ids = <int32_t *>PyMem_Realloc(self.available_ids, n * sizeof(int32_t))
            if ids == NULL:
                raise MemoryError()
            self.available_ids = ids
            cft_ids = <int32_t *>PyMem_Realloc(self.cft_ids, n * sizeof(int32_t))
            if cft_ids == NULL:
                raise MemoryError()
            self.cft_ids = cft_ids
            cft = <int64_t *>PyMem_Realloc(self.cft, n * sizeof(int64_t))
            if cft == NULL:
                raise MemoryError()
            self.cft = cft
            self.capacity = n
        self.available_count = 0
        for i in range(n):
            q = <PartitionQueue>queues[i]
            if q.leader_id >= 0:
                self.available_ids[self.available_count] = i
                self.available_count += 1
        self.num_partitions = n
        self.available = available
        return 0

    @property
    def sticky(self) -> int:
        """The partition unkeyed records go to now (-1: none chosen yet)."""
        return self.sticky_partition

    @property
    def produced_bytes(self) -> int:
        """Estimated batch bytes unkeyed records added to the sticky partition since it was
        chosen (Java's producedBytes); 0 right after a switch."""
        return self.sticky_produced_bytes

    def __repr__(self):
        return (f"TopicPartitioner(sticky={self.sticky_partition}, "
                f"available={self.available_count}/{self.num_partitions})")


cdef class NodeLatency:
    """When a broker last had data ready and last took it (partitioner.availability.timeout.ms)."""

    def __repr__(self):
        return f"NodeLatency(node={self.node_id}, ready_ms={self.ready_ms}, drain_ms={self.drain_ms})"


cdef class Partitioning:
    """The producer's partitioner (built-in kind or Python object) and its settings:
    ``partitioner`` is a name in BUILTIN_PARTITIONERS (None: default) or an object with
    partition(); ``batch_size`` is batch.size, after which KIP-794 sticky placement moves on."""

    def __cinit__(self):
        self.name = "default"
        self.adaptive = True
        self.sticky_batch_bytes = 16384
        self.node_latency = {}
        self.rng = <uint64_t>(time.time_ns() | 1)

    def __init__(self, partitioner=None, *, bint ignore_keys=False,
                 bint adaptive_partitioning=True, int64_t availability_timeout_ms=0,
                 Py_ssize_t batch_size=16384):
        if partitioner is None:
            partitioner = "default"
        if isinstance(partitioner, str):
            kind = _KINDS.get(partitioner)
            if kind is None:
                raise ValueError(
                    f"partitioner {partitioner!r} is not built into the core ({', '.join(_KINDS)}); "
                    f"resolve other names with kengine.partitioners.load_partitioner()")
            self.kind = kind
            self.name = partitioner
        elif callable(getattr(partitioner, "partition", None)):
            self.kind = PARTITIONER_PYTHON
            self.plugin = partitioner
            self.name = f"{type(partitioner).__module__}.{type(partitioner).__qualname__}"
        else:
            raise TypeError(f"partitioner {partitioner!r} has no partition() method")
        self.ignore_keys = ignore_keys
        self.adaptive = adaptive_partitioning
        self.availability_timeout_ms = availability_timeout_ms
        # Java's stickyBatchSize is batch.size itself (at least 1), not the batch's allocation.
        self.sticky_batch_bytes = batch_size if batch_size > 0 else 1

    @property
    def partitioner(self):
        """The configured partitioner: a built-in's name (str) or the Python partitioner."""
        return self.plugin if self.kind == PARTITIONER_PYTHON else self.name

    def __dealloc__(self):
        PyMem_Free(self.unavailable_nodes)

    cdef int32_t choose(self, TopicState t, object key, object value, object headers,
                        const char *key_ptr, Py_ssize_t key_len, bint *sticky) except -2:
        """The record's partition; sets *sticky when the sticky partitioner chose it (then
        the caller reports the bytes it appended through sticky_appended())."""
        cdef TopicPartitioner tp = t.partitioning
        cdef int32_t n = t.num_partitions
        cdef uint64_t counter
        sticky[0] = False
        if self.kind == PARTITIONER_DEFAULT:
            if key_ptr != NULL and not self.ignore_keys:
                return kengine_partition_for_key(key_ptr, key_len, n)
        elif self.kind == PARTITIONER_ROUND_ROBIN:
            counter = tp.round_robin_next
            tp.round_robin_next += 1
            if tp.available_count > 0 and tp.num_partitions == n:
                return tp.available_ids[counter % <uint64_t>tp.available_count]
            return <int32_t>(counter % <uint64_t>n)
        elif self.kind == PARTITIONER_CONSISTENT_RANDOM:
            if key_len > 0:   # a null key has key_len -1
                return <int32_t>(crc32_ieee(key_ptr, key_len) % <uint32_t>n)
        else:
            if not tp.bound:
                self.bind(t)
            if key is not None and type(key) is not bytes:
                # str and other buffers: hand over the bytes that will be written
                key = PyBytes_FromStringAndSize(key_ptr, key_len)
            try:
                result = tp.partition_fn(t.name, key, value, headers, n, tp.available)
            except Exception as e:
                raise PartitionerError(
                    f"partitioner {self.name} raised for a record to {t.name!r}: "
                    f"{type(e).__name__}: {e}; that record was not sent") from e
            if result is not None:
                if type(result) is not int:
                    if isinstance(result, bool) or not hasattr(result, "__index__"):
                        raise PartitionerError(
                            f"partitioner {self.name} returned {result!r} for a record to "
                            f"{t.name!r}; return an int in [0, {n}) or None")
                    result = result.__index__()
                if not 0 <= result < n:
                    raise PartitionerError(
                        f"partitioner {self.name} returned partition {result} for a record to "
                        f"{t.name!r}, which has partitions [0, {n}); that record was not sent")
                return <int32_t>result
        sticky[0] = True
        return self.sticky_partition(t)

    cdef int bind(self, TopicState t) except -1:
        """Binds the Python partitioner's methods for topic t, through for_topic() when the
        partitioner keeps per-topic state."""
        cdef TopicPartitioner tp = t.partitioning
        obj = self.plugin
        for_topic = getattr(obj, "for_topic", None)
        if for_topic is not None:
            try:
                obj = for_topic(t.name)
            except Exception as e:
                raise PartitionerError(
                    f"partitioner {self.name}: for_topic({t.name!r}) raised "
                    f"{type(e).__name__}: {e}; that record was not sent") from e
            if not callable(getattr(obj, "partition", None)):
                raise PartitionerError(
                    f"partitioner {self.name}: for_topic({t.name!r}) returned {obj!r}, which "
                    f"has no partition() method")
        if tp.bound:   # another thread bound it while for_topic() ran: keep the first
            return 0
        tp.partition_fn = obj.partition
        tp.new_batch_fn = getattr(obj, "on_new_batch", None)
        tp.bound = True
        return 0

    cdef int on_new_batch(self, TopicState t, int32_t partition) except -1:
        """Tells a Python partitioner that a record opened a new batch of t/partition. The
        record is already queued, so a failing hook is logged, not raised."""
        cdef TopicPartitioner tp = t.partitioning
        try:
            if not tp.bound:
                self.bind(t)
            if tp.new_batch_fn is not None:
                tp.new_batch_fn(t.name, partition)
        except Exception:
            _plog.exception("partitioner %s: on_new_batch(%r, %d) raised; the record was queued, "
                            "continuing", self.name, t.name, partition)
        return 0

    # -- KIP-794 uniform sticky partitioning (Java's BuiltInPartitioner) --

    cdef int32_t sticky_partition(self, TopicState t) except -2:
        cdef TopicPartitioner tp = t.partitioning
        cdef int32_t p = tp.sticky_partition
        # Java's partitionChanged(): a switch that was put off while the partition's last batch
        # was filling happens as soon as that batch is full. Unlike Java, the sticky partition
        # is also left at once when its leader is past partitioner.availability.timeout.ms:
        # Java keeps filling it up to 2 x batch.size, and a send loop that waited for
        # buffer.memory through an outage went on putting unkeyed records there, to expire.
        if p < 0 or p >= t.num_partitions or (
                tp.sticky_produced_bytes >= self.sticky_batch_bytes
                and self.queue_full(<PartitionQueue>t.queues[p])) or (
                self.unavailable_count > 0
                and self.leader_unavailable((<PartitionQueue>t.queues[p]).leader_id)):
            p = self.next_partition(t)
            tp.sticky_partition = p
            tp.sticky_produced_bytes = 0
        return p

    cdef int sticky_appended(self, TopicState t, PartitionQueue q, Py_ssize_t appended_bytes,
                             bint switch_allowed) except -1:
        """Java's updatePartitionInfo(): counts the estimated batch bytes an unkeyed record added
        and switches once batch.size bytes went to the partition, but only when its last batch is
        full (or switch_allowed), so that lingering batches are not left fractional; after
        2 x batch.size it switches regardless."""
        cdef TopicPartitioner tp = t.partitioning
        if tp.sticky_partition != q.partition:
            return 0   # another thread switched while this record waited for memory
        tp.sticky_produced_bytes += appended_bytes
        if tp.sticky_produced_bytes >= 2 * self.sticky_batch_bytes or (
                tp.sticky_produced_bytes >= self.sticky_batch_bytes
                and (switch_allowed or self.queue_full(q))):
            tp.sticky_partition = self.next_partition(t)
            tp.sticky_produced_bytes = 0
        return 0

    cdef bint queue_full(self, PartitionQueue q) noexcept:
        """Java's allBatchesFull(): only the last batch of a queue can have room."""
        cdef ProducerBatch b = q.tail
        if b is None or b.closed or b.builder is None:
            return True
        return b.builder.estimated_size_c() >= b.builder._batch_size_bytes

    cdef int32_t next_partition(self, TopicState t) except -2:
        """Java's nextPartition() with the load statistics of updatePartitionLoadStats(), taken
        from the queues at the moment of the switch: with adaptive partitioning a partition is
        chosen with probability proportional to (longest queue + 1 - its queue) in batches,
        among partitions with a leader that is not past the availability timeout; without
        statistics (adaptive off, fewer than 2 partitions, or every queue equal and none
        excluded) uniformly among partitions with a leader, or among all when none has one."""
        cdef TopicPartitioner tp = t.partitioning
        cdef int32_t n = t.num_partitions, length = 0, i, lo, hi, p
        cdef int64_t top, first
        cdef bint all_equal = True
        cdef uint32_t rnd = random_positive(&self.rng)
        cdef PartitionQueue q
        cdef list queues = t.queues
        if tp.num_partitions != n:
            tp.refresh(queues)
        if self.adaptive and n >= 2:
            for p in range(n):
                q = <PartitionQueue>queues[p]
                if q.leader_id < 0:
                    continue
                if self.unavailable_count > 0 and self.leader_unavailable(q.leader_id):
                    continue
                tp.cft_ids[length] = p
                tp.cft[length] = q.batch_count
                length += 1
            if length >= 1:
                first = tp.cft[0]
                top = first
                for i in range(1, length):
                    if tp.cft[i] != first:
                        all_equal = False
                    if tp.cft[i] > top:
                        top = tp.cft[i]
                top += 1
                if not (all_equal and length == n):
                    # invert the queue sizes into weights and fold them into running sums
                    tp.cft[0] = top - tp.cft[0]
                    for i in range(1, length):
                        tp.cft[i] = top - tp.cft[i] + tp.cft[i - 1]
                    # the first entry strictly greater than a uniform draw in [0, total)
                    first = <int64_t>rnd % tp.cft[length - 1]
                    lo, hi = 0, length - 1
                    while lo < hi:
                        i = (lo + hi) >> 1
                        if tp.cft[i] > first:
                            hi = i
                        else:
                            lo = i + 1
                    return tp.cft_ids[lo]
        if tp.available_count > 0:
            return tp.available_ids[rnd % <uint32_t>tp.available_count]
        return <int32_t>(rnd % <uint32_t>n)

    cdef bint leader_unavailable(self, int32_t leader_id) noexcept:
        cdef int32_t i
        for i in range(self.unavailable_count):
            if self.unavailable_nodes[i] == leader_id:
                return True
        return False

    cdef int nodes_ready(self, object nodes, int64_t now, bint drained) except -1:
        """Java's updateNodeLatencyStats(): `nodes` had sendable data at `now` (ready()), and
        with `drained` could also take it (drain()). A node whose data waited longer than
        partitioner.availability.timeout.ms since it last took any has its partitions skipped
        by the sticky partitioner's next switches."""
        cdef NodeLatency st
        cdef int32_t *grown
        cdef Py_ssize_t count
        if self.availability_timeout_ms <= 0 or not self.adaptive:
            return 0   # Java: the timeout only acts through adaptive partitioning
        for node in nodes:
            st = self.node_latency.get(node)
            if st is None:
                st = NodeLatency.__new__(NodeLatency)
                st.node_id = node
                st.drain_ms = now
                self.node_latency[node] = st
            if drained:
                st.drain_ms = now
            st.ready_ms = now
        count = len(self.node_latency)
        if count > self.unavailable_capacity:
            grown = <int32_t *>PyMem_Realloc(self.unavailable_nodes, count * sizeof(int32_t))
            if grown == NULL:
                raise MemoryError()
            self.unavailable_nodes = grown
            self.unavailable_capacity = <int32_t>count
        self.unavailable_count = 0
        for st in self.node_latency.values():
            if st.ready_ms - st.drain_ms > self.availability_timeout_ms:
                self.unavailable_nodes[self.unavailable_count] = st.node_id
                self.unavailable_count += 1
        return 0

    @property
    def unavailable_node_ids(self) -> tuple:
        """Brokers whose partitions the sticky partitioner skips now (availability timeout)."""
        return tuple(self.unavailable_nodes[i] for i in range(self.unavailable_count))

    def __repr__(self):
        return f"Partitioning({self.name})"
