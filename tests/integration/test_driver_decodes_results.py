# Every answer the node gives, read by the installed driver's own decoders.
#
# fakecql writes its codec itself and never imports a driver's (types.py),
# so its answers are checked here against what the drivers accept: each
# response NodeSession.handle() returns for a broad set of requests (the
# handshake, every built-in table of both schema flavors, rows of every
# column type with nulls, collections, UDTs and tuples, paging, skip_metadata,
# count(*), PREPARE in v4 and v5, SET_KEYSPACE, VOID, [applied], and every
# error the node answers) is encoded by fakecql in protocol v3, v4 and v5
# and decoded by the driver: its pure-Python ProtocolHandler and, where the
# driver is compiled, its Cython handlers (ListParser, LazyParser). Decoded
# rows must equal what the node holds. Then a real driver Session against
# CQLServer: it survives every statement shape the node does not interpret
# (one incident each, the host never marked down), and statements evicted
# from the node's prepared cache (it re-prepares on UNPREPARED).
#
# Rules: the driver is imported inside the tests (this module is collected
# where no driver is installed, as the other integration tests are); values
# compare through canon(), the same form for the node's Python values and
# the driver's, NaN-safe (floats by their bits on the wire).
from __future__ import annotations

import datetime
import functools
import inspect
import ipaddress
import os
import struct
import uuid
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakecql import cql
from fakecql.activity import UnexpectedRequest
from fakecql.limits import Limits
from fakecql.node import Node, NodeSession, PasswordAuth
from fakecql.protocol import types as T
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import (
    AlreadyExistsInfo,
    AuthResponse,
    AuthSuccess,
    Authenticate,
    CasWriteUnknownInfo,
    Consistency,
    Error,
    Execute,
    FunctionFailureInfo,
    Options,
    Prepare,
    PreparedResult,
    Query,
    QueryParameters,
    ReadFailureInfo,
    ReadTimeoutInfo,
    Ready,
    Register,
    Request,
    Response,
    RowsResult,
    SchemaChange,
    SchemaChangeResult,
    SetKeyspaceResult,
    Startup,
    Supported,
    UnavailableInfo,
    VoidResult,
    WriteFailureInfo,
    WriteTimeoutInfo,
)
from fakecql.schema import FLAVORS, Schema, SchemaError

from ..unit.protocol import strategies as S

settings.load_profile(os.environ.get("FAKECQL_HYPOTHESIS_PROFILE", S.CI_PROFILE))

VERSIONS = (3, 4, 5)
INT = T.NATIVE_TYPES["int"]


# ---- the driver's decoders -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def driver_decoders() -> Tuple[Tuple[str, Any], ...]:
    """(name, handler class): the pure-Python one, then the Cython ones where the driver has them."""
    from cassandra import protocol
    from cassandra.cython_deps import HAVE_CYTHON

    found: List[Tuple[str, Any]] = [("python", protocol._ProtocolHandler)]
    if HAVE_CYTHON:
        from cassandra.obj_parser import LazyParser, ListParser

        found.append(("cython", protocol.cython_protocol_handler(ListParser())))
        found.append(("cython-lazy", protocol.cython_protocol_handler(LazyParser())))
    return tuple(found)


def driver_decode(handler: Any, response: Response, version: int, result_metadata: Any = None) -> Any:
    """The driver's message for the body fakecql encodes (scylla-driver also takes protocol features)."""
    kwargs: Dict[str, Any] = dict(
        protocol_version=version, user_type_map={}, stream_id=1, flags=0, opcode=int(response.opcode),
        body=response.encode_body(version), decompressor=None, result_metadata=result_metadata,
    )
    if "protocol_features" in inspect.signature(handler.decode_message).parameters:
        from cassandra.protocol_features import ProtocolFeatures

        kwargs["protocol_features"] = ProtocolFeatures()
    message = handler.decode_message(**kwargs)
    if getattr(message, "parsed_rows", None) is not None:
        message.parsed_rows = list(message.parsed_rows)  # the lazy parser yields them
    return message


def test_the_cython_decoders_are_tested_where_the_driver_is_compiled():
    import cassandra
    import cassandra.protocol

    compiled = cassandra.protocol.__file__.endswith((".so", ".pyd"))
    names = [name for name, _ in driver_decoders()]
    assert names == (["python", "cython", "cython-lazy"] if compiled else names[:1]), (cassandra.__version__, names)


# ---- values, compared in one form ------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1)
_FLOATS = {"double": ">d", "float": ">f"}


def canon(cql_type: T.CqlType, value: Any, *, driver: bool) -> Any:
    """A form of a node's value (driver=False) or of the driver's decoding of it
    (driver=True) that compares equal exactly when they are the same value."""
    if value is None:
        return None
    again = functools.partial(canon, driver=driver)
    if isinstance(cql_type, T.NativeType):
        name = cql_type.name
        if name in _FLOATS:
            return (name, struct.pack(_FLOATS[name], value))
        if name == "decimal":
            return (name, value.as_tuple())
        if name == "inet":
            return (name, ipaddress.ip_address(value))
        if name == "timestamp":  # the driver's datetime is at microseconds: round to milliseconds
            return (name, round((value - _EPOCH) / datetime.timedelta(milliseconds=1)) if driver else value)
        if name == "date":
            return (name, value.days_from_epoch if driver else value)
        if name == "time":
            return (name, value.nanosecond_time if driver else value)
        if name == "duration":
            return (name, (value.months, value.days, value.nanoseconds))
        return (name, type(value).__name__, value)
    if isinstance(cql_type, T.CustomType):
        return ("custom", bytes(value))
    if isinstance(cql_type, T.ListType):
        return ("list", [again(cql_type.element, v) for v in value])
    if isinstance(cql_type, T.SetType):  # the driver keeps sets sorted: compare as multisets
        return ("set", sorted((again(cql_type.element, v) for v in value), key=repr))
    if isinstance(cql_type, T.MapType):
        if driver:
            # Its entries as decoded: the driver's OrderedMap looks a key up by re-serializing
            # it, which fails for a key holding a set whose Python order is not CQL's (timeuuid,
            # inet), against a real node too (test_driver_reads_sets_in_cql_order covers ints).
            pairs = value._items
        else:
            pairs = value.items() if isinstance(value, dict) else value
        return ("map", [(again(cql_type.key, k), again(cql_type.value, v)) for k, v in pairs])
    if isinstance(cql_type, T.TupleType):
        return ("tuple", [again(t, v) for t, v in zip(cql_type.elements, value)])
    if isinstance(cql_type, T.UserType):
        if driver:  # a namedtuple in field order
            fields = list(value)
        else:  # a dict, or (field, value) pairs where it is (in) a map key
            named = dict(value)
            fields = [named.get(name) for name, _ in cql_type.fields]
        return ("udt", [again(t, v) for (_, t), v in zip(cql_type.fields, fields)])
    raise AssertionError(f"no canonical form for {cql_type!r}")


def node_rows(result: RowsResult, columns: Optional[Sequence[Any]] = None) -> List[List[Any]]:
    """The rows as fakecql decodes them, canonical (its codec is checked byte for byte elsewhere)."""
    specs = columns if columns is not None else result.metadata.columns
    return [
        [canon(s.type, None if cell is None else s.type.deserialize(cell), driver=False) for s, cell in zip(specs, row)]
        for row in result.rows
    ]


def driver_rows(message: Any, types: Sequence[T.CqlType]) -> List[List[Any]]:
    return [[canon(t, v, driver=True) for t, v in zip(types, row)] for row in message.parsed_rows]


# ---- what every response must decode to ---------------------------------------------------

def check_decoded(response: Response, version: int, *, result_metadata: Any = None,
                  columns: Optional[Sequence[Any]] = None) -> Dict[str, Any]:
    """Decode `response` with every driver decoder and check what each read; the decoded messages by name."""
    from cassandra.protocol import ErrorMessage

    decoded: Dict[str, Any] = {}
    for name, handler in driver_decoders():
        where = f"{name} decoder, v{version}, {type(response).__name__}"
        message = driver_decode(handler, response, version, result_metadata)
        decoded[name] = message
        if isinstance(response, Error):
            assert isinstance(message, ErrorMessage), where
            assert (message.code, message.message) == (int(response.code), response.message), where
            continue
        assert message.opcode == int(response.opcode), where
        if isinstance(response, RowsResult):
            assert message.kind == 2, where
            specs = columns if columns is not None else response.metadata.columns
            if not response.metadata.no_metadata:
                assert message.column_names == [s.name for s in specs], where
            assert message.paging_state == response.metadata.paging_state, where
            assert driver_rows(message, [s.type for s in specs]) == node_rows(response, specs), where
        elif isinstance(response, PreparedResult):
            assert message.kind == 4 and message.query_id == response.query_id, where
            assert [c.name for c in message.bind_metadata] == [c.name for c in response.bind_metadata.columns], where
            assert [c[2] for c in message.column_metadata or []] == [
                c.name for c in response.result_metadata.columns
            ], where
            assert message.result_metadata_id == response.result_metadata_id, where
            if version >= 4:
                assert message.pk_indexes == list(response.bind_metadata.pk_indexes), where
        elif isinstance(response, SetKeyspaceResult):
            assert (message.kind, message.new_keyspace) == (3, response.keyspace), where
        elif isinstance(response, VoidResult):
            assert message.kind == 1, where
        elif isinstance(response, SchemaChangeResult):
            event = message.schema_change_event
            change = response.change
            assert (message.kind, event["change_type"], event["target_type"], event["keyspace"]) == (
                5, change.change_type, change.target, change.keyspace), where
        elif isinstance(response, Supported):
            options = {k: list(v) for k, v in response.options.items()}
            assert message.cql_versions == options.pop("CQL_VERSION") and message.options == options, where
        elif isinstance(response, Authenticate):
            assert message.authenticator == response.authenticator, where
        elif isinstance(response, AuthSuccess):  # the driver reads a null token as ""
            assert (message.token or None) == (response.token.decode() if response.token else None), where
        else:
            assert isinstance(response, Ready), where
    return decoded


# ---- every answer of a node, in every version ---------------------------------------------

def started(node: Node, version: int, number: int = 1) -> NodeSession:
    session = node.session(number)
    assert session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), version, 0) == Ready()
    return session


def ask(session: NodeSession, request: Request, version: int) -> Response:
    return session.handle(request, version, 1)


def q(text: str, *values: Any, **params: Any) -> Query:
    return Query(query=text, parameters=QueryParameters(values=values, **params))


def demo_node(flavor: str = "cassandra", **limits: int) -> Node:
    node = Node(schema=Schema(flavor=flavor), limits=Limits(**limits) if limits else None)
    node.peers.append({
        "peer": ipaddress.ip_address("127.0.0.2"), "data_center": "dc1", "host_id": uuid.UUID(int=2),
        "rack": "r1", "release_version": "4.0.11",
        "rpc_address": ipaddress.ip_address("127.0.0.2"), "schema_version": node.schema.version,
        "tokens": ["42"],
    })
    node.schema.add_keyspace("ks")
    node.schema.add_type("ks", "address", {"street": "text", "zip": "int", "tags": "frozen<set<text>>"})
    node.schema.add_table("ks", "users", {
        "id": "int", "name": "text", "tags": "set<text>", "prefs": "map<text, int>", "home": "frozen<address>",
        "pair": "frozen<tuple<int, text>>", "nested": "list<frozen<list<int>>>",
    }, partition_key="id")
    # counters (left out of the generated tables: a counter table holds nothing else)
    counts = node.schema.add_table("ks", "counts", {"id": "int", "n": "counter", "m": "counter"}, partition_key="id")
    counts.rows.extend([{"id": 1, "n": 2**63 - 1, "m": None}, {"id": 2, "n": -(2**63), "m": 0}])
    return node


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("version", VERSIONS)
def test_every_builtin_table_decodes(flavor, version):
    """SELECT * of every table of the schema, as drivers read them while they connect."""
    node = demo_node(flavor)
    session = started(node, version)
    tables = [(ks, t.name) for ks in node.schema.keyspaces for t in node.schema.tables(ks)]
    assert ("system", "local") in tables and ("system_schema", "columns") in tables
    for keyspace, table in tables:
        response = ask(session, q(f'SELECT * FROM "{keyspace}"."{table}"'), version)
        assert isinstance(response, RowsResult), (keyspace, table, response)
        check_decoded(response, version)
    assert node.activity.take_incidents() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_every_answer_decodes(version):
    """Each request here gets a different kind of answer, and each one decodes."""
    node = demo_node(max_collection_elements=10, max_query_text=4096)
    session = started(node, version)
    answers: List[Response] = [
        ask(node.session(9), Options(), version),
        ask(node.session(9), Startup(options={"CQL_VERSION": "3.0.0"}), version),
        ask(session, Startup(options={"CQL_VERSION": "3.0.0"}), version),  # twice: ProtocolError
        ask(session, Register(event_types=("SCHEMA_CHANGE",)), version),
        ask(session, Register(event_types=("NOPE",)), version),
        ask(session, q("USE ks"), version),
        ask(session, q("INSERT INTO ks.users (id, name, tags, prefs, home, pair, nested) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       INT.serialize(1), b"ada", T.parse_type("set<text>").serialize(["a", "b"]),
                       T.parse_type("map<text, int>").serialize({"x": 1}),
                       node.schema.table("ks", "users").column("home").type.serialize(
                           {"street": "s", "zip": None, "tags": ["t"]}),
                       T.parse_type("tuple<int, text>").serialize((2, None)),
                       T.parse_type("list<frozen<list<int>>>").serialize([[1], []])), version),
        ask(session, q("INSERT INTO ks.users (id) VALUES (2)"), version),
        ask(session, q("SELECT * FROM ks.users"), version),
        ask(session, q("SELECT count(*) FROM ks.users"), version),
        ask(session, q("SELECT * FROM ks.counts"), version),
        ask(session, q("SELECT name AS n, id FROM ks.users WHERE id IN (1, 2) LIMIT 1"), version),
        ask(session, q("SELECT key, release_version, tokens, host_id FROM system.local WHERE key='local'"), version),
        # statements the node does not interpret: VOID, [applied], InvalidRequest, SyntaxError
        ask(session, q("UPDATE ks.users SET name = 'b' WHERE id = 1"), version),
        ask(session, q("INSERT INTO ks.users (id) VALUES (3) IF NOT EXISTS"), version),
        ask(session, q("CREATE TABLE ks.t (k int PRIMARY KEY)"), version),
        ask(session, q("SELECT JSON * FROM ks.users"), version),
        ask(session, q("FROBNICATE"), version),
        # errors of the node's own
        ask(session, q("SELECT * FROM ks.nope"), version),
        ask(session, q("SELECT * FROM nope.users"), version),
        ask(session, q("SELECT nope FROM ks.users"), version),
        ask(session, q("SELECT id FROM ks.users", page_size=1, paging_state=b"fakecql-offset:" + b"9" * 5000), version),
        ask(session, Execute(query_id=b"\x01" * 16, result_metadata_id=b"" if version >= 5 else None), version),
        ask(session, q("SELECT id FROM ks.users WHERE name = '" + "x" * 5000 + "'"), version),
        ask(session, q("INSERT INTO ks.users (id, tags) VALUES (5, ?)",
                       T.parse_type("set<text>").serialize([str(i) for i in range(11)])), version),
    ]
    # primed answers: every error code with extra fields, and a SCHEMA_CHANGE
    addr = ipaddress.ip_address("127.0.0.1")
    primed: List[Response] = [
        Error(code=ErrorCode.UNAVAILABLE, message="u", info=UnavailableInfo(
            consistency=Consistency.QUORUM, required=3, alive=1)),
        Error(code=ErrorCode.WRITE_TIMEOUT, message="w", info=WriteTimeoutInfo(
            consistency=Consistency.ONE, received=0, block_for=1, write_type="SIMPLE")),
        Error(code=ErrorCode.READ_TIMEOUT, message="r", info=ReadTimeoutInfo(
            consistency=Consistency.ONE, received=0, block_for=1, data_present=False)),
        Error(code=ErrorCode.READ_FAILURE, message="rf", info=ReadFailureInfo(
            consistency=Consistency.ONE, received=0, block_for=1, data_present=True,
            **({"reasons": ((addr, 1),), "num_failures": 1} if version >= 5 else {"num_failures": 1}))),
        Error(code=ErrorCode.WRITE_FAILURE, message="wf", info=WriteFailureInfo(
            consistency=Consistency.ONE, received=0, block_for=1, write_type="BATCH",
            **({"reasons": ((addr, 1),), "num_failures": 1} if version >= 5 else {"num_failures": 1}))),
        Error(code=ErrorCode.FUNCTION_FAILURE, message="f", info=FunctionFailureInfo(
            keyspace="ks", function="f", arg_types=("int",))),
        Error(code=ErrorCode.ALREADY_EXISTS, message="a", info=AlreadyExistsInfo(keyspace="ks", table="users")),
        Error(code=ErrorCode.OVERLOADED, message="o"),
        SchemaChangeResult(change=SchemaChange(change_type="CREATED", target="TABLE", keyspace="ks", name="t")),
        SchemaChangeResult(change=SchemaChange(change_type="DROPPED", target="KEYSPACE", keyspace="ks")),
    ]
    if version >= 5:
        primed.append(Error(code=ErrorCode.CAS_WRITE_UNKNOWN, message="c", info=CasWriteUnknownInfo(
            consistency=Consistency.SERIAL, received=0, block_for=1)))
    for i, response in enumerate(primed):
        node.when_query(f"SELECT * FROM ks.primed{i}").then(response)
        answers.append(ask(session, q(f"SELECT * FROM ks.primed{i}"), version))
    assert answers[-len(primed):] == primed
    for response in answers:
        check_decoded(response, version)
    kinds = {type(r).__name__ for r in answers} | {f"Error/{r.code.name}" for r in answers if isinstance(r, Error)}
    assert kinds >= {
        "Supported", "Ready", "SetKeyspaceResult", "VoidResult", "RowsResult", "SchemaChangeResult",
        "Error/PROTOCOL_ERROR", "Error/INVALID", "Error/SYNTAX_ERROR", "Error/UNPREPARED",
    }, kinds
    incidents = node.activity.take_incidents()  # 5 uninterpreted, 2 unknown tables, 1 text too long, 3 protocol
    assert sorted(type(i).__name__ for i in incidents) == ["ProtocolIncident"] * 3 + ["UnexpectedRequest"] * 8


@pytest.mark.parametrize("version", VERSIONS)
def test_authentication_answers_decode(version):
    node = Node(auth=PasswordAuth("cassandra", "s3cret"))
    session = node.session(1)
    answers = [
        ask(session, Startup(options={"CQL_VERSION": "3.0.0"}), version),
        ask(session, q("SELECT * FROM system.local"), version),  # before AUTH_RESPONSE: ProtocolError
        ask(session, AuthResponse(token=b"\x00cassandra\x00wrong"), version),
        ask(session, AuthResponse(token=b"\x00cassandra\x00s3cret"), version),
    ]
    assert [type(a) for a in answers] == [Authenticate, Error, Error, AuthSuccess]
    for response in answers:
        check_decoded(response, version)
    node.activity.take_incidents()


@pytest.mark.parametrize("version", VERSIONS)
def test_prepared_answers_decode(version):
    """PREPARE (v5: result_metadata_id), EXECUTE with and without skip_metadata, and paging through EXECUTE."""
    node = demo_node()
    session = started(node, version)
    for i in range(5):
        assert ask(session, q(f"INSERT INTO ks.users (id, name) VALUES ({i}, 'u{i}')"), version) == VoidResult()
    for text, values in [
        ("SELECT * FROM ks.users WHERE id IN (?, ?)", (INT.serialize(1), INT.serialize(3))),
        ("SELECT name, count(*) FROM ks.users LIMIT ?", (INT.serialize(10),)),
        ("INSERT INTO ks.users (id, name, home) VALUES (?, ?, ?)", (INT.serialize(9), b"n", None)),
    ]:
        prepared = ask(session, Prepare(query=text), version)
        assert isinstance(prepared, PreparedResult) and (prepared.result_metadata_id is not None) == (version >= 5)
        metadata = {name: m.column_metadata for name, m in check_decoded(prepared, version).items()}
        execute = functools.partial(Execute, query_id=prepared.query_id, result_metadata_id=prepared.result_metadata_id)
        full = ask(session, execute(parameters=QueryParameters(values=values)), version)
        check_decoded(full, version)
        skipped = ask(session, execute(parameters=QueryParameters(values=values, skip_metadata=True)), version)
        if isinstance(skipped, RowsResult):
            assert skipped.metadata.no_metadata
            for name, handler in driver_decoders():  # the driver reads them with the prepared metadata
                message = driver_decode(handler, skipped, version, metadata[name])
                types = [c.type for c in prepared.result_metadata.columns]
                assert driver_rows(message, types) == node_rows(skipped, prepared.result_metadata.columns), name
    prepared = ask(session, Prepare(query="SELECT id, name FROM ks.users"), version)
    assert isinstance(prepared, PreparedResult)
    paging_state, pages = None, []
    while True:
        page = ask(session, Execute(query_id=prepared.query_id, result_metadata_id=prepared.result_metadata_id,
                                    parameters=QueryParameters(page_size=2, paging_state=paging_state)), version)
        assert isinstance(page, RowsResult)
        check_decoded(page, version)
        pages.append(len(page.rows))
        paging_state = page.metadata.paging_state
        if paging_state is None:
            break
    assert pages == [2, 2, 2]
    assert node.activity.take_incidents() == []


# ---- rows of every column type, generated ------------------------------------------------

_MS_RANGE = (-62135596800000 + 86_400_000, 253402300799999 - 86_400_000)  # what a datetime holds, a day inside


def _frozen(cql_type: T.CqlType) -> T.CqlType:
    if isinstance(cql_type, T.ListType):
        return T.ListType(_frozen(cql_type.element), True)
    if isinstance(cql_type, T.SetType):
        return T.SetType(_frozen(cql_type.element), True)
    if isinstance(cql_type, T.MapType):
        return T.MapType(_frozen(cql_type.key), _frozen(cql_type.value), True)
    if isinstance(cql_type, T.TupleType):
        return T.TupleType(tuple(_frozen(e) for e in cql_type.elements))
    if isinstance(cql_type, T.UserType):
        return T.UserType(cql_type.keyspace, cql_type.name, tuple((n, _frozen(t)) for n, t in cql_type.fields), True)
    return cql_type


def _inner(cql_type: T.CqlType) -> Tuple[T.CqlType, ...]:
    if isinstance(cql_type, (T.ListType, T.SetType)):
        return (cql_type.element,)
    if isinstance(cql_type, T.MapType):
        return (cql_type.key, cql_type.value)
    if isinstance(cql_type, T.TupleType):
        return cql_type.elements
    if isinstance(cql_type, T.UserType):
        return tuple(t for _, t in cql_type.fields)
    return ()


def _has_duration(cql_type: T.CqlType) -> bool:
    return cql_type is T.NATIVE_TYPES["duration"] or any(_has_duration(t) for t in _inner(cql_type))


def _allowed(cql_type: T.CqlType) -> bool:
    """Cassandra's rule the generator could break: no duration in a set or a map key."""
    if isinstance(cql_type, T.SetType) and _has_duration(cql_type.element):
        return False
    if isinstance(cql_type, T.MapType) and _has_duration(cql_type.key):
        return False
    return all(_allowed(t) for t in _inner(cql_type))


_LEAVES = st.sampled_from(sorted(set(T.NATIVE_TYPES) - {"counter", "varchar"})).map(T.NATIVE_TYPES.__getitem__) | st.just(
    T.CustomType("com.example.Opaque")
)


def _udt(items: List[T.CqlType]) -> T.UserType:
    return T.UserType("ks", "u", tuple((f"f{i}", _frozen(t)) for i, t in enumerate(items)))


def _composite(children: st.SearchStrategy[T.CqlType]) -> st.SearchStrategy[T.CqlType]:
    frozen = children.map(_frozen)
    return st.one_of(
        st.builds(T.ListType, frozen),
        st.builds(T.SetType, frozen),
        st.builds(T.MapType, frozen, frozen),
        st.lists(children, min_size=1, max_size=3).map(lambda items: T.TupleType(tuple(map(_frozen, items)))),
        st.lists(children, min_size=1, max_size=3).map(_udt),
    )


COLUMN_TYPES = st.recursive(_LEAVES, _composite, max_leaves=5).filter(_allowed)


def _named_udts(cql_type: T.CqlType, names: Iterator[int], found: List[T.UserType]) -> T.CqlType:
    """The type with each UDT given a name of its own (u0, u1, ...); `found` gets them inner first."""
    def again(t: T.CqlType) -> T.CqlType:
        return _named_udts(t, names, found)

    if isinstance(cql_type, T.ListType):
        return T.ListType(again(cql_type.element), cql_type.frozen)
    if isinstance(cql_type, T.SetType):
        return T.SetType(again(cql_type.element), cql_type.frozen)
    if isinstance(cql_type, T.MapType):
        return T.MapType(again(cql_type.key), again(cql_type.value), cql_type.frozen)
    if isinstance(cql_type, T.TupleType):
        return T.TupleType(tuple(again(e) for e in cql_type.elements))
    if isinstance(cql_type, T.UserType):
        fields = tuple((n, again(t)) for n, t in cql_type.fields)
        named = T.UserType("ks", f"u{next(names)}", fields, cql_type.frozen)
        found.append(named)
        return named
    return cql_type


def _eq_key(value: Any) -> Any:
    """When the driver's SortedSet would take two elements for one (Python ==, NaN apart)."""
    if isinstance(value, float) and value != value:
        return ("nan", struct.pack(">d", value))
    if isinstance(value, dict):
        return tuple((_eq_key(k), _eq_key(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(_eq_key(v) for v in value)
    return value


def values_of(cql_type: T.CqlType, key: bool = False) -> st.SearchStrategy[Any]:
    """strategies.values_of, less what the drivers cannot represent (a real node could hold
    it too): timestamps outside a datetime, empty custom values (read as null), a decimal
    scale of -2**31; and set elements the driver's SortedSet keeps apart."""
    if cql_type is T.NATIVE_TYPES["timestamp"]:
        return st.integers(*_MS_RANGE)
    if isinstance(cql_type, T.CustomType):  # the driver reads an empty value of a custom type as null
        return st.binary(min_size=1, max_size=20)
    if cql_type is T.NATIVE_TYPES["decimal"]:  # the Cython decoder negates a scale of -2**31 in 32 bits
        return st.builds(S.decimal_from, st.integers() | S.ints(1024), st.integers(-(2**31) + 1, 2**31 - 1))
    if isinstance(cql_type, (T.NativeType, T.CustomType)):
        return S.values_of(cql_type, key)
    if isinstance(cql_type, (T.ListType, T.SetType)):
        unique_by = _eq_key if isinstance(cql_type, T.SetType) else None
        items = st.lists(values_of(cql_type.element, key), max_size=3, unique_by=unique_by)
        return items.map(tuple) if key else items
    if isinstance(cql_type, T.MapType):
        pairs = st.lists(st.tuples(values_of(cql_type.key, True), values_of(cql_type.value, key)), max_size=3)
        mapping = pairs.map(dict)
        return mapping.map(lambda d: tuple(d.items())) if key else mapping
    if isinstance(cql_type, T.TupleType):
        return st.tuples(*(S.optional(values_of(e, key)) for e in cql_type.elements))
    if isinstance(cql_type, T.UserType):
        fields = st.fixed_dictionaries({n: S.optional(values_of(t, key)) for n, t in cql_type.fields})
        return fields.map(lambda d: tuple(d.items())) if key else fields
    raise AssertionError(f"no value strategy for {cql_type!r}")


@st.composite
def tables(draw: Any) -> Tuple[List[T.UserType], List[Tuple[str, T.CqlType]], List[List[Any]]]:
    """(user types, columns (name, type), rows of values or None), the key column id first."""
    names = iter(range(100))
    udts: List[T.UserType] = []
    types = [_named_udts(t, names, udts) for t in draw(st.lists(COLUMN_TYPES, min_size=1, max_size=5))]
    columns = [("id", INT)] + [(f"c{i}", t) for i, t in enumerate(types)]
    rows = []
    for i in range(draw(st.integers(0, 4))):
        rows.append([i] + [draw(S.optional(values_of(t))) for _, t in columns[1:]])
    return udts, columns, rows


@given(table=tables(), version=st.sampled_from(VERSIONS))
def test_rows_of_generated_tables_decode_as_the_node_holds_them(table, version):
    """INSERT bound values of every type, then SELECT, page, count and EXECUTE them: each
    driver decoder reads exactly the rows the node holds."""
    udts, columns, rows = table
    node = Node()
    node.schema.add_keyspace("ks")
    try:
        for udt in udts:
            node.schema.add_type("ks", udt.name, dict(udt.fields))
        table_def = node.schema.add_table("ks", "t", dict(columns), partition_key="id")
    except SchemaError as exc:  # the generator broke a rule it does not know of
        raise AssertionError(f"the schema refused a generated table: {exc}") from None
    types = {c.name: c.type for c in table_def.columns}
    session = started(node, version)
    names = [name for name, _ in columns]
    insert = ask(session, Prepare(query=f"INSERT INTO ks.t ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"),
                 version)
    assert isinstance(insert, PreparedResult), insert
    for row in rows:
        values = tuple(None if v is None else types[n].serialize(v) for n, v in zip(names, row))
        assert ask(session, Execute(query_id=insert.query_id, result_metadata_id=insert.result_metadata_id,
                                    parameters=QueryParameters(values=values)), version) == VoidResult()

    held = table_def.rows  # what the node holds, in its order
    response = ask(session, q("SELECT * FROM ks.t"), version)
    assert isinstance(response, RowsResult)
    order = [s.name for s in response.metadata.columns]
    expected = [[canon(types[n], r.get(n), driver=False) for n in order] for r in held]
    for name, message in check_decoded(response, version).items():
        assert driver_rows(message, [types[n] for n in order]) == expected, name

    # paging, one row a page; count(*); and EXECUTE with skip_metadata
    paging_state, paged = None, []
    while True:
        page = ask(session, q("SELECT * FROM ks.t", page_size=1, paging_state=paging_state), version)
        assert isinstance(page, RowsResult)
        check_decoded(page, version)
        paged.extend(node_rows(page))
        paging_state = page.metadata.paging_state
        if paging_state is None:
            break
    assert paged == expected
    check_decoded(ask(session, q("SELECT count(*) FROM ks.t"), version), version)
    select = ask(session, Prepare(query="SELECT * FROM ks.t WHERE id = ?"), version)
    assert isinstance(select, PreparedResult)
    metadata = {name: m.column_metadata for name, m in check_decoded(select, version).items()}
    for i, row in enumerate(held):
        skipped = ask(session, Execute(query_id=select.query_id, result_metadata_id=select.result_metadata_id,
                                       parameters=QueryParameters(values=(INT.serialize(row["id"]),),
                                                                  skip_metadata=True)), version)
        assert isinstance(skipped, RowsResult) and skipped.metadata.no_metadata
        for name, handler in driver_decoders():
            message = driver_decode(handler, skipped, version, metadata[name])
            assert driver_rows(message, [types[n] for n in order]) == [expected[i]], name
    assert node.activity.take_incidents() == []


@pytest.mark.parametrize("version", VERSIONS)
def test_driver_reads_sets_in_cql_order(version):
    """Before, the node sent a set in the order it was bound: the driver sorts its sets, then
    looks map keys up by re-serializing them, so a map keyed by an unsorted set raised KeyError
    on .items(). A real node sends sets sorted; so does fakecql now."""
    node = Node()
    node.schema.add_keyspace("ks")
    table = node.schema.add_table("ks", "t", {"id": "int", "m": "map<frozen<set<int>>, text>", "s": "set<int>"},
                                  partition_key="id")
    session = started(node, version)
    insert = ask(session, Prepare(query="INSERT INTO ks.t (id, m, s) VALUES (?, ?, ?)"), version)
    assert isinstance(insert, PreparedResult)
    m, s = table.column("m").type, table.column("s").type
    values = (INT.serialize(1), m.serialize({(3, 1, 2): "x", (9, 0): "y"}), s.serialize([5, 4, 5]))
    assert ask(session, Execute(query_id=insert.query_id, result_metadata_id=insert.result_metadata_id,
                                parameters=QueryParameters(values=values)), version) == VoidResult()
    response = ask(session, q("SELECT m, s FROM ks.t"), version)
    for name, message in check_decoded(response, version).items():
        (got_m, got_s), = message.parsed_rows
        assert [(list(k), v) for k, v in got_m.items()] == [([0, 9], "y"), ([1, 2, 3], "x")], name
        assert list(got_s) == [4, 5], name


# ---- a driver session against CQLServer ----------------------------------------------------

# (statement, what the driver's execute() does: "ok", "applied" or the exception class name)
UNINTERPRETED = [
    ("UPDATE ks.users SET name = 'a' WHERE id = 1", "ok"),
    ("UPDATE ks.users SET name = 'a' WHERE id = 1 IF name = 'b'", "applied"),
    ("DELETE FROM ks.users WHERE id = 1", "ok"),
    ("DELETE FROM ks.users WHERE id = 1 IF EXISTS", "applied"),
    ("INSERT INTO ks.users (id) VALUES (1) IF NOT EXISTS", "applied"),
    ("INSERT INTO ks.users (id) VALUES (1) USING TTL 10", "ok"),
    ("BEGIN BATCH UPDATE ks.users SET name = 'a' WHERE id = 1; DELETE FROM ks.users WHERE id = 2; APPLY BATCH", "ok"),
    ("TRUNCATE ks.users", "ok"),
    ("CREATE KEYSPACE k2 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", "ok"),
    ("CREATE TABLE ks.t (k int PRIMARY KEY)", "ok"),
    ("ALTER TABLE ks.users ADD extra text", "ok"),
    ("DROP TABLE ks.users", "ok"),
    ("CREATE INDEX ON ks.users (name)", "ok"),
    ("CREATE ROLE r WITH PASSWORD = 'p' AND LOGIN = true", "ok"),
    ("GRANT SELECT ON KEYSPACE ks TO r", "ok"),
    ("REVOKE SELECT ON KEYSPACE ks FROM r", "ok"),
    ("SELECT JSON * FROM ks.users", "InvalidRequest"),
    ("SELECT DISTINCT id FROM ks.users", "InvalidRequest"),
    ("SELECT now() FROM system.local", "InvalidRequest"),
    ("SELECT * FROM ks.users WHERE token(id) > 0", "InvalidRequest"),
    ("LIST ROLES", "InvalidRequest"),
    ("DESCRIBE KEYSPACES", "InvalidRequest"),
    ("FROBNICATE ks.users", "SyntaxException"),
    ("USE ks other", "SyntaxException"),
    ("SELECT * FROM ks.nope", "InvalidRequest"),  # a typo: answered as a node would, and an incident
]


class _HostStates:
    """A driver host state listener that remembers every host it was told went down."""

    def __init__(self) -> None:
        self.down: List[Any] = []

    def on_up(self, host: Any) -> None:
        pass

    def on_down(self, host: Any) -> None:
        self.down.append(host)

    def on_add(self, host: Any) -> None:
        pass

    def on_remove(self, host: Any) -> None:
        self.down.append(host)


def _connections(server: Any) -> int:
    from fakecql import ConnectionOpened

    return len(server.activity.of_type(ConnectionOpened))


def test_driver_session_survives_every_uninterpreted_statement(cql_server_factory, cluster_factory):
    from cassandra import InvalidRequest
    from cassandra.protocol import SyntaxException

    server = cql_server_factory(tls=False)
    server.node.schema.add_keyspace("ks")
    server.node.schema.add_table("ks", "users", {"id": "int", "name": "text"}, partition_key="id")
    cluster = cluster_factory(server)
    states = _HostStates()
    cluster.register_listener(states)
    session = cluster.connect()
    opened = _connections(server)
    errors = {"InvalidRequest": InvalidRequest, "SyntaxException": SyntaxException}
    for text, outcome in UNINTERPRETED:
        if outcome in errors:
            with pytest.raises(errors[outcome]) as caught:
                session.execute(text)
            assert "fakecql" in str(caught.value) or "unconfigured table" in str(caught.value), caught.value
        else:
            result = session.execute(text)
            assert result.was_applied if outcome == "applied" else result.current_rows == [], text
        incidents = server.activity.take_incidents()
        assert len(incidents) == 1 and isinstance(incidents[0], UnexpectedRequest), (text, incidents)
        assert incidents[0].query == cql.normalize_query(text)
    # the same session, the same connections, the host up throughout
    assert session.execute("SELECT release_version FROM system.local").one().release_version == "4.0.11"
    prepared = session.prepare("UPDATE ks.users SET name = ? WHERE id = ?")
    assert session.execute(prepared, (b"n", b"\x00\x00\x00\x01")).current_rows == []  # uninterpreted: blob markers
    assert len(server.activity.take_incidents()) == 1
    assert states.down == [] and all(host.is_up for host in cluster.metadata.all_hosts())
    assert _connections(server) == opened


def test_driver_reprepares_statements_the_node_evicted(cql_server_factory, cluster_factory):
    """A prepared cache of 4 KiB holds about ten statements: the driver re-prepares the first on UNPREPARED."""
    from fakecql import FrameReceived

    server = cql_server_factory(tls=False, limits=Limits(prepared_cache_bytes=4096))
    server.node.schema.add_keyspace("ks")
    server.node.schema.add_table("ks", "users", {"id": "int", "name": "text"}, partition_key="id")
    session = cluster_factory(server).connect()
    session.execute("INSERT INTO ks.users (id, name) VALUES (1, 'ada')")
    statements = [session.prepare(f"SELECT name FROM ks.users WHERE id = ? LIMIT {n + 1}") for n in range(40)]
    assert server.node._prepared.evictions > 0 and len(server.node._prepared) < 40
    assert server.node._prepared.bytes_held <= 4096
    prepares = sum(1 for e in server.activity.of_type(FrameReceived) if e.opcode == "PREPARE")
    for statement in statements[:3]:  # the oldest: evicted
        assert session.execute(statement, (1,)).one().name == "ada"
    reprepared = sum(1 for e in server.activity.of_type(FrameReceived) if e.opcode == "PREPARE") - prepares
    assert reprepared >= 3
    assert session.execute(statements[-1], (1,)).one().name == "ada"
    assert server.activity.take_incidents() == []
