/* CRC32C (Castagnoli): run-time choice between CPU instructions and portable slicing-by-8.
 *
 * Every implementation works on the raw CRC register: the public entry points invert the
 * register on the way in and out (the standard pre/post conditioning), so continuing a CRC
 * is just passing the previous result back in.
 *
 * Combining independent streams. The register update for one input byte b is
 *     r' = (r >> 8) ^ T[(r ^ b) & 0xff],
 * which is linear over GF(2) in r and in b together. Hence for a buffer A followed by B:
 *     raw(r, A || B) = Z^|B| (raw(r, A)) ^ raw(0, B),
 * where Z is the (linear) register update for one zero byte and Z^n applies it n times.
 * That lets the SSE4.2 path run three independent CRC streams over adjacent thirds of a block
 * (the crc32 instruction has a latency of 3 cycles but a throughput of one per cycle, so one
 * stream leaves two thirds of the unit idle) and join them with Z^n applied to a 32-bit value.
 * Z^n is a 32x32 bit matrix, computed at init by repeated squaring of Z; it is applied through
 * four 256-entry tables, one per byte of the register, each entry being the matrix times that
 * byte value in that position (the matrix is linear, so the four lookups XOR together).
 */
#include "crc32c.h"

#include <string.h>

/* Which instruction paths are compiled, and how the CPU is asked whether it has them.
 * MSVC (Windows) compiles only the portable path: its intrinsics and CPU query differ and no
 * MSVC build has ever been run, so nothing here claims it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#  define KENGINE_CRC32C_SSE42 1
#  include <cpuid.h>
#  include <nmmintrin.h>
   /* The crc32 instruction belongs to SSE4.2 (one CPUID bit), but clang 14 and later model it
    * as a feature of its own that "sse4.2" does not always switch on: with a baseline CPU
    * target (zig cc, cross builds) the intrinsics are then refused. Ask for both. GCC's
    * "sse4.2" has always included it. */
#  if defined(__clang__) && __clang_major__ >= 14
#    define KENGINE_TARGET_SSE42 "sse4.2,crc32"
#  else
#    define KENGINE_TARGET_SSE42 "sse4.2"
#  endif
#endif

#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__)) \
    && (defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__))
#  define KENGINE_CRC32C_ARMV8 1
#  include <arm_acle.h>
#  if defined(__ARM_FEATURE_CRC32)
     /* the compiler's target CPU already has the CRC extension (Apple's arm64 always does) */
#  elif defined(__linux__) || defined(__FreeBSD__)
#    include <sys/auxv.h>
#    ifndef HWCAP_CRC32
#      define HWCAP_CRC32 (1 << 7) /* from the kernel's asm/hwcap.h, for old libc headers */
#    endif
#  elif defined(__APPLE__)
#    include <sys/sysctl.h>
#  endif
#  ifdef __clang__
#    define KENGINE_TARGET_CRC __attribute__((target("crc")))
#  else
#    define KENGINE_TARGET_CRC __attribute__((target("+crc")))
#  endif
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

/* Every static below is written only by kengine_crc32c_init (once, under the import lock,
 * before any reader exists) and only read afterwards: readers on any thread need no lock. */
static uint32_t sw_table[8][256]; /* [k][b]: register change for byte b then k zero bytes */
static int initialised;

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v); /* unaligned-safe; compiles to one load */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint32_t load_le32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* ---- portable: slicing-by-8 ---------------------------------------------------------------- */

static uint32_t crc32c_sw_raw(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
        n--;
    }
    for (; n >= 8; p += 8, n -= 8) {
        /* the first byte of the word is followed by seven more, hence table 7 */
        uint64_t w = load_le64(p) ^ crc;
        crc = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff]
            ^ sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff]
            ^ sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff]
            ^ sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
    }
    while (n--)
        crc = (crc >> 8) ^ sw_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(KENGINE_CRC32C_SSE42)

/* ---- GF(2) operators for "append n zero bytes" --------------------------------------------- */

/* A linear map on the 32-bit register, as the images of its 32 basis bits. */
typedef struct { uint32_t col[32]; } gf2_op;

static uint32_t gf2_apply(const gf2_op *op, uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; v; i++, v >>= 1)
        if (v & 1)
            r ^= op->col[i];
    return r;
}

/* a after b */
static gf2_op gf2_compose(const gf2_op *a, const gf2_op *b)
{
    gf2_op r;
    for (int i = 0; i < 32; i++)
        r.col[i] = gf2_apply(a, b->col[i]);
    return r;
}

/* Z^n, Z appending one zero byte: square-and-multiply, so O(log n) matrix products at init. */
static gf2_op gf2_zeros_op(size_t n)
{
    gf2_op z, r;
    for (int i = 0; i < 32; i++) {
        uint32_t bit = (uint32_t)1 << i;
        z.col[i] = (bit >> 8) ^ sw_table[0][bit & 0xff];
        r.col[i] = bit;
    }
    for (; n; n >>= 1) {
        if (n & 1)
            r = gf2_compose(&z, &r);
        z = gf2_compose(&z, &z);
    }
    return r;
}

/* Table form of Z^n: t[k][b] = Z^n (b << 8k), so Z^n(v) is four lookups XORed. */
typedef struct { uint32_t t[4][256]; } shift_table;

static void shift_table_fill(shift_table *s, size_t n)
{
    gf2_op op = gf2_zeros_op(n);
    for (int k = 0; k < 4; k++) {
        s->t[k][0] = 0;
        for (unsigned b = 1; b < 256; b++) /* linear: reuse the entry without the lowest bit */
            s->t[k][b] = s->t[k][b & (b - 1)] ^ op.col[8 * k + __builtin_ctz(b)];
    }
}

static inline uint32_t shift_apply(const shift_table *s, uint32_t v)
{
    return s->t[0][v & 0xff] ^ s->t[1][(v >> 8) & 0xff] ^ s->t[2][(v >> 16) & 0xff]
         ^ s->t[3][v >> 24];
}

/* Stream lengths of the two block sizes (blocks are three streams). LONG keeps the combine
 * (a dozen cycles) below 2% of a block; SHORT lets inputs of a few KiB use three streams
 * too. Both are multiples of 8, so every stream stays 8-byte aligned. */
#define SSE42_LONG 2048
#define SSE42_SHORT 256
static shift_table sse42_shift_long, sse42_shift_short; /* Z^LONG and Z^SHORT, set at init */

/* One block of 3 * len bytes at an 8-aligned p, as three interleaved streams of len bytes;
 * c0 is the register before the block, the result the register after it. shift is Z^len.
 * always_inline so that len is a constant in each caller's loop, which then unrolls. */
static inline __attribute__((target(KENGINE_TARGET_SSE42), always_inline))
uint64_t sse42_block3(uint64_t c0, const unsigned char *p, size_t len, const shift_table *shift)
{
    uint64_t c1 = 0, c2 = 0;
    for (const unsigned char *end = p + len; p < end; p += 8) {
        c0 = _mm_crc32_u64(c0, load_le64(p));
        c1 = _mm_crc32_u64(c1, load_le64(p + len));
        c2 = _mm_crc32_u64(c2, load_le64(p + 2 * len));
    }
    c0 = shift_apply(shift, (uint32_t)c0) ^ c1;
    return shift_apply(shift, (uint32_t)c0) ^ c2;
}

static __attribute__((target(KENGINE_TARGET_SSE42)))
uint32_t crc32c_sse42_raw(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;
    /* at most three steps to reach 8-byte alignment */
    if (n >= 1 && ((uintptr_t)p & 1)) {
        c = _mm_crc32_u8((uint32_t)c, *p);
        p += 1; n -= 1;
    }
    if (n >= 2 && ((uintptr_t)p & 2)) {
        uint16_t v;
        memcpy(&v, p, 2);
        c = _mm_crc32_u16((uint32_t)c, v);
        p += 2; n -= 2;
    }
    if (n >= 4 && ((uintptr_t)p & 4)) {
        c = _mm_crc32_u32((uint32_t)c, load_le32(p));
        p += 4; n -= 4;
    }
    for (; n >= 3 * SSE42_LONG; p += 3 * SSE42_LONG, n -= 3 * SSE42_LONG)
        c = sse42_block3(c, p, SSE42_LONG, &sse42_shift_long);
    for (; n >= 3 * SSE42_SHORT; p += 3 * SSE42_SHORT, n -= 3 * SSE42_SHORT)
        c = sse42_block3(c, p, SSE42_SHORT, &sse42_shift_short);
    for (; n >= 8; p += 8, n -= 8)
        c = _mm_crc32_u64(c, load_le64(p));
    if (n & 4) {
        c = _mm_crc32_u32((uint32_t)c, load_le32(p));
        p += 4;
    }
    if (n & 2) {
        uint16_t v;
        memcpy(&v, p, 2);
        c = _mm_crc32_u16((uint32_t)c, v);
        p += 2;
    }
    if (n & 1)
        c = _mm_crc32_u8((uint32_t)c, *p);
    return (uint32_t)c;
}

/* Whether the CPU has SSE4.2 (whose CPUID bit also covers the crc32 instruction): leaf 1,
 * ECX bit 20. Asked directly rather than through __builtin_cpu_supports, whose answer comes
 * from the compiler's runtime library: zig cc's, for one, answered "no" on CPUs that have it,
 * silently leaving the wheels it built on the portable path. */
static int sse42_supported(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    return (ecx & (1u << 20)) != 0;
}

#endif /* KENGINE_CRC32C_SSE42 */

#if defined(KENGINE_CRC32C_ARMV8)

/* One stream, kept simple: the x86 CI runs it only under qemu (tools/check_portability.sh),
 * so it is checked for correctness there, never timed. */
static KENGINE_TARGET_CRC
uint32_t crc32c_armv8_raw(uint32_t crc, const unsigned char *p, size_t n)
{
    for (; n && ((uintptr_t)p & 7); n--)
        crc = __crc32cb(crc, *p++);
    for (; n >= 8; p += 8, n -= 8)
        crc = __crc32cd(crc, load_le64(p));
    for (; n; n--)
        crc = __crc32cb(crc, *p++);
    return crc;
}

/* Whether this CPU has the CRC extension. Linux and FreeBSD publish it in the ELF auxiliary
 * vector; macOS answers a sysctl. Only the Linux query has run (under qemu-aarch64); the
 * FreeBSD and macOS ones are compiled but have never run. */
static int armv8_has_crc(void)
{
#  if defined(__ARM_FEATURE_CRC32)
    return 1;
#  elif defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#  elif defined(__FreeBSD__)
    unsigned long hwcap = 0;
    return elf_aux_info(AT_HWCAP, &hwcap, sizeof hwcap) == 0 && (hwcap & HWCAP_CRC32) != 0;
#  elif defined(__APPLE__)
    int has = 0;
    size_t size = sizeof has;
    return sysctlbyname("hw.optional.armv8_crc32", &has, &size, NULL, 0) == 0 && has != 0;
#  endif
}

#endif /* KENGINE_CRC32C_ARMV8 */

/* ---- dispatch ------------------------------------------------------------------------------ */

typedef uint32_t (*crc32c_raw_fn)(uint32_t, const unsigned char *, size_t);

/* Chosen by kengine_crc32c_init (see sw_table); software until then. */
static crc32c_raw_fn chosen_raw = crc32c_sw_raw;
static const char *chosen_name = "software";

void kengine_crc32c_init(int force_software)
{
    if (initialised)
        return;
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;
        for (int i = 0; i < 8; i++)
            crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1)));
        sw_table[0][b] = crc;
    }
    for (int k = 1; k < 8; k++)
        for (int b = 0; b < 256; b++)
            sw_table[k][b] = (sw_table[k - 1][b] >> 8) ^ sw_table[0][sw_table[k - 1][b] & 0xff];

#if defined(KENGINE_CRC32C_SSE42)
    if (!force_software && sse42_supported()) {
        shift_table_fill(&sse42_shift_long, SSE42_LONG);
        shift_table_fill(&sse42_shift_short, SSE42_SHORT);
        chosen_raw = crc32c_sse42_raw;
        chosen_name = "sse4.2";
    }
#elif defined(KENGINE_CRC32C_ARMV8)
    if (!force_software && armv8_has_crc()) {
        chosen_raw = crc32c_armv8_raw;
        chosen_name = "armv8-crc";
    }
#else
    (void)force_software;
#endif
    initialised = 1;
}

uint32_t kengine_crc32c(uint32_t crc, const void *buf, size_t len)
{
    return ~chosen_raw(~crc, (const unsigned char *)buf, len);
}

uint32_t kengine_crc32c_software(uint32_t crc, const void *buf, size_t len)
{
    return ~crc32c_sw_raw(~crc, (const unsigned char *)buf, len);
}

const char *kengine_crc32c_impl(void)
{
    return chosen_name;
}
