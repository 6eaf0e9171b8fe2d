# Framing against the spec: the 9-byte frame header of v3-v5 (spec section 2,
# "envelopes" in v5), FrameReader fed whole and byte by byte, the limits and
# the versions it refuses, and v5 segments (v5 spec 2.1) with their CRC24 and
# CRC32 checked against a small bit-by-bit implementation written here.
#
# Rules: header bytes are written by hand; the CRCs of segments come from the
# independent functions below, never from fakecql.protocol.frames.
import random

import pytest

from fakecql.protocol.errors import FrameTooLargeError, RemoteProtocolError, UnsupportedVersionError
from fakecql.protocol.frames import (
    MAX_FRAME_BODY,
    MAX_SEGMENT_PAYLOAD,
    Frame,
    FrameHeader,
    FrameReader,
    SegmentReader,
    crc24,
    crc32,
    encode_frame,
    encode_segments,
)


def h(text: str) -> bytes:
    """Hex written by hand; spaces and newlines are ignored."""
    return bytes.fromhex(text)


# -- an independent CRC-24 and CRC-32 --------------------------------------
# v5 spec 2.1: "The CRC24 of the header is calculated by initializing the
# CRC24 algorithm with the value 0x875060 and using the polynomial
# 0x1974F0B", over the 3 header bytes as they are on the wire (the header is
# a little-endian integer). Written bit by bit, MSB first, no reflection: a
# different shape from fakecql's byte-at-a-time loop.
def crc24_by_bits(data: bytes) -> int:
    register = 0x875060
    for byte in data:
        for i in range(7, -1, -1):
            feedback = ((register >> 23) & 1) ^ ((byte >> i) & 1)
            register = (register << 1) & 0xFFFFFF
            if feedback:
                register ^= 0x974F0B  # 0x1974F0B without its x^24 term
    return register


# CRC-32 of the payload: the IEEE CRC-32 (reflected, polynomial 0xEDB88320,
# init and final xor 0xFFFFFFFF) of fa 2d 55 ca followed by the payload, as
# Cassandra seeds it (org.apache.cassandra.net.Crc: initial bytes FA 2D 55 CA).
def crc32_by_bits(data: bytes) -> int:
    register = 0xFFFFFFFF
    for byte in b"\xfa\x2d\x55\xca" + data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0xEDB88320 if register & 1 else 0)
    return register ^ 0xFFFFFFFF


def plain_crc32_by_bits(data: bytes) -> int:
    register = 0xFFFFFFFF
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0xEDB88320 if register & 1 else 0)
    return register ^ 0xFFFFFFFF


def segment(payload: bytes, self_contained: bool) -> bytes:
    """One uncompressed segment built from the spec with the CRCs above."""
    header = len(payload) | (1 << 17 if self_contained else 0)  # 17 bits length, then the flag
    header_bytes = header.to_bytes(3, "little")
    return (
        header_bytes
        + crc24_by_bits(header_bytes).to_bytes(3, "little")
        + payload
        + crc32_by_bits(payload).to_bytes(4, "little")
    )


def test_independent_crc32_matches_the_standard_check_value():
    # The CRC-32 check value: crc32("123456789") == 0xCBF43926
    assert plain_crc32_by_bits(b"123456789") == 0xCBF43926


def test_independent_crc24_starts_from_the_spec_init():
    assert crc24_by_bits(b"") == 0x875060


@pytest.mark.parametrize("header", [0, 1, 9 | 1 << 17, 0x1FFFF, 0x3FFFF, 0x123456, 0xFFFFFF])
def test_crc24_matches_the_independent_one(header):
    assert crc24(header, 3) == crc24_by_bits(header.to_bytes(3, "little"))


@pytest.mark.parametrize("payload", [b"", b"\x00", b"123456789", bytes(range(256)) * 3])
def test_crc32_matches_the_independent_one(payload):
    assert crc32(payload) == crc32_by_bits(payload)


# -- frame headers ----------------------------------------------------------
# version byte (top bit: response), flags, [short] stream, opcode, [int] length
HEADERS = [
    ("v4-request-options", dict(version=4, flags=0, stream=0, opcode=0x05, length=0), "04 00 0000 05 00000000"),
    ("v4-response-ready", dict(version=4, flags=0, stream=1, opcode=0x02, length=0, is_response=True), "84 00 0001 02 00000000"),
    ("v5-response-event", dict(version=5, flags=0, stream=-1, opcode=0x0C, length=0x1234, is_response=True), "85 00 ffff 0c 00001234"),
    ("v3-request-flags", dict(version=3, flags=0x06, stream=0x7FFF, opcode=0x07, length=256), "03 06 7fff 07 00000100"),
    ("v5-request-max-body", dict(version=5, flags=0, stream=2, opcode=0x07, length=MAX_FRAME_BODY), "05 00 0002 07 10000000"),
]
# v1/v2 headers are 8 bytes, with a 1-byte stream: only written to refuse
# such a client in a version it reads
OLD_HEADERS = [
    ("v2-response-error", dict(version=2, flags=0, stream=5, opcode=0x00, length=12, is_response=True), "82 00 05 00 0000000c"),
    ("v1-response-error", dict(version=1, flags=0, stream=-1, opcode=0x00, length=0, is_response=True), "81 00 ff 00 00000000"),
]


@pytest.mark.parametrize("fields, hexstr", [r[1:] for r in HEADERS + OLD_HEADERS], ids=[r[0] for r in HEADERS + OLD_HEADERS])
def test_header_encode(fields, hexstr):
    assert FrameHeader(**fields).encode() == h(hexstr)


@pytest.mark.parametrize("fields, hexstr", [r[1:] for r in HEADERS], ids=[r[0] for r in HEADERS])
def test_header_decode(fields, hexstr):
    reader = FrameReader(expect_response=fields.get("is_response", False))
    body = b"\x00" * fields["length"] if fields["length"] < 0x10000 else b""
    reader.feed(h(hexstr) + body)
    if fields["length"] >= 0x10000:
        assert reader.next_frame() is None  # the header is fine: waiting for the body
        return
    assert reader.next_frame() == Frame(FrameHeader(**fields), body)
    assert reader.buffered == 0


def test_encode_frame_sets_the_response_bit_and_length():
    assert encode_frame(4, 3, 0x08, h("00000001")) == h("84 00 0003 08 00000004 00000001")
    assert encode_frame(4, 3, 0x07, b"", is_response=False, flags=0x02) == h("04 02 0003 07 00000000")


def test_header_refuses_a_stream_out_of_range():
    with pytest.raises(Exception) as info:
        FrameHeader(version=4, flags=0, stream=0x8000, opcode=0, length=0).encode()
    assert "cannot encode frame header" in str(info.value)


# Three request frames, written by hand
STREAM_OF_FRAMES = h(
    "04 00 0001 05 00000000"  # OPTIONS, stream 1
    "04 02 0002 07 00000008 00000001 51 0001 00"  # QUERY "Q" at ONE, tracing flag, stream 2
    "04 00 0003 0b 00000002 0000"  # REGISTER [], stream 3
)
EXPECTED_FRAMES = [
    Frame(FrameHeader(version=4, flags=0, stream=1, opcode=0x05, length=0), b""),
    Frame(FrameHeader(version=4, flags=0x02, stream=2, opcode=0x07, length=8), h("00000001 51 0001 00")),
    Frame(FrameHeader(version=4, flags=0, stream=3, opcode=0x0B, length=2), h("0000")),
]


def _drain(reader):
    frames = []
    while True:
        frame = reader.next_frame()
        if frame is None:
            return frames
        frames.append(frame)


def test_reader_all_at_once():
    reader = FrameReader()
    reader.feed(STREAM_OF_FRAMES)
    assert _drain(reader) == EXPECTED_FRAMES
    assert reader.buffered == 0


def test_reader_byte_by_byte():
    reader = FrameReader()
    frames = []
    for i in range(len(STREAM_OF_FRAMES)):
        reader.feed(STREAM_OF_FRAMES[i : i + 1])
        frames += _drain(reader)
    assert frames == EXPECTED_FRAMES


def test_reader_random_cuts():
    rng = random.Random(5)
    for _ in range(50):
        reader = FrameReader()
        frames = []
        pos = 0
        while pos < len(STREAM_OF_FRAMES):
            step = rng.randint(1, 12)
            reader.feed(STREAM_OF_FRAMES[pos : pos + step])
            pos += step
            frames += _drain(reader)
        assert frames == EXPECTED_FRAMES


def test_reader_refuses_a_response_frame():
    reader = FrameReader()
    reader.feed(h("84"))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_frame()
    assert info.value.fatal
    assert "bad version byte 0x84" in str(info.value)
    assert "its direction bit says response, expected a request" in str(info.value)


def test_too_large_refused_as_soon_as_the_header_is_in():
    # 256 MB + 1 = 0x10000001; no body follows and none is waited for
    header = h("04 00 0009 07 10000001")
    reader = FrameReader()
    reader.feed(header[:8])
    assert reader.next_frame() is None
    reader.feed(header[8:])
    with pytest.raises(FrameTooLargeError) as info:
        reader.next_frame()
    error = info.value
    assert (error.declared, error.limit, error.stream, error.fatal) == (268435457, 268435456, 9, True)
    assert str(error) == "frame body length 268435457 exceeds the limit of 268435456 bytes"


def test_exactly_256mb_is_allowed():
    reader = FrameReader()
    reader.feed(h("04 00 0009 07 10000000"))
    assert reader.next_frame() is None  # a legal header: the body is awaited


def test_a_smaller_limit_is_honoured():
    reader = FrameReader(max_body=4)
    reader.feed(h("04 00 0001 07 00000005"))
    with pytest.raises(FrameTooLargeError) as info:
        reader.next_frame()
    assert (info.value.declared, info.value.limit) == (5, 4)


def test_negative_length_is_fatal():
    reader = FrameReader()
    reader.feed(h("04 00 0002 07 ffffffff"))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_frame()
    assert info.value.fatal and info.value.stream == 2
    assert str(info.value) == "negative body length -1 in frame header [04 00 00 02 07 ff ff ff ff]"


UNKNOWN_OPCODE_THEN_OPTIONS = h(
    "04 00 0003 04 00000002 abcd"  # opcode 0x04 does not exist ("no 0x04 message")
    "04 00 0004 05 00000000"  # OPTIONS, stream 4
)


def test_unknown_opcode_is_skipped_and_the_next_frame_read():
    reader = FrameReader()
    reader.feed(UNKNOWN_OPCODE_THEN_OPTIONS)
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_frame()
    assert not info.value.fatal and info.value.stream == 3
    assert str(info.value) == "unknown opcode 0x04 in frame header (version 4, stream 3, length 2)"
    assert reader.next_frame() == Frame(FrameHeader(version=4, flags=0, stream=4, opcode=5, length=0), b"")


def test_unknown_opcode_byte_by_byte():
    reader = FrameReader()
    outcomes = []
    for i in range(len(UNKNOWN_OPCODE_THEN_OPTIONS)):
        reader.feed(UNKNOWN_OPCODE_THEN_OPTIONS[i : i + 1])
        try:
            outcomes += _drain(reader)
        except RemoteProtocolError as exc:
            outcomes.append(("error", exc.stream, exc.fatal))
    assert outcomes == [
        ("error", 3, False),
        Frame(FrameHeader(version=4, flags=0, stream=4, opcode=5, length=0), b""),
    ]


# Unsupported versions: (id, request bytes, requested, stream, answer version).
# v1/v2 headers are 8 bytes with a 1-byte stream at offset 2; v3+ (and the DSE
# versions 0x41, 0x42) a 2-byte stream at offset 2. A client that asked for a
# higher version gets the highest served one (v4 spec 2.1: "the server will
# respond with its current version"); a v1/v2 client can only read its own
# 8-byte header, so it is answered in its own version (as Cassandra does).
UNSUPPORTED = [
    ("v1", "01 00 05 05 00000000", 1, 5, 1),
    ("v2", "02 00 07 05 00000000", 2, 7, 2),
    ("v6", "06 00 0009 05 00000000", 6, 9, 5),
    ("dse-v1", "41 00 000a 05 00000000", 0x41, 10, 5),
    ("dse-v2", "42 00 000b 05 00000000", 0x42, 11, 5),
    ("v0", "00 00 0c 05 00000000", 0, 12, 3),  # no protocol at all: the oldest served layout
]


@pytest.mark.parametrize(
    "hexstr, requested, stream, answer", [r[1:] for r in UNSUPPORTED], ids=[r[0] for r in UNSUPPORTED]
)
@pytest.mark.parametrize("feeding", ["all-at-once", "byte-by-byte"])
def test_unsupported_version(hexstr, requested, stream, answer, feeding):
    data = h(hexstr)
    reader = FrameReader()
    chunks = [data] if feeding == "all-at-once" else [data[i : i + 1] for i in range(len(data))]
    error = None
    for fed, chunk in enumerate(chunks, 1):
        reader.feed(chunk)
        try:
            assert reader.next_frame() is None
        except UnsupportedVersionError as exc:
            error = exc
            break
    assert error is not None
    if feeding == "byte-by-byte":
        assert fed == (4 if requested >= 3 else 3)  # as soon as the stream id is in
    assert str(error) == (
        f"Invalid or unsupported protocol version ({requested}); "
        f"supported versions are (3/v3, 4/v4, 5/v5)"
    )
    assert (error.requested, error.stream, error.answer_version, error.fatal) == (requested, stream, answer, True)


def test_unsupported_version_lists_the_versions_served():
    reader = FrameReader(versions=(3, 4))
    reader.feed(h("05 00 0001 05 00000000"))
    with pytest.raises(UnsupportedVersionError) as info:
        reader.next_frame()
    assert str(info.value).endswith("supported versions are (3/v3, 4/v4)")
    assert info.value.answer_version == 4


def test_unsupported_version_negative_stream_answers_on_0():
    reader = FrameReader()
    reader.feed(h("06 00 ffff 05 00000000"))
    with pytest.raises(UnsupportedVersionError) as info:
        reader.next_frame()
    assert info.value.stream == 0


# -- v5 segments --------------------------------------------------------------
READY_V5 = h("85 00 0001 02 00000000")  # a READY response envelope, 9 bytes


def test_segment_of_one_frame_by_hand():
    # header = 9 | 1 << 17 (self-contained) = 0x020009, on the wire 09 00 02
    expected = (
        h("09 00 02")
        + crc24_by_bits(h("09 00 02")).to_bytes(3, "little")
        + READY_V5
        + crc32_by_bits(READY_V5).to_bytes(4, "little")
    )
    assert encode_segments(READY_V5) == expected
    assert len(expected) == 6 + 9 + 4


def test_segment_reader_reads_it_back():
    reader = SegmentReader()
    reader.feed(segment(READY_V5, True))
    assert reader.payloads() == [READY_V5]


def test_segment_reader_byte_by_byte():
    data = segment(b"abc", True) + segment(b"", True) + segment(b"defg", False)
    reader = SegmentReader()
    payloads = []
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        payloads += reader.payloads()
    assert payloads == [b"abc", b"", b"defg"]


def test_max_segment_payload_is_17_bits():
    assert MAX_SEGMENT_PAYLOAD == 131071


def test_largest_self_contained_segment():
    payload = bytes(range(256)) * 511 + bytes(255)  # 131071 bytes
    assert len(payload) == 131071
    encoded = encode_segments(payload)
    assert encoded[:3] == h("ff ff 03")  # 0x1ffff | 0x20000
    assert encoded == segment(payload, True)


def test_a_larger_payload_is_split_into_non_self_contained_segments():
    payload = bytes(i % 251 for i in range(131072 + 10))
    encoded = encode_segments(payload)
    first, rest = payload[:131071], payload[131071:]
    assert encoded[:3] == h("ff ff 01")  # 131071 bytes, flag clear
    assert encoded == segment(first, False) + segment(rest, False)
    assert encoded[131081:131084] == h("0b 00 00")  # the 11 bytes left, flag clear
    reader = SegmentReader()
    reader.feed(encoded)
    assert b"".join(reader.payloads()) == payload


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.mark.parametrize("index", [0, 2, 3, 5], ids=["length-byte", "flag-byte", "crc24-low", "crc24-high"])
def test_corrupted_header_is_refused_naming_crc24(index):
    reader = SegmentReader()
    reader.feed(_flip(segment(b"abc", True), index))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_payload()
    assert info.value.fatal
    assert str(info.value).startswith("segment header CRC24 mismatch")


@pytest.mark.parametrize("index", [6, 8, 9, 12], ids=["payload-first", "payload-last", "crc32-low", "crc32-high"])
def test_corrupted_payload_is_refused_naming_crc32(index):
    reader = SegmentReader()
    reader.feed(_flip(segment(b"abc", True), index))
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_payload()
    assert info.value.fatal
    assert str(info.value).startswith("segment payload CRC32 mismatch on 3 bytes")


def test_segment_header_crc_is_checked_before_waiting_for_the_payload():
    # a lying length must not make the reader wait for 131071 bytes
    reader = SegmentReader()
    reader.feed(_flip(segment(b"abc", True), 0)[:6])
    with pytest.raises(RemoteProtocolError) as info:
        reader.next_payload()
    assert "CRC24" in str(info.value)
