"""The in-memory schema: definitions, validation, derived system_schema rows."""
from __future__ import annotations

import copy
import ipaddress
import threading
import uuid

import pytest

from fakecql.protocol.errors import ErrorCode, FakeCQLError
from fakecql.protocol.types import ListType, MapType, SetType, UserType, parse_type
from fakecql.schema import (
    FLAVORS,
    AlreadyExistsError,
    ColumnKind,
    InvalidDefinitionError,
    ReplicationError,
    Schema,
    SchemaError,
    SystemKeyspaceError,
    UnknownKeyspaceError,
    UnknownTableError,
    UnknownTypeError,
    cql_type_text,
)

SYSTEM_SCHEMA_TABLES = {
    "keyspaces", "tables", "columns", "dropped_columns", "triggers", "views", "types",
    "functions", "aggregates", "indexes",
}


def columns_of(schema: Schema, keyspace: str, table: str) -> dict:
    return {c.name: c.type_text for c in schema.lookup(keyspace, table).columns}


@pytest.fixture
def schema() -> Schema:
    schema = Schema()
    schema.add_keyspace("ks", replication={"class": "SimpleStrategy", "replication_factor": "1"})
    schema.add_type("ks", "address", {"street": "text", "zip": "int"})
    schema.add_table(
        "ks", "users",
        columns={"id": "uuid", "name": "text", "tags": "set<text>", "scores": "map<text, int>",
                 "home": "frozen<address>", "age": "int"},
        partition_key=["id"],
    )
    schema.add_table(
        "ks", "events",
        columns={"device": "uuid", "day": "date", "ts": "timestamp", "seq": "int",
                 "owner": "text", "payload": "blob"},
        partition_key=["device", "day"], clustering=[("ts", "desc"), "seq"], static=["owner"],
    )
    return schema


# ---- the system keyspaces a fresh schema holds ---------------------------

@pytest.mark.parametrize("flavor", FLAVORS)
def test_fresh_schema_holds_the_system_keyspaces(flavor: str) -> None:
    schema = Schema(flavor=flavor)
    for name in ("system", "system_schema", "system_auth", "system_distributed", "system_traces"):
        ks = schema.keyspaces[name]
        assert ks.system and not ks.virtual
    assert schema.keyspaces["system"].replication == {"class": "org.apache.cassandra.locator.LocalStrategy"}
    assert schema.keyspaces["system_schema"].replication["class"].endswith(".LocalStrategy")
    assert dict(schema.keyspaces["system_traces"].replication) == {
        "class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "2"}
    expected = SYSTEM_SCHEMA_TABLES | ({"scylla_keyspaces"} if flavor == "scylla" else set())
    assert set(schema.keyspaces["system_schema"].tables) == expected
    assert all(schema.table("system_schema", t).derived for t in expected)
    assert not schema.table("system", "local").derived
    assert schema.table("system", "local").rows == [] and schema.table("system", "peers").rows == []


def test_cassandra_flavor_has_peers_v2_and_virtual_keyspaces() -> None:
    schema = Schema()
    assert schema.flavor == "cassandra"
    assert columns_of(schema, "system", "peers_v2") == {
        "peer": "inet", "peer_port": "int", "data_center": "text", "host_id": "uuid",
        "native_address": "inet", "native_port": "int", "preferred_ip": "inet",
        "preferred_port": "int", "rack": "text", "release_version": "text",
        "schema_version": "uuid", "tokens": "set<text>",
    }
    peers_v2 = schema.lookup("system", "peers_v2")
    assert [c.name for c in peers_v2.primary_key] == ["peer", "peer_port"]
    assert schema.keyspaces["system_virtual_schema"].virtual
    assert set(schema.keyspaces["system_virtual_schema"].tables) == {"keyspaces", "tables", "columns"}
    assert schema.keyspaces["system_views"].virtual


def test_scylla_flavor_has_client_routes_and_no_peers_v2() -> None:
    schema = Schema(flavor="scylla")
    assert schema.table("system", "peers_v2") is None
    assert "system_virtual_schema" not in schema.keyspaces
    routes = schema.lookup("system", "client_routes")
    assert [c.name for c in routes.primary_key] == ["connection_id", "host_id"]
    for name, type_text in {"address": "text", "port": "int", "tls_port": "int"}.items():
        assert routes.column(name).type_text == type_text
    assert "supported_features" in columns_of(schema, "system", "local")


@pytest.mark.parametrize("flavor", FLAVORS)
def test_system_local_and_peers_have_the_columns_drivers_read(flavor: str) -> None:
    schema = Schema(flavor=flavor)
    local = columns_of(schema, "system", "local")
    expected = {
        "key": "text", "bootstrapped": "text", "broadcast_address": "inet", "cluster_name": "text",
        "cql_version": "text", "data_center": "text", "gossip_generation": "int", "host_id": "uuid",
        "listen_address": "inet", "native_protocol_version": "text", "partitioner": "text",
        "rack": "text", "release_version": "text", "rpc_address": "inet", "schema_version": "uuid",
        "tokens": "set<text>", "truncated_at": "map<uuid, blob>",
    }
    assert {name: local[name] for name in expected} == expected
    assert [c.name for c in schema.lookup("system", "local").partition_key] == ["key"]
    peers = columns_of(schema, "system", "peers")
    for name in ("peer", "data_center", "host_id", "rack", "release_version", "rpc_address",
                 "schema_version", "tokens", "preferred_ip"):
        assert name in peers
    assert peers["peer"] == "inet" and peers["tokens"] == "set<text>"


def test_system_table_ids_follow_cassandra() -> None:
    # Cassandra names system tables with UUID.nameUUIDFromBytes(keyspace + table).
    assert Schema().lookup("system", "local").id == uuid.UUID("7ad54392-bcdd-35a6-8417-4e047860b377")


def test_the_node_fills_system_local_rows() -> None:
    schema = Schema()
    local = schema.lookup("system", "local")
    local.rows.append({"key": "local", "host_id": uuid.uuid4(), "rpc_address": ipaddress.ip_address("127.0.0.1")})
    assert schema.lookup("system", "local").rows[0]["key"] == "local"


# ---- keyspaces ------------------------------------------------------------

def test_add_keyspace_stores_full_strategy_names_and_string_options() -> None:
    schema = Schema()
    ks = schema.add_keyspace("ks", {"class": "NetworkTopologyStrategy", "dc1": 3, "dc2": "1"})
    assert dict(ks.replication) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "dc1": "3", "dc2": "1"}
    assert ks.durable_writes and not ks.system and schema.keyspace("ks") is ks
    assert dict(schema.add_keyspace("other").replication) == {
        "class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"}
    with pytest.raises(TypeError):
        ks.replication["dc1"] = "5"  # type: ignore[index]


@pytest.mark.parametrize(
    "replication, message",
    [
        ({"replication_factor": "1"}, "missing 'class'"),
        ({"class": "SimpleStrategy"}, "exactly a 'replication_factor'"),
        ({"class": "SimpleStrategy", "replication_factor": "1", "dc1": "1"}, "exactly a 'replication_factor'"),
        ({"class": "SimpleStrategy", "replication_factor": "three"}, "like '3' or '3/1'"),
        ({"class": "NetworkTopologyStrategy", "dc1": "x"}, "dc1 must be a replication factor"),
        ({"class": "RandomStrategy"}, "unknown strategy 'RandomStrategy'"),
        ({"class": "SimpleStrategy", "replication_factor": 1.5}, "must be a str or int"),
        ("SimpleStrategy", "expected a mapping"),
    ],
)
def test_bad_replication_is_refused(replication: object, message: str) -> None:
    with pytest.raises(ReplicationError, match=message) as info:
        Schema().add_keyspace("ks", replication)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.CONFIG_ERROR


def test_keyspace_name_rules() -> None:
    schema = Schema()
    schema.add_keyspace("ks")
    with pytest.raises(AlreadyExistsError) as info:
        schema.add_keyspace("ks")
    assert (info.value.code, info.value.keyspace, info.value.table) == (ErrorCode.ALREADY_EXISTS, "ks", "")
    for bad in ("", "my-ks", "k" * 49, 7):
        with pytest.raises(InvalidDefinitionError, match="bad keyspace name"):
            schema.add_keyspace(bad)  # type: ignore[arg-type]
    with pytest.raises(SystemKeyspaceError, match="allow_system=True"):
        schema.add_keyspace("system_distributed_everywhere")
    assert schema.add_keyspace("system_distributed_everywhere", {"class": "EverywhereStrategy"},
                               allow_system=True).system


# ---- tables ----------------------------------------------------------------

def test_add_table_builds_columns_in_select_order(schema: Schema) -> None:
    users = schema.lookup("ks", "users")
    # Cassandra: key columns, then simple columns by name, then multi-cell ones.
    assert users.column_names == ("id", "age", "home", "name", "scores", "tags")
    assert [c.name for c in users.partition_key] == ["id"] and users.clustering == ()
    assert users.column("scores").type == MapType(parse_type("text"), parse_type("int"))
    assert users.column("home").type_text == "frozen<address>"
    assert users.column("tags").kind is ColumnKind.REGULAR and users.column("tags").kind == "regular"
    events = schema.lookup("ks", "events")
    assert events.column_names == ("device", "day", "ts", "seq", "owner", "payload")
    assert [(c.name, c.kind.value, c.position, c.clustering_order) for c in events.primary_key] == [
        ("device", "partition_key", 0, "none"), ("day", "partition_key", 1, "none"),
        ("ts", "clustering", 0, "desc"), ("seq", "clustering", 1, "asc"),
    ]
    owner = events.column("owner")
    assert (owner.kind, owner.position, owner.clustering_order) == (ColumnKind.STATIC, -1, "none")
    assert users.options["comment"] == "" and users.options["gc_grace_seconds"] == 864000
    assert users.flags == ["compound"] and not users.derived and users.rows == []


def test_scylla_orders_regular_columns_by_name_only() -> None:
    schema = Schema(flavor="scylla")
    schema.add_keyspace("ks")
    table = schema.add_table("ks", "t", {"k": "int", "b_set": "set<int>", "c": "text", "a": "int"}, "k")
    assert table.column_names == ("k", "a", "b_set", "c")
    assert table.options["speculative_retry"] == "99.0PERCENTILE"
    assert "additional_write_policy" not in table.options


def test_add_table_options_and_id(schema: Schema) -> None:
    table_id = uuid.uuid4()
    table = schema.add_table("ks", "t", {"k": "int"}, "k",
                             options={"comment": "hello", "default_time_to_live": 60}, table_id=table_id)
    assert table.id == table_id and table.options["comment"] == "hello"
    assert table.options["default_time_to_live"] == 60
    with pytest.raises(TypeError):
        table.options["comment"] = "x"  # type: ignore[index]
    with pytest.raises(InvalidDefinitionError, match=r"unknown table options \['colour'\]"):
        schema.add_table("ks", "t2", {"k": "int"}, "k", options={"colour": "red"})
    with pytest.raises(InvalidDefinitionError, match="option gc_grace_seconds: cannot serialize 'soon' as int"):
        schema.add_table("ks", "t2", {"k": "int"}, "k", options={"gc_grace_seconds": "soon"})
    # Names derive the default id, so schemas built alike agree.
    again = Schema()
    again.add_keyspace("ks")
    assert again.add_table("ks", "users", {"k": "int"}, "k").id == schema.lookup("ks", "users").id


def test_counter_tables_are_flagged() -> None:
    schema = Schema()
    schema.add_keyspace("ks")
    table = schema.add_table("ks", "hits", {"page": "text", "n": "counter", "m": "counter"}, "page")
    assert table.flags == ["compound", "counter"]
    with pytest.raises(InvalidDefinitionError, match="cannot mix counter and non-counter columns"):
        schema.add_table("ks", "mixed", {"page": "text", "n": "counter", "label": "text"}, "page")


@pytest.mark.parametrize(
    "columns, partition_key, clustering, static, message",
    [
        ({"k": "int"}, ["nope"], [], [], "partition key column 'nope' is not among the columns"),
        ({"k": "int"}, [], [], [], "at least one partition key column"),
        ({"k": "int", "c": "int"}, ["k"], ["k"], [], "'k' is named twice in the primary key"),
        ({"k": "int", "c": "int"}, ["k"], [("c", "sideways")], [], "must be 'asc' or 'desc'"),
        ({"k": "int", "c": "int"}, ["k"], [("c",)], [], "a column name or a \\(name, 'asc'\\|'desc'\\) pair"),
        ({"k": "list<int>"}, ["k"], [], [], "non-frozen collection type list<int> for PRIMARY KEY component k"),
        ({"k": "int", "c": "set<int>"}, ["k"], ["c"], [], "PRIMARY KEY component c"),
        ({"k": "duration"}, ["k"], [], [], "not allowed in the primary key"),
        ({"k": "int", "v": "list<list<int>>"}, ["k"], [], [],
         "non-frozen collections are not allowed inside collections: list<list<int>>"),
        ({"k": "int", "v": "map<text, set<int>>"}, ["k"], [], [], "expected frozen<set<int>>"),
        ({"k": "int", "v": "set<duration>"}, ["k"], [], [], "durations are not allowed inside sets"),
        ({"k": "int", "v": "list<counter>"}, ["k"], [], [], "counters are not allowed inside collections"),
        ({"k": "int", "v": "lst<int>"}, ["k"], [], [], "column 'v' of table ks.t: bad CQL type 'lst<int>'"),
        ({"k": "int", "v": "frozen<nowhere>"}, ["k"], [], [], "user types of keyspace ks: address"),
        ({"k": "int", "v": 42}, ["k"], [], [], "expected a CQL type as str or CqlType"),
        ({"k": "int", "bad name": "int"}, ["k"], [], [], "bad column \\(of table ks.t\\) name 'bad name'"),
        ({"k": "int", "s": "int"}, ["k"], [], ["s"], "static columns \\(s\\) need a clustering column"),
        ({"k": "int", "c": "int"}, ["k"], ["c"], ["c"], "static column 'c' must be a non-key column"),
        ({}, ["k"], [], [], "expected a non-empty mapping of column name to type"),
    ],
)
def test_bad_tables_are_refused(schema: Schema, columns: dict, partition_key: list, clustering: list,
                                static: list, message: str) -> None:
    with pytest.raises(InvalidDefinitionError, match=message) as info:
        schema.add_table("ks", "t", columns, partition_key, clustering, static=static)
    assert info.value.code is ErrorCode.INVALID
    assert schema.table("ks", "t") is None


def test_table_needs_its_keyspace_and_a_free_name(schema: Schema) -> None:
    with pytest.raises(UnknownKeyspaceError, match="keyspace nowhere does not exist") as info:
        schema.add_table("nowhere", "t", {"k": "int"}, ["k"])
    assert info.value.keyspace == "nowhere" and isinstance(info.value, ValueError)
    with pytest.raises(AlreadyExistsError) as exists:
        schema.add_table("ks", "users", {"k": "int"}, ["k"])
    assert (exists.value.keyspace, exists.value.table) == ("ks", "users")
    with pytest.raises(InvalidDefinitionError, match="bad table name"):
        schema.add_table("ks", "t" * 49, {"k": "int"}, ["k"])


def test_types_are_normalised_as_cassandra_writes_them(schema: Schema) -> None:
    table = schema.add_table("ks", "nested", {
        "k": "frozen<list<list<int>>>",
        "t": "tuple<int, list<text>>",
        "m": "map<text, frozen<map<int, list<int>>>>",
        "a": "list<frozen<address>>",
        "v": "VARCHAR",
        "u": "address",
        "q": "ks.address",
    }, ["k"])
    assert {c.name: c.type_text for c in table.columns} == {
        "k": "frozen<list<frozen<list<int>>>>",
        "t": "frozen<tuple<int, frozen<list<text>>>>",
        "m": "map<text, frozen<map<int, frozen<list<int>>>>>",
        "a": "list<frozen<address>>",
        "v": "text",
        "u": "address",
        "q": "address",  # keyspace-qualified names resolve in the table's keyspace
    }
    # A CqlType works too; its user types resolve by name in the keyspace.
    address = schema.user_type("ks", "address")
    typed = schema.add_table("ks", "typed", {
        "k": "int", "l": ListType(parse_type("int")), "s": SetType(UserType("ks", "address", address.fields)),
    }, ["k"])
    assert typed.column("l").type_text == "list<int>"
    assert typed.column("s").type_text == "set<frozen<address>>"


# ---- user types --------------------------------------------------------------

def test_user_types(schema: Schema) -> None:
    address = schema.user_type("ks", "address")
    assert isinstance(address, UserType) and address.keyspace == "ks"
    assert [(n, str(t)) for n, t in address.fields] == [("street", "text"), ("zip", "int")]
    person = schema.add_type("ks", "person", {"name": "text", "home": "frozen<address>", "phones": "list<text>"})
    assert [cql_type_text(t) for _, t in person.fields] == ["text", "frozen<address>", "list<text>"]
    table = schema.add_table("ks", "people", {"id": "int", "p": "frozen<person>"}, ["id"])
    assert table.column("p").type.fields[1][1].name == "address"
    assert schema.keyspaces["ks"].user_types["person"] is person
    with pytest.raises(AlreadyExistsError):
        schema.add_type("ks", "address", {"x": "int"})
    with pytest.raises(InvalidDefinitionError, match="cannot contain non-frozen user types .*frozen<address>"):
        schema.add_type("ks", "bad", {"home": "address"})
    with pytest.raises(InvalidDefinitionError, match="cannot contain counters"):
        schema.add_type("ks", "bad", {"n": "counter"})
    with pytest.raises(InvalidDefinitionError, match="non-frozen user types are not allowed inside collections"):
        schema.add_table("ks", "bad", {"k": "int", "homes": "list<address>"}, ["k"])
    with pytest.raises(InvalidDefinitionError, match="it is a CQL type keyword"):
        schema.add_type("ks", "text", {"x": "int"})
    with pytest.raises(InvalidDefinitionError, match="expected a non-empty mapping"):
        schema.add_type("ks", "empty", {})
    with pytest.raises(UnknownKeyspaceError):
        schema.add_type("nowhere", "t", {"x": "int"})


def test_case_sensitive_type_names_are_quoted_in_type_text() -> None:
    schema = Schema()
    schema.add_keyspace("ks")
    schema.add_type("ks", "Address", {"zip": "int"})
    schema.add_type("ks", "select", {"zip": "int"})  # a reserved word, legal as a quoted name
    table = schema.add_table("ks", "t", {"k": "int", "a": 'frozen<"Address">', "s": 'frozen<"select">'}, ["k"])
    assert table.column("a").type_text == 'frozen<"Address">'
    assert table.column("s").type_text == 'frozen<"select">'
    with pytest.raises(InvalidDefinitionError, match="not 'address'"):
        schema.add_table("ks", "t2", {"k": "int", "a": "frozen<Address>"}, ["k"])


def test_drop_type(schema: Schema) -> None:
    with pytest.raises(InvalidDefinitionError, match="still used by table ks.users"):
        schema.drop_type("ks", "address")
    schema.drop_table("ks", "users")
    schema.drop_type("ks", "address")
    assert schema.user_type("ks", "address") is None
    with pytest.raises(UnknownTypeError, match="no user type ks.address"):
        schema.drop_type("ks", "address")


# ---- derived system_schema rows --------------------------------------------

def test_system_schema_keyspaces_rows(schema: Schema) -> None:
    rows = {r["keyspace_name"]: r for r in schema.lookup("system_schema", "keyspaces").rows}
    assert list(rows) == ["system", "system_schema", "system_auth", "system_distributed", "system_traces", "ks"]
    assert rows["ks"] == {
        "keyspace_name": "ks", "durable_writes": True,
        "replication": {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "1"},
    }


def test_system_schema_tables_rows(schema: Schema) -> None:
    rows = {(r["keyspace_name"], r["table_name"]): r for r in schema.lookup("system_schema", "tables").rows}
    assert ("system", "local") in rows and ("system_schema", "columns") in rows
    assert ("system_virtual_schema", "tables") not in rows
    users = rows[("ks", "users")]
    assert users["id"] == schema.lookup("ks", "users").id and users["flags"] == ["compound"]
    assert users["caching"] == {"keys": "ALL", "rows_per_partition": "NONE"}
    assert users["compaction"]["class"] == "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy"
    assert users["compression"]["class"] == "org.apache.cassandra.io.compress.LZ4Compressor"
    assert (users["read_repair"], users["speculative_retry"], users["crc_check_chance"]) == ("BLOCKING", "99p", 1.0)
    assert users["cdc"] is None and users["extensions"] == {}
    assert rows[("system", "local")]["comment"] == "information about the local node"
    assert rows[("system_schema", "tables")]["gc_grace_seconds"] == 604800
    ks_rows = [name for ks, name in rows if ks == "ks"]
    assert ks_rows == ["events", "users"]  # clustering order within the keyspace


def test_system_schema_columns_rows(schema: Schema) -> None:
    rows = [r for r in schema.lookup("system_schema", "columns").rows if r["keyspace_name"] == "ks"]
    by_name = {(r["table_name"], r["column_name"]): r for r in rows}
    assert by_name[("events", "ts")] == {
        "keyspace_name": "ks", "table_name": "events", "column_name": "ts", "clustering_order": "desc",
        "column_name_bytes": b"ts", "kind": "clustering", "position": 0, "type": "timestamp",
    }
    assert (by_name[("events", "day")]["kind"], by_name[("events", "day")]["position"]) == ("partition_key", 1)
    assert by_name[("events", "owner")]["kind"] == "static"
    assert (by_name[("users", "tags")]["kind"], by_name[("users", "tags")]["position"]) == ("regular", -1)
    assert by_name[("users", "tags")]["type"] == "set<text>"
    assert by_name[("users", "scores")]["type"] == "map<text, int>"
    assert by_name[("users", "home")]["type"] == "frozen<address>"
    assert [r["column_name"] for r in rows if r["table_name"] == "users"] == sorted(
        c.name for c in schema.lookup("ks", "users").columns)


def test_system_schema_types_rows(schema: Schema) -> None:
    assert schema.lookup("system_schema", "types").rows == [{
        "keyspace_name": "ks", "type_name": "address",
        "field_names": ["street", "zip"], "field_types": ["text", "int"],
    }]


def test_virtual_schema_rows_list_virtual_keyspaces_only() -> None:
    schema = Schema()
    keyspaces = [r["keyspace_name"] for r in schema.lookup("system_virtual_schema", "keyspaces").rows]
    assert keyspaces == ["system_virtual_schema", "system_views"]
    tables = {(r["keyspace_name"], r["table_name"]): r["comment"]
              for r in schema.lookup("system_virtual_schema", "tables").rows}
    assert tables[("system_views", "clients")] == "currently connected clients"
    columns = [r for r in schema.lookup("system_virtual_schema", "columns").rows
               if r["table_name"] == "clients"]
    assert {r["column_name"]: (r["kind"], r["type"]) for r in columns}["port"] == ("clustering", "int")
    ordinary = {r["keyspace_name"] for r in schema.lookup("system_schema", "columns").rows}
    assert "system_views" not in ordinary


def test_views_and_friends_are_empty_but_defined(schema: Schema) -> None:
    for name in ("views", "triggers", "functions", "aggregates", "indexes", "dropped_columns"):
        assert schema.lookup("system_schema", name).rows == []
    assert Schema(flavor="scylla").lookup("system_schema", "scylla_keyspaces").rows == []


@pytest.mark.parametrize("flavor", FLAVORS)
def test_derived_rows_are_complete_and_serializable(flavor: str) -> None:
    schema = Schema(flavor=flavor)
    schema.add_keyspace("ks")
    schema.add_type("ks", "address", {"street": "text"})
    schema.add_table("ks", "t", {"k": "int", "a": "frozen<address>", "m": "map<text, int>"}, ["k"])
    for table in schema.tables():
        if not table.derived:
            continue
        for row in table.rows:
            assert list(row) == list(table.column_names)
            for column in table.columns:
                value = row[column.name]
                if value is not None:  # the canonical form the codec takes and gives back
                    assert column.type.deserialize(column.type.serialize(value)) == value, (table.name, column.name)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_type_text_parses_back_to_the_column_type(flavor: str) -> None:
    schema = Schema(flavor=flavor)
    schema.add_keyspace("ks")
    schema.add_type("ks", "Pt", {"x": "int", "tags": "set<text>"})
    schema.add_table("ks", "t", {"k": "frozen<tuple<int, text>>", "p": 'list<frozen<"Pt">>',
                                 "n": 'map<int, frozen<list<frozen<"Pt">>>>'}, ["k"])
    for row in schema.lookup("system_schema", "columns").rows:
        column = schema.lookup(row["keyspace_name"], row["table_name"]).column(row["column_name"])
        known = dict(schema.keyspaces[row["keyspace_name"]].user_types)
        assert parse_type(row["type"], user_types=known) == column.type
        assert row["type"] == cql_type_text(column.type)


def test_derived_rows_are_fresh_and_read_only(schema: Schema) -> None:
    table = schema.lookup("system_schema", "keyspaces")
    rows = table.rows
    rows[0]["replication"]["class"] = "changed"
    rows.sort(key=lambda r: r["keyspace_name"])  # reading and sorting a copy is fine
    assert table.rows[0]["replication"]["class"].endswith("LocalStrategy")
    for mutate in (lambda: rows.append({}), lambda: rows.extend([{}]), lambda: rows.__setitem__(0, {}),
                   lambda: rows.pop(), lambda: rows.clear()):
        with pytest.raises(InvalidDefinitionError, match="system_schema.keyspaces are derived"):
            mutate()
    assert type(copy.deepcopy(rows)) is list and copy.copy(rows) == rows
    tables = schema.lookup("system_schema", "tables").rows
    tables[0]["caching"]["keys"] = "NONE"
    tables[0]["flags"].append("dense")
    fresh = schema.lookup("system_schema", "tables").rows[0]
    assert fresh["caching"]["keys"] == "ALL" and fresh["flags"] == ["compound"]


# ---- schema version -----------------------------------------------------------

def test_version_changes_with_every_schema_change() -> None:
    schema = Schema()
    seen = [schema.version]

    def changed() -> None:
        assert isinstance(schema.version, uuid.UUID) and schema.version not in seen[-1:]
        seen.append(schema.version)

    schema.add_keyspace("ks"); changed()
    schema.add_type("ks", "address", {"zip": "int"}); changed()
    table = schema.add_table("ks", "t", {"k": "int", "a": "frozen<address>"}, ["k"]); changed()
    table.rows.append({"k": 1})
    assert schema.version == seen[-1]  # data is not schema
    schema.add_table("ks", "t2", {"k": "int"}, ["k"]); changed()
    schema.drop_table("ks", "t2"); changed()
    schema.drop_table("ks", "t"); changed()
    schema.drop_type("ks", "address"); changed()
    schema.drop_keyspace("ks"); changed()
    assert seen[-1] == seen[0]  # back to the system keyspaces alone


def test_schemas_built_alike_agree_on_version() -> None:
    def build(flavor: str) -> Schema:
        schema = Schema(flavor=flavor)
        schema.add_keyspace("ks")
        schema.add_table("ks", "t", {"k": "int", "v": "text"}, ["k"])
        return schema

    assert build("cassandra").version == build("cassandra").version
    assert build("cassandra").version != build("scylla").version
    other = build("cassandra")
    other.add_table("ks", "t2", {"k": "int"}, ["k"], options={"comment": "x"})
    assert other.version != build("cassandra").version


# ---- dropping, system protection, lookup ------------------------------------------

def test_drop_keyspace_and_table(schema: Schema) -> None:
    schema.drop_table("ks", "events")
    assert schema.table("ks", "events") is None
    with pytest.raises(UnknownTableError) as info:
        schema.drop_table("ks", "events")
    assert (info.value.keyspace, info.value.table, info.value.code) == ("ks", "events", ErrorCode.INVALID)
    schema.drop_keyspace("ks")
    assert "ks" not in schema.keyspaces and schema.table("ks", "users") is None
    assert all(r["keyspace_name"] != "ks" for r in schema.lookup("system_schema", "columns").rows)
    with pytest.raises(UnknownKeyspaceError):
        schema.drop_keyspace("ks")


def test_system_keyspaces_change_only_when_allowed() -> None:
    schema = Schema()
    for change in (lambda **kw: schema.drop_keyspace("system_traces", **kw),
                   lambda **kw: schema.drop_table("system", "peers_v2", **kw),
                   lambda **kw: schema.add_table("system", "extra", {"k": "int"}, ["k"], **kw),
                   lambda **kw: schema.add_type("system", "thing", {"k": "int"}, **kw)):
        with pytest.raises(SystemKeyspaceError, match="allow_system=True") as info:
            change()
        assert info.value.code is ErrorCode.UNAUTHORIZED
        change(allow_system=True)
    assert schema.table("system", "peers_v2") is None  # as a pre-4.0 node
    assert "system_traces" not in schema.keyspaces
    assert ("system", "extra") in {(r["keyspace_name"], r["table_name"])
                                   for r in schema.lookup("system_schema", "tables").rows}


def test_lookup_and_listing(schema: Schema) -> None:
    assert schema.lookup("ks", "users") is schema.table("ks", "users") is schema.keyspaces["ks"].tables["users"]
    assert schema.table("nowhere", "users") is None and schema.table("ks", "nowhere") is None
    with pytest.raises(UnknownTableError, match="unconfigured table ks.nowhere: keyspace ks has tables events, users"):
        schema.lookup("ks", "nowhere")
    with pytest.raises(UnknownKeyspaceError, match="keyspace nowhere does not exist"):
        schema.lookup("nowhere", "t")
    assert [t.name for t in schema.tables("ks")] == ["users", "events"]
    assert {t.qualified_name for t in schema.tables()} >= {"ks.users", "system.local", "system_schema.columns"}
    assert schema.resolve_type("ks", "list<frozen<address>>") == ListType(schema.user_type("ks", "address"))
    with pytest.raises(InvalidDefinitionError):
        schema.resolve_type("ks", "list<address>")
    assert "flavor=cassandra" in repr(schema)


def test_errors_share_one_root() -> None:
    for error in (InvalidDefinitionError, ReplicationError, UnknownKeyspaceError, UnknownTableError,
                  UnknownTypeError, AlreadyExistsError, SystemKeyspaceError):
        assert issubclass(error, SchemaError)
    assert issubclass(SchemaError, FakeCQLError) and issubclass(SchemaError, ValueError)
    with pytest.raises(InvalidDefinitionError, match="unknown schema flavor 'dse'"):
        Schema(flavor="dse")


def test_changes_from_another_thread_do_not_break_derivation() -> None:
    schema = Schema()
    schema.add_keyspace("ks")
    stop = threading.Event()

    def churn() -> None:
        i = 0
        while not stop.is_set():
            schema.add_table("ks", f"t{i}", {"k": "int"}, ["k"])
            schema.drop_table("ks", f"t{i}")
            i += 1

    worker = threading.Thread(target=churn)
    worker.start()
    try:
        for _ in range(50):
            # Each derivation is a consistent snapshot: a table of ks that
            # appears has its whole column list, and the version is a UUID.
            rows = [r for r in schema.lookup("system_schema", "columns").rows if r["keyspace_name"] == "ks"]
            assert all(r["column_name"] == "k" and r["kind"] == "partition_key" for r in rows)
            assert len({r["table_name"] for r in rows}) == len(rows)
            assert isinstance(schema.version, uuid.UUID)
    finally:
        stop.set()
        worker.join()
