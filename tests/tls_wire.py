# What the client's own OpenSSL sees on the wire (SSLContext._msg_callback),
# so that tests prove a fault independently of fakecql's own bookkeeping.
from __future__ import annotations

import ssl
import threading
from typing import Any, List, NamedTuple

HANDSHAKE = 22  # TLS content type (RFC 8446, 5.1)
NEW_SESSION_TICKET = 4  # handshake message types (RFC 8446, 4)
KEY_UPDATE = 24


class HandshakeMessage(NamedTuple):
    tls_object: Any  # the client's SSLSocket or SSLObject
    direction: str  # "read" or "write"
    msg_type: int
    data: bytes  # the whole message: type, 3-byte length, body


def record_handshake_messages(context: ssl.SSLContext) -> List[HandshakeMessage]:
    """A list that fills with every TLS handshake message (post-handshake ones
    included) that connections made from `context` read or write."""
    seen: List[HandshakeMessage] = []
    lock = threading.Lock()

    def callback(conn, direction, version, content_type, msg_type, data):  # type: ignore[no-untyped-def]
        if int(content_type) == HANDSHAKE:
            with lock:
                seen.append(HandshakeMessage(conn, direction, int(msg_type), bytes(data)))

    context._msg_callback = callback  # type: ignore[attr-defined]
    return seen


def key_updates(seen: List[HandshakeMessage], direction: str) -> List[bytes]:
    """The KeyUpdate messages in `seen` going one way; the last byte is
    request_update (1: update_requested)."""
    return [m.data for m in list(seen) if m.msg_type == KEY_UPDATE and m.direction == direction]
