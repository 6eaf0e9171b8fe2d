# The transport reactor's per-query path (issue 14): what it must not do
# per query, checked by what can be observed rather than by timing: no
# reference cycle per query, no request kept alive by its cancelled timer,
# no timer heap growing with finished requests, one write (and no loop
# callback) for what response callbacks push during a read, except the only
# request in flight, written at once, and TLS plaintext handed over whole
# however it is chunked.
from __future__ import annotations

import gc
import ssl
import threading
import weakref
from typing import Any, List

import pytest
import trustme

from cqltransport import AsyncioTransportConnection
from cqltransport.protocol import _PLAINTEXT_CHUNK, TLSLayer
from cqltransport.reactor import COMPACT_AT
from fakecql.tls import TLSConfig, client_context

from .test_transport_reactor import WAIT, WriteSpy, connections, on_loop, query  # noqa: F401 (fixture)


class _Request:
    """Stands for a driver ResponseFuture: what a request timer calls back."""

    def on_timeout(self) -> None:
        raise AssertionError("a cancelled timer fired")


def test_a_cancelled_timer_lets_go_of_its_callback():
    request = _Request()
    alive = weakref.ref(request)
    timer = AsyncioTransportConnection.create_timer(60, request.on_timeout)
    del request
    assert alive() is not None  # the pending timer holds it: it may still fire
    timer.cancel()
    assert alive() is None  # freed at once, not 60 s later
    timer.fire()  # a no-op now


def test_the_timer_heap_sheds_cancelled_timers():
    AsyncioTransportConnection.initialize_reactor()
    timers = AsyncioTransportConnection._timers
    assert timers is not None
    live = AsyncioTransportConnection.create_timer(60, lambda: None)
    for _ in range(3 * COMPACT_AT):
        AsyncioTransportConnection.create_timer(60, lambda: None).cancel()
    assert len(timers._heap) < COMPACT_AT  # not 3 * COMPACT_AT: the cancelled ones were dropped
    assert any(entry[2] is live for entry in timers._heap)  # the live one stays
    live.cancel()


def test_requests_pushed_by_response_callbacks_go_out_in_one_write(connections):  # noqa: F811
    conn, peer = connections()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    writes: List[bytes] = []
    flushes: List[Any] = []  # flushes run as loop callbacks (through _guard)

    real_guard = conn._guard

    def guard(callback: Any, *args: Any) -> None:
        if callback == conn._flush:
            flushes.append(callback)
        real_guard(callback, *args)

    def spy() -> None:
        conn._protocol.transport = WriteSpy(conn._protocol.transport, writes)
        conn._guard = guard

    def unspy() -> None:
        conn._protocol.transport = conn._protocol.transport.transport
        del conn._guard

    on_loop(conn, spy)
    try:
        count = 3

        def follow_up(response: Any) -> None:
            query(conn, "SELECT follow_up")

        for _ in range(count):
            query(conn, "SELECT first", follow_up)
        firsts = [peer.read_request() for _ in range(count)]
        writes.clear()
        flushes.clear()  # the flush of the firsts (pushed from this thread)
        peer.send_bytes(b"".join(peer.cql.send(r.stream, peer.session.handle(r.message, r.version, r.stream),
                                                version=r.version) for r in firsts))  # one read
        texts = [peer.read_request().message.query for _ in range(count)]
    finally:
        on_loop(conn, unspy)
    assert texts == ["SELECT follow_up"] * count
    assert len(writes) == 1 and writes[0].count(b"SELECT follow_up") == count
    assert flushes == []  # no loop callback to flush them


def test_the_only_request_in_flight_goes_out_before_the_read_is_done(connections):  # noqa: F811
    # With nothing else in flight the node is idle: a request pushed by a
    # response callback is written before the callback returns, so the node
    # answers while the driver finishes the read. (With others in flight,
    # the test above: one write when the read is done.)
    conn, peer = connections()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    writes: List[bytes] = []
    written_before_return: List[int] = []

    def spy() -> None:
        conn._protocol.transport = WriteSpy(conn._protocol.transport, writes)

    def unspy() -> None:
        conn._protocol.transport = conn._protocol.transport.transport

    def follow_up(response: Any) -> None:
        query(conn, "SELECT follow_up")
        written_before_return.append(sum(chunk.count(b"SELECT follow_up") for chunk in writes))

    on_loop(conn, spy)
    try:
        query(conn, "SELECT first", follow_up)
        first = peer.read_request()
        peer.send_bytes(peer.cql.send(first.stream, peer.session.handle(first.message, first.version, first.stream),
                                      version=first.version))
        assert peer.read_request().message.query == "SELECT follow_up"
    finally:
        on_loop(conn, unspy)
    assert written_before_return == [1]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_queries_create_no_reference_cycles(connections, tls):  # noqa: F811
    ca = trustme.CA()
    conn, peer = connections(tls=client_context(ca) if tls else None,
                             server_context=TLSConfig.create(ca).server_context() if tls else None)
    if tls:
        peer.handshake()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)

    def cycles_after(queries: int) -> int:
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(queries):
                done = threading.Event()
                query(conn, "SELECT release_version FROM system.local", lambda response: done.set())
                peer.reply(peer.read_request())
                assert done.wait(WAIT)
            gc.collect()
            found = len(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        return found

    cycles_after(20)  # warm up: first-use caches, the loop's own set-up
    few, many = cycles_after(20), cycles_after(220)
    assert many - few < 20, f"{many - few} more objects in cycles for 200 more queries"


def _tls_pair() -> Any:
    ca = trustme.CA()
    server = TLSConfig.create(ca).server_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_side = server.wrap_bio(incoming, outgoing, server_side=True)
    client = TLSLayer(client_context(ca), "127.0.0.1")
    to_server = client.start()
    while not client.handshake_done:
        incoming.write(to_server)
        try:
            server_side.do_handshake()
        except ssl.SSLWantReadError:
            pass
        client.feed(outgoing.read(), lambda plaintext: None)
        to_server = client.take_outgoing()
    incoming.write(to_server)
    return client, server_side, outgoing


@pytest.mark.parametrize("piece", [1, 1000, 17000, 1 << 20])
def test_tls_plaintext_arrives_whole_and_in_order_however_chunked(piece):
    client, server_side, outgoing = _tls_pair()
    sent = bytes(range(256)) * (3 * _PLAINTEXT_CHUNK // 256 + 7)  # more than one chunk's worth
    view = memoryview(sent)
    while view:
        view = view[server_side.write(view):]
    ciphertext = outgoing.read()
    received = bytearray()
    sizes: List[int] = []

    def deliver(plaintext: memoryview) -> None:
        sizes.append(len(plaintext))
        received.extend(plaintext)  # copied: the view is valid during the call only

    for start in range(0, len(ciphertext), piece):
        client.feed(ciphertext[start : start + piece], deliver)
    assert bytes(received) == sent
    assert max(sizes) <= _PLAINTEXT_CHUNK
    assert not client.peer_closed


def test_tls_close_notify_after_data_is_seen():
    client, server_side, outgoing = _tls_pair()
    server_side.write(b"last words")
    try:
        server_side.unwrap()
    except ssl.SSLWantReadError:
        pass
    received: List[bytes] = []
    client.feed(outgoing.read(), lambda plaintext: received.append(bytes(plaintext)))
    assert b"".join(received) == b"last words"
    assert client.peer_closed
