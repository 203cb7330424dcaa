/* The C parts of kengine_ext that differ between platforms, checked on their own:
 * tools/check_portability.sh builds this with crc32c.c for every platform the release
 * configuration names, and runs it where this machine can (x86-64 natively, AArch64 Linux
 * under qemu-user).
 *
 *   selftest [expected-implementation]
 *
 * Checks the dispatched CRC32C against the portable one and against the standard check value,
 * over every length up to 1 KiB at every alignment and a few large buffers, in one call and in
 * pieces; the clock functions of wallclock.h and portable.h; and, when given, the name of the
 * implementation the dispatcher must have chosen ("sse4.2", "armv8-crc", "software").
 * Exit status 0 when everything holds, 1 with a line per failure otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "portable.h"
#include "wallclock.h"

static int failures;

static void check(int ok, const char *what, unsigned long long a, unsigned long long b)
{
    if (!ok) {
        failures++;
        printf("FAIL %s: %llx != %llx\n", what, a, b);
    }
}

static uint64_t prng_state = 0x9E3779B97F4A7C15u;

static uint8_t next_byte(void)
{
    prng_state ^= prng_state << 13;
    prng_state ^= prng_state >> 7;
    prng_state ^= prng_state << 17;
    return (uint8_t)prng_state;
}

int main(int argc, char **argv)
{
    kengine_crc32c_init(getenv("KENGINE_CRC32C") != NULL
                        && strcmp(getenv("KENGINE_CRC32C"), "software") == 0);
    const char *impl = kengine_crc32c_impl();
    printf("crc32c implementation: %s\n", impl);
    if (argc > 1 && strcmp(argv[1], impl) != 0) {
        failures++;
        printf("FAIL the dispatcher chose %s, expected %s\n", impl, argv[1]);
    }

    check(kengine_crc32c(0, "123456789", 9) == 0xE3069283u, "check value of \"123456789\"",
          kengine_crc32c(0, "123456789", 9), 0xE3069283u);
    check(kengine_crc32c(0, "", 0) == 0, "empty input", kengine_crc32c(0, "", 0), 0);

    enum { BIG = 3 * 1024 * 1024 + 13 };
    uint8_t *buf = malloc(BIG + 16);
    if (buf == NULL)
        return 2;
    for (size_t i = 0; i < BIG + 16; i++)
        buf[i] = next_byte();
    for (size_t offset = 0; offset < 16; offset++) {
        for (size_t len = 0; len <= 1024; len++) {
            uint32_t hw = kengine_crc32c(0, buf + offset, len);
            uint32_t sw = kengine_crc32c_software(0, buf + offset, len);
            if (hw != sw) {
                check(0, "dispatched vs portable (short lengths)", hw, sw);
                break;
            }
        }
    }
    size_t sizes[] = {4096, 6144, 6145, 65536, 1048576 + 7, BIG};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t hw = kengine_crc32c(0, buf + 3, sizes[i]);
        uint32_t sw = kengine_crc32c_software(0, buf + 3, sizes[i]);
        check(hw == sw, "dispatched vs portable (large)", hw, sw);
        size_t half = sizes[i] / 3;
        uint32_t chained = kengine_crc32c(kengine_crc32c(0, buf + 3, half), buf + 3 + half,
                                          sizes[i] - half);
        check(chained == hw, "continued in two pieces", chained, hw);
    }
    free(buf);

    check(kengine_clzll(1) == 63, "clzll(1)", (unsigned long long)kengine_clzll(1), 63);
    check(kengine_clzll(0x8000000000000000ull) == 0, "clzll(1 << 63)",
          (unsigned long long)kengine_clzll(0x8000000000000000ull), 0);

    struct timespec mono;
    check(clock_gettime(CLOCK_MONOTONIC, &mono) == 0, "clock_gettime(CLOCK_MONOTONIC)", 1, 0);
    kengine_wallclock_init();
    int64_t now_ms = kengine_wall_ms();
    /* after 2020-01-01 and before 2100-01-01: the epoch and the unit are right */
    check(now_ms > 1577836800000LL && now_ms < 4102444800000LL, "wall clock in epoch ms",
          (unsigned long long)now_ms, 0);
    printf("wall clock: %s\n", kengine_wallclock_uses_tsc() ? "tsc" : "clock_gettime");

    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
