# What the client's own OpenSSL sees on the wire (SSLContext._msg_callback),
# so that tests prove a fault independently of fakecql's own bookkeeping.
from __future__ import annotations

import ssl
import threading
from typing import List, Tuple

HANDSHAKE = 22  # TLS content type (RFC 8446, 5.1)
KEY_UPDATE = 24  # handshake message type (RFC 8446, 4)


def record_key_updates(context: ssl.SSLContext) -> List[Tuple[str, bytes]]:
    """A list that fills with (direction, message) for every KeyUpdate the
    client reads or writes on connections made from `context`. The message
    is type, 3-byte length, request_update (1: update_requested)."""
    seen: List[Tuple[str, bytes]] = []
    lock = threading.Lock()

    def callback(conn, direction, version, content_type, msg_type, data):  # type: ignore[no-untyped-def]
        if int(content_type) == HANDSHAKE and int(msg_type) == KEY_UPDATE:
            with lock:
                seen.append((direction, bytes(data)))

    context._msg_callback = callback  # type: ignore[attr-defined]
    return seen
