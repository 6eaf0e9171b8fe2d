# A CQL peer that is not the bottleneck, for benchmarks of client reactors.
#
# Strategy: record and replay. A fakecql node runs in this process (plain
# TCP, on its own loop thread). Every client connection gets a thread of
# its own (blocking sockets: the TLS is OpenSSL's, in C, off the GIL while it
# waits). A request frame is looked up by its bytes minus the stream id; a
# request not seen before is forwarded to the node over this connection's
# own upstream connection (so STARTUP, REGISTER and USE stay per
# connection) and its answer is cached; a request seen before is answered
# from the cache with the stream id patched. The driver's connect queries
# and PREPARE therefore reach the node once, and EXECUTEs are answered at
# the speed of a dict lookup, a few microseconds of CPU each.
#
# Rules: frames of protocol v3/v4 only (9-byte header; the benchmark asks
# for v4): a v5 segment stream is not framed this way. Events (stream -1)
# the node pushes while a request is forwarded are passed on, not cached.
# It prints "listening on HOST:PORT" once ready (with --tls-ca, the CA is
# written first); SIGTERM stops it.
from __future__ import annotations

import argparse
import os
import signal
import socket
import ssl
import struct
import sys
import threading
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

HEADER = struct.Struct(">BBhBi")
HEADER_SIZE = HEADER.size


class Recorder:
    """The answers recorded so far, by request bytes minus the stream id."""

    def __init__(self, upstream: Tuple[str, int]) -> None:
        self.upstream = upstream
        self.answers: Dict[bytes, bytes] = {}


def _read_frame(sock: socket.socket, buf: bytearray) -> bytes:
    """The next whole frame from `sock` (blocking); what follows stays in `buf`."""
    while True:
        if len(buf) >= HEADER_SIZE:
            end = HEADER_SIZE + HEADER.unpack_from(buf)[4]
            if len(buf) >= end:
                frame = bytes(buf[:end])
                del buf[:end]
                return frame
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise EOFError("the node closed the upstream connection")
        buf += chunk


class ClientConnection:
    """One client connection, served by its own thread."""

    def __init__(self, sock: socket.socket, recorder: Recorder) -> None:
        self.sock = sock
        self.recorder = recorder
        self.upstream: Optional[socket.socket] = None
        self.upstream_buf = bytearray()

    def forward(self, request: bytes) -> List[bytes]:
        """Send `request` to the node; its answer, and any event that came first."""
        if self.upstream is None:
            self.upstream = socket.create_connection(self.recorder.upstream, timeout=30)
            self.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream.sendall(request)
        stream = request[2:4]
        frames = []
        while True:
            frame = _read_frame(self.upstream, self.upstream_buf)
            frames.append(frame)
            if frame[2:4] == stream:
                return frames

    def serve(self) -> None:
        answers = self.recorder.answers
        buf = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 18)
                if not chunk:
                    return
                buf = buf + chunk if buf else chunk
                out = []
                pos, size = 0, len(buf)
                while size - pos >= HEADER_SIZE:
                    end = pos + HEADER_SIZE + int.from_bytes(buf[pos + 5 : pos + 9], "big")
                    if end > size:
                        break
                    key = buf[pos : pos + 2] + buf[pos + 4 : end]
                    answer = answers.get(key)
                    if answer is None:
                        frames = self.forward(buf[pos:end])
                        answer = frames[-1]
                        out.extend(frames[:-1])
                        answers[key] = answer
                    out.append(answer[:2] + buf[pos + 2 : pos + 4] + answer[4:])
                    pos = end
                buf = buf[pos:]
                if out:
                    self.sock.sendall(b"".join(out))
        except (OSError, EOFError, ssl.SSLError):
            return
        finally:
            for sock in (self.sock, self.upstream):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass


def serve(tls_context: Optional[ssl.SSLContext], recorder: Recorder) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(sock, tls_context, recorder), daemon=True).start()


def _serve_one(sock: socket.socket, tls_context: Optional[ssl.SSLContext], recorder: Recorder) -> None:
    if tls_context is not None:
        try:
            sock.settimeout(30)
            sock = tls_context.wrap_socket(sock, server_side=True)
            sock.settimeout(None)
        except (OSError, ssl.SSLError):
            sock.close()
            return
    ClientConnection(sock, recorder).serve()


def main() -> None:
    parser = argparse.ArgumentParser(description="a record/replay CQL peer in front of a fakecql node")
    parser.add_argument("--tls-ca", metavar="PATH", help="TLS 1.3 towards the clients; write the CA here")
    args = parser.parse_args()
    from fakecql import CQLServer
    from fakecql.tls import TLSConfig

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    node = CQLServer(record_frames=False).start()
    context = None
    if args.tls_ca:
        config = TLSConfig.create(min_version="1.3", max_version="1.3")
        context = config.server_context()
        config.ca.cert_pem.write_to_path(args.tls_ca)
    serve(context, Recorder(node.address))


if __name__ == "__main__":
    main()
