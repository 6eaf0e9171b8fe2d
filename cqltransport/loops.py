# The transport reactor on uvloop: the same connection class with another
# loop factory (AsyncioTransportConnection.loop_factory), and so a loop
# thread of its own beside the asyncio one.
#
# Rules: uvloop is optional and imported only when the loop is made; without
# it the first connection fails with an ImportError naming the package
# (Cluster.connect reports it as the host's error).
from __future__ import annotations

import asyncio
import importlib

from .reactor import AsyncioTransportConnection

__all__ = ["UVLOOP_MISSING", "uvloop_loop", "UvloopTransportConnection"]

UVLOOP_MISSING = "uvloop was asked for but is not installed: pip install uvloop"


def uvloop_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop loop; ImportError saying to install uvloop when it is not there."""
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError as exc:
        raise ImportError(UVLOOP_MISSING) from exc
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class UvloopTransportConnection(AsyncioTransportConnection):
    """AsyncioTransportConnection on a uvloop loop (pip install uvloop).

    ``Cluster(connection_class=UvloopTransportConnection)``.
    """

    loop_factory = staticmethod(uvloop_loop)
