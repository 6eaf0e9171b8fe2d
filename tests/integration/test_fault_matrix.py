# Every reactor the installed driver has, against fakecql faults over TLS:
# dribbled frames, a node that stops reading during a large write, a reset,
# a stalled handshake, TLS 1.3 KeyUpdates mid-session. A reactor either copes or fails fast with its own
# error, named; none hangs (every connect is bounded by a 2 s timeout).
from __future__ import annotations

import os
import time
import uuid

import pytest

from fakecql import ConnectionOpened, FaultApplied, client_context

from ..tls_wire import key_updates, record_handshake_messages
from ..waiting import eventually

from .helpers import STOCK_ASYNCIO_TLS_BUG, error_chain, stock_asyncio_has_tls_transport

CONNECT_TIMEOUT = 2


def _reactors():  # type: ignore[no-untyped-def]
    stock = pytest.param("asyncio", marks=pytest.mark.xfail(
        not stock_asyncio_has_tls_transport(), strict=True, raises=Exception, reason=STOCK_ASYNCIO_TLS_BUG))
    return ["transport", "libev", "asyncore", stock]


@pytest.fixture
def connect(cql_ca, cluster_factory):  # type: ignore[no-untyped-def]
    def connect(server, reactor):  # type: ignore[no-untyped-def]
        cluster = cluster_factory(server, reactor=reactor, ssl_context=client_context(cql_ca, check_hostname=True),
                                  connect_timeout=CONNECT_TIMEOUT, control_connection_timeout=CONNECT_TIMEOUT)
        return cluster.connect()
    return connect


V5_SEGMENT_BUG = (
    "third-party bug in the drivers' Connection (all their reactors): with protocol v5 a segment header "
    "that arrives in pieces is dropped by _ConnectionIOBuffer.reset_io_buffer(), then a CRC mismatch; "
    "found by fakecql, not yet reported upstream (no network here): docs/upstream-bugs.md"
)


def _dribble_cases():  # type: ignore[no-untyped-def]
    cases = []
    for name in ("transport", "libev", "asyncore", "asyncio"):
        for version in (4, 5):
            reason = None
            if name == "asyncio" and not stock_asyncio_has_tls_transport():
                reason = STOCK_ASYNCIO_TLS_BUG
            elif version == 5 and name != "transport":
                reason = V5_SEGMENT_BUG
            marks = [pytest.mark.xfail(strict=True, raises=Exception, reason=reason)] if reason else []
            cases.append(pytest.param(name, version, id=f"{name}-v{version}", marks=marks))
    return cases


@pytest.mark.parametrize("reactor, protocol_version", _dribble_cases())
def test_dribbled_frames(reactor, protocol_version, cql_server, cql_ca, cluster_factory):
    cql_server.faults.dribble(seed=1, max_piece=7, max_delay=0)
    cluster = cluster_factory(cql_server, reactor=reactor, ssl_context=client_context(cql_ca, check_hostname=True),
                              connect_timeout=CONNECT_TIMEOUT, control_connection_timeout=CONNECT_TIMEOUT,
                              protocol_version=protocol_version)
    session = cluster.connect()
    # The queries' answers come in pieces spaced in time as well: pieces sent
    # back to back may reach the client as one read, and a v5 segment header
    # split across reads (what the drivers' bug needs) would then depend on
    # how busy the machine is.
    cql_server.faults.clear()
    cql_server.faults.dribble(seed=2, max_piece=7, max_delay=0.0005)
    for _ in range(20):
        assert session.execute("SELECT release_version FROM system.local").one().release_version == "4.0.11"


@pytest.mark.parametrize("reactor", _reactors())
def test_large_write_to_a_node_that_stops_reading(reactor, cql_server, connect):
    cql_server.node.schema.add_keyspace("ks")
    cql_server.node.schema.add_table("ks", "blobs", {"id": "uuid", "data": "blob"}, partition_key=["id"])
    session = connect(cql_server, reactor)
    insert = session.prepare("INSERT INTO ks.blobs (id, data) VALUES (?, ?)")
    cql_server.faults.stop_reading(min_pending=256 * 1024, resume_after=1.0)
    value = os.urandom(10 * 1024 * 1024)
    session.execute(insert, (uuid.uuid4(), value), timeout=30)
    assert cql_server.node.schema.table("ks", "blobs").rows[0]["data"] == value


def _close_releases_waiters(reactor: str) -> bool:
    """Whether the reactor's close() sets connected_event, so a connection the
    node closes during the startup fails at once (scylladb/python-driver#172,
    fixed there by #292; cassandra-driver's libev reactor lacks the fix)."""
    import inspect

    from fakecql.reactors import load_reactor

    cls = load_reactor(reactor)
    closers = [cls.close, getattr(cls, "_close", cls.close), getattr(cls, "_close_now", cls.close)]
    return any("connected_event" in inspect.getsource(f) for f in closers)


def _eof_cases():  # type: ignore[no-untyped-def]
    cases = []
    for name in ("transport", "libev", "asyncore", "asyncio"):
        reason = None
        if name == "asyncio" and not stock_asyncio_has_tls_transport():
            reason = STOCK_ASYNCIO_TLS_BUG
        elif not _close_releases_waiters(name):
            reason = ("third-party bug: this reactor's close() does not set connected_event, so a node "
                      "closing during the startup is only noticed at the connect timeout "
                      "(scylladb/python-driver#172, fixed in scylla-driver by #292)")
        marks = [pytest.mark.xfail(strict=True, raises=AssertionError, reason=reason)] if reason else []
        if name == "asyncio" and not reason:
            marks.append(_ASYNCIO_CLOSE_RACE)
        cases.append(pytest.param(name, id=name, marks=marks))
    return cases


# scylla-driver's asyncio reactor (3.29.11 and 3.29.12, Python 3.9 and 3.11),
# now and then (twice in ~18 CI environment runs), misses a node's close right
# after the TLS handshake: the attempt waits out its 2 s timeout and the
# connection is dropped with its writer task pending and its SSL transport
# unclosed, reported when collected (docs/upstream-bugs.md, 'Not yet reported upstream: asyncio, a close
# right after the handshake, now and then missed'). The retry above keeps the
# test on its subject; this keeps that third-party leak from failing it.
_ASYNCIO_CLOSE_RACE = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _refused(connect, server, reactor):  # type: ignore[no-untyped-def]
    """(the NoHostAvailable that connecting raised, seconds it took)."""
    from cassandra.cluster import NoHostAvailable

    started = time.monotonic()
    with pytest.raises(NoHostAvailable) as caught:
        connect(server, reactor)
    return caught.value, time.monotonic() - started


def _refused_promptly(connect, server, reactor):  # type: ignore[no-untyped-def]
    """_refused(), once more if the first attempt timed out: on CI's loaded
    2-core machine a py39 connect was seen, once, to stall its whole 2 s
    timeout before the node's fault was read (the attempt after it took
    27 ms). A reactor that misses the fault times out on every attempt, so it
    still fails; each attempt is a fresh Cluster against the same fault."""
    error, elapsed = _refused(connect, server, reactor)
    if any("Timed out" in str(e) for e in error_chain(error)) or elapsed >= CONNECT_TIMEOUT:
        error, elapsed = _refused(connect, server, reactor)
    return error, elapsed


@pytest.mark.parametrize("reactor", _eof_cases())
def test_node_closing_after_the_handshake_fails_fast(reactor, cql_server, connect):
    cql_server.faults.close()
    error, elapsed = _refused_promptly(connect, cql_server, reactor)
    # The cause is the node going away, noticed at once, not a timeout.
    assert not any("Timed out" in str(e) for e in error_chain(error)), error_chain(error)
    assert elapsed < CONNECT_TIMEOUT


@pytest.mark.parametrize("reactor", ["transport", "libev", "asyncore", pytest.param("asyncio", marks=_ASYNCIO_CLOSE_RACE)])
def test_reset_after_the_handshake_fails_within_the_connect_timeout(reactor, cql_server, connect):
    cql_server.faults.reset()
    # A reset reads as an error or, through ssl's suppress_ragged_eofs, as an
    # EOF: reactors with the close() bug above wait out the timeout, and the
    # stock asyncio reactor with the seed's bug never gets that far.
    known_slow = not _close_releases_waiters(reactor) or (
        reactor == "asyncio" and not stock_asyncio_has_tls_transport())
    error, elapsed = (_refused if known_slow else _refused_promptly)(connect, cql_server, reactor)
    if not known_slow:
        assert not any("Timed out" in str(e) for e in error_chain(error)), error_chain(error)
    assert elapsed < 4 * CONNECT_TIMEOUT


@pytest.mark.parametrize("reactor", ["transport", "libev", "asyncore", "asyncio"])
def test_stalled_handshake_fails_within_the_connect_timeout(reactor, cql_server, connect):
    cql_server.faults.stall_handshake("server_hello")
    error, elapsed = _refused(connect, cql_server, reactor)
    assert elapsed < 4 * CONNECT_TIMEOUT
    causes = " | ".join(f"{type(e).__name__}: {e}" for e in error_chain(error))
    # The same fault, named differently by each reactor (as the seed's owner measured).
    assert any(word in causes.lower() for word in ("handshake", "timed out", "timeout")), causes


@pytest.mark.parametrize("reactor", _reactors())
def test_tls13_key_updates_mid_session(reactor, cql_server_factory, cql_ca, cluster_factory):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.key_update(on_request=1, every=4)  # update_requested: the client must answer in kind
    context = client_context(cql_ca, check_hostname=True)
    seen = record_handshake_messages(context)
    cluster = cluster_factory(server, reactor=reactor, ssl_context=context,
                              connect_timeout=CONNECT_TIMEOUT, control_connection_timeout=CONNECT_TIMEOUT)
    session = cluster.connect()
    for _ in range(40):
        assert session.execute("SELECT release_version FROM system.local").one().release_version == "4.0.11"
    sent = len(server.activity.of_type(FaultApplied))
    assert sent >= 40 // 4
    # Seen by the client's OpenSSL: every KeyUpdate the node sent was read
    # (each came right before an answer; the driver may still be reading one
    # to a request of its own, hence the short wait)...
    eventually(lambda: len(key_updates(seen, "read")) >= sent, 2)
    read = key_updates(seen, "read")
    assert len(read) == sent and set(read) == {b"\x18\x00\x00\x01\x01"}
    # ...and answered with the client's own, except perhaps the last on each
    # connection, which goes out with that connection's next write.
    connections = len(server.activity.of_type(ConnectionOpened))
    answered = key_updates(seen, "write")
    assert sent - connections <= len(answered) <= sent and set(answered) <= {b"\x18\x00\x00\x01\x00"}
