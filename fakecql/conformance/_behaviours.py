# The behaviours a reactor must show, each a plain function of one Run: a
# fresh loopback peer and one connection of the reactor under test.
#
# Strategy (trio.testing's conformance suite): each check builds what it
# needs through the Run (connect, start up, send queries), drives the peer
# byte by byte, and states each expectation with expect()/wait_until(); the
# Run tears everything down afterwards whatever happened. What the checks
# cover is what the driver's ReactorTestMixin and TimerTestMixin check with
# a mock socket, redone over real TCP and real TLS: every partial read and
# write there is produced here by the peer's socket buffers, pauses, and TLS
# record and TCP write boundaries.
#
# Rules: nothing from pytest; every wait goes through the Run's Deadline;
# every payload is pseudo-random and compared byte for byte; a check that
# needs a blocked write first proves the write really blocked.
from __future__ import annotations

import random
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..protocol.errors import ErrorCode
from ..protocol.messages import Error
from ._client import (
    Credentials,
    Request,
    describe,
    is_reset_error,
    open_connection,
    rows_payload,
    send_query,
)
from ._harness import ConformanceFailure, Deadline, expect, wait_until
from ._peer import LoopbackPeer, payload_bytes, query_text

__all__ = ["Behaviour", "BEHAVIOURS", "Run", "TRANSPORTS"]

TRANSPORTS = ("plain", "tls")

# A write this large cannot fit in the socket buffers of both ends (Linux
# grows a send buffer up to 4 MiB by itself; a receive buffer nobody reads
# from stays at its initial size), so it must block.
BLOCKING_WRITE = 8 * 1024 * 1024
PARTIAL_SEND_SIZE = 256 * 1024
# For partial_sends only: the peer's receive buffer and, where the reactor
# applies the driver's sockopts, the client's send buffer. Small buffers
# slow a transfer down a lot (asyncio's transports move 8 MiB through a
# 16 KiB SO_SNDBUF in ~4 s), so the checks of blocked writes leave them be.
SMALL_BUFFER = 16 * 1024
SMALL_SNDBUF = ((socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER),)
PIECE_PAUSE = 0.05  # long enough for the reactor to read what came so far
# Timers may fire this much before their time (clock granularity) and this
# much after (a busy 2-core CI machine; the stock asyncio reactor runs a
# coroutine per timer, slow in asyncio's debug mode under PYTHONDEVMODE=1).
TIMER_EARLY = 0.015
TIMER_LATE = 0.5


class Run:
    """One behaviour's run: the reactor's connection class, a transport, a
    deadline; the peer and connection it opens, closed by tear_down()."""

    def __init__(self, connection_class: type, transport: str, deadline: Deadline) -> None:
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self.connection_class = connection_class
        self.tls = transport == "tls"
        self.deadline = deadline
        self.peer: Optional[LoopbackPeer] = None
        self.connection: Any = None
        self.answered: List[str] = []  # request labels, in the order their callbacks fired
        self._counter = 0

    # -- opening ------------------------------------------------------------------------
    def connect(
        self, *, recv_buffer: Optional[int] = None, sockopts: Optional[Sequence[Tuple[int, int, int]]] = None
    ) -> Tuple[Any, LoopbackPeer]:
        """A peer, and a connection of the reactor to it (start-up not served yet)."""
        credentials = Credentials.shared() if self.tls else None
        self.peer = LoopbackPeer(
            self.deadline,
            tls=credentials.server_context() if credentials is not None else None,
            recv_buffer=recv_buffer,
        )
        self.connection = open_connection(
            self.connection_class,
            self.peer.port,
            self.deadline,
            ssl_context=credentials.client_context_for(self.connection_class) if credentials is not None else None,
            sockopts=sockopts,
        )
        return self.connection, self.peer

    def start_up(self, **options: Any) -> Tuple[Any, LoopbackPeer]:
        """connect(), then serve OPTIONS/SUPPORTED and STARTUP/READY."""
        connection, peer = self.connect(**options)
        peer.wait_connected()
        peer.serve_startup()
        self.wait_ready()
        return connection, peer

    def wait_ready(self) -> None:
        connection = self.connection
        if not connection.connected_event.wait(self.deadline.left()):
            raise ConformanceFailure(
                f"expected connected_event to be set once READY was sent; it was not ({describe(connection)})")
        expect(
            not connection.is_defunct and connection.last_error is None,
            f"expected a healthy connection after READY; {describe(connection)}",
        )

    # -- requests -----------------------------------------------------------------------
    def query(self, text: Optional[str] = None, label: Optional[str] = None) -> Request:
        """Send a QUERY through the reactor; the Request records its answer."""
        self._counter += 1
        label = label or f"request {self._counter}"
        return send_query(self.connection, text or f"conformance {label}", Request(label, self.answered))

    def blocked_query(self, text: str) -> Request:
        """Send a QUERY of `text` and prove its write blocked: the peer, not
        reading, holds (received and queued) less than all of it."""
        peer = self._peer()
        request = self.query(text)
        queued = peer.wait_inbound_stalled(f"the client's {len(text)}-byte QUERY")
        expect(peer.received_bytes + queued < len(text),
               f"expected the {len(text)}-byte write to block; the peer already holds "
               f"{peer.received_bytes + queued} bytes")
        return request

    def read_intact(self, text: str) -> Any:
        """Read the QUERY of `text` whose write was blocked, and check it arrived whole."""
        incoming = self._peer().read_request(f"the {len(text)}-byte QUERY, once the peer reads again")
        expect(query_text(incoming) == text,
               f"expected the {len(text)}-byte QUERY intact; got {len(query_text(incoming))} characters")
        return incoming

    def answer_and_check(self, incoming: Any, request: Request, seed: int, size: int, what: str) -> None:
        """Answer `incoming` (the peer's side of `request`) with `size` seeded
        bytes in one frame, and check the driver delivered them intact."""
        payload = payload_bytes(seed, size)
        self._peer().send(self._peer().rows_frame(incoming.stream, payload))
        self.check_payload(request, payload, what)

    def check_payload(self, request: Request, payload: bytes, what: str) -> None:
        response = request.wait(self.deadline, what, self.connection)
        got = rows_payload(response, what)
        if got != payload:
            first = next((i for i, (a, b) in enumerate(zip(got, payload)) if a != b), min(len(got), len(payload)))
            raise ConformanceFailure(
                f"expected {what}: {len(payload)} bytes intact; the driver delivered {len(got)} bytes, "
                f"the first wrong one at offset {first}")

    def exchange(self, what: str, frame_size: int, pieces: Optional[Sequence[int]] = None,
                 pause: float = PIECE_PAUSE) -> None:
        """One query, answered by a frame of exactly `frame_size` bytes sent in `pieces`."""
        peer = self._peer()
        request = self.query()
        incoming = peer.read_request(f"the QUERY for {what}")
        payload = payload_bytes(self._counter, frame_size - peer.rows_overhead())
        frame = peer.rows_frame(incoming.stream, payload)
        peer.send(frame, pieces, pause)
        self.check_payload(request, payload, f"the answer to {what}")

    def pipelined(self, sizes: Sequence[int], seed: int) -> Tuple[List[Request], List[bytes], bytes]:
        """len(sizes) queries sent at once; their answers (frames of those sizes,
        concatenated, not sent yet) and payloads."""
        peer = self._peer()
        requests = [self.query() for _ in sizes]
        frames, payloads = [], []
        for index, size in enumerate(sizes):
            incoming = peer.read_request(f"QUERY {index + 1} of {len(sizes)} sent at once")
            payload = payload_bytes(seed * 1000 + index, size - peer.rows_overhead())
            frames.append(peer.rows_frame(incoming.stream, payload))
            payloads.append(payload)
        return requests, payloads, b"".join(frames)

    def check_all(self, requests: Sequence[Request], payloads: Sequence[bytes], what: str) -> None:
        for index, (request, payload) in enumerate(zip(requests, payloads)):
            self.check_payload(request, payload, f"answer {index + 1} of {len(requests)} {what}")
        labels = [r.label for r in requests]
        wanted = set(labels)
        order = [label for label in self.answered if label in wanted]
        expect(order == labels, f"expected the answers {what} delivered in the order sent, {labels}; got {order}")

    def _peer(self) -> LoopbackPeer:
        if self.peer is None:
            raise RuntimeError("connect() first")
        return self.peer

    # -- closing ------------------------------------------------------------------------
    def tear_down(self) -> List[BaseException]:
        """Close the connection, then the peer; the errors met (never raised here)."""
        errors: List[BaseException] = []
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception as exc:  # reported by run_behaviour, after the behaviour's own outcome
                errors.append(exc)
        if self.peer is not None:
            try:
                self.peer.wait_closed(1.0)  # let the reactor's close() reach the socket
            except Exception as exc:
                errors.append(exc)
            finally:
                self.peer.close()
        return errors


@dataclass(frozen=True)
class Behaviour:
    """One behaviour over one transport: BEHAVIOURS["<check>[<transport>]"]."""

    name: str  # e.g. "successful_connection[tls]"
    check_name: str  # e.g. "successful_connection"
    transport: str  # "plain" or "tls"
    promise: str  # what a conforming reactor does
    check: Callable[[Run], None]


BEHAVIOURS: Dict[str, Behaviour] = {}


def _behaviour(*transports: str) -> Callable[[Callable[[Run], None]], Callable[[Run], None]]:
    def register(check: Callable[[Run], None]) -> Callable[[Run], None]:
        promise = " ".join((check.__doc__ or "").split())
        for transport in transports:
            name = f"{check.__name__}[{transport}]"
            BEHAVIOURS[name] = Behaviour(name, check.__name__, transport, promise, check)
        return check
    return register


# -- 1. connecting --------------------------------------------------------------------------

@_behaviour("plain", "tls")
def successful_connection(run: Run) -> None:
    """OPTIONS/SUPPORTED then STARTUP/READY connect; connected_event is set
    after READY, not after the TCP or TLS handshake; the connection then carries requests."""
    connection, peer = run.connect()
    peer.wait_connected()
    options = peer.read_request("OPTIONS")
    expect(options.message.opcode.name == "OPTIONS",
           f"expected OPTIONS first; the driver sent {options.message.opcode.name}")
    expect(not connection.connected_event.is_set(),
           f"expected connected_event unset before any CQL answer; it was set after the "
           f"{'TLS' if run.tls else 'TCP'} handshake ({describe(connection)})")
    peer.reply(options)
    startup = peer.read_request("STARTUP")
    expect(startup.message.opcode.name == "STARTUP",
           f"expected STARTUP after SUPPORTED; the driver sent {startup.message.opcode.name}")
    expect(not connection.connected_event.wait(0.1),
           f"expected connected_event unset until READY; it was set after SUPPORTED ({describe(connection)})")
    peer.reply(startup)
    run.wait_ready()
    run.exchange("a query after the start-up", 600)


# -- 2-4. reads ---------------------------------------------------------------------------

@_behaviour("plain", "tls")
def reads_at_buffer_size(run: Run) -> None:
    """Answers that fill the reactor's read buffer (Connection.in_buffer_size)
    exactly, once or several times, complete without more bytes coming; one
    that stops exactly at the buffer size waits for the rest."""
    connection, _ = run.start_up()
    size = int(connection.in_buffer_size)
    run.exchange(f"a frame of exactly in_buffer_size ({size}) bytes", size)
    run.exchange(f"a frame of exactly 2 x in_buffer_size ({2 * size}) bytes in one write", 2 * size)
    run.exchange("a frame of in_buffer_size + 10 bytes, the 10 after a pause", size + 10, [size, 10])
    run.exchange("a frame of 3 x in_buffer_size bytes, one buffer per write", 3 * size, [size] * 3)


@_behaviour("tls")
def tls_records_end_mid_frame(run: Run) -> None:
    """TLS records that end mid-frame, and TCP writes that end mid-record
    (the reactor's TLS read wants more): the reactor waits and assembles
    the frames."""
    _, peer = run.start_up()
    requests, payloads, frames = run.pipelined([3000], seed=3)
    # Records: the first header byte, the rest of the header, then the body
    # in uneven records; writes: a record header cut in two, then records cut mid-way.
    peer.send_ciphertext_cut(frames, records=[1, 8, 500, 1, 1490, 1000], wire=[3, 7, 40, 300, 1, 900],
                             pause=0.02)
    run.check_all(requests, payloads, "sent in TLS records that end mid-frame")
    requests, payloads, frames = run.pipelined([1500, 2500], seed=4)
    # Records straddling the two frames; each write ends inside a record.
    peer.send_ciphertext_cut(frames, records=[1000, 1000, 1000, 1000], wire=[700, 700, 700, 700, 700],
                             pause=0.02)
    run.check_all(requests, payloads, "of two frames in records that straddle them")


@_behaviour("tls")
def tls_write_needs_read(run: Run) -> None:
    """A large write blocked by a peer that does not read completes while
    the peer sends a TLS 1.3 KeyUpdate asking for one back and an answer:
    the reactor keeps reading during the blocked write, and the write completes."""
    connection, peer = run.start_up()
    expect(peer.tls_version == "TLSv1.3",
           f"expected the client to negotiate TLS 1.3 (KeyUpdate needs it); it negotiated {peer.tls_version}")
    first = run.query()
    early = peer.read_request("a small QUERY before the large one")
    text = "w" * BLOCKING_WRITE
    blocked = run.blocked_query(text)
    peer.request_key_update()
    run.answer_and_check(early, first, 41, 3000, "the answer (after a KeyUpdate) read while a large write is blocked")
    expect(not connection.is_defunct, f"expected the connection to survive the KeyUpdate; {describe(connection)}")
    big = run.read_intact(text)
    run.answer_and_check(big, blocked, 42, 2000, "the answer to the large QUERY")


# -- 5-6. errors during the start-up ------------------------------------------------------------

@_behaviour("plain", "tls")
def protocol_error(run: Run) -> None:
    """A SUPPORTED answer with a bad protocol version byte makes the
    connection defunct with a ProtocolError, and sets connected_event."""
    from cassandra.connection import ProtocolError

    connection, peer = run.connect()
    peer.wait_connected()
    options = peer.read_request("OPTIONS")
    frame = bytearray(peer.answer(options))
    frame[0] = 0x80 | 0x24  # a response of protocol "v36"
    peer.send(bytes(frame))
    wait_until(lambda: connection.connected_event.is_set(), run.deadline,
               "connected_event set after a bad version byte", seen=lambda: describe(connection))
    expect(connection.is_defunct and isinstance(connection.last_error, ProtocolError),
           f"expected a defunct connection with a ProtocolError as last_error; {describe(connection)}")


@_behaviour("plain", "tls")
def error_on_startup(run: Run) -> None:
    """An ERROR answer to STARTUP makes the connection defunct with a
    ConnectionException, and sets connected_event."""
    from cassandra.connection import ConnectionException

    connection, peer = run.connect()
    peer.wait_connected()
    peer.reply(peer.read_request("OPTIONS"))
    startup = peer.read_request("STARTUP")
    peer.reply(startup, Error(code=ErrorCode.SERVER_ERROR, message="conformance: this node refuses STARTUP"))
    wait_until(lambda: connection.connected_event.is_set(), run.deadline,
               "connected_event set after an ERROR answer to STARTUP", seen=lambda: describe(connection))
    expect(connection.is_defunct and isinstance(connection.last_error, ConnectionException),
           f"expected a defunct connection with a ConnectionException as last_error; {describe(connection)}")


# -- 7. resets --------------------------------------------------------------------------------

LAST_ERROR_SETTLE = 1.0  # seconds a defunct connection gets to set its last_error


def _expect_reset_reported(run: Run, when: str, request: Optional[Request] = None) -> None:
    connection = run.connection
    wait_until(lambda: connection.connected_event.is_set() and connection.is_defunct, run.deadline,
               f"a defunct connection (with connected_event set) after a reset {when}",
               seen=lambda: describe(connection))
    # The driver's defunct() sets is_defunct first and last_error just after,
    # on the reactor's thread: let it finish (bounded) before reading it.
    settled_by = time.monotonic() + LAST_ERROR_SETTLE
    while connection.last_error is None and time.monotonic() < settled_by:
        time.sleep(0.01)
    expect(is_reset_error(connection.last_error),
           f"expected the reset (ECONNRESET/EPIPE) as last_error after a reset {when}; {describe(connection)}")
    if request is not None:
        response = request.wait(run.deadline, f"the pending request to fail after a reset {when}", connection)
        expect(isinstance(response, BaseException),
               f"expected the pending request to fail after a reset {when}; it got {response!r}")


@_behaviour("plain", "tls")
def reset_during_read(run: Run) -> None:
    """A TCP reset while the reactor reads the start-up's answer (half a
    SUPPORTED frame in) makes the connection defunct with that error and sets connected_event."""
    _, peer = run.connect()
    peer.wait_connected()
    options = peer.read_request("OPTIONS")
    frame = peer.answer(options)
    peer.send(frame[: len(frame) // 2])
    time.sleep(PIECE_PAUSE)
    peer.reset()
    _expect_reset_reported(run, "during a read")


@_behaviour("plain", "tls")
def reset_during_write(run: Run) -> None:
    """A TCP reset while a large write is blocked makes the connection
    defunct with that error and fails the pending request."""
    _, peer = run.start_up()
    text = "r" * BLOCKING_WRITE
    request = run.blocked_query(text)
    peer.reset()
    _expect_reset_reported(run, "during a write", request)


@_behaviour("plain", "tls")
def close_mid_frame(run: Run) -> None:
    """The node closing the connection in good order (TLS close_notify, then
    FIN) halfway through an answer ends the connection (closed or defunct),
    with connected_event set, and fails the pending request."""
    connection, peer = run.start_up()
    request = run.query()
    incoming = peer.read_request("a QUERY")
    frame = peer.rows_frame(incoming.stream, payload_bytes(7, 2000))
    peer.send(frame[:1000])
    time.sleep(PIECE_PAUSE)
    peer.close_orderly()
    response = request.wait(run.deadline, "the pending request to fail once the node closed the connection",
                            connection)
    expect(isinstance(response, BaseException),
           f"expected the pending request to fail once the node closed the connection; it got {response!r}")
    wait_until(lambda: connection.connected_event.is_set() and (connection.is_closed or connection.is_defunct),
               run.deadline, "the connection to end once the node closed it", seen=lambda: describe(connection))


# -- 8-9. writes ------------------------------------------------------------------------------

@_behaviour("plain", "tls")
def blocked_write_resumes(run: Run) -> None:
    """A write blocked by a peer that stopped reading resumes when it reads
    again; the large request arrives intact and its answer reaches the callback."""
    connection, peer = run.start_up()
    text = "b" * BLOCKING_WRITE
    big = run.blocked_query(text)
    expect(not connection.is_defunct, f"expected a blocked write to leave the connection healthy; {describe(connection)}")
    incoming = run.read_intact(text)
    run.answer_and_check(incoming, big, 81, 1000, "the answer to the QUERY whose write was blocked")


@_behaviour("plain", "tls")
def partial_sends(run: Run) -> None:
    """With a small receive window at the peer and a slow reader, the
    reactor's sends go out in part; the whole 256 KiB request arrives intact."""
    _, peer = run.start_up(recv_buffer=SMALL_BUFFER, sockopts=SMALL_SNDBUF)
    rng = random.Random(9)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(PARTIAL_SEND_SIZE))
    request = run.query(text)
    incoming = peer.read_request("a 256 KiB QUERY, read slowly", read_size=8192, pause=0.001)
    got = query_text(incoming)
    expect(got == text, f"expected the 256 KiB QUERY intact; got {len(got)} characters"
           + ("" if len(got) != len(text) else ", different ones"))
    run.answer_and_check(incoming, request, 91, 500, "the answer to the 256 KiB QUERY")


# -- 10-12. frames in pieces -------------------------------------------------------------------

@_behaviour("plain", "tls")
def header_in_pieces(run: Run) -> None:
    """A frame header that arrives one byte first, then the rest (the
    SUPPORTED answer during the start-up, then a query's answer), is assembled."""
    connection, peer = run.connect()
    peer.wait_connected()
    options = peer.read_request("OPTIONS")
    supported = peer.answer(options)
    peer.send(supported, [1, len(supported) - 1], PIECE_PAUSE)
    peer.reply(peer.read_request("STARTUP, after a SUPPORTED answer sent one byte first"))
    run.wait_ready()
    run.exchange("a frame whose header comes one byte first", 700, [1, 699])
    run.exchange("a frame whose header comes in three pieces", 700, [1, 3, 696])


@_behaviour("plain", "tls")
def body_after_header(run: Run) -> None:
    """A frame body that arrives after its header (and in pieces) is assembled."""
    run.start_up()
    run.exchange("a frame whose body comes after its header", 800, [9, 791])
    run.exchange("a frame whose body comes in pieces after its header", 800, [9, 1, 400, 390])


@_behaviour("plain", "tls")
def mixed_sizes(run: Run) -> None:
    """Answers of 512 B to 16 KiB (seeded), sent at once and delivered in
    random-sized pieces, all reach their callbacks intact and in order."""
    _, peer = run.start_up()
    rng = random.Random(12)
    for round_number in range(3):
        sizes = [rng.randint(512, 16 * 1024) for _ in range(rng.randint(4, 12))]
        requests, payloads, frames = run.pipelined(sizes, seed=100 + round_number)
        pieces: List[int] = []
        left = len(frames)
        while left:
            piece = min(left, rng.choice((1, 7, 9, 100, 1000, 4096, 4097, 8000, 16 * 1024)))
            pieces.append(piece)
            left -= piece
        peer.send(frames, pieces, pause=0.0)
        run.check_all(requests, payloads, f"of round {round_number + 1} ({len(sizes)} frames, {len(pieces)} pieces)")


# -- 13. timers -------------------------------------------------------------------------------

@_behaviour("plain")
def timers(run: Run) -> None:
    """Hundreds of timers made with the connection class's create_timer fire
    within a tolerance of their time (in order, in reverse and interleaved);
    cancelled timers never fire."""
    run.start_up()
    create_timer = run.connection_class.create_timer  # type: ignore[attr-defined]
    steps, span = 100, 0.3
    ascending = [span * i / steps for i in range(steps)]
    descending = ascending[::-1]
    interleaved = [ascending[i // 2] if i % 2 else descending[i // 2] for i in range(steps)]
    fired: List[Tuple[float, float, float]] = []  # (delay, created, fired)
    cancelled_fired: List[float] = []

    def fire(delay: float, created: float) -> None:
        fired.append((delay, created, time.monotonic()))

    # One batch per order, each waited for (as the driver's TimerTestMixin
    # does), so that no reactor meets hundreds of timers at once.
    made = 0
    for batch in (ascending, descending, interleaved):
        for delay in batch:
            created = time.monotonic()
            create_timer(delay, lambda delay=delay, created=created: fire(delay, created))
            made += 1
        for delay in batch[::3]:
            create_timer(delay + 0.01, lambda delay=delay: cancelled_fired.append(delay)).cancel()
        wait_until(lambda: len(fired) >= made, run.deadline, f"all {made} timers to fire",
                   cap=span + TIMER_LATE + 2.0, seen=lambda: f"{len(fired)} fired")
    time.sleep(0.1)  # past every cancelled timer's time by 0.1 s at least (each batch waited > span)
    expect(not cancelled_fired,
           f"expected cancelled timers never to fire; {len(cancelled_fired)} of {3 * len(ascending[::3])} did "
           f"(delays {sorted(cancelled_fired)[:5]}...)")
    early = [(d, f - c) for d, c, f in fired if f - c < d - TIMER_EARLY]
    late = [(d, f - c) for d, c, f in fired if f - c > d + TIMER_LATE]
    expect(not early, f"expected no timer to fire more than {TIMER_EARLY * 1000:.0f} ms early; "
                      f"{len(early)} did, e.g. delay {early[0][0]:.3f} s fired after {early[0][1]:.3f} s"
           if early else "")
    expect(not late, f"expected every timer to fire within {TIMER_LATE * 1000:.0f} ms of its time; "
                     f"{len(late)} did not, e.g. delay {late[0][0]:.3f} s fired after {late[0][1]:.3f} s"
           if late else "")
