# The other end of a socketpair, played step by step by the test thread with
# fakecql's sans-IO pieces: TLSEngine for TLS, ServerConnection for framing,
# a NodeSession for the answers. No network: the reactor under test gets a
# connected AF_UNIX socket instead of a TCP one.
from __future__ import annotations

import socket
import ssl
import time
from typing import List, Optional, Tuple

from fakecql.node import Node
from fakecql.protocol.connection import RequestReceived, ServerConnection
from fakecql.protocol.messages import Request, Response
from fakecql.tls import TLSEngine

DEADLINE = 5.0


def socketpair_connection_class(base: type) -> type:
    """`base` with its TCP connect replaced by one end of a socketpair (kept in .peer_socket)."""

    class SocketpairConnection(base):  # type: ignore[misc, valid-type]
        peer_socket: Optional[socket.socket] = None
        made: List["SocketpairConnection"] = []  # every instance, for the test to clean up

        def _connect_socket(self) -> None:
            self._socket, self.peer_socket = socket.socketpair()
            self.made.append(self)

    SocketpairConnection.__name__ = f"Socketpair{base.__name__}"
    return SocketpairConnection


class Peer:
    """A fake node on the far end of a socketpair, driven by the test."""

    def __init__(self, sock: socket.socket, *, ssl_context: Optional[ssl.SSLContext] = None,
                 versions: Tuple[int, ...] = (4,), compression: Tuple[str, ...] = ()) -> None:
        self.sock = sock
        self.tls = TLSEngine(ssl_context) if ssl_context is not None else None
        self.cql = ServerConnection(versions=versions)
        self.node = Node(compression=compression)
        self.session = self.node.session(1)
        self.received_ciphertext = 0
        self._pending: List[RequestReceived] = []

    def close(self) -> None:
        self.sock.close()

    def _recv(self, deadline: float) -> bytes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the reactor sent nothing within the deadline")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the reactor closed the connection")
        self.received_ciphertext += len(data)
        return data

    def _send_tls_output(self) -> None:
        if self.tls is not None:
            out = self.tls.take_outgoing()
            if out:
                self.sock.sendall(out)

    def handshake(self) -> None:
        """Complete the TLS handshake (raises TLSHandshakeError if it fails)."""
        assert self.tls is not None
        deadline = time.monotonic() + DEADLINE
        while not self.tls.handshake_done:
            try:
                plaintext = self.tls.receive(self._recv(deadline))
            finally:
                self._send_tls_output()
            # The client may send its first request with its Finished message.
            self._pending.extend(e for e in self.cql.receive_data(plaintext) if isinstance(e, RequestReceived))

    def read_request(self) -> RequestReceived:
        deadline = time.monotonic() + DEADLINE
        pending = self._pending
        while not pending:
            data = self._recv(deadline)
            plaintext = self.tls.receive(data) if self.tls is not None else data
            self._send_tls_output()
            for event in self.cql.receive_data(plaintext):
                assert isinstance(event, RequestReceived), event
                pending.append(event)
        return pending.pop(0)

    def reply(self, request: RequestReceived, response: Optional[Response] = None) -> None:
        """Answer `request` (with what the node would answer, by default)."""
        if response is None:
            response = self.session.handle(request.message, request.version, request.stream)
        self.send_bytes(self.cql.send(request.stream, response, version=request.version))

    def send_bytes(self, plaintext: bytes) -> None:
        if self.tls is not None:
            self.tls.send(plaintext)
            self._send_tls_output()
        else:
            self.sock.sendall(plaintext)

    def serve_startup(self) -> List[Request]:
        """Answer OPTIONS and STARTUP; returns the requests seen."""
        seen = []
        for _ in range(2):
            request = self.read_request()
            seen.append(request.message)
            self.reply(request)
        return seen

    def wait_closed(self) -> bool:
        """True once the reactor closed its end (EOF or reset) within the deadline."""
        deadline = time.monotonic() + DEADLINE
        try:
            while True:
                data = self._recv(deadline)
                if self.tls is not None:
                    try:
                        self.tls.receive(data)
                    except ssl.SSLError:
                        pass
        except (EOFError, ConnectionResetError):
            return True
        except TimeoutError:
            return False
