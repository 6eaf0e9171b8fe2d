# The small CQL reader (fakecql/cql.py), table-driven: normalize_query on the
# suffixes and whitespace drivers add, parse_statement on the exact queries
# python drivers send while they connect (cassandra/cluster.py
# ControlConnection, cassandra/metadata.py, cassandra/client_routes.py) and on
# the literals and markers tests write, and what comes back as Unrecognized,
# with its verb and bind marker count; then parse_query's cache and the
# SizedCache behind it (fakecql/caches.py). How long these take is
# tests/unit/test_linear_parsers.py's business.
#
# Rules: every row states the whole expected value (a Statement compares
# field by field), never a fragment of it.
from __future__ import annotations

import threading

import pytest


from fakecql import cql
from fakecql.caches import SizedCache, text_bytes
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
    parse_query,
    parse_statement,
    set_parse_cache_bytes,
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
    ("timeout-space-before-unit", "SELECT * FROM t USING TIMEOUT 5 ms", "SELECT * FROM t"),
    ("timeout-space-before-compound", "SELECT * FROM t USING TIMEOUT 5 1h30m", "SELECT * FROM t"),
    ("timeout-ending-in-digits-kept", "SELECT * FROM t USING TIMEOUT 1h30", "SELECT * FROM t USING TIMEOUT 1h30"),
    ("timeout-split-compound-kept", "SELECT * FROM t USING TIMEOUT 1h 30m", "SELECT * FROM t USING TIMEOUT 1h 30m"),
    ("timeouts-repeated", "SELECT * FROM t USING TIMEOUT 1s USING TIMEOUT 2ms ; ;", "SELECT * FROM t"),
    ("suffixes-in-any-order", "SELECT * FROM t; BYPASS CACHE ; ALLOW FILTERING USING TIMEOUT 1mo;",
     "SELECT * FROM t"),
    ("suffix-needs-a-space-before", "SELECT * FROM t;USING TIMEOUT 5", "SELECT * FROM t;USING TIMEOUT 5"),
    ("suffix-alone-kept", "ALLOW FILTERING", "ALLOW FILTERING"),
    ("only-suffix-words-after-a-string", "SELECT * FROM t WHERE k = 'x' ALLOW FILTERING",
     "SELECT * FROM t WHERE k = 'x'"),
    ("unicode-whitespace", "SELECT\u00a0*\u2003FROM\u3000t", "SELECT * FROM t"),
    ("nul-beside-strings", "SELECT  '\0  a'  \0  'b  '", "SELECT '\0  a' \0 'b  '"),
    ("unterminated-string-kept-to-the-end", "SELECT * FROM t WHERE k = 'a  b  c",
     "SELECT * FROM t WHERE k = 'a  b  c"),
    ("unterminated-name-kept-to-the-end", 'SELECT "a  b', 'SELECT "a  b'),
    ("suffix-after-unterminated-string", "SELECT 'a  ALLOW FILTERING", "SELECT 'a"),
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
    ("unterminated-after-escape", "SELECT * FROM t WHERE k = 'a''", "unexpected character \"'a''\" at 26"),
    ("bad-char-after-the-statement", "SELECT * FROM t WHERE k = 1 @", "unexpected character '@' at 28"),
    ("lone-bang", "SELECT * FROM t WHERE k ! 1", "unexpected character '! 1' at 24"),
    ("quoted-name-shaped-like-a-uuid", 'SELECT * FROM t WHERE k = "abcdefg-abcd-abcd-abcd-abcdefghijk"',
     'expected a value, got \'"abcdefg-abcd-abcd-abcd-abcdefghijk"\''),
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
    # An unterminated quote is a syntax error for a real node: the markers
    # before it count, what follows it is inside it.
    ("before-unterminated-string", "UPDATE t SET a = ? WHERE k = 'open ? :x", 1),
    ("before-unterminated-name", 'UPDATE t SET a = :a WHERE "open = ?', 1),
    ("escaped-quote-in-string", "UPDATE t SET a = 'it''s ?' WHERE k = ?", 1),
    ("dollar-string-ignored", "UPDATE t SET a = $$ it's ? $ $$ WHERE k = ?", 1),
    ("unterminated-dollar-string", "UPDATE t SET a = ? WHERE k = $$ ?", 1),
    ("characters-no-token-starts", "UPDATE t SET a = ? @ b = :b", 2),
    ("colon-alone-is-no-marker", "UPDATE t SET m = {'a': ?}", 1),
    ("colon-before-a-name", "UPDATE t SET m = {'a':b}", 1),
    ("named-after-name", "SELECT * FROM t WHERE k=:k AND c=:c", 2),
]


@pytest.mark.parametrize("text, expected", rows(COUNTS))
def test_count_markers(text, expected):
    assert count_markers(text) == expected


def test_unrecognized_counts_markers_before_an_unterminated_quote():
    assert parse_statement("UPDATE t SET a = ? WHERE k = 'open") == Unrecognized(
        "UPDATE", 1, "unexpected character \"'open\" at 29"
    )


# ---- parse_query and its cache -----------------------------------------------


@pytest.fixture
def parse_cache():
    """cql.parse_cache emptied, and its bound back to what it was after the test."""
    bound = cql.parse_cache.max_bytes
    cql.parse_cache.clear()
    yield cql.parse_cache
    set_parse_cache_bytes(bound)
    cql.parse_cache.clear()


def test_parse_query_normalizes_then_parses(parse_cache):
    text = "SELECT  k FROM t WHERE k = ?  USING TIMEOUT 1s ;"
    assert parse_query(text) == ("SELECT k FROM t WHERE k = ?",
                                 Select(None, "t", cols("k"), (eq("k", Marker(0)),), markers=1))


def test_parse_query_answers_a_repeated_text_from_its_cache(parse_cache):
    first = parse_query("SELECT * FROM t")
    assert parse_query("SELECT * FROM t") is first
    assert len(parse_cache) == 1


def test_parse_query_does_not_keep_long_texts(parse_cache):
    text = "SELECT * FROM t WHERE k = '" + "a" * (64 * 1024) + "'"
    assert parse_query(text) == parse_query(text)
    assert len(parse_cache) == 0


def test_parse_cache_is_bounded_in_bytes(parse_cache):
    set_parse_cache_bytes(4096)
    for i in range(100):
        parse_query(f"SELECT * FROM t WHERE k = {i}")
    assert 0 < len(parse_cache) < 100
    assert parse_cache.bytes_held <= 4096
    assert parse_cache.evictions == 100 - len(parse_cache)
    assert "SELECT * FROM t WHERE k = 99" in parse_cache  # the newest stay


def test_parse_cache_of_zero_bytes_keeps_nothing(parse_cache):
    set_parse_cache_bytes(0)
    assert parse_query("SELECT * FROM t") == ("SELECT * FROM t", Select(None, "t", star()))
    assert len(parse_cache) == 0


def test_parse_cache_counts_what_a_statement_holds(parse_cache):
    """A long IN list costs more as objects than as text."""
    short, listed = "SELECT * FROM t WHERE k = 1", "SELECT * FROM t WHERE k IN (" + ", ".join("1" * 100) + ")"
    parse_query(short)
    short_cost = parse_cache.bytes_held
    parse_query(listed)
    assert parse_cache.bytes_held - short_cost > 2 * len(listed) + 100 * 32


def test_set_parse_cache_bytes_evicts_at_once(parse_cache):
    for i in range(10):
        parse_query(f"SELECT * FROM t WHERE k = {i}")
    set_parse_cache_bytes(1)
    assert len(parse_cache) == 0


# ---- SizedCache ----------------------------------------------------------------


def test_sized_cache_keeps_and_returns():
    cache = SizedCache(1000, entry_overhead=0)
    assert cache.put("a", "xyz")
    assert (cache.get("a"), cache.get("b"), cache.get("b", "default")) == ("xyz", None, "default")
    assert (len(cache), cache.bytes_held, "a" in cache, "b" in cache) == (1, 3, True, False)


def test_sized_cache_evicts_the_least_recently_used_past_its_bytes():
    cache = SizedCache(30, entry_overhead=0)
    for key in "abc":
        cache.put(key, "x" * 10)
    cache.get("a")  # now b is the least recently used
    cache.put("d", "x" * 10)
    assert (sorted(k for k in "abcd" if k in cache), cache.bytes_held, cache.evictions) == (["a", "c", "d"], 30, 1)


def test_sized_cache_counts_the_overhead_of_each_entry():
    cache = SizedCache(1000, entry_overhead=100)
    for i in range(20):
        cache.put(i, "")
    assert (len(cache), cache.bytes_held, cache.evictions) == (10, 1000, 10)


def test_sized_cache_bounds_the_entry_count_too():
    cache = SizedCache(10**6, max_entries=3)
    for i in range(5):
        cache.put(i, "v")
    assert ([i for i in range(5) if i in cache], cache.evictions) == ([2, 3, 4], 2)


def test_sized_cache_takes_the_size_given_or_measures_the_value():
    cache = SizedCache(10**6, size=lambda value: value["n"], entry_overhead=1)
    cache.put("measured", {"n": 40})
    cache.put("given", {"n": 40}, size=7)
    assert cache.bytes_held == 41 + 8


def test_sized_cache_refuses_an_entry_over_its_whole_budget_and_drops_the_older_one():
    cache = SizedCache(100, entry_overhead=0)
    cache.put("a", "old")
    cache.put("b", "kept")
    assert not cache.put("a", "x" * 101)
    assert ("a" in cache, cache.get("b"), cache.bytes_held, cache.evictions) == (False, "kept", 4, 0)


def test_sized_cache_replacing_an_entry_recounts_its_bytes():
    cache = SizedCache(100, entry_overhead=0)
    cache.put("a", "x" * 60)
    cache.put("a", "x" * 70)
    assert (cache.get("a"), cache.bytes_held, cache.evictions) == ("x" * 70, 70, 0)


def test_sized_cache_pop_clear_and_resize():
    cache = SizedCache(100, entry_overhead=0)
    for key in "abcd":
        cache.put(key, "x" * 10)
    assert (cache.pop("a"), cache.pop("a"), cache.bytes_held) == ("x" * 10, None, 30)
    cache.resize(15)
    assert ([k for k in "abcd" if k in cache], cache.bytes_held, cache.evictions, cache.max_bytes) == (["d"], 10, 2, 15)
    cache.clear()
    assert (len(cache), cache.bytes_held, cache.evictions) == (0, 0, 2)


@pytest.mark.parametrize("arguments", [
    pytest.param({"max_bytes": -1}, id="negative-bytes"),
    pytest.param({"max_bytes": 1.5}, id="float-bytes"),
    pytest.param({"max_bytes": True}, id="bool-bytes"),
    pytest.param({"max_bytes": 10, "max_entries": -1}, id="negative-entries"),
    pytest.param({"max_bytes": 10, "entry_overhead": -1}, id="negative-overhead"),
])
def test_sized_cache_refuses_bounds_that_are_no_bounds(arguments):
    with pytest.raises(ValueError, match="must be"):
        SizedCache(**arguments)


def test_sized_cache_refuses_a_negative_size():
    with pytest.raises(ValueError, match="size must be >= 0"):
        SizedCache(100).put("a", "v", size=-300)


def test_sized_cache_stays_within_its_bounds_under_threads():
    cache = SizedCache(5000, entry_overhead=10)

    def churn(offset):
        for i in range(2000):
            cache.put(offset + i % 300, "x" * (i % 50))
            cache.get(offset + (i * 7) % 300)
            if i % 11 == 0:
                cache.pop(offset + (i * 3) % 300)

    threads = [threading.Thread(target=churn, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = sum(10 + len(cache.get(k) or "") for k in range(4000) if k in cache)
    assert cache.bytes_held == held <= 5000


@pytest.mark.parametrize("text, expected", [
    pytest.param("", 0, id="empty"),
    pytest.param("abc", 3, id="ascii"),
    pytest.param("\u00e9\u20ac\U0001f600", 2 + 3 + 4, id="two-three-four-bytes"),
    pytest.param("\udc80", 3, id="lone-surrogate"),
])
def test_text_bytes_is_the_utf8_length(text, expected):
    assert text_bytes(text) == expected
