# What every fault shares: the hooks the server calls, the control a fault
# acts through, and the triggers that aim it.
#
# Strategy: a Fault is a small frozen object with hook methods that default
# to "do nothing". The server calls the plan at each point of a connection's
# life (accepted, TLS settings chosen, handshake output, established, request
# received, input buffered, output shaped, bytes on the wire, closing); the
# plan asks every fault that applies to that connection. A fault acts only
# through the ConnectionControl it is handed (hold input, pause reading, send
# now, reset, log, ...), so the server has no `if fault == ...` anywhere and a
# new fault is a new class, nothing else.
#
# Triggers are fields every fault has: `connections` (numbers or a
# predicate), `on_request` (the Nth request of a connection), `opcode`,
# `query` (text, regex or predicate; an EXECUTE matches by its prepared
# text), `probability` with its `seed`. A class says which of them it
# understands (TRIGGERS); any other given is refused at construction.
#
# Rules: every fault that acts logs a FaultApplied entry (which carries its
# seed), so tests can see that it fired; faults never sleep, they schedule;
# bad arguments raise ValueError/TypeError at construction, naming the
# argument and what it may be.
from __future__ import annotations

import random
import re
from dataclasses import dataclass, fields
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    ClassVar,
    Dict,
    FrozenSet,
    List,
    Optional,
    Pattern,
    Protocol,
    Sequence,
    Tuple,
    Union,
)

if TYPE_CHECKING:
    from ..protocol.messages import Response
    from ..tls import TLSConfig
    from ..wireline import WireLine

__all__ = [
    "ConnectionControl",
    "ConnectionInfo",
    "Request",
    "Fault",
    "REQUEST_OPCODES",
    "check_int",
    "check_number",
    "check_choice",
]

# The opcodes a client sends (native protocol spec, section 2.4).
REQUEST_OPCODES = ("STARTUP", "OPTIONS", "QUERY", "PREPARE", "EXECUTE", "REGISTER", "BATCH",
                   "AUTH_RESPONSE")

ConnectionsTrigger = Union[None, Tuple[int, ...], Callable[["ConnectionInfo"], bool]]
QueryTrigger = Union[None, str, Pattern[str], Callable[[str], bool]]


def check_int(owner: str, name: str, value: Any, minimum: int = 0, maximum: Optional[int] = None) -> None:
    """ValueError unless `value` is an int in [minimum, maximum]."""
    bound = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{owner} {name} must be an integer {bound}, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{owner} {name} must be {bound}, got {value!r}")


def check_number(owner: str, name: str, value: Any, minimum: float = 0.0, *, positive: bool = False,
                 maximum: Optional[float] = None) -> None:
    """ValueError unless `value` is a real number >= minimum (> 0 if `positive`), <= maximum."""
    if positive:
        bound = "> 0"
    else:
        bound = f">= {minimum:g}"
    if maximum is not None:
        bound += f" and <= {maximum:g}"
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        raise TypeError(f"{owner} {name} must be a number {bound}, got {value!r}")
    if (positive and value <= 0) or value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{owner} {name} must be {bound}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{owner} {name} must be one of {allowed}; got {value!r}")


@dataclass(frozen=True)
class ConnectionInfo:
    """What a `connections=` predicate is told about a new connection."""

    number: int  # the node's connection number, from 1
    peer: Tuple[str, int] = ("", 0)
    tls: bool = False
    shard_aware: bool = False  # it came in on a Scylla node's shard-aware port


class Request:
    """One request as the faults see it, and what they decide for its answer.

    A fault reads `opcode`, `count` (requests so far on this connection, from
    1), `stream` and `query` (the QUERY or PREPARE text, an EXECUTE's prepared
    text, a BATCH's statements joined by "; "; "" for other requests),
    `statement_id` (an EXECUTE's prepared id, for an UNPREPARED answer the
    driver acts on), and decides with drop(), answer_with(), delay(),
    on_stream() and close_after().
    """

    __slots__ = ("opcode", "count", "stream", "statement_id", "_query", "_query_of", "dropped", "response",
                 "delay_by", "stream_out", "close_after_answer", "answer_size")

    def __init__(self, opcode: str, count: int, stream: int,
                 query_of: Optional[Callable[[], str]] = None, statement_id: Optional[bytes] = None) -> None:
        self.opcode = opcode
        self.count = count
        self.stream = stream
        self.statement_id = statement_id
        self._query: Optional[str] = None
        self._query_of = query_of
        self.dropped = False
        self.response: Optional["Response"] = None
        self.delay_by = 0.0
        self.stream_out: Optional[int] = None
        self.close_after_answer = False
        # The encoded answer's length, set by the node once it has made it (before it is
        # written): with close_after(), that answer is the tail of the next shape_output.
        self.answer_size: Optional[int] = None

    @property
    def query(self) -> str:
        if self._query is None:
            self._query = self._query_of() if self._query_of is not None else ""
        return self._query

    def drop(self) -> None:
        """Never answer it (the stream stays open on the client)."""
        self.dropped = True

    def answer_with(self, response: "Response") -> None:
        """Answer `response` instead of what the node would (the node does not handle the request)."""
        self.response = response

    def delay(self, seconds: float) -> None:
        """Send the answer `seconds` later (the connection goes on with its other streams)."""
        self.delay_by = max(self.delay_by, seconds)

    def on_stream(self, stream: int) -> None:
        """Send the answer with this stream id instead of the request's."""
        self.stream_out = stream

    def close_after(self) -> None:
        """Close the connection cleanly once this answer is sent."""
        self.close_after_answer = True

    def __repr__(self) -> str:
        return f"<Request {self.opcode} #{self.count} stream {self.stream}>"


class ConnectionControl(Protocol):
    """What a fault may do to the connection it acts on."""

    number: int  # the node's connection number, from 1
    requests: int  # requests received so far

    def hold_input(self) -> None:
        """Stop feeding received bytes to TLS/CQL (they are read and kept)."""

    def discard_input(self) -> None:
        """Read and throw away everything the client sends from now on."""

    def pause_reading(self) -> None:
        """Stop reading from the socket: the client's writes back up (TCP flow control)."""

    def resume_reading(self) -> None:
        """Read from the socket again."""

    def first_time(self, fault: "Fault") -> bool:
        """True the first time a fault asks on this connection (for faults that act once)."""

    def state(self, fault: "Fault") -> Dict[str, Any]:
        """A dict of this fault's own on this connection (counters, buffers)."""

    def reset(self) -> None:
        """Abort with a TCP RST."""

    def close(self) -> None:
        """Close cleanly: TLS close_notify, then FIN."""

    def fin(self) -> None:
        """Close the TCP connection (FIN) without a TLS close_notify: a truncation."""

    def send_close_notify(self) -> None:
        """Send a TLS close_notify now, and leave the TCP connection open (nothing more can be encrypted)."""

    def encrypt(self, plaintext: bytes) -> bytes:
        """TLS records carrying `plaintext`, not sent (send_raw() sends them); plaintext as is without TLS.
        After send_close_notify(), the records that follow the close_notify in sequence (a
        misbehaving sender: TLS forbids writing after it)."""

    def shutdown_write(self) -> None:
        """Half-close: send FIN (after what is queued) and keep reading."""

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the wire now, bypassing TLS."""

    def send_plaintext(self, data: bytes) -> None:
        """Send CQL bytes now (through TLS if any), bypassing every shape_output."""

    def update_keys(self, request_peer: bool) -> None:
        """Send a TLS 1.3 KeyUpdate now (update_requested if `request_peer`)."""

    def wire(self, direction: str) -> "WireLine":
        """The delay line bytes go through on the wire, "in" (from the client) or "out"."""

    def set_close_delay(self, seconds: float) -> None:
        """Close (FIN) only `seconds` after the node or the client asked to close."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        """Run `callback` on the server's loop after `delay` seconds (cancelled at close)."""

    def log(self, fault: "Fault", detail: str) -> None:
        """Record that `fault` acted (FaultApplied in the activity log, with its seed)."""

    def random(self, fault: "Fault", seed: int) -> random.Random:
        """A random generator for `fault` on this connection, seeded from
        `seed` and the connection number: the same seed gives the same
        sequence, run after run."""


_TRIGGER_NAMES = ("connections", "on_request", "opcode", "query", "probability", "seed")
_PATTERN_TYPE = type(re.compile(""))


def _normalized(text: str) -> str:
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class Fault:
    """Base of every fault; the fields are its triggers.

    `connections`: the connection numbers it applies to, or a predicate on a
    ConnectionInfo (None: all). `on_request`: only the Nth request of a
    connection. `opcode`: only requests of these opcodes ("QUERY", ...).
    `query`: only requests whose text contains this (case and spacing
    ignored), matches this compiled regex, or satisfies this predicate.
    `probability`: the chance it acts on each request it matches (or on each
    connection, for a fault that acts on whole connections), drawn from a
    generator seeded with `seed` and the connection number.
    """

    connections: ConnectionsTrigger = None
    on_request: Optional[int] = None
    opcode: Union[None, str, Tuple[str, ...]] = None
    query: QueryTrigger = None
    probability: float = 1.0
    seed: int = 0

    # Which triggers the class understands (seed is always accepted).
    TRIGGERS: ClassVar[FrozenSet[str]] = frozenset({"connections", "probability"})
    # on_request=0 means "right after the handshake" for the classes that say so.
    ON_REQUEST_ZERO: ClassVar[bool] = False

    def __post_init__(self) -> None:
        name = type(self).__name__
        self._check_triggers_allowed(name)
        conns = self.connections
        if conns is not None and not callable(conns):
            if isinstance(conns, int) and not isinstance(conns, bool):
                check_int(name, "connections", conns, 1)
                object.__setattr__(self, "connections", (conns,))
            elif isinstance(conns, (list, tuple, set, frozenset)):
                for number in conns:  # checked before sorting: a mixed list would not sort
                    check_int(name, "connections", number, 1)
                if not conns:
                    raise ValueError(f"{name} connections must name at least one connection number (from 1), "
                                     f"or be None for every connection; got {conns!r}")
                object.__setattr__(self, "connections", tuple(sorted(set(conns))))
            else:
                raise TypeError(f"{name} connections must be connection numbers (from 1) or a predicate "
                                f"taking a ConnectionInfo, got {conns!r}")
        if self.on_request is not None:
            check_int(name, "on_request", self.on_request, 0 if self.ON_REQUEST_ZERO else 1)
        if self.opcode is not None:
            if isinstance(self.opcode, str):
                codes: Tuple[Any, ...] = (self.opcode,)
            elif isinstance(self.opcode, (list, tuple, set, frozenset)):
                codes = tuple(self.opcode)
            else:
                raise TypeError(f"{name} opcode must be an opcode name or a tuple of them "
                                f"({', '.join(REQUEST_OPCODES)}), got {self.opcode!r}")
            upper = tuple(c.upper() if isinstance(c, str) else c for c in codes)
            for code in upper:
                check_choice(name, "opcode", code, REQUEST_OPCODES)
            if not upper:
                raise ValueError(f"{name} opcode must name at least one of {', '.join(REQUEST_OPCODES)}")
            object.__setattr__(self, "opcode", upper)
        if self.query is not None:
            if isinstance(self.query, str):
                if not self.query.strip():
                    raise ValueError(f"{name} query must be non-blank text, a compiled regex or a predicate")
            elif not isinstance(self.query, _PATTERN_TYPE) and not callable(self.query):
                raise TypeError(f"{name} query must be text, a compiled regex (re.compile) or a predicate "
                                f"taking the query text, got {self.query!r}")
        check_number(name, "probability", self.probability, positive=True, maximum=1.0)
        check_int(name, "seed", self.seed, -(2 ** 63))

    def _check_triggers_allowed(self, name: str) -> None:
        defaults = {f.name: f.default for f in fields(Fault)}
        for trigger in ("connections", "on_request", "opcode", "query", "probability"):
            if trigger in self.TRIGGERS:
                continue
            own_default = next((f.default for f in fields(self) if f.name == trigger), defaults[trigger])
            if getattr(self, trigger) != own_default:
                allowed = ", ".join(t for t in _TRIGGER_NAMES if t in self.TRIGGERS or t == "seed")
                raise ValueError(f"{name} cannot be aimed with {trigger}= (it acts on "
                                 f"{self._acts_on()}); it takes {allowed}")

    def _acts_on(self) -> str:
        return "requests" if "opcode" in self.TRIGGERS else "whole connections"

    @property
    def cli_name(self) -> str:
        """The fault's name on the command line (its verb, in kebab case)."""
        from .registry import cli_name

        return cli_name(type(self))

    # -- aiming --------------------------------------------------------------------
    def applies_to(self, info: "ConnectionInfo | int") -> bool:
        """Whether the fault is for this connection at all (the `connections` trigger)."""
        if isinstance(info, int):
            info = ConnectionInfo(info)
        conns = self.connections
        if conns is None:
            return True
        if callable(conns):
            return bool(conns(info))
        return info.number in conns

    def hits_connection(self, ctl: ConnectionControl) -> bool:
        """For faults that act on whole connections: the `probability` draw,
        made once per connection (the same answer every time it is asked)."""
        if self.probability >= 1.0:
            return True
        state = ctl.state(self)
        if "hit" not in state:
            state["hit"] = ctl.random(self, self.seed).random() < self.probability
        return bool(state["hit"])

    def matches_request(self, request: Request) -> bool:
        """Whether `request` is one the fault is aimed at (on_request, opcode, query), no draw made."""
        if self.on_request is not None and request.count != self.on_request:
            return False
        if self.opcode is not None and request.opcode not in self.opcode:
            return False
        return self.query is None or self._query_matches(request.query)

    def hits_request(self, ctl: ConnectionControl, request: Request) -> bool:
        """For faults that act on requests: on_request, opcode, query, then the probability draw."""
        if not self.matches_request(request):
            return False
        if self.probability < 1.0:
            return ctl.random(self, self.seed).random() < self.probability
        return True

    def _query_matches(self, text: str) -> bool:
        query = self.query
        if isinstance(query, str):
            return _normalized(query) in _normalized(text)
        if isinstance(query, _PATTERN_TYPE):
            return query.search(text) is not None
        assert callable(query)
        return bool(query(text))

    def describe_triggers(self) -> str:
        """The triggers given, for logs and failure messages: "on_request=3 seed=7"."""
        parts = []
        for name in _TRIGGER_NAMES:
            value = getattr(self, name)
            default = next(f.default for f in fields(self) if f.name == name)
            if value != default or name == "seed":
                parts.append(f"{name}={getattr(value, 'pattern', None) or getattr(value, '__name__', None) or value!r}"
                             if name in ("query", "connections") and not isinstance(value, (str, tuple))
                             else f"{name}={value!r}")
        return " ".join(parts)

    # -- hook points, in the order a connection meets them -------------------------
    def accepted(self, ctl: ConnectionControl) -> None:
        """The TCP connection was accepted."""

    def tls_config(self, ctl: ConnectionControl, config: "TLSConfig") -> "TLSConfig":
        """The TLS settings for this new connection; return others to change them
        (another certificate, TLS versions, session tickets). The server keeps
        one SSLContext per distinct TLSConfig."""
        return config

    def handshake_output(self, ctl: ConnectionControl, data: bytes) -> bytes:
        """TLS handshake bytes about to be sent; return what to send instead."""
        return data

    def established(self, ctl: ConnectionControl) -> None:
        """TLS handshake done (or the TCP connection accepted, without TLS)."""

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        """A request arrived; decide its answer through `request` (drop, answer_with, delay, ...)."""

    def answer_sent(self, ctl: ConnectionControl, request: Request) -> None:
        """The answer to `request` was just written (after any delay)."""

    def input_buffered(self, ctl: ConnectionControl, pending: int) -> None:
        """`pending` bytes of a frame not yet complete are buffered after a read."""

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        """Plaintext the node is about to send: None to send it as it is, or
        the pieces to send instead, each with the delay before it (seconds).
        With TLS, each piece becomes TLS records of its own. [] holds it all
        (the fault sends it later with ctl.send_plaintext)."""
        return None

    def closing(self, ctl: ConnectionControl) -> None:
        """The connection is about to close (either side asked)."""
