/* The few C library and compiler facilities the core uses that differ between platforms.
 *
 * Linux and macOS (GCC or clang) use clock_gettime() and __builtin_clzll() as they are.
 * Windows' C library has neither (MSVC's at least): there clock_gettime() is built over
 * timespec_get() and QueryPerformanceCounter(), and the count of leading zeros over
 * _BitScanReverse64(). The Windows branch is compiled and linked for x86_64-windows-gnu
 * (MinGW headers, by zig cc) by tools/check_portability.sh, but it has NEVER been compiled by
 * MSVC, which cibuildwheel uses, nor run: no machine kengine is developed on runs Windows.
 */
#ifndef KENGINE_PORTABLE_H
#define KENGINE_PORTABLE_H

#include <stdint.h>
#include <time.h>

#if defined(_WIN32)

#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <windows.h>
#  include <intrin.h>

#  undef CLOCK_REALTIME   /* MinGW's pthread_time.h may have its own: these are ours */
#  undef CLOCK_MONOTONIC
#  define CLOCK_REALTIME 0
#  define CLOCK_MONOTONIC 1

/* CLOCK_REALTIME: the UTC wall clock; CLOCK_MONOTONIC: the performance counter, which
 * Windows guarantees monotonic and consistent across processors. Returns 0, as POSIX does. */
static int kengine_clock_gettime(int clock_id, struct timespec *ts)
{
    if (clock_id == CLOCK_MONOTONIC) {
        static LARGE_INTEGER frequency; /* constant after boot; a racing first read is harmless */
        LARGE_INTEGER now;
        if (frequency.QuadPart == 0)
            QueryPerformanceFrequency(&frequency);
        QueryPerformanceCounter(&now);
        ts->tv_sec = (time_t)(now.QuadPart / frequency.QuadPart);
        ts->tv_nsec = (long)((now.QuadPart % frequency.QuadPart) * 1000000000LL
                             / frequency.QuadPart);
        return 0;
    }
    return timespec_get(ts, TIME_UTC) == TIME_UTC ? 0 : -1;
}
#  undef clock_gettime
#  define clock_gettime kengine_clock_gettime

/* Leading zero bits of a 64-bit value; v must not be 0 (as with __builtin_clzll). */
static __inline int kengine_clzll(unsigned long long v)
{
    unsigned long index;
    _BitScanReverse64(&index, v);
    return 63 - (int)index;
}

#else

#  define kengine_clzll(v) __builtin_clzll(v)

#endif

#endif /* KENGINE_PORTABLE_H */
