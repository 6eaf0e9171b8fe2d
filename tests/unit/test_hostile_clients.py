# Hostile clients against a running node, with bare sockets (no driver):
# random bytes, abandoned and stalled TLS handshakes, hundreds of half-open
# connections, huge declared lengths, floods on one connection, and a
# client that floods without ever reading.
#
# Every scenario checks the node's promise: it answers a ProtocolError where
# the protocol allows, closes the offending connection, keeps serving every
# other connection (a bystander client asks it something while or after the
# hostile one acts), and reports each incident in its log. Tests take the
# incidents they provoke with take_incidents(), so the factory's teardown
# check still catches anything they did not expect.
#
# Rules: loopback only; every socket is closed and every node stopped by the
# test or its fixture; every wait has a deadline.
from __future__ import annotations

import asyncio
import random
import socket
import ssl
import struct
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest

from fakecql import (
    ConnectionClosed,
    Limits,
    ConnectionOpened,
    FrameReceived,
    HandshakeCompleted,
    HandshakeFailed,
    ProtocolIncident,
    client_context,
)
from fakecql.activity import TLSIncident
from fakecql.protocol.compression import Lz4
from fakecql.protocol.connection import ProtocolViolation, ServerConnection
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import Error, Options, Query, Ready, RowsResult, Startup, Supported, decode_message

from ..rawcql import RawClient, request_frame
from ..waiting import eventually

HEADER = struct.Struct(">BBhBi")
SYSTEM_LOCAL = Query(query="SELECT key FROM system.local")


# -- helpers ----------------------------------------------------------------------

def _context(server: Any, cql_ca: Any) -> Optional[ssl.SSLContext]:
    return client_context(cql_ca) if server.is_tls else None


def _serves(client: RawClient, stream: int = 9) -> bool:
    """The node answers this (bystander) connection."""
    return isinstance(client.request(SYSTEM_LOCAL, stream=stream), RowsResult)


def _number(server: Any, sock: socket.socket) -> int:
    """The node's number for the connection whose client end is `sock`."""
    port = sock.getsockname()[1]
    entry = server.activity.wait_for(lambda e: isinstance(e, ConnectionOpened) and e.peer[1] == port, timeout=5)
    return entry.connection


def _wait_until(predicate: Callable[[], bool], what: str, timeout: float = 10) -> None:
    assert eventually(predicate, timeout, interval=0.02), f"{what}: not within {timeout} s"


def _connection_count(server: Any) -> int:
    return _in_loop(server, server.connection_count)


def _closed_entry(server: Any, number: int, timeout: float = 5) -> ConnectionClosed:
    return server.activity.wait_for(lambda e: isinstance(e, ConnectionClosed) and e.connection == number,
                                    timeout=timeout)


def _read_until_closed(
    sock: socket.socket, timeout: float = 5.0, until: Callable[[bytes], bool] = lambda data: False
) -> Tuple[bytes, bool]:
    """Everything the node sends, and whether it closed (EOF or reset) within
    `timeout`; stop early, the connection still open, once `until(data)` holds."""
    deadline = time.monotonic() + timeout
    chunks = []
    while not until(b"".join(chunks)):
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b"".join(chunks), True
        except socket.timeout:
            return b"".join(chunks), False
        if not data:
            return b"".join(chunks), True
        chunks.append(data)
    return b"".join(chunks), False


def _whole_frames(data: bytes) -> int:
    """How many whole response frames `data` starts with (v1/v2 headers are 8 bytes, v3+ 9)."""
    count = pos = 0
    while len(data) - pos >= 9:
        size = 8 if data[pos] & 0x7F < 3 else 9
        end = pos + size + int.from_bytes(data[pos + size - 4 : pos + size], "big")
        if end > len(data):
            break
        count, pos = count + 1, end
    return count


def _error_frames(data: bytes) -> List[Tuple[int, int, str]]:
    """(version, code, message) of each frame in `data`, all of which must be ERRORs.
    A v1/v2 header (the node answers v1/v2 clients in their version) is 8 bytes, v3+ 9."""
    errors = []
    pos = 0
    while pos < len(data):
        version = data[pos] & 0x7F
        size = 8 if version < 3 else 9
        opcode = data[pos + size - 5]
        length = int.from_bytes(data[pos + size - 4 : pos + size], "big")
        body = data[pos + size : pos + size + length]
        assert data[pos] & 0x80 and opcode == 0x00 and len(body) == length, \
            f"not a whole ERROR response frame: [{data[pos:pos + size].hex(' ')}]"
        code, text_length = struct.unpack_from(">iH", body)
        errors.append((version, code, body[6 : 6 + text_length].decode()))
        pos += size + length
    return errors


def _client_hello(ctx: ssl.SSLContext) -> bytes:
    """The first flight of a real TLS client (its ClientHello), from a client SSLObject over memory BIOs."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = outgoing.read()
    assert hello[0] == 0x16 and len(hello) > 100, hello[:16].hex()  # a handshake record
    return hello


def _in_loop(server: Any, function: Callable[[], Any]) -> Any:
    """Run `function` on the node's loop thread (to read its internals) and return its result."""
    async def call() -> Any:
        return function()
    return asyncio.run_coroutine_threadsafe(call(), server._loop).result(5)


def _node_side(server: Any, sockname: Tuple[Any, ...]) -> Any:
    """The node's connection object for the client socket bound to `sockname` (call in the loop)."""
    for conn in server._connections:
        peer = conn.transport.get_extra_info("peername")
        if peer is not None and peer[1] == sockname[1]:
            return conn
    raise LookupError(f"the node has no connection from {sockname}")


@pytest.fixture
def clients() -> Iterator[List[Any]]:
    """Sockets and RawClients a test opens in numbers; all closed at teardown."""
    opened: List[Any] = []
    yield opened
    for client in opened:
        client.close()


# -- random bytes ---------------------------------------------------------------------

SEEDS = range(40)
STARTUP = Startup(options={"CQL_VERSION": "3.0.0"})


def _framing_verdict(garbage: bytes) -> Tuple[int, bool]:
    """What the node's own (sans-IO, separately tested) framing makes of `garbage`
    after OPTIONS and STARTUP: (how many violations, is one fatal). The shell must
    then answer each, and close exactly when one is fatal; a random header may
    instead declare a body longer than what follows, which the node waits for."""
    framing = ServerConnection(max_frame_body=Limits().max_frame_body)  # the node's default limit
    framing.receive_data(request_frame(Options()) + request_frame(STARTUP))
    events = framing.receive_data(garbage)
    assert all(isinstance(e, ProtocolViolation) for e in events), events  # no random valid request
    return len(events), any(e.fatal for e in events)


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_random_bytes_after_a_good_handshake(transport, cql_server_factory, cql_ca):
    """Random bytes where a frame should be, after STARTUP (through TLS on a TLS node):
    every violation is answered with a ProtocolError and logged; the node closes
    the connection on a fatal one, and serves the bystander throughout."""
    server = cql_server_factory(tls=transport == "tls", record_frames=False)
    ctx = _context(server, cql_ca)
    verdicts = []
    with RawClient(server.address, ssl_context=ctx) as bystander:
        assert isinstance(bystander.start(), Ready)
        for seed in SEEDS:
            garbage = random.Random(seed).getrandbits(8 * 4096).to_bytes(4096, "big")
            violations, fatal = _framing_verdict(garbage)
            verdicts.append(fatal)
            with RawClient(server.address, ssl_context=ctx) as client:
                assert isinstance(client.start(), Ready)
                number = _number(server, client.sock)
                client.send_raw(garbage)
                if fatal:
                    answers, closed = _read_until_closed(client.sock)
                else:  # every answer, then the node keeps waiting for the rest of a frame
                    answers, _ = _read_until_closed(client.sock, until=lambda d: _whole_frames(d) >= violations)
                    closed = _read_until_closed(client.sock, timeout=0.3)[1]

            errors = _error_frames(answers)
            assert closed == fatal, f"seed {seed}: closed={closed}, expected {fatal}"
            assert [code for _, code, _ in errors] == [ErrorCode.PROTOCOL_ERROR] * violations, (seed, errors)
            incidents = server.activity.take_incidents()
            assert all(isinstance(i, ProtocolIncident) and i.connection == number for i in incidents)
            assert [i.description for i in incidents] == [text for _, _, text in errors]
            assert [i.fatal for i in incidents][-1:] == [fatal]
            closing = _closed_entry(server, number).reason
            assert closing.startswith("closed by the node" if fatal else "closed by the client"), closing
            assert _serves(bystander, stream=seed)
    assert verdicts.count(True) > 30  # most random bytes break the framing at once


@pytest.mark.parametrize("seed", range(4))
def test_random_bytes_under_tls_after_the_handshake(seed, cql_server, cql_ca):
    """Random bytes on the TCP stream of an established TLS connection (not inside
    records): the node sends its alert, closes, and logs a TLSIncident."""
    ctx = client_context(cql_ca)
    with RawClient(cql_server.address, ssl_context=ctx) as bystander:
        bystander.start()
        plain = socket.create_connection(cql_server.address, timeout=5)
        raw = plain.dup()  # the same TCP connection, under the TLS layer
        try:
            with RawClient(cql_server.address, ssl_context=ctx, sock=plain) as client:
                assert isinstance(client.start(), Ready)
                number = _number(cql_server, raw)
                raw.sendall(random.Random(seed).getrandbits(8 * 3000).to_bytes(3000, "big"))
                alert, closed = _read_until_closed(raw)
        finally:
            raw.close()
        assert closed
        assert alert[:1] in (b"\x15", b"\x17")  # an alert record (TLS 1.3 hides it as application data)
        incidents = cql_server.activity.take_incidents()
        assert [type(i) for i in incidents] == [TLSIncident]
        assert incidents[0].connection == number and "TLS error after the handshake" in incidents[0].description
        assert "closed by the node" in _closed_entry(cql_server, number).reason
        assert _serves(bystander)


@pytest.mark.parametrize("seed", range(6))
def test_random_bytes_instead_of_a_client_hello(seed, cql_server_factory, cql_ca):
    """Random bytes as a TLS node's first input: the handshake fails, the node
    closes (at once, or at the handshake timeout if they look like a record)."""
    server = cql_server_factory(handshake_timeout=2.0)
    with RawClient(server.address, ssl_context=client_context(cql_ca)) as bystander:
        bystander.start()
        with socket.create_connection(server.address, timeout=5) as sock:
            number = _number(server, sock)
            sock.sendall(random.Random(seed).getrandbits(8 * 2000).to_bytes(2000, "big"))
            _, closed = _read_until_closed(sock, timeout=5)
        assert closed
        failure = server.activity.wait_for(lambda e: isinstance(e, HandshakeFailed) and e.connection == number)
        assert failure.reason
        assert not server.activity.of_type(HandshakeCompleted)[1:]  # only the bystander's
        assert "closed by the node" in _closed_entry(server, number).reason
        assert _serves(bystander)
    assert server.activity.take_incidents() == []  # a failed handshake is a HandshakeFailed entry


# -- abandoned and stalled TLS handshakes -----------------------------------------------

@pytest.mark.parametrize("how", ["close", "half-close"])
def test_handshake_abandoned_after_the_client_hello(how, cql_server, cql_ca):
    ctx = client_context(cql_ca)
    with RawClient(cql_server.address, ssl_context=ctx) as bystander:
        bystander.start()
        with socket.create_connection(cql_server.address, timeout=5) as sock:
            number = _number(cql_server, sock)
            sock.sendall(_client_hello(ctx))
            assert sock.recv(5)[:1] == b"\x16"  # the node answered with its ServerHello flight
            if how == "half-close":
                sock.shutdown(socket.SHUT_WR)
                _, closed = _read_until_closed(sock)
                assert closed
        failure = cql_server.activity.wait_for(lambda e: isinstance(e, HandshakeFailed) and e.connection == number)
        assert failure.reason == "the client closed the connection during the TLS handshake"
        assert "closed by the client" in _closed_entry(cql_server, number).reason
        assert _serves(bystander)
    assert cql_server.activity.take_incidents() == []


def test_handshake_stalled_after_the_client_hello_times_out(cql_server_factory, cql_ca):
    server = cql_server_factory(handshake_timeout=0.5)
    ctx = client_context(cql_ca)
    with socket.create_connection(server.address, timeout=5) as sock:
        number = _number(server, sock)
        sock.sendall(_client_hello(ctx))
        started = time.monotonic()
        with RawClient(server.address, ssl_context=ctx) as bystander:  # served during the stall
            assert isinstance(bystander.start(), Ready) and _serves(bystander)
        _, closed = _read_until_closed(sock, timeout=5)
        waited = time.monotonic() - started
    assert closed and 0.3 < waited < 4, waited
    failure = server.activity.wait_for(lambda e: isinstance(e, HandshakeFailed) and e.connection == number)
    assert failure.reason == "no complete TLS handshake within 0.5 s"
    assert "closed by the node" in _closed_entry(server, number).reason
    assert server.activity.take_incidents() == []


# -- half-open connections (slowloris) ------------------------------------------------

SLOW = 300


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_hundreds_of_half_open_connections(transport, cql_server_factory, cql_ca, clients):
    """300 connections each send part of something and stall: a good client is
    still answered; stalled TLS handshakes end at the handshake timeout; the
    rest are logged, with their incomplete frames, when they close."""
    server = cql_server_factory(tls=transport == "tls", handshake_timeout=1.5, record_frames=False)
    ctx = _context(server, cql_ca)
    # TLS: a third stall in the middle of their ClientHello; the others (all of them
    # on a plain node) send 4 bytes of a frame header, half of them after STARTUP
    mid_hello = SLOW // 3 if ctx is not None else 0
    partial_header = request_frame(Options(), stream=5)[:4]
    for i in range(SLOW - mid_hello):
        client = RawClient(server.address, ssl_context=ctx)
        clients.append(client)
        if i % 2:  # half of them after STARTUP, half as their very first bytes
            assert isinstance(client.start(), Ready)
        client.send_raw(partial_header)
    hello = _client_hello(ctx) if ctx is not None else b""
    for _ in range(mid_hello):
        sock = socket.create_connection(server.address, timeout=5)
        clients.append(sock)
        sock.sendall(hello[:40])
    _wait_until(lambda: _connection_count(server) == SLOW, f"the node accepted all {SLOW} connections")

    with RawClient(server.address, ssl_context=ctx, timeout=2) as good:
        assert isinstance(good.start(), Ready)
        for stream in range(20):
            assert _serves(good, stream=stream)
        if mid_hello:
            _wait_until(lambda: len(server.activity.of_type(HandshakeFailed)) >= mid_hello,
                        "the handshake timeout ended the stalled handshakes")
            failures = server.activity.of_type(HandshakeFailed)
            assert len(failures) == mid_hello
            assert all(f.reason == "no complete TLS handshake within 1.5 s" for f in failures)
            assert _serves(good)
    for client in clients:
        client.close()
    _wait_until(lambda: _connection_count(server) == 0, "the node saw every connection close")
    reasons = [e.reason for e in server.activity.of_type(ConnectionClosed)]
    assert sum("with 4 bytes of an incomplete frame" in r for r in reasons) == SLOW - mid_hello
    assert server.activity.take_incidents() == []


# -- huge declared lengths ------------------------------------------------------------

def _header(length: int, *, opcode: int = 0x07, stream: int = 3, flags: int = 0) -> bytes:
    return HEADER.pack(4, flags, stream, opcode, length)


@pytest.mark.parametrize("transport", ["tls", "plain"])
@pytest.mark.parametrize("declared, limit, expected", [
    (0x7FFFFFFF, None, "frame body length 2147483647 exceeds the limit of 16777216 bytes"),
    (1024 * 1024, 64 * 1024, "frame body length 1048576 exceeds the limit of 65536 bytes"),
], ids=["int32-max", "over-a-lowered-limit"])
def test_frame_length_over_the_limit(transport, declared, limit, expected, cql_server_factory, cql_ca):
    options = {"max_frame_body": limit} if limit else {}
    server = cql_server_factory(tls=transport == "tls", **options)
    ctx = _context(server, cql_ca)
    with RawClient(server.address, ssl_context=ctx) as bystander, RawClient(server.address, ssl_context=ctx) as client:
        bystander.start()
        client.start()
        number = _number(server, client.sock)
        client.send_raw(_header(declared) + b"\x00" * 100)
        frame, answer = client.read()
        assert isinstance(answer, Error) and answer.code == ErrorCode.PROTOCOL_ERROR
        assert answer.message.startswith(expected) and frame.header.stream == 3
        assert client.closed_by_peer()
        assert _serves(bystander)
    incidents = server.activity.take_incidents()
    assert [(type(i), i.connection, i.fatal) for i in incidents] == [(ProtocolIncident, number, True)]
    assert expected in incidents[0].description


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_huge_frame_within_the_limit_is_not_allocated_up_front(transport, cql_server_factory, cql_ca):
    """A header declaring 15 MiB (allowed) and 1 KiB of body, then a stall: the
    node holds only what arrived, keeps serving others, and when the client gives
    up it logs the incomplete frame. Nothing to answer: the frame never came."""
    server = cql_server_factory(tls=transport == "tls")
    ctx = _context(server, cql_ca)
    with RawClient(server.address, ssl_context=ctx) as bystander:
        bystander.start()
        with RawClient(server.address, ssl_context=ctx) as client:
            client.start()
            number = _number(server, client.sock)
            client.send_raw(_header(15 * 1024 * 1024) + b"x" * 1024)
            sockname = client.sock.getsockname()
            _wait_until(lambda: _in_loop(server, lambda: _node_side(server, sockname).cql.pending_input) >= 9 + 1024,
                        "the node read the partial frame")
            assert _in_loop(server, lambda: _node_side(server, sockname).cql.pending_input) == 9 + 1024
            assert _serves(bystander)
            assert _read_until_closed(client.sock, timeout=0.3) == (b"", False)  # no answer: the frame is still coming
        assert "with 1033 bytes of an incomplete frame" in _closed_entry(server, number).reason
        assert _serves(bystander)
    assert server.activity.take_incidents() == []


def test_huge_lengths_inside_a_body(cql_server_factory):
    """Lengths inside a sound frame that point past its end: a ProtocolError on that
    stream (nothing allocated for them), and the connection goes on."""
    server = cql_server_factory(tls=False)
    cases = [
        (struct.pack(">i", 0x7FFFFFFF) + b"SELECT k", "query string needs 2147483647 bytes"),
        (struct.pack(">i", 8) + b"SELECT k" + struct.pack(">HBHi", 1, 0x01, 2, 0x7FFFFFF0),
         "needs 2147483632 bytes"),
        (struct.pack(">i", 8) + b"SELECT k" + struct.pack(">HBH", 1, 0x01, 0xFFFF), "truncated QUERY body"),
    ]
    with RawClient(server.address) as client:
        client.start()
        for stream, (body, expected) in enumerate(cases, start=1):
            client.send_raw(_header(len(body), stream=stream) + body)
            frame, answer = client.read()
            assert isinstance(answer, Error) and answer.code == ErrorCode.PROTOCOL_ERROR, answer
            assert expected in answer.message and frame.header.stream == stream
        assert _serves(client)  # the same connection goes on
    incidents = server.activity.take_incidents()
    assert [(type(i), i.fatal) for i in incidents] == [(ProtocolIncident, False)] * len(cases)


def test_compressed_body_declaring_a_huge_size(cql_server_factory):
    """An LZ4 body whose 4-byte prefix declares 2 GiB uncompressed: refused before
    anything is allocated for it; the connection goes on."""
    server = cql_server_factory(tls=False)
    lz4 = Lz4()

    def read(client: RawClient) -> Any:
        frame = client.read_frame()
        body = lz4.decompress_body(frame.body, 1 << 20) if frame.header.flags & 0x01 else frame.body
        return frame, decode_message(frame.header.opcode, body, 4, is_response=True)

    with RawClient(server.address) as client:
        client.request(Options())
        assert isinstance(client.request(Startup(options={"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"})), Ready)
        body = struct.pack(">i", 0x7FFFFFFF) + b"\x00" * 16
        client.send_raw(_header(len(body), flags=0x01, stream=4) + body)
        frame, answer = read(client)
        assert isinstance(answer, Error) and answer.code == ErrorCode.PROTOCOL_ERROR
        assert "declares 2147483647 uncompressed bytes" in answer.message and frame.header.stream == 4
        client.send(Options(), stream=5)
        assert isinstance(read(client)[1], Supported)
    incidents = server.activity.take_incidents()
    assert [(type(i), i.fatal) for i in incidents] == [(ProtocolIncident, False)]


# -- floods ------------------------------------------------------------------------------

FLOOD = 5000
STREAMS = 11


async def _read_responses(reader: asyncio.StreamReader, count: int) -> List[Tuple[int, Any]]:
    """(stream, message) of the next `count` v4 responses, uncompressed; each read within 10 s."""
    buffer = bytearray()
    responses: List[Tuple[int, Any]] = []
    while True:
        while len(buffer) >= 9 and len(responses) < count:
            version, _, stream, opcode, length = HEADER.unpack_from(buffer)
            if len(buffer) < 9 + length:
                break
            responses.append((stream, decode_message(opcode, bytes(buffer[9 : 9 + length]), version & 0x7F,
                                                     is_response=True)))
            del buffer[: 9 + length]
        if len(responses) == count:
            assert not buffer, f"{len(buffer)} bytes more than {count} responses"
            return responses
        data = await asyncio.wait_for(reader.read(1 << 16), 10)
        if not data:
            raise EOFError(f"the node closed the connection after {len(responses)} of {count} responses")
        buffer += data


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_flood_of_pipelined_requests_reusing_stream_ids(transport, cql_server_factory, cql_ca):
    """5,000 requests in one burst on streams 0..10, each reused ~450 times: every
    one is answered, in order on each stream (each answer names its request)."""
    server = cql_server_factory(tls=transport == "tls")
    ctx = _context(server, cql_ca)
    burst = b"".join(request_frame(Query(query=f"USE r{i}"), stream=i % STREAMS) for i in range(FLOOD))

    async def flood() -> List[List[str]]:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            *server.address, ssl=ctx, server_hostname="127.0.0.1" if ctx else None), 5)
        try:
            writer.write(request_frame(STARTUP))
            assert isinstance((await _read_responses(reader, 1))[0][1], Ready)
            writer.write(burst)  # the transport sends it while we read the answers
            answers: List[List[str]] = [[] for _ in range(STREAMS)]
            for stream, answer in await _read_responses(reader, FLOOD):
                assert isinstance(answer, Error) and answer.code == ErrorCode.INVALID, answer
                answers[stream].append(answer.message)
            writer.write(request_frame(SYSTEM_LOCAL, stream=12))
            assert isinstance((await _read_responses(reader, 1))[0][1], RowsResult)
            return answers
        finally:
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 5)

    answers = asyncio.run(flood())
    for stream in range(STREAMS):
        assert answers[stream] == [f"Keyspace 'r{i}' does not exist" for i in range(stream, FLOOD, STREAMS)]
    assert len(server.activity.of_type(FrameReceived)) == 1 + FLOOD + 1
    assert server.activity.take_incidents() == []


HEAVY = Query(query="SELECT * FROM system_schema.columns")  # ~40 bytes in, ~18 KiB out


def _shrink_buffers(server: Any, sockname: Tuple[Any, ...]) -> None:
    """Small kernel buffers on the node's side, so backpressure shows after kilobytes, not megabytes."""
    def shrink() -> None:
        sock = _node_side(server, sockname).transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    _in_loop(server, shrink)


def _held_for(server: Any, sockname: Tuple[Any, ...]) -> Tuple[int, int, bool, bool]:
    """(bytes of answers buffered, requests waiting, reading?, write side paused?) for a client."""
    def look() -> Tuple[int, int, bool, bool]:
        conn = _node_side(server, sockname)
        tls_out = conn.tls.outgoing_pending if conn.tls is not None else 0
        return (conn.transport.get_write_buffer_size() + tls_out, len(conn.backlog),
                conn.transport.is_reading(), conn._write_paused)
    return _in_loop(server, look)


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_client_that_floods_and_never_reads(transport, cql_server_factory, cql_ca):
    """A client writes requests with large answers as fast as it can and reads
    nothing: the node stops reading it (the client's writes stall), holds a
    bounded amount for it, serves the others meanwhile, and frees it all when
    the client goes."""
    server = cql_server_factory(tls=transport == "tls", record_frames=False)
    ctx = _context(server, cql_ca)
    frame = request_frame(HEAVY, stream=7)
    chunk = frame * (16384 // len(frame))
    cap = 64 * 1024 * 1024  # far more than any socket buffers: reaching it means the node never stopped reading

    async def flood() -> Tuple[Any, ...]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.setblocking(False)
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, server.address), 5)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            sock=sock, ssl=ctx, server_hostname="127.0.0.1" if ctx else None), 5)
        try:
            writer.write(request_frame(STARTUP))
            header = await asyncio.wait_for(reader.readexactly(9), 5)
            assert header[4] == 0x02  # READY; from here on the client reads nothing
            sockname = writer.get_extra_info("sockname")
            _shrink_buffers(server, sockname)
            sent = 0
            while sent < cap:
                writer.write(chunk)
                sent += len(chunk)
                try:
                    await asyncio.wait_for(writer.drain(), 1.0)
                except asyncio.TimeoutError:
                    break  # nothing left the client for a second: the node stopped reading
            assert sent < cap, "the node read 64 MiB from a client that reads nothing"

            buffered, waiting, reading, paused = _held_for(server, sockname)
            assert paused and not reading
            assert buffered < 1024 * 1024, buffered
            assert waiting < 256 * 1024 // len(frame) + 1, waiting  # at most one read's worth of requests
            with RawClient(server.address, ssl_context=ctx, timeout=3) as bystander:
                assert isinstance(bystander.start(), Ready)
                started = time.monotonic()
                for stream in range(10):
                    assert _serves(bystander, stream=stream)
                assert time.monotonic() - started < 3
            await asyncio.sleep(0.5)
            assert _held_for(server, sockname)[:2] == (buffered, waiting)  # nothing grows meanwhile
            return sockname
        finally:
            writer.transport.abort()  # with unread answers: a reset

    sockname = asyncio.run(flood())
    opened = next(e for e in server.activity.of_type(ConnectionOpened) if e.peer[1] == sockname[1])
    closed = _closed_entry(server, opened.connection)
    assert "closed by the client" in closed.reason and "requests unanswered" in closed.reason
    _wait_until(lambda: _connection_count(server) == 0, "the node saw the flooder go")
    assert server.activity.take_incidents() == []


@pytest.mark.parametrize("transport", ["tls", "plain"])
def test_client_that_stops_reading_then_reads_gets_every_answer(transport, cql_server_factory, cql_ca):
    """400 requests for ~7 MiB of answers, not read until the node has stopped
    reading the client; then read: every answer arrives, in order per stream."""
    server = cql_server_factory(tls=transport == "tls", record_frames=False)
    ctx = _context(server, cql_ca)
    count = 400
    burst = b"".join(request_frame(HEAVY, stream=i % STREAMS) for i in range(count))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.settimeout(5)
    sock.connect(server.address)
    client = RawClient(server.address, ssl_context=ctx, timeout=10, sock=sock)
    with client:
        assert isinstance(client.start(), Ready)
        sockname = client.sock.getsockname()
        _shrink_buffers(server, sockname)
        client.send_raw(burst)  # ~18 KB: it fits in the socket buffers, the answers do not
        _wait_until(lambda: _held_for(server, sockname)[3], "the node had to wait for this client to read")
        streams = []
        for _ in range(count):
            frame, answer = client.read()
            assert isinstance(answer, RowsResult)
            streams.append(frame.header.stream)
        assert streams == [i % STREAMS for i in range(count)]
        assert _held_for(server, sockname)[:3] == (0, 0, True)  # reading again, nothing held
    assert server.activity.take_incidents() == []
