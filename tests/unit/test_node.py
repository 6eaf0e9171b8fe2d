# What the fake node answers (fakecql/node.py), sans I/O: each test builds a
# Node, opens a NodeSession, hands it request messages and reads the one
# response each gets back, decoding row cells with the column types. Covered:
# the handshake (OPTIONS, STARTUP, auth, REGISTER), the system tables a
# driver reads while it connects, user tables (INSERT then SELECT, PREPARE /
# EXECUTE, BATCH, paging), priming, and what the node logs in its activity.
#
# Rules: every answer is compared whole (a message compares field by field)
# or cell by cell after decoding; tables are parametrized with ids.
from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any, Dict, List, Optional, Sequence

import pytest

from fakecql.activity import ProtocolIncident, UnexpectedRequest
from fakecql.node import Node, NodeIdentity, NodeSession, PasswordAuth
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import (
    Authenticate,
    AuthResponse,
    AuthSuccess,
    Batch,
    BatchStatement,
    ColumnSpec,
    Consistency,
    Error,
    Execute,
    Options,
    Prepare,
    PreparedResult,
    Query,
    QueryParameters,
    Ready,
    Register,
    Response,
    RowsMetadata,
    RowsResult,
    SetKeyspaceResult,
    Startup,
    Supported,
    UnavailableInfo,
    UnpreparedInfo,
    VoidResult,
)
from fakecql.protocol.types import NATIVE_TYPES, ListType, MapType, SetType
from fakecql.protocol.wire import UNSET
from fakecql.schema import Schema

INT, BIGINT, TEXT, UUID = NATIVE_TYPES["int"], NATIVE_TYPES["bigint"], NATIVE_TYPES["text"], NATIVE_TYPES["uuid"]
BLOB, INET = NATIVE_TYPES["blob"], NATIVE_TYPES["inet"]
PASSWORD_AUTHENTICATOR = "org.apache.cassandra.auth.PasswordAuthenticator"
HOST_ID = uuid.UUID("2b9b2f1e-6f39-4c5e-9d3a-7f1c3c0e8a11")
OTHER_ID = uuid.UUID("5a8bd1c6-22a4-4b7c-9f43-0d7c0ab1e0a2")
SELECT_LOCAL = (
    "SELECT broadcast_address, cluster_name, data_center, host_id, listen_address, partitioner, "
    "rack, release_version, rpc_address, schema_version, tokens FROM system.local WHERE key='local'"
)
SELECT_PEERS = (
    "SELECT peer, data_center, host_id, rack, release_version, rpc_address, schema_version, tokens "
    "FROM system.peers"
)
USERS = {
    "id": "int", "name": "text", "score": "double", "tags": "set<text>", "uid": "uuid", "avatar": "blob",
    "active": "boolean", "balance": "decimal", "level": "tinyint", "born": "timestamp", "prefs": "map<text, int>",
}


def rows(table):
    """pytest.param rows from (id, *values) tuples."""
    return [pytest.param(*row[1:], id=row[0]) for row in table]


def protocol_error(message: str) -> Error:
    return Error(code=ErrorCode.PROTOCOL_ERROR, message=message)


def invalid(message: str) -> Error:
    return Error(code=ErrorCode.INVALID, message=message)


def startup(session: NodeSession, stream: int = 0, **options: str) -> Response:
    return session.handle(Startup(options={"CQL_VERSION": "3.0.0", **options}), 4, stream)


def query(session: NodeSession, text: str, *values: Any, version: int = 4, **params: Any) -> Response:
    return session.handle(Query(query=text, parameters=QueryParameters(values=values, **params)), version, 1)


def prepare(session: NodeSession, text: str, version: int = 4, keyspace: Optional[str] = None) -> PreparedResult:
    result = session.handle(Prepare(query=text, keyspace=keyspace), version, 1)
    assert isinstance(result, PreparedResult), result
    return result


def execute(session: NodeSession, query_id: bytes, *values: Any, version: int = 4, **params: Any) -> Response:
    request = Execute(query_id=query_id, parameters=QueryParameters(values=values, **params))
    return session.handle(request, version, 1)


def decoded(result: Response, columns: Optional[Sequence[ColumnSpec]] = None) -> List[tuple]:
    """The rows' cells decoded with the result's column types (or the prepared ones)."""
    assert isinstance(result, RowsResult), result
    specs = result.metadata.columns if columns is None else columns
    return [
        tuple(None if cell is None else spec.type.deserialize(cell) for spec, cell in zip(specs, row))
        for row in result.rows
    ]


def names(result: Response) -> List[str]:
    assert isinstance(result, RowsResult), result
    return [c.name for c in result.metadata.columns]


def as_dicts(result: Response) -> List[Dict[str, Any]]:
    return [dict(zip(names(result), row)) for row in decoded(result)]


def spec(name: str, cql_type: Any, keyspace: str = "ks", table: str = "users") -> ColumnSpec:
    return ColumnSpec(keyspace=keyspace, table=table, name=name, type=cql_type)


@pytest.fixture
def node() -> Node:
    node = Node(identity=NodeIdentity(host_id=HOST_ID, tokens=("-3074457345618258603", "42")))
    node.schema.add_keyspace("ks")
    node.schema.add_table("ks", "users", USERS, partition_key="id")
    return node


@pytest.fixture
def session(node: Node) -> NodeSession:
    session = node.session(1)
    assert startup(session) == Ready()
    return session


@pytest.fixture
def auth_node() -> Node:
    return Node(auth=PasswordAuth("cassandra", "s3cret"))


# ---- OPTIONS / SUPPORTED -----------------------------------------------------

def test_options_answers_supported():
    session = Node().session(1)
    assert session.handle(Options(), 4, 0) == Supported(options={
        "CQL_VERSION": ["3.4.5"], "COMPRESSION": ["lz4"], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"],
    })
    assert session.started is False  # OPTIONS does not start the connection


@pytest.mark.parametrize("kwargs, expected", rows([
    ("no-compression", dict(compression=()),
     {"CQL_VERSION": ["3.4.5"], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"]}),
    ("scylla-keys", dict(supported={"SCYLLA_SHARD": ["0"], "SCYLLA_NR_SHARDS": ["2"]}),
     {"CQL_VERSION": ["3.4.5"], "COMPRESSION": ["lz4"], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"],
      "SCYLLA_SHARD": ["0"], "SCYLLA_NR_SHARDS": ["2"]}),
    ("override-cql-version", dict(supported={"CQL_VERSION": ["3.3.1"]}),
     {"CQL_VERSION": ["3.3.1"], "COMPRESSION": ["lz4"], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"]}),
]))
def test_supported_options(kwargs, expected):
    assert Node(**kwargs).session(1).handle(Options(), 4, 0) == Supported(options=expected)


def test_set_protocol_versions():
    node = Node()
    node.set_protocol_versions([4, 3])
    assert node.supported["PROTOCOL_VERSIONS"] == ["3/v3", "4/v4"]


def test_unknown_compression_is_refused():
    with pytest.raises(ValueError, match=r"^unknown compression 'bogus'; fakecql offers \['lz4'\] or none$"):
        Node(compression=("bogus",))


# ---- STARTUP -------------------------------------------------------------------

STARTUP_OK = [
    ("minimal", {"CQL_VERSION": "3.0.0"}, None),
    ("driver-keys-ignored", {"CQL_VERSION": "3.4.5", "DRIVER_NAME": "ScyllaDB Python Driver",
                             "DRIVER_VERSION": "3.29.0", "NO_COMPACT": "true", "APPLICATION_NAME": "x"}, None),
    ("two-part-version", {"CQL_VERSION": "3.4"}, None),
    ("lz4", {"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"}, "lz4"),
]


@pytest.mark.parametrize("options, compression", rows(STARTUP_OK))
def test_startup_ready(options, compression):
    node = Node()
    session = node.session(1)
    assert session.handle(Startup(options=options), 4, 0) == Ready()
    assert (session.started, session.authenticated, session.compression) == (True, True, compression)
    assert node.activity.entries == []


STARTUP_BAD = [
    ("no-cql-version", Node, {"DRIVER_NAME": "x"}, "Missing value CQL_VERSION in STARTUP message"),
    ("cql-version-2", Node, {"CQL_VERSION": "2.0.0"},
     "Invalid or unsupported CQL version '2.0.0' in STARTUP; expected 3.x.y"),
    ("cql-version-garbage", Node, {"CQL_VERSION": "banana"},
     "Invalid or unsupported CQL version 'banana' in STARTUP; expected 3.x.y"),
    ("unknown-compression", Node, {"CQL_VERSION": "3.0.0", "COMPRESSION": "snappy"},
     "Unknown compression algorithm: snappy"),
    ("compression-not-offered", lambda: Node(compression=()), {"CQL_VERSION": "3.0.0", "COMPRESSION": "lz4"},
     "Unknown compression algorithm: lz4"),
]


@pytest.mark.parametrize("make_node, options, message", rows(STARTUP_BAD))
def test_startup_refused(make_node, options, message):
    node = make_node()
    session = node.session(3)
    assert session.handle(Startup(options=options), 4, 9) == protocol_error(message)
    assert (session.started, session.compression) == (False, None)
    assert node.activity.incidents() == [ProtocolIncident(3, description=message, stream=9, fatal=False)]
    # the connection may still start properly
    assert startup(session) == Ready()


BEFORE_STARTUP = [
    ("query", Query(query="SELECT * FROM system.local"), "QUERY"),
    ("prepare", Prepare(query="SELECT * FROM system.local"), "PREPARE"),
    ("execute", Execute(query_id=b"\x01" * 16), "EXECUTE"),
    ("batch", Batch(statements=(BatchStatement(query="INSERT INTO ks.t (k) VALUES (1)"),)), "BATCH"),
    ("register", Register(event_types=("STATUS_CHANGE",)), "REGISTER"),
    ("auth-response", AuthResponse(token=b"\x00u\x00p"), "AUTH_RESPONSE"),
]


@pytest.mark.parametrize("request_message, opcode", rows(BEFORE_STARTUP))
def test_requests_before_startup_are_refused(request_message, opcode):
    node = Node()
    session = node.session(1)
    message = f"Unexpected message {opcode}, expecting STARTUP or OPTIONS"
    assert session.handle(request_message, 4, 5) == protocol_error(message)
    assert node.activity.incidents() == [ProtocolIncident(1, description=message, stream=5, fatal=False)]


def test_startup_twice_is_refused(session, node):
    message = "Unexpected message STARTUP, the connection is already started"
    assert startup(session, stream=2) == protocol_error(message)
    assert node.activity.incidents() == [ProtocolIncident(1, description=message, stream=2, fatal=False)]
    assert query(session, "SELECT key FROM system.local") == RowsResult(
        metadata=RowsMetadata(columns=(spec("key", TEXT, "system", "local"),)), rows=((b"local",),)
    )


# ---- authentication ----------------------------------------------------------

def test_startup_with_auth_asks_for_password_authenticator(auth_node):
    session = auth_node.session(1)
    assert startup(session) == Authenticate(authenticator=PASSWORD_AUTHENTICATOR)
    assert (session.started, session.authenticated) == (True, False)


AUTH_RESPONSES = [
    ("right", b"\x00cassandra\x00s3cret", AuthSuccess(token=None)),
    ("right-with-authzid", b"someone\x00cassandra\x00s3cret", AuthSuccess(token=None)),
    ("wrong-password", b"\x00cassandra\x00nope",
     Error(code=ErrorCode.BAD_CREDENTIALS, message="Provided username cassandra and/or password are incorrect")),
    ("wrong-user", b"\x00root\x00s3cret",
     Error(code=ErrorCode.BAD_CREDENTIALS, message="Provided username root and/or password are incorrect")),
    ("password-prefix", b"\x00cassandra\x00s3cre",
     Error(code=ErrorCode.BAD_CREDENTIALS, message="Provided username cassandra and/or password are incorrect")),
    ("no-nul", b"cassandra:s3cret",
     Error(code=ErrorCode.BAD_CREDENTIALS,
           message="Provided username <malformed SASL PLAIN token> and/or password are incorrect")),
    ("one-nul", b"cassandra\x00s3cret",
     Error(code=ErrorCode.BAD_CREDENTIALS,
           message="Provided username <malformed SASL PLAIN token> and/or password are incorrect")),
    ("extra-nul", b"\x00cassandra\x00s3cret\x00",
     Error(code=ErrorCode.BAD_CREDENTIALS,
           message="Provided username <malformed SASL PLAIN token> and/or password are incorrect")),
    ("null-token", None,
     Error(code=ErrorCode.BAD_CREDENTIALS,
           message="Provided username <malformed SASL PLAIN token> and/or password are incorrect")),
]


@pytest.mark.parametrize("token, expected", rows(AUTH_RESPONSES))
def test_auth_response(auth_node, token, expected):
    session = auth_node.session(1)
    startup(session)
    assert session.handle(AuthResponse(token=token), 4, 1) == expected
    assert session.authenticated is isinstance(expected, AuthSuccess)
    assert auth_node.activity.entries == []  # bad credentials are an answer, not an incident


def test_auth_retry_after_failure(auth_node):
    session = auth_node.session(1)
    startup(session)
    assert isinstance(session.handle(AuthResponse(token=b"\x00cassandra\x00x"), 4, 1), Error)
    assert session.handle(AuthResponse(token=b"\x00cassandra\x00s3cret"), 4, 2) == AuthSuccess(token=None)
    assert query(session, "SELECT count(*) FROM system.local") == RowsResult(
        metadata=RowsMetadata(columns=(spec("count", BIGINT, "system", "local"),)), rows=((BIGINT.serialize(1),),)
    )


@pytest.mark.parametrize("request_message, opcode", rows([
    ("query", Query(query="SELECT * FROM system.local"), "QUERY"),
    ("prepare", Prepare(query="SELECT * FROM system.local"), "PREPARE"),
    ("register", Register(event_types=("STATUS_CHANGE",)), "REGISTER"),
]))
def test_requests_before_auth_are_refused(auth_node, request_message, opcode):
    session = auth_node.session(4)
    startup(session)
    message = f"Unexpected message {opcode}, expecting AUTH_RESPONSE"
    assert session.handle(request_message, 4, 6) == protocol_error(message)
    assert auth_node.activity.incidents() == [ProtocolIncident(4, description=message, stream=6, fatal=False)]
    assert session.handle(Options(), 4, 7) == Supported(options=auth_node.supported)  # OPTIONS still answered


def test_auth_response_when_no_auth_is_in_progress(session, node, auth_node):
    message = "Unexpected message AUTH_RESPONSE: no authentication is in progress"
    assert session.handle(AuthResponse(token=b"\x00a\x00b"), 4, 3) == protocol_error(message)
    done = auth_node.session(2)
    startup(done)
    assert done.handle(AuthResponse(token=b"\x00cassandra\x00s3cret"), 4, 1) == AuthSuccess(token=None)
    assert done.handle(AuthResponse(token=b"\x00cassandra\x00s3cret"), 4, 4) == protocol_error(message)
    assert node.activity.incidents() == [ProtocolIncident(1, description=message, stream=3, fatal=False)]
    assert auth_node.activity.incidents() == [ProtocolIncident(2, description=message, stream=4, fatal=False)]


@pytest.mark.parametrize("text, expected", rows([
    ("simple", "user:pass", PasswordAuth("user", "pass")),
    ("colon-in-password", "user:pa:ss", PasswordAuth("user", "pa:ss")),
    ("empty-password", "user:", PasswordAuth("user", "")),
]))
def test_password_auth_parse(text, expected):
    assert PasswordAuth.parse(text) == expected


@pytest.mark.parametrize("text", ["user", ":pass", ""])
def test_password_auth_parse_refuses(text):
    with pytest.raises(ValueError, match=rf"^credentials must look like USER:PASSWORD, got {text!r}$"):
        PasswordAuth.parse(text)


# ---- REGISTER ------------------------------------------------------------------

def test_register(session, node):
    events = ("TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE")
    assert session.handle(Register(event_types=events), 4, 1) == Ready()
    assert session.registered == ("SCHEMA_CHANGE", "STATUS_CHANGE", "TOPOLOGY_CHANGE")
    assert session.handle(Register(event_types=("CLIENT_ROUTES_CHANGE", "STATUS_CHANGE")), 4, 2) == Ready()
    assert session.registered == ("CLIENT_ROUTES_CHANGE", "SCHEMA_CHANGE", "STATUS_CHANGE", "TOPOLOGY_CHANGE")
    assert node.activity.entries == []


def test_register_unknown_event_type(session, node):
    message = (
        "Invalid value 'KEYSPACE_CHANGE' for Type; expected one of "
        "('TOPOLOGY_CHANGE', 'STATUS_CHANGE', 'SCHEMA_CHANGE', 'CLIENT_ROUTES_CHANGE')"
    )
    request = Register(event_types=("STATUS_CHANGE", "KEYSPACE_CHANGE"))
    assert session.handle(request, 4, 8) == protocol_error(message)
    assert session.registered == ()  # nothing registered from a refused REGISTER
    assert node.activity.incidents() == [ProtocolIncident(1, description=message, stream=8, fatal=False)]


# ---- system.local and peers ------------------------------------------------------

def test_system_local_row(node, session):
    node.bind("10.0.0.7", 19042)
    address = ipaddress.ip_address("10.0.0.7")
    result = query(session, "SELECT * FROM system.local")
    assert as_dicts(result) == [{
        "key": "local",
        "bootstrapped": "COMPLETED",
        "broadcast_address": address,
        "broadcast_port": 19042,
        "cluster_name": "fakecql",
        "cql_version": "3.4.5",
        "data_center": "datacenter1",
        "gossip_generation": 1,
        "host_id": HOST_ID,
        "listen_address": address,
        "listen_port": 19042,
        "native_protocol_version": "5",
        "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
        "rack": "rack1",
        "release_version": "4.0.11",
        "rpc_address": address,
        "rpc_port": 19042,
        "schema_version": node.schema.version,
        "tokens": ["-3074457345618258603", "42"],
        "truncated_at": None,
    }]
    assert {(c.keyspace, c.table) for c in result.metadata.columns} == {("system", "local")}


@pytest.mark.parametrize("flavor", ["cassandra", "scylla"])
@pytest.mark.parametrize("suffix", ["", " USING TIMEOUT 2000ms"])
def test_driver_local_query(flavor, suffix):
    """The control connection's query: the columns it names, in its order; the
    driver drops the row unless rpc_address, host_id, data_center and rack are
    set and tokens is not empty."""
    node = Node(identity=NodeIdentity(host_id=HOST_ID, release_version="5.0.0", cluster_name="c1",
                                      data_center="dc9", rack="r2"),
                schema=Schema(flavor=flavor))
    node.bind("::1", 9142)
    session = node.session(1)
    startup(session)
    result = query(session, SELECT_LOCAL + suffix)
    assert names(result) == [
        "broadcast_address", "cluster_name", "data_center", "host_id", "listen_address", "partitioner",
        "rack", "release_version", "rpc_address", "schema_version", "tokens",
    ]
    assert decoded(result) == [(
        ipaddress.ip_address("::1"), "c1", "dc9", HOST_ID, ipaddress.ip_address("::1"),
        "org.apache.cassandra.dht.Murmur3Partitioner", "r2", "5.0.0", ipaddress.ip_address("::1"),
        node.schema.version, ["-9223372036854775808"],
    )]
    assert node.activity.entries == []


def test_schema_version_follows_the_schema(node, session):
    before = decoded(query(session, "SELECT schema_version FROM system.local WHERE key='local'"))
    node.schema.add_keyspace("other")
    after = decoded(query(session, "SELECT schema_version FROM system.local WHERE key='local'"))
    assert before != after
    assert after == [(node.schema.version,)]


@pytest.mark.parametrize("text, expected", rows([
    ("key-local", "SELECT key, rack FROM system.local WHERE key='local'", [("local", "rack1")]),
    ("key-other", "SELECT key, rack FROM system.local WHERE key='remote'", []),
    ("key-in", "SELECT key, rack FROM system.local WHERE key IN ('a', 'local')", [("local", "rack1")]),
    ("two-conditions", "SELECT key FROM system.local WHERE key = 'local' AND rack = 'rack2'", []),
    ("count", "SELECT count(*) FROM system.local", [(1,)]),
    ("count-nothing", "SELECT count(*) FROM system.local WHERE key='remote'", [(0,)]),
    ("count-with-column", "SELECT rack, count(*) FROM system.local", [("rack1", 1)]),
    ("star-and-column", "SELECT rack, * FROM system.peers", []),
    ("limit", "SELECT key FROM system.local LIMIT 1", [("local",)]),
]))
def test_system_local_selections(session, text, expected):
    assert decoded(query(session, text)) == expected


def test_aliases_name_the_result_columns(session):
    result = query(session, "SELECT cluster_name AS cn, count(*) AS n, rack FROM system.local")
    assert result.metadata.columns == (
        spec("cn", TEXT, "system", "local"), spec("n", BIGINT, "system", "local"), spec("rack", TEXT, "system", "local"),
    )
    assert decoded(result) == [("fakecql", 1, "rack1")]


def test_peers(node, session):
    peer = ipaddress.ip_address("10.0.0.8")
    node.peers.append({
        "peer": peer, "data_center": "dc1", "host_id": OTHER_ID, "rack": "r1", "release_version": "4.0.11",
        "rpc_address": peer, "schema_version": node.schema.version, "tokens": ["7"],
    })
    assert decoded(query(session, SELECT_PEERS)) == [
        (peer, "dc1", OTHER_ID, "r1", "4.0.11", peer, node.schema.version, ["7"]),
    ]


def test_empty_peers_v2_has_its_columns(session):
    result = query(session, "SELECT * FROM system.peers_v2")
    assert names(result) == [
        "peer", "peer_port", "data_center", "host_id", "native_address", "native_port", "preferred_ip",
        "preferred_port", "rack", "release_version", "schema_version", "tokens",
    ]
    assert result.rows == ()


def test_schema_keyspaces(session):
    result = query(session, "SELECT keyspace_name FROM system_schema.keyspaces")
    assert decoded(result) == [
        ("system",), ("system_schema",), ("system_auth",), ("system_distributed",), ("system_traces",), ("ks",),
    ]
    assert decoded(query(session, "SELECT count(*) FROM system_schema.keyspaces")) == [(6,)]


def test_schema_columns_of_a_table(session):
    result = query(
        session,
        "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = 'ks' AND table_name = 'users'",
    )
    assert decoded(result) == [
        ("active", "regular", "boolean"), ("avatar", "regular", "blob"), ("balance", "regular", "decimal"),
        ("born", "regular", "timestamp"), ("id", "partition_key", "int"), ("level", "regular", "tinyint"),
        ("name", "regular", "text"), ("prefs", "regular", "map<text, int>"), ("score", "regular", "double"),
        ("tags", "regular", "set<text>"), ("uid", "regular", "uuid"),
    ]


def test_scylla_has_no_peers_v2():
    """The driver falls back to system.peers on an InvalidRequest."""
    node = Node(schema=Schema(flavor="scylla"))
    session = node.session(1)
    startup(session)
    assert query(session, "SELECT * FROM system.peers_v2") == invalid("unconfigured table peers_v2")


# ---- errors of SELECT and USE ---------------------------------------------------

SELECT_ERRORS = [  # unknown tables: test_node_answers.py (they are incidents too)
    ("no-keyspace", "SELECT * FROM users",
     "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename"),
    ("unknown-column", "SELECT nope FROM ks.users", "Undefined column name nope in table ks.users"),
    ("unknown-column-after-star", "SELECT *, nope FROM system.local",
     "Undefined column name nope in table system.local"),
    ("unknown-where-column", "SELECT * FROM ks.users WHERE nope = 1", "Undefined column name nope in table ks.users"),
    ("case-matters", 'SELECT "Key" FROM system.local', "Undefined column name Key in table system.local"),
    ("limit-zero", "SELECT * FROM ks.users LIMIT 0", "LIMIT must be strictly positive, got 0"),
    ("limit-negative", "SELECT * FROM ks.users LIMIT -5", "LIMIT must be strictly positive, got -5"),
    ("bad-literal", "SELECT * FROM ks.users WHERE id = 'x'",
     "Invalid string constant (x) for a int value: invalid literal for int() with base 10: 'x'"),
    ("string-for-uuid", "SELECT * FROM ks.users WHERE uid = 42",
     "Invalid number constant (42) for a uuid value: badly formed hexadecimal UUID string"),
]


@pytest.mark.parametrize("text, message", rows(SELECT_ERRORS))
def test_select_errors(node, session, text, message):
    assert query(session, text) == invalid(message)
    assert node.activity.entries == []  # an error answer is not an incident


@pytest.mark.parametrize("keyspace", ["system", "ks"])
def test_use_existing_keyspace(node, session, keyspace):
    assert query(session, f"USE {keyspace}") == SetKeyspaceResult(keyspace=keyspace)
    assert session.keyspace == keyspace
    assert query(session, "SELECT count(*) FROM local") == (
        RowsResult(metadata=RowsMetadata(columns=(spec("count", BIGINT, "system", "local"),)),
                   rows=((BIGINT.serialize(1),),))
        if keyspace == "system" else invalid("unconfigured table local")
    )


def test_use_quoted_keyspace(node, session):
    node.schema.add_keyspace("QuotedKs")
    assert query(session, "USE quotedks") == invalid("Keyspace 'quotedks' does not exist")
    assert query(session, 'USE "QuotedKs";') == SetKeyspaceResult(keyspace="QuotedKs")
    assert session.keyspace == "QuotedKs"


def test_use_unknown_keyspace_keeps_the_current_one(node, session):
    query(session, "USE ks")
    assert query(session, "USE nope") == invalid("Keyspace 'nope' does not exist")
    assert session.keyspace == "ks"
    assert node.activity.entries == []


# ---- INSERT then SELECT -------------------------------------------------------------

U = uuid.UUID("7a0d3c44-8f1e-4d2b-b0c9-3e5f6a7b8c9d")
SELECT_USER = "SELECT id, name, score, uid, avatar, active, level, born, tags FROM ks.users WHERE id = {}"

INSERT_LITERALS = [
    ("text", "INSERT INTO ks.users (id, name) VALUES (1, 'Ada')", 1,
     (1, "Ada", None, None, None, None, None, None, None)),
    ("escaped-quote", "INSERT INTO ks.users (id, name) VALUES (2, 'O''Hara')", 2,
     (2, "O'Hara", None, None, None, None, None, None, None)),
    ("spaces-kept", "INSERT INTO ks.users (id, name) VALUES (3, '  two  spaces ')", 3,
     (3, "  two  spaces ", None, None, None, None, None, None, None)),
    ("negative-and-double", "INSERT INTO ks.users (id, score) VALUES (-4, -1.5e2)", -4,
     (-4, None, -150.0, None, None, None, None, None, None)),
    ("uuid-blob-bool", f"INSERT INTO ks.users (id, uid, avatar, active) VALUES (5, {U}, 0xCAFE, true)", 5,
     (5, None, None, U, b"\xca\xfe", True, None, None, None)),
    ("tinyint-timestamp", "INSERT INTO ks.users (id, level, born) VALUES (6, -128, 1700000000000)", 6,
     (6, None, None, None, None, None, -128, 1700000000000, None)),
    ("quoted-names-and-suffix", 'insert into "ks"."users" ("id", "active") values (7, FALSE) USING TIMEOUT 1s;', 7,
     (7, None, None, None, None, False, None, None, None)),
    ("null", "INSERT INTO ks.users (id, name) VALUES (8, null)", 8,
     (8, None, None, None, None, None, None, None, None)),
]


@pytest.mark.parametrize("text, key, expected", rows(INSERT_LITERALS))
def test_insert_literals_then_select(node, session, text, key, expected):
    assert query(session, text) == VoidResult()
    assert decoded(query(session, SELECT_USER.format(key))) == [expected]
    assert node.activity.entries == []


def test_insert_bound_values_then_select(session):
    tags, prefs = SetType(TEXT), MapType(TEXT, INT)
    values = (INT.serialize(9), TEXT.serialize("Bo"), tags.serialize(["x", "y"]), prefs.serialize({"a": 1}))
    assert query(session, "INSERT INTO ks.users (id, name, tags, prefs) VALUES (?, ?, ?, :prefs)", *values) == VoidResult()
    assert decoded(query(session, "SELECT name, tags, prefs FROM ks.users WHERE id = ?", INT.serialize(9))) == [
        ("Bo", ["x", "y"], {"a": 1}),
    ]


def test_insert_upserts_by_primary_key(node, session):
    query(session, "INSERT INTO ks.users (id, name, score) VALUES (1, 'a', 1.0)")
    query(session, "INSERT INTO ks.users (id, name) VALUES (1, 'b')")
    assert decoded(query(session, "SELECT id, name, score FROM ks.users")) == [(1, "b", 1.0)]
    query(session, "INSERT INTO ks.users (id, score) VALUES (1, null)")
    assert decoded(query(session, "SELECT id, name, score FROM ks.users")) == [(1, "b", None)]
    # an UNSET value leaves the column as it was
    query(session, "INSERT INTO ks.users (id, name) VALUES (1, ?)", UNSET)
    assert decoded(query(session, "SELECT id, name, score FROM ks.users")) == [(1, "b", None)]


def test_insert_with_use(session):
    query(session, "USE ks")
    assert query(session, "INSERT INTO users (id, name) VALUES (1, 'x')") == VoidResult()
    assert decoded(query(session, "SELECT name FROM ks.users")) == [("x",)]


INSERT_ERRORS = [
    ("missing-key", "INSERT INTO ks.users (name) VALUES ('x')", (), "Some primary key parts are missing: id"),
    ("null-key", "INSERT INTO ks.users (id) VALUES (null)", (), "Some primary key parts are missing: id"),
    ("unset-key", "INSERT INTO ks.users (id, name) VALUES (?, 'x')", (UNSET,),
     "Some primary key parts are missing: id"),
    ("unknown-column", "INSERT INTO ks.users (id, nope) VALUES (1, 2)", (),
     "Undefined column name nope in table ks.users"),
    ("unknown-table", "INSERT INTO ks.nope (id) VALUES (1)", (), "unconfigured table nope"),
    ("no-keyspace", "INSERT INTO users (id) VALUES (1)", (),
     "No keyspace has been specified. USE a keyspace, or explicitly specify keyspace.tablename"),
    ("string-for-int", "INSERT INTO ks.users (id) VALUES ('x')", (),
     "Invalid string constant (x) for a int value: invalid literal for int() with base 10: 'x'"),
    ("number-for-boolean", "INSERT INTO ks.users (id, active) VALUES (1, 1)", (),
     "Invalid number constant (1) for a boolean value: expected true or false"),
    ("string-for-blob", "INSERT INTO ks.users (id, avatar) VALUES (1, 'cafe')", (),
     "Invalid string constant (cafe) for a blob value: expected a 0x... constant"),
    ("bool-for-decimal", "INSERT INTO ks.users (id, balance) VALUES (1, true)", (),
     "Invalid bool constant (true) for a decimal value: expected a number"),
    ("tinyint-overflow", "INSERT INTO ks.users (id, level) VALUES (1, 1000)", (),
     "Invalid value for column level of type tinyint: cannot serialize 1000 as tinyint: expected an int in [-128, 127]"),
    ("int-overflow", "INSERT INTO ks.users (id) VALUES (2147483648)", (),
     "Invalid value for column id of type int: cannot serialize 2147483648 as int: "
     "expected an int in [-2147483648, 2147483647]"),
    ("timestamp-string", "INSERT INTO ks.users (id, born) VALUES (1, '2020-01-01')", (),
     "Invalid string constant (2020-01-01) for a timestamp value: "
     "string forms of dates and times are not interpreted; use a number"),
    ("map-literal", "INSERT INTO ks.users (id, prefs) VALUES (1, 2)", (),
     "fakecql cannot read a number constant as a map<text, int> value; bind it instead"),
    ("too-few-values", "INSERT INTO ks.users (id, name) VALUES (?, ?)", (INT.serialize(1),),
     "There were 2 markers(?) in CQL but 1 bound variables"),
    ("too-many-values", "INSERT INTO ks.users (id) VALUES (1)", (INT.serialize(1),),
     "There were 0 markers(?) in CQL but 1 bound variables"),
    ("bad-bound-bytes", "INSERT INTO ks.users (id) VALUES (?)", (b"\x01",),
     "Invalid value for bind marker 0 of type int: garbage in a int value: 1 bytes (0x01); expected exactly 4 bytes"),
]


@pytest.mark.parametrize("text, values, message", rows(INSERT_ERRORS))
def test_insert_errors(node, session, text, values, message):
    assert query(session, text, *values) == invalid(message)
    assert node.schema.table("ks", "users").rows == []
    assert decoded(query(session, "SELECT count(*) FROM ks.users")) == [(0,)]  # still readable


def test_v5_query_keyspace(session):
    """A v5 QUERY may name the keyspace for its unqualified tables."""
    assert query(session, "INSERT INTO users (id, name) VALUES (1, 'x')", version=5, keyspace="ks") == VoidResult()
    assert decoded(query(session, "SELECT name FROM users", version=5, keyspace="ks")) == [("x",)]
    assert session.keyspace is None


# ---- paging ----------------------------------------------------------------------------

@pytest.fixture
def five_users(session):
    for i in range(5):
        assert query(session, f"INSERT INTO ks.users (id, name) VALUES ({i}, 'u{i}')") == VoidResult()


@pytest.mark.parametrize("page_size, pages", rows([
    ("by-2", 2, [[0, 1], [2, 3], [4]]),
    ("by-3", 3, [[0, 1, 2], [3, 4]]),
    ("exact", 5, [[0, 1, 2, 3, 4]]),
    ("larger", 100, [[0, 1, 2, 3, 4]]),
    ("by-1", 1, [[0], [1], [2], [3], [4]]),
]))
def test_paging_round_trip(session, five_users, page_size, pages):
    got, paging_state, states = [], None, []
    while True:
        result = query(session, "SELECT id FROM ks.users", page_size=page_size, paging_state=paging_state)
        got.append([row[0] for row in decoded(result)])
        paging_state = result.metadata.paging_state
        states.append(paging_state)
        if paging_state is None:
            break
        assert len(got) <= len(pages)
    assert got == pages
    assert states[-1] is None and None not in states[:-1]


def test_paging_with_where_and_limit(session, five_users):
    text = "SELECT name FROM ks.users WHERE id IN (0, 2, 3, 4) LIMIT 3"
    first = query(session, text, page_size=2)
    assert decoded(first) == [("u0",), ("u2",)]
    second = query(session, text, page_size=2, paging_state=first.metadata.paging_state)
    assert decoded(second) == [("u3",)]
    assert second.metadata.paging_state is None


def test_paging_through_execute(session, five_users):
    prepared = prepare(session, "SELECT id FROM ks.users")
    first = execute(session, prepared.query_id, page_size=4, skip_metadata=True)
    assert first.metadata == RowsMetadata(paging_state=first.metadata.paging_state, no_metadata=True, column_count=1)
    second = execute(session, prepared.query_id, page_size=4, paging_state=first.metadata.paging_state)
    assert [decoded(first, prepared.result_metadata.columns), decoded(second)] == [[(0,), (1,), (2,), (3,)], [(4,)]]


@pytest.mark.parametrize("paging_state", [b"garbage", b"fakecql-offset:x", b"fakecql-offset:-1"])
def test_bad_paging_state(node, session, five_users, paging_state):
    """As Cassandra: a paging state the node cannot read is a ProtocolError (test_node_answers.py has more)."""
    message = (
        f"Invalid value for the paging state: {paging_state!r} ({len(paging_state)} bytes) is not one "
        "this node issued (b'fakecql-offset:<row>')"
    )
    assert query(session, "SELECT id FROM ks.users", page_size=2, paging_state=paging_state) == protocol_error(message)
    assert node.activity.take_incidents() == [ProtocolIncident(1, description=message, stream=1, fatal=False)]


# ---- PREPARE / EXECUTE ------------------------------------------------------------------

def test_prepare_insert_then_execute(node, session):
    prepared = prepare(session, "INSERT INTO ks.users (id, name, tags) VALUES (?, ?, ?)")
    assert prepared.bind_metadata.columns == (spec("id", INT), spec("name", TEXT), spec("tags", SetType(TEXT)))
    assert prepared.result_metadata == RowsMetadata()
    assert prepared.result_metadata_id is None  # v4
    values = (INT.serialize(3), TEXT.serialize("Cy"), SetType(TEXT).serialize(["t"]))
    assert execute(session, prepared.query_id, *values) == VoidResult()
    assert decoded(query(session, "SELECT id, name, tags FROM ks.users")) == [(3, "Cy", ["t"])]
    assert node.activity.entries == []


def test_prepare_select_metadata(session):
    prepared = prepare(session, "SELECT name, count(*) AS n FROM ks.users WHERE id IN (?, :other) AND uid = ? LIMIT ?")
    assert prepared.bind_metadata.columns == (
        spec("id", INT), spec("other", INT), spec("uid", UUID), spec("[limit]", INT),
    )
    assert prepared.result_metadata == RowsMetadata(columns=(spec("name", TEXT), spec("n", BIGINT)))


def test_prepare_unknown_table_metadata(node, session):
    """Markers of a table the node does not know are blobs when a priming answers it."""
    node.when_query("SELECT * FROM ks.nope WHERE k = ?").then_rows([(1,)], columns={"k": "int"})
    prepared = prepare(session, "SELECT * FROM ks.nope WHERE k = ?")
    assert prepared.bind_metadata.columns == (spec("k", BLOB, "ks", "nope"),)
    assert prepared.result_metadata == RowsMetadata()
    assert decoded(execute(session, prepared.query_id, b"\x00")) == [(1,)]
    assert node.activity.entries == []


def test_prepared_ids(node, session):
    text = "SELECT name FROM users WHERE id = ?"
    node.schema.add_keyspace("ks2")
    node.schema.add_table("ks2", "users", USERS, partition_key="id")
    other = node.session(2)
    startup(other)
    query(session, "USE ks")
    query(other, "USE ks2")
    in_ks = prepare(session, text).query_id
    assert prepare(session, text).query_id == in_ks
    fresh = node.session(3)
    startup(fresh)
    assert prepare(fresh, text, version=5, keyspace="ks").query_id == in_ks
    assert prepare(other, text).query_id != in_ks
    assert len(in_ks) == 16


def test_result_metadata_id_v4_v5(session):
    v4 = prepare(session, "SELECT name FROM ks.users WHERE id = ?", version=4)
    v5 = prepare(session, "SELECT name FROM ks.users WHERE id = ?", version=5)
    same_columns = prepare(session, "SELECT name FROM ks.users", version=5)
    other_columns = prepare(session, "SELECT id FROM ks.users", version=5)
    assert v4.result_metadata_id is None
    assert v5.result_metadata_id is not None and len(v5.result_metadata_id) == 16
    assert same_columns.result_metadata_id == v5.result_metadata_id
    assert other_columns.result_metadata_id != v5.result_metadata_id


def test_execute_skip_metadata(session):
    query(session, "INSERT INTO ks.users (id, name) VALUES (1, 'a')")
    prepared = prepare(session, "SELECT id, name FROM ks.users WHERE id = ?")
    skipped = execute(session, prepared.query_id, INT.serialize(1), skip_metadata=True)
    assert skipped == RowsResult(
        metadata=RowsMetadata(no_metadata=True, column_count=2), rows=((INT.serialize(1), TEXT.serialize("a")),)
    )
    full = execute(session, prepared.query_id, INT.serialize(1))
    assert full.metadata == prepared.result_metadata
    assert decoded(full) == decoded(skipped, prepared.result_metadata.columns) == [(1, "a")]
    # skip_metadata means nothing to a QUERY: its metadata is always sent
    assert query(session, "SELECT id, name FROM ks.users", skip_metadata=True).metadata == prepared.result_metadata


def test_execute_named_values(session):
    prepared = prepare(session, "INSERT INTO ks.users (id, name) VALUES (:id, :name)")
    request = Execute(query_id=prepared.query_id, parameters=QueryParameters(
        values=(TEXT.serialize("n"), INT.serialize(4)), names=("name", "id"),
    ))
    assert session.handle(request, 4, 1) == VoidResult()
    assert decoded(query(session, "SELECT id, name FROM ks.users")) == [(4, "n")]
    missing = Execute(query_id=prepared.query_id, parameters=QueryParameters(
        values=(TEXT.serialize("n"), INT.serialize(4)), names=("name", "nope"),
    ))
    assert session.handle(missing, 4, 1) == invalid("No value for named bind marker 'id'")


def test_execute_bad_value(session):
    prepared = prepare(session, "SELECT name FROM ks.users WHERE id = ?")
    assert execute(session, prepared.query_id, b"\x00\x01") == invalid(
        "Invalid value for bind marker 'id' of type int: garbage in a int value: 2 bytes (0x0001); "
        "expected exactly 4 bytes"
    )
    assert execute(session, prepared.query_id) == invalid("There were 1 markers(?) in CQL but 0 bound variables")


def test_execute_unknown_id(node, session):
    query_id = bytes(range(16))
    assert execute(session, query_id) == Error(
        code=ErrorCode.UNPREPARED,
        message=f"Prepared query with ID {query_id.hex()} not found (either the query was not prepared on this "
        "host (maybe the host has been restarted?) or you have prepared too many queries and it has been "
        "evicted from the internal cache)",
        info=UnpreparedInfo(statement_id=query_id),
    )
    assert node.activity.entries == []


def test_prepared_statement_keeps_its_keyspace(node, session):
    """Unqualified names resolve in the keyspace of PREPARE (v5 flag or USE), wherever EXECUTE comes."""
    query(session, "INSERT INTO ks.users (id, name) VALUES (1, 'a')")
    v5 = prepare(session, "SELECT name FROM users", version=5, keyspace="ks")
    assert decoded(execute(session, v5.query_id, version=5)) == [("a",)]
    query(session, "USE ks")
    used = prepare(session, "SELECT id FROM users")
    other = node.session(2)
    startup(other)
    assert decoded(execute(other, used.query_id)) == [(1,)]


def test_prepared_select_sees_new_rows(session):
    prepared = prepare(session, "SELECT count(*) FROM ks.users")
    assert decoded(execute(session, prepared.query_id)) == [(0,)]
    query(session, "INSERT INTO ks.users (id) VALUES (1)")
    assert decoded(execute(session, prepared.query_id)) == [(1,)]


# ---- BATCH --------------------------------------------------------------------------------

def test_batch_of_strings_and_prepared(node, session):
    prepared = prepare(session, "INSERT INTO ks.users (id, name) VALUES (?, ?)")
    batch = Batch(statements=(
        BatchStatement(query="INSERT INTO ks.users (id, name) VALUES (1, 'one')"),
        BatchStatement(query="INSERT INTO ks.users (id, name) VALUES (?, ?)",
                       values=(INT.serialize(2), TEXT.serialize("two"))),
        BatchStatement(query_id=prepared.query_id, values=(INT.serialize(3), TEXT.serialize("three"))),
    ))
    assert session.handle(batch, 4, 1) == VoidResult()
    assert decoded(query(session, "SELECT id, name FROM ks.users")) == [(1, "one"), (2, "two"), (3, "three")]
    assert node.activity.entries == []


def test_batch_with_unknown_prepared_id_changes_nothing(node, session):
    query_id = b"\xab" * 16
    batch = Batch(statements=(
        BatchStatement(query="INSERT INTO ks.users (id) VALUES (1)"),
        BatchStatement(query_id=query_id),
    ))
    assert session.handle(batch, 4, 1) == Error(
        code=ErrorCode.UNPREPARED,
        message=f"Prepared query with ID {query_id.hex()} (statement 1 of the batch) not found",
        info=UnpreparedInfo(statement_id=query_id),
    )
    assert node.schema.table("ks", "users").rows == []


def test_batch_statement_error_fails_the_batch(node, session):
    node.when_query("UPDATE ks.users SET name = 'x' WHERE id = 1").then_error(
        ErrorCode.OVERLOADED, "too busy"
    )
    batch = Batch(statements=(
        BatchStatement(query="INSERT INTO ks.users (id) VALUES (1)"),
        BatchStatement(query="UPDATE ks.users SET name = 'x' WHERE id = 1"),
    ))
    assert session.handle(batch, 4, 1) == Error(code=ErrorCode.OVERLOADED, message="too busy")
    bad_value = Batch(statements=(BatchStatement(query="INSERT INTO ks.users (id) VALUES ('x')"),))
    assert session.handle(bad_value, 4, 2) == invalid(
        "Invalid string constant (x) for a int value: invalid literal for int() with base 10: 'x'"
    )


def test_v5_batch_keyspace(session):
    batch = Batch(statements=(BatchStatement(query="INSERT INTO users (id) VALUES (1)"),), keyspace="ks")
    assert session.handle(batch, 5, 1) == VoidResult()
    assert decoded(query(session, "SELECT id FROM ks.users")) == [(1,)]


# ---- priming --------------------------------------------------------------------------------

PRIMED = Error(code=ErrorCode.OVERLOADED, message="primed")

MATCHES = [
    ("exact", "SELECT * FROM ks.t", "SELECT * FROM ks.t", True),
    ("using-timeout-sent", "SELECT * FROM ks.t", "SELECT * FROM ks.t USING TIMEOUT 2000ms", True),
    ("using-timeout-primed", "SELECT * FROM ks.t USING TIMEOUT 2000ms", "SELECT * FROM ks.t", True),
    ("whitespace-and-semicolon", "SELECT * FROM ks.t", "  SELECT *\n\tFROM  ks.t ;", True),
    ("all-suffixes", "SELECT * FROM ks.t", "SELECT * FROM ks.t ALLOW FILTERING BYPASS CACHE USING TIMEOUT 1s", True),
    ("case-differs", "SELECT * FROM ks.t", "select * from ks.t", False),
    ("other-table", "SELECT * FROM ks.t", "SELECT * FROM ks.t2", False),
    ("prefix-only", "SELECT * FROM ks.t", "SELECT * FROM ks.t WHERE k = 1", False),
    ("string-spaces-differ", "SELECT * FROM ks.t WHERE k = 'a b'", "SELECT * FROM ks.t WHERE k = 'a  b'", False),
]


@pytest.mark.parametrize("primed, sent, matches", rows(MATCHES))
def test_when_query_text(node, session, primed, sent, matches):
    priming = node.when_query(primed).then(PRIMED)
    assert (query(session, sent) == PRIMED) is matches
    assert priming.matched == (1 if matches else 0)


def test_when_query_regex(node, session):
    node.when_query(re.compile(r"FROM system\.peers\b")).then(PRIMED)
    node.when_query(re.compile(r"TIMEOUT")).then_void()  # sees the query without its suffix
    assert query(session, SELECT_PEERS + " USING TIMEOUT 2000ms") == PRIMED
    assert query(session, "SELECT * FROM system.peers_v2") != PRIMED
    assert decoded(query(session, "SELECT key FROM system.local USING TIMEOUT 5s")) == [("local",)]


def test_when_query_callable(node, session):
    seen = []

    def routes(text: str) -> bool:
        seen.append(text)
        return "system.client_routes" in text

    priming = node.when_query(routes).then_rows([("c1", OTHER_ID)], columns={"connection_id": "text", "host_id": "uuid"})
    text = "SELECT connection_id, host_id FROM system.client_routes WHERE connection_id IN (?, ?)"
    result = query(session, text + "  USING TIMEOUT 10ms", TEXT.serialize("c1"), TEXT.serialize("c2"))
    assert decoded(result) == [("c1", OTHER_ID)]
    assert result.metadata.columns == (
        spec("connection_id", TEXT, "system", "client_routes"), spec("host_id", UUID, "system", "client_routes"),
    )
    assert seen == [text]
    assert repr(priming) == "<Priming routes matched 1x>"


def test_latest_priming_wins_and_times_exhausts(node, session):
    node.when_query("SELECT key FROM system.local").then_rows([("first",)], columns={"key": "text"})
    node.when_query("SELECT key FROM system.local", times=2).then_rows([("second",)], columns={"key": "text"})
    answers = [decoded(query(session, "SELECT key FROM system.local")) for _ in range(4)]
    assert answers == [[("second",)], [("second",)], [("first",)], [("first",)]]


def test_times_then_builtin_answer(node, session):
    priming = node.when_query(SELECT_LOCAL, times=1).then_error(ErrorCode.SERVER_ERROR, "boom")
    assert query(session, SELECT_LOCAL) == Error(code=ErrorCode.SERVER_ERROR, message="boom")
    assert names(query(session, SELECT_LOCAL))[:2] == ["broadcast_address", "cluster_name"]
    assert priming.matched == 1
    assert node.primings() == [priming]


def test_then_rows_dicts_tuples_and_types(node, session):
    node.when_query("SELECT * FROM ks.things").then_rows(
        [{"id": 1, "tags": ["a", "b"], "m": {"k": 2}}, (2, None, None), {"id": 3}],
        columns={"id": "int", "tags": "list<text>", "m": "map<text, bigint>"},
    )
    result = query(session, "SELECT * FROM ks.things")
    assert result.metadata.columns == (
        spec("id", INT, "ks", "things"), spec("tags", ListType(TEXT), "ks", "things"),
        spec("m", MapType(TEXT, BIGINT), "ks", "things"),
    )
    assert decoded(result) == [(1, ["a", "b"], {"k": 2}), (2, None, None), (3, None, None)]


def test_then_rows_of_an_unrecognized_statement(node, session):
    node.when_query("SELECT writetime(v) FROM t").then_rows([(5,)], columns={"writetime(v)": "bigint"})
    result = query(session, "SELECT writetime(v) FROM t")
    assert result == RowsResult(
        metadata=RowsMetadata(columns=(spec("writetime(v)", BIGINT, "fakecql", "primed"),)),
        rows=((BIGINT.serialize(5),),),
    )
    assert node.activity.entries == []


def test_then_rows_empty(node, session):
    node.when_query("SELECT * FROM system.peers").then_rows([], columns={"peer": "inet"})
    assert query(session, "SELECT * FROM system.peers") == RowsResult(
        metadata=RowsMetadata(columns=(spec("peer", INET, "system", "peers"),)), rows=(),
    )


def test_then_error_with_info(node, session):
    info = UnavailableInfo(consistency=Consistency.QUORUM, required=2, alive=1)
    node.when_query("INSERT INTO ks.users (id) VALUES (1)").then_error(
        ErrorCode.UNAVAILABLE, "Cannot achieve consistency level QUORUM", info
    )
    assert query(session, "INSERT INTO ks.users (id) VALUES (1)") == Error(
        code=ErrorCode.UNAVAILABLE, message="Cannot achieve consistency level QUORUM", info=info,
    )
    assert node.schema.table("ks", "users").rows == []  # the primed answer replaced the insert


def test_then_void(node, session):
    node.when_query("UPDATE ks.users SET name = ? WHERE id = ?").then_void()
    assert query(session, "UPDATE ks.users SET name = ? WHERE id = ?", b"x", b"y") == VoidResult()
    assert node.activity.entries == []


def test_primed_beats_builtin_tables(node, session):
    node.when_query("SELECT * FROM system.local").then(SetKeyspaceResult(keyspace="odd"))
    assert query(session, "SELECT * FROM system.local;") == SetKeyspaceResult(keyspace="odd")


def test_prepare_primed_query_with_params(node, session):
    text = "UPDATE ks.users SET name = ? WHERE id = ?"
    priming = node.when_query(text, params={"name": "text", "id": "int"}).then_void()
    prepared = prepare(session, text + " USING TIMEOUT 5s")
    assert prepared.bind_metadata.columns == (
        spec("name", TEXT, "fakecql", "primed"), spec("id", INT, "fakecql", "primed"),
    )
    assert priming.matched == 0  # PREPARE does not use the priming up
    assert execute(session, prepared.query_id, TEXT.serialize("x"), INT.serialize(1)) == VoidResult()
    assert priming.matched == 1
    query(session, "USE ks")
    assert prepare(session, text).bind_metadata.columns[0] == spec("name", TEXT, "ks", "primed")


def test_prepare_primed_query_without_params(node, session):
    node.when_query("UPDATE ks.users SET name = ? WHERE id = ?").then_void()
    prepared = prepare(session, "UPDATE ks.users SET name = ? WHERE id = ?")
    assert prepared.bind_metadata.columns == (
        spec("param0", BLOB, "fakecql", "unknown"), spec("param1", BLOB, "fakecql", "unknown"),
    )
    assert prepared.result_metadata == RowsMetadata()


def test_prepare_regex_priming_with_wrong_params_count(node, session):
    node.when_query(re.compile("^UPDATE"), params={"v": "text"}).then_void()
    with pytest.raises(ValueError, match=r"^priming re '\^UPDATE' declares 1 params for 2 bind markers$"):
        session.handle(Prepare(query="UPDATE t SET v = ? WHERE k = ?"), 4, 1)


BAD_PRIMINGS = [
    ("unknown-column", lambda n: n.when_query("q").then_rows([{"a": 1, "b": 2}], columns={"a": "int"}),
     ValueError, "row 0 has columns ['b'] not in columns ['a']"),
    ("row-too-short", lambda n: n.when_query("q").then_rows([(1, 2), (3,)], columns={"a": "int", "b": "int"}),
     ValueError, "row 1 has 1 values for the 2 columns ['a', 'b']"),
    ("row-too-long", lambda n: n.when_query("q").then_rows([(1, 2)], columns={"a": "int"}),
     ValueError, "row 0 has 2 values for the 1 columns ['a']"),
    ("wrong-type", lambda n: n.when_query("q").then_rows([{"a": "x"}], columns={"a": "int"}),
     ValueError, "row 0, column a: cannot serialize 'x' as int: expected an int of 32 bits"),
    ("wrong-type-in-tuple", lambda n: n.when_query("q").then_rows([(1, 5)], columns={"a": "int", "b": "text"}),
     ValueError, "row 0, column b: cannot serialize 5 as text: expected a str"),
    ("no-columns", lambda n: n.when_query("q").then_rows([], columns={}),
     ValueError, "then_rows() needs columns={name: cql_type, ...}"),
    ("bad-column-type", lambda n: n.when_query("q").then_rows([], columns={"a": "integer"}),
     ValueError, "bad CQL type 'integer': expected a known type name, not 'integer' at position 0"),
    ("bad-matcher", lambda n: n.when_query(42),
     TypeError, "when_query() takes a str, a compiled re or a callable, got 42"),
    ("bytes-matcher", lambda n: n.when_query(b"SELECT 1"),
     TypeError, "when_query() takes a str, a compiled re or a callable, got b'SELECT 1'"),
    ("times-zero", lambda n: n.when_query("q", times=0), ValueError, "times must be a positive integer or None, got 0"),
    ("times-negative", lambda n: n.when_query("q", times=-1),
     ValueError, "times must be a positive integer or None, got -1"),
    ("times-float", lambda n: n.when_query("q", times=1.5),
     ValueError, "times must be a positive integer or None, got 1.5"),
    ("times-bool", lambda n: n.when_query("q", times=True),
     ValueError, "times must be a positive integer or None, got True"),
    ("params-count", lambda n: n.when_query("UPDATE t SET v = ? WHERE k = ?", params={"v": "text"}),
     ValueError, "priming 'UPDATE t SET v = ? WHERE k = ?' declares 1 params for 2 bind markers"),
    ("params-type", lambda n: n.when_query("UPDATE t SET v = ?", params={"v": "txt"}),
     ValueError, "bad CQL type 'txt': expected a known type name, not 'txt' at position 0"),
    ("error-without-info", lambda n: n.when_query("q").then_error(ErrorCode.UNAVAILABLE, "x"),
     ValueError, "error UNAVAILABLE needs info=UnavailableInfo(...), got None"),
]


@pytest.mark.parametrize("build, error, message", rows(BAD_PRIMINGS))
def test_bad_priming_raises_at_once(build, error, message):
    node = Node()
    with pytest.raises(error) as caught:
        build(node)
    assert str(caught.value) == message


def test_unfinished_priming_answers_nothing(node, session):
    node.when_query("SELECT key FROM system.local")  # no then_*()
    assert decoded(query(session, "SELECT key FROM system.local")) == [("local",)]


# ---- the activity log ------------------------------------------------------------------------

def read_refused(verb: str, reason: str) -> Error:
    return invalid(
        f"fakecql does not interpret this {verb} ({reason}); prime its answer with when_query(...).then_rows(...)"
    )


UNRECOGNIZED = [  # every shape, and what a driver makes of each: test_node_answers.py
    ("update", "UPDATE ks.users SET name = 'x' WHERE id = 1", (),
     "UPDATE ks.users SET name = 'x' WHERE id = 1", "UPDATE is not interpreted by fakecql", "VOID", VoidResult()),
    ("create-with-suffix", "CREATE TABLE ks.t (k int PRIMARY KEY)  ;", (),
     "CREATE TABLE ks.t (k int PRIMARY KEY)", "CREATE is not interpreted by fakecql", "VOID", VoidResult()),
    ("token-range", "SELECT * FROM ks.users WHERE token(id) > ?\n USING TIMEOUT 2000ms", (b"\x00" * 8,),
     "SELECT * FROM ks.users WHERE token(id) > ?", "a WHERE condition on token other than = or IN",
     "InvalidRequest", read_refused("SELECT", "a WHERE condition on token other than = or IN")),
    ("function", "SELECT now() FROM system.local", (),
     "SELECT now() FROM system.local", "function call now(...) in the selection",
     "InvalidRequest", read_refused("SELECT", "function call now(...) in the selection")),
]


@pytest.mark.parametrize("text, values, normalized, reason, answered, answer", rows(UNRECOGNIZED))
def test_unrecognized_statement_is_an_incident(node, session, text, values, normalized, reason, answered, answer):
    assert query(session, text, *values) == answer
    assert node.activity.incidents() == [UnexpectedRequest(
        1, description=f"no priming matches and fakecql does not interpret it ({reason}); answered {answered}",
        query=normalized,
    )]


def test_unrecognized_prepared_statement_is_an_incident(node, session):
    prepared = prepare(session, "DELETE FROM ks.users WHERE id = ?")
    assert node.activity.entries == []  # PREPARE alone is fine
    assert execute(session, prepared.query_id, b"\x00\x00\x00\x01") == VoidResult()
    assert node.activity.incidents() == [UnexpectedRequest(
        1, description="no priming matches and fakecql does not interpret it "
        "(DELETE is not interpreted by fakecql); answered VOID",
        query="DELETE FROM ks.users WHERE id = ?",
    )]


QUIET = [
    ("system-local", SELECT_LOCAL + " USING TIMEOUT 2000ms"),
    ("peers", SELECT_PEERS),
    ("schema", "SELECT * FROM system_schema.tables"),
    ("virtual", "SELECT * from system_virtual_schema.columns"),
    ("use", "USE ks"),
    ("insert", "INSERT INTO ks.users (id) VALUES (1)"),
    ("invalid-answer", "SELECT nope FROM ks.users"),
    ("primed-update", "UPDATE ks.users SET name = 'p' WHERE id = 1"),
    ("primed-regex", "TRUNCATE ks.users"),
]


@pytest.mark.parametrize("text", rows(QUIET))
def test_known_and_primed_queries_log_nothing(node, session, text):
    node.when_query("UPDATE ks.users SET name = 'p' WHERE id = 1").then_void()
    node.when_query(re.compile("^TRUNCATE ")).then_void()
    response = query(session, text)
    assert isinstance(response, (RowsResult, VoidResult, SetKeyspaceResult, Error))
    assert node.activity.entries == []
