# The one home of the low-level helpers every part of kengine_ext._core uses: big-endian loads
# and stores, the clocks (declared here), and, in primitives.pyx, varints and the borrowing of
# the bytes of a bytes / str / buffer object. Nothing here holds state but the wall clock's
# (wallclock.h: callers hold the GIL).
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t

cdef extern from *:
    """
    /* Byte order. Byte-wise shifts are alignment-safe and GCC/Clang compile them to a single
       (MOVBE/BSWAP) load or store. Loads take any pointer: wire data is char, record data
       unsigned char. */
    static inline void kengine_store_be16(char *p, uint16_t v) {
        unsigned char *u = (unsigned char *)p;
        u[0] = (unsigned char)(v >> 8); u[1] = (unsigned char)v;
    }
    static inline void kengine_store_be32(char *p, uint32_t v) {
        unsigned char *u = (unsigned char *)p;
        u[0] = (unsigned char)(v >> 24); u[1] = (unsigned char)(v >> 16);
        u[2] = (unsigned char)(v >> 8); u[3] = (unsigned char)v;
    }
    static inline void kengine_store_be64(char *p, uint64_t v) {
        kengine_store_be32(p, (uint32_t)(v >> 32)); kengine_store_be32(p + 4, (uint32_t)v);
    }
    static inline uint16_t kengine_load_be16(const void *p) {
        const unsigned char *u = (const unsigned char *)p;
        return (uint16_t)(((uint16_t)u[0] << 8) | u[1]);
    }
    static inline uint32_t kengine_load_be32(const void *p) {
        const unsigned char *u = (const unsigned char *)p;
        return ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
    }
    static inline uint64_t kengine_load_be64(const void *p) {
        const unsigned char *u = (const unsigned char *)p;
        return ((uint64_t)kengine_load_be32(u) << 32) | kengine_load_be32(u + 4);
    }
    /* float64 fields travel as the big-endian bits of the double */
    static inline uint64_t kengine_double_bits(double d) {
        uint64_t u; memcpy(&u, &d, sizeof u); return u;
    }
    static inline double kengine_bits_double(uint64_t u) {
        double d; memcpy(&d, &u, sizeof d); return d;
    }
    /* what a reader points at for an exporter whose empty buffer is NULL */
    static const char kengine_empty_bytes[1] = {0};
    """
    void store_be16 "kengine_store_be16"(char *p, uint16_t v) nogil
    void store_be32 "kengine_store_be32"(char *p, uint32_t v) nogil
    void store_be64 "kengine_store_be64"(char *p, uint64_t v) nogil
    uint16_t load_be16 "kengine_load_be16"(const void *p) nogil
    uint32_t load_be32 "kengine_load_be32"(const void *p) nogil
    uint64_t load_be64 "kengine_load_be64"(const void *p) nogil
    uint64_t double_bits "kengine_double_bits"(double d) nogil
    double bits_double "kengine_bits_double"(uint64_t u) nogil
    const char *kengine_empty_bytes

cdef extern from "portable.h" nogil:
    # __builtin_clzll where the compiler has it; clock_gettime() and CLOCK_* come from <time.h>
    # on POSIX and from the header's own version on Windows
    int kengine_clzll(unsigned long long v)
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec *tp)
    int CLOCK_MONOTONIC

cdef extern from "wallclock.h" nogil:
    # Record timestamps: epoch ms (TSC-extrapolated where the kernel trusts the TSC; see the
    # header). Call with the GIL held.
    void kengine_wallclock_init()
    int64_t kengine_wall_ms()
    int kengine_wallclock_uses_tsc()
