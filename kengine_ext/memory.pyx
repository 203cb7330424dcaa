# buffer.memory accounting and the wait for it (part of kengine_ext._core; fields in
# memory.pxd). Sends reserve a batch's bytes when they open it; the sender thread gives them
# back when the batch completes. A send that finds too little waits, first come first served,
# up to max.block.ms.

import logging
import os
import threading
import time

from kengine_ext.errors import BufferFullError, KafkaTimeoutError

__all__ += ["BufferMemory"]

_memory_log = logging.getLogger("kengine.producer")


@cython.final
cdef class BufferMemory:
    """buffer.memory (``total_bytes``) and what is in use; shared by the send path (which
    reserves) and the accumulator (which releases)."""

    def __cinit__(self, int64_t total_bytes, *, int64_t max_block_ms):
        self.total_bytes = total_bytes
        self.max_block_ms = max_block_ms
        self.owner_pid = os.getpid()
        self._cond = threading.Condition()
        self._skipped_tickets = set()

    cdef bint try_take(self, Py_ssize_t need, Py_ssize_t reserved) noexcept:
        """Reserves `need` bytes for a new batch, counting the `reserved` ones the caller
        already holds (it waited for them); False, reserving nothing, when they are not free
        now or other threads wait for memory first."""
        if reserved < need:
            if self._waiters > 0 or self._used_bytes + need - reserved > self.total_bytes:
                return False
            self._used_bytes += need - reserved
        elif reserved > need:
            self._used_bytes -= reserved - need
        return True

    cdef void take(self, Py_ssize_t nbytes) noexcept:
        """Charges bytes that are already in use (a compressed batch that outgrew its
        reservation, the pieces of a split batch), whatever the limit."""
        self._used_bytes += nbytes

    cdef int release(self, Py_ssize_t nbytes) except -1:
        self._used_bytes -= nbytes
        if self._waiters > 0:
            with self._cond:
                self._cond.notify_all()
        if self._listener_armed and nbytes > 0:
            self._listener_armed = False
            try:
                self._listener()
            except BaseException:
                _memory_log.exception("buffer.memory listener %r raised; continuing",
                                      self._listener)
        return 0

    def wait_elsewhere(self, listener):
        """Sends stop blocking for buffer.memory: they raise BufferFullError, and
        ``listener()`` is called (on the releasing thread) once bytes are released after
        arm_listener(). Set once, before the first send (the asyncio producer)."""
        self._nowait = True
        self._listener = listener

    def note_exhausted(self):
        """A send that waited elsewhere (wait_elsewhere()) gave up after max.block.ms: counted
        with the ones wait_for() gives up (buffer-exhausted-*)."""
        with self._cond:
            self.exhausted_total += 1

    def arm_listener(self, Py_ssize_t need) -> bool:
        """Asks for one listener call at the next release. False, arming nothing, when `need`
        bytes are free already (try the send again now)."""
        if self._used_bytes + need <= self.total_bytes:
            return False
        self._listener_armed = True
        return True

    cdef Py_ssize_t wait_for(self, Py_ssize_t need, str topic) except -1:
        """Blocks until `need` bytes are free, first come first served, and reserves them;
        returns the bytes reserved, which the caller hands to try_take() or releases. Raises
        KafkaTimeoutError after max.block.ms. Call it holding no other state."""
        if self._nowait:
            raise BufferFullError(
                f"a send to {topic!r} needs {need} bytes of buffer.memory ({self.total_bytes} "
                f"bytes, {self._used_bytes} in use by unsent records) and may not block for "
                f"them", need)
        # in a fork() child nothing frees memory, and the parent's sender may have held _cond
        check_owner(self.owner_pid, f"send() to {topic!r}")
        started_ns = time.monotonic_ns()
        deadline = time.monotonic() + self.max_block_ms / 1000.0
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._waiters += 1
            try:
                while ticket != self._serving_ticket or \
                        self._used_bytes + need > self.total_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.exhausted_total += 1
                        raise KafkaTimeoutError(
                            f"a send to {topic!r} waited {self.max_block_ms} ms (max.block.ms) "
                            f"for {need} bytes of buffer.memory ({self.total_bytes} bytes, "
                            f"{self._used_bytes} in use by unsent records); the records "
                            f"it waited for were not sent")
                    self._cond.wait(remaining)
                self._used_bytes += need
            finally:
                self._waiters -= 1
                self.wait_ns += time.monotonic_ns() - started_ns
                if ticket == self._serving_ticket:
                    self._serving_ticket += 1
                else:
                    # timed out before its turn: let the queue move past this ticket
                    self._skipped_tickets.add(ticket)
                while self._serving_ticket in self._skipped_tickets:
                    self._skipped_tickets.discard(self._serving_ticket)
                    self._serving_ticket += 1
                self._cond.notify_all()
        return need

    @property
    def used_bytes(self) -> int:
        """Bytes reserved by batches not yet completed."""
        return self._used_bytes

    @property
    def waiters(self) -> int:
        """Threads blocked waiting for buffer.memory."""
        return self._waiters

    def __repr__(self):
        return f"BufferMemory({self._used_bytes}/{self.total_bytes} bytes, {self._waiters} waiting)"
