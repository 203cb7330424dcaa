# hashing: CRC32C and Kafka's murmur2 as plain C functions, for every part of kengine_ext._core.
# None of them touches a Python object: all are callable with the GIL released, from any thread.
from libc.stdint cimport int32_t, uint32_t

cdef extern from "crc32c.h" nogil:
    # Fills the tables and picks the implementation (force_software != 0: slicing-by-8).
    # hashing.pyx calls it once while the module is imported; later calls do nothing.
    void kengine_crc32c_init(int force_software)
    # CRC32C of len bytes at buf continuing from crc: 0 starts a checksum, and
    # kengine_crc32c(kengine_crc32c(0, a, na), b, nb) is the CRC32C of a followed by b.
    uint32_t kengine_crc32c(uint32_t crc, const void *buf, size_t len)
    # The portable slicing-by-8 implementation whatever the CPU (tests and benchmarks).
    uint32_t kengine_crc32c_software(uint32_t crc, const void *buf, size_t len)
    # "sse4.2", "armv8-crc" or "software": what kengine_crc32c runs.
    const char *kengine_crc32c_impl()

cdef extern from "murmur2.h" nogil:
    # Java's Utils.murmur2: the signed 32-bit hash of len (>= 0) bytes; an empty key is hashed.
    int32_t kengine_murmur2(const char *data, Py_ssize_t len)
    # Kafka's default partition for a key: (murmur2 & 0x7fffffff) % num_partitions.
    # Precondition: num_partitions > 0 (not checked here).
    int32_t kengine_partition_for_key(const char *data, Py_ssize_t len, int32_t num_partitions)
