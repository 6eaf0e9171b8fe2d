# ServerConnection, the node's side of one connection, sans I/O: hand-written
# request frames in, events out; responses in, exact frame bytes out. The
# OPTIONS/STARTUP/READY handshake in v4 and v5 (v5 spec 2.3.1: after READY or
# AUTHENTICATE both directions use segments), the fatal and non-fatal
# violations and the ERROR frames that answer them, the request flags
# (tracing, custom payload, compression) and the response prefix (tracing id,
# warnings, custom payload: spec section 4, "[<tracing_id>][<warnings>]
# [<custom_payload>]<message>").
#
# Rules: frames are written by hand; segment CRCs come from the small
# bit-by-bit functions below, not from fakecql.
import ipaddress
import struct
import uuid

import pytest

from fakecql.protocol.connection import ProtocolViolation, RequestReceived, ServerConnection
from fakecql.protocol.errors import LocalProtocolError, UnsupportedVersionError
from fakecql.protocol.messages import (
    Authenticate,
    Error,
    Event,
    Options,
    Query,
    Ready,
    Startup,
    StatusChange,
    Supported,
    VoidResult,
)


def h(text: str) -> bytes:
    """Hex written by hand; spaces and newlines are ignored."""
    return bytes.fromhex(text)


def a(text: str) -> str:
    """The hex of ASCII characters, to spell names inside hand-written hex."""
    return text.encode("ascii").hex()


def crc24_by_bits(data: bytes) -> int:
    """v5 spec 2.1: CRC-24, init 0x875060, polynomial 0x1974F0B, MSB first."""
    register = 0x875060
    for byte in data:
        for i in range(7, -1, -1):
            feedback = ((register >> 23) & 1) ^ ((byte >> i) & 1)
            register = (register << 1) & 0xFFFFFF
            if feedback:
                register ^= 0x974F0B
    return register


def crc32_by_bits(data: bytes) -> int:
    """IEEE CRC-32 of fa 2d 55 ca + data (Cassandra's seeded payload CRC)."""
    register = 0xFFFFFFFF
    for byte in b"\xfa\x2d\x55\xca" + data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0xEDB88320 if register & 1 else 0)
    return register ^ 0xFFFFFFFF


def segment(payload: bytes, self_contained: bool = True) -> bytes:
    header = (len(payload) | (1 << 17 if self_contained else 0)).to_bytes(3, "little")
    return header + crc24_by_bits(header).to_bytes(3, "little") + payload + crc32_by_bits(payload).to_bytes(4, "little")


def error_body(message: str) -> bytes:
    """An ERROR body with code 0x000A (protocol error) and `message`."""
    raw = message.encode("utf-8")
    return h("0000000a") + struct.pack(">H", len(raw)) + raw


CQL_VERSION_MAP = "0001 000b" + a("CQL_VERSION") + "0005" + a("3.0.0")  # 22 bytes
Q_BODY_V4 = "00000001 51 0001 00"  # QUERY "Q" at ONE, no flags: 8 bytes
Q_BODY_V5 = "00000001 51 0001 00000000"  # the same in v5: [int] flags, 11 bytes
Q = Query(query="Q")
TRACE = uuid.UUID("00112233-4455-6677-8899-aabbccddeeff")


@pytest.mark.parametrize("version", [3, 4])
def test_handshake_before_v5(version):
    conn = ServerConnection()
    req, resp = f"{version:02x}", f"{0x80 | version:02x}"
    assert conn.receive_data(h(req + "00 0001 05 00000000")) == [
        RequestReceived(stream=1, version=version, message=Options(), length=0)
    ]
    assert conn.version == version
    # SUPPORTED: [string multimap] of 24 bytes = 0x18
    assert conn.send(1, Supported(options={"CQL_VERSION": ["3.0.0"]})) == h(
        resp + "00 0001 06 00000018 0001 000b" + a("CQL_VERSION") + "0001 0005" + a("3.0.0")
    )
    assert conn.receive_data(h(req + "00 0002 01 00000016" + CQL_VERSION_MAP)) == [
        RequestReceived(stream=2, version=version, message=Startup(options={"CQL_VERSION": "3.0.0"}), length=22)
    ]
    assert conn.send(2, Ready()) == h(resp + "00 0002 02 00000000")
    assert conn.segments is False  # frames stay bare before v5
    assert conn.receive_data(h(req + "00 0003 07 00000008" + Q_BODY_V4)) == [
        RequestReceived(stream=3, version=version, message=Q, length=8)
    ]
    assert conn.send(3, VoidResult()) == h(resp + "00 0003 08 00000004 00000001")


def _v5_ready(message=Ready()):
    conn = ServerConnection()
    assert conn.receive_data(h("05 00 0000 05 00000000")) == [
        RequestReceived(stream=0, version=5, message=Options(), length=0)
    ]
    # before STARTUP, v5 frames are bare (v5 spec 2.3.1)
    assert conn.send(0, Supported(options={})) == h("85 00 0000 06 00000002 0000")
    assert conn.receive_data(h("05 00 0001 01 00000016" + CQL_VERSION_MAP)) == [
        RequestReceived(stream=1, version=5, message=Startup(options={"CQL_VERSION": "3.0.0"}), length=22)
    ]
    return conn


def test_v5_handshake_switches_both_directions_to_segments():
    conn = _v5_ready()
    # the READY itself goes out bare; everything after it is in segments
    assert conn.send(1, Ready()) == h("85 00 0001 02 00000000")
    assert conn.segments is True
    query = h("05 00 0002 07 0000000b" + Q_BODY_V5)
    assert conn.receive_data(segment(query)) == [RequestReceived(stream=2, version=5, message=Q, length=11)]
    assert conn.send(2, VoidResult()) == segment(h("85 00 0002 08 00000004 00000001"))


def test_v5_authenticate_also_switches_to_segments():
    conn = _v5_ready()
    authenticator = "org.apache.cassandra.auth.PasswordAuthenticator"  # 47 = 0x2f characters
    assert conn.send(1, Authenticate(authenticator=authenticator)) == h(
        "85 00 0001 03 00000031 002f" + a(authenticator)
    )
    assert conn.segments is True
    auth = h("05 00 0002 0f 00000004 ffffffff")  # AUTH_RESPONSE, null token
    assert [e.message.opcode.name for e in conn.receive_data(segment(auth))] == ["AUTH_RESPONSE"]


def test_v5_segments_fed_byte_by_byte_and_several_frames_per_segment():
    conn = _v5_ready()
    conn.send(1, Ready())
    data = segment(h("05 00 0002 05 00000000" "05 00 0003 07 0000000b" + Q_BODY_V5))
    events = []
    for i in range(len(data)):
        events += conn.receive_data(data[i : i + 1])
    assert events == [
        RequestReceived(stream=2, version=5, message=Options(), length=0),
        RequestReceived(stream=3, version=5, message=Q, length=11),
    ]


def test_v5_frame_split_over_non_self_contained_segments():
    conn = _v5_ready()
    conn.send(1, Ready())
    text = "x" * 140000
    body = struct.pack(">i", len(text)) + text.encode() + h("0001 00000000")
    frame = h("05 00 0004 07") + struct.pack(">i", len(body)) + body
    data = segment(frame[:131071], False) + segment(frame[131071:], False)
    assert conn.receive_data(data) == [
        RequestReceived(stream=4, version=5, message=Query(query=text), length=len(body))
    ]


def test_v5_bare_frame_after_ready_is_a_crc24_violation():
    conn = _v5_ready()
    conn.send(1, Ready())
    (event,) = conn.receive_data(h("05 00 0002 05 00000000"))
    assert isinstance(event, ProtocolViolation) and event.fatal
    assert event.message.startswith("segment header CRC24 mismatch")
    assert conn.broken


def test_v5_corrupted_payload_is_a_crc32_violation():
    conn = _v5_ready()
    conn.send(1, Ready())
    data = bytearray(segment(h("05 00 0002 05 00000000")))
    data[7] ^= 0xFF
    (event,) = conn.receive_data(bytes(data))
    assert event.fatal and event.message.startswith("segment payload CRC32 mismatch on 9 bytes")


def test_v5_responses_after_ready_are_segments_even_for_errors():
    conn = _v5_ready()
    conn.send(1, Ready())
    (event,) = conn.receive_data(segment(h("05 00 0007 07 00000003 000000")))
    assert isinstance(event, ProtocolViolation) and not event.fatal
    body = error_body(event.message)
    assert conn.error_frame(event) == segment(h("85 00 0007 00") + struct.pack(">i", len(body)) + body)


def test_request_in_another_version_is_fatal():
    conn = ServerConnection()
    conn.receive_data(h("04 00 0001 05 00000000"))
    (event,) = conn.receive_data(h("05 00 0002 05 00000000"))
    assert isinstance(event, ProtocolViolation)
    assert (event.stream, event.version, event.fatal) == (2, 4, True)
    assert event.message == "invalid message version: got v5 but previous messages on this connection had version v4"
    assert conn.broken
    assert conn.receive_data(h("04 00 0003 05 00000000")) == []  # no more input
    body = error_body(event.message)
    assert conn.error_frame(event) == h("84 00 0002 00") + struct.pack(">i", len(body)) + body


def test_compression_flag_without_compression_is_not_fatal():
    conn = ServerConnection()
    events = conn.receive_data(
        h("04 01 0003 07 00000008" + Q_BODY_V4)  # flags 0x01
        + h("04 00 0004 05 00000000")
    )
    assert events == [
        ProtocolViolation(
            error=events[0].error, stream=3, version=4, fatal=False,
        ),
        RequestReceived(stream=4, version=4, message=Options(), length=0),
    ]
    assert events[0].message == (
        "frame on stream 3 has the compression flag set, but no compression was negotiated in STARTUP"
    )
    assert not conn.broken


def test_v5_envelope_compression_flag_is_ignored():
    # v5 spec 2.4.1.2: "0x01: Compression flag. In protocol v5 this flag is
    # deprecated and ignored."
    conn = ServerConnection()
    assert conn.receive_data(h("05 01 0003 05 00000000")) == [
        RequestReceived(stream=3, version=5, message=Options(), length=0)
    ]


def test_tracing_flag():
    conn = ServerConnection()
    assert conn.receive_data(h("04 02 0005 07 00000008" + Q_BODY_V4)) == [
        RequestReceived(stream=5, version=4, message=Q, tracing=True, length=8)
    ]


CUSTOM_PAYLOAD = "0001 0001 6b 00000002 cafe"  # [bytes map] {"k": ca fe}: 11 bytes


@pytest.mark.parametrize("version", [4, 5])
def test_custom_payload_comes_before_the_message(version):
    conn = ServerConnection()
    body = CUSTOM_PAYLOAD + (Q_BODY_V4 if version == 4 else Q_BODY_V5)
    length = len(h(body))  # 19 in v4, 22 in v5
    (event,) = conn.receive_data(h(f"{version:02x} 06 0006 07") + struct.pack(">i", length) + h(body))
    assert event == RequestReceived(
        stream=6, version=version, message=Q, tracing=True, custom_payload={"k": b"\xca\xfe"}, length=length
    )


def test_custom_payload_needs_v4():
    conn = ServerConnection()
    events = conn.receive_data(h("03 04 0006 07 00000013" + CUSTOM_PAYLOAD + Q_BODY_V4) + h("03 00 0007 05 00000000"))
    assert isinstance(events[0], ProtocolViolation)
    assert (events[0].stream, events[0].version, events[0].fatal) == (6, 3, False)
    assert events[0].message == (
        "frame on stream 6 has the custom payload flag (0x04), which needs protocol v4 or later, not v3"
    )
    assert events[1] == RequestReceived(stream=7, version=3, message=Options(), length=0)


def test_bad_custom_payload_names_it():
    conn = ServerConnection()
    (event,) = conn.receive_data(h("04 04 0006 07 00000003 0001 00"))
    assert not event.fatal and event.stream == 6
    assert event.message == "truncated custom payload: custom payload key 0 length needs 2 bytes at offset 2, only 1 left"


def _sent(version=4):
    conn = ServerConnection()
    conn.receive_data(h(f"{version:02x} 00 0001 05 00000000"))
    return conn


# Response prefixes: (id, send() keywords, flags, prefix hex). The body is a
# Void RESULT (00000001) after the prefix.
PREFIXES = [
    ("tracing", dict(tracing_id=TRACE), "02", "00112233445566778899aabbccddeeff"),
    ("warnings", dict(warnings=["w", "xy"]), "08", "0002 0001 77 0002 7879"),
    ("custom-payload", dict(custom_payload={"k": b"\x01"}), "04", "0001 0001 6b 00000001 01"),
    (
        "all-three-in-spec-order",
        dict(tracing_id=TRACE, warnings=["w"], custom_payload={"k": None}),
        "0e",
        "00112233445566778899aabbccddeeff 0001 0001 77 0001 0001 6b ffffffff",
    ),
]


@pytest.mark.parametrize("keywords, flags, prefix", [r[1:] for r in PREFIXES], ids=[r[0] for r in PREFIXES])
def test_response_prefix(keywords, flags, prefix):
    body = h(prefix + "00000001")
    assert _sent().send(5, VoidResult(), **keywords) == h(f"84 {flags} 0005 08") + struct.pack(">i", len(body)) + body


def test_v3_response_can_carry_a_tracing_id():
    assert _sent(3).send(5, VoidResult(), tracing_id=TRACE) == h(
        "83 02 0005 08 00000014 00112233445566778899aabbccddeeff 00000001"
    )


@pytest.mark.parametrize("keywords", [dict(warnings=["w"]), dict(custom_payload={})], ids=["warnings", "custom-payload"])
def test_v3_response_cannot_carry_warnings_or_a_custom_payload(keywords):
    with pytest.raises(LocalProtocolError) as info:
        _sent(3).send(5, VoidResult(), **keywords)
    assert str(info.value) == "warnings and a custom payload need protocol v4 or later, not v3"


def test_event_on_stream_minus_1():
    event = Event(event=StatusChange(change="UP", address=ipaddress.IPv4Address("127.0.0.1"), port=9042))
    # 2+13 "STATUS_CHANGE", 2+2 "UP", 1+4+4 [inet]: 28 = 0x1c bytes
    assert _sent().send(-1, event) == h(
        "84 00 ffff 0c 0000001c 000d" + a("STATUS_CHANGE") + "0002" + a("UP") + "04 7f000001 00002352"
    )


def test_bad_body_is_answered_on_its_stream_and_the_connection_goes_on():
    conn = ServerConnection()
    events = conn.receive_data(h("04 00 0007 07 00000003 000000") + h("04 00 0008 05 00000000"))
    violation = events[0]
    assert isinstance(violation, ProtocolViolation)
    assert (violation.stream, violation.version, violation.fatal, violation.opcode) == (7, 4, False, 0x07)
    assert violation.message == "truncated QUERY body: query string length needs 4 bytes at offset 0, only 3 left"
    assert events[1] == RequestReceived(stream=8, version=4, message=Options(), length=0)
    body = error_body(violation.message)
    assert conn.error_frame(violation) == h("84 00 0007 00") + struct.pack(">i", len(body)) + body


def test_first_frame_refused_is_answered_in_its_own_version():
    conn = ServerConnection()
    events = conn.receive_data(h("04 00 0003 04 00000002 abcd") + h("04 00 0004 05 00000000"))
    assert (events[0].stream, events[0].version, events[0].fatal) == (3, 4, False)
    assert events[0].message == "unknown opcode 0x04 in frame header (version 4, stream 3, length 2)"
    assert events[1] == RequestReceived(stream=4, version=4, message=Options(), length=0)
    body = error_body(events[0].message)
    assert conn.error_frame(events[0]) == h("84 00 0003 00") + struct.pack(">i", len(body)) + body


@pytest.mark.parametrize(
    "header, stream, words",
    [
        ("03 00 0009 07 10000001", 9, "frame body length 268435457 exceeds the limit of 268435456 bytes"),
        ("03 00 000a 07 ffffffff", 10, "negative body length -1 in frame header"),
    ],
    ids=["too-large", "negative-length"],
)
def test_fatal_framing_violations(header, stream, words):
    conn = ServerConnection()
    (event,) = conn.receive_data(h(header))
    assert (event.stream, event.version, event.fatal) == (stream, 3, True)
    assert event.message.startswith(words)
    assert conn.broken
    assert conn.error_frame(event)[:5] == h("83 00") + struct.pack(">h", stream) + h("00")


def test_response_frame_from_a_client_is_fatal():
    conn = ServerConnection()
    (event,) = conn.receive_data(h("84 00 0001 02 00000000"))
    assert event.fatal
    assert "its direction bit says response, expected a request" in event.message


# Unsupported versions, answered in a version the client reads: (request,
# served versions, answer header (stream included), requested)
UNSUPPORTED = [
    ("v6", "06 00 0003 05 00000000", (3, 4, 5), "85 00 0003 00", 6),
    ("dse-v2", "42 00 0003 05 00000000", (3, 4, 5), "85 00 0003 00", 0x42),
    ("v5-to-a-v4-node", "05 00 0003 05 00000000", (3, 4), "84 00 0003 00", 5),
    ("v2", "02 00 03 05 00000000", (3, 4, 5), "82 00 03 00", 2),  # 8-byte v2 header, 1-byte stream
    ("v1", "01 00 03 05 00000000", (3, 4, 5), "81 00 03 00", 1),
]


@pytest.mark.parametrize(
    "request_hex, versions, answer, requested", [r[1:] for r in UNSUPPORTED], ids=[r[0] for r in UNSUPPORTED]
)
def test_unsupported_version_is_answered_in_a_readable_version(request_hex, versions, answer, requested):
    conn = ServerConnection(versions=versions)
    (event,) = conn.receive_data(h(request_hex))
    assert isinstance(event.error, UnsupportedVersionError)
    assert event.fatal and conn.broken
    listed = ", ".join(f"{v}/v{v}" for v in versions)
    assert event.message == (
        f"Invalid or unsupported protocol version ({requested}); supported versions are ({listed})"
    )
    body = error_body(event.message)
    assert conn.error_frame(event) == h(answer) + struct.pack(">i", len(body)) + body


def test_send_before_any_request_uses_the_highest_version():
    assert ServerConnection(versions=(3, 4)).send(0, Ready()) == h("84 00 0000 02 00000000")


def test_send_in_an_explicit_version():
    conn = _sent(4)
    assert conn.send(9, Error(code=0x2200, message="m"), version=3) == h("83 00 0009 00 00000007 00002200 0001 6d")


def test_served_versions_are_checked():
    with pytest.raises(ValueError) as info:
        ServerConnection(versions=(2, 3))
    assert "served protocol versions must be among 3, 4 and 5, got (2, 3)" in str(info.value)


# Once a version is in use, every answer is in it: a client reads only its
# own version's headers, whatever version byte a bad frame carried.
@pytest.mark.parametrize(
    "bad_frame, stream",
    [
        ("01 00 05 05 00000000", 5),  # a v1 header (1-byte stream)
        ("02 00 05 05 00000000", 5),  # v2
        ("06 00 0005 05 00000000", 5),  # v6
        ("42 00 0005 05 00000000", 5),  # DSE v2
    ],
    ids=["v1", "v2", "v6", "dse-v2"],
)
def test_unsupported_version_on_an_established_connection_is_answered_in_its_version(bad_frame, stream):
    conn = ServerConnection()
    conn.receive_data(h("04 00 0001 05 00000000"))
    (event,) = conn.receive_data(h(bad_frame))
    assert event.fatal and event.version == 4
    body = error_body(event.message)
    assert conn.error_frame(event) == h(f"84 00 {stream:04x} 00") + struct.pack(">i", len(body)) + body


def _compressed_segment(payload: bytes) -> bytes:
    """A segment in the compressed format, its payload sent as is (uncompressed length 0)."""
    header = (len(payload) | (1 << 34)).to_bytes(5, "little")
    return header + crc24_by_bits(header).to_bytes(3, "little") + payload + crc32_by_bits(payload).to_bytes(4, "little")


def test_old_version_frame_with_the_compression_flag_inside_compressed_v5_segments():
    from fakecql.protocol.compression import Lz4
    from fakecql.protocol.frames import FrameReader, SegmentReader

    conn = ServerConnection()
    conn.receive_data(h("05 00 0001 01 00000028" "0002 000b" + a("CQL_VERSION") + "0005" + a("3.0.0")
                        + "000b" + a("COMPRESSION") + "0003" + a("lz4")))
    conn.negotiate_compression("lz4")
    conn.send(1, Ready())
    # A v3 QUERY with v3's compression flag, in a compressed-format segment.
    (event,) = conn.receive_data(_compressed_segment(h("03 01 0009 07 00000004 00000000")))
    assert event.message == "invalid message version: got v3 but previous messages on this connection had version v5"
    assert event.fatal and event.version == 5
    segments = SegmentReader(Lz4())
    segments.feed(conn.error_frame(event))
    frames = FrameReader(versions=(5,), expect_response=True)
    frames.feed(b"".join(segments.payloads()))
    frame = frames.next_frame()
    assert frame is not None
    assert (frame.header.version, frame.header.flags, frame.header.stream) == (5, 0, 9)  # no v4 compression flag
    assert error_body(event.message) == frame.body


def test_self_contained_segment_holding_part_of_a_frame_is_fatal():
    conn = _v5_ready()
    conn.send(1, Ready())
    frame = h("05 00 0003 07 0000000b" + Q_BODY_V5)
    (event,) = conn.receive_data(segment(frame[:12]))  # flagged self-contained, holds 12 of 20 bytes
    assert isinstance(event, ProtocolViolation) and event.fatal and conn.broken
    assert event.message == (
        "self-contained segment of 12 bytes does not hold whole frames: the frame at offset 0 "
        "declares a body of 11 bytes, but the segment ends 3 bytes after its header"
    )


def test_self_contained_segment_after_the_start_of_a_split_frame_is_fatal():
    conn = _v5_ready()
    conn.send(1, Ready())
    frame = h("05 00 0003 07 0000000b" + Q_BODY_V5)
    data = segment(frame[:12], self_contained=False) + segment(h("05 00 0002 05 00000000"))
    (event,) = conn.receive_data(data)
    assert event.fatal
    assert "arrived while a frame begun in earlier segments was still incomplete" in event.message


def test_self_contained_segment_with_a_trailing_scrap_is_fatal():
    conn = _v5_ready()
    conn.send(1, Ready())
    (event,) = conn.receive_data(segment(h("05 00 0002 05 00000000" "05 00")))
    assert event.fatal
    assert event.message.endswith("2 bytes at offset 9 are too few for a frame header")


def test_large_frames_come_out_undecoded_and_decode_alike():
    from fakecql.protocol.connection import UndecodedRequest

    small, large = ServerConnection(), ServerConnection(decode_later_over=2)
    data = h("04 00 0001 05 00000000" "04 00 0002 07 00000008" + Q_BODY_V4 + "04 00 0003 07 00000003 000000")
    eager, lazy = small.receive_data(data), large.receive_data(data)
    assert lazy[0] == eager[0]  # OPTIONS: a body of 0 bytes is decoded at once
    assert all(isinstance(e, UndecodedRequest) for e in lazy[1:]) and len(lazy) == 3
    decoded = [e.decode() for e in lazy[1:]]
    assert decoded[0] == eager[1] == RequestReceived(stream=2, version=4, message=Q, length=8)
    assert (decoded[1].stream, decoded[1].fatal, decoded[1].message) == (3, False, eager[2].message)  # a bad body
