# AsyncioTransportConnection without a network: the reactor gets one end of
# a socketpair and the test plays the node on the other end (peer.py), with
# real TLS through fakecql's sans-IO engine. The seed's list of unit tests,
# plus: an exception injected into each path of the reactor ends the
# connection at once with that exception (never a hang), and close() is
# idempotent, thread-safe, and leaves nothing behind.
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import pytest
import trustme

from cassandra.connection import ConnectionBusy, DefaultEndPoint
from cassandra.protocol import QueryMessage

from cqltransport import AsyncioTransportConnection, TLSHandshakeTimeout
from cqltransport.protocol import CQLProtocol
from fakecql.protocol.messages import Options, Query, Startup
from fakecql.tls import TLSConfig, TLSHandshakeError, client_context

from ...waiting import eventually
from .peer import Peer, socketpair_connection_class

WAIT = 5.0


class Injected(TypeError):
    """An exception nobody expects (the seed's was a TypeError)."""


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_context(ca: trustme.CA):  # type: ignore[no-untyped-def]
    return TLSConfig.create(ca).server_context()


@pytest.fixture
def connections():  # type: ignore[no-untyped-def]
    """Build reactor connections on socketpairs; everything is closed at teardown."""
    made: List[Tuple[AsyncioTransportConnection, Peer]] = []

    def make(base: type = AsyncioTransportConnection, *, tls: Any = None, server_context: Any = None,
             connect_timeout: float = WAIT, **options: Any) -> Tuple[Any, Peer]:
        cls = socketpair_connection_class(base)
        conn = cls(DefaultEndPoint("127.0.0.1"), ssl_context=tls, connect_timeout=connect_timeout,
                   protocol_version=4, compression=False, **options)
        peer = Peer(conn.peer_socket, ssl_context=server_context)
        made.append((conn, peer))
        return conn, peer

    yield make
    for conn, peer in made:
        conn.close()
        peer.close()


def on_loop(conn: AsyncioTransportConnection, fn: Callable[[], Any]) -> Any:
    """Run fn on the reactor's loop thread and return its result."""
    async def call() -> Any:
        return fn()
    return asyncio.run_coroutine_threadsafe(call(), conn._loop).result(WAIT)


def query(conn: AsyncioTransportConnection, text: str, callback: Optional[Callable[[Any], None]] = None) -> None:
    with conn.lock:
        request_id = conn.get_request_id()
    conn.send_msg(QueryMessage(query=text, consistency_level=1), request_id, callback or (lambda response: None))


def test_tls_startup_goes_through_the_transport(connections, ca, server_context):
    conn, peer = connections(tls=client_context(ca, check_hostname=True), server_context=server_context)
    peer.handshake()
    # The TLS handshake is done, the CQL startup is not: connected_event must wait.
    assert not conn.connected_event.wait(0.2)
    assert [type(m) for m in peer.serve_startup()] == [Options, Startup]
    assert conn.connected_event.wait(WAIT)
    assert conn.last_error is None and not conn.is_defunct
    assert isinstance(conn._protocol, CQLProtocol) and conn._protocol.tls is not None
    assert conn._tls.sslobj.version() in ("TLSv1.2", "TLSv1.3")


def test_plain_tcp_goes_through_the_transport(connections):
    conn, peer = connections()
    assert [type(m) for m in peer.serve_startup()] == [Options, Startup]
    assert conn.connected_event.wait(WAIT) and conn.last_error is None
    assert conn._protocol is not None and conn._protocol.tls is None


def test_certificate_failure_defuncts_and_keeps_the_error(connections, server_context):
    import ssl

    other = trustme.CA()  # did not sign the peer's certificate
    conn, peer = connections(tls=client_context(other, check_hostname=True), server_context=server_context)
    with pytest.raises(TLSHandshakeError):
        peer.handshake()  # the client refuses the certificate and says so
    assert conn.connected_event.wait(WAIT)
    assert conn.is_defunct and isinstance(conn.last_error, ssl.SSLCertVerificationError)


def test_handshake_timeout_defuncts_within_the_budget(ca):
    # Connection.factory waits the whole connect timeout for connected_event;
    # the handshake's own deadline comes first, so the caller gets its error,
    # not the factory's OperationTimedOut.
    cls = socketpair_connection_class(AsyncioTransportConnection)
    try:
        with pytest.raises(TLSHandshakeTimeout, match="TLS handshake with 127.0.0.1:9042 did not complete"):
            cls.factory(DefaultEndPoint("127.0.0.1"), 2.0, ssl_context=client_context(ca),
                        protocol_version=4)  # the peer never answers
        (conn,) = cls.made
        assert conn.is_defunct and conn.connected_event.is_set()
        assert Peer(conn.peer_socket).wait_closed()
    finally:
        for conn in cls.made:
            conn.close()
            conn.peer_socket.close()


def test_connection_lost_with_an_error_defuncts(connections):
    conn, peer = connections()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    error = ConnectionResetError("reset by peer")
    on_loop(conn, lambda: conn._protocol.connection_lost(error))
    assert conn.is_defunct and conn.last_error is error


def test_connection_lost_without_error_closes(connections, ca, server_context):
    conn, peer = connections(tls=client_context(ca), server_context=server_context)
    peer.handshake()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    peer.sock.close()  # EOF, no error
    eventually(lambda: conn.is_closed, WAIT)
    assert conn.is_closed and not conn.is_defunct


class WriteSpy:
    """In front of a protocol's transport (uvloop's transports take no new
    attributes): what goes through transport.write() lands in `written`."""

    def __init__(self, transport: Any, written: List[bytes]) -> None:
        self.transport = transport
        self.written = written

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def test_writes_reach_transport_write(connections):
    conn, peer = connections()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    written: List[bytes] = []

    def spy() -> None:
        conn._protocol.transport = WriteSpy(conn._protocol.transport, written)

    on_loop(conn, spy)
    query(conn, "SELECT release_version FROM system.local")
    request = peer.read_request()
    assert isinstance(request.message, Query) and request.message.query == "SELECT release_version FROM system.local"
    assert any(b"SELECT release_version FROM system.local" in chunk for chunk in written)


def test_pause_and_resume_writing_drive_socket_writable(connections):
    conn, peer = connections()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    on_loop(conn, conn._protocol.pause_writing)
    assert conn._socket_writable is False
    with pytest.raises(ConnectionBusy):
        query(conn, "SELECT key FROM system.local")
    on_loop(conn, conn._protocol.resume_writing)
    assert conn._socket_writable is True
    query(conn, "SELECT key FROM system.local")
    assert peer.read_request().message.query == "SELECT key FROM system.local"


class _Stub:
    def __init__(self, ssl_options: Any, check_hostname: bool) -> None:
        import ssl

        self.ssl_options = ssl_options
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ssl_context.check_hostname = check_hostname
        if not check_hostname:
            self.ssl_context.verify_mode = ssl.CERT_NONE
        self.endpoint = DefaultEndPoint("10.1.2.3")


@pytest.mark.parametrize("ssl_options, check_hostname, expected", [
    ({"server_hostname": "node1.example"}, True, "node1.example"),
    ({"server_hostname": "node1.example"}, False, "node1.example"),
    ({}, True, "10.1.2.3"),
    ({}, False, ""),
], ids=["explicit-checked", "explicit-unchecked", "endpoint-when-checked", "none-when-unchecked"])
def test_server_hostname(ssl_options, check_hostname, expected):
    stub = _Stub(ssl_options, check_hostname)
    assert AsyncioTransportConnection._server_hostname(stub) == expected  # type: ignore[arg-type]


def test_server_hostname_is_what_the_handshake_sends(connections, ca, server_context):
    seen: List[Optional[str]] = []
    server_context.sni_callback = lambda sslobj, name, ctx: seen.append(name)
    try:
        conn, peer = connections(tls=client_context(ca, check_hostname=True), server_context=server_context,
                                 ssl_options={"server_hostname": "localhost"})
        peer.handshake()
        conn2, peer2 = connections(tls=client_context(ca, check_hostname=False), server_context=server_context)
        peer2.handshake()
    finally:
        server_context.sni_callback = None
    assert seen == ["localhost", None]  # no SNI at all when nothing is checked


# -- exceptions nobody expects, injected into each path ---------------------------------

class _FailsInSetup(AsyncioTransportConnection):
    async def _create_transport(self) -> None:
        raise Injected("in the set-up task")


class _FailsInConnectionMade(AsyncioTransportConnection):
    def _attach(self, protocol: CQLProtocol) -> bool:
        raise Injected("in connection_made")


class _FailsInDataReceived(AsyncioTransportConnection):
    def _bytes_received(self, data: bytes) -> None:
        raise Injected("in data_received")


class _FailsInWrite(AsyncioTransportConnection):
    def _transport_ready(self, protocol: CQLProtocol) -> None:
        def write(data: bytes) -> None:
            raise Injected("in the write path")
        protocol.write = write  # type: ignore[method-assign]
        super()._transport_ready(protocol)


class _FailsInHandshakeTimer(AsyncioTransportConnection):
    def _handshake_timed_out(self, protocol: CQLProtocol) -> None:
        raise Injected("in the handshake timer")


@pytest.mark.parametrize("base, needs_tls, serve", [
    (_FailsInSetup, False, False),
    (_FailsInConnectionMade, False, False),
    (_FailsInDataReceived, False, True),
    (_FailsInWrite, False, False),
    (_FailsInHandshakeTimer, True, False),
], ids=["setup-task", "connection_made", "data_received", "write", "handshake-timer"])
def test_an_unexpected_exception_ends_the_connection_at_once(connections, ca, base, needs_tls, serve):
    started = time.monotonic()
    conn, peer = connections(base, tls=client_context(ca) if needs_tls else None,
                             connect_timeout=0.3 if needs_tls else WAIT)
    if serve:
        request = peer.read_request()  # OPTIONS; the SUPPORTED answer trips data_received
        peer.reply(request)
    assert conn.connected_event.wait(WAIT), "the connection hangs"
    assert time.monotonic() - started < 2
    assert isinstance(conn.last_error, Injected), conn.last_error
    assert conn.is_defunct


def test_a_timer_callback_exception_is_logged_not_lost(caplog):
    fired = threading.Event()

    def boom() -> None:
        fired.set()
        raise Injected("in a timer")

    AsyncioTransportConnection.create_timer(0.01, boom)
    assert fired.wait(WAIT)
    eventually(lambda: "in a timer" in caplog.text, WAIT)
    assert "Timer callback" in caplog.text and "Injected: in a timer" in caplog.text


def test_timers_fire_in_order_and_cancel(caplog):
    fired: List[float] = []
    done = threading.Event()
    timers = [AsyncioTransportConnection.create_timer(d, lambda d=d: fired.append(d)) for d in (0.05, 0.01, 0.03)]
    cancelled = AsyncioTransportConnection.create_timer(0.02, lambda: fired.append(-1))
    cancelled.cancel()
    AsyncioTransportConnection.create_timer(0.1, done.set)
    assert done.wait(WAIT)
    assert fired == [0.01, 0.03, 0.05]
    assert all(t.end > 0 for t in timers)


# -- closing ----------------------------------------------------------------------------

def _tasks_of(conn: AsyncioTransportConnection) -> List[asyncio.Task]:
    async def tasks() -> List[asyncio.Task]:
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return asyncio.run_coroutine_threadsafe(tasks(), conn._loop).result(WAIT)


def test_close_is_idempotent_thread_safe_and_leaves_nothing(connections, ca, server_context):
    conn, peer = connections(tls=client_context(ca), server_context=server_context)
    peer.handshake()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    threads = [threading.Thread(target=conn.close) for _ in range(8)]
    for thread in threads:
        thread.start()
    on_loop(conn, conn.close)
    for thread in threads:
        thread.join(WAIT)
    assert peer.wait_closed()
    assert peer.tls is not None and peer.tls.peer_closed  # a TLS close_notify came before the FIN
    assert conn.is_closed and not conn.is_defunct
    assert on_loop(conn, lambda: conn._protocol.transport.is_closing())
    assert conn._socket.fileno() == -1
    assert conn._handshake_timer is None
    assert _tasks_of(conn) == []


def test_close_during_the_handshake_cancels_it(connections, ca):
    conn, peer = connections(tls=client_context(ca), connect_timeout=WAIT)
    peer._recv(time.monotonic() + WAIT)  # the ClientHello arrived; never answered
    conn.close()
    assert peer.wait_closed()
    assert conn.connected_event.wait(WAIT)
    assert conn.is_closed and not conn.is_defunct
    assert on_loop(conn, lambda: conn._handshake_timer) is None
    assert _tasks_of(conn) == []


def test_close_before_the_transport_exists(connections):
    conn, peer = connections()
    conn.close()  # races the set-up task; either way the socket ends closed
    assert peer.wait_closed()
    assert conn.connected_event.wait(WAIT)


def test_concurrent_pushes_keep_every_frame_whole_and_in_order(connections, ca, server_context):
    conn, peer = connections(tls=client_context(ca), server_context=server_context)
    peer.handshake()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    threads, per_thread = 8, 200

    def pusher(n: int) -> None:
        for i in range(per_thread):
            query(conn, f"SELECT {n} {i}")

    workers = [threading.Thread(target=pusher, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    seen: dict = {n: [] for n in range(threads)}
    for _ in range(threads * per_thread):
        text = peer.read_request().message.query
        _, n, i = text.split()
        seen[int(n)].append(int(i))
    for worker in workers:
        worker.join(WAIT)
    assert all(seen[n] == list(range(per_thread)) for n in range(threads))


def test_handle_fork_gives_the_child_a_new_loop():
    cls = AsyncioTransportConnection
    saved = (cls._loop, cls._loop_thread, cls._timers, cls._pid)
    cls.initialize_reactor()
    before = cls._loop
    try:
        cls.handle_fork()
        assert cls._loop is None and cls._timers is None
        cls.initialize_reactor()
        new_loop = cls._loop
        assert new_loop is not None and new_loop is not before and new_loop.is_running()
        fired = threading.Event()
        cls.create_timer(0.01, fired.set)  # timers run on the child's loop
        assert fired.wait(WAIT)
    finally:
        # Stop every loop this test started; give the class back what it had.
        started = [(cls._loop, cls._loop_thread)]
        if saved[0] is None:
            started.append((before, None))
        for loop, thread in started:
            if loop is not None and loop is not saved[0] and not loop.is_closed():
                loop.call_soon_threadsafe(loop.stop)
                eventually(lambda: not loop.is_running(), WAIT)
                loop.close()
        cls._loop, cls._loop_thread, cls._timers, cls._pid = saved


def test_defunct_leaves_nothing_behind(connections, ca, server_context):
    conn, peer = connections(tls=client_context(ca), server_context=server_context)
    peer.handshake()
    peer.serve_startup()
    assert conn.connected_event.wait(WAIT)
    conn.defunct(Injected("the test ends it"))
    assert peer.wait_closed()
    assert conn.is_defunct and conn.is_closed
    assert on_loop(conn, lambda: conn._protocol.transport.is_closing())
    eventually(lambda: conn._socket.fileno() == -1, WAIT)
    assert conn._socket.fileno() == -1
    assert conn._handshake_timer is None
    assert _tasks_of(conn) == []
    assert conn._pending == []


def test_a_failed_handshake_leaves_nothing_behind(connections, server_context):
    conn, peer = connections(tls=client_context(trustme.CA()), server_context=server_context)
    with pytest.raises(TLSHandshakeError):
        peer.handshake()
    assert conn.connected_event.wait(WAIT) and conn.is_defunct
    assert peer.wait_closed()
    eventually(lambda: conn._socket.fileno() == -1, WAIT)
    assert conn._socket.fileno() == -1
    assert on_loop(conn, lambda: conn._handshake_timer) is None
    assert _tasks_of(conn) == []


# ssl_options={"check_hostname": True} beside a context that does not check
# names: the driver's Connection ignores it (docs/upstream-bugs.md,
# ssl-options-check-hostname-ignored); the transport reactor honours it.
@pytest.mark.parametrize("names, refused", [
    (("localhost",), True),  # the peer's certificate does not name 127.0.0.1
    (("127.0.0.1",), False),
    (("node.example", "127.0.0.1"), False),
])
def test_ssl_options_check_hostname_is_honoured(connections, ca, names, refused):
    import ssl

    server_context = TLSConfig.create(ca, server_cert=ca.issue_cert(*names)).server_context()
    conn, peer = connections(tls=client_context(ca, check_hostname=False), server_context=server_context,
                             ssl_options={"check_hostname": True})
    try:
        peer.handshake()
    except (BrokenPipeError, ConnectionResetError):
        assert refused  # the client closed as soon as it had checked the name
    if refused:
        assert conn.connected_event.wait(WAIT)
        assert conn.is_defunct and isinstance(conn.last_error, ssl.SSLCertVerificationError)
        assert "Hostname mismatch, certificate is not valid for '127.0.0.1'" in str(conn.last_error)
        assert peer.wait_closed()
    else:
        assert [type(m) for m in peer.serve_startup()] == [Options, Startup]
        assert conn.connected_event.wait(WAIT) and conn.last_error is None


@pytest.mark.parametrize("pattern, host, matches", [
    ("*.example.com", "node.example.com", True),
    ("*.example.com", "a.node.example.com", False),
    ("*.example.com", "example.com", False),
    ("*.com", "example.com", False),
    ("Node.Example.com.", "node.example.com", True),
])
def test_dns_names_match_as_pythons_check_hostname_does(pattern, host, matches):
    from cqltransport.protocol import _names

    assert _names({"subjectAltName": (("DNS", pattern),)}, host) is matches


def test_check_hostname_without_verification_is_refused_by_name():
    import ssl

    from cqltransport.protocol import TLSLayer

    class Unverified:
        def getpeercert(self):  # what an SSLObject returns with verify_mode CERT_NONE
            return {}

    layer = TLSLayer.__new__(TLSLayer)
    layer.sslobj = Unverified()  # type: ignore[assignment]
    with pytest.raises(ssl.SSLCertVerificationError, match="does not verify certificates"):
        layer.check_peer_name("127.0.0.1")
