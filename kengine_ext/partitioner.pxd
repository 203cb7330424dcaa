# Partition choice in the core: declarations (part of kengine_ext._core).
#
# Locking: as in accumulator.pxd, the GIL is the lock. Every field below is read and written only
# by Cython code holding the GIL that runs no Python code while the state is inconsistent; user
# partitioners (Python) are called before the record touches any queue.
from libc.stdint cimport int32_t, int64_t, uint64_t
cimport cython

# The partitioners the core runs without a Python call per record.
cdef enum:
    PARTITIONER_DEFAULT = 0            # Java: murmur2 for keys, KIP-794 sticky for null keys
    PARTITIONER_ROUND_ROBIN = 1        # Java's RoundRobinPartitioner: keys ignored
    PARTITIONER_CONSISTENT_RANDOM = 2  # librdkafka: CRC-32 of non-empty keys, else sticky
    PARTITIONER_PYTHON = 3             # an object with partition(), called per record


@cython.final
cdef class TopicPartitioner:
    # One per topic (TopicState.partitioning); GIL.
    cdef int32_t sticky_partition           # KIP-794: unkeyed records go here; -1 until chosen
    cdef int64_t sticky_produced_bytes      # estimated batch bytes those records added since
    cdef uint64_t round_robin_next          # round_robin: the next record's counter value
    cdef int32_t num_partitions             # entries of queues covered by the arrays below
    cdef int32_t capacity                   # entries allocated in each array below
    cdef int32_t *available_ids             # partitions whose leader is known, ascending
    cdef int32_t available_count
    cdef int64_t *cft                       # scratch: KIP-794 cumulative frequency table ...
    cdef int32_t *cft_ids                   # ... and the partition of each of its entries
    cdef readonly tuple available           # available_ids as a tuple, for Python partitioners
    cdef object partition_fn                # Python partitioner's partition(), bound per topic
    cdef object new_batch_fn                # its on_new_batch(), or None
    cdef bint bound                         # the two above are set (for_topic() was called)

    cdef int refresh(self, list queues) except -1


@cython.final
cdef class NodeLatency:
    # Java's NodeLatencyStats, kept only with partitioner.availability.timeout.ms; GIL.
    cdef readonly int32_t node_id
    cdef readonly int64_t ready_ms          # monotonic ms: last ready() that found data for it
    cdef readonly int64_t drain_ms          # monotonic ms: last drain() it could take data


@cython.final
cdef class Partitioning:
    # The producer's partitioner: fixed at construction except the fields marked GIL.
    cdef int kind                           # PARTITIONER_*
    cdef readonly str name                  # the built-in's name, or the plugin's repr
    cdef readonly object plugin             # the Python partitioner (PARTITIONER_PYTHON) or None
    cdef bint ignore_keys                   # partitioner.ignore.keys (default kind only)
    cdef bint adaptive                      # partitioner.adaptive.partitioning.enable
    cdef int64_t availability_timeout_ms    # partitioner.availability.timeout.ms (0: off)
    cdef int64_t sticky_batch_bytes         # batch.size: KIP-794 switches after this many bytes
    cdef uint64_t rng                       # GIL; xorshift64 state for switches and random picks
    cdef dict node_latency                  # GIL; node id -> NodeLatency
    cdef int32_t *unavailable_nodes         # GIL; nodes past the availability timeout
    cdef int32_t unavailable_count
    cdef int32_t unavailable_capacity

    cdef int32_t choose(self, TopicState t, object key, object value, object headers,
                        const char *key_ptr, Py_ssize_t key_len, bint *sticky) except -2
    cdef int bind(self, TopicState t) except -1
    cdef int32_t sticky_partition(self, TopicState t) except -2
    cdef int sticky_appended(self, TopicState t, PartitionQueue q, Py_ssize_t appended_bytes,
                             bint switch_allowed) except -1
    cdef int32_t next_partition(self, TopicState t) except -2
    cdef bint queue_full(self, PartitionQueue q) noexcept
    cdef bint leader_unavailable(self, int32_t leader_id) noexcept
    cdef int on_new_batch(self, TopicState t, int32_t partition) except -1
    cdef int nodes_ready(self, object nodes, int64_t now, bint drained) except -1
