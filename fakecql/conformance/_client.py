# The client side of a conformance run: the driver's own Connection class
# (the reactor under test), built the way the driver builds it, and requests
# sent through it with callbacks that record what came back.
#
# Strategy: the suite never reaches into a reactor's sockets or buffers; it
# only uses what every reactor shares through cassandra.connection.Connection
# (the constructor, send_msg, connected_event, is_defunct, last_error,
# in_buffer_size, create_timer, close). TLS material comes from one trustme
# CA per process; the client gets a stdlib ssl.SSLContext, or a pyOpenSSL
# context built from the same CA file for the reactors whose TLS is
# pyOpenSSL's (eventlet and twisted in cassandra-driver 3.29/3.30).
#
# Rules: the driver is imported lazily (fakecql never needs it at import
# time); every wait takes the run's Deadline.
from __future__ import annotations

import errno
import ssl
import threading
from typing import Any, List, Optional, Sequence, Tuple

import trustme

from ..reactors import uses_pyopenssl
from ..tls import TLSConfig, client_context
from ._harness import ConformanceFailure, Deadline

__all__ = ["Credentials", "Request", "open_connection", "describe", "rows_payload"]

# Reactor modules whose TLS is pyOpenSSL's: they take an OpenSSL.SSL.Context.
MAX_CONNECT_TIMEOUT = 5.0


class Credentials:
    """One CA per process, and the TLS contexts both ends build from it."""

    _instance: Optional["Credentials"] = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.config = TLSConfig.create(self.ca)

    @classmethod
    def shared(cls) -> "Credentials":
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def server_context(self) -> ssl.SSLContext:
        return self.config.server_context()

    def client_context_for(self, connection_class: type) -> Any:
        """What `connection_class` takes as ssl_context: the chain is verified
        against the CA; host names are not checked (the suite is about bytes)."""
        if uses_pyopenssl(connection_class):
            return self._pyopenssl_context()
        return client_context(self.ca, check_hostname=False)

    def _pyopenssl_context(self) -> Any:
        try:
            from OpenSSL import SSL
        except ImportError as exc:
            raise ImportError(f"this reactor does TLS with pyOpenSSL, which cannot be imported here: {exc}") from exc
        method = getattr(SSL, "TLS_CLIENT_METHOD", None) or SSL.SSLv23_METHOD
        context = SSL.Context(method)
        with self.ca.cert_pem.tempfile() as ca_file:
            context.load_verify_locations(ca_file)
        context.set_verify(SSL.VERIFY_PEER, lambda connection, cert, number, depth, ok: bool(ok))
        return context


def open_connection(
    connection_class: type,
    port: int,
    deadline: Deadline,
    *,
    ssl_context: Any = None,
    sockopts: Optional[Sequence[Tuple[int, int, int]]] = None,
) -> Any:
    """A connection of `connection_class` to 127.0.0.1:`port`, built as the driver builds one."""
    from cassandra.connection import DefaultEndPoint

    connection_class.initialize_reactor()  # type: ignore[attr-defined]
    options: dict = {
        "connect_timeout": max(deadline.left(MAX_CONNECT_TIMEOUT), 0.1),
        "protocol_version": 4,
        "compression": False,
    }
    if ssl_context is not None:
        options["ssl_context"] = ssl_context
    if sockopts:
        options["sockopts"] = list(sockopts)
    return connection_class(DefaultEndPoint("127.0.0.1", port), **options)


def describe(connection: Any) -> str:
    """The connection's state, for failure messages."""
    return (
        f"connection state: connected_event={'set' if connection.connected_event.is_set() else 'not set'}, "
        f"is_defunct={connection.is_defunct}, is_closed={connection.is_closed}, "
        f"last_error={connection.last_error!r}"
    )


class Request:
    """One request sent through the driver, and what its callback received."""

    def __init__(self, label: str, answered: List[str]) -> None:
        self.label = label
        self._answered = answered
        self.response: Any = None
        self.done = threading.Event()

    def __call__(self, response: Any) -> None:  # the driver's callback
        self.response = response
        self._answered.append(self.label)
        self.done.set()

    def wait(self, deadline: Deadline, what: str, connection: Any, *, cap: Optional[float] = None) -> Any:
        if not self.done.wait(deadline.left(cap)):
            raise ConformanceFailure(f"expected {what}; the driver's callback never fired ({describe(connection)})")
        return self.response


def send_query(connection: Any, text: str, request: Request) -> Request:
    """Send a QUERY through `connection`; `request` is its callback."""
    from cassandra import ConsistencyLevel
    from cassandra.protocol import QueryMessage

    with connection.lock:
        request_id = connection.get_request_id()
    connection.send_msg(QueryMessage(query=text, consistency_level=ConsistencyLevel.ONE), request_id, request)
    return request


def rows_payload(response: Any, what: str) -> bytes:
    """The blob cell of a one-row Rows answer; ConformanceFailure if it is not one."""
    if isinstance(response, BaseException):
        raise ConformanceFailure(f"expected {what}; the request failed with {response!r}")
    rows = getattr(response, "parsed_rows", None)
    if rows is None:
        rows = getattr(response, "rows", None)
    if not rows or len(rows[0]) != 1:
        raise ConformanceFailure(f"expected {what} (one row, one blob); the driver gave {response!r}")
    value = rows[0][0]
    return bytes(value) if value is not None else b""


RESET_ERRNOS = (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN)


def is_reset_error(exc: Optional[BaseException]) -> bool:
    """Whether `exc` (or what it wraps) reports a connection reset by the peer:
    an OSError with ECONNRESET/EPIPE/ECONNABORTED, pyOpenSSL's SysCallError
    with one of those, twisted's ConnectionLost, or ssl.SSLEOFError ("EOF
    occurred in violation of protocol"), which is all OpenSSL 3 tells a
    stdlib SSLSocket of a reset (the errno is lost inside OpenSSL)."""
    seen: List[BaseException] = []
    todo: List[Optional[BaseException]] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        number = getattr(current, "errno", None)
        if number is None and current.args and isinstance(current.args[0], int):
            number = current.args[0]  # pyOpenSSL's SysCallError(errno, name)
        if number in RESET_ERRNOS or isinstance(current, ssl.SSLEOFError):
            return True
        if any(klass.__name__ == "ConnectionLost" for klass in type(current).__mro__):
            return True
        todo.extend([current.__cause__, current.__context__])
        todo.extend(a for a in current.args if isinstance(a, BaseException))
    return False
