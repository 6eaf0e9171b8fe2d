# The asyncio shell: accept connections, pump bytes through TLS and the CQL
# framing, ask the node for answers, apply the fault plan.
#
# Strategy: one asyncio.Protocol per connection over a plain TCP transport;
# TLS is our own TLSEngine (MemoryBIO), never loop.create_server(ssl=...), so
# faults can act on each handshake flight and record. The CQL framing is the
# sans-IO ServerConnection, the answers come from the sans-IO NodeSession:
# this file only moves bytes and calls them. All answers produced in one
# turn go out in one TLS write.
#
# Backpressure: a turn answers at most ANSWERS_PER_TURN requests or
# ANSWER_BYTES_PER_TURN bytes of answers; the requests left wait in the
# connection's backlog for the next turn of the loop, and the node stops
# reading from that client until the backlog is answered, or while the
# client is not reading what was sent (the transport is over its high-water
# mark). So one flooding client neither starves the others nor makes the
# node buffer without bound.
#
# Hot path: a repeated EXECUTE on a connection no fault is aimed at is
# counted and logged in one step (its frame-log entry copied, see
# _repeated_entry) and answered by the node; with a fault the long way runs,
# so faults see every request.
#
# Large requests (a frame body over Limits.offload_over) are decoded and
# answered on the server's one worker thread: parsing a megabyte of CQL
# takes long enough to be felt by every other connection if done on the
# loop. The connection waits for that answer before its next request, so
# answers keep their order; every other connection goes on meanwhile.
#
# A CQLServer runs on a loop of its own in a thread of its own (start/stop,
# or `with`), so synchronous tests and a driver's own loop thread are never
# blocked; or inside the caller's running loop (`async with`).
#
# Rules: every exception raised in a callback of ours is caught, logged as a
# ServerException incident and ends that connection only; the own loop also
# gets an exception handler that does the same for anything else. Every
# wait is bounded. stop() leaves no connection, timer, task or thread behind.
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import ipaddress
import itertools
import os
import random
import socket
import ssl
import struct
import threading
import traceback
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple, cast

from . import cql, requestlog
from ._openssl import KeyUpdateUnavailable
from .activity import (
    ActivityLog,
    ConnectionClosed,
    ConnectionOpened,
    FaultApplied,
    FrameReceived,
    HandshakeCompleted,
    HandshakeFailed,
    Incident,
    ProtocolIncident,
    ServerException,
    TLSIncident,
    VersionRefused,
)
from .faults import ConnectionInfo, Fault, FaultPlan, Request
from .limits import Limits
from .loops import is_uvloop, new_event_loop, require_uvloop
from .node import Node, NodeIdentity, NodeSession, PasswordAuth
from .priming import DeferredAnswer, describe_unmet
from .protocol.connection import (
    ConnectionEvent,
    ProtocolViolation,
    RequestReceived,
    ServerConnection,
    UndecodedRequest,
)
from .protocol.errors import FakeCQLError, UnsupportedVersionError
from .protocol.frames import Opcode
from .protocol.messages import Batch, Event, Execute, Prepare, Query, Response, Startup
from .shards import ShardAssigner, Sharding
from .tls import TLSConfig, TLSEngine, TLSHandshakeError
from .wireline import WireLine

__all__ = ["CQLServer", "UnexpectedActivityError"]

# Versions some driver really starts with (v1-v6, DSE v1/v2): refusing them
# is negotiation. Any other version byte is a malformed frame.
NEGOTIABLE_VERSIONS = frozenset({1, 2, 3, 4, 5, 6, 0x41, 0x42})

# One turn of the loop answers at most this much for one connection (see the
# top of the file); well above what a driver pipelines in one write.
ANSWERS_PER_TURN = 256
ANSWER_BYTES_PER_TURN = 64 * 1024

# A delay line (latency, bandwidth) holding more than this pushes back, as TCP's
# windows would on a slow path: the node stops reading ("in") or answering ("out")
# until it holds half as much.
WIRE_QUEUE_BOUND = 256 * 1024

# Opcode -> its name, without Enum's name property on every request.
_OPCODE_NAMES: Dict[int, str] = {opcode: opcode.name for opcode in Opcode}

# EXECUTEs whose frame-log entry a connection keeps to copy (all dropped when full).
DESCRIBED_KEPT = 32

# A failure message shows this much of an incident's query text.
QUERY_SHOWN = 500


def _sharding(shards: Optional[int], port: int, shard_aware_port: int) -> Optional[Sharding]:
    """CQLServer's shards= and shard_aware_port= checked: the Sharding, or None for a node without shards."""
    if shards is None or (shards == 0 and not isinstance(shards, bool)):
        if shard_aware_port:
            raise ValueError(f"shard_aware_port={shard_aware_port!r} needs shards=N (a Scylla node of N shards)")
        return None
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
        raise ValueError(f"shards must be an integer of 1 or more (a Scylla node's number of shards), "
                         f"or None for a node without shards; got {shards!r}")
    if not isinstance(shard_aware_port, int) or isinstance(shard_aware_port, bool) or not 0 <= shard_aware_port <= 65535:
        raise ValueError(f"shard_aware_port must be an integer in [0, 65535], got {shard_aware_port!r}")
    if shard_aware_port and shard_aware_port == port:
        raise ValueError(f"shard_aware_port must differ from port (both are {port})")
    return Sharding(shards)


def _query_of(message: Any, node: Node) -> str:
    """A request's CQL text, for the faults' query trigger: QUERY and PREPARE
    text, an EXECUTE's prepared text, a BATCH's statements joined by "; "."""
    if isinstance(message, (Query, Prepare)):
        return message.query
    if isinstance(message, Execute):
        prepared = node.prepared(message.query_id)
        return prepared.query if prepared else ""
    if isinstance(message, Batch):
        texts = []
        for statement in message.statements:
            if statement.query_id is not None:
                prepared = node.prepared(statement.query_id)
                texts.append(prepared.query if prepared else "")
            else:
                texts.append(statement.query or "")
        return "; ".join(texts)
    return ""


class UnexpectedActivityError(FakeCQLError, AssertionError):
    """The node saw something the test did not expect; the message lists it all."""


class _Connection(asyncio.Protocol):
    """One client connection: transport <-> TLS <-> CQL framing <-> node."""

    def __init__(self, server: "CQLServer", number: int, *, shard_aware: bool = False) -> None:
        self.server = server
        self.number = number
        self.shard_aware = shard_aware  # came in on the shard-aware port
        self.shard: Optional[int] = None  # the Scylla shard serving it, if the node is sharded
        self.activity = server.activity
        self.transport: Optional[asyncio.Transport] = None
        self.cql = ServerConnection(
            versions=server.protocol_versions,
            max_frame_body=server.max_frame_body,
            decode_later_over=server.limits.offload_over,
        )
        self.session: NodeSession = server.node.session(number)
        self.tls: Optional[TLSEngine] = None
        self._faults: List[Fault] = []
        self._faults_version = -1
        self._fired: List[Fault] = []  # faults that acted once here (by identity)
        self._randoms: List[Tuple[Fault, random.Random]] = []  # per fault, seeded (see random())
        self._states: List[Tuple[Fault, Dict[str, Any]]] = []  # per fault (see state())
        self.info = ConnectionInfo(number, tls=server.tls is not None, shard_aware=shard_aware)
        self._wires: Dict[str, WireLine] = {}  # "in"/"out" delay lines, made when a fault asks
        self._wire_timers: Dict[str, Optional[asyncio.TimerHandle]] = {}
        self._closing_told = False  # the faults' closing() hooks have run
        self._output_ended = False  # FIN, half-close or RST asked: nothing more goes on the wire
        self._after_output: List[Callable[[], None]] = []  # FIN/RST/half-close waiting for the "out" line
        self._peer_fin_seen = False  # the client's FIN came out of the "in" delay line
        self._close_delay = 0.0  # seconds between asking to close and closing (a slow close)
        self._discarding = False  # everything read is thrown away (discard_input)
        self._tls_shut = False  # our close_notify is sent: nothing more can be encrypted
        self._handshake_timer: Optional[asyncio.TimerHandle] = None
        self._shaped: Deque[Tuple[float, bytes]] = deque()  # output waiting for its delay
        self._shaping = False  # a timer will send the next shaped piece
        self._shaping_due = False  # the head piece's delay has passed
        self._close_after_shaped = False  # closing: the shaped output still queued goes out first
        self.requests = 0
        self.withheld = 0  # requests primed with then_no_answer(): never answered
        self.input_held = False
        self.held: List[bytes] = []
        self.closing = False
        self.timers: Set[asyncio.TimerHandle] = set()
        self.backlog: Deque[ConnectionEvent] = deque()  # received, not answered yet
        self._next_turn: Optional[asyncio.Handle] = None
        self._offloaded: Optional["asyncio.Future[Tuple[ConnectionEvent, Optional[Response]]]"] = None
        self._lost = False  # connection_lost() has run
        self._transport_full = False  # the client is not reading: the transport is over its high-water mark
        self._wire_full = {"in": False, "out": False}  # a delay line over WIRE_QUEUE_BOUND
        self._paused_by_fault = False
        self._close_after_turn = False  # a fault asked to close once this turn's answers are sent
        self._handshake_started = False  # TLS bytes came in before the handshake completed
        # id(EXECUTE) -> (it, its prepared statement, keyspace, version, limits, its logged entry): see _log_frame.
        self._described: Dict[int, Tuple[Any, Any, Optional[str], int, Limits, FrameReceived]] = {}

    @property
    def faults(self) -> List[Fault]:
        """This connection's faults, refreshed when the plan changes."""
        plan = self.server.faults
        if plan.version != self._faults_version:
            self._faults_version = plan.version
            self._faults = plan.for_connection(self.info)
        return self._faults

    # -- asyncio callbacks (each guarded) -----------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._guard(self._made, transport)

    def data_received(self, data: bytes) -> None:
        self._guard(self._received, data)

    def eof_received(self) -> bool:
        line = self._wires.get("in")
        if line is not None and not line.idle:
            # The client's FIN travels the delay line behind its bytes; _peer_finished when it comes out.
            line.end(self._now())
            self._guard(self._pump_wire, "in")
            return True
        out = self._wires.get("out")
        if self._close_delay > 0 or (out is not None and not out.idle):
            self._guard(self._peer_finished)  # ours comes after the delay, after the queued bytes
            return True
        return False  # close our side too, now

    def _peer_finished(self) -> None:
        """The client's FIN reached the node: close our side (FIN, no close_notify, as
        asyncio does on EOF), after a slow close's delay and after the queued output."""
        if self.closing:
            return  # a close is under way already
        if self._close_delay > 0:
            self.close()
            return
        self.closing = True
        self._end_output(self._close_transport)

    def pause_writing(self) -> None:
        # The client is not reading: stop reading from it too, as a node does.
        self._transport_full = True
        self._guard(self._update_reading)

    def resume_writing(self) -> None:
        self._transport_full = False
        if not self._write_paused:
            self._guard(self._resume_answering)

    @property
    def _write_paused(self) -> bool:
        """Answer nothing now: the client does not read, or the "out" delay line is full."""
        return self._transport_full or self._wire_full["out"]

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        if self._next_turn is not None:
            self._next_turn.cancel()
        self._lost = True  # an offloaded request still running finds nobody to answer
        self.server._forget(self)
        if self.tls is not None and self._handshake_started and not self.tls.handshake_done and not self.closing:
            self.activity.add(HandshakeFailed(self.number, reason="the client closed the connection during the TLS handshake"))
        reason = "closed by the node" if self.closing else "closed by the client"
        if exc is not None:
            reason = f"{reason}: {exc!r}"
        pending = self.cql.pending_input
        if pending:
            reason = f"{reason}, with {pending} bytes of an incomplete frame"
        unanswered = len(self.backlog) + (self._offloaded is not None)
        if unanswered:
            reason = f"{reason}, with {unanswered} requests unanswered"
        if self.withheld:
            reason = f"{reason}, with {self.withheld} answers withheld (then_no_answer)"
        self.activity.add(ConnectionClosed(self.number, reason=reason))

    def _guard(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:  # anything we did not expect ends this connection, loudly
            self.server._record_exception(exc, self.number)
            self.abort()

    # -- the pipeline -------------------------------------------------------------
    def _made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (create_server's); uvloop's are not asyncio.Transport subclasses.
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername") or ("", 0)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server._track(self)
        self.info = dataclasses.replace(self.info, peer=(str(peer[0]), int(peer[1])))
        self._assign_shard(int(peer[1]))
        self.activity.add(ConnectionOpened(
            self.number, peer=(str(peer[0]), int(peer[1])), tls=self.server.tls is not None,
            shard=self.shard, shard_aware=self.shard_aware,
        ))
        for fault in self.faults:
            fault.accepted(self)
        if self.server.tls is not None and not self.closing:
            config = self.server.tls
            for fault in self.faults:
                config = fault.tls_config(self, config)
            self.tls = TLSEngine(self.server._context_for(config))
            self._handshake_timer = self.call_later(self.server.handshake_timeout, self._handshake_timed_out)
        if self.tls is None and not self.closing:
            for fault in self.faults:
                fault.established(self)
        if self.server.paused:
            # A paused node reads nothing, not even a ClientHello. Paused from the next
            # callback, before any read: Python 3.9 starts reading a transport paused
            # inside connection_made anyway.
            asyncio.get_running_loop().call_soon(self._guard, self._update_reading)

    def _assign_shard(self, source_port: int) -> None:
        """On a sharded node: which shard serves this connection, and the SUPPORTED that says so."""
        server = self.server
        if server._shard_assigner is None:
            return
        assert server.shard_aware_port is not None  # set with the assigner
        self.shard = server._shard_assigner.assign(source_port, shard_aware=self.shard_aware)
        self.session.own_supported = server._shard_assigner.sharding.supported(
            self.shard, shard_aware_port=server.shard_aware_port, tls=server.tls is not None,
        )

    def _received(self, data: bytes) -> None:
        if self.closing:
            return  # (discarded input still travels the delay line: the path is before the node)
        line = self._wires.get("in")
        if line is not None and not line.idle:
            line.push(self._now(), data)
            self._pump_wire("in")
            return
        self._take_input(data)

    def _take_input(self, data: bytes) -> None:
        if self.closing or self._discarding:
            return
        if self.input_held:
            self.held.append(data)
            return
        if self.tls is None:
            self._cql_input(data)
            return
        was_done = self.tls.handshake_done
        self._handshake_started = True
        try:
            plaintext = self.tls.receive(data)
        except TLSHandshakeError as exc:
            self.activity.add(HandshakeFailed(self.number, reason=exc.reason))
            self._flush_tls()  # the alert must reach the client before we close
            self.close()
            return
        except ssl.SSLError as exc:
            self.activity.add(TLSIncident(self.number, description=f"TLS error after the handshake: {exc}"))
            self._flush_tls()
            self.abort()
            return
        if not was_done:
            out = self.tls.take_outgoing()
            for fault in self.faults:
                out = fault.handshake_output(self, out)
            if out:
                self._wire_write(out)
            if self.tls.handshake_done and self.tls.info is not None:
                info = self.tls.info
                self.cancel_timer(self._handshake_timer)
                self._handshake_timer = None
                self.activity.add(HandshakeCompleted(
                    self.number, protocol=info.protocol, cipher=info.cipher,
                    session_reused=info.session_reused, client_cert_subject=info.client_cert_subject,
                ))
                for fault in self.faults:
                    fault.established(self)
        if self.closing:
            return  # a fault ended the connection when the handshake completed
        if plaintext and not self._discarding:  # a fault may discard input from the handshake on
            self._cql_input(plaintext)
        else:
            self._flush_tls()
        if self.tls.peer_closed and not self.closing and not self.backlog and self._offloaded is None:
            self.close()

    def _cql_input(self, plaintext: bytes) -> None:
        self.backlog.extend(self.cql.receive_data(plaintext))
        if self._write_paused:
            self._update_reading()
        else:
            self._answer_backlog()
        if self.closing:
            return
        pending = self.cql.pending_input
        if pending:
            for fault in self.faults:
                fault.input_buffered(self, pending)

    def _answer_backlog(self) -> None:
        """Answer one turn's worth of the backlog in one write; leave the rest for the next turn."""
        answers: List[bytes] = []
        size = 0
        fatal = False
        for _ in range(ANSWERS_PER_TURN):
            if not self.backlog or size >= ANSWER_BYTES_PER_TURN or self._offloaded is not None:
                break
            event = self.backlog.popleft()
            if isinstance(event, RequestReceived):
                answer = self._answer(event)
            elif isinstance(event, UndecodedRequest):
                answer = None
                self._offload(event)
            else:
                answer = self._violation(event)
                fatal = fatal or event.fatal
            if self.closing:
                return
            if answer:  # None or b"": not answered now (a fault, or a primed delay)
                answers.append(answer)
                size += len(answer)
            if self._close_after_turn:
                break
        if answers:
            self._write(b"".join(answers))
        if fatal or self._close_after_turn:
            self.close()
            return
        if self._offloaded is not None:
            self._update_reading()
            return  # the rest waits for the offloaded answer, in order
        if self.backlog:
            if not self._write_paused:
                self._schedule_turn()
        elif self.tls is not None and self.tls.peer_closed:
            self.close()  # the client's close_notify came after requests now answered
            return
        self._update_reading()

    def _take_turn(self) -> None:
        self._next_turn = None
        if not self.closing and not self._write_paused and not self.server.paused:
            self._guard(self._answer_backlog)

    def _resume_answering(self) -> None:
        if self.backlog:
            if not self.closing:
                self._schedule_turn()
        else:
            self._update_reading()

    def _schedule_turn(self) -> None:
        if self._next_turn is None:
            self._next_turn = asyncio.get_running_loop().call_soon(self._take_turn)

    def _update_reading(self) -> None:
        """Read from the client unless a fault, a client that does not read, or a backlog says stop."""
        transport = self.transport
        if transport is None or self.closing or transport.is_closing():
            return
        stop = (self._paused_by_fault or self._write_paused or self._wire_full["in"] or bool(self.backlog)
                or self._offloaded is not None
                or self.server.paused)
        if stop and transport.is_reading():
            transport.pause_reading()
        elif not stop and not transport.is_reading():
            transport.resume_reading()

    def _answer(self, event: RequestReceived) -> Optional[bytes]:
        message = event.message
        if (type(message) is Execute and self.server.record_frames and not self.closing
                and not self._faults_version_changed()):
            if not self._faults:
                entry = self._repeated_entry(message, event.version)
                if entry is not None:
                    # The hot path: a repeated EXECUTE, no fault to consult: counted and
                    # logged at once, then answered as below.
                    self.requests += 1
                    self.activity.add_repeat(entry, event.stream, event.length, count="EXECUTE")
                    return self._respond(event, self.session.handle(message, event.version, event.stream))
        go_on, request = self._faults_decide(_OPCODE_NAMES[message.opcode], event.stream, message)
        if self.closing:
            return None
        self._log_frame(event)
        if not go_on:
            return None
        if request is not None and request.response is not None:
            response: Response = request.response
        else:
            response = self.session.handle(message, event.version, event.stream)
        return self._deliver(event, response, request)

    def _faults_decide(self, opcode: str, stream: int, message: Any) -> Tuple[bool, Optional[Request]]:
        """Count the request and let the faults decide its answer: (answer it?, the
        Request they decided on, None when no fault looked)."""
        self.requests += 1
        self.activity.count_request(opcode)
        plan = self.server.faults
        faults = self._faults if plan.version == self._faults_version else self.faults
        if not faults:
            return True, None
        request = Request(opcode, self.requests, stream, lambda: _query_of(message, self.server.node),
                          statement_id=message.query_id if isinstance(message, Execute) else None)
        for fault in faults:
            fault.request_received(self, request)
            if self.closing:
                return False, request
        if request.dropped:
            self.withheld += 1
            return False, request
        return True, request

    def _deliver(self, event: RequestReceived, response: Response, request: Optional[Request]) -> Optional[bytes]:
        """The answer's bytes, now; or b"" when the faults delay it (sent by a timer)."""
        if request is None:
            return self._respond(event, response)
        stream = request.stream_out
        if request.delay_by > 0:
            def send_late() -> None:  # under _guard (call_later): an exception is an incident
                if not self.closing and not self._lost:
                    late = self._respond(event, response, stream)
                    request.answer_size = len(late)
                    self._write(late)
                    self._answered(request)
                    if request.close_after_answer:
                        self.close()

            self.call_later(request.delay_by, send_late)
            return b""
        answer = self._respond(event, response, stream)
        request.answer_size = len(answer)
        self._answered(request)
        if request.close_after_answer:
            self._close_after_turn = True
        return answer

    def _answered(self, request: Request) -> None:
        for fault in self.faults:
            fault.answer_sent(self, request)

    def _log_frame(self, event: RequestReceived) -> None:
        if not self.server.record_frames:
            return
        message = event.message
        if isinstance(message, Execute):
            # The same EXECUTE on the same prepared statement and keyspace logs the
            # same fields: described once, each entry then a copy with its own stream.
            known = self._repeated_entry(message, event.version)
            if known is not None:
                self.activity.add_repeat(known, event.stream, event.length)
                return
            node = self.server.node
            prepared = node.peek_prepared(message.query_id)
            entry = self._frame_entry(event)
            if len(self._described) >= DESCRIBED_KEPT:
                self._described.clear()
            self._described[id(message)] = (message, prepared, self.session.keyspace, event.version, node.limits, entry)
            self.activity.add(entry)
            return
        self.activity.add(self._frame_entry(event))

    def _faults_version_changed(self) -> bool:
        return self.server.faults.version != self._faults_version

    def _repeated_entry(self, message: Execute, version: int) -> Optional[FrameReceived]:
        """The frame-log entry this EXECUTE had last time, if it would log the same now."""
        known = self._described.get(id(message))
        if known is None or known[0] is not message:
            return None
        node = self.server.node
        if (known[1] is node.peek_prepared(message.query_id) and known[2] == self.session.keyspace
                and known[3] == version and known[4] is node.limits):
            return known[5]
        return None

    def _frame_entry(self, event: RequestReceived) -> FrameReceived:
        message = event.message
        query = None
        if isinstance(message, Query):
            query = message.query
        elif isinstance(message, Execute):
            prepared = self.server.node.prepared(message.query_id)
            query = prepared.query if prepared else f"<unknown prepared id {message.query_id.hex()}>"
        elif isinstance(message, Batch):
            query = "BATCH"
        elif isinstance(message, Prepare):
            query = message.query
        return FrameReceived(
            self.number, version=event.version, stream=event.stream, opcode=message.opcode.name,
            length=event.length, query=query,
            startup_options=dict(message.options) if isinstance(message, Startup) else None,
            shard=self.shard,
            node=f"{self.server.host}:{self.server.port}",
            **requestlog.describe(message, self.server.node, self.session.keyspace),
        )

    def _respond(self, event: RequestReceived, response: Response, stream: Optional[int] = None) -> bytes:
        if isinstance(response, DeferredAnswer):
            self._defer(event, response)
            return b""
        if isinstance(event.message, Startup) and self.session.compression is not None:
            self.cql.negotiate_compression(self.session.compression)
        return self.cql.send(event.stream if stream is None else stream, response, version=event.version)

    def _defer(self, event: RequestReceived, deferred: DeferredAnswer) -> None:
        """A primed then_delay()/then_no_answer(): answer on a timer, or never. The
        stream stays open either way; the connection goes on with its other
        streams. The timers die with the connection (connection_lost)."""
        if deferred.delay is None or deferred.response is None:
            self.withheld += 1
            return
        response = deferred.response

        def send_late() -> None:  # run by call_later under _guard: an exception is an incident
            if not self.closing and not self._lost:
                self._write(self._respond(event, response))

        self.call_later(deferred.delay, send_late)

    # -- large requests: decoded and answered on the server's worker thread ----------
    def _offload(self, request: UndecodedRequest) -> None:
        """Hand a large request to the worker thread; this connection's later
        requests wait for its answer, every other connection goes on."""
        future = self.server._run_on_worker(self._decode_and_handle, request)
        self._offloaded = future
        future.add_done_callback(lambda done: self._guard(self._offload_done, done))

    def _decode_and_handle(self, request: UndecodedRequest) -> Tuple[ConnectionEvent, Optional[Response]]:
        # On the worker thread: the node's state is locked where it is shared;
        # this connection's session is not touched by the loop meanwhile.
        event = request.decode()
        if not isinstance(event, RequestReceived):
            return event, None
        self._log_frame(event)
        return event, self.session.handle(event.message, event.version, event.stream)

    def _offload_done(self, future: "asyncio.Future[Tuple[ConnectionEvent, Optional[Response]]]") -> None:
        if future is not self._offloaded:
            return
        self._offloaded = None
        if future.cancelled():
            return
        event, response = future.result()  # an exception here is the server's: _guard records it
        if self.closing or self._lost:
            return
        if isinstance(event, ProtocolViolation):
            self._write(self._violation(event))
            if event.fatal:
                self.close()
                return
        elif isinstance(event, RequestReceived) and response is not None:
            # The faults decide once the request is decoded (a query trigger needs its text);
            # the node has handled it already, as a node that answers late or never has.
            go_on, decided = self._faults_decide(event.message.opcode.name, event.stream, event.message)
            if go_on and not self.closing:
                if decided is not None and decided.response is not None:
                    response = decided.response
                answer = self._deliver(event, response, decided)
                if answer:
                    self._write(answer)
                if self._close_after_turn:
                    self.close()
        if self.closing:
            return
        if self.backlog and not self._write_paused:
            self._schedule_turn()
        elif self.tls is not None and self.tls.peer_closed and not self.backlog:
            self.close()
            return
        self._update_reading()

    def _violation(self, event: ProtocolViolation) -> bytes:
        error = event.error
        # Negotiation happens before a version is in use; after, another version is a malformed frame.
        if (isinstance(error, UnsupportedVersionError) and error.requested in NEGOTIABLE_VERSIONS
                and self.cql.version is None):
            self.activity.add(VersionRefused(self.number, requested=error.requested, answered_in=event.version))
        else:
            self.activity.add(ProtocolIncident(
                self.number, description=event.message, stream=event.stream, fatal=event.fatal,
            ))
        return self.cql.error_frame(event)

    def send_message(self, stream: int, message: Response) -> None:
        """Send a message outside of a request (events on stream -1)."""
        if not self.closing and self.cql.version is not None:
            self._write(self.cql.send(stream, message))

    # -- output ----------------------------------------------------------------------
    def _write(self, plaintext: bytes) -> None:
        if self.transport is None or self.closing:
            return
        pieces = None
        for fault in self.faults:
            pieces = fault.shape_output(self, plaintext)
            if pieces is not None:
                break
        if pieces is None and not self._shaped:
            self._send_now(plaintext)
            return
        # Shaped output (or output behind shaped output, to keep the order):
        # sent piece by piece, each after its delay.
        self._shaped.extend(pieces if pieces is not None else [(0.0, plaintext)])
        if not self._shaping:
            self._send_shaped()

    def _send_shaped(self) -> None:
        self._shaping = False
        while self._shaped and (not self.closing or self._close_after_shaped):
            delay, piece = self._shaped[0]
            if delay > 0 and not self._shaping_due:
                self._shaping = self._shaping_due = True
                self.call_later(delay, self._send_shaped)
                return
            self._shaped.popleft()
            self._shaping_due = False
            self._send_now(piece)
        if self._close_after_shaped:
            self._close_after_shaped = False
            self._close_now()

    def _send_now(self, plaintext: bytes) -> None:
        if self.transport is None or (self.closing and not self._close_after_shaped):
            return
        if self.tls is None:
            self._wire_write(plaintext)
            return
        if self._tls_shut:
            return  # after our close_notify nothing can be encrypted: the answer is lost, as on the wire
        self.tls.send(plaintext)
        self._flush_tls()

    def _flush_tls(self) -> None:
        if self.tls is not None and self.transport is not None and not self.transport.is_closing():
            out = self.tls.take_outgoing()
            if out:
                self._wire_write(out)

    def _wire_write(self, data: bytes) -> None:
        """Bytes onto the socket, through the "out" delay line when a fault set one.
        Dropped once our FIN (or RST) is asked for: a socket sends nothing after it."""
        transport = self.transport
        if transport is None or transport.is_closing() or self._output_ended:
            return
        line = self._wires.get("out")
        if line is None or line.idle:
            transport.write(data)
            return
        line.push(self._now(), data)
        self._pump_wire("out")

    def _pump_wire(self, direction: str) -> None:
        """Move what a delay line lets through now, and wake up when it lets more."""
        line = self._wires[direction]
        self.cancel_timer(self._wire_timers.get(direction))
        self._wire_timers[direction] = None
        data, wake_at = line.take(self._now())
        if data:
            if direction == "out":
                if self.transport is not None and not self.transport.is_closing():
                    self.transport.write(data)
            else:
                self._take_input(data)
        if self._lost:
            return
        self._push_back(direction, line)
        if wake_at is not None:
            self._wire_timers[direction] = self.call_later(
                max(0.0, wake_at - self._now()), lambda: self._pump_wire(direction))
        elif line.ended and direction == "out":
            after, self._after_output = self._after_output, []
            for action in after:  # FIN, half-close or RST, in the order asked
                action()
        elif line.ended and not self._peer_fin_seen:
            self._peer_fin_seen = True
            self._peer_finished()

    def _push_back(self, direction: str, line: WireLine) -> None:
        """A full delay line stops the reading ("in") or the answering ("out") that fills it."""
        queued = line.queued
        full = self._wire_full[direction]
        if not full and queued > WIRE_QUEUE_BOUND:
            self._wire_full[direction] = True
            self._update_reading()
        elif full and queued <= WIRE_QUEUE_BOUND // 2:
            self._wire_full[direction] = False
            if direction == "in" or not self._write_paused:
                self._resume_answering()

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def _restart_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self.cancel_timer(self._handshake_timer)
            self._handshake_timer = self.call_later(self.server.handshake_timeout, self._handshake_timed_out)

    def _handshake_timed_out(self) -> None:
        if self.server.paused:  # a frozen node times nothing out: look again later
            self._handshake_timer = self.call_later(self.server.handshake_timeout, self._handshake_timed_out)
            return
        if self.tls is not None and not self.tls.handshake_done and not self.closing:
            self.activity.add(HandshakeFailed(
                self.number, reason=f"no complete TLS handshake within {self.server.handshake_timeout} s",
            ))
            self.abort()

    # -- ConnectionControl: what faults may do ----------------------------------------
    def hold_input(self) -> None:
        self.input_held = True

    def pause_reading(self) -> None:
        self._paused_by_fault = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._paused_by_fault = False
        self._update_reading()

    def first_time(self, fault: Fault) -> bool:
        if any(f is fault for f in self._fired):
            return False
        self._fired.append(fault)
        return True

    def reset(self) -> None:
        """TCP RST, after what the "out" delay line still holds (the RST travels behind the bytes)."""
        self.closing = True
        self._end_output(self._reset_now)

    def _reset_now(self) -> None:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is not None:
            # SO_LINGER on with a zero timeout: close() sends RST, not FIN.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.abort()

    def send_raw(self, data: bytes) -> None:
        self._wire_write(data)

    def send_plaintext(self, data: bytes) -> None:
        self._send_now(data)

    def discard_input(self) -> None:
        self._discarding = True
        self.held.clear()

    def state(self, fault: Fault) -> Dict[str, Any]:
        for known, held in self._states:
            if known is fault:
                return held
        own: Dict[str, Any] = {}
        self._states.append((fault, own))
        return own

    def fin(self) -> None:
        """FIN without close_notify (a truncation); after a slow close's delay, if any."""
        if self.closing:
            return
        self.closing = True
        if self._close_delay > 0:
            self.call_later(self._close_delay, self._finish_close)
            return
        self._finish_close()

    def send_close_notify(self) -> None:
        if self.tls is None:
            raise RuntimeError(f"close_notify needs TLS; connection {self.number} is plain TCP")
        if self._tls_shut:
            return
        self._tls_shut = True
        self.tls.close()
        self._flush_tls()

    def encrypt(self, plaintext: bytes) -> bytes:
        if self.tls is None:
            return plaintext
        self._flush_tls()  # what is queued goes first
        if self._tls_shut:
            self.tls.encrypt_after_close(plaintext)  # the records that follow our close_notify
        else:
            self.tls.send(plaintext)
        return self.tls.take_outgoing()

    def shutdown_write(self) -> None:
        """Half-close: FIN after what the "out" line holds; reading goes on, answers are dropped."""
        self._end_output(self._write_eof)

    def _write_eof(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and transport.can_write_eof():
            transport.write_eof()

    def wire(self, direction: str) -> WireLine:
        if direction not in ("in", "out"):
            raise ValueError(f"a wire direction is 'in' or 'out', got {direction!r}")
        line = self._wires.get(direction)
        if line is None:
            line = self._wires[direction] = WireLine()
        return line

    def set_close_delay(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a close delay must be >= 0 seconds, got {seconds!r}")
        self._close_delay = seconds

    def update_keys(self, request_peer: bool) -> None:
        if self.tls is None:
            raise KeyUpdateUnavailable(f"KeyUpdate needs TLS 1.3; connection {self.number} is plain TCP")
        if not self.tls.handshake_done:
            raise KeyUpdateUnavailable(f"KeyUpdate needs a finished TLS handshake; connection {self.number} is mid-handshake")
        self.tls.update_keys(request_peer)
        self._flush_tls()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self.timers.discard(handle)
            self._guard(callback)

        handle = loop.call_later(delay, fire)
        self.timers.add(handle)
        return handle

    def cancel_timer(self, handle: Optional[asyncio.TimerHandle]) -> None:
        if handle is not None:
            handle.cancel()
            self.timers.discard(handle)

    def log(self, fault: Fault, detail: str) -> None:
        self.activity.add(FaultApplied(self.number, fault=type(fault).__name__, detail=detail, seed=fault.seed,
                                       triggers=fault.describe_triggers()))

    def random(self, fault: Fault, seed: int) -> random.Random:
        for known, generator in self._randoms:
            if known is fault:
                return generator
        generator = random.Random(f"{seed}:{self.number}")
        self._randoms.append((fault, generator))
        return generator

    # -- closing -------------------------------------------------------------------------
    def close(self) -> None:
        """Close cleanly: TLS close_notify, flush, FIN. With a slow close, the
        node answers nothing more from now on, and its close_notify and FIN
        leave only after the delay."""
        if self.closing:
            return
        if not self._closing_told:
            self._closing_told = True
            for fault in self.faults:
                fault.closing(self)
            if self.closing:
                return  # a closing() hook ended the connection itself
        self.closing = True
        if self._close_delay > 0:
            self.call_later(self._close_delay, self._send_close)
            return
        self._send_close()

    def _send_close(self) -> None:
        if self._shaped:
            # Output a fault shaped was written before the close: it goes out first,
            # at its pace (as a socket sends what is queued before its FIN).
            self._close_after_shaped = True
            if not self._shaping:
                self._send_shaped()
            return
        self._close_now()

    def _close_now(self) -> None:
        """close_notify, then FIN (after the "out" delay line)."""
        if self.tls is not None and self.tls.handshake_done and not self._tls_shut:
            self._tls_shut = True
            self.tls.close()
            out = self.tls.take_outgoing()
            if out:
                self._wire_write(out)
        self._finish_close()

    def _finish_close(self) -> None:
        """FIN, once the "out" delay line has let everything through."""
        self._end_output(self._close_transport)

    def _close_transport(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _end_output(self, then: Callable[[], None]) -> None:
        """Nothing more goes on the wire; run `then` (FIN, half-close, RST) once the
        "out" delay line has let through every byte queued before (at once without one)."""
        self._output_ended = True
        line = self._wires.get("out")
        transport = self.transport
        if line is None or line.idle or line.ended or transport is None or transport.is_closing():
            then()
            return
        self._after_output.append(then)
        line.end(self._now())
        self._pump_wire("out")

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class CQLServer:
    """A fake CQL node listening on loopback, with TLS if `tls` is given.

    Use it as a context manager (own loop thread) or an async context
    manager (the caller's loop). `port=0` picks a free port; `address` tells
    which. `activity` logs what happened; `check()` raises if the node saw
    something unexpected.

    `shards=N` makes it a Scylla node of N shards (fakecql/shards.py): SUPPORTED
    tells each connection its shard, and the node also listens on
    `shard_aware_port` (0: a free one; `shard_aware_port` tells which).

    `uvloop=True` runs the node's own loop thread on uvloop (ImportError now
    if uvloop is not installed).
    """

    def __init__(
        self,
        *,
        tls: Optional[TLSConfig] = None,
        host: str = "127.0.0.1",
        port: int = 0,
        protocol_versions: Sequence[int] = (3, 4, 5),
        auth: Optional[PasswordAuth] = None,
        identity: Optional[NodeIdentity] = None,
        node: Optional[Node] = None,
        faults: Sequence[Fault] = (),
        max_frame_body: Optional[int] = None,
        handshake_timeout: float = 10.0,
        record_frames: bool = True,
        compression: Sequence[str] = ("lz4",),
        limits: Optional[Limits] = None,
        activity: Optional[ActivityLog] = None,
        shards: Optional[int] = None,
        shard_aware_port: int = 0,
        uvloop: bool = False,
    ) -> None:
        if uvloop:
            require_uvloop()  # now, not when the loop thread starts
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"host must be an IP address to listen on (e.g. 127.0.0.1 or ::1), got {host!r}") from None
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
        if tls is not None and not isinstance(tls, TLSConfig):
            raise TypeError(f"tls must be a fakecql.TLSConfig (TLSConfig.create(ca)), got {tls!r}")
        versions = tuple(sorted(set(protocol_versions)))
        if not versions or any(v not in (3, 4, 5) for v in versions):
            raise ValueError(f"protocol_versions must be among 3, 4 and 5, got {tuple(protocol_versions)!r}")
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be positive, got {handshake_timeout!r}")
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a fakecql.Limits, got {limits!r}")
        limits = limits or Limits()
        if max_frame_body is not None:  # the older keyword, kept: it sets the one limit
            limits = dataclasses.replace(limits, max_frame_body=max_frame_body)
        if node is not None and activity is not None and activity is not node.activity:
            raise ValueError("give the activity log to the Node, or to CQLServer without a node, not both")
        sharding = _sharding(shards, port, shard_aware_port)
        self.tls = tls
        self.host = host
        self.port = port
        self.uvloop = uvloop  # the own loop thread runs uvloop's loop (fakecql/loops.py)
        self.protocol_versions = versions
        self.limits = limits
        cql.set_parse_cache_bytes(limits.parse_cache_bytes)  # the cache is the process's: the last node sets it
        if node is not None:
            self.activity = node.activity
        else:
            self.activity = activity or ActivityLog(max_entries=limits.log_entries, max_text_bytes=limits.log_text_bytes)
        self.node = node or Node(
            identity=identity, auth=auth, activity=self.activity, compression=compression, limits=limits,
        )
        self.node.set_protocol_versions(versions)
        self.faults = FaultPlan(tuple(faults))
        self.max_frame_body = limits.max_frame_body
        self.handshake_timeout = handshake_timeout
        self.record_frames = record_frames
        self.sharding: Optional[Sharding] = sharding
        self.shard_aware_port = shard_aware_port if sharding is not None else None
        self._shard_assigner = ShardAssigner(sharding) if sharding is not None else None
        self._shard_aware_server: Optional[asyncio.AbstractServer] = None
        self._ssl_context: Optional[ssl.SSLContext] = tls.server_context() if tls else None
        # One SSLContext per TLSConfig a fault asked for (sessions resume only on their own context).
        self._contexts: Dict[TLSConfig, ssl.SSLContext] = {tls: self._ssl_context} if tls and self._ssl_context else {}
        self._server: Optional[asyncio.AbstractServer] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._connections: Set[_Connection] = set()
        self._all_closed: Optional[asyncio.Event] = None
        self._conn_numbers = itertools.count(1)
        self._listening: List[socket.socket] = []
        self._worker: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._on_worker: Set["asyncio.Future[Any]"] = set()
        self._left_tasks: List[str] = []
        self._stopped_loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopped_thread: Optional[threading.Thread] = None
        self._paused = False

    # -- what tests use -------------------------------------------------------------------
    @property
    def address(self) -> Tuple[str, int]:
        return self.host, self.port

    @property
    def is_tls(self) -> bool:
        return self.tls is not None

    @property
    def running(self) -> bool:
        return self._server is not None

    def when_query(self, query: Any, **kwargs: Any) -> Any:
        """Prime an answer; see Node.when_query."""
        return self.node.when_query(query, **kwargs)

    def check(self) -> None:
        """Raise UnexpectedActivityError listing every incident the test has not taken,
        and every expectation of the node's own primings not met (shared books are
        checked by their owner: PrimingBook.check(), a cluster's check())."""
        reports = []
        incidents = self.activity.incidents()
        if incidents or self.activity.incidents_dropped:
            reports.append(self.describe_incidents(incidents))
        unmet = self.node.unmet_expectations()
        if unmet:
            reports.append(self.describe_unmet(unmet))
        if reports:
            raise UnexpectedActivityError("\n\n".join(reports))

    def _context_for(self, config: TLSConfig) -> ssl.SSLContext:
        """The server SSLContext for `config`, built once."""
        context = self._contexts.get(config)
        if context is None:
            context = self._contexts[config] = config.server_context()
        return context

    def describe_unmet(self, unmet: Sequence[Any]) -> str:
        """The listing of unmet priming expectations: which priming, expected, seen."""
        return describe_unmet(unmet, f"fakecql node {self.host}:{self.port}")

    def clear_primings(self) -> None:
        """Forget the node's own primings; see Node.clear_primings."""
        self.node.clear_primings()

    def describe_incidents(self, incidents: Sequence[Incident]) -> str:
        dropped = self.activity.incidents_dropped
        total = len(incidents) + dropped
        lines = [f"fakecql node {self.host}:{self.port} saw {total} unexpected thing(s):"]
        for incident in incidents:
            query = getattr(incident, "query", "")
            if len(query) > QUERY_SHOWN:
                query = f"{query[:QUERY_SHOWN]}... ({len(query)} characters)"
            lines.append(f"  - [connection {incident.connection}] {type(incident).__name__}: {incident.description}"
                         + (f"\n      query: {query}" if query else ""))
        if dropped:
            lines.append(f"  - and {dropped} more, dropped from the log (over its incident bound)")
        primings = self.node.primings()
        if primings:
            lines.append("it was primed with:")
            lines.extend(f"  - {p.summary()}" for p in primings)
        else:
            lines.append("it was primed with nothing (only built-in tables answer).")
        lines.append("Take incidents a test expects with server.activity.take_incidents().")
        return "\n".join(lines)

    def push_event(self, event: Event) -> None:
        """Send an EVENT to every connection that REGISTERed for its type."""
        def push() -> None:
            for conn in list(self._connections):
                if event.event_type in conn.session.registered:
                    conn.send_message(-1, event)
        self._call_in_loop(push)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self, timeout: float = 10.0) -> None:
        """Play a frozen node: keep accepting and holding connections, read and
        answer nothing on any of them (new ones included) until resume().
        In effect when it returns."""
        def apply() -> None:
            self._paused = True
            for conn in list(self._connections):
                conn._update_reading()

        if self._loop is None:
            raise RuntimeError("the fakecql server is not running")
        self._paused = True  # new connections see it at once
        self._call_in_loop_and_wait(apply, timeout)

    def resume(self, timeout: float = 10.0) -> None:
        """Read and answer again after pause(); requests read before the pause are answered now."""
        def apply() -> None:
            self._paused = False
            for conn in list(self._connections):
                if not conn.closing:
                    conn._restart_handshake_timer()  # the pause does not count against the handshake
                    conn._resume_answering()

        self._call_in_loop_and_wait(apply, timeout)

    def connection_count(self) -> int:
        return len(self._connections)

    def close_connections(self) -> None:
        """Close every client connection (the listening socket stays)."""
        def close_all() -> None:
            for conn in list(self._connections):
                conn.close()

        self._call_in_loop(close_all)

    # -- own loop thread ---------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "CQLServer":
        if self._thread is not None or self._server is not None:
            raise RuntimeError(f"fakecql server {self.host}:{self.port} is already running")
        loop = new_event_loop(self.uvloop)
        loop.set_exception_handler(self._loop_exception)
        ready = threading.Event()
        thread = threading.Thread(target=self._run_loop, args=(loop, ready), name=f"fakecql-{self.host}", daemon=True)
        thread.start()
        ready.wait(timeout)
        self._loop, self._thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(self._start(), loop).result(timeout)
        except BaseException:
            self._shutdown_thread(timeout)
            raise
        return self

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def stop(self, timeout: float = 10.0, *, reset: bool = False) -> None:
        """Stop listening, close every connection (TLS close_notify and FIN; with
        `reset`, a TCP RST instead, as when a node's process dies) and the loop.
        A stopped server may start() again, on the same address and port."""
        if self._thread is None or self._loop is None:
            return
        try:
            if self._server is not None:
                asyncio.run_coroutine_threadsafe(self._stop(timeout, reset), self._loop).result(timeout + 1)
        finally:
            self._shutdown_thread(timeout)

    def _shutdown_thread(self, timeout: float) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            # The server starts no task of its own: any found here was left running.
            self._left_tasks = [repr(t) for t in tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        self._stopped_loop, self._stopped_thread = loop, thread
        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"fakecql loop thread did not stop within {timeout} s")
            loop.close()

    def leftovers(self) -> List[str]:
        """What a stopped server left behind (should be nothing): its thread,
        its loop, tasks, client connections and their timers, listening sockets."""
        found = [f"task left running: {task}" for task in self._left_tasks]
        thread, loop = self._stopped_thread, self._stopped_loop
        if thread is not None and thread.is_alive():
            found.append(f"loop thread {thread.name} still alive")
        if loop is not None and not loop.is_closed():
            found.append("event loop not closed")
        for conn in self._connections:
            found.append(f"connection {conn.number} still open ({len(conn.timers)} timers)")
        for sock in self._listening:
            if sock.fileno() != -1:
                found.append(f"listening socket {sock!r} still open")
        if self._server is not None or self._shard_aware_server is not None:
            found.append("still listening: stop() was not called")
        if self._worker is not None:
            found.append("worker thread pool not shut down")
        return found

    def __enter__(self) -> "CQLServer":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    # -- caller's loop --------------------------------------------------------------------
    async def start_async(self) -> "CQLServer":
        if self._server is not None:
            raise RuntimeError(f"fakecql server {self.host}:{self.port} is already running")
        running = asyncio.get_running_loop()
        if self.uvloop and not is_uvloop(running):  # asked for uvloop: never run on another loop quietly
            raise RuntimeError(f"uvloop=True, but `async with` runs the node on the caller's loop, a "
                               f"{type(running).__module__}.{type(running).__name__}: run the caller on uvloop, "
                               f"or use start()/`with` (a loop thread of the node's own)")
        self._loop = running
        await self._start()
        return self

    async def stop_async(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            await self._stop(timeout)
        self._loop = None

    async def __aenter__(self) -> "CQLServer":
        return await self.start_async()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop_async()

    # -- inside the loop -----------------------------------------------------------------
    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self, next(self._conn_numbers)),
                host=self.host, port=self.port, family=family, reuse_address=True,
            )
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(exc.errno, f"fakecql cannot listen on {self.host}:{self.port}: {reason}") from None
        self._listening = list(self._server.sockets)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.sharding is not None:
            await self._listen_shard_aware(loop, family)
        self.node.bind(self.host, self.port)
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"fakecql-worker-{self.port}",
        )

    async def _listen_shard_aware(self, loop: asyncio.AbstractEventLoop, family: int) -> None:
        """Listen on the shard-aware port too; if that fails, stop listening on the ordinary one."""
        assert self.shard_aware_port is not None and self._server is not None
        try:
            self._shard_aware_server = await loop.create_server(
                lambda: _Connection(self, next(self._conn_numbers), shard_aware=True),
                host=self.host, port=self.shard_aware_port, family=family, reuse_address=True,
            )
        except OSError as exc:
            server, self._server = self._server, None
            server.close()
            await server.wait_closed()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(exc.errno, f"fakecql cannot listen on {self.host}:{self.shard_aware_port} "
                                     f"(the shard-aware port): {reason}") from None
        self._listening += list(self._shard_aware_server.sockets)
        self.shard_aware_port = self._shard_aware_server.sockets[0].getsockname()[1]

    async def _stop(self, timeout: float, reset: bool = False) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._paused = False
        server.close()
        shard_aware, self._shard_aware_server = self._shard_aware_server, None
        if shard_aware is not None:
            shard_aware.close()
        for conn in list(self._connections):
            if reset:
                conn.reset()
            else:
                conn.close()
        assert self._all_closed is not None
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout / 2)
        except asyncio.TimeoutError:
            for conn in list(self._connections):
                conn.abort()
            await asyncio.wait_for(self._all_closed.wait(), timeout / 2)
        await asyncio.wait_for(server.wait_closed(), timeout / 2)
        if shard_aware is not None:
            await asyncio.wait_for(shard_aware.wait_closed(), timeout / 2)
        await self._stop_worker(timeout / 2)

    def _run_on_worker(self, function: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
        """Run `function` on the server's worker thread; the caller must read the result."""
        if self._worker is None:
            raise RuntimeError("the fakecql server is not running")
        future = asyncio.get_running_loop().run_in_executor(self._worker, function, *args)
        self._on_worker.add(future)
        future.add_done_callback(self._on_worker.discard)
        return future

    async def _stop_worker(self, timeout: float) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        running = [f for f in self._on_worker if not f.done()]
        if running:  # connections are gone; their answers are not wanted, but the thread must end
            await asyncio.wait(running, timeout=timeout)
        worker.shutdown(wait=True)

    def _track(self, conn: _Connection) -> None:
        self._connections.add(conn)
        if self._all_closed is not None:
            self._all_closed.clear()

    def _forget(self, conn: _Connection) -> None:
        self._connections.discard(conn)
        if not self._connections and self._all_closed is not None:
            self._all_closed.set()

    def _running_loop(self) -> Tuple[asyncio.AbstractEventLoop, bool]:
        """The server's loop, and whether the caller runs in it (RuntimeError if not running)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the fakecql server is not running")
        try:
            running: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        return loop, running is loop

    def _call_in_loop(self, callback: Callable[[], Any]) -> None:
        loop, inside = self._running_loop()
        if inside:
            callback()
        else:
            def guarded() -> None:
                try:
                    callback()
                except Exception as exc:
                    self._record_exception(exc, 0)
            loop.call_soon_threadsafe(guarded)

    def _call_in_loop_and_wait(self, callback: Callable[[], None], timeout: float) -> None:
        """Run `callback` in the server's loop and return when it has run (at once in the loop itself)."""
        loop, inside = self._running_loop()
        if inside:
            callback()
            return

        async def run() -> None:
            callback()

        asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def _record_exception(self, exc: BaseException, connection: int) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.activity.add(ServerException(connection, description=text.rstrip(), exception=exc))

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: Dict[str, Any]) -> None:
        exc = context.get("exception")
        if exc is None:
            exc = RuntimeError(context.get("message", "unknown asyncio error"))
        self._record_exception(exc, 0)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<CQLServer {self.host}:{self.port} {'tls' if self.tls else 'plain'} {state}>"
