# fork() detection for the waits and slow branches of the core (declared in process.pxd). The
# per-record path never calls this: after an os.fork() the child's copies of every live
# producer are closed by kengine's at-fork hook (kengine/producer.py), which send() already
# checks; these checks catch what the hook cannot (a future of the parent's producer waited on
# in the child, a fork() made outside Python's os.fork()).

import os

from kengine_ext.errors import ProducerForkedError


cdef int check_owner(long owner_pid, str call) except -1:
    """Raises ProducerForkedError when the calling process is not owner_pid (os.getpid(): a
    system call, so only on paths that would otherwise block or are already slow)."""
    cdef long pid = os.getpid()
    if pid != owner_pid:
        raise ProducerForkedError(call, owner_pid, pid)
    return 0
