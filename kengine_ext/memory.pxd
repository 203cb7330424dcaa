# buffer.memory: the bytes that records waiting to be sent may take, and the fair wait for them
# (part of kengine_ext._core). Java's BufferPool, without the pool: batch buffers are recycled
# by records.pyx's BufferPool, this only counts.
#
# One writer per field: memory.pyx. Fields marked GIL change only in C code that holds the GIL
# and runs no Python code meanwhile; the ticket fields only under _cond (a threading.Condition),
# which only blocked senders and their wakers take.
from libc.stdint cimport int64_t
cimport cython


@cython.final
cdef class BufferMemory:
    cdef readonly int64_t total_bytes        # buffer.memory
    cdef readonly int64_t max_block_ms       # max.block.ms: the longest a send waits for bytes
    cdef readonly long owner_pid             # set once: os.getpid() of the creating process
    cdef int64_t _used_bytes                 # GIL; reserved by batches (and by waiters served)
    cdef int _waiters                        # GIL; threads blocked in wait_for()
    cdef object _cond                        # threading.Condition those threads wait on
    cdef int64_t _next_ticket                # under _cond: FIFO order of blocked sends
    cdef int64_t _serving_ticket             # under _cond: the ticket served next
    cdef set _skipped_tickets                # under _cond: tickets that timed out
    cdef readonly int64_t wait_ns            # under _cond: total ns sends spent blocked here
                                             # (bufferpool-wait-ratio)
    cdef readonly int64_t exhausted_total    # under _cond: sends that gave up waiting for
                                             # buffer.memory after max.block.ms
                                             # (buffer-exhausted-*)
    # Sends that must not block (the asyncio producer, kengine/aio): set once, before any send,
    # by wait_elsewhere(). wait_for() then raises BufferFullError at once; the caller waits
    # on its event loop.
    cdef bint _nowait
    # Up-call: _listener() runs once per arming (arm_listener()) on the thread that released
    # bytes (the sender thread), GIL held, after the accounting.
    cdef object _listener
    cdef bint _listener_armed                # GIL

    cdef bint try_take(self, Py_ssize_t need, Py_ssize_t reserved) noexcept
    cdef void take(self, Py_ssize_t nbytes) noexcept
    cdef int release(self, Py_ssize_t nbytes) except -1
    cdef Py_ssize_t wait_for(self, Py_ssize_t need, str topic) except -1
