# The small CQL reader (fakecql/cql.py), table-driven: normalize_query on the
# suffixes and whitespace drivers add, parse_statement on the exact queries
# python drivers send while they connect (cassandra/cluster.py
# ControlConnection, cassandra/metadata.py, cassandra/client_routes.py) and on
# the literals and markers tests write, and what comes back as Unrecognized,
# with its verb and bind marker count.
#
# Rules: every row states the whole expected value (a Statement compares
# field by field), never a fragment of it.
from __future__ import annotations

import pytest

from fakecql.cql import (
    Condition,
    Insert,
    Literal,
    Marker,
    Select,
    Selector,
    Unrecognized,
    Use,
    count_markers,
    normalize_query,
    parse_statement,
)


def rows(table):
    """pytest.param rows from (id, *values) tuples."""
    return [pytest.param(*row[1:], id=row[0]) for row in table]


def star():
    return (Selector("*"),)


def cols(*names):
    return tuple(Selector(n) for n in names)


def eq(column, term):
    return Condition(column, "=", (term,))


def s(text):
    return Literal("string", text)


def num(text):
    return Literal("number", text)


# ---- normalize_query ---------------------------------------------------------

NORMALIZE = [
    ("plain", "SELECT * FROM t", "SELECT * FROM t"),
    ("whitespace-runs", "  SELECT\t*\n  FROM   t  ", "SELECT * FROM t"),
    ("semicolon", "SELECT * FROM t;", "SELECT * FROM t"),
    ("semicolons-and-spaces", "SELECT * FROM t ; ;  ", "SELECT * FROM t"),
    ("timeout-ms", "SELECT * FROM system.local WHERE key='local' USING TIMEOUT 2000ms",
     "SELECT * FROM system.local WHERE key='local'"),
    ("timeout-s", "SELECT * FROM t USING TIMEOUT 5s", "SELECT * FROM t"),
    ("timeout-m", "SELECT * FROM t USING TIMEOUT 1m", "SELECT * FROM t"),
    ("timeout-h", "SELECT * FROM t USING TIMEOUT 2h", "SELECT * FROM t"),
    ("timeout-d", "SELECT * FROM t USING TIMEOUT 1d", "SELECT * FROM t"),
    ("timeout-us", "SELECT * FROM t USING TIMEOUT 500us", "SELECT * FROM t"),
    ("timeout-micro-sign", "SELECT * FROM t USING TIMEOUT 500\u00b5s", "SELECT * FROM t"),
    ("timeout-ns", "SELECT * FROM t USING TIMEOUT 100ns", "SELECT * FROM t"),
    ("timeout-compound", "SELECT * FROM t USING TIMEOUT 1h30m", "SELECT * FROM t"),
    ("timeout-no-unit", "SELECT * FROM t USING TIMEOUT 2000", "SELECT * FROM t"),
    ("timeout-lowercase", "select * from t using timeout 2000MS", "select * from t"),
    ("timeout-then-semicolon", "SELECT * FROM t USING TIMEOUT 2000ms;", "SELECT * FROM t"),
    ("timeout-newline", "SELECT * FROM t\nUSING   TIMEOUT\t2000ms", "SELECT * FROM t"),
    ("bypass-cache", "SELECT * FROM t BYPASS CACHE", "SELECT * FROM t"),
    ("allow-filtering", "SELECT * FROM t WHERE v = 1 ALLOW FILTERING", "SELECT * FROM t WHERE v = 1"),
    ("all-suffixes", "SELECT * FROM t ALLOW FILTERING BYPASS CACHE USING TIMEOUT 10s;", "SELECT * FROM t"),
    ("timeout-without-duration-kept", "SELECT * FROM t USING TIMEOUT", "SELECT * FROM t USING TIMEOUT"),
    ("timeout-bad-unit-kept", "SELECT * FROM t USING TIMEOUT 5x", "SELECT * FROM t USING TIMEOUT 5x"),
    ("timeout-in-the-middle-kept", "UPDATE t USING TIMEOUT 5s SET v = 1 WHERE k = 1",
     "UPDATE t USING TIMEOUT 5s SET v = 1 WHERE k = 1"),
    ("string-spaces-kept", "SELECT * FROM t WHERE k = 'a  b\tc'", "SELECT * FROM t WHERE k = 'a  b\tc'"),
    ("string-escape-then-spaces", "INSERT INTO t (k) VALUES ('it''s  ok')  ;",
     "INSERT INTO t (k) VALUES ('it''s  ok')"),
    ("quoted-name-spaces-kept", 'SELECT "a  b"   FROM t', 'SELECT "a  b" FROM t'),
    ("semicolon-inside-string-kept", "SELECT * FROM t WHERE k = 'x;'", "SELECT * FROM t WHERE k = 'x;'"),
    ("suffix-inside-string-kept", "SELECT * FROM t WHERE k = 'ALLOW FILTERING'",
     "SELECT * FROM t WHERE k = 'ALLOW FILTERING'"),
    ("empty", "   ", ""),
]


@pytest.mark.parametrize("text, expected", rows(NORMALIZE))
def test_normalize_query(text, expected):
    assert normalize_query(text) == expected


# ---- parse_statement: what drivers send while they connect -------------------

LOCAL_COLUMNS = (
    "broadcast_address", "cluster_name", "data_center", "host_id", "listen_address",
    "partitioner", "rack", "release_version", "rpc_address", "schema_version", "tokens",
)
SELECT_LOCAL = Select("system", "local", cols(*LOCAL_COLUMNS), (eq("key", s("local")),))
ROUTES_COLUMNS = cols("connection_id", "host_id", "address", "port", "tls_port")

DRIVER_QUERIES = [
    ("peers_v2", "SELECT * FROM system.peers_v2", Select("system", "peers_v2", star())),
    ("peers",
     "SELECT peer, data_center, host_id, rack, release_version, rpc_address, schema_version, tokens "
     "FROM system.peers",
     Select("system", "peers", cols("peer", "data_center", "host_id", "rack", "release_version",
                                    "rpc_address", "schema_version", "tokens"))),
    ("local",
     "SELECT broadcast_address, cluster_name, data_center, host_id, listen_address, partitioner, "
     "rack, release_version, rpc_address, schema_version, tokens FROM system.local WHERE key='local'",
     SELECT_LOCAL),
    ("local-using-timeout",
     "SELECT broadcast_address, cluster_name, data_center, host_id, listen_address, partitioner, "
     "rack, release_version, rpc_address, schema_version, tokens FROM system.local WHERE key='local'"
     " USING TIMEOUT 2000ms",
     SELECT_LOCAL),
    ("local-rpc-address", "SELECT rpc_address FROM system.local WHERE key='local'",
     Select("system", "local", cols("rpc_address"), (eq("key", s("local")),))),
    ("schema-local", "SELECT schema_version FROM system.local WHERE key='local'",
     Select("system", "local", cols("schema_version"), (eq("key", s("local")),))),
    ("schema-peers", "SELECT peer, host_id, rpc_address, schema_version FROM system.peers",
     Select("system", "peers", cols("peer", "host_id", "rpc_address", "schema_version"))),
    ("schema-keyspaces", "SELECT * FROM system_schema.keyspaces", Select("system_schema", "keyspaces", star())),
    ("schema-tables", "SELECT * FROM system_schema.tables", Select("system_schema", "tables", star())),
    ("schema-columns", "SELECT * FROM system_schema.columns", Select("system_schema", "columns", star())),
    ("virtual-columns-lowercase-from", "SELECT * from system_virtual_schema.columns",
     Select("system_virtual_schema", "columns", star())),
    ("scylla-keyspaces", "SELECT keyspace_name, consistency FROM system_schema.scylla_keyspaces",
     Select("system_schema", "scylla_keyspaces", cols("keyspace_name", "consistency"))),
    ("refresh-one-table",
     "SELECT * FROM system_schema.tables WHERE keyspace_name = 'ks' AND table_name = 'users'",
     Select("system_schema", "tables", star(), (eq("keyspace_name", s("ks")), eq("table_name", s("users"))))),
    ("client-routes",
     "SELECT connection_id, host_id, address, port, tls_port FROM system.client_routes "
     "WHERE connection_id IN (?, ?)",
     Select("system", "client_routes", ROUTES_COLUMNS,
            (Condition("connection_id", "IN", (Marker(0), Marker(1))),), markers=2)),
    ("client-routes-pairs",
     "SELECT connection_id, host_id, address, port, tls_port FROM system.client_routes "
     "WHERE connection_id IN (?, ?) AND host_id IN (?)",
     Select("system", "client_routes", ROUTES_COLUMNS,
            (Condition("connection_id", "IN", (Marker(0), Marker(1))),
             Condition("host_id", "IN", (Marker(2),))), markers=3)),
    ("use-quoted", 'USE "QuotedKs"', Use("QuotedKs")),
    ("use-unquoted-lowercased", "USE MyKs;", Use("myks")),
    ("use-lowercase-verb", "use ks", Use("ks")),
]


@pytest.mark.parametrize("text, expected", rows(DRIVER_QUERIES))
def test_parse_driver_queries(text, expected):
    assert parse_statement(text) == expected


# ---- parse_statement: selections, names, literals, markers -------------------

U = "5a8bd1c6-22a4-4b7c-9f43-0d7c0ab1e0a2"

STATEMENTS = [
    ("count-star", "SELECT count(*) FROM t", Select(None, "t", (Selector("count(*)"),))),
    ("count-one", "SELECT COUNT(1) FROM t", Select(None, "t", (Selector("count(*)"),))),
    ("count-alias", "SELECT count(*) AS n FROM ks.t", Select("ks", "t", (Selector("count(*)", "n"),))),
    ("aliases", "SELECT k AS key, v AS \"Value\" FROM t",
     Select(None, "t", (Selector("k", "key"), Selector("v", "Value")))),
    ("star-and-column", "SELECT *, k FROM t", Select(None, "t", (Selector("*"), Selector("k")))),
    ("unquoted-names-lowercased", "SELECT MyCol FROM MyKs.MyTable", Select("myks", "mytable", cols("mycol"))),
    ("quoted-names-kept", 'SELECT "MyCol" FROM "MyKs"."MyTable"', Select("MyKs", "MyTable", cols("MyCol"))),
    ("quoted-name-with-quote", 'SELECT "a""b" FROM t', Select(None, "t", cols('a"b'))),
    ("quoted-keyword-is-a-name", 'SELECT "from" FROM t', Select(None, "t", cols("from"))),
    ("name-starting-like-nan", "SELECT NaNa, Infinity_x FROM t", Select(None, "t", cols("nana", "infinity_x"))),
    ("limit-literal", "SELECT * FROM t LIMIT 10", Select(None, "t", star(), limit=num("10"))),
    ("limit-marker", "SELECT * FROM t WHERE k = ? LIMIT ?",
     Select(None, "t", star(), (eq("k", Marker(0)),), limit=Marker(1), markers=2)),
    ("limit-then-suffixes", "SELECT * FROM t LIMIT 1 ALLOW FILTERING USING TIMEOUT 1s;",
     Select(None, "t", star(), limit=num("1"))),
    ("string-escape", "SELECT * FROM t WHERE k = 'it''s'", Select(None, "t", star(), (eq("k", s("it's")),))),
    ("string-empty", "SELECT * FROM t WHERE k = ''", Select(None, "t", star(), (eq("k", s("")),))),
    ("string-with-marker-char", "SELECT * FROM t WHERE k = 'why?'",
     Select(None, "t", star(), (eq("k", s("why?")),))),
    ("string-spaces", "SELECT * FROM t WHERE k = '  two  spaces '",
     Select(None, "t", star(), (eq("k", s("  two  spaces ")),))),
    ("uuid", f"SELECT * FROM t WHERE id = {U}", Select(None, "t", star(), (eq("id", Literal("uuid", U)),))),
    ("uuid-uppercase", f"SELECT * FROM t WHERE id = {U.upper()}",
     Select(None, "t", star(), (eq("id", Literal("uuid", U.upper())),))),
    ("blob", "SELECT * FROM t WHERE b = 0xCAFE", Select(None, "t", star(), (eq("b", Literal("blob", "0xCAFE")),))),
    ("blob-empty", "SELECT * FROM t WHERE b = 0x", Select(None, "t", star(), (eq("b", Literal("blob", "0x")),))),
    ("negative-int", "SELECT * FROM t WHERE k = -42", Select(None, "t", star(), (eq("k", num("-42")),))),
    ("negative-no-space", "SELECT * FROM t WHERE k=-1", Select(None, "t", star(), (eq("k", num("-1")),))),
    ("float", "SELECT * FROM t WHERE x = 1.5e3", Select(None, "t", star(), (eq("x", num("1.5e3")),))),
    ("negative-float", "SELECT * FROM t WHERE x = -0.25", Select(None, "t", star(), (eq("x", num("-0.25")),))),
    ("nan", "SELECT * FROM t WHERE x = NaN", Select(None, "t", star(), (eq("x", num("NaN")),))),
    ("negative-infinity-lowercase", "SELECT * FROM t WHERE x = -infinity",
     Select(None, "t", star(), (eq("x", num("-infinity")),))),
    ("bool", "SELECT * FROM t WHERE b = TRUE", Select(None, "t", star(), (eq("b", Literal("bool", "true")),))),
    ("null", "SELECT * FROM t WHERE b = null", Select(None, "t", star(), (eq("b", Literal("null", "null")),))),
    ("in-literals", "SELECT * FROM t WHERE k IN (1, 2, 3)",
     Select(None, "t", star(), (Condition("k", "IN", (num("1"), num("2"), num("3"))),))),
    ("named-markers", "SELECT * FROM t WHERE k = :Key AND c = :c",
     Select(None, "t", star(), (eq("k", Marker(0, "key")), eq("c", Marker(1, "c"))), markers=2)),
    ("insert-literals",
     f"INSERT INTO ks.t (k, v, u, b, f, n) VALUES (-1, 'a''b', {U}, 0x00ff, false, null)",
     Insert("ks", "t", ("k", "v", "u", "b", "f", "n"),
            (num("-1"), s("a'b"), Literal("uuid", U), Literal("blob", "0x00ff"), Literal("bool", "false"),
             Literal("null", "null")))),
    ("insert-markers", "INSERT INTO t (k, v) VALUES (?, ?)",
     Insert(None, "t", ("k", "v"), (Marker(0), Marker(1)), markers=2)),
    ("insert-mixed", "insert into t (k, v, w) values (1, :v, ?);",
     Insert(None, "t", ("k", "v", "w"), (num("1"), Marker(0, "v"), Marker(1)), markers=2)),
    ("insert-quoted", 'INSERT INTO "Ks"."T" ("K") VALUES (1) USING TIMEOUT 5s',
     Insert("Ks", "T", ("K",), (num("1"),))),
]


@pytest.mark.parametrize("text, expected", rows(STATEMENTS))
def test_parse_statement(text, expected):
    assert parse_statement(text) == expected


def test_selector_output_names():
    assert [sel.output_name for sel in (Selector("k"), Selector("count(*)"), Selector("k", "x"),
                                        Selector("count(*)", "n"))] == ["k", "count", "x", "n"]


# ---- Unrecognized: verb and marker count -----------------------------------

UNRECOGNIZED = [
    ("update", "UPDATE ks.t SET v = ? WHERE k = ?", "UPDATE", 2),
    ("update-lowercase", "update t set v = 'why?' where k = ?", "UPDATE", 1),
    ("delete-named", "DELETE FROM t WHERE k = :k", "DELETE", 1),
    ("create-table", "CREATE TABLE ks.t (k int PRIMARY KEY, v text)", "CREATE", 0),
    ("create-keyspace",
     "CREATE KEYSPACE ks WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}", "CREATE", 0),
    ("drop", "DROP TABLE ks.t", "DROP", 0),
    ("truncate", "TRUNCATE t", "TRUNCATE", 0),
    ("batch-text", "BEGIN BATCH INSERT INTO t (k) VALUES (?); APPLY BATCH", "BEGIN", 1),
    ("function-in-selection", "SELECT writetime(v) FROM t WHERE k = ?", "SELECT", 1),
    ("token-in-selection", "SELECT token(k) FROM t", "SELECT", 0),
    ("token-range", "SELECT * FROM t WHERE token(k) > ? AND token(k) <= ?", "SELECT", 2),
    ("range-condition", "SELECT * FROM t WHERE k = ? AND c > ?", "SELECT", 2),
    ("count-of-column", "SELECT count(v) FROM t", "SELECT", 0),
    ("select-json", "SELECT JSON * FROM t", "SELECT", 0),
    ("select-distinct", "SELECT DISTINCT k FROM t", "SELECT", 0),
    ("in-single-marker", "SELECT * FROM t WHERE k IN ?", "SELECT", 1),
    ("order-by", "SELECT * FROM t WHERE k = ? ORDER BY c DESC", "SELECT", 1),
    ("per-partition-limit", "SELECT * FROM t PER PARTITION LIMIT 1", "SELECT", 0),
    ("select-no-from", "SELECT now()", "SELECT", 0),
    ("unterminated-string", "SELECT * FROM t WHERE k = 'oops ?", "SELECT", 0),
    ("insert-if-not-exists", "INSERT INTO t (k, v) VALUES (?, ?) IF NOT EXISTS", "INSERT", 2),
    ("insert-using-ttl", "INSERT INTO t (k, v) VALUES (?, ?) USING TTL ?", "INSERT", 3),
    ("insert-count-mismatch", "INSERT INTO t (k, v) VALUES (?)", "INSERT", 1),
    ("insert-json", "INSERT INTO t JSON '{\"k\": 1}'", "INSERT", 0),
    ("use-two-names", "USE a b", "USE", 0),
    ("empty", "", "", 0),
    ("only-semicolon", " ; ", "", 0),
]


@pytest.mark.parametrize("text, verb, markers", rows(UNRECOGNIZED))
def test_unrecognized(text, verb, markers):
    statement = parse_statement(text)
    assert isinstance(statement, Unrecognized)
    assert (statement.verb, statement.markers) == (verb, markers)
    assert statement.reason  # says why, for the incident the node logs


REASONS = [
    ("update", "UPDATE t SET v = 1", "UPDATE is not interpreted by fakecql"),
    ("empty", "", "an empty statement is not interpreted by fakecql"),
    ("function", "SELECT ttl(v) FROM t", "function call ttl(...) in the selection"),
    ("range", "SELECT * FROM t WHERE k > 1", "a WHERE condition on k other than = or IN"),
    ("trailing", "SELECT * FROM t LIMIT 1 garbage", "unexpected 'garbage' after the statement"),
    ("if-not-exists", "INSERT INTO t (k) VALUES (1) IF NOT EXISTS", "INSERT ... IF NOT EXISTS"),
    ("bad-char", "SELECT * FROM t WHERE k = 'x", "unexpected character \"'x\" at 26"),
]


@pytest.mark.parametrize("text, reason", rows(REASONS))
def test_unrecognized_reason(text, reason):
    assert parse_statement(text) == Unrecognized(text.split(" ")[0].upper(), 0, reason)


COUNTS = [
    ("none", "SELECT * FROM t", 0),
    ("positional", "UPDATE t SET a = ?, b = ? WHERE k = ?", 3),
    ("named", "UPDATE t SET a = :a WHERE k = :k", 2),
    ("in-string-ignored", "UPDATE t SET a = '?:x' WHERE k = ?", 1),
    ("in-quoted-name-ignored", 'SELECT "?" FROM t WHERE k = ?', 1),
    ("untokenizable", "SELECT * FROM t WHERE k = 'open ?", 0),
]


@pytest.mark.parametrize("text, expected", rows(COUNTS))
def test_count_markers(text, expected):
    assert count_markers(text) == expected
