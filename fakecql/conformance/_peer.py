# The far end of the reactor under test: a node on 127.0.0.1 (port 0) that
# controls every byte it sends and when it reads.
#
# Strategy: a real listening TCP socket, so every reactor connects its own
# way (twisted included). A thread accepts the one connection and, for TLS,
# completes the handshake with fakecql's sans-IO TLSEngine: reactors that
# handshake inside their constructor (libev, asyncore) block until then.
# After that the behaviour drives the peer step by step from its own thread:
# read a request (ServerConnection decodes it), answer it with frames cut
# into pieces of chosen sizes (each piece its own TLS record), cut the
# ciphertext itself mid-record, stop reading until the client's write backs
# up, send a TLS 1.3 KeyUpdate, or reset the connection (SO_LINGER 0).
#
# Rules: every socket call is bounded by the run's Deadline; errors of the
# accept thread are kept and raised, with what was expected, by the next
# call that needs the connection; close() leaves no socket or thread.
from __future__ import annotations

import errno
import random
import socket
import ssl
import struct
import threading
import time
from typing import List, Optional, Sequence

from ..node import Node
from ..protocol.connection import ProtocolViolation, RequestReceived, ServerConnection, UndecodedRequest
from ..protocol.messages import ColumnSpec, Query, Response, RowsMetadata, RowsResult
from ..protocol.types import BLOB
from ..tls import TLSEngine
from ._harness import ConformanceFailure, Deadline

try:  # SIOCINQ: bytes waiting in a socket's receive queue (Linux, macOS)
    import fcntl
    import termios

    _FIONREAD: Optional[int] = termios.FIONREAD
except ImportError:  # pragma: no cover - Windows
    _FIONREAD = None

__all__ = ["LoopbackPeer", "payload_bytes", "query_text"]

_RECV_CHUNK = 256 * 1024
# The one column of every answer the suite sends: a blob the client checks byte for byte.
PAYLOAD_COLUMN = ColumnSpec(keyspace="conformance", table="payloads", name="payload", type=BLOB)
PROTOCOL_VERSION = 4


def payload_bytes(seed: int, size: int) -> bytes:
    """`size` reproducible pseudo-random bytes: a misplaced byte cannot go unseen."""
    if size <= 0:
        return b""
    return random.Random(seed).getrandbits(8 * size).to_bytes(size, "little")


def query_text(request: RequestReceived) -> str:
    """The CQL text of a QUERY request; ConformanceFailure for any other request."""
    if not isinstance(request.message, Query):
        raise ConformanceFailure(f"expected a QUERY from the driver; it sent {request.message.opcode.name}")
    return request.message.query


class LoopbackPeer:
    """One fake node on 127.0.0.1, for one connection from the reactor under test."""

    def __init__(
        self,
        deadline: Deadline,
        *,
        tls: Optional[ssl.SSLContext] = None,
        recv_buffer: Optional[int] = None,
    ) -> None:
        self.deadline = deadline
        self.tls = TLSEngine(tls) if tls is not None else None
        self.cql = ServerConnection(versions=(3, 4, 5))
        self.node = Node(compression=())
        self.session = self.node.session(1)
        self.sock: Optional[socket.socket] = None
        self.received_bytes = 0  # from the wire (ciphertext under TLS)
        self._pending: List[RequestReceived] = []
        self._accept_error: Optional[BaseException] = None
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if recv_buffer is not None:
                # Set before listen(): the accepted socket inherits it, window scaling included.
                self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
            self._listener.bind(("127.0.0.1", 0))
            self._listener.listen(1)
        except BaseException:
            self._listener.close()
            raise
        self.port: int = self._listener.getsockname()[1]
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="fakecql-conformance-peer", daemon=True)
        self._thread.start()

    # -- accepting (its own thread) --------------------------------------------------
    def _accept(self) -> None:
        try:
            self._listener.settimeout(max(self.deadline.left(), 0.001))
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                raise ConformanceFailure("expected the reactor to connect to the peer; it never did") from None
            self.sock = sock
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                self._handshake(sock)
        except BaseException as exc:
            self._accept_error = exc
        finally:
            self._ready.set()

    def _handshake(self, sock: socket.socket) -> None:
        assert self.tls is not None
        while not self.tls.handshake_done:
            data = self._recv_some(sock, "the client's TLS handshake messages")
            try:
                plaintext = self.tls.receive(data)
            finally:
                self._flush_tls(sock)
            # The client may send its first request along with its Finished message.
            self._take_events(plaintext)

    def wait_connected(self) -> None:
        """Wait until the reactor connected (and, for TLS, finished the handshake)."""
        if not self._ready.wait(self.deadline.left()):
            raise ConformanceFailure(
                "expected the reactor to connect (and finish the TLS handshake) within the run's timeout; "
                "it did not")
        if self._accept_error is not None:
            error = self._accept_error
            if isinstance(error, ConformanceFailure):
                raise error
            raise ConformanceFailure(
                f"expected the reactor to connect{' and complete the TLS handshake' if self.tls else ''}; "
                f"the peer got {error!r}") from error

    @property
    def connected(self) -> bool:
        return self._ready.is_set() and self._accept_error is None

    def _socket(self) -> socket.socket:
        self.wait_connected()
        assert self.sock is not None
        return self.sock

    @property
    def tls_version(self) -> Optional[str]:
        return self.tls.sslobj.version() if self.tls is not None else None

    # -- reading ------------------------------------------------------------------------
    def _recv_some(self, sock: socket.socket, what: str, size: int = _RECV_CHUNK) -> bytes:
        left = self.deadline.left()
        if left <= 0:
            raise ConformanceFailure(f"expected {what} from the reactor within the run's timeout; nothing came")
        sock.settimeout(left)
        try:
            data = sock.recv(size)
        except socket.timeout:
            raise ConformanceFailure(
                f"expected {what} from the reactor within the run's timeout; nothing came") from None
        if not data:
            raise ConformanceFailure(f"expected {what} from the reactor; it closed the connection instead")
        self.received_bytes += len(data)
        return data

    def _flush_tls(self, sock: socket.socket) -> None:
        if self.tls is not None:
            out = self.tls.take_outgoing()
            if out:
                self._sendall(sock, out)

    def _take_events(self, plaintext: bytes) -> None:
        if not plaintext:
            return
        for event in self.cql.receive_data(plaintext):
            if isinstance(event, UndecodedRequest):
                event = event.decode()
            if isinstance(event, ProtocolViolation):
                raise ConformanceFailure(f"expected well-formed requests from the driver; got {event.message}")
            self._pending.append(event)

    def receive(self, what: str = "a request", size: int = _RECV_CHUNK) -> None:
        """Read once from the socket (at most `size` bytes) and decode what it completes."""
        sock = self._socket()
        data = self._recv_some(sock, what, size)
        if self.tls is not None:
            plaintext = self.tls.receive(data)
            self._flush_tls(sock)  # e.g. our answer to a KeyUpdate the client requested
        else:
            plaintext = data
        self._take_events(plaintext)

    def read_request(self, what: str = "a request", *, read_size: int = _RECV_CHUNK,
                     pause: float = 0.0) -> RequestReceived:
        """The next whole request; reads `read_size` bytes at a time, pausing `pause` s between reads."""
        while not self._pending:
            self.receive(what, read_size)
            if pause and not self._pending:
                time.sleep(pause)
        return self._pending.pop(0)

    def queued_bytes(self) -> int:
        """Bytes the kernel holds for us that we have not read (0 where it cannot tell)."""
        sock = self._socket()
        if _FIONREAD is None:
            return 0
        raw = fcntl.ioctl(sock.fileno(), _FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])

    def wait_inbound_stalled(self, what: str, *, settle: float = 0.15) -> int:
        """While we do not read: wait until the client's bytes stop coming (the
        socket buffers are full); the bytes queued for us then."""
        last, since = -1, time.monotonic()
        while True:
            queued = self.queued_bytes()
            now = time.monotonic()
            if queued != last:
                last, since = queued, now
            elif queued > 0 and now - since >= settle:
                return queued
            if self.deadline.expired:
                raise ConformanceFailure(
                    f"expected {what} to fill the socket buffers while the peer does not read; "
                    f"{queued} bytes queued and still changing at the run's timeout")
            time.sleep(0.01)

    # -- answering ----------------------------------------------------------------------
    def answer(self, request: RequestReceived, response: Optional[Response] = None) -> bytes:
        """The frame answering `request`: `response`, or what a node answers."""
        if response is None:
            response = self.session.handle(request.message, request.version, request.stream)
        return self.cql.send(request.stream, response, version=request.version)

    def rows_frame(self, stream: int, payload: bytes) -> bytes:
        """A Rows result holding one blob cell, `payload`."""
        result = RowsResult(metadata=RowsMetadata(columns=(PAYLOAD_COLUMN,)), rows=((payload,),))
        return self.cql.send(stream, result, version=PROTOCOL_VERSION)

    def rows_overhead(self) -> int:
        """Bytes of a rows_frame() that are not payload."""
        return len(self.rows_frame(0, b""))

    def reply(self, request: RequestReceived, response: Optional[Response] = None) -> None:
        self.send(self.answer(request, response))

    def serve_startup(self) -> List[RequestReceived]:
        """Answer OPTIONS with SUPPORTED and STARTUP with READY."""
        seen = []
        for expected in ("OPTIONS", "STARTUP"):
            request = self.read_request(f"{expected} (the driver's connection start-up)")
            name = request.message.opcode.name
            if name != expected:
                raise ConformanceFailure(f"expected the driver to send {expected}; it sent {name}")
            self.reply(request)
            seen.append(request)
        return seen

    def send(self, plaintext: bytes, pieces: Optional[Sequence[int]] = None, pause: float = 0.0) -> None:
        """Send `plaintext` in pieces of the given sizes (each its own TCP write
        and, under TLS, its own TLS record), pausing `pause` s between pieces."""
        sock = self._socket()
        sizes = list(pieces) if pieces is not None else [len(plaintext)]
        if sum(sizes) != len(plaintext) or any(size <= 0 for size in sizes):
            raise ValueError(f"pieces {sizes} do not cut {len(plaintext)} bytes")
        pos = 0
        for i, size in enumerate(sizes):
            if i and pause:
                time.sleep(pause)
            piece = plaintext[pos : pos + size]
            pos += size
            if self.tls is not None:
                self.tls.send(piece)
                self._flush_tls(sock)
            else:
                self._sendall(sock, piece)

    def send_ciphertext_cut(self, plaintext: bytes, records: Sequence[int], wire: Sequence[int],
                            pause: float) -> None:
        """TLS only: encrypt `plaintext` as records of the sizes `records`, then
        send the ciphertext in TCP writes of the sizes `wire` (the last write
        takes the rest), pausing between writes: records end mid-frame and
        writes end mid-record."""
        if self.tls is None:
            raise ValueError("send_ciphertext_cut needs a TLS peer")
        sock = self._socket()
        if sum(records) != len(plaintext):
            raise ValueError(f"records {list(records)} do not cut {len(plaintext)} bytes")
        pos = 0
        for size in records:
            self.tls.send(plaintext[pos : pos + size])
            pos += size
        ciphertext = self.tls.take_outgoing()
        pos = 0
        for size in list(wire) + [len(ciphertext)]:
            chunk = ciphertext[pos : pos + size]
            if not chunk:
                break
            if pos:
                time.sleep(pause)
            self._sendall(sock, chunk)
            pos += len(chunk)

    def request_key_update(self) -> None:
        """TLS 1.3: send a KeyUpdate asking the client to update its keys too."""
        if self.tls is None:
            raise ValueError("a KeyUpdate needs a TLS peer")
        self.tls.update_keys(request_peer=True)
        self._flush_tls(self._socket())

    def _sendall(self, sock: socket.socket, data: bytes) -> None:
        sock.settimeout(max(self.deadline.left(), 0.001))
        try:
            sock.sendall(data)
        except socket.timeout:
            raise ConformanceFailure(
                f"expected the reactor to read the {len(data)} bytes the peer sends within the run's timeout; "
                f"it stopped reading") from None
        except OSError as exc:
            raise ConformanceFailure(f"expected the peer's {len(data)}-byte write to go through; got {exc!r}") from exc

    # -- ending -------------------------------------------------------------------------
    def reset(self) -> None:
        """End the connection with a TCP RST (SO_LINGER 0), whatever is in flight."""
        sock = self._socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

    def close_orderly(self) -> None:
        """End the connection cleanly: TLS close_notify (if TLS), then FIN.
        The socket stays open for reading, so nothing unread turns it into a reset."""
        sock = self._socket()
        if self.tls is not None:
            self.tls.close()
            self._flush_tls(sock)
        sock.shutdown(socket.SHUT_WR)

    def wait_closed(self, seconds: float) -> bool:
        """True once the client closed its end (EOF or reset) within `seconds`."""
        if not self.connected or self.sock is None or self.sock.fileno() == -1:
            return True
        end = time.monotonic() + min(seconds, self.deadline.left() + seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(_RECV_CHUNK)
            except socket.timeout:
                return False
            except OSError as exc:
                return exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.EBADF)
            if not data:
                return True
            if self.tls is not None:
                try:
                    self.tls.receive(data)
                except (ssl.SSLError, ConformanceFailure):
                    pass

    def close(self) -> None:
        """Close both sockets and wait (bounded) for the accept thread to end."""
        # shutdown() wakes an accept() or recv() still blocked in the accept
        # thread (close() alone does not, on Linux).
        for sock in (self._listener, self.sock):
            if sock is not None and sock.fileno() != -1:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        self._thread.join(5.0)
        self._listener.close()
        if self.sock is not None:
            self.sock.close()
