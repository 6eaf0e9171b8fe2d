# The asyncio side of AsyncioTransportConnection: a Protocol over a plain TCP
# transport, with TLS done by an SSLObject over two MemoryBIOs.
#
# Strategy (CPython's asyncio/sslproto.py, reduced to what a CQL connection
# needs): the transport moves ciphertext; TLSLayer turns it into plaintext
# and back. SSLWantReadError means "flush what is outgoing, then wait for
# bytes"; after every operation the outgoing BIO is flushed to the
# transport, so TLS 1.3 post-handshake messages (NewSessionTicket, KeyUpdate)
# are answered whichever direction the application is using. Driving the
# SSLObject ourselves, instead of loop.create_connection(ssl=...), is what
# lets a cached TLS session be offered at the handshake.
#
# Rules: every callback is guarded: any exception ends the connection with
# that exception as its last_error (nothing is left in a future nobody
# reads); the connection's callbacks fire at most once; the transport's
# water marks drive the connection's `_socket_writable` (backpressure).
#
# Speed: the transport reads into one preallocated buffer (BufferedProtocol:
# no 256 KiB bytes object per read), TLS decrypts into another, and the
# plaintext reaches the connection as a memoryview valid during the call
# only; a read stops when the BIO and the SSLObject hold nothing more,
# without raising SSLWantReadError for it. Nothing here keeps a reference
# to a request, so a query leaves no reference cycle behind.
from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, cast

if TYPE_CHECKING:  # pragma: no cover
    from .reactor import AsyncioTransportConnection

log = logging.getLogger(__name__)

__all__ = ["TLSLayer", "CQLProtocol"]

_READ_CHUNK = 256 * 1024  # the transport's read buffer
_PLAINTEXT_CHUNK = 64 * 1024  # the decrypted bytes handed over at once, at most


class TLSLayer:
    """Client-side TLS over memory BIOs (sans-IO)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        server_hostname: Optional[str],
        session: Optional[ssl.SSLSession] = None,
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(
            self._incoming, self._outgoing, server_side=False,
            server_hostname=server_hostname or None, session=session,
        )
        self.handshake_done = False
        self.peer_closed = False
        self._plaintext = memoryview(bytearray(_PLAINTEXT_CHUNK))

    def start(self) -> bytes:
        """Begin the handshake; returns the ClientHello to send."""
        self.step_handshake()
        return self.take_outgoing()

    def step_handshake(self) -> bool:
        """Drive the handshake with what has arrived; True once complete."""
        try:
            self.sslobj.do_handshake()
        except ssl.SSLWantReadError:
            return False
        self.handshake_done = True
        return True

    def feed(self, ciphertext: "bytes | memoryview", deliver: Callable[[memoryview], None]) -> None:
        """Bytes from the peer in; the plaintext they complete goes to
        `deliver`, a memoryview valid during that call only (several calls
        if there is more than _PLAINTEXT_CHUNK of it)."""
        incoming = self._incoming
        incoming.write(ciphertext)
        if not self.handshake_done and not self.step_handshake():
            return
        sslobj, view = self.sslobj, self._plaintext
        size, filled = len(view), 0
        while True:
            try:
                # With a buffer, read() returns the count (typeshed says bytes).
                count: int = sslobj.read(size - filled, view[filled:])  # type: ignore[arg-type,assignment]
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not count:
                self.peer_closed = True
                break
            filled += count
            if filled == size:
                deliver(view)
                filled = 0
            elif not incoming.pending and not sslobj.pending():
                break  # nothing left to decrypt: no SSLWantReadError to raise and catch
        if filled:
            deliver(view[:filled])

    def encrypt(self, plaintext: bytes) -> bytes:
        sslobj = self.sslobj
        written = sslobj.write(plaintext)
        if written < len(plaintext):
            view = memoryview(plaintext)[written:]
            while view:
                view = view[sslobj.write(view):]
        return self.take_outgoing()

    def shutdown(self) -> bytes:
        """Our close_notify, to send before closing the transport."""
        try:
            self.sslobj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLSyscallError):
            pass
        except ssl.SSLError as exc:  # the session is already broken
            log.debug("TLS shutdown after an error: %s", exc)
        return self.take_outgoing()

    def take_outgoing(self) -> bytes:
        return self._outgoing.read() if self._outgoing.pending else b""

    def check_peer_name(self, host: str) -> None:
        """Raise ssl.SSLCertVerificationError unless the verified peer
        certificate names `host` (an IP address among its IP SANs, or a DNS
        name among its DNS SANs, a left-most "*" label matching one label;
        the common name only when it has no DNS SAN), as Python's own
        check_hostname does. For `ssl_options={"check_hostname": True}`
        beside a context that does not check names itself."""
        peer: Any = self.sslobj.getpeercert()
        if not peer:
            raise ssl.SSLCertVerificationError(
                1, f"cannot check that the certificate names {host!r}: the context does not verify "
                   "certificates (verify_mode CERT_NONE)")
        if not _names(peer, host):
            names = ", ".join(value for _, value in peer.get("subjectAltName", ())) or "none"
            raise ssl.SSLCertVerificationError(
                1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, "
                   f"certificate is not valid for {host!r} (it names: {names})")


def _names(peer: Dict[str, Any], host: str) -> bool:
    try:
        address: Optional[ipaddress._BaseAddress] = ipaddress.ip_address(host)
    except ValueError:
        address = None
    sans = peer.get("subjectAltName", ())
    if address is not None:
        for kind, value in sans:
            if kind == "IP Address":
                try:
                    if ipaddress.ip_address(value.strip()) == address:
                        return True
                except ValueError:
                    continue
        return False
    patterns = [value for kind, value in sans if kind == "DNS"]
    if not patterns:
        patterns = [value for rdn in peer.get("subject", ()) for key, value in rdn if key == "commonName"]
    wanted = host.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if pattern == wanted:
            return True
        if pattern.startswith("*.") and "." in pattern[2:] and "." in wanted:
            label, rest = wanted.split(".", 1)
            if label and rest == pattern[2:]:
                return True
    return False


class CQLProtocol(asyncio.BufferedProtocol):
    """Bridges one asyncio transport to one driver Connection."""

    def __init__(self, connection: "AsyncioTransportConnection", tls: Optional[TLSLayer]) -> None:
        self.connection = connection
        self.tls = tls
        self.transport: Optional[asyncio.Transport] = None
        self.ready = False  # TLS (if any) done: CQL bytes may flow
        self._lost = False
        self._buffer = memoryview(bytearray(_READ_CHUNK))  # what the transport reads into
        # Closing waits until create_connection has returned (set_up): on uvloop a
        # transport closed from connection_made is closed before create_connection
        # attaches the socket object to it, and that object later closes its fd
        # number again, another socket's by then (the path of MagicStack/uvloop#645).
        self._set_up = False
        self._close_when_set_up: Optional[str] = None  # "close" or "abort"

    # Every asyncio callback goes through _guard: an exception ends the connection.
    def _guard(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:
            self._failed(exc, callback.__name__)

    def _failed(self, exc: Exception, where: str) -> None:
        log.debug("Connection %s failed in %s: %r", self.connection, where, exc)
        self.connection.defunct(exc)  # closes us too: what is buffered (a TLS alert) still goes out
        self.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard(self._made, transport)

    def _made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; uvloop's are not asyncio.Transport subclasses.
        self.transport = transport = cast(asyncio.Transport, transport)
        if not self.connection._attach(self):
            self.close()  # closed while the transport was being made
            return
        if self.tls is None:
            self._ready()
            return
        self.connection._tls_handshake_started(self)
        self._send(self.tls.start())

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        # Once per read: _guard's work inline, and plain TCP straight to the connection.
        try:
            if self.tls is None:
                self.connection._bytes_received(self._buffer[:nbytes])
            else:
                self._received(self._buffer[:nbytes])
        except Exception as exc:
            self._failed(exc, "buffer_updated")

    def data_received(self, data: bytes) -> None:  # what a transport without get_buffer calls
        self._guard(self._received, data)

    def _received(self, data: "bytes | memoryview") -> None:
        tls = self.tls
        if tls is None:
            self.connection._bytes_received(data)
            return
        if tls.handshake_done:
            try:
                tls.feed(data, self.connection._bytes_received)  # ssl.SSLError ends the connection, via _guard
            finally:
                self._send(tls.take_outgoing())  # a post-handshake answer (KeyUpdate), or an alert
        else:
            try:
                tls.feed(data, self._plaintext_before_ready)
            finally:
                self._send(tls.take_outgoing())  # the handshake's next flight, or our alert
            if tls.handshake_done:
                self._ready()
                early = self._early
                if early is not None:
                    self._early = None
                    self.connection._bytes_received(early)
        if tls.peer_closed and self.transport is not None:
            self._send(tls.shutdown())
            self.transport.close()

    _early: Optional[bytes] = None

    def _plaintext_before_ready(self, plaintext: memoryview) -> None:
        """Plaintext that came with the handshake's last flight: kept until
        the connection has been told the transport is ready."""
        self._early = (self._early or b"") + bytes(plaintext)

    def _ready(self) -> None:
        self.ready = True
        self.connection._transport_ready(self)

    def eof_received(self) -> Optional[bool]:
        return False  # close our side too; connection_lost follows

    def pause_writing(self) -> None:
        self.connection._socket_writable = False

    def resume_writing(self) -> None:
        self.connection._socket_writable = True

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._lost:
            return
        self._lost = True
        self.connection._socket_writable = True
        self._guard(self.connection._transport_lost, exc)

    # -- writing and closing (loop thread only) -----------------------------------
    def write(self, plaintext: bytes) -> None:
        # Once per flush: _send's checks inline; nothing is encrypted for a closing transport.
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = plaintext if self.tls is None else self.tls.encrypt(plaintext)
        if data:
            transport.write(data)

    def _send(self, data: bytes) -> None:
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def set_up(self) -> None:
        """create_connection has returned: a close asked for meanwhile happens now."""
        self._set_up = True
        if self._close_when_set_up == "abort":
            self.abort()
        elif self._close_when_set_up == "close":
            self.close()

    def close(self) -> None:
        """Close cleanly: TLS close_notify (if the handshake finished), then FIN."""
        if not self._set_up:
            self._close_when_set_up = self._close_when_set_up or "close"
            return
        if self.transport is None or self.transport.is_closing():
            return
        if self.tls is not None and self.tls.handshake_done:
            self._send(self.tls.shutdown())
        self.transport.close()  # what is buffered is still sent

    def abort(self) -> None:
        if not self._set_up:
            self._close_when_set_up = "abort"
            return
        if self.transport is not None:
            self.transport.abort()
