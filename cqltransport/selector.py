# The transport reactor's default loop: asyncio's own SelectorEventLoop,
# given an epoll selector whose select() does less per call.
#
# Why: at one request in flight the loop turns once per query, and
# select() is, with _run_once, the largest share of a turn's own Python
# work (a py-spy profile at one in flight, plain TCP). EpollSelector's
# makes a method call per ready descriptor (_key_from_fd) and computes
# max(); this one does not: 1.3 instead of 1.9 µs per call with one ready
# descriptor (Python 3.11, this project's 2-core machine). A small saving,
# a fraction of a per cent of a query; the loop is unchanged: same class,
# same callbacks, same transports.
#
# Rules: the result is what EpollSelector.select returns (a list of (key,
# events) for registered descriptors), tested against it. It reads the
# two attributes CPython's own selectors keep (_selector: the epoll
# object, _fd_to_key), present in every Python this project supports
# (3.9-3.13). Where epoll is missing (not Linux) the factory makes the
# loop asyncio would make.
from __future__ import annotations

import asyncio
import math
import selectors
from typing import List, Optional, Tuple

__all__ = ["LeanEpollSelector", "selector_loop"]

_EPOLL = getattr(selectors, "EpollSelector", None)


if _EPOLL is not None:
    import select as _select

    _NOT_IN = ~_select.EPOLLIN  # any other bit: writable (or an error, which both directions see)
    _NOT_OUT = ~_select.EPOLLOUT
    _READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

    class LeanEpollSelector(_EPOLL):  # type: ignore[valid-type, misc]
        """selectors.EpollSelector with a select() of fewer steps."""

        def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
            if timeout is None:
                timeout = -1
            elif timeout <= 0:
                timeout = 0
            else:  # epoll counts milliseconds: round up, never wake early
                timeout = math.ceil(timeout * 1e3) * 1e-3
            keys = self._fd_to_key
            try:
                fd_events = self._selector.poll(timeout, len(keys) or 1)
            except InterruptedError:
                return []
            ready = []
            for fd, event in fd_events:
                key = keys.get(fd)
                if key is not None:
                    events = (_WRITE if event & _NOT_IN else 0) | (_READ if event & _NOT_OUT else 0)
                    ready.append((key, events & key.events))
            return ready

else:  # pragma: no cover - not Linux
    LeanEpollSelector = None  # type: ignore[assignment, misc]


def selector_loop() -> asyncio.AbstractEventLoop:
    """asyncio's SelectorEventLoop over a LeanEpollSelector (asyncio's own
    default loop where there is no epoll)."""
    if LeanEpollSelector is None:  # pragma: no cover - not Linux
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(LeanEpollSelector())
