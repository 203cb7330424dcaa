/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of Kafka's RecordBatch v2.
 *
 * The implementation is chosen once, by kengine_crc32c_init(), from what the CPU offers:
 * SSE4.2 on x86-64 (three interleaved streams on large inputs), the ARMv8 CRC extension on
 * AArch64, else portable slicing-by-8. Every implementation gives the same result.
 */
#ifndef KENGINE_CRC32C_H
#define KENGINE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Fills the tables and picks the implementation. Call once, before any other function here,
 * from one thread (kengine_ext._core does it while it is imported). Later calls do nothing.
 * force_software != 0 selects slicing-by-8 even when the CPU has CRC32C instructions. */
void kengine_crc32c_init(int force_software);

/* CRC32C of len bytes at buf, continuing from crc: crc = 0 starts a new checksum, and
 * kengine_crc32c(kengine_crc32c(0, a, na), b, nb) is the CRC32C of a followed by b.
 * Touches no Python object: callable without the GIL, from any number of threads at once. */
uint32_t kengine_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable slicing-by-8 implementation, whatever the CPU: for tests and benchmarks that
 * compare it with the dispatched one. Same contract as kengine_crc32c. */
uint32_t kengine_crc32c_software(uint32_t crc, const void *buf, size_t len);

/* Which implementation kengine_crc32c uses: "sse4.2", "armv8-crc" or "software". */
const char *kengine_crc32c_impl(void);

#ifdef __cplusplus
}
#endif

#endif /* KENGINE_CRC32C_H */
