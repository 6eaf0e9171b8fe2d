# A bare CQL client over a blocking socket, for tests that must put exact
# (and wrong) bytes on the wire, which no driver will do.
#
# It reads responses with fakecql's own frame codec in the response
# direction; that codec is checked byte for byte against the spec in
# tests/unit/protocol. Every read has a deadline.
from __future__ import annotations

import socket
import ssl
import time
from typing import Optional, Tuple

from fakecql.protocol.frames import Frame, FrameReader, SegmentReader, encode_frame, encode_segments
from fakecql.protocol.messages import Message, Options, Startup, decode_message

__all__ = ["RawClient", "request_frame"]


def request_frame(message: Message, *, version: int = 4, stream: int = 0, flags: int = 0) -> bytes:
    return encode_frame(version, stream, message.opcode, message.encode_body(version), flags=flags, is_response=False)


class RawClient:
    def __init__(
        self,
        address: Tuple[str, int],
        *,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        timeout: float = 5.0,
        sock: Optional[socket.socket] = None,
    ) -> None:
        """Connect to `address`, or use `sock`, a socket already connected to it."""
        if sock is None:
            sock = socket.create_connection(address, timeout=timeout)
        if ssl_context is not None:
            wrapped = ssl_context.wrap_socket(sock, server_hostname=server_hostname or address[0],
                                              do_handshake_on_connect=False)
            try:
                wrapped.do_handshake()
            except BaseException:
                wrapped.close()  # a failed handshake must not leak the socket (Python 3.9 would)
                sock.close()
                raise
            sock = wrapped
        self.sock = sock
        self.timeout = timeout
        self.reader = FrameReader(versions=(1, 2, 3, 4, 5), expect_response=True)
        self.segments = False  # v5 after READY: segments both ways (set by the test)
        self._segment_reader = SegmentReader()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, message: Message, *, version: int = 4, stream: int = 0) -> None:
        frame = request_frame(message, version=version, stream=stream)
        self.send_raw(encode_segments(frame) if self.segments else frame)

    def read_frame(self) -> Frame:
        """The next response frame; TimeoutError if none within the timeout, EOFError if closed."""
        deadline = time.monotonic() + self.timeout
        while True:
            frame = self.reader.next_frame()
            if frame is not None:
                return frame
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no response frame within {self.timeout} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:  # not yet a TimeoutError on Python 3.9
                raise TimeoutError(f"no response frame within {self.timeout} s") from None
            if not data:
                raise EOFError("the node closed the connection")
            if self.segments:
                self._segment_reader.feed(data)
                for payload in self._segment_reader.payloads():
                    self.reader.feed(payload)
            else:
                self.reader.feed(data)

    def read(self) -> Tuple[Frame, Message]:
        frame = self.read_frame()
        return frame, decode_message(frame.header.opcode, frame.body, frame.header.version, is_response=True)

    def request(self, message: Message, *, version: int = 4, stream: int = 0) -> Message:
        self.send(message, version=version, stream=stream)
        return self.read()[1]

    def start(self, version: int = 4) -> Message:
        """OPTIONS then STARTUP; returns the STARTUP answer (READY without auth)."""
        self.request(Options(), version=version)
        return self.request(Startup(options={"CQL_VERSION": "3.0.0"}), version=version)

    def closed_by_peer(self) -> bool:
        """True if the node closed the connection (EOF or reset) within the timeout."""
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return True
        except socket.timeout:
            return False
        return False
