# cython: language_level=3
# kengine_ext._core: the one extension module of kengine. Each part below is a file of its own;
# `include` makes them one C translation unit so cross-part calls are plain (often inlined) C calls.
# Each part appends its public names to __all__.

__all__ = []

include "primitives.pyx"
include "process.pyx"
include "hashing.pyx"
include "buffer.pyx"
include "protocol.pyx"
include "compression.pyx"
include "records.pyx"
include "memory.pyx"
include "batch.pyx"
include "futures.pyx"
include "accumulator.pyx"
include "sequences.pyx"
include "partitioner.pyx"
include "arrow_input.pyx"
include "trace_stamp.pyx"
include "send_path.pyx"
include "aio_send.pyx"
include "avro.pyx"
