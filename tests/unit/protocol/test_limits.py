# Declared lengths are refused before anything of their size is allocated:
# a frame header declaring more than the limit is refused as soon as its 9
# bytes are in (the body is never waited for); element, row, column and byte
# counts far beyond the bytes that follow are refused without building lists
# of that size (tracemalloc shows the peak stays small while a ~20-byte body
# declares 2**31-1 of them); an LZ4 body declaring an uncompressed size over
# the limit is refused before lz4 is called.
#
# Rules: bodies are written by hand (struct and hex); each refusal has a
# control next to it, the same shape with an honest count, that decodes.
import struct
import tracemalloc
from typing import Any, Callable

import lz4.block
import pytest

from fakecql.protocol.compression import Lz4
from fakecql.protocol.connection import ProtocolViolation, RequestReceived, ServerConnection
from fakecql.protocol.errors import FrameTooLargeError, RemoteProtocolError
from fakecql.protocol.frames import MAX_FRAME_BODY, FrameReader, Opcode
from fakecql.protocol.messages import Ready, Startup, decode_message
from fakecql.protocol.types import NATIVE_TYPES, ListType, MapType, SetType, TupleType
from fakecql.protocol.wire import Reader

HUGE = 2**31 - 1
INT = NATIVE_TYPES["int"]
PEAK_LIMIT = 256 * 1024  # bytes: far below what any of the declared sizes would take


def i32(n: int) -> bytes:
    return struct.pack(">i", n)


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def header(version: int, opcode: int, length: int, *, flags: int = 0, stream: int = 1) -> bytes:
    return struct.pack(">BBhBi", version, flags, stream, opcode, length)


def peak_of(action: Callable[[], Any]) -> int:
    """Peak traced memory, in bytes, while `action` runs (it must raise RemoteProtocolError)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with pytest.raises(RemoteProtocolError):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- frame headers ------------------------------------------------------------
@pytest.mark.parametrize("declared", [HUGE, 300 * 1024 * 1024, MAX_FRAME_BODY + 1])
def test_frame_header_over_the_limit_is_refused_at_its_ninth_byte(declared: int) -> None:
    reader = FrameReader()
    data = header(4, Opcode.QUERY, declared, stream=7)
    for byte in data[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_frame() is None
    reader.feed(data[-1:])
    with pytest.raises(FrameTooLargeError) as info:
        reader.next_frame()
    assert (info.value.declared, info.value.limit, info.value.stream) == (declared, MAX_FRAME_BODY, 7)
    assert info.value.fatal


def test_frame_header_at_the_limit_waits_for_its_body() -> None:
    reader = FrameReader(max_body=1024)
    reader.feed(header(4, Opcode.QUERY, 1024))
    assert reader.next_frame() is None
    reader.feed(header(4, Opcode.QUERY, 1025))  # behind the first: not parsed yet


@pytest.mark.parametrize("declared", [HUGE, 300 * 1024 * 1024])
def test_connection_refuses_a_huge_frame_from_its_header_alone(declared: int) -> None:
    connection = ServerConnection()
    events = connection.receive_data(header(4, Opcode.STARTUP, declared, stream=3))
    assert len(events) == 1 and isinstance(events[0], ProtocolViolation)
    assert isinstance(events[0].error, FrameTooLargeError)
    assert (events[0].stream, events[0].fatal) == (3, True)
    assert connection.broken
    assert connection.receive_data(b"\x00" * 1024) == []  # the body is never read


def test_connection_limit_is_its_max_frame_body() -> None:
    connection = ServerConnection(max_frame_body=64)
    body = Startup(options={"CQL_VERSION": "3.0.0"}).encode_body(4)
    assert len(body) <= 64
    events = connection.receive_data(header(4, Opcode.STARTUP, len(body)) + body)
    assert [type(e) for e in events] == [RequestReceived]
    events = connection.receive_data(header(4, Opcode.OPTIONS, 65))
    assert isinstance(events[0].error, FrameTooLargeError)


# -- counts in bodies -----------------------------------------------------------
TAIL = b"\x00" * 16  # a few bytes, so that the refusal is about the count, not an empty body

# (id, decode, the same body with an honest count that decodes)
HUGE_COUNTS = [
    ("list elements", lambda n: ListType(INT).deserialize(i32(n) + (i32(4) + i32(7)) * 2), 2),
    ("set elements", lambda n: SetType(INT).deserialize(i32(n) + (i32(4) + i32(7)) * 2), 2),
    ("map entries", lambda n: MapType(INT, INT).deserialize(i32(n) + i32(4) + i32(1) + i32(4) + i32(2)), 1),
    ("tuple item bytes", lambda n: TupleType((INT,)).deserialize(i32(n) + i32(7)), 4),
    ("[bytes] length", lambda n: Reader(i32(n) + TAIL).nullable_bytes(), 16),
    ("[value] length", lambda n: Reader(i32(n) + TAIL).value(), 16),
    ("[long string] in QUERY", lambda n: decode_message(0x07, i32(n) + b"Q" * 13 + b"\x00\x01\x00", 4), 13),
    (
        "rows count",  # Rows, no_metadata, 1 column: each row is at least 4 bytes
        lambda n: decode_message(0x08, i32(2) + i32(4) + i32(1) + i32(n) + (i32(1) + b"\x05") * 2, 4, is_response=True),
        2,
    ),
    (
        "rows count, no columns",  # rows of no cells: nothing bounds their count
        lambda n: decode_message(0x08, i32(2) + i32(4) + i32(0) + i32(n) + TAIL, 4, is_response=True),
        None,
    ),
    (
        "columns count",  # Rows with metadata, global table spec
        lambda n: decode_message(
            0x08, i32(2) + i32(1) + i32(n) + u16(1) + b"k" + u16(1) + b"t" + (u16(1) + b"c" + u16(9)) * 2 + i32(0),
            4, is_response=True,
        ),
        2,
    ),
    (
        "prepared pk count",  # Prepared: id, flags, columns count 0, pk count
        lambda n: decode_message(
            0x08, i32(4) + u16(1) + b"\x01" + i32(0) + i32(0) + i32(n) + u16(0) * 2 + i32(4) + i32(0),
            4, is_response=True,
        ),
        2,
    ),
    (
        "v5 failure reason map",  # READ_FAILURE: cl, received, blockfor, reasonmap, data_present
        lambda n: decode_message(
            0x00, i32(0x1300) + u16(0) + u16(1) + i32(0) + i32(1) + i32(n) + (b"\x04" + b"\x7f\x00\x00\x01" + u16(0)) * 2 + b"\x00",
            5, is_response=True,
        ),
        2,
    ),
]


@pytest.mark.parametrize("decode, honest", [(d, h) for _, d, h in HUGE_COUNTS], ids=[i for i, _, _ in HUGE_COUNTS])
def test_huge_count_is_refused_without_allocating(decode: Callable[[int], Any], honest: Any) -> None:
    assert peak_of(lambda: decode(HUGE)) < PEAK_LIMIT
    assert peak_of(lambda: decode(2**31 // 4)) < PEAK_LIMIT  # still far over the bytes
    if honest is not None:
        decode(honest)  # the control: the same body with a true count is good


def test_zero_width_rows_were_built_one_per_declared_row() -> None:
    # Regression: a Rows result of no columns declaring 2**20 rows in a
    # 16-byte body decoded to a tuple of 2**20 empty rows (2**31-1: 16 GiB of
    # pointers). Refused now, and such a result cannot be built either.
    body = i32(2) + i32(4) + i32(0) + i32(2**20)
    with pytest.raises(RemoteProtocolError, match="1048576 rows of 0 cells"):
        decode_message(0x08, body, 4, is_response=True)


# -- LZ4 ------------------------------------------------------------------------
@pytest.fixture
def lz4_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every call to lz4.block.decompress, which still runs."""
    calls: list = []
    real = lz4.block.decompress

    def spy(*args: Any, **kwargs: Any) -> bytes:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(lz4.block, "decompress", spy)
    return calls


@pytest.mark.parametrize("declared", [HUGE, 300 * 1024 * 1024, MAX_FRAME_BODY + 1, -1])
def test_lz4_body_declaring_too_much_is_refused_before_decompressing(declared: int, lz4_calls: list) -> None:
    block = lz4.block.compress(b"x" * 64, store_size=False)
    assert peak_of(lambda: Lz4().decompress_body(i32(declared) + block, MAX_FRAME_BODY)) < PEAK_LIMIT
    assert lz4_calls == []
    assert Lz4().decompress_body(i32(64) + block, MAX_FRAME_BODY) == b"x" * 64  # the control
    assert len(lz4_calls) == 1


def test_connection_refuses_a_compressed_frame_declaring_too_much(lz4_calls: list) -> None:
    connection = ServerConnection(max_frame_body=1024)
    startup = Startup(options={"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"}).encode_body(4)
    assert isinstance(connection.receive_data(header(4, Opcode.STARTUP, len(startup)) + startup)[0], RequestReceived)
    connection.negotiate_compression("lz4")
    connection.send(1, Ready())
    block = lz4.block.compress(b"\x00\x00", store_size=False)
    body = i32(1025) + block
    events = connection.receive_data(header(4, Opcode.OPTIONS, len(body), flags=0x01, stream=9) + body)
    assert len(events) == 1 and isinstance(events[0], ProtocolViolation)
    assert "declares 1025 uncompressed bytes" in events[0].message
    assert (events[0].stream, events[0].fatal) == (9, False)
    assert lz4_calls == []
