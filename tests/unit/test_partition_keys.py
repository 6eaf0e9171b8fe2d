# PREPARED results name the bind markers of the partition key (protocol v4+),
# so a token-aware driver can route: every key column bound by its own
# marker, in key order, else none (as Cassandra answers).
from __future__ import annotations

import pytest

from fakecql import cql
from fakecql.node import Node
from fakecql.partition_keys import partition_key_indexes
from fakecql.protocol.messages import Prepare, PreparedResult, Startup
from fakecql.schema import Schema


@pytest.fixture
def schema() -> Schema:
    s = Schema()
    s.add_keyspace("app")
    s.add_table("app", "kv", {"k": "int", "v": "text"}, partition_key="k")
    s.add_table("app", "events", {"day": "text", "shard": "int", "at": "timestamp", "what": "text"},
                partition_key=["day", "shard"], clustering="at")
    return s


@pytest.mark.parametrize("query, indexes", [
    ("SELECT v FROM app.kv WHERE k = ?", (0,)),
    ("SELECT v FROM app.kv WHERE k = :key", (0,)),
    ("SELECT v FROM app.kv WHERE k = 3", ()),  # a literal: nothing to route by
    ("SELECT v FROM app.kv WHERE k IN (?, ?)", ()),
    ("SELECT v FROM app.kv", ()),
    ("INSERT INTO app.kv (v, k) VALUES (?, ?)", (1,)),
    ("INSERT INTO app.kv (k, v) VALUES (5, ?)", ()),
    ("SELECT what FROM app.events WHERE shard = ? AND day = ? AND at = ?", (1, 0)),  # key order: day, shard
    ("SELECT what FROM app.events WHERE day = ? AND at = ?", ()),  # shard missing
    ("INSERT INTO app.events (at, shard, what, day) VALUES (?, ?, ?, ?)", (3, 1)),
])
def test_partition_key_indexes(schema: Schema, query: str, indexes: tuple) -> None:
    statement = cql.parse_statement(cql.normalize_query(query))
    table = schema.table(statement.keyspace, statement.table)  # type: ignore[union-attr]
    assert partition_key_indexes(statement, table) == indexes


def test_no_table_no_indexes() -> None:
    statement = cql.parse_statement("SELECT v FROM app.kv WHERE k = ?")
    assert partition_key_indexes(statement, None) == ()
    assert partition_key_indexes(cql.parse_statement("USE app"), None) == ()


@pytest.mark.parametrize("version, indexes", [(3, ()), (4, (0,)), (5, (0,))])
def test_prepared_results_carry_them_from_v4(schema: Schema, version: int, indexes: tuple) -> None:
    node = Node(schema=schema)
    session = node.session(1)
    session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), version, 0)
    answer = session.handle(Prepare(query="SELECT v FROM app.kv WHERE k = ?"), version, 1)
    assert isinstance(answer, PreparedResult)
    assert answer.bind_metadata.pk_indexes == indexes
    assert answer.encode_body(version)  # and it goes on the wire in that version
