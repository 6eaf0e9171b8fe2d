# The OpenSSL calls Python's ssl module does not offer: SSL_key_update,
# which makes a TLS 1.3 endpoint send a KeyUpdate message (RFC 8446, 4.6.3),
# and SSL_get/set_shutdown, which let a fault encrypt records after its own
# close_notify (a misbehaving sender; TLS forbids it, OpenSSL refuses it).
#
# Strategy: ctypes, against the libssl that Python's own _ssl module is
# linked with (looked up through _ssl's handle, so it is never another
# copy). The SSL* pointer of an ssl.SSLObject is read from the C object
# behind it (_ssl._SSLSocket: PyObject_HEAD, a weakref to the socket, then
# SSL *ssl), and checked before use: the pointer is accepted only if
# OpenSSL reports that very SSL's read BIO to be the SSLObject's incoming
# MemoryBIO (whose C object holds its BIO* right after PyObject_HEAD).
# Anything that does not match raises KeyUpdateUnavailable (or
# WriteAfterCloseUnavailable); nothing is called on a pointer that was not proven.
from __future__ import annotations

import ctypes
import ssl
import sys
from typing import Any, Optional, Type

from .protocol.errors import FakeCQLError

__all__ = ["KeyUpdateUnavailable", "WriteAfterCloseUnavailable", "request_key_update", "write_after_close_notify"]

SSL_KEY_UPDATE_NOT_REQUESTED = 0
SSL_KEY_UPDATE_REQUESTED = 1
SSL_SENT_SHUTDOWN = 1  # SSL_get_shutdown(): our close_notify went out

_HEAD = object.__basicsize__  # PyObject_HEAD (larger on debug builds)
_POINTER = ctypes.sizeof(ctypes.c_void_p)


class KeyUpdateUnavailable(FakeCQLError):
    """This Python's ssl module cannot be made to send a KeyUpdate (or not on this connection)."""


class WriteAfterCloseUnavailable(FakeCQLError):
    """This Python's ssl module cannot be made to encrypt after its close_notify (or not on this connection)."""


_libssl: Optional[Any] = None


def _library() -> Any:
    global _libssl
    if _libssl is None:
        import _ssl

        try:
            lib = ctypes.CDLL(_ssl.__file__)
            for name, restype, argtypes in (
                ("SSL_key_update", ctypes.c_int, [ctypes.c_void_p, ctypes.c_int]),
                ("SSL_get_rbio", ctypes.c_void_p, [ctypes.c_void_p]),
                ("SSL_get_shutdown", ctypes.c_int, [ctypes.c_void_p]),
                ("SSL_set_shutdown", None, [ctypes.c_void_p, ctypes.c_int]),
            ):
                function = getattr(lib, name)
                function.restype, function.argtypes = restype, argtypes
        except (OSError, AttributeError) as exc:
            raise KeyUpdateUnavailable(
                f"cannot reach OpenSSL's SSL_key_update through {getattr(_ssl, '__file__', '_ssl')} "
                f"({ssl.OPENSSL_VERSION}, Python {sys.version.split()[0]}): {exc}"
            ) from exc
        _libssl = lib
    return _libssl


def _field(obj: object, offset: int) -> int:
    return ctypes.c_void_p.from_address(id(obj) + offset).value or 0


def _ssl_pointer(sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, error: Type[FakeCQLError] = KeyUpdateUnavailable,
                 cannot: str = "KeyUpdate cannot be sent") -> int:
    """The SSL* behind `sslobj`, proven by its read BIO being `incoming`;
    `error` (saying what `cannot` be done) if it cannot be."""
    try:
        lib = _library()
    except KeyUpdateUnavailable as exc:
        raise error(str(exc)) from exc
    inner = getattr(sslobj, "_sslobj", None)
    if inner is None or type(inner).__name__ != "_SSLSocket":
        raise error(f"unexpected ssl.SSLObject internals on Python {sys.version.split()[0]}")
    pointer = _field(inner, _HEAD + _POINTER)
    bio = _field(incoming, _HEAD)
    if not pointer or not bio or lib.SSL_get_rbio(pointer) != bio:
        raise error(
            f"could not locate the SSL object behind ssl.SSLObject on Python {sys.version.split()[0]} "
            f"({ssl.OPENSSL_VERSION}); {cannot}"
        )
    return pointer


def request_key_update(sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, request_peer: bool) -> None:
    """Schedule a KeyUpdate on `sslobj` (TLS 1.3, handshake done) and queue it
    in the outgoing BIO. `request_peer`: ask the peer to update its keys too
    (update_requested), which it must answer with a KeyUpdate of its own."""
    pointer = _ssl_pointer(sslobj, incoming)
    version = sslobj.version()  # None until the handshake is complete
    if version != "TLSv1.3":
        raise KeyUpdateUnavailable(
            f"KeyUpdate exists only in TLS 1.3; this connection uses {version or 'nothing yet (no handshake)'}")
    kind = SSL_KEY_UPDATE_REQUESTED if request_peer else SSL_KEY_UPDATE_NOT_REQUESTED
    if _library().SSL_key_update(pointer, kind) != 1:
        raise KeyUpdateUnavailable("OpenSSL refused SSL_key_update on this connection (is a write still pending?)")
    sslobj.do_handshake()  # sends the scheduled KeyUpdate now, into the outgoing BIO


def write_after_close_notify(sslobj: ssl.SSLObject, incoming: ssl.MemoryBIO, plaintext: bytes) -> None:
    """Encrypt `plaintext` into the outgoing BIO although `sslobj` sent its
    close_notify: the records follow the close_notify in sequence (a reader
    that went on past the close_notify could decrypt them). OpenSSL refuses
    SSL_write once it sent close_notify; its "sent" flag is cleared for this
    one write and set again after, so nothing else can be written."""
    cannot = "nothing can be encrypted after the close_notify"
    pointer = _ssl_pointer(sslobj, incoming, WriteAfterCloseUnavailable, cannot)
    lib = _library()
    state = lib.SSL_get_shutdown(pointer)
    if not state & SSL_SENT_SHUTDOWN:
        raise WriteAfterCloseUnavailable("no close_notify was sent on this connection: write as usual")
    lib.SSL_set_shutdown(pointer, state & ~SSL_SENT_SHUTDOWN)
    try:
        view = memoryview(plaintext)
        while view:
            view = view[sslobj.write(view):]
    finally:
        lib.SSL_set_shutdown(pointer, lib.SSL_get_shutdown(pointer) | SSL_SENT_SHUTDOWN)
