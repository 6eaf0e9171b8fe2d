# The activity log: what a node saw, for tests to assert on.
#
# Strategy: entries are small frozen records appended by the server's loop
# thread (and its worker threads) and read by the test's thread; one lock
# and one condition guard the log. The log is a ring: a deque of the most
# recent entries, bounded by their count and by the characters of query
# text they hold (FrameReceived.query, UnexpectedRequest.query) plus the
# bytes of the bound values a request carried (FrameReceived.budget); the oldest
# go first. Incidents (the entries a test did not ask for: a malformed
# frame, an unexpected query, an exception inside the server) are also kept
# in a list of their own until the test takes them, so eviction from the
# ring never loses one; that list has a bound too, and the incidents it
# drops are counted and reported, never silently lost. Counters (connections,
# requests by opcode, incidents by kind, what was dropped) are totals that
# survive eviction.
#
# A repeated request's entry (add_repeat) is kept as a small tuple and made
# a FrameReceived when read, unless a subscriber of frames or a waiter needs
# it at once; subscribe(kinds=...) lets an incident printer cost nothing per
# request.
#
# Rules: add(), add_repeat() and count_request() are on the node's hot path: O(1), no scan
# of the entries. Nothing the test supplies (a wait_for predicate, a
# subscriber) runs under the lock. A subscriber that raises becomes a
# ServerException incident (the exception is never swallowed) and add()
# carries on; an exception raised while that incident is being delivered is
# logged but not delivered again, so a broken subscriber cannot recurse.
# Every wait is bounded.
from __future__ import annotations

import re
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Deque, Dict, List, Mapping, Optional, Pattern, Tuple, Type, TypeVar, Union

from . import cql
from .limits import MiB, Limits
from .requestlog import BoundValue, LoggedStatement

__all__ = [
    "Entry",
    "ConnectionOpened",
    "HandshakeCompleted",
    "HandshakeFailed",
    "FrameReceived",
    "ResponseSent",
    "VersionRefused",
    "ConnectionClosed",
    "Incident",
    "ProtocolIncident",
    "TLSIncident",
    "UnexpectedRequest",
    "ServerException",
    "FaultApplied",
    "ActivityCounters",
    "ActivityLog",
]


@dataclass(frozen=True)
class Entry:
    connection: int  # the node's connection number, 0 for node-wide entries
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class ConnectionOpened(Entry):
    peer: Tuple[str, int] = ("", 0)
    tls: bool = False
    shard: Optional[int] = None  # the Scylla shard serving it (CQLServer(shards=N)); None: not sharded
    shard_aware: bool = False  # it came in on the shard-aware port (its shard is its source port % N)


@dataclass(frozen=True)
class HandshakeCompleted(Entry):
    protocol: str = ""
    cipher: str = ""
    session_reused: bool = False
    client_cert_subject: Optional[str] = None


@dataclass(frozen=True)
class HandshakeFailed(Entry):
    reason: str = ""


@dataclass(frozen=True)
class FrameReceived(Entry):
    version: int = 0
    stream: int = 0
    opcode: str = ""
    length: int = 0
    query: Optional[str] = None  # QUERY and PREPARE text; the prepared text for EXECUTE; "BATCH"
    startup_options: Optional[Dict[str, str]] = field(default=None, compare=False)  # STARTUP's
    shard: Optional[int] = None  # the Scylla shard that served it (CQLServer(shards=N)); None: not sharded
    # What a QUERY, EXECUTE or BATCH asked (fakecql/requestlog.py); None/() for other requests.
    node: str = ""  # the node's address, "host:port"
    keyspace: Optional[str] = None  # the request's (v5), the prepared statement's, or the connection's (USE)
    consistency: Optional[str] = None  # "QUORUM", ...
    serial_consistency: Optional[str] = None
    page_size: Optional[int] = None
    timestamp: Optional[int] = None  # the client-provided default timestamp (microseconds)
    values: Tuple[BoundValue, ...] = field(default=(), compare=False)  # decoded where the types are known
    statements: Tuple[LoggedStatement, ...] = field(default=(), compare=False)  # a BATCH's

    @classmethod
    def copy_of(cls, entry: "FrameReceived", *, stream: int, length: int, at: Optional[float] = None) -> "FrameReceived":
        """`entry` again, received now on `stream`: the node's hot path logs a
        repeated request this way (no field is recomputed; values are shared,
        being immutable)."""
        copy = object.__new__(cls)
        fields = copy.__dict__
        fields.update(entry.__dict__)
        fields["stream"] = stream
        fields["length"] = length
        fields["at"] = time.monotonic() if at is None else at
        return copy

    @property
    def budget(self) -> int:
        """What the log's text bound counts for it: query text plus bound values' bytes."""
        known = self.__dict__.get("_budget")  # computed once: the fields never change (copies share it)
        if known is not None:
            return known  # type: ignore[no-any-return]
        size = len(self.query) if self.query else 0
        if self.values:
            size += sum(v.size for v in self.values)
        if self.statements:
            size += sum(s.budget for s in self.statements)
        self.__dict__["_budget"] = size
        return size


@dataclass(frozen=True)
class ResponseSent(Entry):
    stream: int = 0
    opcode: str = ""
    summary: str = ""


@dataclass(frozen=True)
class VersionRefused(Entry):
    """A client asked for a protocol version the node does not serve: normal
    negotiation (the driver retries lower), so not an incident."""

    requested: int = 0
    answered_in: int = 0


@dataclass(frozen=True)
class ConnectionClosed(Entry):
    reason: str = ""


@dataclass(frozen=True)
class FaultApplied(Entry):
    fault: str = ""
    detail: str = ""
    seed: int = 0  # the fault's seed: the same seed replays the same choices
    triggers: str = ""  # how the fault was aimed ("on_request=3 seed=0")


@dataclass(frozen=True)
class Incident(Entry):
    """Something the node saw that a test did not ask for."""

    description: str = ""


@dataclass(frozen=True)
class ProtocolIncident(Incident):
    """A malformed frame or body; the node answered a ProtocolError."""

    stream: int = 0
    fatal: bool = False


@dataclass(frozen=True)
class TLSIncident(Incident):
    """A TLS error after the handshake (a corrupt or forged record); the node sent its alert and closed."""


@dataclass(frozen=True)
class UnexpectedRequest(Incident):
    """A query (or other request) nothing primed or built in could answer."""

    query: str = ""


@dataclass(frozen=True)
class ServerException(Incident):
    """An exception raised inside the server; the traceback is in `description`."""

    exception: Optional[BaseException] = field(default=None, compare=False)


E = TypeVar("E", bound=Entry)

Subscriber = Callable[[Entry], None]


_TEXT_HOLDERS = (FrameReceived, UnexpectedRequest)  # the entries whose `query` the text bound counts


# A FrameReceived logged again (ActivityLog.add_repeat): the entry, stream, length, time.
_Repeat = Tuple["FrameReceived", int, int, float]


def _made(ring: "Deque[Union[Entry, _Repeat]]") -> List[Entry]:
    """The ring's entries, each repeat made a FrameReceived of its own."""
    return [FrameReceived.copy_of(e[0], stream=e[1], length=e[2], at=e[3]) if isinstance(e, tuple) else e
            for e in ring]


def _text_size(entry: Union[Entry, _Repeat]) -> int:
    """Characters of query text `entry` holds, and bytes of its bound values (what the text bound counts)."""
    if type(entry) is tuple:
        return entry[0].budget  # type: ignore[no-any-return]
    if type(entry) is FrameReceived or isinstance(entry, FrameReceived):
        return entry.budget
    if isinstance(entry, UnexpectedRequest):
        return len(entry.query) if entry.query else 0
    return 0


def _bound(name: str, value: Optional[int]) -> Optional[int]:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"ActivityLog {name} must be a positive integer or None (unbounded), got {value!r}")
    return value


@dataclass(frozen=True)
class ActivityCounters:
    """Totals since the log was made (or cleared): eviction does not change them."""

    entries: int = 0  # entries ever added
    connections: int = 0  # ConnectionOpened entries
    requests: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # count_request, by opcode
    incidents: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))  # by type name
    entries_dropped: int = 0  # evicted from the ring, oldest first
    text_bytes_dropped: int = 0  # query text those held (characters: len of the str)
    incidents_dropped: int = 0  # dropped from the incident list before the test took them

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    @property
    def total_incidents(self) -> int:
        return sum(self.incidents.values())


class ActivityLog:
    """Thread-safe record of a node's recent activity, with counters of all of it.

    Keeps the newest `max_entries` entries holding at most `max_text_bytes`
    characters of query text (the newest entry is always kept, even if its
    text alone is longer), and up to `max_incidents` incidents the test has
    not taken, within a text budget of `max_text_bytes` of their own. `None`
    lifts a bound; `ActivityLog.unbounded()` keeps everything.
    """

    DEFAULT_MAX_INCIDENTS = 10_000

    def __init__(
        self,
        max_entries: Optional[int] = 100_000,
        max_text_bytes: Optional[int] = 64 * MiB,
        *,
        max_incidents: Optional[int] = DEFAULT_MAX_INCIDENTS,
    ) -> None:
        self.max_entries = _bound("max_entries", max_entries)
        self.max_text_bytes = _bound("max_text_bytes", max_text_bytes)
        self.max_incidents = _bound("max_incidents", max_incidents)
        self._lock = threading.Lock()  # the hot paths take it directly (a Condition's `with` is Python code)
        self._condition = threading.Condition(self._lock)
        # (callback, kinds or None for all); replaced, never mutated: add() reads it unlocked.
        self._subscribers: Tuple[Tuple[Subscriber, Optional[Tuple[Type[Entry], ...]]], ...] = ()
        self._frames_subscribed = False  # a subscriber takes FrameReceived entries (see add_repeat)
        self._delivering_report = threading.local()  # set while a subscriber's failure is being delivered
        self._reset()

    def _reset(self) -> None:
        self._ring: Deque[Union[Entry, _Repeat]] = deque(maxlen=self.max_entries)  # see add_repeat
        self._text = 0  # query text the ring holds
        self._untaken: Deque[Incident] = deque()  # incidents the test has not taken
        self._untaken_text = 0
        self._untaken_dropped = 0  # incidents dropped from _untaken since the test last took them
        self._waiters: List[List[Entry]] = []  # one buffer per wait_for in progress
        self._added = 0
        self._connections = 0
        self._requests: Dict[str, int] = {}
        self._incident_kinds: Dict[str, int] = {}
        self._dropped = 0
        self._text_dropped = 0
        self._incidents_dropped = 0

    @classmethod
    def unbounded(cls) -> "ActivityLog":
        """A log that keeps every entry and every incident (for tests that need everything)."""
        return cls(max_entries=None, max_text_bytes=None, max_incidents=None)

    @classmethod
    def from_limits(cls, limits: Limits) -> "ActivityLog":
        """A log bounded by `limits.log_entries` and `limits.log_text_bytes`."""
        return cls(max_entries=limits.log_entries, max_text_bytes=limits.log_text_bytes)

    # -- the node's side (hot path) ---------------------------------------------------------
    def add(self, entry: Entry) -> None:
        self._append(entry)
        if self._subscribers:
            self._deliver(entry)

    def _append(self, entry: Entry) -> None:
        frame = type(entry) is FrameReceived  # the common entry, one per request: fewer checks
        size = entry.budget if frame else _text_size(entry)  # type: ignore[attr-defined]
        with self._lock:
            self._into_ring(entry, size)
            if frame:
                pass
            elif isinstance(entry, Incident):
                self._add_incident(entry, size)
            elif isinstance(entry, ConnectionOpened):
                self._connections += 1
            if self._waiters:
                self._wake_waiters(entry)

    def _into_ring(self, item: "Union[Entry, _Repeat]", size: int) -> None:
        """Under the lock: `item` into the ring (the oldest dropped and counted
        when it is full), its text counted against the budget."""
        self._added += 1
        ring = self._ring
        if len(ring) == ring.maxlen:  # full: append() drops the oldest, count it
            dropped = _text_size(ring[0])
            self._text -= dropped
            self._dropped += 1
            self._text_dropped += dropped
        ring.append(item)
        self._text += size
        if self.max_text_bytes is not None and self._text > self.max_text_bytes:
            self._evict_text()

    def _wake_waiters(self, item: "Union[Entry, _Repeat]") -> None:
        """Under the lock: every wait_for() in progress sees `item`."""
        for waiter in self._waiters:
            waiter.append(item)  # type: ignore[arg-type]
        self._condition.notify_all()

    def add_repeat(self, entry: "FrameReceived", stream: int, length: int, *, count: Optional[str] = None) -> None:
        """Add `entry` again, received now on `stream` with a body of `length`
        bytes (FrameReceived.copy_of): the node's hot path for a repeated
        request. The ring keeps (entry, stream, length, at) and makes the
        FrameReceived when read; with a subscriber or a waiter it is made now.
        `count`: also count_request(count), under the same lock."""
        at = time.monotonic()
        if self._frames_subscribed or self._waiters:
            if count is not None:
                self.count_request(count)
            self.add(FrameReceived.copy_of(entry, stream=stream, length=length, at=at))
            return
        size = entry.budget
        with self._lock:
            if count is not None:
                requests = self._requests
                requests[count] = requests.get(count, 0) + 1
            if self._waiters:  # came meanwhile: it needs the entry itself
                repeat: Union[Entry, _Repeat] = FrameReceived.copy_of(entry, stream=stream, length=length, at=at)
            else:
                repeat = (entry, stream, length, at)
            self._into_ring(repeat, size)
            if self._waiters:
                self._wake_waiters(repeat)

    def count_request(self, opcode: str) -> None:
        """Count one request by its opcode's name (QUERY, EXECUTE, ...); kept even when frames are not logged."""
        with self._lock:
            requests = self._requests
            requests[opcode] = requests.get(opcode, 0) + 1

    def _evict_text(self) -> None:
        ring, max_text = self._ring, self.max_text_bytes
        while len(ring) > 1 and max_text is not None and self._text > max_text:
            size = _text_size(ring.popleft())
            self._text -= size
            self._dropped += 1
            self._text_dropped += size

    def _add_incident(self, incident: Incident, size: int) -> None:
        kind = type(incident).__name__
        self._incident_kinds[kind] = self._incident_kinds.get(kind, 0) + 1
        untaken, max_count, max_text = self._untaken, self.max_incidents, self.max_text_bytes
        untaken.append(incident)
        self._untaken_text += size
        while len(untaken) > 1 and ((max_count is not None and len(untaken) > max_count)
                                    or (max_text is not None and self._untaken_text > max_text)):
            self._untaken_text -= _text_size(untaken.popleft())
            self._untaken_dropped += 1
            self._incidents_dropped += 1

    # -- subscribers ------------------------------------------------------------------------
    def subscribe(self, callback: Subscriber, *, kinds: Optional[Tuple[Type[Entry], ...]] = None) -> None:
        """Call `callback(entry)` for every entry added from now on (of `kinds` only,
        if given: a subscriber to incidents costs the node nothing per request), in
        the thread that adds it.

        An exception it raises is logged as a ServerException incident (so a
        test fails at teardown) and does not stop the others or the node."""
        with self._condition:
            self._subscribers = self._subscribers + ((callback, kinds),)
            self._frames_subscribed = any(k is None or issubclass(FrameReceived, k) for _, k in self._subscribers)

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling `callback`; ValueError if it was not subscribed."""
        with self._condition:
            subscribers = list(self._subscribers)
            for i, (subscribed, _) in enumerate(subscribers):
                if subscribed == callback:
                    del subscribers[i]
                    break
            else:
                raise ValueError(f"{callback!r} is not subscribed to this activity log") from None
            self._subscribers = tuple(subscribers)
            self._frames_subscribed = any(k is None or issubclass(FrameReceived, k) for _, k in self._subscribers)

    def _deliver(self, entry: Entry) -> None:
        reports: List[ServerException] = []
        for callback, kinds in self._subscribers:
            if kinds is not None and not isinstance(entry, kinds):
                continue
            try:
                callback(entry)
            except Exception as exc:
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
                reports.append(ServerException(
                    entry.connection, exception=exc,
                    description=f"activity subscriber {callback!r} raised on {type(entry).__name__}:\n{text}",
                ))
        for report in reports:  # after every subscriber had the entry
            if getattr(self._delivering_report, "active", False):
                self._append(report)  # a failure while delivering a failure: logged, not delivered
                continue
            self._delivering_report.active = True
            try:
                self.add(report)
            finally:
                self._delivering_report.active = False

    # -- what tests read --------------------------------------------------------------------
    @property
    def entries(self) -> List[Entry]:
        """The entries the log still holds, oldest first."""
        with self._condition:
            return _made(self._ring)

    def of_type(self, kind: Type[E]) -> List[E]:
        return [e for e in self.entries if isinstance(e, kind)]

    def queries(self) -> List[str]:
        """The text of every QUERY, EXECUTE and BATCH statement the log holds, in order."""
        return [e.query for e in self.of_type(FrameReceived) if e.query is not None and e.opcode != "PREPARE"]

    def requests(
        self,
        statement: Optional[Union[str, Pattern[str], Callable[[str], bool]]] = None,
        *,
        opcode: Optional[str] = None,
        connection: Optional[int] = None,
        node: Optional[str] = None,
    ) -> List[FrameReceived]:
        """The requests the log holds, oldest first, narrowed to a statement (its text,
        compared normalized; a compiled re searched in the normalized text; or a
        predicate over it: a BATCH is kept if one of its statements matches), an
        opcode ("QUERY", "EXECUTE", "BATCH", ...), a connection or a node ("host:port")."""
        if statement is None:
            matches: Optional[Callable[[str], bool]] = None
        elif isinstance(statement, str):
            wanted = cql.normalize_query(statement)
            matches = lambda text: cql.normalize_query(text) == wanted  # noqa: E731
        elif isinstance(statement, re.Pattern):
            matches = lambda text: statement.search(cql.normalize_query(text)) is not None  # noqa: E731
        elif callable(statement):
            predicate = statement
            matches = lambda text: bool(predicate(cql.normalize_query(text)))  # noqa: E731
        else:
            raise TypeError(f"requests() takes a statement as a str, a compiled re or a callable, got {statement!r}")
        found = []
        for entry in self.of_type(FrameReceived):
            if opcode is not None and entry.opcode != opcode.upper():
                continue
            if connection is not None and entry.connection != connection:
                continue
            if node is not None and entry.node != node:
                continue
            if matches is not None:
                texts = [s.query for s in entry.statements] if entry.opcode == "BATCH" else [entry.query or ""]
                if entry.query is None and not entry.statements or not any(matches(t) for t in texts):
                    continue
            found.append(entry)
        return found

    def handshakes(self) -> List[HandshakeCompleted]:
        return self.of_type(HandshakeCompleted)

    def incidents(self) -> List[Incident]:
        """Incidents not yet taken by the test (evicted from `entries` or not)."""
        with self._condition:
            return list(self._untaken)

    @property
    def incidents_dropped(self) -> int:
        """Incidents dropped (over `max_incidents`) since the test last took them: 0 unless a flood."""
        with self._condition:
            return self._untaken_dropped

    def take_incidents(self) -> List[Incident]:
        """Return the incidents so far and mark them handled (the test asserts on them).

        Also acknowledges the incidents dropped meanwhile (`incidents_dropped`
        before the call; counters() keeps the total)."""
        with self._condition:
            found = list(self._untaken)
            self._untaken.clear()
            self._untaken_text = 0
            self._untaken_dropped = 0
            return found

    def counters(self) -> ActivityCounters:
        with self._condition:
            return ActivityCounters(
                entries=self._added,
                connections=self._connections,
                requests=MappingProxyType(dict(self._requests)),
                incidents=MappingProxyType(dict(self._incident_kinds)),
                entries_dropped=self._dropped,
                text_bytes_dropped=self._text_dropped,
                incidents_dropped=self._incidents_dropped,
            )

    def wait_for(self, predicate: Callable[[Entry], bool], *, timeout: float = 5.0) -> Entry:
        """The first entry, held or added before `timeout` s, matching `predicate`; else TimeoutError.

        Sees every entry added while it waits, even one evicted before it
        looked. `predicate` runs in the calling thread, outside the lock."""
        deadline = time.monotonic() + timeout
        arrived: List[Entry] = []
        with self._condition:
            batch = _made(self._ring)
            self._waiters.append(arrived)
        try:
            while True:
                for entry in batch:
                    if predicate(entry):
                        return entry
                with self._condition:
                    while not arrived:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise TimeoutError(
                                f"no matching activity within {timeout} s; the log holds {len(self._ring)} "
                                f"entries ({self._dropped} dropped), the last: {_made(self._ring)[-5:]!r}"
                            )
                        self._condition.wait(left)
                    batch = arrived[:]
                    arrived.clear()
        finally:
            with self._condition:
                self._waiters = [w for w in self._waiters if w is not arrived]

    def clear(self) -> None:
        """Forget every entry, incident and counter (subscribers stay)."""
        with self._condition:
            waiters = self._waiters
            self._reset()
            self._waiters = waiters
