# Which process owns a producer's objects: fork() detection (part of kengine_ext._core).
#
# A producer's sender thread and sockets exist only in the process that created it; a child
# made by fork() has copies of its batches and futures that nothing there will ever complete.
# Owners record os.getpid() once (the accumulator at construction, each batch from it); the
# waits and other slow branches compare it with the caller's process here. Nothing here holds
# state.

cdef int check_owner(long owner_pid, str call) except -1
