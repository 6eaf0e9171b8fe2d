# The server's side of priming and the request log, against a bare client:
# a delayed answer is sent later by a timer while the connection serves
# other streams, a withheld one never, pending ones die with their
# connection or the server, an exception in a delayed send is an incident;
# every request is logged with its parameters and decoded values; unmet
# expectations fail check() and the plugin's teardown with a listing.
from __future__ import annotations

import time

import pytest

from fakecql import (
    ActivityLog,
    BoundValue,
    Consistency,
    CQLServer,
    FrameReceived,
    Overloaded,
    ServerException,
    UnexpectedActivityError,
)
from fakecql.protocol.messages import (
    Batch,
    BatchStatement,
    Error,
    Execute,
    Prepare,
    PreparedResult,
    Query,
    QueryParameters,
    RowsResult,
    VoidResult,
)
from fakecql.protocol.types import BIGINT, INT, TEXT, parse_type

from ..rawcql import RawClient

pytest_plugins = ["pytester"]

ROWS = {"columns": {"v": "int"}}


def started(server: CQLServer, version: int = 4) -> RawClient:
    client = RawClient(server.address, timeout=5.0)
    client.start(version)
    return client


def test_a_delayed_answer_comes_later_and_other_streams_go_on(cql_server_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM slow").then_delay(0.6).then_rows([(1,)], **ROWS)
    server.when_query("SELECT * FROM fast").then_rows([(2,)], **ROWS)
    with started(server) as client:
        sent = time.monotonic()
        client.send(Query(query="SELECT * FROM slow"), stream=7)
        client.send(Query(query="SELECT * FROM fast"), stream=8)
        first, answer = client.read()
        assert first.header.stream == 8 and isinstance(answer, RowsResult)  # not held behind the slow one
        assert time.monotonic() - sent < 0.6
        second, answer = client.read()
        waited = time.monotonic() - sent
        assert second.header.stream == 7 and isinstance(answer, RowsResult)
        assert 0.55 <= waited < 5.0, waited  # the delay, and no hang


def test_no_answer_keeps_the_stream_open_and_the_connection_working(cql_server_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM never").then_no_answer()
    server.when_query("SELECT * FROM fast").then_void()
    with started(server) as client:
        client.timeout = 0.5
        client.send(Query(query="SELECT * FROM never"), stream=3)
        with pytest.raises(TimeoutError):
            client.read()
        client.timeout = 5.0
        assert client.request(Query(query="SELECT * FROM fast"), stream=4) == VoidResult()
    closed = server.activity.wait_for(lambda e: type(e).__name__ == "ConnectionClosed", timeout=5)
    assert "1 answers withheld (then_no_answer)" in closed.reason


def test_pending_delayed_answers_die_with_the_connection_and_the_server(cql_server_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM slow").then_delay(30).then_void()
    with started(server) as client:
        client.send(Query(query="SELECT * FROM slow"), stream=1)
        server.activity.wait_for(lambda e: isinstance(e, FrameReceived) and e.query == "SELECT * FROM slow")
    with started(server) as client:  # one still pending when the server stops
        client.send(Query(query="SELECT * FROM slow"), stream=1)
        server.activity.wait_for(
            lambda e: isinstance(e, FrameReceived) and e.query == "SELECT * FROM slow" and e.connection == 2)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 10  # no waiting for the 30 s timer
    assert server.leftovers() == []


def test_an_exception_in_a_delayed_send_is_an_incident(cql_server_factory):
    server = cql_server_factory(tls=False)
    # A v5 PREPARED result needs a result_metadata_id: encoding it fails, later, on the loop.
    server.when_query("SELECT * FROM broken").then_delay(0.05).then(PreparedResult(query_id=b"x"))
    with RawClient(server.address) as client:
        client.start(version=5)
        client.segments = True
        client.send(Query(query="SELECT * FROM broken"), version=5, stream=2)
        found = server.activity.wait_for(lambda e: isinstance(e, ServerException), timeout=5)
    assert "a v5 Prepared result needs result_metadata_id" in found.description
    with pytest.raises(UnexpectedActivityError, match="ServerException"):
        server.check()
    server.activity.take_incidents()


# -- the request log --------------------------------------------------------------------------

def test_the_log_keeps_each_requests_parameters(cql_server_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.t").then_rows([(1,)], **ROWS)
    with started(server) as client:
        params = QueryParameters(consistency=Consistency.LOCAL_QUORUM, serial_consistency=Consistency.LOCAL_SERIAL,
                                 page_size=100, timestamp=1_700_000_000_000_000)
        client.request(Query(query="SELECT * FROM ks.t", parameters=params), stream=1)
    [entry] = server.activity.requests("SELECT * FROM ks.t")
    assert entry.node == f"{server.host}:{server.port}"
    assert (entry.opcode, entry.consistency, entry.serial_consistency, entry.page_size, entry.timestamp) == (
        "QUERY", "LOCAL_QUORUM", "LOCAL_SERIAL", 100, 1_700_000_000_000_000)
    assert entry.keyspace is None and entry.values == ()


def test_the_log_decodes_bound_values_with_their_types(cql_server_factory):
    server = cql_server_factory(tls=False)
    schema = server.node.schema
    schema.add_keyspace("ks")
    schema.add_table("ks", "t", {"k": "int", "name": "text", "n": "bigint", "tags": "list<text>"}, partition_key="k")
    text = "INSERT INTO ks.t (k, name, n, tags) VALUES (?, ?, ?, ?)"
    with started(server) as client:
        prepared = client.request(Prepare(query=text), stream=1)
        assert isinstance(prepared, PreparedResult)
        raw = (INT.serialize(1), TEXT.serialize("ada"), BIGINT.serialize(2**40),
               parse_type("list<text>").serialize(["a", "b"]))
        client.request(Execute(query_id=prepared.query_id, parameters=QueryParameters(values=raw)), stream=2)
        # a QUERY with values nothing primed: raw bytes, untyped
        client.request(Query(query="UPDATE ks.t SET name = ? WHERE k = ?",
                             parameters=QueryParameters(values=(b"x", INT.serialize(5)))), stream=3)
        server.activity.take_incidents()  # the UPDATE is uninterpreted
        # typed by a priming's params
        server.when_query("UPDATE ks.t SET n = ? WHERE k = ?", params={"n": "bigint", "k": "int"}).then_void()
        client.request(Query(query="UPDATE ks.t SET n = ? WHERE k = ?",
                             parameters=QueryParameters(values=(BIGINT.serialize(7), INT.serialize(5)))), stream=4)
        batch = Batch(statements=(BatchStatement(query_id=prepared.query_id, values=raw),
                                  BatchStatement(query="UPDATE ks.t SET n = ? WHERE k = ?",
                                                 values=(BIGINT.serialize(8), INT.serialize(6)))),
                      consistency=Consistency.QUORUM, timestamp=99)
        client.request(batch, stream=5)
        server.activity.take_incidents()  # fakecql does not interpret BATCH
    [execute] = server.activity.requests(text, opcode="EXECUTE")
    assert [(v.name, v.type, v.value) for v in execute.values] == [
        ("k", "int", 1), ("name", "text", "ada"), ("n", "bigint", 2**40), ("tags", "list<text>", ["a", "b"])]
    assert execute.keyspace is None and execute.consistency == "ONE"
    [untyped] = server.activity.requests("UPDATE ks.t SET name = ? WHERE k = ?")
    assert untyped.values == (BoundValue(b"x", None, None, 1), BoundValue(INT.serialize(5), None, None, 4))
    assert not untyped.values[0].typed
    [typed] = server.activity.requests("UPDATE ks.t SET n = ? WHERE k = ?", opcode="QUERY")
    assert [(v.type, v.value) for v in typed.values] == [("bigint", 7), ("int", 5)]
    [logged] = server.activity.requests(opcode="BATCH")
    assert (logged.consistency, logged.timestamp) == ("QUORUM", 99)
    assert [s.query for s in logged.statements] == [text, "UPDATE ks.t SET n = ? WHERE k = ?"]
    assert [v.value for v in logged.statements[0].values] == [1, "ada", 2**40, ["a", "b"]]
    assert [(v.type, v.value) for v in logged.statements[1].values] == [("bigint", 8), ("int", 6)]
    # a BATCH is found by one of its statements
    assert server.activity.requests("UPDATE ks.t SET n = ? WHERE k = ?", opcode="BATCH") == [logged]
    assert [e.opcode for e in server.activity.requests(text)] == ["PREPARE", "EXECUTE", "BATCH"]
    server.activity.clear()
    assert server.activity.requests() == []


def test_bound_values_count_in_the_logs_text_budget():
    log = ActivityLog(max_entries=100, max_text_bytes=1000)
    big = FrameReceived(1, opcode="EXECUTE", query="q", values=(BoundValue(b"x" * 600, None, None, 600),))
    log.add(big)
    log.add(FrameReceived(1, opcode="EXECUTE", query="q", values=(BoundValue(b"y" * 600, None, None, 600),)))
    assert log.entries == [log.entries[-1]] and log.entries[0].values[0].value == b"y" * 600
    counters = log.counters()
    assert counters.entries_dropped == 1 and counters.text_bytes_dropped == 601


def test_requests_refuses_a_bad_statement():
    with pytest.raises(TypeError, match="requests\\(\\) takes a statement as a str"):
        ActivityLog().requests(42)  # type: ignore[arg-type]


# -- expectations -----------------------------------------------------------------------------

def test_check_lists_unmet_expectations(cql_server_factory):
    server = cql_server_factory(tls=False)
    priming = server.when_query("SELECT * FROM ks.t", consistency="QUORUM").then_error(Overloaded()).expect(times=1)
    with pytest.raises(UnexpectedActivityError) as caught:
        server.check()
    assert str(caught.value) == (
        f"fakecql node {server.host}:{server.port}: 1 priming expectation(s) not met:\n"
        "  - 'SELECT * FROM ks.t' consistency=QUORUM -> Overloaded [always] (matched 0x) (in node primings): "
        "expected exactly 1 time(s), seen 0"
    )
    with started(server) as client:
        answer = client.request(Query(query="SELECT * FROM ks.t",
                                      parameters=QueryParameters(consistency=Consistency.QUORUM)), stream=1)
    assert isinstance(answer, Error) and priming.matched == 1
    server.check()


def test_an_unmet_expectation_fails_its_test_at_teardown(pytester):
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner='''
        import pytest
        from fakecql import PrimingBook

        def test_primes_and_never_asks(cql_plain_server):
            cql_plain_server.when_query("SELECT v FROM ks.t WHERE k = ?", values=[1]).then_void().expect(times=2)

        def test_meets_its_expectation(cql_plain_server):
            cql_plain_server.when_query("SELECT 1").then_void().expect(times=0)

        @pytest.mark.fakecql_allow_unexpected
        def test_the_marker_does_not_excuse_it(cql_server_factory):
            book = PrimingBook("whole cluster")
            for _ in range(2):
                cql_server_factory(tls=False).node.add_priming_source(book)
            book.when_query("SELECT 2").then_void().expect()
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    out = result.stdout.str()
    teardown = out.index("ERROR at teardown of test_primes_and_never_asks")
    assert out.index("1 priming expectation(s) not met:", teardown) > teardown
    assert ("  - 'SELECT v FROM ks.t WHERE k = ?' values=[1] -> Void [always] (matched 0x) (in node primings): "
            "expected exactly 2 time(s), seen 0\n") in out
    assert "ERROR at teardown of test_the_marker_does_not_excuse_it" in out
    assert ("  - 'SELECT 2' -> Void [always] (matched 0x) (in whole cluster): expected at least 1 time(s), "
            "seen 0\n") in out
    assert result.stdout.str().count("(in whole cluster)") == 1  # a shared book is listed once
