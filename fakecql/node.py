# What a node answers: the CQL semantics of the fake node, sans I/O.
#
# Strategy: Node holds what is shared by all connections (identity, schema,
# primed answers, prepared statements, credentials, limits); NodeSession
# holds what one connection negotiated (started, authenticated, keyspace,
# registered events). NodeSession.handle() turns one decoded request into
# exactly one response (or a priming.DeferredAnswer: a primed delay or
# silence the server's shell carries out). Primed answers (the node's own
# PrimingBook, then shared books: fakecql/priming.py) win over everything; then the
# built-in tables (system.local, system.peers[_v2], system_schema.*, tables
# a test added). A statement fakecql does not interpret, and a read of a
# table the schema lacks, is answered as a real node would answer its shape
# (VOID for a write or schema change, an InvalidRequest for a read, a
# SyntaxError for an unknown verb) and logged as an UnexpectedRequest, so
# the fixture fails the test that did not expect it.
#
# A repeated EXECUTE (the same request object: the codec decodes a repeated
# frame once) is answered with the same frozen answer while nothing it
# depends on changed (NodeSession._answer_depends_on); only reads of tables no
# one writes behind the node's back (system.local, the schema tables) and
# only while no priming exists are reused, so a test never sees a stale one.
#
# Rules: answers follow what Cassandra 4 / Scylla answer (the error codes
# and the message wording drivers look for); every answer is one a driver
# decodes (tests/integration/test_driver_decodes_results.py feeds them to
# the drivers' own decoders); a mistake in the test's own priming raises at
# once with a message naming it. What a request may cost is bounded by the
# node's Limits: query text, collection sizes (counted before anything is
# decoded), and the bytes the prepared-statement and plan caches hold.
from __future__ import annotations

import decimal
import hashlib
import ipaddress
import math
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    FrozenSet,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import cql, uninterpreted
from .activity import ActivityLog, ProtocolIncident, UnexpectedRequest
from .caches import SizedCache, text_bytes
from .limits import Limits
from .partition_keys import partition_key_indexes
from .priming import DeferredAnswer, PrimedRequest, Priming, PrimingBook, QueryMatcher, UnmetExpectation
from .protocol.compression import COMPRESSORS
from .protocol.elements import collection_over
from .protocol.errors import ErrorCode
from .protocol.messages import (
    AuthResponse,
    AuthSuccess,
    Authenticate,
    Batch,
    ColumnSpec,
    Error,
    Execute,
    Options,
    Prepare,
    PreparedMetadata,
    PreparedResult,
    Query,
    QueryParameters,
    Ready,
    Register,
    Request,
    Response,
    RowsMetadata,
    RowsResult,
    SetKeyspaceResult,
    Startup,
    Supported,
    UnpreparedInfo,
    VoidResult,
)
from .protocol.types import (
    BIGINT,
    BLOB,
    INT,
    CqlType,
    ListType,
    MapType,
    SetType,
    TupleType,
    UserType,
    parse_type,
)
from .protocol.wire import UNSET
from .schema import Schema, TableDef

__all__ = ["Node", "NodeSession", "NodeIdentity", "flavor_identity", "PasswordAuth", "Priming", "PrimingBook"]

PASSWORD_AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"
EVENT_TYPES = ("TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE", "CLIENT_ROUTES_CHANGE")


@dataclass(frozen=True)
class NodeIdentity:
    """Who the node says it is in system.local."""

    cluster_name: str = "fakecql"
    data_center: str = "datacenter1"
    rack: str = "rack1"
    release_version: str = "4.0.11"
    cql_version: str = "3.4.5"
    host_id: uuid.UUID = field(default_factory=uuid.uuid4)
    tokens: Tuple[str, ...] = ("-9223372036854775808",)
    partitioner: str = "org.apache.cassandra.dht.Murmur3Partitioner"


def flavor_identity(flavor: str) -> NodeIdentity:
    """The identity a node of `flavor` reports by default: a Scylla says release_version
    3.0.8 and cql_version 3.3.1, as ScyllaDB does (drivers pick their schema parser by it)."""
    if flavor == "scylla":
        return NodeIdentity(release_version="3.0.8", cql_version="3.3.1")
    return NodeIdentity()


@dataclass(frozen=True)
class PasswordAuth:
    """PasswordAuthenticator credentials the node accepts (SASL PLAIN)."""

    username: str
    password: str

    @classmethod
    def parse(cls, text: str) -> "PasswordAuth":
        """'user:password' -> PasswordAuth (the CLI's --auth)."""
        username, sep, password = text.partition(":")
        if not sep or not username:
            raise ValueError(f"credentials must look like USER:PASSWORD, got {text!r}")
        return cls(username, password)


@dataclass
class _Prepared:
    query: str
    statement: Optional[cql.Statement]  # None: over Limits.max_query_text, so only primings answer it
    params: Tuple[ColumnSpec, ...]
    result_columns: Tuple[ColumnSpec, ...]
    metadata_id: bytes
    keyspace: Optional[str] = None  # where unqualified names resolve: PREPARE's keyspace, or USE's


# What a SELECT reads: its keyspace, its table, and its output columns as
# (name, type, source column or None for count(*)).
# The output columns' specs come with the plan: made (and checked) once, not per request.
_Plan = Tuple[str, TableDef, List[Tuple[str, CqlType, Optional[str]]], Tuple[ColumnSpec, ...]]


class _InvalidRequest(Exception):
    """Answered as an ERROR with this code: the request was well-formed but wrong.

    `incident`, when given, is also logged as an UnexpectedRequest: the
    answer is right, but a test that did not prime it is wrong (a typo in a
    table name). A PROTOCOL_ERROR is logged as a ProtocolIncident instead:
    the client broke the protocol."""

    def __init__(
        self, message: str, code: ErrorCode = ErrorCode.INVALID, *, incident: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.incident = incident


class Node:
    """The fake node's state shared by all of its connections."""

    def __init__(
        self,
        *,
        identity: Optional[NodeIdentity] = None,
        schema: Optional[Schema] = None,
        auth: Optional[PasswordAuth] = None,
        activity: Optional[ActivityLog] = None,
        supported: Optional[Mapping[str, Sequence[str]]] = None,
        compression: Sequence[str] = ("lz4",),
        limits: Optional[Limits] = None,
    ) -> None:
        unknown = [c for c in compression if c not in COMPRESSORS]
        if unknown:
            raise ValueError(f"unknown compression {unknown[0]!r}; fakecql offers {sorted(COMPRESSORS)} or none")
        self.schema = schema or Schema()
        self.identity = identity or flavor_identity(self.schema.flavor)
        self.auth = auth
        self.limits = limits or Limits()
        self.activity = activity or ActivityLog()
        self.address = ipaddress.ip_address("127.0.0.1")
        self.port = 9042
        self.peers: List[Dict[str, Any]] = []
        # Tables whose rows something else keeps (a cluster's peers, client
        # routes): (keyspace, table) -> a function giving the current rows.
        self.row_sources: Dict[Tuple[str, str], Callable[[], List[Dict[str, Any]]]] = {}
        self._supported: Dict[str, List[str]] = {
            "CQL_VERSION": [self.identity.cql_version],
            "COMPRESSION": list(compression),
            "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"],
        }
        for key, values in (supported or {}).items():
            self._supported[key] = list(values)
        # Its own primings first, then shared books (a cluster's per-DC and whole-cluster ones).
        self.priming_book = PrimingBook("node primings")
        self._priming_sources: Tuple[PrimingBook, ...] = ()  # replaced, never mutated: read unlocked
        # Both caches are bounded in bytes of the statement text they keep,
        # least recently used first out (each has its own lock).
        self._prepared: SizedCache[bytes, _Prepared] = SizedCache(
            self.limits.prepared_cache_bytes, entry_overhead=_PREPARED_OVERHEAD
        )
        self._select_plans: SizedCache[Tuple[str, Optional[str], uuid.UUID], _Plan] = SizedCache(
            self.limits.parse_cache_bytes
        )  # see NodeSession._select_output
        self._lock = threading.RLock()

    # -- set-up by the server and by tests --------------------------------------
    def bind(self, host: str, port: int) -> None:
        """Tell the node where it listens: its rpc_address and port in system.local."""
        self.address = ipaddress.ip_address(host)
        self.port = port

    def set_protocol_versions(self, versions: Sequence[int]) -> None:
        self._supported["PROTOCOL_VERSIONS"] = [f"{v}/v{v}" for v in sorted(versions)]

    @property
    def supported(self) -> Dict[str, List[str]]:
        """The SUPPORTED options; tests may change them (e.g. to add Scylla keys)."""
        return self._supported

    def when_query(
        self,
        query: QueryMatcher,
        *,
        times: Optional[int] = None,
        params: Optional[Mapping[str, str]] = None,
        keyspace: Optional[str] = None,
        consistency: Any = None,
        values: Any = None,
    ) -> Priming:
        """Prime an answer for queries matching `query` (text, re, or predicate).

        Text matches after whitespace is collapsed and `USING TIMEOUT`/`;`
        suffixes are dropped. `params` names the bind markers' types (for
        PREPARE, and to decode a QUERY's values). `keyspace`, `consistency`
        (a name like "QUORUM", a Consistency, or several) and `values` (the
        bound values as Python values, or a predicate over them) narrow the
        match. The latest priming wins; `times` limits how often it answers.
        """
        return self.priming_book.when_query(
            query, times=times, params=params, keyspace=keyspace, consistency=consistency, values=values,
        )

    def primings(self) -> List[Priming]:
        """The node's own primings, the latest first (not those of shared books)."""
        return self.priming_book.primings()

    def clear_primings(self) -> None:
        """Forget the node's own primings (shared books stay)."""
        self.priming_book.clear()

    def add_priming_source(self, book: PrimingBook) -> None:
        """Consult `book` after the node's own primings (and after books added before it)."""
        if not isinstance(book, PrimingBook):
            raise TypeError(f"add_priming_source() takes a fakecql.PrimingBook, got {book!r}")
        with self._lock:
            if any(b is book for b in self._priming_sources):
                raise ValueError(f"{book!r} is already a priming source of this node")
            self._priming_sources = self._priming_sources + (book,)

    def remove_priming_source(self, book: PrimingBook) -> None:
        with self._lock:
            if not any(b is book for b in self._priming_sources):
                raise ValueError(f"{book!r} is not a priming source of this node")
            self._priming_sources = tuple(b for b in self._priming_sources if b is not book)

    def priming_sources(self) -> Tuple[PrimingBook, ...]:
        return self._priming_sources

    def unmet_expectations(self, *, sources: bool = False) -> List[UnmetExpectation]:
        """Expectations of the node's own primings not met (and its shared books' with sources=True)."""
        books = (self.priming_book,) + (self._priming_sources if sources else ())
        return [u for book in books for u in book.unmet()]

    def session(self, connection: int) -> "NodeSession":
        return NodeSession(self, connection)

    # -- answering ---------------------------------------------------------------
    def find_priming(
        self, request: PrimedRequest, *, count: bool = True, skip: FrozenSet[int] = frozenset()
    ) -> Optional[Tuple[Priming, Any]]:
        """The priming that answers `request`: the node's own, then its sources', in order."""
        for book in (self.priming_book,) + self._priming_sources:
            found = book.find(request, count=count, skip=skip)
            if found is not None:
                return found
        return None

    def _primed(self, normalized: str, *, count: bool = True) -> Optional[Priming]:
        """The latest priming answering this text (kept for callers that match on text only)."""
        found = self.find_priming(PrimedRequest(normalized), count=count)
        return None if found is None else found[0]

    def _local_row(self) -> Dict[str, Any]:
        ident = self.identity
        return {
            "key": "local",
            "bootstrapped": "COMPLETED",
            "broadcast_address": self.address,
            "broadcast_port": self.port,
            "cluster_name": ident.cluster_name,
            "cql_version": ident.cql_version,
            "data_center": ident.data_center,
            "gossip_generation": 1,
            "host_id": ident.host_id,
            "listen_address": self.address,
            "listen_port": self.port,
            "native_protocol_version": "5",
            "partitioner": ident.partitioner,
            "rack": ident.rack,
            "release_version": ident.release_version,
            "rpc_address": self.address,
            "rpc_port": self.port,
            "schema_version": self.schema.version,
            "tokens": list(ident.tokens),
        }

    def rows_of(self, keyspace: str, table: TableDef) -> List[Dict[str, Any]]:
        source = self.row_sources.get((keyspace, table.name))
        if source is not None:
            return list(source())
        if keyspace == "system" and table.name == "local":
            return [self._local_row()]
        if keyspace == "system" and table.name in ("peers", "peers_v2"):
            return list(self.peers)
        return list(table.rows)

    def prepared(self, query_id: bytes) -> Optional[_Prepared]:
        """The statement prepared under this id; None if never prepared or evicted since."""
        return self._prepared.get(query_id)

    def peek_prepared(self, query_id: bytes) -> Optional[_Prepared]:
        """prepared(), not counted as a use of the statement (for logging)."""
        return self._prepared.peek(query_id)

    def forget_prepared(self) -> None:
        """Drop every prepared statement, as a restarted node has (an EXECUTE gets UNPREPARED)."""
        self._prepared.clear()

    def remember_prepared(self, prepared: _Prepared, keyspace: Optional[str]) -> bytes:
        """Keep a prepared statement (the least recently used ones go past
        Limits.prepared_cache_bytes; an EXECUTE of one gets UNPREPARED)."""
        query_id = hashlib.md5(f"{keyspace or ''}\0{prepared.query}".encode("utf-8", "surrogatepass")).digest()
        size = text_bytes(prepared.query)
        if size + _PREPARED_OVERHEAD > self.limits.prepared_cache_bytes:
            # What Cassandra answers a statement larger than its whole cache.
            raise _InvalidRequest(
                f"Prepared statement of size {size} bytes is larger than allowed maximum of "
                f"{self.limits.prepared_cache_bytes} bytes (Limits.prepared_cache_bytes, less "
                f"{_PREPARED_OVERHEAD} bytes per entry): {prepared.query[:200]}..."
            )
        self._prepared.put(query_id, prepared, size=size)
        return query_id


class NodeSession:
    """One connection's view of the node: what it negotiated, and its answers."""

    def __init__(self, node: Node, connection: int) -> None:
        self.node = node
        self.connection = connection
        self.started = False
        self.authenticated = False
        self.keyspace: Optional[str] = None
        self.registered: Tuple[str, ...] = ()
        self.compression: Optional[str] = None  # agreed in STARTUP
        # SUPPORTED options of this connection only, over the node's (a Scylla
        # node tells each connection its own shard: fakecql/shards.py).
        self.own_supported: Dict[str, List[str]] = {}
        # EXECUTE answers that can be given again (see _execute): id of the
        # request -> (request, version, what the answer depended on, answer).
        self._answers: Dict[int, Tuple[Execute, int, Tuple[Any, ...], Response]] = {}
        self._answer_table: Optional[Tuple[str, str]] = None  # set by _select when its answer may be reused

    # Each handler returns exactly one response for its request.
    def handle(self, request: Request, version: int, stream: int) -> Response:
        if type(request) is Execute and self.authenticated and self.started:  # the hot path, first
            try:
                return self._execute(request, version)
            except _InvalidRequest as exc:
                return self._invalid(exc, stream)
        if isinstance(request, Options):
            if self.own_supported:
                return Supported(options={**self.node.supported, **self.own_supported})
            return Supported(options=self.node.supported)
        if isinstance(request, Startup):
            return self._startup(request, stream)
        if not self.started:
            return self._protocol_error(
                stream, f"Unexpected message {request.opcode.name}, expecting STARTUP or OPTIONS"
            )
        if isinstance(request, AuthResponse):
            return self._auth_response(request, stream)
        if not self.authenticated:
            return self._protocol_error(
                stream, f"Unexpected message {request.opcode.name}, expecting AUTH_RESPONSE"
            )
        try:
            if isinstance(request, Register):
                return self._register(request, stream)
            if isinstance(request, Query):
                return self._query(request.query, request.parameters, version)
            if isinstance(request, Prepare):
                return self._prepare(request, version)
            if isinstance(request, Execute):
                return self._execute(request, version)
            if isinstance(request, Batch):
                return self._batch(request, version)
        except _InvalidRequest as exc:
            return self._invalid(exc, stream)
        return self._protocol_error(stream, f"Unexpected message {request.opcode.name}")

    def _invalid(self, exc: "_InvalidRequest", stream: int) -> Error:
        if exc.code == ErrorCode.PROTOCOL_ERROR:
            return self._protocol_error(stream, str(exc))
        return Error(code=exc.code, message=str(exc))

    def _protocol_error(self, stream: int, message: str) -> Error:
        self.node.activity.add(
            ProtocolIncident(self.connection, description=message, stream=stream, fatal=False)
        )
        return Error(code=ErrorCode.PROTOCOL_ERROR, message=message)

    def _startup(self, request: Startup, stream: int) -> Response:
        if self.started:
            return self._protocol_error(stream, "Unexpected message STARTUP, the connection is already started")
        options = request.options
        cql_version = options.get("CQL_VERSION")
        if cql_version is None:
            return self._protocol_error(stream, "Missing value CQL_VERSION in STARTUP message")
        if not re.fullmatch(r"3(\.\d+){0,2}", cql_version):
            return self._protocol_error(
                stream, f"Invalid or unsupported CQL version {cql_version!r} in STARTUP; expected 3.x.y"
            )
        compression = options.get("COMPRESSION")
        if compression is not None and compression not in self.node.supported.get("COMPRESSION", []):
            return self._protocol_error(stream, f"Unknown compression algorithm: {compression}")
        self.started = True
        self.compression = compression
        if self.node.auth is None:
            self.authenticated = True
            return Ready()
        return Authenticate(authenticator=PASSWORD_AUTHENTICATOR)

    def _auth_response(self, request: AuthResponse, stream: int) -> Response:
        auth = self.node.auth
        if auth is None or self.authenticated:
            return self._protocol_error(stream, "Unexpected message AUTH_RESPONSE: no authentication is in progress")
        parts = (request.token or b"").split(b"\x00")
        if len(parts) == 3:
            username, password = parts[1], parts[2]
            if username == auth.username.encode() and password == auth.password.encode():
                self.authenticated = True
                return AuthSuccess(token=None)
            shown = username.decode("utf-8", "replace")
        else:
            shown = "<malformed SASL PLAIN token>"
        return Error(
            code=ErrorCode.BAD_CREDENTIALS,
            message=f"Provided username {shown} and/or password are incorrect",
        )

    def _register(self, request: Register, stream: int) -> Response:
        unknown = [e for e in request.event_types if e not in EVENT_TYPES]
        if unknown:
            return self._protocol_error(stream, f"Invalid value '{unknown[0]}' for Type; expected one of {EVENT_TYPES}")
        self.registered = tuple(sorted(set(self.registered) | set(request.event_types)))
        return Ready()

    # -- queries ------------------------------------------------------------------
    def _unexpected(self, normalized: str, description: str) -> None:
        shown = normalized if len(normalized) <= _SHOWN_QUERY else normalized[:_SHOWN_QUERY] + "..."
        self.node.activity.add(UnexpectedRequest(self.connection, description=description, query=shown))

    def _query(
        self,
        text: str,
        params: QueryParameters,
        version: int,
        prepared: Optional[_Prepared] = None,
        *,
        statement_id: Optional[bytes] = None,
        skip: FrozenSet[int] = frozenset(),
    ) -> Response:
        statement: Optional[cql.Statement]
        if prepared is not None:  # its text was normalized when it was prepared
            normalized, statement = prepared.query, prepared.statement
            text = normalized
        elif _over_limit(text, self.node.limits.max_query_text):
            # Matched against primings (normalizing is linear), never parsed.
            normalized, statement = cql.normalize_query(text), None
        else:
            normalized, statement = cql.parse_query(text)
        session_keyspace = (prepared.keyspace if prepared else params.keyspace) or self.keyspace
        request = PrimedRequest(
            normalized,
            keyspace=getattr(statement, "keyspace", None) or session_keyspace,
            consistency=params.consistency,
            raw_values=self._named_in_order(params, prepared),
            types=tuple(spec.type for spec in prepared.params) if prepared is not None else None,
            statement_id=statement_id,
        )
        found = self.node.find_priming(request, skip=skip)
        if found is not None:
            priming, answer = found
            if not answer.delay_only:
                return answer.respond(statement, request)
            # then_delay() alone: what comes next (an older priming, or the node), later.
            try:
                later = self._query(text, params, version, prepared, statement_id=statement_id,
                                    skip=skip | {id(priming)})
            except _InvalidRequest as exc:
                later = Error(code=exc.code, message=str(exc))
            if isinstance(later, DeferredAnswer):
                return later if later.delay is None else DeferredAnswer(answer.seconds + later.delay, later.response)
            return DeferredAnswer(answer.seconds, later)
        try:
            if statement is None:
                raise self._too_long(text)
            return self._interpret(statement, normalized, params, version, prepared)
        except _InvalidRequest as exc:
            if exc.incident is not None:
                self._unexpected(normalized, exc.incident)
            raise

    def _interpret(
        self,
        statement: cql.Statement,
        normalized: str,
        params: QueryParameters,
        version: int,
        prepared: Optional[_Prepared],
    ) -> Response:
        values = self._bound_values(statement, params, prepared)
        # Unqualified names: a prepared statement's keyspace, a v5 QUERY's, else USE's.
        keyspace = (prepared.keyspace if prepared else params.keyspace) or self.keyspace
        if isinstance(statement, cql.Use):
            return self._use(statement.keyspace)
        if isinstance(statement, cql.Select):
            return self._select(
                statement, normalized, values, params, keyspace,
                skip_metadata=params.skip_metadata and prepared is not None,
            )
        if isinstance(statement, cql.Insert):
            return self._insert(statement, values, keyspace)
        return self._uninterpreted(statement, normalized, keyspace)

    def _uninterpreted(self, statement: cql.Statement, normalized: str, keyspace: Optional[str]) -> Response:
        """The answer a real node gives a statement of this shape, logged as unexpected."""
        verb = getattr(statement, "verb", "")
        reason = getattr(statement, "reason", "") or f"{verb or 'an empty statement'} is not interpreted by fakecql"
        answer, response = uninterpreted.answer(verb, reason, normalized, keyspace)
        self._unexpected(
            normalized, f"no priming matches and fakecql does not interpret it ({reason}); answered {answer}"
        )
        return response

    def _too_long(self, text: str) -> _InvalidRequest:
        limit = self.node.limits.max_query_text
        message = (
            f"Query text of {text_bytes(text)} bytes is over the node's limit of {limit} "
            f"bytes: prime it with when_query(...), or raise the limit with "
            f"CQLServer(limits=Limits(max_query_text=...)) or serve --max-query-bytes"
        )
        return _InvalidRequest(message, incident=f"no priming matches and the text is too long: {message}")

    @staticmethod
    def _named_in_order(params: QueryParameters, prepared: Optional[_Prepared]) -> Tuple[Any, ...]:
        """The bound values in marker order (values sent by name put in their places)."""
        if params.names is None or prepared is None:
            return params.values
        by_name = dict(zip(params.names, params.values))
        return tuple(by_name.get(spec.name) for spec in prepared.params)

    def _bound_values(
        self, statement: cql.Statement, params: QueryParameters, prepared: Optional[_Prepared]
    ) -> List[Any]:
        markers = getattr(statement, "markers", 0)
        if len(params.values) != markers:
            raise _InvalidRequest(
                f"There were {markers} markers(?) in CQL but {len(params.values)} bound variables"
            )
        if params.names is not None and prepared is not None:
            by_name = dict(zip(params.names, params.values))
            ordered = []
            for spec in prepared.params:
                if spec.name not in by_name:
                    raise _InvalidRequest(f"No value for named bind marker {spec.name!r}")
                ordered.append(by_name[spec.name])
            raw_values: Sequence[Any] = ordered
        else:
            raw_values = params.values
        if prepared is None:
            return list(raw_values)  # typed when used, against the column they meet
        decoded: List[Any] = []
        limit = self.node.limits.max_collection_elements
        for spec, raw in zip(prepared.params, raw_values):
            if raw is None or raw is UNSET:
                decoded.append(raw)
                continue
            decoded.append(_Typed(_decode(spec.type, raw, limit, f"bind marker {spec.name!r}")))
        return decoded

    def _use(self, keyspace: str) -> Response:
        if keyspace not in self.node.schema.keyspaces:
            raise _InvalidRequest(f"Keyspace '{keyspace}' does not exist")
        self.keyspace = keyspace
        return SetKeyspaceResult(keyspace=keyspace)

    def _table(self, keyspace: Optional[str], name: str, default: Optional[str], verb: str) -> Tuple[str, TableDef]:
        """The table a statement names, or the error a real node answers (Scylla's and
        Cassandra 3's wording, which drivers match), logged as unexpected unless it is
        a table drivers probe for (_PROBED_TABLES): a typo must not pass silently."""
        keyspace = keyspace or default
        if keyspace is None:
            raise _InvalidRequest("No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename")
        schema = self.node.schema
        if keyspace not in schema.keyspaces:
            message = f"Keyspace {keyspace} does not exist"
        else:
            table = schema.table(keyspace, name)
            if table is not None:
                return keyspace, table
            message = f"unconfigured table {name}"
        incident = None
        if (keyspace, name) not in _PROBED_TABLES:
            incident = f"{verb} of {keyspace}.{name}, which the schema does not have; answered InvalidRequest {message!r}"
        raise _InvalidRequest(message, incident=incident)

    def _select_output(
        self, statement: cql.Select, normalized: str, default_keyspace: Optional[str]
    ) -> _Plan:
        """The table a SELECT reads and its output columns: (name, type, source column or None for count).

        Cached per schema version: the same text on the same schema, unqualified
        names resolving in the same keyspace, has the same plan. The cache keeps
        Limits.parse_cache_bytes of text, least recently used out first."""
        key = (normalized, default_keyspace, self.node.schema.version)
        plans = self.node._select_plans
        plan = plans.get(key)
        if plan is None:
            plan = self._plan_select(statement, default_keyspace)
            plans.put(key, plan, size=text_bytes(normalized) + len(default_keyspace or ""))
        return plan

    def _plan_select(
        self, statement: cql.Select, default_keyspace: Optional[str]
    ) -> _Plan:
        keyspace, table = self._table(statement.keyspace, statement.table, default_keyspace, "SELECT")
        types = {c.name: c.type for c in table.columns}
        output: List[Tuple[str, CqlType, Optional[str]]] = []
        for selector in statement.selectors:
            if selector.column == "*":
                output.extend((c.name, c.type, c.name) for c in table.columns)
            elif selector.column == "count(*)":
                output.append((selector.output_name, BIGINT, None))
            elif selector.column in types:
                output.append((selector.output_name, types[selector.column], selector.column))
            else:
                raise _InvalidRequest(f"Undefined column name {selector.column} in table {keyspace}.{table.name}")
        for condition in statement.where:
            if condition.column not in types:
                raise _InvalidRequest(f"Undefined column name {condition.column} in table {keyspace}.{table.name}")
        specs = tuple(ColumnSpec(keyspace=keyspace, table=table.name, name=n, type=t) for n, t, _ in output)
        return keyspace, table, output, specs

    def _select(
        self,
        statement: cql.Select,
        normalized: str,
        values: Sequence[Any],
        params: QueryParameters,
        default_keyspace: Optional[str],
        *,
        skip_metadata: bool,
    ) -> Response:
        keyspace, table, output, specs = self._select_output(statement, normalized, default_keyspace)
        if table.derived or (keyspace == "system" and table.name == "local"):
            # Rows made from the schema and the node's identity, which _answer_depends_on covers.
            self._answer_table = (keyspace, table.name)
        start = _paging_offset(params.paging_state)
        rows = self.node.rows_of(keyspace, table)
        if statement.where:
            types = {c.name: c.type for c in table.columns}
        bound = self.node.limits.max_collection_elements
        for condition in statement.where:
            wanted = {
                _comparable(_term_value(t, types[condition.column], values, bound, condition.column))
                for t in condition.terms
            }
            rows = [r for r in rows if _comparable(r.get(condition.column)) in wanted]
        if statement.limit is not None:
            limit = _term_value(statement.limit, INT, values, bound, "LIMIT")
            if not isinstance(limit, int) or limit <= 0:
                raise _InvalidRequest(f"LIMIT must be strictly positive, got {limit!r}")
            rows = rows[:limit]
        if any(source is None for _, _, source in output):
            # An aggregate: one row, other selected columns from the first row (as Cassandra does).
            first = rows[0] if rows else {}
            cells = [tuple(
                BIGINT.serialize(len(rows)) if source is None else _cell(t, first.get(source))
                for _, t, source in output
            )]
        else:
            cells = [tuple(_cell(t, row.get(source or "")) for _, t, source in output) for row in rows]
        paging_state = None
        if params.page_size is not None and len(cells) - start > params.page_size:
            paging_state = b"fakecql-offset:%d" % (start + params.page_size)
            cells = cells[start : start + params.page_size]
        else:
            cells = cells[start:]
        if skip_metadata:
            metadata = RowsMetadata(paging_state=paging_state, no_metadata=True, column_count=len(specs))
        else:
            metadata = RowsMetadata(columns=specs, paging_state=paging_state)
        return RowsResult(metadata=metadata, rows=tuple(cells))

    def _insert(self, statement: cql.Insert, values: Sequence[Any], default_keyspace: Optional[str]) -> Response:
        keyspace, table = self._table(statement.keyspace, statement.table, default_keyspace, "INSERT")
        types = {c.name: c.type for c in table.columns}
        row: Dict[str, Any] = {}
        bound = self.node.limits.max_collection_elements
        for column, term in zip(statement.columns, statement.values):
            if column not in types:
                raise _InvalidRequest(f"Undefined column name {column} in table {keyspace}.{table.name}")
            value = row[column] = _term_value(term, types[column], values, bound, column)
            if value is not None and value is not UNSET:
                try:
                    types[column].serialize(value)
                except ValueError as exc:
                    raise _InvalidRequest(f"Invalid value for column {column} of type {types[column]}: {exc}") from None
                row[column] = _as_stored(types[column], value)
        key_columns = [c.name for c in table.columns if c.kind in ("partition_key", "clustering")]
        missing = [k for k in key_columns if row.get(k) is None or row.get(k) is UNSET]
        if missing:
            raise _InvalidRequest(f"Some primary key parts are missing: {', '.join(missing)}")
        with self.node._lock:
            key = tuple(_comparable(row[k]) for k in key_columns)
            for existing in table.rows:
                if tuple(_comparable(existing.get(k)) for k in key_columns) == key:
                    existing.update({k: v for k, v in row.items() if v is not UNSET})
                    break
            else:
                table.rows.append({k: v for k, v in row.items() if v is not UNSET})
        return VoidResult()

    def _prepare(self, request: Prepare, version: int) -> Response:
        too_long = _over_limit(request.query, self.node.limits.max_query_text)
        normalized = cql.normalize_query(request.query)
        statement = None if too_long else cql.parse_statement(normalized)
        keyspace_name = request.keyspace or self.keyspace
        found = self.node.find_priming(
            PrimedRequest(normalized, keyspace=getattr(statement, "keyspace", None) or keyspace_name), count=False,
        )
        priming = None if found is None else found[0]
        if statement is None and priming is None:
            exc = self._too_long(request.query)
            self._unexpected(normalized, exc.incident or str(exc))
            raise exc
        params: Tuple[ColumnSpec, ...]
        result_columns: Tuple[ColumnSpec, ...] = ()
        if priming is not None and priming.params:
            params = tuple(
                ColumnSpec(keyspace=keyspace_name or "fakecql", table="primed", name=n, type=t)
                for n, t in priming.params
            )
            markers = len(params) if statement is None else getattr(statement, "markers", 0)
            if len(params) != markers:
                raise ValueError(
                    f"priming {priming.description} declares {len(params)} params for "
                    f"{markers} bind markers"
                )
        else:
            params = () if statement is None else self._infer_params(
                statement, keyspace_name, getattr(statement, "markers", 0)
            )
        if priming is None and isinstance(statement, (cql.Select, cql.Insert)):
            # A real node resolves the table (and the columns) at PREPARE.
            try:
                result_columns = self._check_prepared(statement, normalized, keyspace_name)
            except _InvalidRequest as exc:
                if exc.incident is not None:
                    self._unexpected(normalized, exc.incident)
                raise
        metadata_id = hashlib.md5(repr(result_columns).encode()).digest()
        prepared = _Prepared(normalized, statement, params, result_columns, metadata_id, keyspace_name)
        query_id = self.node.remember_prepared(prepared, keyspace_name)
        pk_indexes: Tuple[int, ...] = ()
        if version >= 4 and isinstance(statement, (cql.Select, cql.Insert)):  # for token-aware routing
            table = self.node.schema.table(statement.keyspace or keyspace_name or "", statement.table)
            pk_indexes = partition_key_indexes(statement, table)
        return PreparedResult(
            query_id=query_id,
            result_metadata_id=metadata_id if version >= 5 else None,
            bind_metadata=PreparedMetadata(columns=params, pk_indexes=pk_indexes),
            result_metadata=RowsMetadata(columns=result_columns),
        )

    def _check_prepared(
        self, statement: Union[cql.Select, cql.Insert], normalized: str, keyspace_name: Optional[str]
    ) -> Tuple[ColumnSpec, ...]:
        """The result columns of a statement being prepared, or the error a real node answers."""
        if isinstance(statement, cql.Select):
            return self._select_output(statement, normalized, keyspace_name)[3]
        keyspace, table = self._table(statement.keyspace, statement.table, keyspace_name, "INSERT")
        known = set(table.column_names)
        for column in statement.columns:
            if column not in known:
                raise _InvalidRequest(f"Undefined column name {column} in table {keyspace}.{table.name}")
        return ()

    def _infer_params(self, statement: cql.Statement, keyspace: Optional[str], markers: int) -> Tuple[ColumnSpec, ...]:
        """Bind marker types from the table the statement names; blob where unknown."""
        found: Dict[int, Tuple[str, CqlType]] = {}
        table_name = "unknown"
        if isinstance(statement, (cql.Select, cql.Insert)):
            table_name = statement.table
            table = self.node.schema.table(statement.keyspace or keyspace or "", statement.table)
            types = {c.name: c.type for c in table.columns} if table else {}
            pairs: List[Tuple[str, cql.Term]] = []
            if isinstance(statement, cql.Select):
                pairs = [(c.column, t) for c in statement.where for t in c.terms]
                if isinstance(statement.limit, cql.Marker):
                    found[statement.limit.index] = ("[limit]", INT)
            else:
                pairs = list(zip(statement.columns, statement.values))
            for column, term in pairs:
                if isinstance(term, cql.Marker):
                    found[term.index] = (term.name or column, types.get(column, BLOB))
        return tuple(
            ColumnSpec(
                keyspace=(getattr(statement, "keyspace", None) or keyspace or "fakecql"),
                table=table_name,
                name=found.get(i, (f"param{i}", BLOB))[0],
                type=found.get(i, (f"param{i}", BLOB))[1],
            )
            for i in range(markers)
        )

    def _execute(self, request: Execute, version: int) -> Response:
        prepared = self.node.prepared(request.query_id)  # every time: an EXECUTE keeps it in the LRU
        if prepared is not None:
            reused = self._answers.get(id(request))
            if reused is not None and reused[0] is request and reused[1] == version:
                if reused[2] == self._answer_depends_on(prepared, reused[2][0]):
                    return reused[3]
            self._answer_table = None
            answer = self._query(prepared.query, request.parameters, version, prepared=prepared,
                                 statement_id=request.query_id)
            if self._answer_table is not None:
                depends_on = self._answer_depends_on(prepared, self._answer_table)
                small = not isinstance(answer, RowsResult) or len(answer.rows) <= _REUSED_ROWS
                if small and not depends_on[-2] and not depends_on[-1]:  # no priming, no row source
                    if len(self._answers) >= _REUSED_ANSWERS:
                        self._answers.clear()
                    self._answers[id(request)] = (request, version, depends_on, answer)
            return answer
        if prepared is None:
            return Error(
                code=ErrorCode.UNPREPARED,
                message=f"Prepared query with ID {request.query_id.hex()} not found (either the query "
                "was not prepared on this host (maybe the host has been restarted?) or you have "
                "prepared too many queries and it has been evicted from the internal cache)",
                info=UnpreparedInfo(statement_id=request.query_id),
            )
        return self._query(prepared.query, request.parameters, version, prepared=prepared,
                           statement_id=request.query_id)

    def _answer_depends_on(self, prepared: _Prepared, table: Optional[Tuple[str, str]]) -> Tuple[Any, ...]:
        """What an EXECUTE's reusable answer depends on besides its own bytes.

        Only answers read from tables no one writes to behind the node's back
        are reused (system.local, the schema tables: see _select), and only
        while no priming exists (a priming may match by a predicate, count,
        expect): the same request on the same state gets the same answer. A
        changed element here (the prepared statement evicted or re-prepared,
        a schema change, the node's identity or address, its limits, the
        connection's keyspace, a row source for the table, any priming) means
        the request is answered afresh."""
        node = self.node
        primed = not node.priming_book.empty or (
            bool(node._priming_sources) and any(not book.empty for book in node._priming_sources))
        return (table, prepared, node.schema, node.schema.changes, node.identity, node.address, node.port,
                node.limits, self.keyspace, primed, table in node.row_sources)

    def _batch(self, request: Batch, version: int) -> Response:
        # Looked up once: another connection's PREPARE may evict them meanwhile.
        found: Dict[int, _Prepared] = {}
        for i, statement in enumerate(request.statements):
            if statement.query_id is not None:
                prepared = self.node.prepared(statement.query_id)
                if prepared is None:
                    return Error(
                        code=ErrorCode.UNPREPARED,
                        message=f"Prepared query with ID {statement.query_id.hex()} (statement {i} of the batch) not found",
                        info=UnpreparedInfo(statement_id=statement.query_id),
                    )
                found[i] = prepared
        delay: Optional[float] = 0.0  # the longest delay primed for a statement; None: no answer
        for i, statement in enumerate(request.statements):
            if i in found:
                prepared = found[i]
                params = QueryParameters(values=statement.values, consistency=request.consistency)
                answer = self._query(prepared.query, params, version, prepared=prepared,
                                     statement_id=statement.query_id)
            else:
                params = QueryParameters(values=statement.values, keyspace=request.keyspace,
                                         consistency=request.consistency)
                answer = self._query(statement.query or "", params, version)
            if isinstance(answer, DeferredAnswer):  # the batch answers as late as its latest statement
                if answer.delay is None:
                    return answer
                delay = max(delay or 0.0, answer.delay)
                answer = answer.response or VoidResult()
            if isinstance(answer, Error):  # e.g. primed: the batch fails with it
                return DeferredAnswer(delay, answer) if delay else answer
        return DeferredAnswer(delay, VoidResult()) if delay else VoidResult()


@dataclass(frozen=True)
class _Typed:
    """A bound value already decoded by its prepared type."""

    value: Any


_PAGING_STATE = re.compile(rb"fakecql-offset:(\d{1,18})")


def _paging_offset(paging_state: Optional[bytes]) -> int:
    """The row a paging state this node issued points at; anything else is what
    Cassandra answers a paging state it cannot read: a ProtocolError."""
    if not paging_state:
        return 0
    match = _PAGING_STATE.fullmatch(paging_state)
    if not match:
        shown = paging_state[:32] + (b"..." if len(paging_state) > 32 else b"")
        raise _InvalidRequest(
            f"Invalid value for the paging state: {shown!r} ({len(paging_state)} bytes) is not one "
            f"this node issued (b'fakecql-offset:<row>')",
            ErrorCode.PROTOCOL_ERROR,
        )
    return int(match.group(1))


def _cell(cql_type: CqlType, value: Any) -> Optional[bytes]:
    return None if value is None else cql_type.serialize(value)


def _comparable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _comparable(v)) for k, v in value.items()))
    return value


def _term_value(term: cql.Term, cql_type: CqlType, values: Sequence[Any], max_elements: int, column: str) -> Any:
    """The Python value of a literal or bound marker, as a value of `cql_type`
    (the type of `column`, where the term meets it)."""
    if isinstance(term, cql.Marker):
        raw = values[term.index] if term.index < len(values) else None
        if isinstance(raw, _Typed):
            return raw.value
        if raw is None or raw is UNSET:
            return raw
        return _decode(cql_type, raw, max_elements, f"bind marker {term.index}", f" (column {column})")
    return _literal(term, cql_type)


def _decode(cql_type: CqlType, raw: bytes, max_elements: int, what: str, where: str = "") -> Any:
    """A bound value decoded as `cql_type`; its collections' sizes are checked first."""
    over = collection_over(cql_type, raw, max_elements)
    if over is not None:
        name, count = over
        raise _InvalidRequest(
            f"Invalid value for {what + where}: a {name} of {count} elements is over the node's "
            f"limit of {max_elements} (Limits.max_collection_elements)"
        )
    try:
        return cql_type.deserialize(raw)
    except Exception as exc:
        raise _InvalidRequest(f"Invalid value for {what} of type {cql_type}: {exc}") from None


# -- values as a real node keeps them ------------------------------------------------

def _as_stored(cql_type: CqlType, value: Any) -> Any:
    """`value` as a real node keeps (and sends back) it: set elements in the
    type's CQL order without duplicates, map entries in the order of their
    keys, at every depth. Drivers rely on it: they sort sets themselves, and
    look map keys up by their bytes re-serialized from that sorted form."""
    if value is None:
        return None
    if isinstance(cql_type, SetType):
        kept = _in_cql_order(cql_type.element, [(v, _as_stored(cql_type.element, v)) for v in value])
        return type(value)(stored for _, stored in kept) if isinstance(value, tuple) else [s for _, s in kept]
    if isinstance(cql_type, ListType):
        items = [_as_stored(cql_type.element, v) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(cql_type, MapType):
        pairs = value.items() if isinstance(value, Mapping) else value  # (key, value) pairs: a map key
        kept = _in_cql_order(cql_type.key, [(k, (_as_stored(cql_type.key, k), _as_stored(cql_type.value, v)))
                                            for k, v in pairs])
        entries = [entry for _, entry in kept]
        return dict(entries) if isinstance(value, Mapping) else tuple(entries)
    if isinstance(cql_type, TupleType):
        return tuple(_as_stored(t, v) for t, v in zip(cql_type.elements, value))
    if isinstance(cql_type, UserType):
        types = dict(cql_type.fields)
        if isinstance(value, Mapping):
            return {name: _as_stored(types[name], v) for name, v in value.items()}
        return tuple((name, _as_stored(types[name], v)) for name, v in value)
    return value


def _in_cql_order(cql_type: CqlType, items: List[Tuple[Any, Any]]) -> List[Tuple[Any, Any]]:
    """(value, payload) pairs sorted by the values' CQL order, the first of equal ones kept."""
    keyed = sorted(((_order_key(cql_type, v), v, payload) for v, payload in items), key=lambda e: e[0])
    kept: List[Tuple[Any, Any]] = []
    for i, (key, v, payload) in enumerate(keyed):
        if i == 0 or key != keyed[i - 1][0]:
            kept.append((v, payload))
    return kept


def _order_key(cql_type: CqlType, value: Any) -> Any:
    """A key sorting values of `cql_type` as Cassandra's comparator for it does."""
    if isinstance(cql_type, (ListType, SetType)):
        return tuple(_order_key(cql_type.element, v) for v in _as_stored(cql_type, value))
    if isinstance(cql_type, MapType):
        stored = _as_stored(cql_type, value)
        pairs = stored.items() if isinstance(stored, Mapping) else stored
        return tuple((_order_key(cql_type.key, k), _order_key(cql_type.value, v)) for k, v in pairs)
    if isinstance(cql_type, (TupleType, UserType)):
        if isinstance(cql_type, TupleType):
            parts = list(zip(cql_type.elements, value))
        else:
            named = dict(value)
            parts = [(t, named.get(name)) for name, t in cql_type.fields]
        return tuple((0,) if v is None else (1, _order_key(t, v)) for t, v in parts)  # null first
    name = getattr(cql_type, "cql_name", "")
    if name in ("float", "double"):  # Java's Float.compare: -0.0 < 0.0, NaN last
        return (2,) if value != value else (1, value, math.copysign(1.0, value))
    if name in ("uuid", "timeuuid"):  # version, then a time-based UUID's timestamp, then the rest
        raw = value.bytes
        if raw[6] >> 4 == 1:
            return (1, value.time, tuple(b - 256 if b > 127 else b for b in raw[8:]))
        return (raw[6] >> 4, raw[:8], raw[8:])
    if name == "inet":
        return value.packed
    if name == "duration":
        return (value.months, value.days, value.nanoseconds)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return value


# -- bounds on what one request costs -------------------------------------------------

_PREPARED_OVERHEAD = 256  # bytes counted per prepared statement beside its text
_SHOWN_QUERY = 1000  # characters of a query text an incident keeps
_REUSED_ANSWERS = 16  # EXECUTE answers a connection keeps for reuse (all dropped when full)
_REUSED_ROWS = 64  # an answer of more rows is not kept (a connection's memory stays small)


def _over_limit(text: str, limit: int) -> bool:
    """Whether `text` is over `limit` UTF-8 bytes: a character is 1 to 4 bytes,
    so the length alone decides unless it is between limit/4 and limit."""
    if len(text) > limit:
        return True
    if len(text) * 4 <= limit:
        return False
    return text_bytes(text) > limit


# Tables drivers read to learn what a node has, and whose absence they handle
# (an InvalidRequest is the answer they expect from a node without them):
# not an incident when missing.
_PROBED_TABLES = frozenset({
    ("system", "peers_v2"),  # Cassandra 4 has it; Scylla and Cassandra 3 do not
    ("system_virtual_schema", "keyspaces"),  # Cassandra 4's virtual tables
    ("system_virtual_schema", "tables"),
    ("system_virtual_schema", "columns"),
    ("system_schema", "scylla_keyspaces"),  # Scylla's
})


def _literal(term: cql.Literal, cql_type: CqlType) -> Any:
    name = cql_type.cql_name
    try:
        if term.kind == "null":
            return None
        if name in ("text", "ascii"):
            if term.kind != "string":
                raise ValueError("expected a string constant")
            return term.text
        if name in ("int", "bigint", "smallint", "tinyint", "varint", "counter", "timestamp", "date", "time"):
            if term.kind == "string" and name in ("timestamp", "date", "time"):
                raise ValueError("string forms of dates and times are not interpreted; use a number")
            return int(term.text)
        if name in ("float", "double"):
            return float(term.text)
        if name == "decimal":
            if term.kind != "number":  # decimal.Decimal() raises InvalidOperation, not ValueError
                raise ValueError("expected a number")
            return decimal.Decimal(term.text)
        if name == "boolean":
            if term.kind != "bool":
                raise ValueError("expected true or false")
            return term.text == "true"
        if name in ("uuid", "timeuuid"):
            return uuid.UUID(term.text)
        if name == "inet":
            return ipaddress.ip_address(term.text)
        if name == "blob":
            if term.kind != "blob":
                raise ValueError("expected a 0x... constant")
            return bytes.fromhex(term.text[2:])
    except ValueError as exc:
        raise _InvalidRequest(f"Invalid {term.kind} constant ({term.text}) for a {name} value: {exc}") from None
    raise _InvalidRequest(f"fakecql cannot read a {term.kind} constant as a {name} value; bind it instead")
