# Declarations of every part of kengine_ext._core: the contract between the parts.
include "hashing.pxd"
include "buffer.pxd"
include "protocol.pxd"
include "records.pxd"
include "accumulator.pxd"
include "sequences.pxd"
include "partitioner.pxd"
