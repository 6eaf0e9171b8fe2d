# The CQL-level faults, observed by a raw client rather than through
# fakecql's log: the ERROR frames decoded by the installed driver's own code
# (code and fields), answers that come late (timed, with a stated
# tolerance) or never (a bounded wait while other streams are answered),
# answers on another stream id (the frame header the client read), the EOF
# after N answers, and the reset a connection over the limit gets at accept.
from __future__ import annotations

import socket
import ssl
import struct
import time
from typing import Any, Dict, List, Tuple

import pytest
from cassandra import ConsistencyLevel
from cassandra.policies import WriteType

from fakecql import FaultApplied, client_context
from fakecql.cqlerrors import ReadTimeout, Unavailable
from fakecql.faults import (
    AnswerError,
    AnswerOnWrongStream,
    CloseAfterRequests,
    DelayAnswer,
    RefuseConnectionsAfter,
)
from fakecql.faults.answers import _CONVERTERS, CQL_ERRORS, error_field_names
from fakecql.protocol.messages import Consistency, Execute, Prepare, PreparedResult, Query, Ready, RowsResult

from ..driver_decode import driver_decode
from ..rawcql import RawClient

LOCAL = "SELECT release_version FROM system.local"
PEERS = "SELECT peer FROM system.peers"
ERROR_OPCODE = 0x00
RESULT_OPCODE = 0x08

# Every error the issue names, by the name the fault takes.
NAMED_ERRORS = [
    "overloaded", "is_bootstrapping", "read_timeout", "write_timeout", "read_failure", "write_failure",
    "unavailable", "server_error", "protocol_error", "truncate_error", "syntax_error", "unauthorized",
    "invalid", "config_error", "already_exists", "unprepared", "function_failure", "cas_write_unknown",
]

# (error, fields as a command line gives them, code, what the driver decodes as `info`)
DRIVER_READS: List[Tuple[str, Dict[str, Any], int, Any]] = [
    ("overloaded", {}, 0x1001, None),
    ("is_bootstrapping", {}, 0x1002, None),
    ("server_error", {}, 0x0000, None),
    ("protocol_error", {}, 0x000A, None),
    ("bad_credentials", {}, 0x0100, None),
    ("truncate_error", {}, 0x1003, None),
    ("syntax_error", {}, 0x2000, None),
    ("unauthorized", {}, 0x2100, None),
    ("invalid", {}, 0x2200, None),
    ("config_error", {}, 0x2300, None),
    ("cdc_write_failure", {}, 0x1600, None),
    ("unavailable", {"consistency": "all", "required": "3", "alive": "1"}, 0x1000,
     {"consistency": ConsistencyLevel.ALL, "required_replicas": 3, "alive_replicas": 1}),
    ("read_timeout", {"consistency": "QUORUM", "received": "1", "block_for": "2", "data_present": "true"}, 0x1200,
     {"consistency": ConsistencyLevel.QUORUM, "received_responses": 1, "required_responses": 2,
      "data_retrieved": True}),
    ("write_timeout", {"consistency": "local_quorum", "received": "1", "block_for": "3", "write_type": "batch_log"},
     0x1100, {"consistency": ConsistencyLevel.LOCAL_QUORUM, "received_responses": 1, "required_responses": 3,
              "write_type": WriteType.BATCH_LOG}),
    ("read_failure", {"consistency": "TWO", "received": "1", "block_for": "2", "num_failures": "1"}, 0x1300,
     {"consistency": ConsistencyLevel.TWO, "received_responses": 1, "required_responses": 2, "failures": 1,
      "error_code_map": None, "data_retrieved": False}),
    ("write_failure", {"consistency": "ONE", "received": "0", "block_for": "1", "num_failures": "2",
                       "write_type": "CAS"}, 0x1500,
     {"consistency": ConsistencyLevel.ONE, "received_responses": 0, "required_responses": 1, "failures": 2,
      "error_code_map": None, "write_type": WriteType.CAS}),
    ("already_exists", {"keyspace": "shop", "table": "orders"}, 0x2400, {"keyspace": "shop", "table": "orders"}),
    ("function_failure", {"keyspace": "shop", "function": "total", "arg_types": "int;text"}, 0x1400,
     {"keyspace": "shop", "function": "total", "arg_types": ["int", "text"]}),
    ("unprepared", {"statement_id": "abcd"}, 0x2500, b"\xab\xcd"),
]


def _started(server: Any, context: Any = None, **options: Any) -> RawClient:
    client = RawClient(server.address, ssl_context=context, **options)
    assert isinstance(client.start(), Ready)
    return client


def test_every_error_the_issue_names_is_answerable():
    assert set(NAMED_ERRORS) <= set(CQL_ERRORS)
    assert {error for error, *_ in DRIVER_READS} | {"cas_write_unknown"} == set(CQL_ERRORS)
    for error in CQL_ERRORS:  # each field of each error converts command-line text
        assert set(error_field_names(error)) <= set(_CONVERTERS), error


@pytest.mark.parametrize("error, fields, code, info", DRIVER_READS, ids=[row[0] for row in DRIVER_READS])
def test_the_driver_reads_the_error_and_its_fields(error, fields, code, info, cql_plain_server):
    cql_plain_server.faults.answer_error(error, query="system.local", **fields)
    with _started(cql_plain_server) as client:
        client.send(Query(query=LOCAL), stream=4)
        frame = client.read_frame()
        assert (frame.header.opcode, frame.header.stream) == (ERROR_OPCODE, 4)
        decoded = driver_decode(frame)
        assert decoded.code == code
        assert decoded.info == info
        assert decoded.message  # the message Cassandra words for it
        # The same connection goes on: a query the fault is not aimed at gets its rows.
        client.send(Query(query=PEERS), stream=5)
        assert client.read_frame().header.opcode == RESULT_OPCODE
    [entry] = cql_plain_server.activity.of_type(FaultApplied)
    assert entry.fault == "AnswerError" and "query='system.local'" in entry.triggers


def test_cas_write_unknown_fields_on_the_wire(cql_plain_server):
    # No driver knows CAS_WRITE_UNKNOWN (0x1700) yet: its body is read here as
    # the spec lays it out: [int code][string message][short cl][int received][int blockfor].
    cql_plain_server.faults.answer_error("cas_write_unknown", consistency="LOCAL_SERIAL", received=1, block_for=2)
    with RawClient(cql_plain_server.address) as client:
        client.send(Query(query=LOCAL), stream=2)
        frame = client.read_frame()
    body = frame.body
    code, length = struct.unpack_from(">iH", body)
    fields = struct.unpack_from(">Hii", body, 6 + length)
    assert code == 0x1700
    assert body[6 : 6 + length].decode() == "CAS operation result is unknown - proposal accepted by 1 but not a quorum."
    assert fields == (int(ConsistencyLevel.LOCAL_SERIAL), 1, 2)
    assert len(body) == 6 + length + 10


def test_a_message_of_ones_own_and_a_tls_node(cql_server, cql_ca):
    cql_server.faults.answer_error("overloaded", "queue full on shard 3", opcode="QUERY")
    with _started(cql_server, client_context(cql_ca)) as client:
        client.send(Query(query=LOCAL), stream=9)
        decoded = driver_decode(client.read_frame())
    assert (decoded.code, decoded.message) == (0x1001, "queue full on shard 3")


def test_unprepared_names_the_id_the_client_executed(cql_plain_server):
    cql_plain_server.faults.answer_error("unprepared", opcode="EXECUTE")
    with _started(cql_plain_server) as client:
        prepared = client.request(Prepare(query=LOCAL), stream=1)
        assert isinstance(prepared, PreparedResult)
        client.send(Execute(query_id=prepared.query_id), stream=2)
        decoded = driver_decode(client.read_frame())
    # The driver re-prepares only when the id is the one it sent.
    assert (decoded.code, decoded.info) == (0x2500, prepared.query_id)


def test_error_fields_from_text_values_and_classes_are_one_fault():
    from_text = AnswerError("read-timeout", consistency="quorum", received="1", block_for="2", data_present="no")
    from_values = AnswerError("read_timeout", consistency=Consistency.QUORUM, received=1, block_for=2)
    from_class = AnswerError(ReadTimeout(consistency="QUORUM", received=1, block_for=2))
    from_pairs = AnswerError("read_timeout", error_fields=(("block_for", 2), ("received", 1), ("consistency", 4)))
    assert from_text.error_fields == (("block_for", 2), ("consistency", Consistency.QUORUM), ("data_present", False),
                                      ("received", 1))
    assert from_values == from_class == from_pairs
    assert len({from_values, from_class, from_pairs}) == 1  # hashable, equal values hash alike
    assert from_text.cli_name == "answer-error"
    assert AnswerError(Unavailable(alive=2), "custom").message == "custom"


@pytest.mark.parametrize("build, error, match", [
    (lambda: AnswerError("read_timeout", recieved=1), ValueError,
     r"read_timeout takes the fields consistency, received, block_for, data_present .*got recieved=1"),
    (lambda: AnswerError("overloaded", received=1), ValueError, r"overloaded takes no fields .*got received=1"),
    (lambda: AnswerError("read_timeout", received="many"), ValueError,
     r"read_timeout received must be an integer from 0 to 2147483647, got 'many'"),
    (lambda: AnswerError("read_timeout", received=-1), ValueError, r"received must be from 0 to 2147483647"),
    (lambda: AnswerError("unavailable", consistency="MOST"), ValueError,
     r"unavailable consistency must be a consistency level \(ANY, ONE, .*LOCAL_ONE\).*got 'MOST'"),
    (lambda: AnswerError("read_timeout", data_present="maybe"), ValueError, r"data_present must be true or false"),
    (lambda: AnswerError("write_timeout", write_type="FAST"), ValueError,
     r"write_type must be one of 'SIMPLE', 'BATCH', .*'CDC'; got 'FAST'"),
    (lambda: AnswerError("already_exists", keyspace=3), TypeError, r"already_exists keyspace must be text"),
    (lambda: AnswerError("read_failure", reasons="localhost:1"), ValueError, r"'localhost' is not an IP address"),
    (lambda: AnswerError("unprepared", statement_id="xyz"), ValueError, r"statement_id must be bytes or hex text"),
    (lambda: AnswerError("teapot"), ValueError, r"error must be one of already_exists, .*write_timeout .*got 'teapot'"),
    (lambda: AnswerError("overloaded", message=7), TypeError, r"message must be text"),
    (lambda: DelayAnswer(seconds=0), ValueError, r"DelayAnswer seconds must be > 0, got 0"),
    (lambda: AnswerOnWrongStream(stream=32768), ValueError,
     r"AnswerOnWrongStream stream must be from -32768 to 32767, got 32768"),
    (lambda: CloseAfterRequests(count=0), ValueError, r"CloseAfterRequests count must be >= 1, got 0"),
    (lambda: RefuseConnectionsAfter(count=-1), ValueError, r"RefuseConnectionsAfter count must be >= 0, got -1"),
])
def test_bad_settings_are_refused_by_name(build, error, match):
    with pytest.raises(error, match=match):
        build()


# -- late and never -----------------------------------------------------------------------
DELAY = 1.0
# A timer may fire up to a clock tick early; a loaded CI machine makes it late, never early.
EARLY_TOLERANCE = 0.05
LATE_TOLERANCE = 3.0


@pytest.mark.parametrize("aim", [{"query": "SYSTEM.local"}, {"opcode": "PREPARE"}], ids=["by-query", "by-opcode"])
def test_a_delayed_answer_comes_late_while_other_streams_go_on(aim, cql_server, cql_ca):
    cql_server.faults.delay_answer(DELAY, **aim)
    slow = Prepare(query=LOCAL) if "opcode" in aim else Query(query=LOCAL)
    with _started(cql_server, client_context(cql_ca)) as client:
        sent = time.monotonic()
        client.send(slow, stream=1)
        client.send(Query(query=PEERS), stream=2)
        first = client.read_frame()
        first_at = time.monotonic() - sent
        second = client.read_frame()
        second_at = time.monotonic() - sent
    assert first.header.stream == 2 and first_at < DELAY  # the other stream was not held up
    assert second.header.stream == 1
    assert DELAY - EARLY_TOLERANCE <= second_at <= DELAY + LATE_TOLERANCE, second_at
    assert second.header.opcode == RESULT_OPCODE  # the node's own answer, late


def test_a_request_never_answered_leaves_its_stream_open(cql_plain_server):
    cql_plain_server.faults.never_answer(query="system.local")
    with _started(cql_plain_server) as client:
        client.send(Query(query=LOCAL), stream=1)
        client.send(Query(query=PEERS), stream=2)
        client.send(Query(query=PEERS), stream=3)
        assert [client.read_frame().header.stream for _ in range(2)] == [2, 3]
        client.timeout = 1.5
        with pytest.raises(TimeoutError):
            client.read_frame()  # nothing for stream 1 within 1.5 s
        client.timeout = 5.0
        # Still a live connection: the next request is answered.
        assert isinstance(client.request(Query(query=PEERS), stream=4), RowsResult)
    details = [e.detail for e in cql_plain_server.activity.of_type(FaultApplied)]
    assert details == ["left request 3 (QUERY, stream 1) unanswered"]


# -- wrong streams -------------------------------------------------------------------------
@pytest.mark.parametrize("stream, sent_on, read_on", [(None, 5, 16389), (None, 20000, 3616), (77, 5, 77), (-1, 5, -1)])
def test_the_answer_comes_on_another_stream(stream, sent_on, read_on, cql_server, cql_ca):
    cql_server.faults.answer_on_wrong_stream(stream, query="system.local")
    with _started(cql_server, client_context(cql_ca)) as client:
        client.send(Query(query=LOCAL), stream=sent_on)
        frame = client.read_frame()
        assert (frame.header.stream, frame.header.opcode) == (read_on, RESULT_OPCODE)
        assert driver_decode(frame).kind == 0x0002  # the node's own answer: Rows
        client.send(Query(query=PEERS), stream=6)  # a request it is not aimed at: on its own stream
        assert client.read_frame().header.stream == 6


# -- connection ends -----------------------------------------------------------------------
@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_the_connection_closes_after_n_answers(tls, cql_server_factory, cql_ca):
    server = cql_server_factory(tls=tls)
    server.faults.close_after_requests(3)
    context = client_context(cql_ca) if tls else None
    with _started(server, context) as client:  # requests 1 and 2: OPTIONS, STARTUP
        # Requests 3 and 4 in one write: the 3rd is answered, then the close.
        client.send_raw(b"".join(_frame(Query(query=q), stream) for q, stream in ((LOCAL, 7), (PEERS, 8))))
        assert client.read_frame().header.stream == 7
        with pytest.raises(EOFError):  # a clean end (TLS: close_notify, then FIN), not a reset
            client.read_frame()
    [entry] = server.activity.of_type(FaultApplied)
    assert entry.detail == "closing after the answer to request 3 (QUERY), the last of the 3 it lets through"


def test_close_after_counting_queries_only(cql_plain_server):
    cql_plain_server.faults.close_after_requests(2, opcode="QUERY")
    with _started(cql_plain_server) as client:  # OPTIONS and STARTUP are not counted
        client.send(Query(query=PEERS), stream=1)
        assert client.read_frame().header.stream == 1
        client.send(Query(query=PEERS), stream=2)
        assert client.read_frame().header.stream == 2
        with pytest.raises(EOFError):
            client.read_frame()


def _frame(message: Any, stream: int) -> bytes:
    from ..rawcql import request_frame

    return request_frame(message, stream=stream)


def _connect_and_ask(server: Any, context: Any) -> None:
    """A connection's first request answered (raises what the client's socket raised)."""
    with RawClient(server.address, ssl_context=context, timeout=5) as client:
        assert isinstance(client.start(), Ready)


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_connections_over_the_limit_are_reset_at_accept(tls, cql_server_factory, cql_ca):
    server = cql_server_factory(tls=tls)
    context = client_context(cql_ca) if tls else None
    with _started(server, context) as before:  # opened before the fault: not counted
        server.faults.refuse_connections_after(2)
        _connect_and_ask(server, context)
        _connect_and_ask(server, context)
        for _ in range(2):
            # The kernel completes the TCP handshake; the node then resets: the
            # client's socket raises ECONNRESET (OpenSSL may wrap it in an SSLError).
            with pytest.raises((ConnectionResetError, ssl.SSLError)) as raised:
                _connect_and_ask(server, context)
            if isinstance(raised.value, ssl.SSLError):  # a reset, not an EOF (which a FIN would give)
                assert "reset" in str(raised.value).lower(), raised.value
        assert isinstance(before.request(Query(query=PEERS), stream=3), RowsResult)  # open ones go on
    details = [e.detail for e in server.activity.of_type(FaultApplied)]
    assert details == [f"reset at accept: connection {n} since the fault was added, over the limit of 2"
                       for n in (3, 4)]


def test_a_reset_at_accept_is_a_reset_not_an_eof(cql_plain_server):
    # Negative control for the test above: a connection the node resets at
    # accept raises ECONNRESET (in connect() itself when the RST comes first,
    # else in recv()), where a clean close reads as b"".
    cql_plain_server.faults.refuse_connections_after(0)
    with pytest.raises(ConnectionResetError):
        with socket.create_connection(cql_plain_server.address, timeout=5) as sock:
            while sock.recv(1024):
                pass
