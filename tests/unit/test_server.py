# The server shell against a bare client: malformed frames get a CQL
# ProtocolError naming what was wrong, the node keeps serving its other
# connections, exceptions inside the server surface as incidents, and the
# server runs on its own loop thread or inside the caller's loop.
from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest

from fakecql import (
    ActivityLog,
    CQLServer,
    Limits,
    ProtocolIncident,
    ServerException,
    TLSConfig,
    UnexpectedActivityError,
    client_context,
)
from fakecql.faults import Fault
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.frames import encode_frame
from fakecql.protocol.messages import Error, Options, Query, Ready, RowsResult, Supported

from ..rawcql import RawClient, request_frame

pytestmark = pytest.mark.fakecql_allow_unexpected  # these tests provoke incidents and take them


def _query_body(text: str) -> bytes:
    return Query(query=text).encode_body(4)


# (id, bytes after a good STARTUP, expected text in the error, fatal?)
MALFORMED = [
    ("bad-version-byte", encode_frame(7, 3, 0x05, b"", is_response=False),
     "Invalid or unsupported protocol version (7)", True),
    ("response-bit-on-request", encode_frame(4, 3, 0x05, b"", is_response=True),
     "bad version byte 0x84", True),
    ("length-over-limit", struct.pack(">BBhBi", 4, 0, 3, 0x07, 300 * 1024 * 1024),
     "frame body length 314572800 exceeds the limit of 16777216 bytes", True),
    ("negative-length", struct.pack(">BBhBi", 4, 0, 3, 0x07, -5),
     "negative body length -5", True),
    ("truncated-body", encode_frame(4, 3, 0x07, struct.pack(">i", 100) + b"SELECT", is_response=False),
     "truncated QUERY body: query string needs 100 bytes", False),
    ("unknown-opcode", encode_frame(4, 3, 0x42, b"\x01\x02\x03", is_response=False),
     "unknown opcode 0x42", False),
    ("response-opcode-in-request", encode_frame(4, 3, 0x02, b"", is_response=False),
     "opcode READY is not a request", False),
    ("trailing-garbage", encode_frame(4, 3, 0x07, _query_body("SELECT 1") + b"\xde\xad", is_response=False),
     "2 unexpected trailing bytes", False),
    ("invalid-utf8", encode_frame(4, 3, 0x07, struct.pack(">i", 2) + b"\xff\xfe" + b"\x00\x01\x00", is_response=False),
     "query string is not valid UTF-8", False),
    ("bad-consistency", encode_frame(4, 3, 0x07, struct.pack(">i", 1) + b"x" + b"\x00\x63\x00", is_response=False),
     "consistency 0x0063 is not a consistency level", False),
]


@pytest.mark.parametrize("transport", ["tls", "plain"])
@pytest.mark.parametrize("frame, expected, fatal", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_frame_gets_protocol_error(transport, frame, expected, fatal, cql_server_factory, cql_ca):
    server = cql_server_factory(tls=transport == "tls")
    ctx = client_context(cql_ca) if transport == "tls" else None
    with RawClient(server.address, ssl_context=ctx) as bystander, RawClient(server.address, ssl_context=ctx) as client:
        assert isinstance(bystander.start(), Ready)
        assert isinstance(client.start(), Ready)

        client.send_raw(frame)
        header, answer = client.read()

        assert isinstance(answer, Error) and answer.code == ErrorCode.PROTOCOL_ERROR
        assert expected in answer.message
        assert header.header.stream in (3, 0)
        if fatal:
            assert client.closed_by_peer()
        else:  # the same connection goes on
            assert isinstance(client.request(Options(), stream=4), Supported)
        # and the node keeps serving its other connections
        assert isinstance(bystander.request(Query(query="SELECT key FROM system.local"), stream=9), RowsResult)

    incidents = server.activity.take_incidents()
    assert [type(i) for i in incidents] == [ProtocolIncident]
    assert expected in incidents[0].description and incidents[0].fatal == fatal


def test_unsupported_version_is_answered_in_a_readable_version(cql_server_factory):
    server = cql_server_factory(tls=False, protocol_versions=(3, 4))
    with RawClient(server.address) as client:
        client.send(Options(), version=5, stream=7)
        frame, answer = client.read()
    assert frame.header.version == 4 and frame.header.stream == 7
    assert isinstance(answer, Error)
    assert answer.message == "Invalid or unsupported protocol version (5); supported versions are (3/v3, 4/v4)"
    assert server.activity.take_incidents() == []  # negotiation, not an incident


def test_corrupt_v5_segment_is_refused(cql_server_factory):
    server = cql_server_factory(tls=False, compression=())
    with RawClient(server.address) as client:
        assert isinstance(client.start(version=5), Ready)
        client.segments = True
        client.send_raw(b"\x05\x00\x02\x00\x00\x00")  # a header whose CRC24 is wrong
        frame, answer = client.read()
        assert isinstance(answer, Error) and "CRC24 mismatch" in answer.message
        assert client.closed_by_peer()
    assert "CRC24 mismatch" in server.activity.take_incidents()[0].description


def test_incidents_fail_check_with_a_listing(cql_server_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.t").then_void()
    with RawClient(server.address) as client:
        client.start()
        client.request(Query(query="UPDATE ks.t SET v = 1 WHERE k = 2"), stream=5)
        client.send_raw(encode_frame(4, 6, 0x42, b"", is_response=False))
        client.read()
    with pytest.raises(UnexpectedActivityError) as caught:
        server.check()
    text = str(caught.value)
    assert "UnexpectedRequest" in text and "UPDATE ks.t SET v = 1 WHERE k = 2" in text
    assert "unknown opcode 0x42" in text
    assert "'SELECT * FROM ks.t' -> Void [always] (matched 0x)" in text
    server.activity.take_incidents()
    server.check()  # taken: nothing left to report


class _RaisingFault(Fault):
    def request_received(self, ctl, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom inside a fault")


def test_exception_inside_a_fault_surfaces_and_ends_only_that_connection(cql_server_factory):
    server = cql_server_factory(tls=False)
    with RawClient(server.address) as bystander:
        bystander.start()
        server.faults.add(_RaisingFault(connections=(2,)))  # the next connection only
        with RawClient(server.address) as client:
            client.send(Options())
            assert client.closed_by_peer()
        assert isinstance(bystander.request(Options(), stream=2), Supported)
    incidents = server.activity.take_incidents()
    assert [type(i) for i in incidents] == [ServerException]
    assert "RuntimeError: boom inside a fault" in incidents[0].description


def test_exception_inside_a_handler_surfaces(cql_server_factory):
    server = cql_server_factory(tls=False)

    def matcher(query: str) -> bool:
        raise ValueError("boom inside a priming matcher")

    server.when_query(matcher).then_void()
    with RawClient(server.address) as client:
        client.start()
        client.send(Query(query="SELECT key FROM system.local"), stream=3)
        assert client.closed_by_peer()
    incidents = server.activity.take_incidents()
    assert [type(i) for i in incidents] == [ServerException]
    assert "ValueError: boom inside a priming matcher" in incidents[0].description


def test_exception_in_a_loop_callback_surfaces(cql_server_factory):
    server = cql_server_factory(tls=False)
    done = threading.Event()

    def explode() -> None:
        done.set()
        raise KeyError("boom in a callback")

    server._loop.call_soon_threadsafe(explode)
    assert done.wait(5)
    entry = server.activity.wait_for(lambda e: isinstance(e, ServerException), timeout=5)
    assert "boom in a callback" in entry.description
    server.activity.take_incidents()


def test_runs_inside_the_callers_loop(cql_ca):
    async def scenario() -> None:
        async with CQLServer(tls=TLSConfig.create(cql_ca)) as server:
            reader, writer = await asyncio.open_connection(*server.address, ssl=client_context(cql_ca),
                                                           server_hostname="127.0.0.1")
            writer.write(request_frame(Options(), stream=1))
            header = await asyncio.wait_for(reader.readexactly(9), 5)
            assert header[0] == 0x84 and header[4] == 0x06  # a v4 SUPPORTED on stream 1
            writer.close()
            await writer.wait_closed()
        assert not server.running

    asyncio.run(scenario())


def test_stop_leaves_nothing_behind(cql_ca):
    before = {t.name for t in threading.enumerate()}
    server = CQLServer(tls=TLSConfig.create(cql_ca)).start()
    client = RawClient(server.address, ssl_context=client_context(cql_ca))
    client.start()
    server.stop()
    assert client.closed_by_peer()
    client.close()
    assert {t.name for t in threading.enumerate()} == before
    with pytest.raises(OSError):  # the port is closed
        socket.create_connection(server.address, timeout=1).close()


def test_busy_port_is_a_clear_error():
    with CQLServer() as first:
        second = CQLServer(port=first.port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{first.port}"):
            second.start()


@pytest.mark.parametrize("kwargs, message", [
    ({"host": "localhost"}, "host must be an IP address"),
    ({"port": 70000}, "port must be an integer in"),
    ({"protocol_versions": (2, 3)}, "protocol_versions must be among 3, 4 and 5"),
    ({"tls": "yes"}, "tls must be a fakecql.TLSConfig"),
    ({"compression": ("snappy",)}, "unknown compression 'snappy'"),
])
def test_bad_options_are_refused(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CQLServer(**kwargs)


def test_ipv6_loopback(cql_server_factory, cql_ca):
    server = cql_server_factory(host="::1")
    with RawClient(server.address, ssl_context=client_context(cql_ca, check_hostname=True)) as client:
        assert isinstance(client.start(), Ready)
        rows = client.request(Query(query="SELECT rpc_address FROM system.local"), stream=2)
    assert isinstance(rows, RowsResult) and rows.rows[0][0] == socket.inet_pton(socket.AF_INET6, "::1")


def test_leftovers_after_stop(cql_ca):
    server = CQLServer(tls=TLSConfig.create(cql_ca)).start()
    client = RawClient(server.address, ssl_context=client_context(cql_ca))
    client.start()
    running = server.leftovers()
    assert "still listening: stop() was not called" in running
    assert "connection 1 still open (0 timers)" in running  # the handshake timer went with the handshake
    server.stop()
    client.close()
    assert server.leftovers() == []


# -- large requests, answered on the worker thread -----------------------------------

LARGE = "SELECT key FROM system.local" + " " * 100  # over offload_over=64 below


def test_large_request_waits_on_the_worker_and_nobody_else_does(cql_server_factory):
    """While the worker thread is busy with one connection's large request, the
    node answers other connections, and that connection's next request waits
    for its answer (answers keep their order)."""
    server = cql_server_factory(tls=False, limits=Limits(offload_over=64))
    entered, release = threading.Event(), threading.Event()

    def blocking(query: str) -> bool:
        if query.startswith("SELECT key FROM system.local") and threading.current_thread().name.startswith("fakecql-worker"):
            entered.set()
            assert release.wait(10)
        return False

    server.when_query(blocking).then_void()
    with RawClient(server.address) as bystander, RawClient(server.address) as client:
        bystander.start()
        client.start()
        client.send(Query(query=LARGE), stream=3)
        client.send(Options(), stream=4)  # small: on the loop, but after stream 3's answer
        assert entered.wait(10)
        assert isinstance(bystander.request(Query(query="SELECT key FROM system.local"), stream=2), RowsResult)
        release.set()
        first, second = client.read_frame(), client.read_frame()
        assert (first.header.stream, second.header.stream) == (3, 4)


def test_exception_on_the_worker_thread_surfaces(cql_server_factory):
    server = cql_server_factory(tls=False, limits=Limits(offload_over=64))

    def matcher(query: str) -> bool:
        raise ValueError("boom on the worker thread")

    server.when_query(matcher).then_void()
    with RawClient(server.address) as bystander, RawClient(server.address) as client:
        bystander.start()
        client.start()
        client.send(Query(query=LARGE), stream=3)
        assert client.closed_by_peer()
        assert isinstance(bystander.request(Options(), stream=2), Supported)
    incidents = server.activity.take_incidents()
    assert [type(i) for i in incidents] == [ServerException]
    assert "ValueError: boom on the worker thread" in incidents[0].description


def test_stop_waits_for_the_worker_and_leaves_no_thread(cql_ca):
    before = {t.name for t in threading.enumerate()}
    server = CQLServer(limits=Limits(offload_over=64)).start()
    with RawClient(server.address) as client:
        client.start()
        assert isinstance(client.request(Query(query=LARGE), stream=3), RowsResult)
    server.stop()
    assert server.leftovers() == []
    assert {t.name for t in threading.enumerate()} == before


def test_dropped_incidents_still_fail_the_check(cql_server_factory):
    server = cql_server_factory(tls=False, activity=ActivityLog(max_incidents=1))
    with RawClient(server.address) as client:
        client.start()
        for stream in (5, 6, 7):
            client.request(Query(query="UPDATE ks.t SET v = 1 WHERE k = 2"), stream=stream)
    with pytest.raises(UnexpectedActivityError, match="and 2 more, dropped from the log"):
        server.check()
    assert len(server.activity.take_incidents()) == 1
    server.check()
