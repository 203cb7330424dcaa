# The per-record send path (part of kengine_ext._core; fields and up-calls in send_path.pxd):
# send() and send_many() on user threads. A record costs one call into here: serialize
# (built-in serializers without a Python call), pick the partition (Java-exact murmur2 or the
# sticky partitioner, in C), append it through the accumulator (one copy of its bytes, into the
# partition's open batch), and hand back a small freelisted future.

import copy
import json
import os

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Malloc, PyMem_Free, PyMem_Realloc

from kengine_ext.errors import (
    IllegalStateError,
    InvalidPartitionError,
    PartitionerError,
    ProducerClosedError,
    ProducerForkedError,
    RecordTooLargeError,
    SerializationError,
)
from kengine_ext.serialization import SerializationContext, takes_context

__all__ += ["SendPath", "SendMethods"]

# send_arrow() gathers rows in pieces of this many: bounds its pointer arrays (about 70 bytes
# a row) whatever the data's size, while a piece spread over many partitions still gives each
# a useful run of records per append.
cdef Py_ssize_t ARROW_CHUNK_ROWS = 32768


cdef tuple python_keys_values(RecordColumns *c, bint with_keys):
    """The gathered records' keys (None when the call has no key column) and values as bytes
    (None for nulls), for a Python partitioner: the slow path, objects per record."""
    cdef Py_ssize_t j
    values = [PyBytes_FromStringAndSize(c.value_ptr[j], c.value_len[j])
              if c.value_ptr[j] != NULL else None for j in range(c.count)]
    if not with_keys:
        return None, values
    keys = [PyBytes_FromStringAndSize(c.key_ptr[j], c.key_len[j])
            if c.key_ptr[j] != NULL else None for j in range(c.count)]
    return keys, values

def arrow_rows(data, value, key=None, headers=None, timestamp=None, partition=None):
    """The rows of Arrow data as Python objects, read with send_arrow()'s rules: for a producer
    with interceptors, which need a record object per row (the slow path; send_arrow() without
    interceptors makes none). ``partition`` is a column name or None. Returns ``(values, keys,
    headers, timestamps, partitions, refused)``: lists indexed by row (bytes or None for nulls;
    keys / headers / timestamps / partitions None when no column is bound; a header list is
    [(name, bytes | None)], a null timestamp is now, a null partition None) and
    ``{row: error}`` for the rows send_arrow() would refuse (a timestamp before 1970, a
    negative partition), whose entries in the lists mean nothing."""
    cdef ArrowInput inp
    if isinstance(data, ArrowInput):
        inp = <ArrowInput>data
    else:
        inp = read_arrow(data, value, key, headers, timestamp, partition)
    cdef ArrowChunk chunk
    cdef ColumnsHolder holder
    cdef RecordColumns *c
    cdef Py_ssize_t done, cnt, j, pos = 0, bad
    cdef int32_t max_part
    cdef int32_t *row_parts = NULL
    cdef bint with_keys = inp._key_col >= 0
    values, keys = [], ([] if with_keys else None)
    row_headers = [] if inp._header_count > 0 else None
    stamps = [] if inp._timestamp_col >= 0 else None
    parts = [] if inp._partition_col >= 0 else None
    refused = {}
    try:
        if parts is not None:
            row_parts = <int32_t *>PyMem_Malloc(ARROW_CHUNK_ROWS * sizeof(int32_t))
            if row_parts == NULL:
                raise MemoryError()
        for chunk in inp.chunks:
            done = 0
            while done < chunk.array.length:
                cnt = min(ARROW_CHUNK_ROWS, chunk.array.length - done)
                holder = ColumnsHolder()
                max_part = -1
                bad = inp.fill(chunk, holder, NULL, done, cnt, row_parts, &max_part)
                c = &holder.cols
                k, v = python_keys_values(c, with_keys)
                values += v
                if with_keys:
                    keys += k
                if row_headers is not None:
                    row_headers += inp.python_headers(chunk, NULL, done, cnt)
                for j in range(cnt):
                    if stamps is not None:
                        stamps.append(c.timestamp_ms[j])
                        if c.timestamp_ms[j] < 0:
                            refused[pos + j] = SerializationError(
                                f"record {pos + j}: its timestamp (column "
                                f"{inp.timestamp_column!r}) is before 1970 or past the range "
                                f"of epoch milliseconds; it was not sent")
                    if parts is not None:
                        parts.append(row_parts[j] if row_parts[j] >= 0 else None)
                        if row_parts[j] == -2 and pos + j not in refused:
                            refused[pos + j] = InvalidPartitionError(
                                f"record {pos + j}: its partition (column "
                                f"{inp.partition_column!r}) is negative or larger than a "
                                f"partition number can be; it was not sent")
                pos += cnt
                done += cnt
    finally:
        PyMem_Free(row_parts)
    return values, keys, row_headers, stamps, parts, refused

__all__ += ["arrow_rows"]

# How keys and values become bytes.
cdef enum:
    SER_BYTES = 0      # bytes-like, str (UTF-8) or None, borrowed without a copy
    SER_STR = 1        # same acceptance; the name documents intent
    SER_JSON = 2       # json.dumps(value) as UTF-8; None stays null
    SER_CALLABLE = 3   # serializer(value) -> bytes-like | None
    SER_OBJECT = 4     # serializer.serialize(topic, value) -> bytes-like | None (Kafka's shape)
    SER_CONTEXT = 5    # serializer(value, SerializationContext) (kengine_ext/serialization.py)

cdef tuple serializer_kind(object serializer):
    """(SER_* kind, callable or None) for a key.serializer / value.serializer setting."""
    if serializer is None or serializer == "bytes":
        return SER_BYTES, None
    if serializer == "str":
        return SER_STR, None
    if serializer == "json":
        return SER_JSON, None
    if callable(getattr(serializer, "serialize", None)):
        return SER_OBJECT, serializer
    if callable(serializer):
        return (SER_CONTEXT if takes_context(serializer) else SER_CALLABLE), serializer
    raise ValueError(f"serializer {serializer!r}: use bytes, str, json, a callable or an object "
                     f"with serialize(topic, value)")


cdef int check_send_args(str topic, object partition, object on_delivery) except -1:
    """send()'s optional arguments, checked before anything is serialized; not reassigned
    (an owned reference would cost every record)."""
    if partition is not None:
        check_partition(partition, topic)
    if on_delivery is not None and not callable(on_delivery):
        raise TypeError(f"on_delivery must be a callable(error, metadata) or None, not "
                        f"{type(on_delivery).__name__} ({on_delivery!r}); nothing was sent")
    return 0


cdef int check_partition(object partition, str topic) except -1:
    """An explicit partition is an int (numpy's integers too) of int32's range, or a clear
    error naming the argument; its range is checked against the topic's metadata later."""
    if type(partition) is int:
        v = partition
    else:
        try:
            v = PyNumber_Index(partition)
        except TypeError:
            raise TypeError(f"partition must be an int (a partition number of {topic!r}) or "
                            f"None, not {type(partition).__name__} ({partition!r}); nothing "
                            f"was sent") from None
    if not -0x80000000 <= v <= 0x7FFFFFFF:
        raise InvalidPartitionError(f"partition {v} is outside the range of partition numbers "
                                    f"for topic {topic!r}; nothing was sent")
    return 0


@cython.final
cdef class SendPath:
    """send() and send_many(): serialize, partition and append records to ``accumulator``.
    Python supplies the up-calls (see send_path.pxd) as plain callables; kengine.Producer
    exposes send() and send_many() as its own."""

    def __cinit__(self, RecordAccumulator accumulator not None, *, key_serializer="bytes",
                  value_serializer="bytes", await_metadata, transaction_refusal=None,
                  records_refused=None):
        if not callable(await_metadata):
            raise TypeError(f"await_metadata must be a callable, not {await_metadata!r}")
        self.accumulator = accumulator
        self._partitioning = accumulator.partitioning
        self._key_kind, self._key_serializer = serializer_kind(key_serializer)
        self._value_kind, self._value_serializer = serializer_kind(value_serializer)
        self._await_metadata = await_metadata
        self._transaction_refusal = transaction_refusal
        self._records_refused = records_refused

    # -- the per-record path --

    def send(self, str topic, value=None, key=None, headers=None, partition=None,
             timestamp_ms=None, on_delivery=None):
        """Appends one record to its partition's batch and returns a DeliveryFuture.

        Returns as soon as the record is in a batch. Blocks (up to max.block.ms) only when
        buffer.memory is exhausted or the topic's metadata is not known yet."""
        return self.send_record(topic, value, key, headers, partition, timestamp_ms,
                                on_delivery, True)

    cdef bint python_sees_headers(self):
        """Whether Python code of this send path reads a record's headers (a Python
        partitioner, a serializer taking a context): they must then stay pairs."""
        return (self._partitioning.kind == PARTITIONER_PYTHON or self._key_kind == SER_CONTEXT
                or self._value_kind == SER_CONTEXT)

    def headers_may_be_encoded(self):
        """Whether send_many() may be given headers in wire form (EncodedHeaders)."""
        return not self.python_sees_headers()

    def send_untraced(self, str topic, value=None, key=None, headers=None, partition=None,
                      timestamp_ms=None, on_delivery=None):
        """send() without the sampling decision in C: the Python path of a record the SDK
        traces (kengine.otel.fast_sampling), whose span and headers are already made."""
        return self.send_record(topic, value, key, headers, partition, timestamp_ms,
                                on_delivery, False)

    def trace_with(self, TraceStamp stamp not None, send_sampled):
        """Makes send() decide OpenTelemetry's sampling in C with ``stamp``, and hand the
        records to trace to ``send_sampled`` (see send_path.pxd). Once, by the producer's
        constructor, before any other thread can see the producer."""
        if self._trace is not None:
            raise IllegalStateError("this send path already traces its records")
        if not callable(send_sampled):
            raise TypeError(f"send_sampled must be a callable, not {send_sampled!r}")
        self._send_sampled = send_sampled
        self._trace = stamp

    cdef inline object send_record(self, str topic, object value, object key, object headers,
                                   object partition, object timestamp_ms, object on_delivery,
                                   bint traced):
        cdef RecordAccumulator acc = self.accumulator
        cdef const char *kp
        cdef const char *vp
        cdef const char *hp = NULL
        cdef Py_ssize_t kl, vl, hl = 0, body, record_bytes, r = 0
        cdef int32_t hc = 0, p
        cdef Py_buffer kview, vview
        cdef bint khas = False, vhas = False, new_batch = False, sticky = False
        cdef int64_t ts
        cdef int outcome
        cdef Py_ssize_t est_before = 0   # the open batch's estimated size before this record
        cdef TopicState t
        cdef PartitionQueue q
        cdef ProducerBatch b
        cdef DeliveryFuture fut
        cdef PyObject *found
        cdef char trace_header[TRACEPARENT_HEADER_BYTES]
        cdef bint stamped = False

        if acc._closed:
            raise self.refusal("send()")
        if acc.transactional and not acc._in_transaction:
            raise self.not_in_transaction()
        if traced and self._trace is not None:
            outcome = self._trace.decide_for(headers, trace_header)
            if outcome != TRACE_UNSAMPLED:
                return self.send_traced(topic, value, key, headers, partition, timestamp_ms,
                                        on_delivery, outcome == TRACE_SAMPLED)
            stamped = True
        if partition is not None or on_delivery is not None:
            check_send_args(topic, partition, on_delivery)   # out of line: the hot code stays small
        if topic is self._last_topic:
            t = self._last_state
        else:
            found = PyDict_GetItem(acc._topics, topic)
            t = self.topic_for_send(topic) if found == NULL else <TopicState>found
            self._last_topic = topic
            self._last_state = t
        ctx = None   # only (value, ctx) serializers cost a context per record
        if self._key_kind == SER_CONTEXT or self._value_kind == SER_CONTEXT:
            ctx = SerializationContext(topic, headers=headers)
        if self._key_kind > SER_STR and key is not None:
            key = self.serialize(key, topic, self._key_kind, self._key_serializer, "key", ctx)
        raw_value = value   # what a Python partitioner sees
        if self._value_kind > SER_STR and value is not None:
            value = self.serialize(value, topic, self._value_kind, self._value_serializer, "value",
                                   ctx)
        if ctx is not None:   # with what the serializers added
            headers = ctx.headers_to_send()
        if timestamp_ms is None:
            ts = now_ms()
        else:
            try:   # an int or another integer (numpy's); not a float, which would lose its ms
                ts = PyNumber_Index(timestamp_ms)
            except TypeError:
                raise SerializationError(f"timestamp_ms must be an int of epoch milliseconds, "
                                         f"not {timestamp_ms!r}") from None
            if ts < 0:
                raise ValueError(f"timestamp_ms must be epoch milliseconds >= 0, not {timestamp_ms}")
        hbytes = None
        if headers:
            hbytes = encode_headers(headers, &hc)
            if stamped:   # the caller's headers, then traceparent
                hbytes += PyBytes_FromStringAndSize(trace_header, TRACEPARENT_HEADER_BYTES)
                hc += 1
            hp = PyBytes_AS_STRING(hbytes)
            hl = PyBytes_GET_SIZE(hbytes)
        elif stamped:   # copied into the batch by append(), before this frame returns
            hp = trace_header
            hl = TRACEPARENT_HEADER_BYTES
            hc = 1
        borrow_bytes(key, &kp, &kl, &kview, &khas, "key", -1)
        try:
            borrow_bytes(value, &vp, &vl, &vview, &vhas, "value", -1)
            try:
                # Upper bound of the record's size in a batch: its deltas are not known yet.
                body = record_body_size(0x7FFFFFFF, 0x7FFFFFFF, kl, vl, hl, hc)
                record_bytes = uvarint_size(zigzag32(<int32_t>body)) + body
                if record_bytes + BATCH_HEADER_BYTES > acc.max_request_size_bytes \
                        or record_bytes + BATCH_HEADER_BYTES > acc.memory.total_bytes:
                    raise RecordTooLargeError(
                        f"the record to {topic!r} is {record_bytes + BATCH_HEADER_BYTES} bytes "
                        f"when serialized, more than max.request.size "
                        f"({acc.max_request_size_bytes}) or buffer.memory "
                        f"({acc.memory.total_bytes}); nothing was sent")
                if partition is not None:
                    p = partition
                    if p < 0 or p >= t.num_partitions:
                        t = self.refresh_for_partition(topic, p)
                else:
                    p = self.choose_partition(t, key, raw_value, headers, kp, kl, &sticky)
                q = <PartitionQueue>t.queues[p]
                b = acc.append(q, ts, kp, kl, vp, vl, hp, hl, hc, record_bytes, &r, &est_before,
                               &new_batch)
            finally:
                if vhas:
                    PyBuffer_Release(&vview)
        finally:
            if khas:
                PyBuffer_Release(&kview)
        if sticky:
            self._partitioning.sticky_appended(t, q, b.builder.estimated_size_c() - est_before,
                                               False)
        fut = new_delivery_future(b, <int32_t>r, ts, <int32_t>kl, <int32_t>vl, on_delivery)
        if on_delivery is not None:
            b.add_callback_future(fut)
        if new_batch:
            acc.wake_for(b)
            if self._partitioning.kind == PARTITIONER_PYTHON:
                self._partitioning.on_new_batch(t, p)
        return fut

    cdef object send_traced(self, str topic, object value, object key, object headers,
                            object partition, object timestamp_ms, object on_delivery,
                            bint sampled):
        """A record decide_for() left to the SDK, through the up-call (out of line: the hot
        code stays small). ``sampled``: decide() chose it, with the id of a new trace."""
        trace_id = self._trace.root_trace_id() if sampled else None
        return self._send_sampled(trace_id, topic, value, key, headers, partition,
                                  timestamp_ms, on_delivery)

    def send_many(self, str topic, values, keys=None, headers=None, timestamps=None,
                  partition=None):
        """Appends many records in one call and returns one BulkFuture.

        values (and keys, headers, timestamps when given) are equal-length sequences. Records
        are partitioned like send() (keyed: murmur2; unkeyed: sticky; or the configured
        partitioner), grouped by partition with their order kept, and encoded into batches
        with the byte work done without the GIL. Blocks like send() for buffer memory.

        A record that cannot be sent (its serializer raised, a value, header or timestamp of
        the wrong type, larger than max.request.size, refused by the partitioner) fails alone:
        the others are sent and the BulkResult lists its error under its index. A wait for
        buffer.memory that runs out of max.block.ms refuses every record not appended by then.
        Inside a transaction a refusal makes the transaction abortable, so that it cannot
        commit without the record."""
        return self.send_records(topic, values, keys, headers, timestamps, partition)

    cdef object send_records(self, str topic, object values, object keys, object headers,
                             object timestamps, object partition):
        cdef RecordAccumulator acc = self.accumulator
        if acc._closed:
            raise self.refusal("send_many()")
        if acc.transactional and not acc._in_transaction:
            raise self.not_in_transaction()
        cdef Py_ssize_t n = len(values)
        for name, seq in (("keys", keys), ("headers", headers), ("timestamps", timestamps)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} has {len(seq)} entries for {n} values")
        if partition is not None:
            check_partition(partition, topic)
        cdef TopicState t = acc._topics.get(topic)
        if t is None:
            t = self.topic_for_send(topic)
        if partition is not None and not (0 <= partition < t.num_partitions):
            t = self.refresh_for_partition(topic, partition)
        cdef BulkFuture fut = new_bulk_future(topic, n)
        raw_values = values   # what a Python partitioner sees
        contexts = None   # only (value, ctx) serializers cost a context per record
        if self._key_kind == SER_CONTEXT or self._value_kind == SER_CONTEXT:
            contexts = [SerializationContext(topic, headers=None if headers is None
                                             else headers[i]) for i in range(n)]
        # keys first: a value serializer sees the headers the key's added (as in send())
        if keys is not None and self._key_kind > SER_STR:
            keys = self.serialize_all(keys, topic, self._key_kind, self._key_serializer, "key",
                                      fut, contexts)
        if self._value_kind > SER_STR:
            values = self.serialize_all(values, topic, self._value_kind, self._value_serializer,
                                        "value", fut, contexts)
        if contexts is not None:   # with what the serializers added
            headers = [c.headers_to_send() for c in contexts]
        cdef Py_ssize_t pos = 0, chunk, i
        while pos < n:
            chunk = min(BULK_CHUNK_RECORDS, n - pos)
            timeout = self.send_chunk(t, fut, values, raw_values, keys, headers, timestamps,
                                      partition, pos, chunk)
            pos += chunk
            if timeout is not None:
                for i in range(pos, n):   # waited max.block.ms once: no more waiting
                    fut.refuse(i, timeout)
                break
        first = fut.sort_refusals()
        if first is not None and self._records_refused is not None:
            self._records_refused(topic, len(fut._refused), first[0], first[1])
        return fut

    def send_arrow(self, str topic, data, value, key=None, headers=None, timestamp=None,
                   partition=None, rows=None):
        """Sends every row of Arrow data (see SendMethods.send_arrow); rows: the ascending
        row indices to send instead of all (the asyncio producer resends rows refused for
        want of memory with it), the result then indexed like rows."""
        return self.send_arrow_rows(topic, data, value, key, headers, timestamp, partition,
                                    rows)

    cdef object send_arrow_rows(self, str topic, object data, object value, object key,
                                object headers, object timestamp, object partition,
                                object rows):
        cdef RecordAccumulator acc = self.accumulator
        if acc._closed:
            raise self.refusal("send_arrow()")
        if acc.transactional and not acc._in_transaction:
            raise self.not_in_transaction()
        explicit = None
        partition_column = None
        if isinstance(partition, str):
            partition_column = partition
        elif partition is not None:
            check_partition(partition, topic)
            explicit = partition
        cdef ArrowInput inp
        if isinstance(data, ArrowInput):   # read already, its columns bound (arrow_input())
            inp = <ArrowInput>data
        else:
            inp = read_arrow(data, value, key, headers, timestamp, partition_column)
        cdef TopicState t = acc._topics.get(topic)
        if t is None:
            t = self.topic_for_send(topic)
        if explicit is not None and not (0 <= explicit < t.num_partitions):
            t = self.refresh_for_partition(topic, explicit)
        cdef Py_ssize_t n, k = 0, m, pos = 0, cnt, done, j, bad
        cdef int64_t *sel = NULL      # rows: the selection, ascending
        cdef int64_t *local = NULL    # a piece of it, relative to its chunk
        cdef int32_t *row_parts = NULL
        cdef int32_t max_part
        cdef int64_t prev = -1, base, length
        cdef ArrowChunk chunk
        cdef ColumnsHolder holder
        cdef RecordColumns *c
        cdef bint python_partitioner = self._partitioning.kind == PARTITIONER_PYTHON \
            and explicit is None
        cdef BulkFuture fut
        if rows is None:
            n = inp.row_count
        else:
            n = len(rows)
        try:
            if rows is not None:
                sel = <int64_t *>PyMem_Malloc(max(n, 1) * sizeof(int64_t))
                local = <int64_t *>PyMem_Malloc(ARROW_CHUNK_ROWS * sizeof(int64_t))
                if sel == NULL or local == NULL:
                    raise MemoryError()
                for j, r in enumerate(rows):
                    sel[j] = PyNumber_Index(r)
                    if sel[j] <= prev or sel[j] >= inp.row_count:
                        raise ValueError(f"rows must be ascending row indices of the data "
                                         f"(0 to {inp.row_count - 1}); {r!r} at position {j} "
                                         f"is not. Nothing was sent")
                    prev = sel[j]
            if partition_column is not None:
                row_parts = <int32_t *>PyMem_Malloc(ARROW_CHUNK_ROWS * sizeof(int32_t))
                if row_parts == NULL:
                    raise MemoryError()
            fut = new_bulk_future(topic, n)
            for chunk in inp.chunks:
                base = chunk.first_row
                length = chunk.array.length
                if sel != NULL:   # the selection's rows in this chunk: sel[k, k + m)
                    m = 0
                    while k + m < n and sel[k + m] < base + length:
                        m += 1
                else:
                    m = length
                done = 0
                while done < m:
                    cnt = min(ARROW_CHUNK_ROWS, m - done)
                    if sel != NULL:
                        for j in range(cnt):
                            local[j] = sel[k + done + j] - base
                    holder = ColumnsHolder()
                    max_part = -1
                    bad = inp.fill(chunk, holder, local if sel != NULL else NULL, done, cnt,
                                   row_parts, &max_part)
                    c = &holder.cols
                    fut.note_records(c, pos, cnt)
                    if bad:
                        self.refuse_arrow_rows(fut, inp, c, row_parts, pos, cnt)
                    if python_partitioner:
                        py_keys, py_values = python_keys_values(c, inp._key_col >= 0)
                        py_headers = inp.python_headers(chunk, local if sel != NULL else NULL,
                                                        done, cnt)
                    else:
                        py_keys = py_values = py_headers = None
                    timeout = self.place_and_append(
                        t, fut, holder, pos, cnt, explicit,
                        row_parts if partition_column is not None else NULL,
                        py_keys, py_values, py_headers, 0)
                    pos += cnt
                    done += cnt
                    if timeout is not None:
                        for j in range(pos, n):   # waited max.block.ms once: no more waiting
                            fut.refuse(j, timeout)
                        break
                else:
                    k += m
                    continue
                break
        finally:
            PyMem_Free(sel)
            PyMem_Free(local)
            PyMem_Free(row_parts)
        first = fut.sort_refusals()
        if first is not None and self._records_refused is not None:
            self._records_refused(topic, len(fut._refused), first[0], first[1])
        return fut

    cdef int refuse_arrow_rows(self, BulkFuture fut, ArrowInput inp, RecordColumns *c,
                               const int32_t *row_parts, Py_ssize_t pos,
                               Py_ssize_t n) except -1:
        """Refuses the rows fill() found bad: a negative timestamp or partition."""
        cdef Py_ssize_t j
        for j in range(n):
            if c.timestamp_ms != NULL and c.timestamp_ms[j] < 0:
                fut.refuse(pos + j, SerializationError(
                    f"record {pos + j}: its timestamp (column {inp.timestamp_column!r}) is "
                    f"before 1970 or past the range of epoch milliseconds; it was not sent"))
            elif row_parts != NULL and row_parts[j] == -2:
                fut.refuse(pos + j, InvalidPartitionError(
                    f"record {pos + j}: its partition (column {inp.partition_column!r}) is "
                    f"negative or larger than a partition number can be; it was not sent"))
        return 0

    cdef object not_in_transaction(self):
        """The error a transactional producer's send raises outside an open transaction."""
        refusal = None if self._transaction_refusal is None else self._transaction_refusal()
        if refusal is not None:
            return refusal
        return IllegalStateError("a transactional producer sends only inside a transaction: "
                                 "call begin_transaction() first")

    cdef object send_chunk(self, TopicState t, BulkFuture fut, object values, object raw_values,
                           object keys, object headers, object timestamps, object partition,
                           Py_ssize_t start, Py_ssize_t n):
        """Sends records [start, start + n). Returns None, or the KafkaTimeoutError that stopped
        it waiting for buffer.memory (every record from then on is refused with it)."""
        cdef ColumnsHolder holder = ColumnsHolder()
        try:
            holder.fill(values, keys, headers, timestamps, start, start + n)
        except SerializationError:
            holder = self.fill_refusing(fut, values, keys, headers, timestamps, start, n)
        fut.note_records(&holder.cols, start, n)
        return self.place_and_append(t, fut, holder, start, n, partition, NULL, keys, raw_values,
                                     headers, start)

    cdef object place_and_append(self, TopicState t, BulkFuture fut, ColumnsHolder holder,
                                 Py_ssize_t start, Py_ssize_t n, object partition,
                                 const int32_t *row_parts, object py_keys, object py_values,
                                 object py_headers, Py_ssize_t py_base):
        """The records gathered in holder (the call's records [start, start + n), noted in fut)
        get their partitions and are appended, grouped by partition with their order kept:
        send_many()'s and send_arrow()'s common half. partition: the call's explicit one or
        None; row_parts: each record's own (-1: choose one), or NULL. A Python partitioner is
        shown py_keys / py_values / py_headers[py_base + j] for record j (None: not given).
        Returns None, or the KafkaTimeoutError that stopped it waiting for buffer.memory."""
        cdef RecordColumns *c = &holder.cols
        cdef dict refused = fut._refused
        cdef int32_t nparts = t.num_partitions, p, explicit = -1
        cdef Py_ssize_t j, body, rec_bytes, lo, hi, r, sent
        cdef Partitioning pt = self._partitioning
        cdef RecordAccumulator acc = self.accumulator
        cdef bint sticky = False
        cdef PartitionQueue q
        cdef list new_batches = None   # partitions that opened a batch, for on_new_batch()
        timeout = None
        cdef int32_t *parts = <int32_t *>PyMem_Malloc(n * sizeof(int32_t))
        cdef Py_ssize_t *counts = <Py_ssize_t *>PyMem_Malloc((nparts + 1) * sizeof(Py_ssize_t))
        cdef Py_ssize_t *grown
        cdef Py_ssize_t *order = <Py_ssize_t *>PyMem_Malloc(n * sizeof(Py_ssize_t))
        cdef RecordColumns g      # the chunk's columns regrouped by partition
        cdef ColumnsHolder grouped = ColumnsHolder()
        if parts == NULL or counts == NULL or order == NULL:
            PyMem_Free(parts); PyMem_Free(counts); PyMem_Free(order)
            raise MemoryError()
        try:
            if partition is not None:
                explicit = partition
            for j in range(n):
                if refused is not None and start + j in refused:
                    parts[j] = -1
                    continue
                body = record_body_size(0x7FFFFFFF, 0x7FFFFFFF, c.key_len[j], c.value_len[j],
                                        c.headers_len[j] if c.headers_ptr != NULL else 0,
                                        c.header_count[j] if c.headers_ptr != NULL else 0)
                rec_bytes = uvarint_size(zigzag32(<int32_t>body)) + body
                if rec_bytes + BATCH_HEADER_BYTES > acc.max_request_size_bytes:
                    fut.refuse(start + j, RecordTooLargeError(
                        f"record {start + j} to {t.name!r} is {rec_bytes + BATCH_HEADER_BYTES} "
                        f"bytes when serialized, more than max.request.size "
                        f"({acc.max_request_size_bytes}); it was not sent"))
                    refused = fut._refused
                    parts[j] = -1
                    continue
                if explicit >= 0:
                    p = explicit
                elif row_parts != NULL and row_parts[j] >= 0:
                    p = row_parts[j]
                    if p >= nparts:
                        fut.refuse(start + j, InvalidPartitionError(
                            f"record {start + j}: partition {p} is outside [0, {nparts}) for "
                            f"topic {t.name!r}; it was not sent"))
                        refused = fut._refused
                        parts[j] = -1
                        continue
                elif pt.kind == PARTITIONER_DEFAULT and c.key_ptr[j] != NULL \
                        and not pt.ignore_keys:
                    p = kengine_partition_for_key(c.key_ptr[j], c.key_len[j], nparts)
                else:
                    if pt.kind != PARTITIONER_PYTHON:
                        p = pt.choose(t, None, None, None, c.key_ptr[j], c.key_len[j], &sticky)
                    else:
                        try:
                            p = pt.choose(t, py_keys[py_base + j] if py_keys is not None
                                          else None,
                                          py_values[py_base + j],
                                          py_headers[py_base + j] if py_headers is not None
                                          else None,
                                          c.key_ptr[j], c.key_len[j], &sticky)
                        except PartitionerError as e:
                            fut.refuse(start + j, indexed(e, start + j))
                            refused = fut._refused
                            parts[j] = -1
                            continue
                        if p >= nparts:   # partitions were added while the partitioner ran
                            grown = <Py_ssize_t *>PyMem_Realloc(
                                counts, (t.num_partitions + 1) * sizeof(Py_ssize_t))
                            if grown == NULL:
                                raise MemoryError()
                            counts = grown
                            nparts = t.num_partitions
                    if sticky:
                        # This call's records are appended back to back after the loop, so a
                        # partition's batches are full when the next one opens: switch at
                        # batch.size, charging each record's size bound.
                        pt.sticky_appended(t, <PartitionQueue>t.queues[p], rec_bytes, True)
                parts[j] = p
            # counting sort by partition, stable: each partition's records keep their order;
            # refused records (partition -1) are left out
            for j in range(nparts + 1):
                counts[j] = 0
            for j in range(n):
                if parts[j] >= 0:
                    counts[parts[j] + 1] += 1
            for j in range(nparts):
                counts[j + 1] += counts[j]
            sent = counts[nparts]
            for j in range(n):
                if parts[j] >= 0:
                    order[counts[parts[j]]] = j
                    counts[parts[j]] += 1
            grouped.regroup(holder, order, sent)
            lo = 0
            while lo < sent:
                p = parts[order[lo]]
                hi = lo
                while hi < sent and parts[order[hi]] == p:
                    hi += 1
                q = <PartitionQueue>t.queues[p]
                tail = q.tail
                timeout = acc.append_columns(q, fut, &grouped.cols, order, start, lo, hi)
                if pt.kind == PARTITIONER_PYTHON and q.tail is not tail:
                    if new_batches is None:
                        new_batches = []
                    new_batches.append(p)
                if timeout is not None:
                    for r in range(hi, sent):
                        fut.refuse(start + order[r], timeout)
                    break
                lo = hi
            if new_batches is not None:
                for p in new_batches:
                    pt.on_new_batch(t, p)
        finally:
            PyMem_Free(parts)
            PyMem_Free(counts)
            PyMem_Free(order)
        return timeout

    cdef object refusal(self, str call):
        """The error a send refused after close() or a fatal error raises: a copy each time, so
        that threads raising it concurrently do not share one traceback."""
        cdef object fatal = self.accumulator._fatal_error
        if isinstance(fatal, ProducerForkedError):   # this call, this process
            return ProducerForkedError(call, fatal.owner_pid, os.getpid())
        if fatal is not None:
            return copy.copy(fatal)
        return ProducerClosedError(f"{call} after close(): the producer accepts no more records")

    cdef object serialize(self, object obj, str topic, int kind, object serializer, str what,
                          object ctx):
        try:
            if kind == SER_JSON:
                out = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
            elif kind == SER_CALLABLE:
                out = serializer(obj)
            elif kind == SER_CONTEXT:
                ctx.field = what
                out = serializer(obj, ctx)
            else:
                out = serializer.serialize(topic, obj)
        except SerializationError:
            raise
        except Exception as e:
            raise SerializationError(f"the {what} serializer failed for a record to {topic!r}: "
                                     f"{type(e).__name__}: {e}") from e
        return out

    cdef list serialize_all(self, object objs, str topic, int kind, object serializer, str what,
                            BulkFuture fut, list contexts):
        """send_many()'s serialization: a record whose serializer raises is refused alone (None
        stands in for it). contexts: each record's SerializationContext, for SER_CONTEXT."""
        cdef list out = []
        cdef Py_ssize_t i = 0
        for obj in objs:
            if obj is None:
                out.append(None)
            else:
                try:
                    out.append(self.serialize(obj, topic, kind, serializer, what,
                                              None if contexts is None else contexts[i]))
                except SerializationError as e:
                    fut.refuse(i, indexed(e, i))
                    out.append(None)
            i += 1
        return out

    cdef ColumnsHolder fill_refusing(self, BulkFuture fut, object values, object keys,
                                     object headers, object timestamps, Py_ssize_t start,
                                     Py_ssize_t n):
        """The slow path of a chunk that fill() refused (a value or key that is not bytes, a
        header that is not (str, bytes)): finds each such record, refuses it, and gathers the
        chunk with empty records standing in for the refused ones (they are not sent)."""
        vals = list(values[start:start + n])
        ks = list(keys[start:start + n]) if keys is not None else None
        hs = list(headers[start:start + n]) if headers is not None else None
        tss = list(timestamps[start:start + n]) if timestamps is not None else None
        cdef ColumnsHolder probe
        cdef Py_ssize_t j
        for j in range(n):
            probe = ColumnsHolder()
            try:
                probe.fill(values, keys, headers, timestamps, start + j, start + j + 1)
            except SerializationError as e:
                fut.refuse(start + j, e)    # fill() names the record's index already
                vals[j] = None
                if ks is not None:
                    ks[j] = None
                if hs is not None:
                    hs[j] = None
                if tss is not None:
                    tss[j] = None
        cdef ColumnsHolder holder = ColumnsHolder()
        holder.fill(vals, ks, hs, tss, 0, n)
        return holder

    cdef TopicState topic_for_send(self, str topic):
        """Slow path: the topic's partitions are not known yet; await_metadata() fetches them,
        blocking up to max.block.ms."""
        state = self._await_metadata(topic)
        if not isinstance(state, TopicState):
            raise IllegalStateError(f"no metadata for {topic!r}")
        return <TopicState>state

    cdef TopicState refresh_for_partition(self, str topic, int32_t partition):
        """An explicit partition outside the known range: refresh metadata once (partitions may
        have been added), then fail clearly."""
        state = self._await_metadata(topic, partition)
        cdef TopicState t = <TopicState>state
        if partition < 0 or partition >= t.num_partitions:
            raise InvalidPartitionError(
                f"partition {partition} is outside [0, {t.num_partitions}) for topic {topic!r}")
        return t

    cdef int32_t choose_partition(self, TopicState t, object key, object value, object headers,
                                  const char *key_ptr, Py_ssize_t key_len,
                                  bint *sticky) except -2:
        """The partition of a record sent without one (partitioner.pyx); *sticky is set when
        the sticky partitioner chose it, and the caller then reports the bytes it appended."""
        cdef Partitioning pt = self._partitioning
        if pt.kind == PARTITIONER_DEFAULT and key_ptr != NULL and not pt.ignore_keys:
            sticky[0] = False
            return kengine_partition_for_key(key_ptr, key_len, t.num_partitions)
        return pt.choose(t, key, value, headers, key_ptr, key_len, sticky)


cdef class SendMethods:
    """send() and send_many() of the public kengine.Producer, which derives from this class
    and from nothing else of the core: they forward, in C, to the SendPath the producer
    composes (``_send_path``, set once by its constructor). A producer holding the send
    path's bound methods in instance attributes would cost every record an unspecialized
    attribute lookup on CPython 3.11 (about 150 more instructions per call, measured); a
    method found on the type is a specialized, cached lookup, as it was before the send path
    became a part of its own."""

    def send(self, str topic, value=None, key=None, headers=None, partition=None,
             timestamp_ms=None, on_delivery=None):
        """Appends one record to its partition's batch and returns a DeliveryFuture as soon
        as it is in the batch. Blocks (up to max.block.ms) only when buffer.memory is
        exhausted or the topic's metadata is not known yet."""
        if self._send_path is None:
            raise IllegalStateError("the producer was not constructed")
        return self._send_path.send_record(topic, value, key, headers, partition,
                                           timestamp_ms, on_delivery, True)

    def send_many(self, str topic, values, keys=None, headers=None, timestamps=None,
                  partition=None):
        """Appends many records in one call and returns one BulkFuture (see SendPath)."""
        if self._send_path is None:
            raise IllegalStateError("the producer was not constructed")
        return self._send_path.send_records(topic, values, keys, headers, timestamps,
                                            partition)

    def send_arrow(self, str topic, data, value, key=None, headers=None, timestamp=None,
                   partition=None):
        """Sends every row of tabular Arrow data as one record and returns one BulkFuture,
        indexed by row, as send_many() does, with no Python object per row.

        data: anything exporting the Arrow C stream or C data interface (a pyarrow Table,
        RecordBatch or RecordBatchReader, a Polars DataFrame, a pandas DataFrame of pandas
        2.2+, a nanoarrow array); a stream is read to its end first (send a large file one
        record batch at a time). value, key: column names of binary, large_binary, string,
        large_string, binary_view, string_view or fixed_size_binary columns, or of
        dictionaries of them; a null value is a tombstone, a null key is placed as an unkeyed
        record. headers: column names (each header named after its column) or a dict of
        header name -> column name; a null is a header with a null value. timestamp: a
        timestamp column (any unit) or int64 epoch milliseconds; null: now. partition: an
        int for every row, or the name of an integer column (null: the partitioner chooses).

        Keys are placed in C as send() places them; a Python partitioner is called per row
        with the key, value and headers as bytes. The bytes are copied once, from the Arrow
        buffers into the batches, without the GIL. A row that cannot be sent (too large, a
        negative timestamp or partition) fails alone, under its row index."""
        if self._send_path is None:
            raise IllegalStateError("the producer was not constructed")
        return self._send_path.send_arrow_rows(topic, data, value, key, headers, timestamp,
                                               partition, None)
