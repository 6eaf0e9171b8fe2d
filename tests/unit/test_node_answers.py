# What the node answers where it cannot interpret, and what one request may
# cost it (fakecql/node.py), sans I/O except where the symptom was on the
# wire: every statement shape fakecql does not interpret gets the answer a
# real node gives that shape (and an incident); a typo in a table name is an
# incident; a paging state the node cannot read is a ProtocolError; the
# prepared-statement and plan caches are bounded in bytes; a collection
# over Limits.max_collection_elements and a text over Limits.max_query_text
# are refused before they cost anything. What a driver makes of every
# answer: tests/integration/test_driver_decodes_results.py.
#
# Rules: every answer is compared whole; every test that makes an incident
# takes it and compares it whole; each table is parametrized with ids.
from __future__ import annotations

import struct
import uuid
from typing import Any, List

import pytest

from fakecql import cql
from fakecql.activity import ProtocolIncident, UnexpectedRequest
from fakecql.limits import Limits
from fakecql.node import Node, NodeSession
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import (
    Batch,
    BatchStatement,
    ColumnSpec,
    Error,
    Execute,
    Prepare,
    PreparedResult,
    Query,
    QueryParameters,
    Ready,
    Response,
    RowsMetadata,
    RowsResult,
    Startup,
    UnpreparedInfo,
    VoidResult,
    decode_message,
)
from fakecql.protocol.types import NATIVE_TYPES
from fakecql.schema import Schema

from ..rawcql import RawClient

INT, TEXT, BOOLEAN = NATIVE_TYPES["int"], NATIVE_TYPES["text"], NATIVE_TYPES["boolean"]
COLUMNS = {
    "id": "int", "name": "text", "tags": "list<int>", "nested": "list<frozen<list<int>>>",
    "scores": "map<text, frozen<set<int>>>", "pair": "frozen<tuple<int, list<int>>>", "addr": "frozen<address>",
}


def invalid(message: str) -> Error:
    return Error(code=ErrorCode.INVALID, message=message)


def make_node(**limits: int) -> Node:
    node = Node(limits=Limits(**limits) if limits else None)
    node.schema.add_keyspace("ks")
    node.schema.add_type("ks", "address", {"street": "text", "lines": "list<int>"})
    node.schema.add_table("ks", "users", COLUMNS, partition_key="id")
    return node


def open_session(node: Node) -> NodeSession:
    session = node.session(1)
    assert session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), 4, 0) == Ready()
    return session


@pytest.fixture
def node() -> Node:
    return make_node()


@pytest.fixture
def session(node: Node) -> NodeSession:
    return open_session(node)


def query(session: NodeSession, text: str, *values: Any, version: int = 4, **params: Any) -> Response:
    return session.handle(Query(query=text, parameters=QueryParameters(values=values, **params)), version, 1)


def prepare(session: NodeSession, text: str, version: int = 4) -> Response:
    return session.handle(Prepare(query=text), version, 1)


def execute(session: NodeSession, query_id: bytes, *values: Any, version: int = 4, **params: Any) -> Response:
    return session.handle(Execute(query_id=query_id, parameters=QueryParameters(values=values, **params)), version, 1)


def unexpected(query_text: str, description: str) -> UnexpectedRequest:
    return UnexpectedRequest(1, description=description, query=query_text)


def uninterpreted(query_text: str, reason: str, answered: str) -> UnexpectedRequest:
    return unexpected(
        query_text, f"no priming matches and fakecql does not interpret it ({reason}); answered {answered}"
    )


def applied(keyspace: str, table: str) -> RowsResult:
    spec = ColumnSpec(keyspace=keyspace, table=table, name="[applied]", type=BOOLEAN)
    return RowsResult(metadata=RowsMetadata(columns=(spec,)), rows=((b"\x01",),))


def read_refused(verb: str, reason: str) -> Error:
    return invalid(
        f"fakecql does not interpret this {verb} ({reason}); prime its answer with when_query(...).then_rows(...)"
    )


def syntax_error(first_word: str, reason: str) -> Error:
    return Error(code=ErrorCode.SYNTAX_ERROR, message=(
        f"line 1:0 no viable alternative at input '{first_word}': fakecql does not interpret it "
        f"({reason}); if a real node accepts it, prime its answer with when_query(...)"
    ))


def not_interpreted(verb: str) -> str:
    return f"{verb} is not interpreted by fakecql"


# ---- bug 1: every statement shape fakecql does not interpret ---------------------------

# (id, text as sent, the answer, what the incident says was answered): the
# answer is a message, or READ / SYNTAX for the error naming cql.py's reason
# (its wording is cql.py's); the normalized text is the incident's query.
READ, SYNTAX = "InvalidRequest", "SyntaxError"
UNINTERPRETED = [
    ("update", "UPDATE ks.users SET name = 'a' WHERE id = 1", VoidResult(), "VOID"),
    ("update-if-in-a-string", "UPDATE ks.users SET name = 'IF' WHERE id = 1", VoidResult(), "VOID"),
    ("update-if", "UPDATE ks.users SET name = 'a' WHERE id = 1 IF name = 'b'", applied("ks", "users"),
     "[applied] = true"),
    ("delete", "DELETE FROM ks.users WHERE id = 1", VoidResult(), "VOID"),
    ("delete-if-exists", 'DELETE name FROM "ks"."users" WHERE id = 1 IF EXISTS', applied("ks", "users"),
     "[applied] = true"),
    ("insert-if-not-exists", "INSERT INTO ks.users (id) VALUES (1) IF NOT EXISTS", applied("ks", "users"),
     "[applied] = true"),
    ("insert-using-ttl", "INSERT INTO ks.users (id) VALUES (1) USING TTL 10", VoidResult(), "VOID"),
    ("insert-json", "INSERT INTO ks.users JSON '{\"id\": 1}'", VoidResult(), "VOID"),
    ("batch", "BEGIN BATCH UPDATE ks.users SET name = 'a' WHERE id = 1; DELETE FROM ks.users WHERE id = 2; "
     "APPLY BATCH", VoidResult(), "VOID"),
    ("unlogged-batch-if", "BEGIN UNLOGGED BATCH INSERT INTO users (id) VALUES (1) IF NOT EXISTS APPLY BATCH",
     applied("fakecql", "users"), "[applied] = true"),
    ("truncate", "TRUNCATE ks.users", VoidResult(), "VOID"),
    ("create-keyspace", "CREATE KEYSPACE k2 WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
     VoidResult(), "VOID"),
    ("create-table", "CREATE TABLE IF NOT EXISTS ks.t (k int PRIMARY KEY)", VoidResult(), "VOID"),
    ("alter-table", "ALTER TABLE ks.users ADD extra text", VoidResult(), "VOID"),
    ("drop-table", "DROP TABLE ks.users", VoidResult(), "VOID"),
    ("create-index", "CREATE INDEX ON ks.users (name)", VoidResult(), "VOID"),
    ("create-role", "CREATE ROLE r WITH PASSWORD = 'p' AND LOGIN = true", VoidResult(), "VOID"),
    ("grant", "GRANT SELECT ON KEYSPACE ks TO r", VoidResult(), "VOID"),
    ("revoke", "REVOKE SELECT ON KEYSPACE ks FROM r", VoidResult(), "VOID"),
    ("select-json", "SELECT JSON * FROM ks.users", READ, READ),
    ("select-distinct", "SELECT DISTINCT id FROM ks.users", READ, READ),
    ("select-function", "SELECT now() FROM system.local", READ, READ),
    ("select-token-range", "SELECT * FROM ks.users WHERE token(id) > 0", READ, READ),
    ("list-roles", "LIST ROLES", READ, READ),
    ("describe", "DESCRIBE KEYSPACES", READ, READ),
    ("unknown-verb", "FROBNICATE ks.users", SYNTAX, SYNTAX),
    ("garbage", "\x00\x01 binary", SYNTAX, SYNTAX),
    ("use-two-names", "USE ks other", SYNTAX, SYNTAX),
    ("empty", "  ;", SYNTAX, SYNTAX),
]


def _reason(normalized: str) -> str:
    statement = cql.parse_statement(normalized)
    assert isinstance(statement, cql.Unrecognized), statement
    return statement.reason or not_interpreted(statement.verb or "an empty statement")


@pytest.mark.parametrize("text, answer, answered", [pytest.param(*r[1:], id=r[0]) for r in UNINTERPRETED])
@pytest.mark.parametrize("version", [3, 4, 5])
def test_uninterpreted_statement_gets_a_real_nodes_answer(node, session, text, answer, answered, version):
    """Before: RowsResult() (no columns), which both drivers refuse, dropping the connection."""
    normalized = cql.normalize_query(text)
    reason = _reason(normalized)
    if answer == READ:
        answer = read_refused(normalized.split(" ", 1)[0].upper(), reason)
    elif answer == SYNTAX:
        answer = syntax_error(normalized.split(" ", 1)[0] if normalized else "<EOF>", reason)
    response = query(session, text, version=version)
    assert response == answer
    assert node.activity.take_incidents() == [uninterpreted(normalized, reason, answered)]
    # A well-formed message in every version: fakecql's decoder (strict about trailing bytes) takes it back.
    assert decode_message(response.opcode, response.encode_body(version), version, is_response=True) == response


def test_uninterpreted_statement_executed_and_batched(node, session):
    prepared = prepare(session, "UPDATE ks.users SET name = ? WHERE id = ?")
    assert isinstance(prepared, PreparedResult)
    assert node.activity.take_incidents() == []  # PREPARE alone is fine
    assert execute(session, prepared.query_id, b"a", INT.serialize(1)) == VoidResult()
    batch = Batch(statements=(
        BatchStatement(query_id=prepared.query_id, values=(b"b", INT.serialize(2))),
        BatchStatement(query="DELETE FROM ks.users WHERE id = 3"),
    ))
    assert session.handle(batch, 4, 1) == VoidResult()
    update, delete = "UPDATE ks.users SET name = ? WHERE id = ?", "DELETE FROM ks.users WHERE id = 3"
    assert node.activity.take_incidents() == [
        uninterpreted(update, _reason(update), "VOID"),
        uninterpreted(update, _reason(update), "VOID"),
        uninterpreted(delete, _reason(delete), "VOID"),
    ]


def test_primed_uninterpreted_statement_is_no_incident(node, session):
    node.when_query("SELECT JSON * FROM ks.users").then_rows([('{"id": 1}',)], columns={"[json]": "text"})
    assert query(session, "SELECT JSON * FROM ks.users").rows == ((b'{"id": 1}',),)
    assert node.activity.take_incidents() == []


# ---- bug 2: a table the schema does not have -------------------------------------------

UNKNOWN_TABLES = [
    ("select-unknown-table", "SELECT * FROM ks.nope", "unconfigured table nope", "SELECT of ks.nope"),
    ("select-unknown-system-table", "SELECT * FROM system.nope", "unconfigured table nope", "SELECT of system.nope"),
    ("select-unknown-keyspace", "SELECT * FROM nope.users", "Keyspace nope does not exist", "SELECT of nope.users"),
    ("insert-unknown-table", "INSERT INTO ks.nope (id) VALUES (1)", "unconfigured table nope", "INSERT of ks.nope"),
    ("insert-unknown-keyspace", "INSERT INTO nope.users (id) VALUES (1)", "Keyspace nope does not exist",
     "INSERT of nope.users"),
]


def typo(text: str, message: str, what: str) -> UnexpectedRequest:
    return unexpected(text, f"{what}, which the schema does not have; answered InvalidRequest {message!r}")


@pytest.mark.parametrize("text, message, what", [pytest.param(*r[1:], id=r[0]) for r in UNKNOWN_TABLES])
def test_unknown_table_is_refused_and_an_incident(node, session, text, message, what):
    """Before: the right InvalidRequest, but no incident, so a typo passed silently."""
    assert query(session, text) == invalid(message)
    assert node.activity.take_incidents() == [typo(text, message, what)]


@pytest.mark.parametrize("text, message, what", [pytest.param(*r[1:], id=r[0]) for r in UNKNOWN_TABLES])
def test_prepare_of_an_unknown_table_is_refused_and_an_incident(node, session, text, message, what):
    """Before: PREPARE typed the markers as blobs, silently."""
    text = text.replace("VALUES (1)", "VALUES (?)")
    assert prepare(session, text) == invalid(message)
    assert node.activity.take_incidents() == [typo(text, message, what)]


def test_prepare_of_an_unknown_table_primed_with_params(node, session):
    """A priming matching the text wins: its params type the markers."""
    text = "SELECT * FROM ks.nope WHERE k = ?"
    node.when_query(text, params={"k": "int"}).then_rows([(1,)], columns={"k": "int"})
    prepared = prepare(session, text, version=5)
    assert isinstance(prepared, PreparedResult)
    assert prepared.bind_metadata.columns == (ColumnSpec(keyspace="fakecql", table="primed", name="k", type=INT),)
    assert execute(session, prepared.query_id, INT.serialize(1), version=5).rows == ((INT.serialize(1),),)
    assert node.activity.take_incidents() == []


@pytest.mark.parametrize("text, message", [
    pytest.param("SELECT nope FROM ks.users WHERE id = ?", "Undefined column name nope in table ks.users",
                 id="select-column"),
    pytest.param("INSERT INTO ks.users (id, nope) VALUES (?, ?)", "Undefined column name nope in table ks.users",
                 id="insert-column"),
    pytest.param("SELECT * FROM users", "No keyspace has been specified. USE a keyspace, or explicitly specify "
                 "keyspace.tablename", id="no-keyspace"),
])
def test_prepare_answers_what_execute_would(node, session, text, message):
    """As a real node, PREPARE resolves the table and columns (an error answer, not an incident)."""
    assert prepare(session, text) == invalid(message)
    assert node.activity.take_incidents() == []


@pytest.mark.parametrize("text", [
    "SELECT * FROM system.peers_v2",
    "SELECT * FROM system_virtual_schema.keyspaces",
    "SELECT keyspace_name, consistency FROM system_schema.scylla_keyspaces",
])
def test_tables_drivers_probe_for_are_no_incident(text):
    """Drivers read these to learn what a node has and take the InvalidRequest of a node without them."""
    node = Node(schema=Schema(flavor="scylla"))
    node.schema.drop_table("system_schema", "scylla_keyspaces", allow_system=True)
    session = open_session(node)
    assert isinstance(query(session, text), Error)
    assert node.activity.take_incidents() == []


# ---- bug 3: a paging state the node cannot read ----------------------------------------

def bad_paging_state(paging_state: bytes) -> str:
    shown = paging_state[:32] + (b"..." if len(paging_state) > 32 else b"")
    return (
        f"Invalid value for the paging state: {shown!r} ({len(paging_state)} bytes) is not one "
        "this node issued (b'fakecql-offset:<row>')"
    )


@pytest.mark.parametrize("paging_state", [
    pytest.param(b"fakecql-offset:" + b"9" * 5000, id="digits-over-int-max-str-digits"),
    pytest.param(b"fakecql-offset:" + b"1" * 19, id="digits-over-a-row-count"),
    pytest.param(b"\xff" * 100, id="binary"),
    pytest.param(b"fakecql-offset:1\n", id="trailing-newline"),
])
def test_unreadable_paging_state_is_a_protocol_error(node, session, paging_state):
    """Before: int() raised ValueError inside the node (no ERROR frame, connection gone)."""
    message = bad_paging_state(paging_state)
    response = query(session, "SELECT id FROM ks.users", page_size=2, paging_state=paging_state)
    assert response == Error(code=ErrorCode.PROTOCOL_ERROR, message=message)
    assert node.activity.take_incidents() == [ProtocolIncident(1, description=message, stream=1, fatal=False)]


def test_paging_state_past_the_rows_is_an_empty_page(node, session):
    response = query(session, "SELECT id FROM ks.users", page_size=2, paging_state=b"fakecql-offset:" + b"9" * 18)
    assert isinstance(response, RowsResult) and response.rows == () and response.metadata.paging_state is None


def test_unreadable_paging_state_on_the_wire(cql_server_factory):
    """The symptom as a driver saw it: an ERROR frame on the stream, and the connection lives on."""
    server = cql_server_factory(tls=False)
    server.node.schema.add_keyspace("ks")
    server.node.schema.add_table("ks", "users", {"id": "int"}, partition_key="id")
    paging_state = b"fakecql-offset:" + b"7" * 5000
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)
        request = Query(query="SELECT id FROM ks.users", parameters=QueryParameters(page_size=2, paging_state=paging_state))
        assert client.request(request, stream=3) == Error(
            code=ErrorCode.PROTOCOL_ERROR, message=bad_paging_state(paging_state)
        )
        assert isinstance(client.request(Query(query="SELECT key FROM system.local"), stream=4), RowsResult)
    incidents = server.activity.take_incidents()
    assert [type(i) for i in incidents] == [ProtocolIncident], incidents


# ---- bug 4a: the prepared-statement cache is bounded in bytes ----------------------------

def test_prepared_statements_are_evicted_past_the_cache_bytes():
    node = make_node(prepared_cache_bytes=4096)
    session = open_session(node)
    texts = [f"SELECT name FROM ks.users WHERE id = ? LIMIT {i + 1}" for i in range(100)]
    ids = []
    for text in texts:
        prepared = prepare(session, text)
        assert isinstance(prepared, PreparedResult)
        ids.append(prepared.query_id)
        assert node._prepared.bytes_held <= 4096
    assert 0 < len(node._prepared) < 20 and node._prepared.evictions == 100 - len(node._prepared)
    # The newest still runs; the first was evicted: UNPREPARED, as a real node answers; prepared again, it runs.
    assert isinstance(execute(session, ids[-1], INT.serialize(1)), RowsResult)
    assert execute(session, ids[0], INT.serialize(1)) == Error(
        code=ErrorCode.UNPREPARED,
        message=f"Prepared query with ID {ids[0].hex()} not found (either the query was not prepared on this host "
        "(maybe the host has been restarted?) or you have prepared too many queries and it has been evicted from "
        "the internal cache)",
        info=UnpreparedInfo(statement_id=ids[0]),
    )
    again = prepare(session, texts[0])
    assert isinstance(again, PreparedResult) and again.query_id == ids[0]
    assert isinstance(execute(session, ids[0], INT.serialize(1)), RowsResult)
    assert node.activity.take_incidents() == []


def test_prepared_statement_larger_than_the_whole_cache():
    node = make_node(prepared_cache_bytes=1024)
    session = open_session(node)
    text = "SELECT name FROM ks.users WHERE id = ? AND name = '" + "x" * 1000 + "'"
    response = prepare(session, text)
    assert response == invalid(
        f"Prepared statement of size {len(text)} bytes is larger than allowed maximum of 1024 bytes "
        f"(Limits.prepared_cache_bytes, less 256 bytes per entry): {text[:200]}..."
    )
    assert len(node._prepared) == 0


def test_batch_takes_its_prepared_statements_once(node, session):
    """Another connection's PREPARE may evict a statement between the batch's check and its run."""
    prepared = prepare(session, "INSERT INTO ks.users (id) VALUES (?)")
    assert isinstance(prepared, PreparedResult)
    looked_up: List[bytes] = []
    real = node.prepared

    def prepared_once(query_id: bytes) -> Any:
        looked_up.append(query_id)
        return real(query_id) if len(looked_up) == 1 else None  # evicted after the first look

    node.prepared = prepared_once  # type: ignore[method-assign]
    batch = Batch(statements=(BatchStatement(query_id=prepared.query_id, values=(INT.serialize(5),)),))
    assert session.handle(batch, 4, 1) == VoidResult()
    assert looked_up == [prepared.query_id]


# ---- bug 4b: the select plans are bounded in bytes ----------------------------------------

def test_select_plans_are_bounded_in_bytes_and_keyed_by_text():
    node = make_node(parse_cache_bytes=8192)
    session = open_session(node)
    for i in range(200):
        padding = "x" * (i % 50)
        assert isinstance(query(session, f"SELECT id AS a{padding} FROM ks.users WHERE id = {i}"), RowsResult)
        assert node._select_plans.bytes_held <= 8192
    assert node._select_plans.evictions > 0
    text = "SELECT id FROM ks.users WHERE id = 1"
    query(session, text)
    version = node.schema.version
    assert node._select_plans.get((text, None, version)) is not None  # the text, not the statement object


# ---- bug 4c: collections are counted before they are decoded ------------------------------

def int_list(count: int) -> bytes:
    return struct.pack(">i", count) + b"".join(struct.pack(">ii", 4, i) for i in range(count))


def nested(*lists: bytes) -> bytes:
    return struct.pack(">i", len(lists)) + b"".join(struct.pack(">i", len(b)) + b for b in lists)


def map_of_sets(count: int) -> bytes:  # map<text, frozen<set<int>>>: one entry
    return struct.pack(">i", 1) + struct.pack(">i", 1) + b"k" + struct.pack(">i", 4 + 8 * count) + int_list(count)


def pair(count: int) -> bytes:  # tuple<int, list<int>>
    return struct.pack(">i", 4) + INT.serialize(1) + struct.pack(">i", 4 + 8 * count) + int_list(count)


def address(count: int) -> bytes:  # address {street text, lines list<int>}
    return struct.pack(">i", 1) + b"s" + struct.pack(">i", 4 + 8 * count) + int_list(count)


LIMIT = 100
OVERSIZED = [  # (id, column, type as the error names it, value with 101 elements where the limit is 100)
    ("list", "tags", "list<int>", int_list(LIMIT + 1)),
    ("list-in-list", "nested", "frozen<list<int>>", nested(int_list(3), int_list(LIMIT + 1))),
    ("outer-list", "nested", "list<frozen<list<int>>>", nested(*[int_list(0)] * (LIMIT + 1))),
    ("set-in-map", "scores", "frozen<set<int>>", map_of_sets(LIMIT + 1)),
    ("list-in-tuple", "pair", "frozen<list<int>>", pair(LIMIT + 1)),  # what a tuple holds is frozen
    ("list-in-udt", "addr", "list<int>", address(LIMIT + 1)),
]


def over_limit(what: str, cql_name: str, count: int = LIMIT + 1) -> Error:
    return invalid(
        f"Invalid value for {what}: a {cql_name} of {count} elements is over the node's limit of {LIMIT} "
        "(Limits.max_collection_elements)"
    )


@pytest.fixture
def never_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any list or set decoded past the check fails the test (the bound is checked first)."""
    from fakecql.protocol import types

    def boom(self: Any, data: bytes) -> Any:
        raise AssertionError(f"decoded {self.cql_name} ({len(data)} bytes) before the check")

    monkeypatch.setattr(types.ListType, "deserialize", boom)
    monkeypatch.setattr(types.SetType, "deserialize", boom)


@pytest.mark.parametrize("column, cql_name, value", [pytest.param(*r[1:], id=r[0]) for r in OVERSIZED])
def test_oversized_collection_bound_to_a_prepared_statement(column, cql_name, value, never_decoded):
    node = make_node(max_collection_elements=LIMIT)
    session = open_session(node)
    prepared = prepare(session, f"INSERT INTO ks.users (id, {column}) VALUES (?, ?)")
    assert isinstance(prepared, PreparedResult)
    assert execute(session, prepared.query_id, INT.serialize(1), value) == over_limit(f"bind marker {column!r}", cql_name)
    assert node.schema.table("ks", "users").rows == []


@pytest.mark.parametrize("column, cql_name, value", [pytest.param(*r[1:], id=r[0]) for r in OVERSIZED])
def test_oversized_collection_bound_to_a_query(column, cql_name, value, never_decoded):
    node = make_node(max_collection_elements=LIMIT)
    session = open_session(node)
    response = query(session, f"INSERT INTO ks.users (id, {column}) VALUES (1, ?)", value)
    assert response == over_limit(f"bind marker 0 (column {column})", cql_name)


def test_a_16_mib_list_is_refused_from_its_count():
    """The case that made the bound: 4 million ints in one frame are never built."""
    node = make_node()
    session = open_session(node)
    count = (16 * 1024 * 1024 - 1024) // 8
    value = int_list(count)
    prepared = prepare(session, "INSERT INTO ks.users (id, tags) VALUES (?, ?)")
    assert isinstance(prepared, PreparedResult)
    response = execute(session, prepared.query_id, INT.serialize(1), value)
    assert response == invalid(
        f"Invalid value for bind marker 'tags': a list<int> of {count} elements is over the node's limit "
        "of 65535 (Limits.max_collection_elements)"
    )


def test_collections_at_the_limit_are_decoded():
    node = make_node(max_collection_elements=LIMIT)
    session = open_session(node)
    prepared = prepare(session, "INSERT INTO ks.users (id, tags, nested, pair) VALUES (?, ?, ?, ?)")
    assert isinstance(prepared, PreparedResult)
    values = (INT.serialize(1), int_list(LIMIT), nested(*[int_list(LIMIT)] * LIMIT), pair(LIMIT))
    assert execute(session, prepared.query_id, *values) == VoidResult()
    row = node.schema.table("ks", "users").rows[0]
    assert row["tags"] == list(range(LIMIT)) and len(row["nested"]) == LIMIT and row["pair"][1] == list(range(LIMIT))


@pytest.mark.parametrize("value", [
    pytest.param(nested(int_list(3))[:-3], id="truncated-inner"),
    pytest.param(struct.pack(">i", 2) + struct.pack(">i", 1000) + b"\x00", id="inner-length-past-the-end"),
    pytest.param(b"\x00\x00", id="short-count"),
])
def test_malformed_collection_gets_the_decoders_error(value):
    node = make_node(max_collection_elements=LIMIT)
    session = open_session(node)
    prepared = prepare(session, "INSERT INTO ks.users (id, nested) VALUES (?, ?)")
    assert isinstance(prepared, PreparedResult)
    response = execute(session, prepared.query_id, INT.serialize(1), value)
    assert isinstance(response, Error) and response.code == ErrorCode.INVALID
    assert response.message.startswith("Invalid value for bind marker 'nested' of type list<frozen<list<int>>>: ")
    assert "elements is over" not in response.message


# ---- bug 4d: query text over Limits.max_query_text -----------------------------------------

def too_long(size: int, limit: int) -> str:
    return (
        f"Query text of {size} bytes is over the node's limit of {limit} bytes: prime it with when_query(...), "
        "or raise the limit with CQLServer(limits=Limits(max_query_text=...)) or serve --max-query-bytes"
    )


@pytest.fixture
def never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(text: str) -> Any:
        raise AssertionError(f"parsed a text of {len(text)} characters")

    monkeypatch.setattr(cql, "parse_query", boom)
    monkeypatch.setattr(cql, "parse_statement", boom)


LONG = "SELECT id FROM ks.users WHERE id = ? AND name = '" + "é" * 600 + "'"  # 649 characters, 1249 bytes


@pytest.mark.parametrize("verb", ["QUERY", "PREPARE"])
def test_query_text_over_the_limit_is_refused_unparsed(verb, never_parsed):
    node = make_node(max_query_text=1000)
    session = open_session(node)
    response = query(session, LONG, INT.serialize(1)) if verb == "QUERY" else prepare(session, LONG)
    assert response == invalid(too_long(len(LONG.encode()), 1000))
    incident = f"no priming matches and the text is too long: {too_long(len(LONG.encode()), 1000)}"
    assert node.activity.take_incidents() == [unexpected(LONG, incident)]


def test_query_text_over_the_limit_answered_by_its_priming(never_parsed):
    node = make_node(max_query_text=1000)
    session = open_session(node)
    node.when_query(LONG, params={"x": "int"}).then_rows([(7,)], columns={"id": "int"})
    assert query(session, LONG, INT.serialize(1)).rows == ((INT.serialize(7),),)
    prepared = prepare(session, LONG)
    assert isinstance(prepared, PreparedResult)
    assert [c.type for c in prepared.bind_metadata.columns] == [INT]
    assert execute(session, prepared.query_id, INT.serialize(1)).rows == ((INT.serialize(7),),)
    assert node.activity.take_incidents() == []


def test_query_text_within_the_limit_in_bytes(node):
    """The limit is in UTF-8 bytes: 250 four-byte characters are at a 1000-byte limit."""
    node = make_node(max_query_text=1000)
    session = open_session(node)
    prefix = "SELECT id FROM ks.users WHERE name = '"
    text = prefix + "\U0001F600" * ((1000 - len(prefix) - 1) // 4) + "'"
    assert len(text.encode()) <= 1000 < 4 * len(text)
    assert isinstance(query(session, text), RowsResult)
    over = text[:-1] + "\U0001F600'"
    assert len(over.encode()) > 1000
    assert query(session, over) == invalid(too_long(len(over.encode()), 1000))
    node.activity.take_incidents()


def test_node_limits_default():
    assert Node().limits == Limits()


# ---- found by the drivers' decoders: sets and maps are held in CQL order -----------------

def test_inserted_sets_and_maps_are_held_in_cql_order():
    """As a real node: set elements sorted by the type's comparator without duplicates, map
    entries sorted by key, at every depth (a driver looks map keys up by their sorted form)."""
    node = Node()
    node.schema.add_keyspace("ks")
    columns = {
        "id": "int", "ints": "set<int>", "doubles": "set<double>", "times": "set<timeuuid>",
        "by_set": "map<frozen<set<int>>, text>", "texts": "map<text, int>", "inside": "list<frozen<set<int>>>",
    }
    node.schema.add_table("ks", "t", columns, partition_key="id")
    session = open_session(node)
    prepared = prepare(session, f"INSERT INTO ks.t ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})")
    assert isinstance(prepared, PreparedResult)
    late, early = uuid.UUID("00000000-0001-1000-8000-000000000000"), uuid.UUID("ffffffff-0000-1000-8000-000000000000")
    assert late.time > early.time and late.int < early.int  # CQL orders timeuuids by time, not by bytes
    values = {
        "id": 1, "ints": [3, 1, 3, 2], "doubles": [float("nan"), 0.0, -0.0, -1.5], "times": [late, early],
        "by_set": {(3, 1): "a", (0,): "b"}, "texts": {"b": 2, "a": 1, "é": 3}, "inside": [[2, 1], [1]],
    }
    types = {c.name: c.type for c in node.schema.table("ks", "t").columns}
    raw = tuple(types[name].serialize(values[name]) for name in columns)
    assert execute(session, prepared.query_id, *raw) == VoidResult()
    row = node.schema.table("ks", "t").rows[0]
    assert row["ints"] == [1, 2, 3]
    assert [struct.pack(">d", d) for d in row["doubles"]] == [struct.pack(">d", d) for d in (-1.5, -0.0, 0.0)] + [
        struct.pack(">d", row["doubles"][-1])] and row["doubles"][-1] != row["doubles"][-1]
    assert row["times"] == [early, late]
    assert list(row["by_set"].items()) == [((0,), "b"), ((1, 3), "a")]
    assert list(row["texts"]) == ["a", "b", "é"]
    assert row["inside"] == [[1, 2], [1]]
