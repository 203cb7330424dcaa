"""WriteBuffer / ReadBuffer: exact bytes of every primitive, growth, framing, export and
zero-copy segments, and the errors of every malformed read."""
from __future__ import annotations

import array
import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kengine.errors import IllegalStateError, ProtocolError
from kengine_ext import ReadBuffer, WriteBuffer

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def written(kind: str, value: object) -> bytes:
    wb = WriteBuffer()
    wb.write(kind, value)
    return wb.to_bytes()


# --- exact encodings -------------------------------------------------------------------------

@pytest.mark.parametrize("kind,value,expected", [
    ("int8", -1, "ff"),
    ("int8", 127, "7f"),
    ("bool", True, "01"),
    ("bool", False, "00"),
    ("int16", -2, "fffe"),
    ("int16", 0x1234, "1234"),
    ("uint16", 0xFFFF, "ffff"),
    ("int32", INT32_MIN, "80000000"),
    ("int32", 0x01020304, "01020304"),
    ("uint32", 0xDEADBEEF, "deadbeef"),
    ("int64", -1, "ffffffffffffffff"),
    ("int64", 0x0102030405060708, "0102030405060708"),
    ("float64", 1.5, "3ff8000000000000"),
    ("float64", -0.0, "8000000000000000"),
])
def test_fixed_width_big_endian(kind: str, value: object, expected: str) -> None:
    assert written(kind, value).hex() == expected
    assert ReadBuffer(bytes.fromhex(expected)).read(kind) == value


# Zigzag maps 0,-1,1,-2,... to 0,1,2,3,...; then 7 bits per byte, low group first,
# high bit set on every byte but the last.
@pytest.mark.parametrize("value,expected", [
    (0, "00"),
    (-1, "01"),
    (1, "02"),
    (63, "7e"),
    (-64, "7f"),
    (64, "8001"),
    (-65, "8101"),
    (INT32_MAX, "feffffff0f"),
    (INT32_MIN, "ffffffff0f"),
])
def test_varint_zigzag(value: int, expected: str) -> None:
    assert written("varint", value).hex() == expected
    assert ReadBuffer(bytes.fromhex(expected)).read("varint") == value
    # a varlong of a small value has the same bytes
    assert written("varlong", value).hex() == expected


@pytest.mark.parametrize("value,expected", [
    (INT64_MAX, "feffffffffffffffff01"),
    (INT64_MIN, "ffffffffffffffffff01"),
    (2**31, "8080808010"),
])
def test_varlong_zigzag_extremes(value: int, expected: str) -> None:
    assert written("varlong", value).hex() == expected
    assert ReadBuffer(bytes.fromhex(expected)).read("varlong") == value


@pytest.mark.parametrize("kind,value,expected", [
    ("uvarint", 0, "00"),
    ("uvarint", 127, "7f"),
    ("uvarint", 128, "8001"),
    ("uvarint", 300, "ac02"),
    ("uvarint", 2**32 - 1, "ffffffff0f"),
    ("uvarlong", 2**64 - 1, "ffffffffffffffffff01"),
])
def test_unsigned_varints(kind: str, value: int, expected: str) -> None:
    assert written(kind, value).hex() == expected
    assert ReadBuffer(bytes.fromhex(expected)).read(kind) == value


@pytest.mark.parametrize("kind,value", [
    ("int8", 128), ("int16", -(2**15) - 1), ("uint16", -1), ("int32", INT32_MAX + 1),
    ("uint32", 2**32), ("int64", INT64_MAX + 1), ("uvarint", -1), ("uvarint", 2**32),
    ("varint", INT32_MIN - 1), ("varlong", INT64_MIN - 1),
])
def test_out_of_range_integers_are_rejected(kind: str, value: int) -> None:
    with pytest.raises(OverflowError):
        WriteBuffer().write(kind, value)


@pytest.mark.parametrize("value", [1.5, "1", None, b"\x01"])
def test_integers_do_not_accept_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        WriteBuffer().write("int32", value)


def test_index_objects_are_integers() -> None:
    class Seven:
        def __index__(self) -> int:
            return 7
    assert written("int32", Seven()) == b"\x00\x00\x00\x07"


@pytest.mark.parametrize("kind,value,expected", [
    ("string", "héllo", "0006" + "héllo".encode().hex()),
    ("string", "", "0000"),
    ("nullable_string", None, "ffff"),
    ("compact_string", "abc", "04616263"),
    ("compact_string", "", "01"),
    ("compact_nullable_string", None, "00"),
    ("bytes", b"\x01\x02", "000000020102"),
    ("nullable_bytes", None, "ffffffff"),
    ("compact_bytes", b"\xff", "02ff"),
    ("compact_nullable_bytes", None, "00"),
])
def test_strings_and_bytes(kind: str, value: object, expected: str) -> None:
    assert written(kind, value).hex() == expected
    assert ReadBuffer(bytes.fromhex(expected)).read(kind) == value


def test_compact_lengths_use_multi_byte_varints() -> None:
    s = "x" * 200  # length + 1 = 201 = 0xc9 0x01
    assert written("compact_string", s)[:2] == b"\xc9\x01"
    assert ReadBuffer(written("compact_string", s)).read("compact_string") == s


def test_strings_longer_than_kafka_allows_are_rejected() -> None:
    WriteBuffer().write("string", "x" * 32767)
    with pytest.raises(ValueError, match="32767"):
        WriteBuffer().write("string", "x" * 32768)
    with pytest.raises(ValueError, match="32767"):
        WriteBuffer().write("compact_string", "é" * 16384)  # 32768 UTF-8 bytes


def test_null_is_rejected_by_non_nullable_writers() -> None:
    for kind in ("string", "compact_string", "bytes", "compact_bytes"):
        with pytest.raises(TypeError, match="not nullable"):
            WriteBuffer().write(kind, None)


def test_bytes_accept_any_buffer_object() -> None:
    payload = struct.pack(">2i", 1, 2)
    expected = bytes.fromhex("00000008") + payload
    for value in (payload, bytearray(payload), memoryview(payload), array.array("B", payload)):
        assert written("bytes", value) == expected
    # a non-byte format is taken as its raw bytes
    arr = array.array("b", [1, 2, 3])
    assert written("compact_bytes", arr) == b"\x04\x01\x02\x03"
    with pytest.raises(TypeError):
        WriteBuffer().write("bytes", "text is not bytes")


def test_uuid_from_uuid_object_or_16_bytes() -> None:
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert written("uuid", u) == u.bytes
    assert written("uuid", u.bytes) == u.bytes
    assert written("uuid", bytearray(u.bytes)) == u.bytes
    assert ReadBuffer(u.bytes).read("uuid") == u.bytes
    with pytest.raises(ValueError, match="16 bytes"):
        WriteBuffer().write("uuid", b"\x00" * 15)
    with pytest.raises(TypeError, match="uuid"):
        WriteBuffer().write("uuid", 5)


def test_empty_tagged_fields_and_skipping_a_tagged_section() -> None:
    assert written("tagged_fields", None) == b"\x00"
    # two fields: tag 0 with 3 bytes, tag 300 with 1 byte; then an int8 after the section
    data = bytes.fromhex("02" "00" "03" "aabbcc" "ac02" "01" "dd" "7f")
    rb = ReadBuffer(data)
    assert rb.read("tagged_fields") == 2
    assert rb.read("int8") == 127


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="int32"):
        WriteBuffer().write("int33", 1)
    with pytest.raises(ValueError, match="read_view"):
        ReadBuffer(b"").read("raw")


# --- storage, framing, patching --------------------------------------------------------------

def test_growth_beyond_the_inline_storage_keeps_every_byte() -> None:
    wb = WriteBuffer()
    for i in range(100_000):
        wb.write("int32", i)
    data = wb.to_bytes()
    assert len(wb) == wb.position == len(data) == 400_000
    assert struct.unpack(">100000i", data) == tuple(range(100_000))


def test_message_framing_patches_the_size() -> None:
    wb = WriteBuffer()
    assert wb.start_message() == 0
    wb.write("int32", 7)
    wb.write("compact_string", "ab")
    assert wb.end_message() == 7
    assert wb.start_message() == 11  # a second frame after the first
    assert wb.end_message() == 0
    assert wb.to_bytes() == bytes.fromhex("00000007" "00000007" "03" "6162" "00000000")


def test_framing_misuse_is_an_illegal_state() -> None:
    wb = WriteBuffer()
    with pytest.raises(IllegalStateError):
        wb.end_message()
    wb.start_message()
    with pytest.raises(IllegalStateError, match="still open"):
        wb.start_message()


def test_reserve_and_patch() -> None:
    wb = WriteBuffer()
    wb.write("int8", 1)
    at = wb.reserve(8)
    assert at == 1
    wb.write("int8", 2)
    assert wb.to_bytes() == b"\x01" + b"\x00" * 8 + b"\x02"
    wb.patch("int32", at, -2)
    wb.patch("uint32", at + 4, 0xCAFEBABE)
    assert wb.to_bytes() == b"\x01" + bytes.fromhex("fffffffe" "cafebabe") + b"\x02"
    with pytest.raises(IndexError):
        wb.patch("int32", 7, 0)  # would cover bytes 7..10 of 10
    with pytest.raises(ValueError):
        wb.patch("int16", 0, 0)
    with pytest.raises(ValueError):
        wb.reserve(-1)


def test_clear_keeps_the_buffer_usable() -> None:
    wb = WriteBuffer()
    wb.write("int64", 1)
    wb.clear()
    assert len(wb) == 0 and wb.to_bytes() == b""
    wb.write("int8", 5)
    assert wb.to_bytes() == b"\x05"


# --- export and zero-copy segments -----------------------------------------------------------

def test_buffer_export_is_read_only_and_freezes_the_storage() -> None:
    wb = WriteBuffer()
    wb.write("int32", 1)
    view = memoryview(wb)
    assert view.readonly and bytes(view) == b"\x00\x00\x00\x01"
    with pytest.raises(BufferError):
        wb.clear()
    with pytest.raises(BufferError):
        wb.write("raw", b"x" * 4096)  # needs to grow out of the inline storage
    with pytest.raises(BufferError):
        wb.patch("int32", 0, 2)
    view.release()
    wb.write("raw", b"x" * 4096)
    wb.clear()


def test_zero_copy_references_large_payloads() -> None:
    big = bytes(range(256)) * 64        # 16 KiB: referenced
    other = bytearray(b"y" * 5000)      # referenced through a memoryview
    small = b"tiny"                     # copied
    zc = WriteBuffer(zero_copy_min_bytes=4096)
    plain = WriteBuffer()
    for wb in (zc, plain):
        wb.start_message()
        wb.write("int16", 1)
        wb.write("bytes", big)
        wb.write("compact_bytes", small)
        wb.write("raw", other)
        wb.write("int8", 9)
        wb.end_message()
    assert len(zc) == len(plain) == 4 + 2 + 4 + len(big) + 5 + len(other) + 1
    assert zc.to_bytes() == plain.to_bytes()
    segments = zc.segments()
    assert segments[1] is big
    assert isinstance(segments[3], memoryview) and segments[3].obj is other
    assert b"".join(bytes(s) for s in segments) == plain.to_bytes()
    with pytest.raises(BufferError, match="segments"):
        memoryview(zc)
    with pytest.raises(BufferError):
        zc.clear()
    del segments
    zc.clear()
    assert zc.to_bytes() == b"" and zc.segments() == []


def test_negative_zero_copy_threshold_is_rejected() -> None:
    with pytest.raises(ValueError):
        WriteBuffer(zero_copy_min_bytes=-1)


# --- reads -----------------------------------------------------------------------------------

def test_truncation_names_offset_kind_and_missing_bytes() -> None:
    rb = ReadBuffer(b"\x00\x01\x02")
    assert rb.read("int16") == 1
    with pytest.raises(ProtocolError,
                       match=r"int32 at offset 2 needs 4 bytes but 1 remain \(3 missing\)"):
        rb.read("int32")


@pytest.mark.parametrize("kind,data", [
    ("uvarint", "8080808010"),          # 5th byte carries bits above 2^32
    ("uvarint", "ffffffffff01"),        # 6 bytes
    ("varint", "8080808080808080"),
    ("uvarlong", "ffffffffffffffffff02"),  # 10th byte above 2^64
    ("uvarlong", "8080808080808080808001"),  # 11 bytes
])
def test_overlong_varints_are_errors(kind: str, data: str) -> None:
    with pytest.raises(ProtocolError, match="longer than"):
        ReadBuffer(bytes.fromhex(data)).read(kind)


def test_unterminated_varint_is_truncation() -> None:
    with pytest.raises(ProtocolError, match="unsigned varint at offset 0 needs 3 bytes"):
        ReadBuffer(b"\x80\x80").read("uvarint")


@pytest.mark.parametrize("kind,data,problem", [
    ("string", "fffe", "negative string length -2"),
    ("nullable_string", "8000", "negative string length"),
    ("bytes", "fffffffe", "negative length -2"),
    ("string", "ffff", "null string"),
    ("compact_string", "00", "null string"),
    ("bytes", "ffffffff", "null bytes"),
    ("compact_bytes", "00", "null bytes"),
    ("string", "0002c328", "not valid UTF-8"),
    ("compact_string", "818002" + "00" * 10, "above Kafka's limit"),
])
def test_malformed_lengths_and_contents(kind: str, data: str, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        ReadBuffer(bytes.fromhex(data)).read(kind)


def test_huge_lengths_fail_fast_without_allocating() -> None:
    with pytest.raises(ProtocolError, match="needs 2147483647 bytes"):
        ReadBuffer(bytes.fromhex("7fffffff") + b"abc").read("bytes")
    with pytest.raises(ProtocolError, match="needs 4294967294 bytes"):
        ReadBuffer(bytes.fromhex("ffffffff0f") + b"abc").read("compact_bytes")
    with pytest.raises(ProtocolError, match="tagged field"):
        ReadBuffer(bytes.fromhex("ffffffff0f" "00" "ffffffff0f")).read("tagged_fields")


def test_read_view_is_zero_copy_and_pins_the_input() -> None:
    data = bytearray(b"headerPAYLOAD")
    rb = ReadBuffer(data)
    assert rb.read("int8") == ord("h")
    view = rb.read_view(5)
    assert bytes(view) == b"eader"
    data[1] = ord("E")
    assert bytes(view) == b"Eader"  # a view of the input, not a copy
    assert rb.position == 6 and rb.remaining == 7
    with pytest.raises(BufferError):
        data.append(0)  # the ReadBuffer holds the input's buffer
    with pytest.raises(ProtocolError, match="needs 8 bytes but 7 remain"):
        rb.read_view(8)
    with pytest.raises(ValueError):
        rb.read_view(-1)


def test_read_view_of_a_sliced_memoryview_starts_at_the_slice() -> None:
    rb = ReadBuffer(memoryview(b"xxabcdef")[2:])
    assert bytes(rb.read_view(3)) == b"abc"
    assert rb.read("int8") == ord("d")


def test_read_view_of_a_non_byte_format_counts_bytes() -> None:
    rb = ReadBuffer(memoryview(array.array("i", [1, 2])))
    rb.read("int8")
    assert len(rb.read_view(7)) == 7


def test_reads_need_a_buffer_object() -> None:
    with pytest.raises(TypeError):
        ReadBuffer("not bytes")  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

INT_KINDS = {
    "int8": st.integers(-(2**7), 2**7 - 1), "int16": st.integers(-(2**15), 2**15 - 1),
    "uint16": st.integers(0, 2**16 - 1), "int32": st.integers(INT32_MIN, INT32_MAX),
    "uint32": st.integers(0, 2**32 - 1), "int64": st.integers(INT64_MIN, INT64_MAX),
    "uvarint": st.integers(0, 2**32 - 1), "uvarlong": st.integers(0, 2**64 - 1),
    "varint": st.integers(INT32_MIN, INT32_MAX), "varlong": st.integers(INT64_MIN, INT64_MAX),
}
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
VALUES = st.one_of(
    *[st.tuples(st.just(k), s) for k, s in INT_KINDS.items()],
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("float64"), st.floats(allow_nan=False)),
    st.tuples(st.sampled_from(["string", "compact_string"]), text),
    st.tuples(st.sampled_from(["nullable_string", "compact_nullable_string"]), st.none() | text),
    st.tuples(st.sampled_from(["bytes", "compact_bytes"]), st.binary(max_size=40)),
    st.tuples(st.sampled_from(["nullable_bytes", "compact_nullable_bytes"]),
              st.none() | st.binary(max_size=40)),
    st.tuples(st.just("uuid"), st.binary(min_size=16, max_size=16)),
)


@given(st.lists(VALUES, max_size=30))
def test_any_sequence_of_values_round_trips(values: list[tuple[str, object]]) -> None:
    wb = WriteBuffer()
    for kind, value in values:
        wb.write(kind, value)
    rb = ReadBuffer(wb.to_bytes())
    assert [rb.read(kind) for kind, _ in values] == [value for _, value in values]
    assert rb.remaining == 0


@given(st.lists(VALUES, min_size=1, max_size=10), st.data())
def test_any_truncation_raises_protocol_error(values: list[tuple[str, object]],
                                             data: st.DataObject) -> None:
    wb = WriteBuffer()
    for kind, value in values:
        wb.write(kind, value)
    encoded = wb.to_bytes()
    if not encoded:
        return
    cut = data.draw(st.integers(0, len(encoded) - 1))
    rb = ReadBuffer(encoded[:cut])
    with pytest.raises(ProtocolError):
        for kind, _ in values:
            rb.read(kind)


READ_KINDS = ["int8", "bool", "int16", "uint16", "int32", "uint32", "int64", "float64",
              "uvarint", "uvarlong", "varint", "varlong", "uuid", "string", "compact_string",
              "nullable_string", "compact_nullable_string", "bytes", "compact_bytes",
              "nullable_bytes", "compact_nullable_bytes", "tagged_fields"]


@given(st.binary(max_size=64), st.lists(st.sampled_from(READ_KINDS), max_size=20))
def test_random_bytes_only_ever_raise_protocol_error(data: bytes, kinds: list[str]) -> None:
    rb = ReadBuffer(data)
    try:
        for kind in kinds:
            rb.read(kind)
    except ProtocolError:
        pass
    assert 0 <= rb.position <= len(data)
