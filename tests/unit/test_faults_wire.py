# The byte-level faults, proven on the wire by the client's own sockets: the
# bytes a raw client counts before its socket raises ConnectionResetError (a
# RST), the TLS records it reads through its own MemoryBIOs (what was cut,
# where, and whether a close_notify came), EOF seen while its own sends still
# succeed (a half-close), nothing read within a bounded wait (a blackhole),
# and round trips, transfer times and close times measured by the client with
# stated tolerances (latency, bandwidth, slow close). fakecql's own log is
# only checked beside those proofs, never instead of them.
#
# Tolerances: timers fire no earlier than asked (minus the loop's clock
# resolution), so a delay is checked with a small slack below (EARLY) and a
# generous one above (LATE: CI is a loaded 2-core machine).
from __future__ import annotations

import socket
import ssl
import time
from typing import Callable, List, Optional, Tuple

import pytest

from fakecql import FaultApplied, FrameReceived, ServerException, client_context
from fakecql.faults import (
    Bandwidth,
    Blackhole,
    Fault,
    HalfClose,
    Latency,
    ResetAtByte,
    SlowClose,
    VERBS,
)
from fakecql.faults import wire
from fakecql.protocol.frames import FrameReader
from fakecql.protocol.messages import (
    Message,
    Options,
    Query,
    Ready,
    RowsResult,
    Startup,
    Supported,
    decode_message,
)

from ..rawcql import RawClient, request_frame
from ..waiting import eventually, wait_until

EARLY = 0.02  # seconds a delay may seem short by (timer and clock granularity)
LATE = 1.5  # seconds a delay may run long by on a loaded machine

LOCAL = "SELECT release_version FROM system.local"


# -- a TLS client whose every ciphertext byte the test sees --------------------------------------
class BioClient:
    """A TLS client over a blocking socket through MemoryBIOs: the test reads the
    raw socket itself, so it counts ciphertext, sees TLS record headers, and
    gets the socket's own error (ConnectionResetError for a RST), whatever the
    ssl module would make of it."""

    def __init__(self, address: Tuple[str, int], context: ssl.SSLContext, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(address, timeout=timeout)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=address[0])
        self.frames = FrameReader(versions=(4,), expect_response=True)
        self.peer_closed = False  # close_notify read
        self.handshake_bytes = 0  # ciphertext read until the handshake completed
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise EOFError("the node closed the connection during the handshake")
                self.handshake_bytes += len(data)
                self.incoming.write(data)
        self._flush()

    def _flush(self) -> None:
        out = self.outgoing.read()
        if out:
            self.sock.sendall(out)

    def send(self, message: Message, stream: int = 0) -> None:
        self.tls.write(request_frame(message, stream=stream))
        self._flush()

    def feed(self, ciphertext: bytes) -> bytes:
        """Give received bytes to TLS; the plaintext they complete."""
        self.incoming.write(ciphertext)
        chunks = []
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                self.peer_closed = True
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def request(self, message: Message, stream: int = 0) -> Message:
        self.send(message, stream)
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                return decode_message(frame.header.opcode, frame.body, frame.header.version, is_response=True)
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the node closed the connection")
            self.frames.feed(self.feed(data))

    def start(self) -> Message:
        self.request(Options())
        return self.request(Startup(options={"CQL_VERSION": "3.0.0"}))

    def close(self) -> None:
        self.sock.close()


def read_until_end(sock: socket.socket, timeout: float = 5.0) -> Tuple[bytes, Optional[BaseException]]:
    """Everything `sock` reads until EOF (error None) or an error (returned), within `timeout`."""
    got = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the connection neither ended nor failed within {timeout} s ({len(got)} bytes read)")
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError as exc:
            return bytes(got), exc
        if not data:
            return bytes(got), None
        got += data


def record_headers(data: bytes) -> List[Tuple[int, int]]:
    """(content type, length) of each TLS record header in `data`, the last maybe cut."""
    headers = []
    pos = 0
    while pos + 5 <= len(data):
        headers.append((data[pos], int.from_bytes(data[pos + 3:pos + 5], "big")))
        pos += 5 + headers[-1][1]
    return headers


def answer_bytes(client: RawClient, query: str, stream: int) -> bytes:
    """The raw bytes of the node's answer to `query` on a plain connection (one v4 frame)."""
    client.send(Query(query=query), stream=stream)
    got = b""
    while len(got) < 9 or len(got) < 9 + int.from_bytes(got[5:9], "big"):
        data = client.sock.recv(65536)
        assert data, "the node closed the connection"
        got += data
    return got


def round_trip(client: RawClient, stream: int = 1) -> float:
    started = time.monotonic()
    assert isinstance(client.request(Options(), stream=stream), Supported)
    return time.monotonic() - started


# -- reset at a byte offset ---------------------------------------------------------------------
@pytest.mark.parametrize("offset", [0, 4, 9, 30, 100_000])  # nothing, mid-header, the header, mid-body, beyond
def test_reset_at_byte_cuts_the_answer_to_the_first_query_on_plain_tcp(offset, cql_plain_server):
    server = cql_plain_server
    server.faults.reset_at_byte(offset, connections=2)  # connection 1 shows the whole answer
    with RawClient(server.address) as whole:
        whole.start()
        full = answer_bytes(whole, LOCAL, stream=3)
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)  # OPTIONS and STARTUP are not aimed at
        client.send(Query(query=LOCAL), stream=3)
        got, error = read_until_end(client.sock)
    assert got == full[:offset]  # exactly `offset` bytes (the whole answer when it is shorter)
    assert isinstance(error, ConnectionResetError), error
    (applied,) = server.activity.of_type(FaultApplied)
    assert applied.connection == 2 and f"after {min(offset, len(full))} of the {len(full)} bytes" in applied.detail


def test_reset_at_byte_sends_earlier_answers_of_the_turn_whole(cql_plain_server):
    cql_plain_server.faults.reset_at_byte(12, opcode="QUERY")
    with RawClient(cql_plain_server.address) as client:
        client.start()
        # Two requests in one write: the node answers both in one turn; the OPTIONS answer goes whole.
        client.send_raw(request_frame(Options(), stream=1) + request_frame(Query(query=LOCAL), stream=2))
        got, error = read_until_end(client.sock)
    reader = FrameReader(versions=(4,), expect_response=True)
    reader.feed(got)
    frame = reader.next_frame()
    assert frame is not None and frame.header.stream == 1
    assert reader.buffered == 12 and got[-12:-10] == b"\x84\x00"  # the QUERY's answer: 12 bytes of it
    assert isinstance(error, ConnectionResetError)


def test_reset_at_byte_aimed_at_a_request_number(cql_plain_server):
    cql_plain_server.faults.reset_at_byte(20, on_request=1)  # the OPTIONS answer (SUPPORTED), mid-body
    with RawClient(cql_plain_server.address) as client:
        client.send(Options())
        got, error = read_until_end(client.sock)
    assert len(got) == 20 and got[:2] == b"\x84\x00" and got[4] == 0x06  # a SUPPORTED header, and 11 body bytes
    assert isinstance(error, ConnectionResetError)


def test_reset_at_byte_counts_the_segment_on_v5(cql_plain_server):
    cql_plain_server.faults.reset_at_byte(8)
    with RawClient(cql_plain_server.address) as client:
        client.request(Options(), version=5)
        assert isinstance(client.request(Startup(options={"CQL_VERSION": "3.0.0"}), version=5), Ready)
        client.segments = True  # v5 after READY: the answer is a segment carrying the frame
        client.send(Query(query=LOCAL), version=5, stream=3)
        got, error = read_until_end(client.sock)
    assert len(got) == 8 and isinstance(error, ConnectionResetError)
    header = int.from_bytes(got[:3], "little")
    assert header & 0x1FFFF > 9 and header >> 17 & 1  # an uncompressed, self-contained segment's header
    assert got[6:8] == b"\x85\x00"  # then the frame's first two bytes: a v5 response


def test_reset_at_byte_over_tls_counts_plaintext_in_a_record_of_its_own(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.reset_at_byte(5)
    client = BioClient(server.address, client_context(cql_ca))
    try:
        assert isinstance(client.start(), Ready)
        client.send(Query(query=LOCAL), stream=3)
        raw, error = read_until_end(client.sock)
    finally:
        client.close()
    # One whole record came: 5 plaintext bytes + inner type + 16-byte tag; the client decrypts exactly them.
    assert record_headers(raw) == [(23, 5 + 1 + 16)] and len(raw) == 5 + 22
    assert client.feed(raw) == b"\x84\x00\x00\x03\x08"  # v4 response, stream 3, RESULT: cut before the length
    assert isinstance(error, ConnectionResetError), error


def test_reset_at_byte_over_tls_can_cut_the_records_mid_way(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.reset_at_byte(20, layer="tls")
    client = BioClient(server.address, client_context(cql_ca))
    try:
        client.start()
        client.send(Query(query=LOCAL), stream=3)
        raw, error = read_until_end(client.sock)
    finally:
        client.close()
    assert len(raw) == 20
    ((content_type, length),) = record_headers(raw)
    assert content_type == 23 and 5 + length > 20  # the record announced more than came
    assert client.feed(raw) == b""  # nothing of it can be decrypted
    assert isinstance(error, ConnectionResetError), error


def test_what_the_ssl_module_makes_of_a_reset_mid_answer(cql_server, cql_ca):
    # The same cut read through an ordinary SSLSocket (as a driver would): the
    # 5 bytes, then the error its ssl raises. OpenSSL 3 reports the RST as an
    # unexpected EOF; Python 3.10+ raises that as SSLEOFError, 3.9 as the
    # socket's ConnectionResetError.
    cql_server.faults.reset_at_byte(5)
    sock = client_context(cql_ca).wrap_socket(socket.create_connection(cql_server.address, timeout=5),
                                             server_hostname="127.0.0.1", suppress_ragged_eofs=False)
    with RawClient(cql_server.address, sock=sock) as client:
        client.start()
        client.send(Query(query=LOCAL), stream=3)
        got, error = read_until_end(client.sock)
    assert got == b"\x84\x00\x00\x03\x08"
    assert isinstance(error, (ssl.SSLEOFError, ConnectionResetError)), error


# -- half-close -----------------------------------------------------------------------------------
def test_half_close_write_sends_fin_and_keeps_reading(cql_plain_server):
    server = cql_plain_server
    server.faults.half_close()  # "write", right after the accept (the handshake, without TLS)
    with RawClient(server.address) as client:
        assert client.sock.recv(1) == b""  # EOF: the node's FIN
        # The node still reads: sends succeed, with a pause for a RST to come back
        # were the node's socket closed (the next send would then fail).
        for stream in (1, 2, 3):
            client.send(Options(), stream=stream)
            time.sleep(0.1)
        wait_until("the node logs the three requests",
                   lambda: len(server.activity.of_type(FrameReceived)) == 3, 5)
        assert client.sock.recv(1) == b""  # still EOF, no RST, no answer
        assert server.connection_count() == 1  # open until the client closes
    wait_until("the node closes once the client did", lambda: server.connection_count() == 0, 5)


def test_half_close_write_over_tls_is_a_tcp_eof_without_close_notify(cql_server, cql_ca):
    cql_server.faults.half_close("write", opcode="QUERY")
    client = BioClient(cql_server.address, client_context(cql_ca))
    try:
        assert isinstance(client.start(), Ready)  # the aimed request is the first QUERY
        client.send(Query(query=LOCAL), stream=3)
        raw, error = read_until_end(client.sock)
        assert error is None  # a FIN, not a RST
        assert client.feed(raw) == b"" and not client.peer_closed  # no answer, no close_notify
        client.send(Query(query=LOCAL), stream=4)  # the node still reads
        time.sleep(0.1)
        client.send(Query(query=LOCAL), stream=5)
        wait_until("the node logs the requests after its FIN",
                   lambda: [e.stream for e in cql_server.activity.of_type(FrameReceived)][-3:] == [3, 4, 5], 5)
    finally:
        client.close()


def test_half_close_read_reads_and_discards_and_tells_the_client_nothing(cql_plain_server):
    server = cql_plain_server
    server.faults.half_close("read", on_request=3)
    with RawClient(server.address, timeout=1.0) as client:
        client.start()
        assert isinstance(client.request(Query(query=LOCAL), stream=3), RowsResult)  # request 3 is answered
        client.send(Options(), stream=4)
        with pytest.raises(TimeoutError):
            client.read_frame()  # no answer, no EOF, no RST within a second
        # The node keeps reading: far more than the socket buffers hold goes through.
        client.sock.settimeout(10)
        client.sock.sendall(b"\x00" * (32 * 1024 * 1024))
        client.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            client.sock.recv(1)
        assert server.connection_count() == 1
    wait_until("the node closes once the client did", lambda: server.connection_count() == 0, 5)
    assert [e.stream for e in server.activity.of_type(FrameReceived)][-1] == 3  # nothing after it was read


# -- blackhole --------------------------------------------------------------------------------------
@pytest.mark.parametrize("tls", [True, False])
def test_blackhole_completes_the_handshake_and_never_answers(tls, cql_server_factory, cql_ca):
    server = cql_server_factory(tls=tls)
    server.faults.blackhole()
    context = client_context(cql_ca) if tls else None
    with RawClient(server.address, ssl_context=context, timeout=1.0) as client:
        if tls:
            assert client.sock.version() is not None  # type: ignore[attr-defined]  # the handshake completed
        client.send(Options(), stream=1)
        with pytest.raises(TimeoutError):
            client.read_frame()  # nothing within a second: no answer, no EOF, no RST
        client.send(Options(), stream=2)  # the connection is still open
        with pytest.raises(TimeoutError):
            client.read_frame()
        assert server.connection_count() == 1
    wait_until("the node closes once the client did", lambda: server.connection_count() == 0, 5)
    assert not server.activity.of_type(FrameReceived)


# -- latency -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("direction, ways", [("both", 2), ("in", 1), ("out", 1)])
def test_latency_grows_a_round_trip(direction, ways, cql_plain_server):
    latency = 0.2
    with RawClient(cql_plain_server.address) as client:
        client.start()
        before = min(round_trip(client) for _ in range(3))
    cql_plain_server.faults.latency(latency, direction=direction)
    with RawClient(cql_plain_server.address) as client:
        client.start()
        during = [round_trip(client, stream) for stream in (1, 2, 3)]
    expected = ways * latency
    assert all(expected - EARLY <= rtt <= expected + before + LATE for rtt in during), (during, before)


def test_latency_delays_the_tls_handshake_both_ways(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.latency(0.2)
    started = time.monotonic()
    # TLS 1.3: the ClientHello goes in, the server's flight comes out: one round trip.
    with RawClient(server.address, ssl_context=client_context(cql_ca)) as client:
        handshake = time.monotonic() - started
        assert 0.4 - EARLY <= handshake <= 0.4 + LATE, handshake
        assert isinstance(client.start(), Ready)
        assert 0.4 - EARLY <= round_trip(client) <= 0.4 + LATE


def test_jitter_keeps_every_byte_in_order(cql_plain_server):
    cql_plain_server.faults.latency(0.02, jitter=0.02, seed=5)
    with RawClient(cql_plain_server.address) as client:
        client.start()
        for stream in range(1, 41):  # one write each, closer together than the jitter's spread
            client.send(Query(query=LOCAL), stream=stream)
        streams = [client.read_frame().header.stream for _ in range(40)]
    assert streams == list(range(1, 41))  # every frame whole (they decode) and in order
    applied = [e for e in cql_plain_server.activity.of_type(FaultApplied) if e.fault == "Latency"]
    assert applied and applied[0].seed == 5


def test_latency_lets_queued_answers_out_before_the_fin(cql_plain_server):
    # The client sends a request and its FIN at once: both travel the "in" line, the
    # answer the "out" line, and the node's FIN comes after the answer.
    cql_plain_server.faults.latency(0.2)
    with RawClient(cql_plain_server.address) as client:
        client.start()
        started = time.monotonic()
        client.send(Query(query=LOCAL), stream=7)
        client.sock.shutdown(socket.SHUT_WR)
        got, error = read_until_end(client.sock)
        elapsed = time.monotonic() - started
    assert error is None
    reader = FrameReader(versions=(4,), expect_response=True)
    reader.feed(got)
    frame = reader.next_frame()
    assert frame is not None and frame.header.stream == 7 and reader.buffered == 0
    assert 0.4 - EARLY <= elapsed <= 0.4 + LATE


# -- bandwidth ---------------------------------------------------------------------------------------
def _big_rows(server, rows: int = 200) -> None:  # type: ignore[no-untyped-def]
    server.when_query("SELECT v FROM ks.big").then_rows([("x" * 1000,)] * rows, columns={"v": "text"})


def test_bandwidth_out_paces_a_large_answer(cql_plain_server):
    _big_rows(cql_plain_server)
    rate = 400_000
    cql_plain_server.faults.bandwidth(rate, direction="out")
    with RawClient(cql_plain_server.address, timeout=10) as client:
        client.start()
        started = time.monotonic()
        size = len(answer_bytes(client, "SELECT v FROM ks.big", stream=2))
        elapsed = time.monotonic() - started
    assert size > 200_000
    expected = size / rate
    assert expected * 0.9 <= elapsed <= expected + LATE, (elapsed, expected)


def test_bandwidth_in_paces_a_large_request(cql_plain_server):
    rate = 400_000
    cql_plain_server.faults.bandwidth(rate, direction="in")
    query = "SELECT release_version FROM system.local WHERE key = '" + "k" * 200_000 + "'"
    with RawClient(cql_plain_server.address, timeout=10) as client:
        client.start()
        started = time.monotonic()
        client.request(Query(query=query), stream=2)  # answered (an error or rows): after all of it came in
        elapsed = time.monotonic() - started
    cql_plain_server.activity.take_incidents()
    expected = len(query) / rate
    assert expected * 0.9 <= elapsed <= expected + LATE, (elapsed, expected)


def test_bandwidth_paces_the_tls_handshake(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    rate = 10_000  # slices of 100 bytes, one every 0.01 s
    server.faults.bandwidth(rate, direction="out")
    started = time.monotonic()
    client = BioClient(server.address, client_context(cql_ca))
    elapsed = time.monotonic() - started
    client.close()
    # The server's flight (certificate and all) came at the rate; the first slice leaves at once.
    expected = (client.handshake_bytes - rate / 100) / rate
    assert client.handshake_bytes > 500  # ServerHello, certificate, Finished: several slices
    assert expected * 0.9 <= elapsed <= expected + LATE, (elapsed, expected, client.handshake_bytes)


def test_a_full_delay_line_pushes_back_on_the_client(cql_plain_server):
    # A thin pipe holds the sender back (TCP's windows): the node stops reading
    # while its "in" line is full, so the client's sends block. (Without the cap,
    # test_half_close_read_... shows the node taking 32 MB at once.)
    cql_plain_server.faults.bandwidth(100_000, direction="in")
    cql_plain_server.faults.half_close("read")  # what gets through is thrown away
    chunk = b"\x00" * 65536
    sent = 0
    with RawClient(cql_plain_server.address) as client:
        client.sock.settimeout(3)
        with pytest.raises(socket.timeout):
            while sent < 64 * 1024 * 1024:
                sent += client.sock.send(chunk)
    assert sent < 32 * 1024 * 1024  # the kernel's buffers, and 3 s at 100 KB/s


def test_without_bandwidth_the_large_answer_is_quick(cql_plain_server):
    # The negative control for the two above: the same answer, no cap.
    _big_rows(cql_plain_server)
    with RawClient(cql_plain_server.address, timeout=10) as client:
        client.start()
        started = time.monotonic()
        answer_bytes(client, "SELECT v FROM ks.big", stream=2)
        assert time.monotonic() - started < 0.4


# -- slow close ---------------------------------------------------------------------------------------
def _time_to_eof(client_sock: socket.socket) -> Tuple[float, bytes, Optional[BaseException]]:
    started = time.monotonic()
    got, error = read_until_end(client_sock, timeout=10)
    return time.monotonic() - started, got, error


def test_slow_close_delays_the_nodes_fin_after_the_clients(cql_plain_server):
    cql_plain_server.faults.slow_close(0.5)
    with RawClient(cql_plain_server.address) as client:
        client.start()
        client.sock.shutdown(socket.SHUT_WR)
        elapsed, got, error = _time_to_eof(client.sock)
    assert got == b"" and error is None
    assert 0.5 - EARLY <= elapsed <= 0.5 + LATE, elapsed


def test_without_slow_close_the_fin_comes_at_once(cql_plain_server):
    with RawClient(cql_plain_server.address) as client:
        client.start()
        client.sock.shutdown(socket.SHUT_WR)
        elapsed, _, error = _time_to_eof(client.sock)
    assert error is None and elapsed < 0.3


def test_slow_close_delays_close_notify_and_fin_after_the_clients_close_notify(cql_server, cql_ca):
    cql_server.faults.slow_close(0.5)
    client = BioClient(cql_server.address, client_context(cql_ca))
    try:
        client.start()
        try:
            client.tls.unwrap()  # our close_notify; the node's has not come
        except ssl.SSLWantReadError:
            pass
        started = time.monotonic()
        client._flush()
        raw, error = read_until_end(client.sock, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert error is None
    client.feed(raw)
    assert client.peer_closed  # the node's close_notify, then its FIN
    assert 0.5 - EARLY <= elapsed <= 0.5 + LATE, elapsed


def test_slow_close_delays_the_nodes_own_close(cql_plain_server):
    cql_plain_server.faults.slow_close(0.5)
    cql_plain_server.faults.close(opcode="QUERY")
    with RawClient(cql_plain_server.address) as client:
        client.start()
        client.send(Query(query=LOCAL), stream=3)
        elapsed, got, error = _time_to_eof(client.sock)
    assert got == b"" and error is None  # the aimed request is not answered; FIN after the delay
    assert 0.5 - EARLY <= elapsed <= 0.5 + LATE, elapsed


def test_a_server_stops_cleanly_with_closes_and_bytes_still_delayed(cql_server_factory, cql_ca):
    # Timers die with the connections: the factory fails the test on any leftover after stop().
    server = cql_server_factory()
    server.faults.slow_close(0.3)
    server.faults.latency(0.3)
    with RawClient(server.address, ssl_context=client_context(cql_ca)) as client:
        client.send(Options())
        server.stop()
        assert server.leftovers() == []


# -- timers' exceptions surface ------------------------------------------------------------------------
@pytest.mark.fakecql_allow_unexpected
def test_an_exception_in_a_fault_timer_is_a_server_incident(cql_plain_server):
    class Exploding(Fault):
        def established(self, ctl):  # type: ignore[no-untyped-def]
            ctl.call_later(0.01, self.boom)

        def boom(self) -> None:
            raise RuntimeError("boom in a fault's timer")

    cql_plain_server.faults.add(Exploding())
    with RawClient(cql_plain_server.address) as client:
        assert client.closed_by_peer()  # the connection it broke is ended
    (incident,) = cql_plain_server.activity.of_type(ServerException)
    assert "boom in a fault's timer" in incident.description


# -- arguments ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, error, message", [
    (lambda: ResetAtByte(offset=-1), ValueError, "ResetAtByte offset must be >= 0"),
    (lambda: ResetAtByte(offset=1.5), TypeError, "ResetAtByte offset must be an integer"),
    (lambda: ResetAtByte(layer="tcp"), ValueError, "ResetAtByte layer must be one of 'cql', 'tls'"),
    (lambda: ResetAtByte(on_request=0), ValueError, "ResetAtByte on_request must be >= 1"),
    (lambda: HalfClose(direction="both"), ValueError, "HalfClose direction must be one of 'write', 'read'"),
    (lambda: HalfClose(on_request=-1), ValueError, "HalfClose on_request must be >= 0"),
    (lambda: Latency(seconds=-1), ValueError, "Latency seconds must be >= 0"),
    (lambda: Latency(seconds="1"), TypeError, "Latency seconds must be a number"),
    (lambda: Latency(jitter=-0.1), ValueError, "Latency jitter must be >= 0"),
    (lambda: Latency(seconds=0), ValueError, "Latency seconds or jitter must be > 0"),
    (lambda: Latency(direction="up"), ValueError, "Latency direction must be one of 'both', 'in', 'out'"),
    (lambda: Latency(on_request=2), ValueError, "Latency cannot be aimed with on_request="),
    (lambda: Bandwidth(bytes_per_second=0), ValueError, "Bandwidth bytes_per_second must be >= 1"),
    (lambda: Bandwidth(direction="sideways"), ValueError, "Bandwidth direction must be one of 'both', 'in', 'out'"),
    (lambda: Bandwidth(opcode="QUERY"), ValueError, "Bandwidth cannot be aimed with opcode="),
    (lambda: Blackhole(query="SELECT"), ValueError, "Blackhole cannot be aimed with query="),
    (lambda: SlowClose(delay=0), ValueError, "SlowClose delay must be > 0"),
    (lambda: SlowClose(delay=None), TypeError, "SlowClose delay must be a number"),
])
def test_bad_arguments_are_refused_by_name(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_every_wire_verb_works_without_arguments(cql_plain_server):
    made = {verb: getattr(cql_plain_server.faults, verb)() for verb in
            ("reset_at_byte", "half_close", "latency", "bandwidth", "blackhole", "slow_close")}
    assert {verb: type(fault) for verb, fault in made.items()} == {verb: wire.VERBS[verb] for verb in made}
    assert all(VERBS[verb] is wire.VERBS[verb] for verb in made)
    assert all(name in wire.__all__ for name in ("ResetAtByte", "HalfClose", "Latency", "Bandwidth", "Blackhole",
                                                  "SlowClose"))
    assert made["latency"].cli_name == "latency" and made["reset_at_byte"].cli_name == "reset-at-byte"
    cql_plain_server.faults.clear()


def test_every_wire_fault_names_a_real_world_condition():
    for cls in (ResetAtByte, HalfClose, Latency, Bandwidth, Blackhole, SlowClose):
        assert cls.__doc__ and len(cls.__doc__.split()) > 20, cls
