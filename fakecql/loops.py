# Which event loop a fakecql node's own loop thread runs: asyncio's, or
# uvloop's when it is asked for (CQLServer(uvloop=True), `serve --uvloop`).
#
# Rules: uvloop is optional (pip install fakecql[uvloop]) and imported only
# when asked for; asking for it without it installed is an error at once,
# naming the package to install, never a quiet fallback to asyncio's loop.
from __future__ import annotations

import asyncio
import importlib
from types import ModuleType

__all__ = ["UVLOOP_MISSING", "require_uvloop", "new_event_loop", "is_uvloop"]

UVLOOP_MISSING = "uvloop was asked for but is not installed: pip install uvloop"


def require_uvloop() -> ModuleType:
    """The uvloop module; ImportError saying to install it when it is not there."""
    try:
        return importlib.import_module("uvloop")
    except ImportError as exc:
        raise ImportError(UVLOOP_MISSING) from exc


def new_event_loop(uvloop: bool = False) -> asyncio.AbstractEventLoop:
    """A new loop: uvloop's if `uvloop`, else asyncio's default."""
    if uvloop:
        loop: asyncio.AbstractEventLoop = require_uvloop().new_event_loop()
        return loop
    return asyncio.new_event_loop()


def is_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is one of uvloop's (False when uvloop is not even installed)."""
    return type(loop).__module__.split(".")[0] == "uvloop"
