# CQL-level faults: what a node's answers can do to a client (late, never,
# errors, wrong streams, connection limits).
#
# Strategy: a request fault decides on the Request the server hands it
# (request_received): delay(), drop(), answer_with(), on_stream(),
# close_after(); the node's own answer is untouched otherwise.
# RefuseConnectionsAfter acts at accept. None of them sleeps or touches bytes.
#
# Rules: CQL errors are built from fakecql.cqlerrors, named by their error
# code in snake case ("read_timeout"). AnswerError holds the error's fields
# as a sorted tuple of (name, value) pairs, converted (a command line's
# strings too) and checked at construction: the fault stays a hashable
# frozen value, and a field that cannot be on the wire is refused at once,
# named with the fields the error has. Every act is logged (FaultApplied).
from __future__ import annotations

import dataclasses
import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Type, Union

from .. import cqlerrors
from ..cqlerrors import CQLError, as_consistency
from .base import (
    ConnectionControl,
    ConnectionsTrigger,
    Fault,
    QueryTrigger,
    Request,
    check_choice,
    check_int,
    check_number,
)

__all__ = [
    "DelayAnswer",
    "NeverAnswer",
    "AnswerError",
    "AnswerOnWrongStream",
    "CloseAfterRequests",
    "RefuseConnectionsAfter",
    "CQL_ERRORS",
    "error_field_names",
    "AnswerVerbs",
]

_ON_REQUESTS = frozenset({"connections", "on_request", "opcode", "query", "probability"})

# Stream ids of protocol v3 and later are signed 16-bit; a client uses
# 0..32767 for its requests, and -1 is where the node pushes events.
MIN_STREAM, MAX_STREAM = -32768, 32767

# Every CQL error fakecql can answer, by its code's name in snake case.
CQL_ERRORS: Dict[str, Type[CQLError]] = {
    cls.code.name.lower(): cls
    for cls in (getattr(cqlerrors, name) for name in cqlerrors.__all__)
    if isinstance(cls, type) and issubclass(cls, CQLError) and cls is not CQLError
}

# The write types of WRITE_TIMEOUT / WRITE_FAILURE (native protocol spec, section 9).
WRITE_TYPES = ("SIMPLE", "BATCH", "UNLOGGED_BATCH", "COUNTER", "BATCH_LOG", "CAS", "VIEW", "CDC")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class DelayAnswer(Fault):
    """A node slow to answer some requests (a GC pause, a hot partition, a
    slow disk, a coordinator waiting on replicas): the answer to each request
    it is aimed at (by opcode, query, on_request, ...) goes out `seconds`
    later, while the connection goes on answering its other streams."""

    seconds: float = 1.0

    TRIGGERS = _ON_REQUESTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("DelayAnswer", "seconds", self.seconds, positive=True)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if self.hits_request(ctl, request):
            request.delay(self.seconds)
            ctl.log(self, f"delayed the answer to request {request.count} ({request.opcode}, "
                          f"stream {request.stream}) by {self.seconds:g} s")


@dataclass(frozen=True)
class NeverAnswer(Fault):
    """A request lost inside a node (a replica that never replies, a bug that
    drops a response): the requests it is aimed at are never answered and
    their streams stay open on the client; the connection goes on answering
    the others. Only the client's own request timeout ends the wait."""

    TRIGGERS = _ON_REQUESTS

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if self.hits_request(ctl, request):
            request.drop()
            ctl.log(self, f"left request {request.count} ({request.opcode}, stream {request.stream}) unanswered")


# -- AnswerError's fields: each converted from Python values or command-line text --------
def _as_int(owner: str, name: str, value: Any, maximum: int) -> int:
    if isinstance(value, str):
        try:
            value = int(value.strip(), 0)
        except ValueError:
            raise ValueError(f"{owner} {name} must be an integer from 0 to {maximum}, got {value!r}") from None
    check_int(owner, name, value, 0, maximum)
    return int(value)


def _as_bool(owner: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{owner} {name} must be true or false ({', '.join(_TRUE + _FALSE)}), got {value!r}")


def _as_text(owner: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{owner} {name} must be text, got {value!r}")
    return value


def _as_texts(owner: str, name: str, value: Any) -> Tuple[str, ...]:
    """A tuple of text; on a command line, the items separated by ';'."""
    items = [part.strip() for part in value.split(";") if part.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise TypeError(f"{owner} {name} must be a tuple of text (on a command line: 'int;text'), got {value!r}")
    return tuple(items)


def _as_reasons(owner: str, name: str, value: Any) -> Tuple[Tuple[Any, int], ...]:
    """(endpoint, failure code) pairs; on a command line 'ADDRESS:CODE;ADDRESS:CODE'."""
    if isinstance(value, str):
        pairs: Any = [part.strip().rsplit(":", 1) for part in value.split(";") if part.strip()]
    else:
        pairs = value
    expected = f"{owner} {name} must be (address, failure code) pairs (on a command line: '127.0.0.2:0;127.0.0.3:1')"
    if not isinstance(pairs, (list, tuple)):
        raise TypeError(f"{expected}, got {value!r}")
    reasons = []
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{expected}, got {value!r}")
        try:
            address = ipaddress.ip_address(pair[0].strip("[]") if isinstance(pair[0], str) else pair[0])
        except ValueError:
            raise ValueError(f"{expected}; {pair[0]!r} is not an IP address") from None
        reasons.append((address, _as_int(owner, f"{name} failure code", pair[1], 0xFFFF)))
    return tuple(reasons)


def _as_statement_id(owner: str, name: str, value: Any) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise ValueError(f"{owner} {name} must be bytes or hex text (omit it: the id of the statement executed), "
                     f"got {value!r}")


def _as_optional_short(owner: str, name: str, value: Any) -> Optional[int]:
    return None if value is None else _as_int(owner, name, value, 0xFFFF)


_INT32 = 2 ** 31 - 1
# Field name (as fakecql.cqlerrors names it) -> its converter. Every field of
# every error class is here (a test checks).
_CONVERTERS: Dict[str, Callable[[str, str, Any], Any]] = {
    "consistency": lambda owner, name, value: as_consistency(
        value.strip() if isinstance(value, str) else value, f"{owner} {name}"),
    "received": lambda owner, name, value: _as_int(owner, name, value, _INT32),
    "block_for": lambda owner, name, value: _as_int(owner, name, value, _INT32),
    "required": lambda owner, name, value: _as_int(owner, name, value, _INT32),
    "alive": lambda owner, name, value: _as_int(owner, name, value, _INT32),
    "num_failures": lambda owner, name, value: _as_int(owner, name, value, _INT32),
    "contentions": _as_optional_short,
    "data_present": _as_bool,
    "write_type": lambda owner, name, value: _write_type(owner, name, value),
    "keyspace": _as_text,
    "table": _as_text,
    "function": _as_text,
    "arg_types": _as_texts,
    "reasons": _as_reasons,
    "statement_id": _as_statement_id,
}


def _write_type(owner: str, name: str, value: Any) -> str:
    text = _as_text(owner, name, value).strip().upper()
    check_choice(owner, name, text, WRITE_TYPES)
    return text


def error_field_names(error: str) -> Tuple[str, ...]:
    """The fields an error of this name carries on the wire (besides its message)."""
    return tuple(f.name for f in dataclasses.fields(CQL_ERRORS[error]) if f.name != "message")  # type: ignore[arg-type]


def _error_name(error: Any) -> str:
    if isinstance(error, type) and issubclass(error, CQLError) and error is not CQLError:
        return error.code.name.lower()
    if isinstance(error, str):
        name = error.strip().lower().replace("-", "_")
        if name in CQL_ERRORS:
            return name
    allowed = ", ".join(sorted(CQL_ERRORS))
    raise ValueError(f"AnswerError error must be one of {allowed} (or a fakecql.cqlerrors class or value); "
                     f"got {error!r}")


@dataclass(frozen=True, init=False)
class AnswerError(Fault):
    """A node answering a CQL error instead of a result: overloaded (its
    queues full), is_bootstrapping (joining the ring), read/write timeouts and
    failures (replicas slow or failing behind the coordinator), unavailable
    (too few replicas alive for the consistency level), server_error (a bug),
    unprepared (a restarted node that lost its prepared statements), ... each
    with the fields that code carries on the wire.

    AnswerError(error="read_timeout", received=1, block_for=2, opcode="QUERY"):
    keyword arguments that are not triggers are the error's fields (see
    `error_field_names(name)`); text is converted ("1", "QUORUM", "true"), so a
    command line's values work. `error` may also be a fakecql.cqlerrors class
    or value (ReadTimeout(received=1)). The fields are kept in `error_fields`,
    a sorted tuple of (name, value) pairs. An UNPREPARED without statement_id
    names the id of the statement executed.
    """

    error: str = "overloaded"
    message: Optional[str] = None
    error_fields: Tuple[Tuple[str, Any], ...] = ()

    TRIGGERS = _ON_REQUESTS

    def __init__(
        self,
        error: Any = "overloaded",
        message: Optional[str] = None,
        *,
        error_fields: Union[Iterable[Tuple[str, Any]], Mapping[str, Any]] = (),
        connections: ConnectionsTrigger = None,
        on_request: Optional[int] = None,
        opcode: Union[None, str, Tuple[str, ...]] = None,
        query: QueryTrigger = None,
        probability: float = 1.0,
        seed: int = 0,
        **fields: Any,
    ) -> None:
        given: Dict[str, Any] = dict(error_fields.items() if isinstance(error_fields, Mapping) else error_fields)
        if isinstance(error, CQLError):  # a value from fakecql.cqlerrors: its fields, where not the defaults
            for spec in dataclasses.fields(error):  # type: ignore[arg-type]
                value = getattr(error, spec.name)
                if spec.name != "message" and value != spec.default:
                    given.setdefault(spec.name, value)
            if message is None:
                message = error.message
            error = type(error)
        given.update(fields)
        name = _error_name(error)
        owner = f"AnswerError {name}"
        allowed = error_field_names(name)
        converted = []
        for field_name, value in given.items():
            if field_name not in allowed:
                takes = f"takes the fields {', '.join(allowed)}" if allowed else "takes no fields"
                raise ValueError(f"{owner} {takes} (besides message, and the triggers connections, on_request, "
                                 f"opcode, query, probability, seed); got {field_name}={value!r}")
            converted.append((field_name, _CONVERTERS[field_name](owner, field_name, value)))
        if message is not None and not isinstance(message, str):
            raise TypeError(f"{owner} message must be text (None: the message Cassandra gives), got {message!r}")
        for attribute, value in (("error", name), ("message", message), ("error_fields", tuple(sorted(converted))),
                                 ("connections", connections), ("on_request", on_request), ("opcode", opcode),
                                 ("query", query), ("probability", probability), ("seed", seed)):
            object.__setattr__(self, attribute, value)
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            self.cql_error()  # every field checked now (the classes check they can be on the wire)
        except Exception as exc:
            raise ValueError(f"AnswerError {self.error} cannot carry {dict(self.error_fields)!r}: {exc}") from None

    def cql_error(self) -> CQLError:
        """The fakecql.cqlerrors value this fault answers with."""
        return CQL_ERRORS[self.error](message=self.message, **dict(self.error_fields))  # type: ignore[call-arg]

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if not self.hits_request(ctl, request):
            return
        response = self.cql_error().to_error(request.statement_id)
        request.answer_with(response)
        shown = " ".join(f"{name}={getattr(value, 'name', value)}" for name, value in self.error_fields)
        ctl.log(self, f"answered request {request.count} ({request.opcode}, stream {request.stream}) with "
                      f"{response.code.name}" + (f" ({shown})" if shown else ""))


@dataclass(frozen=True)
class AnswerOnWrongStream(Fault):
    """A node (or a proxy multiplexing connections) mixing up stream ids: the
    answer to each request it is aimed at goes out on another stream, `stream`
    or by default the request's + 16384 (mod 32768), an id a client taking the
    lowest free ids has not got in flight. The client must not take it for
    another request's answer; the request itself stays unanswered. Streams
    are signed 16-bit (protocol v3 and later, all fakecql serves); -1 is the
    event stream, so stream=-1 makes the answer look like a pushed event."""

    stream: Optional[int] = None

    TRIGGERS = _ON_REQUESTS

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stream is not None:
            check_int("AnswerOnWrongStream", "stream", self.stream, MIN_STREAM, MAX_STREAM)

    def wrong_stream(self, stream: int) -> int:
        """The stream the answer to a request on `stream` goes out on."""
        if self.stream is not None:
            return self.stream
        return (stream + 16384) % (MAX_STREAM + 1)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if self.hits_request(ctl, request):
            out = self.wrong_stream(request.stream)
            request.on_stream(out)
            ctl.log(self, f"answered request {request.count} ({request.opcode}) on stream {out} "
                          f"instead of {request.stream}")


@dataclass(frozen=True)
class CloseAfterRequests(Fault):
    """A node that ends connections after a number of requests (a proxy or
    load balancer recycling connections, a node draining): answer `count`
    requests (those matching `opcode`/`query`, if given; all of them
    otherwise, OPTIONS and STARTUP included), then close cleanly (TLS
    close_notify and FIN) right after the last answer. Requests that came in
    behind it are left unanswered."""

    count: int = 1

    TRIGGERS = frozenset({"connections", "opcode", "query", "probability"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("CloseAfterRequests", "count", self.count, 1)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if not self.matches_request(request) or not self.hits_connection(ctl):
            return
        state = ctl.state(self)
        state["counted"] = counted = state.get("counted", 0) + 1
        if counted == self.count:
            request.close_after()
            ctl.log(self, f"closing after the answer to request {request.count} ({request.opcode}), "
                          f"the last of the {self.count} it lets through")


class _Counter:
    """A count shared by every connection (and every node) a fault sees:
    each node runs its own loop thread, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value = 0

    def next(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    def __repr__(self) -> str:
        return f"<counted {self._value}>"

    def __reduce__(self) -> Tuple[Any, ...]:
        return (_Counter, ())  # a copy (pickled for another process) counts afresh


@dataclass(frozen=True)
class RefuseConnectionsAfter(Fault):
    """A node at its connection limit (native_transport_max_concurrent_connections),
    or a firewall / connection-rate limiter in front of it: accept `count`
    connections, counted from when the fault was added (each fault counts its
    own, over every node it is added to), then reset (TCP RST) every later one
    right at accept, before any TLS byte. The TCP handshake still completes
    (the kernel does it), so the client sees a reset, not "connection
    refused": that would need the listener closed, which this does not do."""

    count: int = 1
    _accepted: _Counter = field(default_factory=_Counter, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("RefuseConnectionsAfter", "count", self.count, 0)

    def accepted(self, ctl: ConnectionControl) -> None:
        number = self._accepted.next()
        if number <= self.count or not self.hits_connection(ctl):
            return
        ctl.log(self, f"reset at accept: connection {number} since the fault was added, over the limit of "
                      f"{self.count}")
        ctl.reset()


class AnswerVerbs:
    """server.faults verbs for the CQL-level faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError

    def delay_answer(self, seconds: float, **triggers: Any) -> Fault:
        """Send the answer to the requests aimed at (opcode=, query=, ...) `seconds` late."""
        return self.add(DelayAnswer(seconds=seconds, **triggers))

    def never_answer(self, **triggers: Any) -> Fault:
        """Never answer the requests aimed at (their streams stay open)."""
        return self.add(NeverAnswer(**triggers))

    def answer_error(self, error: Any = "overloaded", message: Optional[str] = None, **fields: Any) -> Fault:
        """Answer the requests aimed at with a CQL error and its fields (received=1, block_for=2, ...)."""
        return self.add(AnswerError(error, message, **fields))

    def answer_on_wrong_stream(self, stream: Optional[int] = None, **triggers: Any) -> Fault:
        """Answer the requests aimed at on another stream id (`stream`, or one the client is not using)."""
        return self.add(AnswerOnWrongStream(stream=stream, **triggers))

    def close_after_requests(self, count: int, **triggers: Any) -> Fault:
        """Answer `count` requests, then close the connection cleanly."""
        return self.add(CloseAfterRequests(count=count, **triggers))

    def refuse_connections_after(self, count: int, **triggers: Any) -> Fault:
        """Accept `count` more connections, then reset every new one at accept."""
        return self.add(RefuseConnectionsAfter(count=count, **triggers))


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {
    "delay_answer": DelayAnswer,
    "never_answer": NeverAnswer,
    "answer_error": AnswerError,
    "answer_on_wrong_stream": AnswerOnWrongStream,
    "close_after_requests": CloseAfterRequests,
    "refuse_connections_after": RefuseConnectionsAfter,
}
