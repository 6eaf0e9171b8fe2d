"""The transport reactor's default loop: asyncio's SelectorEventLoop over
LeanEpollSelector, whose select() must report what EpollSelector's does."""
from __future__ import annotations

import asyncio
import selectors
import socket
import time

import pytest

from cqltransport.reactor import AsyncioTransportConnection
from cqltransport.selector import LeanEpollSelector, selector_loop

BOTH = selectors.EVENT_READ | selectors.EVENT_WRITE


def _events(selector_class, pair, registrations, timeout):
    """(fd number in `pair`, events) pairs select() reports, sorted."""
    selector = selector_class()
    try:
        for index, events in registrations:
            selector.register(pair[index], events, data=index)
        return sorted((key.data, events) for key, events in selector.select(timeout))
    finally:
        selector.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("registrations", [
    [(0, selectors.EVENT_READ)],
    [(0, selectors.EVENT_WRITE)],
    [(0, BOTH), (1, BOTH)],
    [(0, selectors.EVENT_READ), (1, selectors.EVENT_WRITE)],
])
def test_reports_what_epoll_selector_reports(pair, registrations):
    pair[1].send(b"x")  # pair[0] readable; both writable
    lean = _events(LeanEpollSelector, pair, registrations, 0)
    stock = _events(selectors.EpollSelector, pair, registrations, 0)
    assert lean == stock
    assert lean  # something was ready: the comparison is not of two empty lists


def test_reports_a_peer_that_closed_as_readable(pair):
    pair[1].close()  # EPOLLIN|EPOLLHUP (or RDHUP): the reader must run to see the EOF
    assert _events(LeanEpollSelector, pair, [(0, selectors.EVENT_READ)], 0) == [(0, selectors.EVENT_READ)]


def test_waits_at_least_the_timeout_when_nothing_is_ready(pair):
    started = time.monotonic()
    assert _events(LeanEpollSelector, pair, [(0, selectors.EVENT_READ)], 0.0205) == []
    assert time.monotonic() - started >= 0.02  # rounded up to whole milliseconds, never down


def test_with_nothing_registered_and_no_wait():
    with LeanEpollSelector() as selector:
        assert selector.select(0) == []
        assert selector.select(-1) == []


def test_the_reactor_runs_asyncio_own_loop_over_it():
    loop = AsyncioTransportConnection.loop_factory()
    try:
        assert isinstance(loop, asyncio.SelectorEventLoop)
        assert isinstance(loop._selector, LeanEpollSelector)  # type: ignore[attr-defined]
    finally:
        loop.close()


def test_a_loop_over_it_serves_a_socket_round_trip():
    async def round_trip() -> bytes:
        async def echo(reader, writer):
            writer.write(await reader.readexactly(5))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        try:
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello")
            answer = await asyncio.wait_for(reader.readexactly(5), 5)
            writer.close()
            return answer
        finally:
            server.close()
            await server.wait_closed()

    loop = selector_loop()
    try:
        assert loop.run_until_complete(round_trip()) == b"hello"
    finally:
        loop.close()
