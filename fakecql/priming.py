# Priming: what a test tells a node to answer, written as sentences.
#
#     node.when_query("SELECT v FROM ks.t WHERE k = ?", consistency="QUORUM", values=(1,)) \
#         .in_order().then_error(ReadTimeout("QUORUM", 1, 2, False)).then_rows([(5,)], columns={"v": "int"}) \
#         .expect(times=2)
#
# Strategy: a Priming is a matcher (normalized text, a compiled re, or a
# predicate over the normalized text; optionally keyspace, consistency and
# bound values), a list of answers (one, or several used in order), a count
# (always by default, once, N times) and an optional expectation. A
# PrimingBook holds primings, the latest first; a node consults its own book,
# then the books added with Node.add_priming_source() (a cluster's per-DC and
# whole-cluster books), so one book may serve nodes running on different
# loop threads: every count is taken under the priming's lock, and the test's
# matchers run outside any lock.
#
# Answers are sans-IO: rows, an ERROR (any CQLError of fakecql.cqlerrors, or
# code/message/info), any message, or a DeferredAnswer for then_delay() and
# then_no_answer(): a marker the server's shell turns into a timer or into
# silence on that stream (server.py); nothing here sleeps.
#
# Rules: a mistake in a priming raises at once naming it (a value of the
# wrong type, a bad consistency name, a count that is not a positive
# integer); a priming without an answer answers nothing; an expectation is
# checked by CQLServer.check(), the pytest plugin's teardown and
# PrimingBook.check(), which list every unmet one (what, expected, seen).
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Mapping,
    Optional,
    Pattern,
    Sequence,
    Tuple,
    Union,
)

from . import cql
from .cqlerrors import ConsistencyLike, CQLError, as_consistency
from .protocol.errors import ErrorCode, FakeCQLError
from .protocol.messages import (
    ColumnSpec,
    Consistency,
    Error,
    Response,
    RowsMetadata,
    RowsResult,
    VoidResult,
    _ErrorInfo,
)
from .protocol.types import CqlType, parse_type
from .protocol.wire import UNSET

__all__ = [
    "QueryMatcher",
    "PrimedRequest",
    "DeferredAnswer",
    "Priming",
    "PrimingBook",
    "UnmetExpectation",
    "UnmetExpectationsError",
    "describe_unmet",
]

QueryMatcher = Union[str, Pattern[str], Callable[[str], bool]]


# -- what a priming sees of a request --------------------------------------------------

class PrimedRequest:
    """A QUERY, EXECUTE, a BATCH statement or a PREPARE, as primings match it.

    `consistency` is None for PREPARE (then consistency and values filters
    are not applied); `types` are the prepared statement's parameter types
    (EXECUTE), None for a QUERY's raw values."""

    __slots__ = ("query", "keyspace", "consistency", "raw_values", "types", "statement_id", "_decoded")

    def __init__(
        self,
        query: str,
        *,
        keyspace: Optional[str] = None,
        consistency: Optional[Consistency] = None,
        raw_values: Sequence[Any] = (),
        types: Optional[Sequence[CqlType]] = None,
        statement_id: Optional[bytes] = None,
    ) -> None:
        self.query = query
        self.keyspace = keyspace
        self.consistency = consistency
        self.raw_values = tuple(raw_values)
        self.types = tuple(types) if types is not None else None
        self.statement_id = statement_id
        self._decoded: Dict[Tuple[CqlType, ...], Optional[Tuple[Any, ...]]] = {}

    def values(self, types: Optional[Sequence[CqlType]] = None) -> Optional[Tuple[Any, ...]]:
        """The bound values decoded by `types` (else the prepared ones); raw bytes
        where no type is known; None when they do not decode as those types."""
        chosen = tuple(types) if types else self.types
        if not chosen:
            return self.raw_values
        if chosen not in self._decoded:
            self._decoded[chosen] = _decode_all(chosen, self.raw_values)
        return self._decoded[chosen]


def _decode_all(types: Tuple[CqlType, ...], raw: Tuple[Any, ...]) -> Optional[Tuple[Any, ...]]:
    if len(types) != len(raw):
        return None
    out = []
    for cql_type, value in zip(types, raw):
        if value is None or value is UNSET:
            out.append(value)
            continue
        if not isinstance(value, (bytes, bytearray)):  # already decoded
            out.append(value)
            continue
        try:
            out.append(cql_type.deserialize(bytes(value)))
        except Exception:  # a value that is not of this type: no match
            return None
    return tuple(out)


def _same_value(expected: Any, actual: Any) -> bool:
    """Python values compared as CQL compares them: lists and tuples alike, sets as sets."""
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(_same_value(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return set(expected) == set(actual) and all(_same_value(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, (set, frozenset)) and isinstance(actual, (list, tuple, set, frozenset)):
        return expected == set(actual)
    return bool(expected == actual)


# -- answers -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeferredAnswer(Response):
    """Not a wire message: tells the server to send `response` after `delay`
    seconds, or (delay None) to send nothing on that stream."""

    delay: Optional[float]
    response: Optional[Response]

    @property
    def withheld(self) -> bool:
        return self.delay is None


class _Answer:
    """One answer of a priming."""

    name = "answer"
    delay_only = False  # then_delay() with nothing after it: delays the node's own answer

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        raise NotImplementedError


@dataclass(frozen=True)
class _Rows(_Answer):
    columns: Tuple[Tuple[str, CqlType], ...]
    rows: Tuple[Tuple[Any, ...], ...]
    name = "Rows"

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        keyspace, table = "fakecql", "primed"
        if isinstance(statement, (cql.Select, cql.Insert)):
            keyspace, table = statement.keyspace or keyspace, statement.table
        specs = tuple(ColumnSpec(keyspace=keyspace, table=table, name=n, type=t) for n, t in self.columns)
        cells = tuple(
            tuple(None if v is None else t.serialize(v) for (_, t), v in zip(self.columns, row))
            for row in self.rows
        )
        return RowsResult(metadata=RowsMetadata(columns=specs), rows=cells)


@dataclass(frozen=True)
class _Fixed(_Answer):
    response: Response

    @property
    def name(self) -> str:  # type: ignore[override]
        if isinstance(self.response, Error):
            return f"Error {self.response.code.name}"
        return type(self.response).__name__.replace("Result", "") or "Response"

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        return self.response


@dataclass(frozen=True)
class _CQLErrorAnswer(_Answer):
    error: CQLError

    @property
    def name(self) -> str:  # type: ignore[override]
        return type(self.error).__name__

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        return self.error.to_error(request.statement_id)


@dataclass(frozen=True)
class _Delayed(_Answer):
    seconds: float
    then: Optional[_Answer]  # None: the node's own answer, delayed

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"delay {self.seconds:g} s, then {self.then.name if self.then else 'the answer that comes next'}"

    @property
    def delay_only(self) -> bool:  # type: ignore[override]
        return self.then is None

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        assert self.then is not None
        inner = self.then.respond(statement, request)
        if isinstance(inner, DeferredAnswer):  # a no-answer stays one
            return inner if inner.delay is None else DeferredAnswer(self.seconds + inner.delay, inner.response)
        return DeferredAnswer(self.seconds, inner)


class _NoAnswer(_Answer):
    name = "no answer"

    def respond(self, statement: Optional[cql.Statement], request: PrimedRequest) -> Response:
        return DeferredAnswer(None, None)


# -- the priming -----------------------------------------------------------------------------

def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return value


class Priming:
    """A primed answer: node.when_query(...).then_rows(...) / then_error(...) / then_void() ...

    Counts: always (the default), once(), times(n); in_order() makes each
    then_*() an answer of its own, used one after another (the last repeats
    with always() or times(n) beyond their number). expect() makes the
    test fail at teardown unless it was matched as expected."""

    def __init__(
        self,
        matcher: QueryMatcher,
        *,
        times: Optional[int] = None,
        params: Optional[Mapping[str, str]] = None,
        keyspace: Optional[str] = None,
        consistency: Optional[Union[ConsistencyLike, Iterable[ConsistencyLike]]] = None,
        values: Optional[Union[Sequence[Any], Callable[[Tuple[Any, ...]], bool]]] = None,
    ) -> None:
        if isinstance(matcher, str):
            wanted = cql.normalize_query(matcher)
            self.description = repr(wanted)
            self._match: Callable[[str], bool] = lambda q: q == wanted
        elif isinstance(matcher, re.Pattern):
            self.description = f"re {matcher.pattern!r}"
            self._match = lambda q: matcher.search(q) is not None
        elif callable(matcher):
            self.description = getattr(matcher, "__name__", repr(matcher))
            self._match = matcher
        else:
            raise TypeError(f"when_query() takes a str, a compiled re or a callable, got {matcher!r}")
        self._lock = threading.Lock()
        self.limit: Optional[int] = None if times is None else _positive("times", times)
        self._count_given = times is not None
        self.matched = 0
        self.params: Tuple[Tuple[str, CqlType], ...] = tuple(
            (name, parse_type(type_text)) for name, type_text in (params or {}).items()
        )
        if isinstance(matcher, str) and params is not None and len(self.params) != cql.count_markers(matcher):
            raise ValueError(
                f"priming {self.description} declares {len(self.params)} params for "
                f"{cql.count_markers(matcher)} bind markers"
            )
        if keyspace is not None and (not isinstance(keyspace, str) or not keyspace):
            raise ValueError(f"keyspace must be a keyspace name, got {keyspace!r}")
        self.keyspace = keyspace
        self.consistency: Optional[FrozenSet[Consistency]] = None
        if consistency is not None:
            levels = [consistency] if isinstance(consistency, (str, int)) else list(consistency)  # type: ignore[arg-type]
            self.consistency = frozenset(as_consistency(c) for c in levels)
        if values is not None and not callable(values) and not isinstance(values, (list, tuple)):
            raise TypeError(f"values must be a list or tuple of Python values, or a predicate over them, got {values!r}")
        self.values = values
        self._answers: List[_Answer] = []
        self._ordered = False
        self._open_delay = False  # the last answer is a then_delay() a then_*() may complete
        self._expected: Optional[Tuple[str, int]] = None  # ("exactly" | "at least", n)

    # -- matching ------------------------------------------------------------------------
    @property
    def answer(self) -> Optional[_Answer]:
        """The first answer (None until a then_*() gives one)."""
        return self._answers[0] if self._answers else None

    def _used_up(self) -> bool:
        if not self._answers:
            return True
        limit = self.limit if self._count_given else (len(self._answers) if self._ordered else None)
        return limit is not None and self.matched >= limit

    def matches_again(self) -> bool:
        """Whether it has an answer and answers still (its count not used up)."""
        with self._lock:
            return not self._used_up()

    def matches(self, request: Union[str, PrimedRequest]) -> bool:
        """Whether it answers this request (a normalized text, or a PrimedRequest)."""
        if isinstance(request, str):
            request = PrimedRequest(request)
        if not self.matches_again():
            return False
        if self.keyspace is not None and request.keyspace != self.keyspace:
            return False
        if request.consistency is not None:  # a PREPARE has none: only text and keyspace apply
            if self.consistency is not None and request.consistency not in self.consistency:
                return False
            if self.values is not None and not self._values_match(request):
                return False
        return bool(self._match(request.query))

    def _values_match(self, request: PrimedRequest) -> bool:
        types = tuple(t for _, t in self.params) or None
        found = request.values(types)
        if found is None:
            return False
        if callable(self.values):
            return bool(self.values(found))
        expected = tuple(self.values or ())
        return _same_value(expected, found)

    def _take(self) -> Optional[_Answer]:
        """Count one use; the answer for it, or None if used up meanwhile (another thread)."""
        with self._lock:
            if self._used_up():
                return None
            index = min(self.matched, len(self._answers) - 1)
            self.matched += 1
            return self._answers[index]

    # -- counts -------------------------------------------------------------------------
    def once(self) -> "Priming":
        """Answer one matching request, then let the next priming (or the node) answer."""
        return self.times(1)

    def times(self, n: int) -> "Priming":
        """Answer `n` matching requests."""
        self.limit = _positive("times", n)
        self._count_given = True
        return self

    def always(self) -> "Priming":
        """Answer every matching request (the default; with in_order(), the last answer repeats)."""
        self.limit = None
        self._count_given = True
        return self

    def in_order(self) -> "Priming":
        """Each then_*() from now on is an answer of its own, used one after another."""
        self._ordered = True
        return self

    def expect(self, times: Optional[int] = None, *, at_least: Optional[int] = None) -> "Priming":
        """Fail the test at teardown unless matched exactly `times` times, or at least
        `at_least` times (expect() alone: at least once)."""
        if times is not None and at_least is not None:
            raise ValueError("expect() takes times= or at_least=, not both")
        if times is not None:
            if not isinstance(times, int) or isinstance(times, bool) or times < 0:
                raise ValueError(f"expect(times=...) must be a non-negative integer, got {times!r}")
            self._expected = ("exactly", times)
        else:
            self._expected = ("at least", _positive("expect(at_least=...)", 1 if at_least is None else at_least))
        return self

    def unmet(self) -> Optional["UnmetExpectation"]:
        """The expectation this priming did not meet (None if none, or met)."""
        if self._expected is None:
            return None
        how, n = self._expected
        with self._lock:
            seen = self.matched
        met = seen == n if how == "exactly" else seen >= n
        return None if met else UnmetExpectation(self.summary(), f"{how} {n}", seen)

    # -- answers --------------------------------------------------------------------------
    def _add(self, answer: _Answer) -> "Priming":
        with self._lock:
            if self._open_delay:
                last = self._answers.pop()
                assert isinstance(last, _Delayed)
                answer = _Delayed(last.seconds, answer)
                self._open_delay = False
            if self._ordered:
                self._answers.append(answer)
            else:
                self._answers = [answer]
        return self

    def then_rows(
        self,
        rows: Iterable[Union[Mapping[str, Any], Sequence[Any]]] = (),
        *,
        columns: Mapping[str, Union[str, CqlType]],
    ) -> "Priming":
        """Answer with these rows; `columns` maps each column name to its CQL type
        (its name, or a CqlType such as a UserType for a UDT)."""
        if not columns:
            raise ValueError("then_rows() needs columns={name: cql_type, ...}")
        typed = tuple(
            (name, type_text if isinstance(type_text, CqlType) else parse_type(type_text))
            for name, type_text in columns.items()
        )
        names = [name for name, _ in typed]
        table = []
        for i, row in enumerate(rows):
            if isinstance(row, Mapping):
                unknown = set(row) - set(names)
                if unknown:
                    raise ValueError(f"row {i} has columns {sorted(unknown)} not in columns {names}")
                values = tuple(row.get(name) for name in names)
            else:
                values = tuple(row)
                if len(values) != len(names):
                    raise ValueError(f"row {i} has {len(values)} values for the {len(names)} columns {names}")
            for (name, cql_type), value in zip(typed, values):
                if value is not None:
                    try:
                        cql_type.serialize(value)  # fail now, naming the value, not at query time
                    except ValueError as exc:
                        raise ValueError(f"row {i}, column {name}: {exc}") from None
            table.append(values)
        return self._add(_Rows(typed, tuple(table)))

    def then_error(
        self, error: Union[CQLError, ErrorCode], message: Optional[str] = None, info: Optional[_ErrorInfo] = None
    ) -> "Priming":
        """Answer with an ERROR: a fakecql CQL error (ReadTimeout(...), Overloaded(), ...),
        or an ErrorCode with its message (and its extra fields)."""
        if isinstance(error, CQLError):
            if message is not None or info is not None:
                raise TypeError(f"then_error({error!r}) takes no message or info: give them to the error itself")
            return self._add(_CQLErrorAnswer(error))
        if isinstance(error, int):
            if message is None:
                raise TypeError(f"then_error({error!r}, message) needs the message of the error")
            return self._add(_Fixed(Error(code=ErrorCode(error), message=message, info=info)))
        raise TypeError(f"then_error() takes a fakecql CQL error (e.g. fakecql.ReadTimeout(...)) or an ErrorCode, "
                        f"got {error!r}")

    def then_void(self) -> "Priming":
        return self._add(_Fixed(VoidResult()))

    def then(self, response: Response) -> "Priming":
        """Answer with any response message."""
        if not isinstance(response, Response):
            raise TypeError(f"then() takes a response message (fakecql.protocol.messages), got {response!r}")
        return self._add(_Fixed(response))

    def then_delay(self, seconds: float) -> "Priming":
        """Answer after `seconds`: the answer of the next then_*(), or, alone, what the
        node (or a priming made before this one) answers. The node's loop is not blocked."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 3600:
            raise ValueError(f"then_delay() takes seconds in [0, 3600], got {seconds!r}")
        self._add(_Delayed(float(seconds), None))
        with self._lock:
            self._open_delay = True
        return self

    def then_no_answer(self) -> "Priming":
        """Never answer (the stream stays open; the connection serves other streams)."""
        return self._add(_NoAnswer())

    # -- describing ------------------------------------------------------------------------
    def summary(self) -> str:
        """One line: what it matches, what it answers, how often, and how often it did."""
        parts = [self.description]
        if self.keyspace is not None:
            parts.append(f"keyspace={self.keyspace}")
        if self.consistency is not None:
            parts.append("consistency=" + "|".join(sorted(c.name for c in self.consistency)))
        if self.values is not None:
            parts.append(f"values={getattr(self.values, '__name__', None) or self.values!r}")
        answers = ", then ".join(a.name for a in self._answers) or "no answer yet (no then_*())"
        count = "always" if (self.limit if self._count_given else None) is None else f"{self.limit}x"
        if self._ordered and not self._count_given:
            count = "in order, once each"
        return f"{' '.join(parts)} -> {answers} [{count}] (matched {self.matched}x)"

    def __repr__(self) -> str:
        return f"<Priming {self.description} matched {self.matched}x>"


# -- books ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnmetExpectation:
    priming: str  # Priming.summary()
    expected: str  # "exactly 2", "at least 1"
    seen: int
    book: str = ""

    def __str__(self) -> str:
        where = f" (in {self.book})" if self.book else ""
        return f"{self.priming}{where}: expected {self.expected} time(s), seen {self.seen}"


class UnmetExpectationsError(FakeCQLError, AssertionError):
    """Primings expected to be matched were not; the message lists them."""


def describe_unmet(unmet: Sequence[UnmetExpectation], heading: str = "fakecql") -> str:
    lines = [f"{heading}: {len(unmet)} priming expectation(s) not met:"]
    lines.extend(f"  - {u}" for u in unmet)
    return "\n".join(lines)


class PrimingBook:
    """Primings, the latest first; one book may be shared by several nodes
    (Node.add_priming_source), each on its own loop thread."""

    def __init__(self, name: str = "primings") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._primings: List[Priming] = []

    def when_query(self, query: QueryMatcher, **options: Any) -> Priming:
        """Prime an answer for queries matching `query`; see Node.when_query."""
        priming = Priming(query, **options)
        with self._lock:
            self._primings.insert(0, priming)
        return priming

    def primings(self) -> List[Priming]:
        with self._lock:
            return list(self._primings)

    @property
    def empty(self) -> bool:
        """No priming at all (read without the lock: one length, atomic)."""
        return not self._primings

    def clear(self) -> None:
        """Forget every priming (and its expectation)."""
        with self._lock:
            self._primings.clear()

    def find(
        self, request: PrimedRequest, *, count: bool = True, skip: FrozenSet[int] = frozenset()
    ) -> Optional[Tuple[Priming, Optional[_Answer]]]:
        """The latest priming answering `request` and (count=True) the answer it gives now,
        counted as used. Matchers run outside every lock (a slow one must not hold others)."""
        for priming in self.primings():
            if id(priming) in skip or not priming.matches(request):
                continue
            if not count:
                return priming, None
            answer = priming._take()
            if answer is not None:
                return priming, answer
        return None

    def unmet(self) -> List[UnmetExpectation]:
        """The expectations of its primings that were not met, oldest priming first."""
        found = []
        for priming in reversed(self.primings()):
            unmet = priming.unmet()
            if unmet is not None:
                found.append(UnmetExpectation(unmet.priming, unmet.expected, unmet.seen, self.name))
        return found

    def check(self) -> None:
        """Raise UnmetExpectationsError listing every unmet expectation."""
        unmet = self.unmet()
        if unmet:
            raise UnmetExpectationsError(describe_unmet(unmet, f"fakecql {self.name}"))

    def __repr__(self) -> str:
        return f"<PrimingBook {self.name!r} of {len(self.primings())}>"
