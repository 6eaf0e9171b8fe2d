"""The derived schema rows, read by the installed driver's own code (offline).

The rows travel as a node sends them: fakecql encodes them in a RESULT Rows
body, the driver's ProtocolHandler decodes that body, and the schema parser
the driver's get_schema_parser() picks for the node's release_version builds
KeyspaceMetadata/TableMetadata from it, through a stand-in for the control
connection that answers the driver's SELECTs from a Schema. scylla-driver
and cassandra-driver both install the `cassandra` package: where they differ
(signatures, Scylla-only queries) the tests probe for the capability, so
this file runs in either environment and skips nothing.
"""
from __future__ import annotations

import datetime
import inspect
import logging
import re
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from cassandra import InvalidRequest
from cassandra import metadata as driver_metadata
from cassandra.cluster import ControlConnection
from cassandra.protocol import ProtocolHandler

from fakecql.protocol.messages import ColumnSpec, RowsMetadata, RowsResult
from fakecql.schema import Schema

PROTOCOL_VERSION = 4
RESULT_OPCODE = 0x08

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<keyspace>\w+)\.(?P<table>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+USING\s+TIMEOUT\s+\d+ms)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_CONDITION = re.compile(r"^\s*(\w+)\s*=\s*'((?:[^']|'')*)'\s*$")
_DRIVER_HAS_SCYLLA_KEYSPACES = hasattr(driver_metadata.SchemaParserV3, "_SELECT_SCYLLA_KEYSPACES")


def _driver_decode(body: bytes) -> Any:
    """Decode a RESULT body with the driver's ProtocolHandler, whatever its signature."""
    params = inspect.signature(ProtocolHandler.decode_message).parameters
    values: Dict[str, Any] = {
        "protocol_version": PROTOCOL_VERSION, "user_type_map": {}, "stream_id": 0, "flags": 0,
        "opcode": RESULT_OPCODE, "body": body, "decompressor": None, "result_metadata": None,
    }
    if "protocol_features" in params:  # scylla-driver
        from cassandra.protocol_features import ProtocolFeatures

        values["protocol_features"] = ProtocolFeatures()
    return ProtocolHandler.decode_message(*[values[name] for name in params])


class FakeControlConnection:
    """Answers the driver's schema SELECTs from a Schema, as the node would.

    Understands `SELECT cols FROM ks.table [WHERE c = 'v' AND ...]
    [USING TIMEOUT nms]`; a missing table or column is an InvalidRequest,
    as on a real node. Every query is recorded with whether it succeeded.
    """

    def __init__(
        self, schema: Schema, features: Any = None,
        tamper: Optional[Callable[[str, List[Dict[str, Any]]], None]] = None,
    ) -> None:
        self.schema = schema
        self.tamper = tamper  # a negative control's way to break rows on the way out
        self.protocol_version = PROTOCOL_VERSION
        self.answered: List[Tuple[str, bool]] = []
        if features is not None:
            self.features = features

    def wait_for_responses(self, *messages: Any, timeout: Any = None, fail_on_error: bool = True) -> List[Any]:
        answers = [self._answer(message.query) for message in messages]
        if fail_on_error:
            for ok, result in answers:
                if not ok:
                    raise result
            return [result for _, result in answers]
        return answers

    def wait_for_response(self, message: Any, timeout: Any = None, fail_on_error: bool = True) -> Any:
        return self.wait_for_responses(message, timeout=timeout, fail_on_error=fail_on_error)[0]

    def refused(self) -> List[str]:
        return [query for query, ok in self.answered if not ok]

    def _answer(self, query: str) -> Tuple[bool, Any]:
        ok, result = self._select(query)
        self.answered.append((query, ok))
        return ok, result

    def _select(self, query: str) -> Tuple[bool, Any]:
        match = _SELECT.match(query)
        assert match, f"the driver sent a query this stand-in does not read: {query!r}"
        keyspace, name = match["keyspace"], match["table"]
        table = self.schema.table(keyspace, name)
        if table is None:
            return False, InvalidRequest(f"unconfigured table {name}")
        wanted = match["columns"].strip()
        names = list(table.column_names) if wanted == "*" else [n.strip() for n in wanted.split(",")]
        conditions = []
        for part in re.split(r"\s+AND\s+", match["where"] or "", flags=re.IGNORECASE) if match["where"] else []:
            condition = _CONDITION.match(part)
            assert condition, f"unsupported WHERE clause in {query!r}"
            conditions.append((condition[1], condition[2].replace("''", "'")))
        for column_name in names + [c for c, _ in conditions]:
            if table.column(column_name) is None:
                return False, InvalidRequest(f"Undefined column name {column_name} in table {keyspace}.{name}")
        rows = [r for r in table.rows if all(r[c] == v for c, v in conditions)]
        if self.tamper is not None:
            self.tamper(table.qualified_name, rows)
        columns = [table.column(n) for n in names]
        body = RowsResult(
            metadata=RowsMetadata(columns=tuple(
                ColumnSpec(keyspace=keyspace, table=name, name=c.name, type=c.type) for c in columns
            )),
            rows=tuple(
                tuple(None if row[c.name] is None else c.type.serialize(row[c.name]) for c in columns)
                for row in rows
            ),
        ).encode_body(PROTOCOL_VERSION)
        return True, _driver_decode(body)


def _schema_parser(connection: FakeControlConnection, release_version: str) -> Any:
    """The parser the driver picks for a node of this release_version."""
    params = inspect.signature(driver_metadata.get_schema_parser).parameters
    extra: Dict[str, Any] = {}
    if "metadata_request_timeout" in params:  # scylla-driver appends USING TIMEOUT
        extra["metadata_request_timeout"] = datetime.timedelta(seconds=2)
    return driver_metadata.get_schema_parser(connection, release_version, None, 5.0, **extra)


def _scylla_features() -> Optional[Any]:
    """What scylla-driver makes of a Scylla node's SUPPORTED; None with cassandra-driver."""
    try:
        from cassandra.protocol_features import ProtocolFeatures
    except ImportError:
        return None
    return ProtocolFeatures.parse_from_supported({
        "CQL_VERSION": ["3.3.1"], "COMPRESSION": ["lz4", "snappy"],
        "SCYLLA_SHARD": ["0"], "SCYLLA_NR_SHARDS": ["2"],
        "SCYLLA_PARTITIONER": ["org.apache.cassandra.dht.Murmur3Partitioner"],
        "SCYLLA_SHARDING_ALGORITHM": ["biased-token-round-robin"], "SCYLLA_SHARDING_IGNORE_MSB": ["12"],
        "TABLETS_ROUTING_V1": [""], "TABLETS_ROUTING_V2_EXPERIMENTAL": [""],
    })


def build_schema(flavor: str) -> Schema:
    schema = Schema(flavor=flavor)
    schema.add_keyspace("ks", replication={"class": "SimpleStrategy", "replication_factor": "1"})
    schema.add_keyspace("ks_nts", replication={"class": "NetworkTopologyStrategy", "dc1": "3"}, durable_writes=False)
    schema.add_type("ks", "address", {"street": "text", "zip": "int"})
    schema.add_type("ks", "contact", {"name": "text", "home": "frozen<address>", "phones": "list<text>"})
    schema.add_table("ks", "users", columns={
        "id": "uuid", "name": "text", "tags": "set<text>", "scores": "map<text, int>",
        "home": "frozen<address>", "homes": "list<frozen<address>>", "pair": "tuple<int, text>",
        "contact": "frozen<contact>",
    }, partition_key=["id"], options={"comment": "people", "default_time_to_live": 60})
    schema.add_table("ks", "events", columns={
        "device": "uuid", "day": "date", "ts": "timestamp", "seq": "int", "owner": "text", "payload": "blob",
    }, partition_key=["device", "day"], clustering=[("ts", "desc"), "seq"], static=["owner"])
    schema.add_table("ks_nts", "hits", columns={"page": "text", "n": "counter"}, partition_key=["page"])
    return schema


def _all_keyspaces(parser: Any) -> Dict[str, Any]:
    return {keyspace.name: keyspace for keyspace in parser.get_all_keyspaces()}


PARSERS = [
    pytest.param("cassandra", "4.0.11", "SchemaParserV4", id="cassandra-4.0"),
    pytest.param("cassandra", "3.11.16", "SchemaParserV3", id="cassandra-shape-v3-parser"),
    pytest.param("scylla", "3.0.8", "SchemaParserV3", id="scylla"),
]


@pytest.mark.parametrize("flavor, release_version, parser_name", PARSERS)
def test_full_refresh_rebuilds_every_table(
    flavor: str, release_version: str, parser_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = build_schema(flavor)
    connection = FakeControlConnection(schema)
    parser = _schema_parser(connection, release_version)
    assert type(parser).__name__ == parser_name
    with caplog.at_level(logging.WARNING, logger="cassandra"):
        keyspaces = _all_keyspaces(parser)
    assert not [r for r in caplog.records if r.name.startswith("cassandra")], caplog.text
    assert connection.refused() == []  # every table the driver asked for exists

    reads_virtual = parser_name == "SchemaParserV4"
    assert set(keyspaces) == {ks.name for ks in schema.keyspaces.values() if reads_virtual or not ks.virtual}
    for ks in schema.keyspaces.values():
        if ks.virtual and not reads_virtual:
            continue
        meta = keyspaces[ks.name]
        assert meta._exc_info is None and bool(getattr(meta, "virtual", False)) == ks.virtual
        assert set(meta.tables) == set(ks.tables)
        if not ks.virtual:
            assert meta.durable_writes == ks.durable_writes
            assert meta.replication_strategy is not None, ks.name  # the driver knew the strategy
        for table in ks.tables.values():
            table_meta = meta.tables[table.name]
            assert table_meta._exc_info is None, table.qualified_name
            assert not table_meta.is_compact_storage, table.qualified_name
            assert [c.name for c in table_meta.partition_key] == [c.name for c in table.partition_key]
            assert [c.name for c in table_meta.clustering_key] == [c.name for c in table.clustering]
            assert set(table_meta.columns) == set(table.column_names)
            for column in table.columns:
                column_meta = table_meta.columns[column.name]
                assert column_meta.cql_type == column.type_text
                assert column_meta.is_static == (column.kind == "static")
                assert column_meta.is_reversed == (column.clustering_order == "desc")
            table_meta.export_as_string()  # the driver can write CQL for every table


@pytest.mark.parametrize("flavor, release_version, parser_name", PARSERS)
def test_driver_sees_the_user_schema(flavor: str, release_version: str, parser_name: str) -> None:
    schema = build_schema(flavor)
    keyspaces = _all_keyspaces(_schema_parser(FakeControlConnection(schema), release_version))
    ks = keyspaces["ks"]
    assert type(ks.replication_strategy).__name__ == "SimpleStrategy"
    assert ks.replication_strategy.replication_factor == 1
    nts = keyspaces["ks_nts"]
    assert type(nts.replication_strategy).__name__ == "NetworkTopologyStrategy"
    assert "'dc1': '3'" in nts.replication_strategy.export_for_schema() and nts.durable_writes is False
    assert type(keyspaces["system"].replication_strategy).__name__ == "LocalStrategy"

    address, contact = ks.user_types["address"], ks.user_types["contact"]
    assert (list(address.field_names), list(address.field_types)) == (["street", "zip"], ["text", "int"])
    assert list(contact.field_types) == ["text", "frozen<address>", "list<text>"]

    users = ks.tables["users"]
    assert {name: c.cql_type for name, c in users.columns.items()} == {
        "id": "uuid", "name": "text", "tags": "set<text>", "scores": "map<text, int>",
        "home": "frozen<address>", "homes": "list<frozen<address>>",
        "pair": "frozen<tuple<int, text>>", "contact": "frozen<contact>",
    }
    assert users.options["comment"] == "people" and users.options["default_time_to_live"] == 60
    assert dict(users.options["caching"])["keys"] == "ALL"

    events = ks.tables["events"]
    assert [(c.name, c.is_reversed) for c in events.clustering_key] == [("ts", True), ("seq", False)]
    assert events.columns["owner"].is_static
    cql = events.export_as_string()
    assert "PRIMARY KEY ((device, day), ts, seq)" in cql
    assert "CLUSTERING ORDER BY (ts DESC, seq ASC)" in cql
    assert "owner text static" in cql

    assert "n counter" in keyspaces["ks_nts"].tables["hits"].export_as_string()
    exported = ks.export_as_string()  # types first, in dependency order, then tables
    assert exported.index("CREATE TYPE ks.address") < exported.index("CREATE TYPE ks.contact")
    assert "CREATE TABLE ks.users" in exported

    local = keyspaces["system"].tables["local"]
    for name, cql_type in {"tokens": "set<text>", "host_id": "uuid", "rpc_address": "inet",
                           "schema_version": "uuid", "truncated_at": "map<uuid, blob>"}.items():
        assert local.columns[name].cql_type == cql_type
    assert [c.name for c in local.partition_key] == ["key"]


@pytest.mark.parametrize("flavor, release_version", [("cassandra", "4.0.11"), ("scylla", "3.0.8")])
def test_the_driver_notices_broken_rows(flavor: str, release_version: str) -> None:
    """Negative control: the same path turns a wrong flags or clustering_order
    into wrong metadata, so the passing tests above do mean something."""

    def tamper(table: str, rows: List[Dict[str, Any]]) -> None:
        for row in rows:
            if table == "system_schema.tables" and row["table_name"] == "users":
                row["flags"] = None  # no 'compound': the driver sees a COMPACT STORAGE table
            if table == "system_schema.columns" and row["column_name"] == "ts":
                row["clustering_order"] = "asc"

    keyspaces = _all_keyspaces(_schema_parser(FakeControlConnection(build_schema(flavor), tamper=tamper), release_version))
    assert keyspaces["ks"].tables["users"].is_compact_storage
    assert not keyspaces["ks"].tables["events"].columns["ts"].is_reversed
    good = _all_keyspaces(_schema_parser(FakeControlConnection(build_schema(flavor)), release_version))
    assert not good["ks"].tables["users"].is_compact_storage
    assert good["ks"].tables["events"].columns["ts"].is_reversed


@pytest.mark.parametrize("flavor, release_version", [("cassandra", "4.0.11"), ("scylla", "3.0.8")])
def test_single_object_refreshes(flavor: str, release_version: str) -> None:
    """What the driver reads after a SCHEMA_CHANGE event: one keyspace, table or type."""
    schema = build_schema(flavor)
    connection = FakeControlConnection(schema)
    parser = _schema_parser(connection, release_version)
    keyspaces = _all_keyspaces(parser)

    events = parser.get_table(keyspaces, "ks", "events")
    assert [c.name for c in events.primary_key] == ["device", "day", "ts", "seq"]
    assert events.columns["ts"].is_reversed and events._exc_info is None
    assert parser.get_table(keyspaces, "ks", "nowhere") is None

    keyspace = parser.get_keyspace(keyspaces, "ks_nts")
    assert keyspace.name == "ks_nts" and keyspace.durable_writes is False
    address = parser.get_type(keyspaces, "ks", "address")
    assert list(address.field_names) == ["street", "zip"]
    assert set(parser.get_types_map(keyspaces, "ks")) == {"address", "contact"}
    assert any("WHERE keyspace_name = 'ks' AND table_name = 'events'" in q for q, _ in connection.answered)


def test_a_scylla_connection_reads_scylla_tables() -> None:
    """With a Scylla node's SUPPORTED, a driver that knows
    system_schema.scylla_keyspaces reads it; every query finds its table."""
    schema = build_schema("scylla")
    features = _scylla_features()
    connection = FakeControlConnection(schema, features=features)
    parser = _schema_parser(connection, "3.0.8")
    keyspaces = _all_keyspaces(parser)
    assert connection.refused() == []
    tables_read = {_SELECT.match(q)["table"] for q, _ in connection.answered if "system_schema" in q}
    if _DRIVER_HAS_SCYLLA_KEYSPACES:
        assert features is not None
        assert "scylla_keyspaces" in tables_read
        consistency = getattr(keyspaces["ks"], "_consistency_mode", None)
        assert consistency is None or consistency.value == "eventual"
    # Whether triggers are read depends on the driver release; either way the table is there.
    assert {"keyspaces", "tables", "columns", "types"} <= tables_read


def _columns_named(query: str) -> Tuple[str, str, List[str]]:
    match = _SELECT.match(query)
    assert match, query
    wanted = match["columns"].strip()
    return match["keyspace"], match["table"], [] if wanted == "*" else [c.strip() for c in wanted.split(",")]


def _control_connection_queries() -> List[str]:
    queries = []
    for attribute in dir(ControlConnection):
        value = getattr(ControlConnection, attribute)
        if attribute.startswith("_SELECT") and isinstance(value, str) and value.startswith("SELECT "):
            queries.append(value.format(nt_col_name="rpc_address") if "{nt_col_name}" in value else value)
    return queries


@pytest.mark.parametrize("flavor", ["cassandra", "scylla"])
def test_control_connection_queries_find_their_columns(flavor: str) -> None:
    """Every column the driver's ControlConnection selects exists, with the
    type a real node gives it; peers_v2 is refused on Scylla, as a real Scylla
    node refuses it (the driver then falls back to system.peers)."""
    schema = Schema(flavor=flavor)
    queries = _control_connection_queries()
    assert any("system.local" in q for q in queries) and any("system.peers" in q for q in queries)
    for query in queries:
        keyspace, name, columns = _columns_named(query)
        table = schema.table(keyspace, name)
        if flavor == "scylla" and name == "peers_v2":
            assert table is None
            ok, error = FakeControlConnection(schema)._select(query)
            assert not ok and isinstance(error, InvalidRequest)
            continue
        assert table is not None, query
        missing = [c for c in columns if table.column(c) is None]
        assert missing == [], f"{query}: no column {missing} in {table.qualified_name}"
    peers = schema.lookup("system", "peers")
    assert (peers.column("peer").type_text, peers.column("tokens").type_text) == ("inet", "set<text>")


def test_client_routes_query_finds_its_columns() -> None:
    """scylla-driver reads system.client_routes for client routes (NLB);
    the Scylla flavor has the table. cassandra-driver has no such query."""
    try:
        import cassandra.client_routes as client_routes
    except ImportError:
        assert not _DRIVER_HAS_SCYLLA_KEYSPACES  # only cassandra-driver lacks it
        return
    source = inspect.getsource(client_routes)
    queries = re.findall(r"SELECT [\w, ]+? FROM system\.client_routes", source.replace('"\n', "").replace('  "', ""))
    assert queries, "no client_routes SELECT found in cassandra.client_routes"
    schema = Schema(flavor="scylla")
    for query in queries:
        keyspace, name, columns = _columns_named(query)
        table = schema.lookup(keyspace, name)
        assert [c for c in columns if table.column(c) is None] == [], query
