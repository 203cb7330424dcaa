/* Wall-clock milliseconds for record timestamps, read once per record, cheaply.
 *
 * clock_gettime(CLOCK_REALTIME) costs ~20-25 ns on the virtual machines producers often run on:
 * a quarter of what appending a 100-byte record costs. When the kernel itself keeps time with
 * the TSC (its clocksource is "tsc": invariant and synchronised across CPUs), the time is
 * extrapolated from rdtsc with a rate measured against CLOCK_REALTIME, re-anchored every
 * ~10 ms, so it follows NTP slews and never drifts more than microseconds. Elsewhere (other
 * clock sources, other CPUs, and systems without Linux's /sys: macOS, Windows) it is plain
 * clock_gettime, which portable.h supplies on Windows.
 *
 * The state is shared, not thread-local: callers hold the GIL (send(), append() and the bulk
 * paths read the clock before they release it).
 */
#ifndef KENGINE_WALLCLOCK_H
#define KENGINE_WALLCLOCK_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "portable.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#define KENGINE_WALLCLOCK_TSC 1
#endif

static int kengine_wallclock_tsc;          /* extrapolate from the TSC (set once at init) */
static uint64_t kengine_wallclock_anchor_tsc;
static int64_t kengine_wallclock_anchor_ns; /* CLOCK_REALTIME at the anchor */
static double kengine_wallclock_ns_per_tick;
static uint64_t kengine_wallclock_span_ticks; /* re-anchor after this many ticks (~10 ms) */

static inline int64_t kengine_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#ifdef KENGINE_WALLCLOCK_TSC
static void kengine_wallclock_anchor(uint64_t tsc) {
    int64_t ns = kengine_realtime_ns();
    if (kengine_wallclock_anchor_tsc != 0 && tsc > kengine_wallclock_anchor_tsc
            && ns > kengine_wallclock_anchor_ns) {
        double rate = (double)(ns - kengine_wallclock_anchor_ns)
                      / (double)(tsc - kengine_wallclock_anchor_tsc);
        /* a wild rate (time jumped: settimeofday, a suspended VM) keeps the previous one */
        if (kengine_wallclock_ns_per_tick == 0.0
                || (rate > kengine_wallclock_ns_per_tick * 0.9
                    && rate < kengine_wallclock_ns_per_tick * 1.1))
            kengine_wallclock_ns_per_tick = rate;
    }
    kengine_wallclock_anchor_tsc = tsc;
    kengine_wallclock_anchor_ns = ns;
}
#endif

/* Decides once whether the TSC may be used, and measures its rate (~2 ms). */
static void kengine_wallclock_init(void) {
#ifdef KENGINE_WALLCLOCK_TSC
    char source[32] = {0};
    /* Linux only: where the file does not exist (macOS, Windows) the TSC is not used */
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (f == NULL)
        return;
    if (fgets(source, sizeof source, f) == NULL)
        source[0] = 0;
    fclose(f);
    if (strncmp(source, "tsc", 3) != 0 || (source[3] != '\n' && source[3] != 0))
        return;
    kengine_wallclock_anchor(__rdtsc());
    int64_t start = kengine_realtime_ns();
    while (kengine_realtime_ns() - start < 2000000) { }
    kengine_wallclock_anchor(__rdtsc());
    if (kengine_wallclock_ns_per_tick <= 0.0)
        return;
    kengine_wallclock_span_ticks = (uint64_t)(10000000.0 / kengine_wallclock_ns_per_tick);
    kengine_wallclock_tsc = 1;
#endif
}

static inline int64_t kengine_wall_ms(void) {
#ifdef KENGINE_WALLCLOCK_TSC
    if (kengine_wallclock_tsc) {
        uint64_t tsc = __rdtsc();
        uint64_t ticks = tsc - kengine_wallclock_anchor_tsc;
        if (ticks >= kengine_wallclock_span_ticks)
            kengine_wallclock_anchor(tsc);   /* also when the TSC went backwards (ticks wraps) */
        else
            return (kengine_wallclock_anchor_ns
                    + (int64_t)((double)ticks * kengine_wallclock_ns_per_tick)) / 1000000;
        return kengine_wallclock_anchor_ns / 1000000;
    }
#endif
    return kengine_realtime_ns() / 1000000;
}

static inline int kengine_wallclock_uses_tsc(void) { return kengine_wallclock_tsc; }

#endif
