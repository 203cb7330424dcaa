/* CRC32C (Castagnoli), being written. */
#ifndef KENGINE_CRC32C_H
#define KENGINE_CRC32C_H
#endif
