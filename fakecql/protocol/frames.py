# Framing: the 9-byte frame header of protocol v3-v5 (spec section 2) and the
# checksummed segments that wrap frames in v5 once READY or AUTHENTICATE has
# been sent (native_protocol_v5.spec section 2).
#
# Strategy: bytes in, whole frames out. FrameReader and SegmentReader keep a
# buffer, return None when they need more data, and raise RemoteProtocolError
# when the bytes cannot be a frame or a segment. The declared body length is
# checked against the limit as soon as the header is complete, before the
# body is waited for or allocated. Nothing here knows which versions a node
# serves; the connection layer decides that.
from __future__ import annotations

import enum
import struct
import zlib
from dataclasses import dataclass
from typing import List, Optional, Protocol, Sequence, Tuple

from .errors import (
    FrameTooLargeError,
    LocalProtocolError,
    RemoteProtocolError,
    UnsupportedVersionError,
)

__all__ = [
    "Opcode",
    "FrameFlag",
    "FrameHeader",
    "Frame",
    "FrameReader",
    "SegmentReader",
    "HEADER_SIZE",
    "MAX_FRAME_BODY",
    "MAX_SEGMENT_PAYLOAD",
    "encode_frame",
    "encode_segments",
    "incomplete_envelope",
    "crc24",
    "crc32",
]

HEADER_SIZE = 9
MAX_FRAME_BODY = 256 * 1024 * 1024  # the spec's limit, in bytes
RESPONSE_BIT = 0x80
_HEADER = struct.Struct(">BBhBi")
_HEADER_V1_V2 = struct.Struct(">BBbBi")  # 1-byte stream: only to refuse v1/v2 clients


class Opcode(enum.IntEnum):
    ERROR = 0x00
    STARTUP = 0x01
    READY = 0x02
    AUTHENTICATE = 0x03
    OPTIONS = 0x05
    SUPPORTED = 0x06
    QUERY = 0x07
    RESULT = 0x08
    PREPARE = 0x09
    EXECUTE = 0x0A
    REGISTER = 0x0B
    EVENT = 0x0C
    BATCH = 0x0D
    AUTH_CHALLENGE = 0x0E
    AUTH_RESPONSE = 0x0F
    AUTH_SUCCESS = 0x10


_OPCODES = frozenset(int(o) for o in Opcode)


class FrameFlag(enum.IntFlag):
    COMPRESSION = 0x01
    TRACING = 0x02
    CUSTOM_PAYLOAD = 0x04
    WARNING = 0x08
    USE_BETA = 0x10


@dataclass(frozen=True)
class FrameHeader:
    """The fixed 9 bytes in front of every frame body."""

    version: int
    flags: int
    stream: int
    opcode: int
    length: int
    is_response: bool = False

    def encode(self) -> bytes:
        if not 0 < self.version < RESPONSE_BIT:
            raise LocalProtocolError(f"frame version must be in [1, 127], got {self.version}")
        version_byte = self.version | (RESPONSE_BIT if self.is_response else 0)
        layout = _HEADER if self.version >= 3 else _HEADER_V1_V2
        try:
            return layout.pack(version_byte, self.flags, self.stream, self.opcode, self.length)
        except struct.error as exc:
            raise LocalProtocolError(f"cannot encode frame header {self}: {exc}") from None


@dataclass(frozen=True)
class Frame:
    header: FrameHeader
    body: bytes


def encode_frame(
    version: int,
    stream: int,
    opcode: int,
    body: bytes,
    *,
    flags: int = 0,
    is_response: bool = True,
) -> bytes:
    """One whole frame: header then body."""
    header = FrameHeader(version, flags, stream, opcode, len(body), is_response)
    return header.encode() + body


def incomplete_envelope(payload: bytes) -> Optional[str]:
    """Why `payload` is not a run of whole frames (None if it is): a
    self-contained v5 segment must hold whole envelopes only (v5 spec 2.3)."""
    offset, size = 0, len(payload)
    while offset < size:
        if size - offset < HEADER_SIZE:
            return f"{size - offset} bytes at offset {offset} are too few for a frame header"
        length = int.from_bytes(payload[offset + 5 : offset + 9], "big", signed=True)
        end = offset + HEADER_SIZE + length
        if length < 0 or end > size:
            return (f"the frame at offset {offset} declares a body of {length} bytes, "
                    f"but the segment ends {size - offset - HEADER_SIZE} bytes after its header")
        offset = end
    return None


def _describe(data: "bytes | bytearray") -> str:
    return data[:HEADER_SIZE].hex(" ")


class FrameReader:
    """Cuts a byte stream into frames.

    `versions` are the protocol versions accepted; a frame in another version
    raises UnsupportedVersionError as soon as the bytes up to its stream id
    are in, without waiting for a whole header (a v1/v2 header is 8 bytes
    long), so that the answer does not depend on how the bytes were cut.
    `expect_response`
    says which direction the frames travel (a node reads requests: the
    response bit must be clear).
    """

    def __init__(
        self,
        *,
        versions: Sequence[int] = (3, 4, 5),
        max_body: int = MAX_FRAME_BODY,
        expect_response: bool = False,
    ) -> None:
        self._buf = bytearray()
        self._header: Optional[FrameHeader] = None
        self._discard = 0
        self.last_version: Optional[int] = None  # of the last header parsed, even a refused one
        self.versions = tuple(versions)
        self.max_body = max_body
        self.expect_response = expect_response
        # Version bytes next_raw() takes without next_frame()'s checks: v3+ in the right direction.
        self._plain_version_bytes = frozenset(
            v | (RESPONSE_BIT if expect_response else 0) for v in self.versions if 3 <= v < RESPONSE_BIT)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def mid_frame(self) -> bool:
        """True while part of a frame is buffered (or being skipped)."""
        return bool(self._buf) or self._header is not None or self._discard > 0

    def take_buffer(self) -> bytes:
        """Remove and return the bytes not yet parsed (framing switches to segments)."""
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def next_frame(self) -> Optional[Frame]:
        """The next whole frame, or None if more bytes are needed."""
        if self._discard:
            dropped = min(self._discard, len(self._buf))
            del self._buf[:dropped]
            self._discard -= dropped
            if self._discard:
                return None
        header = self._header
        if header is None:
            if not self._buf:
                return None
            if not self._check_version_byte() or len(self._buf) < HEADER_SIZE:
                return None
            header = self._parse_header()
            self._header = header
        end = HEADER_SIZE + header.length
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[HEADER_SIZE:end])
        del self._buf[:end]
        self._header = None
        return Frame(header, body)

    def next_raw(self) -> Optional[Tuple[int, int, int, int, bytes]]:
        """(version, flags, stream, opcode, body) of the next whole frame, or None
        if more bytes are needed: next_frame() without building objects, for a
        node's hot path. A frame the quick checks (served v3+ version byte,
        known opcode, length within bounds) do not pass goes through
        next_frame(), which raises what it raises."""
        buf = self._buf
        if self._header is None and not self._discard and len(buf) >= HEADER_SIZE:
            version_byte, flags, stream, opcode, length = _HEADER.unpack_from(buf)
            if (version_byte in self._plain_version_bytes and opcode in _OPCODES
                    and 0 <= length <= self.max_body):
                end = HEADER_SIZE + length
                if len(buf) >= end:
                    version = version_byte & ~RESPONSE_BIT
                    self.last_version = version
                    body = bytes(buf[HEADER_SIZE:end])
                    del buf[:end]
                    return version, flags, stream, opcode, body
        frame = self.next_frame()
        if frame is None:
            return None
        header = frame.header
        return header.version, header.flags, header.stream, header.opcode, frame.body

    def _check_version_byte(self) -> bool:
        """Refuse a bad version byte; False while an unsupported one awaits its stream id."""
        version_byte = self._buf[0]
        is_response = bool(version_byte & RESPONSE_BIT)
        if is_response != self.expect_response:
            wanted = "response" if self.expect_response else "request"
            # Named alone: the bytes after it may not have arrived yet, and
            # the message must not depend on how the stream was cut.
            raise RemoteProtocolError(
                f"bad version byte 0x{version_byte:02x} in frame header: its direction bit says "
                f"{'response' if is_response else 'request'}, expected a {wanted}"
            )
        version = version_byte & ~RESPONSE_BIT
        if version not in self.versions:
            # Answer on the request's stream: v3+ (and DSE versions) keep a
            # 2-byte stream at offset 2, v1/v2 a 1-byte one.
            if len(self._buf) < (4 if version >= 3 else 3):
                return False
            if version >= 3:
                stream = struct.unpack_from(">h", self._buf, 2)[0]
            else:
                stream = struct.unpack_from(">b", self._buf, 2)[0]
            raise UnsupportedVersionError(version, self.versions, stream=max(stream, 0))
        return True

    def _parse_header(self) -> FrameHeader:
        version_byte, flags, stream, opcode, length = _HEADER.unpack_from(self._buf)
        header = FrameHeader(
            version_byte & ~RESPONSE_BIT, flags, stream, opcode, length,
            bool(version_byte & RESPONSE_BIT),
        )
        self.last_version = header.version
        if length < 0:
            raise RemoteProtocolError(
                f"negative body length {length} in frame header [{_describe(self._buf)}]",
                stream=stream,
            )
        if length > self.max_body:
            raise FrameTooLargeError(length, self.max_body, stream=stream)
        if opcode not in _OPCODES:
            # The length is sound: skip this frame's body and let the caller
            # answer its stream, then go on with the next frame.
            del self._buf[:HEADER_SIZE]
            self._discard = length
            raise RemoteProtocolError(
                f"unknown opcode 0x{opcode:02x} in frame header (version "
                f"{header.version}, stream {stream}, length {length})",
                stream=stream,
                fatal=False,
            )
        return header


# --------------------------------------------------------------------------
# v5 segments
# --------------------------------------------------------------------------

MAX_SEGMENT_PAYLOAD = (1 << 17) - 1
_CRC24_INIT = 0x875060
_CRC24_POLY = 0x1974F0B
_CRC32_SEED = zlib.crc32(b"\xfa\x2d\x55\xca")
def crc24(value: int, length: int) -> int:
    """CRC-24 over the `length` low bytes of `value`, least significant first."""
    crc = _CRC24_INIT
    for _ in range(length):
        crc ^= (value & 0xFF) << 16
        value >>= 8
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= _CRC24_POLY
    return crc & 0xFFFFFF


def crc32(payload: bytes) -> int:
    """CRC-32 of a segment payload, seeded as the v5 spec says."""
    return zlib.crc32(payload, _CRC32_SEED) & 0xFFFFFFFF


class SegmentCompressor(Protocol):
    """What segments need of a compression algorithm (see compression.py)."""

    def compress_raw(self, payload: bytes) -> bytes: ...

    def decompress_raw(self, data: bytes, size: int, what: str = ...) -> bytes: ...


def _one_segment(payload: bytes, self_contained: bool, compressor: Optional[SegmentCompressor]) -> bytes:
    flag = 1 if self_contained else 0
    if compressor is None:
        # 17 bits payload length, 1 bit self-contained, 6 bits padding
        header = len(payload) | (flag << 17)
        size = 3
    else:
        # 17 bits compressed length, 17 bits uncompressed length (0: sent
        # uncompressed because compressing did not help), 1 bit
        # self-contained, 5 bits padding
        compressed = compressor.compress_raw(payload)
        if len(compressed) < len(payload):
            header = len(compressed) | (len(payload) << 17) | (flag << 34)
            payload = compressed
        else:
            header = len(payload) | (flag << 34)
        size = 5
    return (
        header.to_bytes(size, "little")
        + crc24(header, size).to_bytes(3, "little")
        + payload
        + crc32(payload).to_bytes(4, "little")
    )


def encode_segments(frames: bytes, compressor: Optional[SegmentCompressor] = None) -> bytes:
    """Wrap encoded frames in segments (compressed ones when `compressor` is given).

    Whole frames that fit go in one self-contained segment; a frame longer
    than a segment's payload is cut into non-self-contained segments.
    """
    if len(frames) <= MAX_SEGMENT_PAYLOAD:
        return _one_segment(frames, True, compressor)
    return b"".join(
        _one_segment(frames[i : i + MAX_SEGMENT_PAYLOAD], False, compressor)
        for i in range(0, len(frames), MAX_SEGMENT_PAYLOAD)
    )


class SegmentReader:
    """Cuts a byte stream into v5 segment payloads, checking both CRCs.

    With a `compressor`, segments have the compressed format's 5-byte header.
    """

    def __init__(self, compressor: Optional[SegmentCompressor] = None) -> None:
        self._buf = bytearray()
        self.compressor = compressor
        self._header_size = 3 if compressor is None else 5
        self.last_self_contained = False  # the flag of the segment next_payload() returned last
        self._header: Optional[int] = None  # of the segment being read, once its CRC24 is checked

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_payload(self) -> Optional[bytes]:
        """The payload of the next whole segment, or None if more bytes are needed."""
        size = self._header_size
        header = self._header
        if header is None:  # checked once per segment, however its bytes arrive
            if len(self._buf) < size + 3:
                return None
            header = int.from_bytes(self._buf[0:size], "little")
            expected = crc24(header, size)
            received = int.from_bytes(self._buf[size : size + 3], "little")
            if received != expected:
                raise RemoteProtocolError(
                    f"segment header CRC24 mismatch: header {bytes(self._buf[0:size]).hex()} has "
                    f"CRC 0x{received:06x}, expected 0x{expected:06x}"
                )
            self._header = header
        length = header & MAX_SEGMENT_PAYLOAD
        uncompressed = (header >> 17) & MAX_SEGMENT_PAYLOAD if self.compressor is not None else 0
        self_contained = bool(header >> (17 if self.compressor is None else 34) & 1)
        start = size + 3
        end = start + length + 4
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[start : start + length])
        received = int.from_bytes(self._buf[start + length : end], "little")
        expected = crc32(payload)
        del self._buf[:end]
        self._header = None
        if received != expected:
            raise RemoteProtocolError(
                f"segment payload CRC32 mismatch on {length} bytes: got 0x{received:08x}, "
                f"expected 0x{expected:08x}"
            )
        if uncompressed:
            assert self.compressor is not None
            payload = self.compressor.decompress_raw(payload, uncompressed)
        self.last_self_contained = self_contained
        return payload

    def payloads(self) -> List[bytes]:
        out: List[bytes] = []
        while True:
            payload = self.next_payload()
            if payload is None:
                return out
            out.append(payload)
