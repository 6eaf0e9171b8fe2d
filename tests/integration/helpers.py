# Reading the driver's errors: NoHostAvailable wraps one error per host,
# and reactors wrap the same TLS failure differently.
from __future__ import annotations

import ssl
from typing import List


def error_chain(exc: BaseException) -> List[BaseException]:
    """The exception, what NoHostAvailable wraps, and their causes and contexts."""
    seen: List[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([current.__cause__, current.__context__])  # type: ignore[list-item]
        errors = getattr(current, "errors", None)
        if isinstance(errors, dict):
            todo.extend(e for e in errors.values() if isinstance(e, BaseException))
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return seen


def is_certificate_error(exc: BaseException) -> bool:
    """True if a certificate verification failure is somewhere in `exc`'s chain.

    Reactors report it differently (SSLCertVerificationError on some, an
    OSError/PermissionError wrapping its text on libev), so both are looked for.
    """
    for error in error_chain(exc):
        if isinstance(error, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            return True
    return False


def stock_asyncio_has_tls_transport() -> bool:
    """Whether the driver's own asyncio reactor carries the upstream fix of the
    seed (scylla-driver >= 3.29.11): its TLS runs through create_connection."""
    from cassandra.io.asyncioreactor import AsyncioConnection

    return hasattr(AsyncioConnection, "_setup_ssl_and_run")


STOCK_ASYNCIO_TLS_BUG = (
    "third-party bug: the driver's asyncio reactor hands an ssl.SSLSocket to "
    "loop.sock_sendall/sock_recv and times out (scylladb/python-driver#821; unfixed in "
    "cassandra-driver 3.30.1 and scylla-driver <= 3.29.10)"
)
