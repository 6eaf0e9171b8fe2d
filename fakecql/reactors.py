# The connection classes ("reactors") of the installed Python driver.
#
# Strategy: a reactor is named by the module that holds it; this module only
# imports them on demand and says why one cannot be used here (a missing C
# extension, asyncore gone from Python 3.12+, a missing gevent...), so a
# test matrix can list every reactor and fail with that reason instead of
# skipping silently. It never imports a driver at import time.
#
# "transport-uvloop" is the transport reactor on uvloop (cqltransport's
# UvloopTransportConnection): usable only where uvloop is installed, and
# not a driver's reactor, so the matrix runs it only when asked for.
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Type

__all__ = ["ReactorInfo", "REACTORS", "PYOPENSSL_REACTORS", "load_reactor", "available_reactors", "driver_info",
           "uses_pyopenssl"]


@dataclass(frozen=True)
class ReactorInfo:
    name: str
    module: str
    class_name: str
    needs: Tuple[str, ...] = ()  # modules it needs beyond the driver's (imported before the reactor's)

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.class_name}"


# Every reactor the two drivers ship, plus the transport reactor of this project.
REACTORS: Dict[str, ReactorInfo] = {
    r.name: r
    for r in (
        ReactorInfo("asyncio", "cassandra.io.asyncioreactor", "AsyncioConnection"),
        ReactorInfo("asyncore", "cassandra.io.asyncorereactor", "AsyncoreConnection"),
        ReactorInfo("libev", "cassandra.io.libevreactor", "LibevConnection"),
        ReactorInfo("gevent", "cassandra.io.geventreactor", "GeventConnection"),
        ReactorInfo("eventlet", "cassandra.io.eventletreactor", "EventletConnection"),
        ReactorInfo("twisted", "cassandra.io.twistedreactor", "TwistedConnection"),
        ReactorInfo("transport", "cqltransport", "AsyncioTransportConnection"),
        ReactorInfo("transport-uvloop", "cqltransport", "UvloopTransportConnection", needs=("uvloop",)),
    )
}


# The reactors that do TLS with pyOpenSSL: their ssl_context must be an
# OpenSSL.SSL.Context, not a Python ssl.SSLContext.
PYOPENSSL_REACTORS = ("eventlet", "twisted")


def uses_pyopenssl(connection_class: type) -> bool:
    """Whether `connection_class` (or a reactor it derives from) does its TLS with pyOpenSSL."""
    modules = {REACTORS[name].module for name in PYOPENSSL_REACTORS}
    return any(getattr(klass, "__module__", "") in modules for klass in connection_class.__mro__)


def load_reactor(name: str) -> Type:
    """The connection class of reactor `name`; ImportError saying why it is unusable."""
    try:
        info = REACTORS[name]
    except KeyError:
        raise ValueError(f"unknown reactor {name!r}; known: {', '.join(REACTORS)}") from None
    for needed in info.needs:
        try:
            importlib.import_module(needed)
        except ImportError as exc:
            raise ImportError(f"reactor {name} ({info.qualified_name}) cannot be used here: "
                              f"{needed} is not installed: pip install {needed}") from exc
    try:
        module = importlib.import_module(info.module)
    except ImportError as exc:
        raise ImportError(f"reactor {name} ({info.qualified_name}) cannot be imported here: {exc}") from exc
    except Exception as exc:  # e.g. libev's C extension failing to initialise
        raise ImportError(f"reactor {name} ({info.qualified_name}) failed to load: {exc!r}") from exc
    try:
        return getattr(module, info.class_name)
    except AttributeError:
        raise ImportError(f"reactor {name}: {info.module} has no {info.class_name}") from None


def available_reactors(names: Optional[List[str]] = None) -> Tuple[Dict[str, Type], Dict[str, str]]:
    """(usable reactors by name, reason each other one is not usable)."""
    usable: Dict[str, Type] = {}
    unusable: Dict[str, str] = {}
    for name in names or list(REACTORS):
        try:
            usable[name] = load_reactor(name)
        except ImportError as exc:
            unusable[name] = str(exc)
    return usable, unusable


def driver_info() -> Tuple[str, str]:
    """(distribution name, version) of the installed driver: scylla-driver or cassandra-driver."""
    from importlib import metadata

    for dist in ("scylla-driver", "cassandra-driver"):
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    raise ImportError("no Python CQL driver is installed: pip install scylla-driver (or cassandra-driver)")
