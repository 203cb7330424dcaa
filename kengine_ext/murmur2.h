/* murmur2 exactly as Kafka's Java client computes it (org.apache.kafka.common.utils.Utils.murmur2),
 * the hash behind the default partitioner, so keyed records land on the partitions Java, librdkafka
 * (murmur2_random) and franz-go would choose.
 *
 * Java works on signed 32-bit ints with wrap-around; here the arithmetic is on uint32_t (defined
 * wrap-around in C) and only the result is reinterpreted as signed. Java's `>>>` is the unsigned
 * shift, which is what `>>` does on uint32_t.
 */
#ifndef KENGINE_MURMUR2_H
#define KENGINE_MURMUR2_H

#include <Python.h> /* Py_ssize_t; already included first by the Cython module that uses this */
#include <stdint.h>
#include <string.h>

static inline uint32_t kengine_murmur2_load_le32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v); /* unaligned-safe; one load */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* The signed 32-bit murmur2 of len bytes at data (len >= 0; an empty key is hashed too). */
static inline int32_t kengine_murmur2(const char *data, Py_ssize_t len)
{
    const uint32_t m = 0x5bd1e995u;
    const unsigned char *p = (const unsigned char *)data;
    const unsigned char *end4 = p + (len & ~(Py_ssize_t)3);
    /* Java: int h = seed ^ length (an int, so the length counts modulo 2^32) */
    uint32_t h = 0x9747b28cu ^ (uint32_t)len;

    for (; p < end4; p += 4) {
        uint32_t k = kengine_murmur2_load_le32(p);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    /* Java's switch falls through: a 3-byte tail mixes in all three bytes, then multiplies. */
    switch (len & 3) {
    case 3:
        h ^= (uint32_t)p[2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)p[1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)p[0];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

/* Kafka's partition for a key: toPositive(murmur2(key)) % num_partitions, where toPositive
 * clears the sign bit (it is not abs()). Precondition: num_partitions > 0. */
static inline int32_t kengine_partition_for_key(const char *data, Py_ssize_t len,
                                                int32_t num_partitions)
{
    uint32_t positive = (uint32_t)kengine_murmur2(data, len) & 0x7fffffffu;
    return (int32_t)(positive % (uint32_t)num_partitions);
}

#endif /* KENGINE_MURMUR2_H */
