# Compression of a RecordBatch's records section (part of kengine_ext._core).
#
# The codecs themselves come from the runtime dependencies (zlib, lz4, zstandard, cramjam), each of
# which releases the GIL while it compresses. They are called once per batch, never per record, so
# the Python call costs ~1 µs against the tens to hundreds of µs the codec spends on a 16-64 KiB
# batch. Inputs are passed as memoryviews over the batch's own buffer: no copy on the way in.

import threading
import zlib

import cramjam
import lz4.frame as _lz4frame
import zstandard as _zstd

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ, PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from libc.string cimport memcmp

__all__ += ["compress", "decompress", "COMPRESSION_CODECS", "default_compression_level",
            "validate_compression_level"]

#: Kafka's names for the codecs, by the id stored in bits 0-2 of a batch's attributes.
COMPRESSION_CODECS = {"none": CODEC_NONE, "gzip": CODEC_GZIP, "snappy": CODEC_SNAPPY,
                      "lz4": CODEC_LZ4, "zstd": CODEC_ZSTD}
cdef tuple _CODEC_NAMES = ("none", "gzip", "snappy", "lz4", "zstd")

# Java's defaults and ranges (compression.<codec>.level, KIP-390). lz4's default, 9, is served by
# the fast compressor as in Java's KafkaLZ4BlockOutputStream; any other level uses LZ4-HC.
cdef dict _LEVELS = {
    CODEC_GZIP: (6, 1, 9),
    CODEC_LZ4: (9, 1, 17),
    CODEC_ZSTD: (3, -131072, 22),
}
cdef int LZ4_DEFAULT_LEVEL = 9

# xerial snappy-java framing, as written by Kafka's Java client (SnappyOutputStream):
# magic, version 1, compatible version 1, then [int32 BE compressed length][raw snappy block]
# for each block of at most 32 KiB of input.
cdef bytes _XERIAL_HEADER = b"\x82SNAPPY\x00" + b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01"
cdef Py_ssize_t _XERIAL_BLOCK_BYTES = 32 * 1024

# ZstdCompressor/ZstdDecompressor objects are not safe to share between threads; one set per thread.
_zstd_local = threading.local()


cpdef int codec_id(object codec) except -1:
    """The attribute id for a codec given by name ("lz4") or id (3)."""
    if isinstance(codec, int):
        if 0 <= <int>codec <= 4:
            return <int>codec
    else:
        found = COMPRESSION_CODECS.get(codec)
        if found is not None:
            return <int>found
    raise ValueError(f"unknown compression codec {codec!r}: use one of none, gzip, snappy, lz4, zstd")


def default_compression_level(codec) -> int | None:
    """Java's default level for a codec (None for none/snappy, which have no level)."""
    spec = _LEVELS.get(codec_id(codec))
    return None if spec is None else spec[0]


def validate_compression_level(codec, level) -> int | None:
    """Returns the level to use, raising ValueError with the allowed range when it is out of it."""
    cdef int cid = codec_id(codec)
    spec = _LEVELS.get(cid)
    if spec is None:
        return None
    if level is None:
        return spec[0]
    if not isinstance(level, int) or not (spec[1] <= level <= spec[2]):
        raise ValueError(f"compression level {level!r} is outside {spec[1]}..{spec[2]} for "
                         f"{_CODEC_NAMES[cid]}")
    return level


cdef object _zstd_compressor(int level):
    cache = getattr(_zstd_local, "compressors", None)
    if cache is None:
        cache = _zstd_local.compressors = {}
    c = cache.get(level)
    if c is None:
        c = cache[level] = _zstd.ZstdCompressor(level=level)
    return c


cdef object _xerial_compress(object view, Py_ssize_t n):
    parts = [_XERIAL_HEADER]
    cdef Py_ssize_t start = 0
    while start < n:
        block = cramjam.snappy.compress_raw(view[start:start + _XERIAL_BLOCK_BYTES])
        parts.append(len(block).to_bytes(4, "big"))
        parts.append(block)
        start += _XERIAL_BLOCK_BYTES
    return b"".join(parts)


cdef object compress_records(int codec, int level, const char *data, Py_ssize_t n):
    """Compresses n bytes at data; returns a bytes-like object. level is already validated."""
    view = PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ)
    if codec == CODEC_GZIP:
        c = zlib.compressobj(level, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
        return c.compress(view) + c.flush()
    if codec == CODEC_LZ4:
        return _lz4frame.compress(
            view,
            compression_level=0 if level == LZ4_DEFAULT_LEVEL else level,
            block_size=_lz4frame.BLOCKSIZE_MAX64KB,
            block_linked=False,          # Java's reader requires independent blocks
            content_checksum=False,
            block_checksum=False,
            store_size=False,
        )
    if codec == CODEC_ZSTD:
        return _zstd_compressor(level).compress(view)
    if codec == CODEC_SNAPPY:
        return _xerial_compress(view, n)
    raise ValueError(f"cannot compress with codec id {codec}")


cdef object _xerial_decompress(const unsigned char *data, Py_ssize_t n, object view):
    cdef Py_ssize_t pos = 16
    cdef Py_ssize_t block
    parts = []
    while pos < n:
        if pos + 4 > n:
            raise ValueError(f"snappy (xerial) block length truncated at byte {pos}")
        block = <Py_ssize_t>load_be32(data + pos)
        pos += 4
        if block < 0 or pos + block > n:
            raise ValueError(f"snappy (xerial) block of {block} bytes at byte {pos} runs past the "
                             f"end of the {n}-byte payload")
        parts.append(bytes(cramjam.snappy.decompress_raw(view[pos:pos + block])))
        pos += block
    return b"".join(parts)


cdef object decompress_records(int codec, const char *data, Py_ssize_t n):
    """Decompresses a records section. Raises ValueError (or the codec's error) when corrupt."""
    view = PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ)
    if codec == CODEC_GZIP:
        d = zlib.decompressobj(47)  # 32+15: accept gzip or zlib headers
        out = d.decompress(view)
        if not d.eof:
            raise ValueError("gzip stream is truncated")
        return out
    if codec == CODEC_LZ4:
        return _lz4frame.decompress(view)
    if codec == CODEC_ZSTD:
        dctx = getattr(_zstd_local, "decompressor", None)
        if dctx is None:
            dctx = _zstd_local.decompressor = _zstd.ZstdDecompressor()
        # Frames written by other clients may omit the content size: stream-decompress.
        d = dctx.decompressobj()
        out = d.decompress(view)
        if not d.eof:
            raise ValueError("zstd frame is truncated")
        return out
    if codec == CODEC_SNAPPY:
        if n >= 16 and memcmp(data, <const char *>_XERIAL_HEADER, 8) == 0:
            return _xerial_decompress(<const unsigned char *>data, n, view)
        return bytes(cramjam.snappy.decompress_raw(view))
    raise ValueError(f"unknown compression codec id {codec}")


def compress(codec, data, level=None) -> bytes:
    """Compresses data (any buffer) the way kengine compresses a batch's records section."""
    cdef int cid = codec_id(codec)
    cdef Py_buffer buf
    lvl = validate_compression_level(cid, level) or 0
    if cid == CODEC_NONE:
        return bytes(data)
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        return bytes(compress_records(cid, lvl, <const char *>buf.buf, buf.len))
    finally:
        PyBuffer_Release(&buf)


def decompress(codec, data) -> bytes:
    """Inverse of compress(); accepts raw snappy as well as xerial-framed snappy."""
    cdef int cid = codec_id(codec)
    cdef Py_buffer buf
    if cid == CODEC_NONE:
        return bytes(data)
    PyObject_GetBuffer(data, &buf, PyBUF_SIMPLE)
    try:
        return bytes(decompress_records(cid, <const char *>buf.buf, buf.len))
    finally:
        PyBuffer_Release(&buf)
