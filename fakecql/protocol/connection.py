# The node's side of one CQL connection, sans I/O: bytes in, events out;
# messages in, bytes out.
#
# Strategy (h11's): receive_data() takes whatever plaintext arrived and
# returns the events it completed: RequestReceived for a good request,
# ProtocolViolation for bytes that break the protocol, UndecodedRequest for
# a sound frame too large to decode in passing (the caller decodes it where
# it costs no one else anything). send() encodes a response. This object owns the framing state and nothing else: the
# negotiated version (fixed by the first frame in a served version), and the
# switch to v5 segments once READY or AUTHENTICATE has gone out. What to
# answer is the node's business (node.py), how bytes move is the server's.
#
# A small frame seen again on the connection (the same version, flags,
# opcode and body: a pipelined EXECUTE) reuses the message decoded and
# validated the first time; rows are encoded once per message object. Both
# memos are small and per connection.
#
# Rules: after a fatal violation the connection takes no more input (the
# caller answers, flushes and closes); a non-fatal one (a bad body in a good
# frame) is answered on its stream and the connection goes on. Once a
# version is in use, every error goes out in it, whatever the bad frame said.
from __future__ import annotations

from dataclasses import dataclass
import struct
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union
import uuid

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError, UnsupportedVersionError
from .compression import COMPRESSORS, Lz4
from .frames import (
    MAX_FRAME_BODY,
    RESPONSE_BIT,
    FrameFlag,
    FrameHeader,
    FrameReader,
    SegmentReader,
    encode_frame,
    encode_segments,
    incomplete_envelope,
)
from .messages import Authenticate, Error, Ready, Request, Response, RowsResult, decode_message
from .wire import Reader, Writer

__all__ = ["ServerConnection", "RequestReceived", "ProtocolViolation", "UndecodedRequest", "ConnectionEvent"]

DEFAULT_VERSIONS = (3, 4, 5)

# Requests decoded once per distinct frame: a client repeating the same
# request (the same EXECUTE, say) gets the message decoded and validated the
# first time. Only small uncompressed bodies without a custom payload are
# kept, at most this many per connection (all dropped when full).
DECODED_BODY_MAX = 512
DECODED_KEPT = 32
# Rows encoded once per message object: the node gives the same frozen
# RowsResult again for a repeated request (node.py), and its body is the
# same bytes; at most this many per connection (all dropped when full).
ENCODED_KEPT = 16
ENCODED_BODY_MAX = 64 * 1024  # a larger body is encoded each time

_RESPONSE_HEADER = struct.Struct(">BBhBi")

# The frame flags as plain ints, for the per-frame checks.
_COMPRESSION = int(FrameFlag.COMPRESSION)
_TRACING = int(FrameFlag.TRACING)
_CUSTOM_PAYLOAD = int(FrameFlag.CUSTOM_PAYLOAD)


@dataclass(frozen=True)
class RequestReceived:
    """A whole, well-formed request."""

    stream: int
    version: int
    message: Request
    tracing: bool = False
    custom_payload: Optional[Mapping[str, Optional[bytes]]] = None
    length: int = 0  # the frame's body length, for the activity log


@dataclass(frozen=True)
class ProtocolViolation:
    """Bytes that break the protocol; answer() gives the ERROR frame to send."""

    error: RemoteProtocolError
    stream: int
    version: int  # the frame version to answer in
    fatal: bool
    opcode: Optional[int] = None

    @property
    def message(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class UndecodedRequest:
    """A sound frame whose body is not decoded yet: large ones are handed out
    like this (see ServerConnection.decode_later_over) so that the caller can
    decode them away from its event loop. decode() touches no connection state."""

    header: FrameHeader
    body: bytes
    compressor: Optional[Lz4]  # the body is compressed with this
    max_body: int

    @property
    def stream(self) -> int:
        return self.header.stream

    def decode(self) -> Union[RequestReceived, ProtocolViolation]:
        header, body = self.header, self.body
        custom_payload = None
        try:
            if self.compressor is not None:
                body = self.compressor.decompress_body(body, self.max_body)
            if header.flags & FrameFlag.CUSTOM_PAYLOAD:
                if header.version < 4:
                    raise RemoteProtocolError(
                        f"frame on stream {header.stream} has the custom payload flag (0x04), "
                        f"which needs protocol v4 or later, not v{header.version}",
                        fatal=False,
                    )
                reader = Reader(body, "custom payload")
                custom_payload = reader.bytes_map("custom payload")
                body = reader.rest()
            message = decode_message(header.opcode, body, header.version)
        except RemoteProtocolError as exc:
            # A bad body inside a sound frame: answer its stream, go on.
            return ProtocolViolation(
                error=exc, stream=header.stream, version=header.version,
                fatal=False, opcode=header.opcode,
            )
        return RequestReceived(
            stream=header.stream,
            version=header.version,
            message=message,  # type: ignore[arg-type]
            tracing=bool(header.flags & FrameFlag.TRACING),
            custom_payload=custom_payload,
            length=header.length,
        )


ConnectionEvent = Union[RequestReceived, ProtocolViolation, UndecodedRequest]


class ServerConnection:
    """Framing state of one connection, as seen from the node."""

    def __init__(
        self,
        *,
        versions: Sequence[int] = DEFAULT_VERSIONS,
        max_frame_body: int = MAX_FRAME_BODY,
        decode_later_over: Optional[int] = None,
    ) -> None:
        """`decode_later_over`: frames with a longer body come out as
        UndecodedRequest events, for the caller to decode when it likes."""
        if not versions or any(v not in (3, 4, 5) for v in versions):
            raise ValueError(f"served protocol versions must be among 3, 4 and 5, got {tuple(versions)!r}")
        self.versions = tuple(sorted(set(versions)))
        self.version: Optional[int] = None
        self.segments = False  # v5 framing is on, both ways
        self.broken = False  # a fatal violation happened: no more input
        self.max_frame_body = max_frame_body
        self.decode_later_over = decode_later_over
        self._frames = FrameReader(versions=self.versions, max_body=max_frame_body)
        self._segments: Optional[SegmentReader] = None
        self.compressor: Optional[Lz4] = None  # in force, both ways
        self._negotiated: Optional[Lz4] = None  # agreed in STARTUP, in force after READY/AUTHENTICATE
        # (version, flags, opcode, body) -> the message decoded from it (DECODED_KEPT).
        self._decoded: Dict[Tuple[int, int, int, bytes], Request] = {}
        # id(message) -> (message, version, body) (ENCODED_KEPT).
        self._encoded: Dict[int, Tuple[RowsResult, int, bytes]] = {}

    @property
    def pending_input(self) -> int:
        """Bytes received that do not make a whole frame (or segment) yet."""
        segments = self._segments.buffered if self._segments is not None else 0
        return self._frames.buffered + segments

    def negotiate_compression(self, name: str) -> None:
        """STARTUP asked for `name` and the node accepted: compress from the next READY/AUTHENTICATE on."""
        try:
            self._negotiated = COMPRESSORS[name]
        except KeyError:
            raise ValueError(f"unknown compression {name!r}; fakecql knows {sorted(COMPRESSORS)}") from None

    # -- input -----------------------------------------------------------------
    def receive_data(self, data: bytes) -> List[ConnectionEvent]:
        if self.broken:
            return []
        events: List[ConnectionEvent] = []
        if self._segments is None:
            self._frames.feed(data)
            self._read_frames(events)
            return events
        self._segments.feed(data)
        # Segment by segment, each one's frames read before the next is
        # looked at: the frames of the good segments before a bad one are
        # answered first, as if the bad one came in later data.
        while not self.broken:
            try:
                payload = self._segments.next_payload()
                if payload is None:
                    break
                if self._segments.last_self_contained:
                    self._check_self_contained(payload)
            except RemoteProtocolError as exc:
                events.append(self._violation(exc))
                break
            self._frames.feed(payload)
            self._read_frames(events)
        return events

    def _read_frames(self, events: List[ConnectionEvent]) -> None:
        while not self.broken:
            try:
                frame = self._frames.next_raw()
            except RemoteProtocolError as exc:
                events.append(self._violation(exc))
                continue
            if frame is None:
                return
            events.append(self._accept(*frame))

    def _check_self_contained(self, payload: bytes) -> None:
        if self._frames.mid_frame:
            raise RemoteProtocolError(
                f"self-contained segment of {len(payload)} bytes arrived while a frame "
                f"begun in earlier segments was still incomplete"
            )
        problem = incomplete_envelope(payload)
        if problem is not None:
            raise RemoteProtocolError(
                f"self-contained segment of {len(payload)} bytes does not hold whole frames: {problem}"
            )

    def _violation(self, exc: RemoteProtocolError) -> ProtocolViolation:
        if self.version is not None:
            # Established: whatever the bad frame said, the client reads this version.
            version = self.version
        elif isinstance(exc, UnsupportedVersionError):
            version = exc.answer_version
        else:
            # A refused first frame is answered in its own (served) version.
            version = self._frames.last_version or self.versions[-1]
            if version not in self.versions:
                version = self.versions[-1]
        if exc.fatal:
            self.broken = True
        return ProtocolViolation(error=exc, stream=exc.stream, version=version, fatal=exc.fatal)

    def _accept(self, version: int, flags: int, stream: int, opcode: int, body: bytes) -> ConnectionEvent:
        """Check a frame against the connection's state, then decode it (now, or later if large)."""
        if self.version is None:
            self.version = version
        elif version != self.version:
            return self._violation(
                RemoteProtocolError(
                    f"invalid message version: got v{version} but previous messages "
                    f"on this connection had version v{self.version}",
                    stream=stream,
                )
            )
        # v5 compresses segments, not envelopes: its envelope flag is
        # "deprecated and ignored" (v5 spec 2.4.1.2).
        compressed = bool(flags & _COMPRESSION) and version < 5
        if compressed and self.compressor is None:
            return self._violation(
                RemoteProtocolError(
                    f"frame on stream {stream} has the compression flag set, but no "
                    f"compression was negotiated in STARTUP",
                    stream=stream,
                    fatal=False,
                )
            )
        length = len(body)
        remembered = not compressed and not flags & _CUSTOM_PAYLOAD and length <= DECODED_BODY_MAX
        if remembered:
            key = (version, flags, opcode, body)
            message = self._decoded.get(key)
            if message is not None:
                return RequestReceived(stream, version, message, bool(flags & _TRACING), None, length)
        request = UndecodedRequest(
            header=FrameHeader(version, flags, stream, opcode, length),
            body=body, compressor=self.compressor if compressed else None,
            max_body=self.max_frame_body,
        )
        if self.decode_later_over is not None and length > self.decode_later_over:
            return request
        event = request.decode()
        if remembered and isinstance(event, RequestReceived):
            if len(self._decoded) >= DECODED_KEPT:
                self._decoded.clear()
            self._decoded[key] = event.message
        return event

    # -- output ----------------------------------------------------------------
    def send(
        self,
        stream: int,
        message: Response,
        *,
        version: Optional[int] = None,
        tracing_id: Optional[uuid.UUID] = None,
        warnings: Sequence[str] = (),
        custom_payload: Optional[Mapping[str, Optional[bytes]]] = None,
    ) -> bytes:
        """Encode `message` as the answer on `stream` (-1 for events)."""
        version = version or self.version or self.versions[-1]
        if (type(message) is RowsResult and tracing_id is None and not warnings and custom_payload is None
                and self.compressor is None and not self.segments):
            # The hot path: rows, plain frames, body encoded once per message object.
            body = self._encode_body(message, version)
            try:
                return _RESPONSE_HEADER.pack(version | RESPONSE_BIT, 0, stream, message.opcode, len(body)) + body
            except struct.error:
                pass  # out of range: the general path below says what is wrong
        flags = 0
        prefix = Writer()
        if tracing_id is not None:
            flags |= FrameFlag.TRACING
            prefix.uuid_value(tracing_id, "tracing id")
        if (warnings or custom_payload is not None) and version < 4:
            raise LocalProtocolError(
                f"warnings and a custom payload need protocol v4 or later, not v{version}"
            )
        if warnings:
            flags |= FrameFlag.WARNING
            prefix.string_list(list(warnings), "warnings")
        if custom_payload is not None:
            flags |= FrameFlag.CUSTOM_PAYLOAD
            prefix.bytes_map(custom_payload, "custom payload")
        body = prefix.getvalue() + message.encode_body(version)
        if self.compressor is not None and version < 5:
            flags |= FrameFlag.COMPRESSION
            body = self.compressor.compress_body(body)
        frame = encode_frame(version, stream, message.opcode, body, flags=int(flags))
        if self.segments:
            frame = encode_segments(frame, self.compressor)
        elif isinstance(message, (Ready, Authenticate)):
            # The client switches once it has read this frame; so do we.
            self.compressor = self._negotiated
            if version >= 5:
                self._switch_to_segments()
        return frame

    def _encode_body(self, message: RowsResult, version: int) -> bytes:
        """`message`'s body, encoded once per message object and version (messages are frozen)."""
        known = self._encoded.get(id(message))
        if known is not None and known[0] is message and known[1] == version:
            return known[2]
        body = message.encode_body(version)
        if len(body) > ENCODED_BODY_MAX:
            return body
        if len(self._encoded) >= ENCODED_KEPT:
            self._encoded.clear()
        self._encoded[id(message)] = (message, version, body)
        return body

    def error_frame(self, violation: ProtocolViolation) -> bytes:
        """The ERROR frame that answers `violation`, in a version the client reads."""
        return self.send(
            violation.stream,
            Error(code=ErrorCode.PROTOCOL_ERROR, message=violation.message),
            version=violation.version,
        )

    def _switch_to_segments(self) -> None:
        # From here on both directions use segments (v5 spec, section 2.3).
        # Bytes the client sent after the frame that led here are segments too.
        self.segments = True
        self._segments = SegmentReader(self.compressor)
        leftover = self._frames.take_buffer()
        if leftover:
            self._segments.feed(leftover)

