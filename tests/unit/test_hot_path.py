# The node's hot path for repeated requests (issue 14): a repeated EXECUTE is
# decoded once per distinct frame, answered again from the connection's
# reusable answers, its rows encoded once, its frame-log entry copied. Each
# shortcut must give what the long way gives: these tests change what an
# answer depends on between two identical requests and check the second
# answer sees the change, and that every repeated request is still logged,
# counted and seen by faults.
from __future__ import annotations

import dataclasses
import struct
from typing import Any, List

import pytest

from fakecql import ActivityLog, CQLServer, FrameReceived, Incident
from fakecql.faults.answers import AnswerError
from fakecql.node import Node, NodeSession
from fakecql.protocol.connection import ProtocolViolation, RequestReceived, ServerConnection
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.frames import encode_frame
from fakecql.protocol.messages import (
    Error,
    Execute,
    Prepare,
    PreparedResult,
    QueryParameters,
    Ready,
    RowsResult,
    Startup,
)
from fakecql.protocol.types import TEXT

from ..rawcql import RawClient, request_frame

LOCAL = "SELECT release_version, schema_version FROM system.local WHERE key = ?"


def _session() -> NodeSession:
    node = Node()
    node.schema.add_keyspace("ks")
    node.schema.add_table("ks", "users", {"id": "int", "name": "text"}, partition_key="id")
    session = node.session(1)
    assert session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), 4, 0) == Ready()
    return session


def _prepared(session: NodeSession, text: str) -> bytes:
    result = session.handle(Prepare(query=text), 4, 1)
    assert isinstance(result, PreparedResult), result
    return result.query_id


def _execute(query_id: bytes, *values: bytes) -> Execute:
    return Execute(query_id=query_id, parameters=QueryParameters(values=values))


def _cells(answer: Any) -> List[tuple]:
    assert isinstance(answer, RowsResult), answer
    return [tuple(row) for row in answer.rows]


# -- the node's reusable answers ------------------------------------------------------

def test_a_repeated_execute_of_system_local_is_answered_again_until_the_schema_changes():
    session = _session()
    request = _execute(_prepared(session, LOCAL), b"local")
    first = session.handle(request, 4, 2)
    assert session.handle(request, 4, 3) is first  # reused: the same frozen answer

    session.node.schema.add_keyspace("another")
    after = session.handle(request, 4, 4)

    assert after is not first
    assert _cells(after)[0][1] != _cells(first)[0][1]  # schema_version moved with the schema
    assert _cells(after)[0][1] == session.node.schema.version.bytes


def test_a_reused_answer_follows_the_node_identity():
    session = _session()
    request = _execute(_prepared(session, LOCAL), b"local")
    session.handle(request, 4, 2)
    session.node.identity = dataclasses.replace(session.node.identity, release_version="9.9.9")

    assert _cells(session.handle(request, 4, 3))[0][0] == b"9.9.9"


def test_a_priming_added_after_a_reused_answer_wins():
    session = _session()
    request = _execute(_prepared(session, LOCAL), b"local")
    session.handle(request, 4, 2)
    session.handle(request, 4, 3)
    session.node.when_query(LOCAL).then_rows([("primed", None)], columns={"release_version": "text",
                                                                         "schema_version": "uuid"})

    assert _cells(session.handle(request, 4, 4))[0][0] == TEXT.serialize("primed")


def test_a_forgotten_prepared_statement_is_unprepared_even_after_reuse():
    session = _session()
    request = _execute(_prepared(session, LOCAL), b"local")
    session.handle(request, 4, 2)
    session.handle(request, 4, 3)
    session.node.forget_prepared()

    answer = session.handle(request, 4, 4)

    assert isinstance(answer, Error) and answer.code == ErrorCode.UNPREPARED


def test_reads_of_an_ordinary_table_are_never_reused():
    session = _session()
    request = _execute(_prepared(session, "SELECT name FROM ks.users WHERE id = ?"), struct.pack(">i", 1))
    assert _cells(session.handle(request, 4, 2)) == []
    table = session.node.schema.table("ks", "users")
    assert table is not None
    table.rows.append({"id": 1, "name": "ada"})  # behind the node's back, as tests may

    assert _cells(session.handle(request, 4, 3)) == [(TEXT.serialize("ada"),)]


# -- the codec: decoded once per distinct frame, still validated ---------------------

def test_the_same_frame_on_two_streams_is_two_requests_with_their_streams():
    connection = ServerConnection()
    body = _execute(b"\x01" * 16, b"local").encode_body(4)
    frames = encode_frame(4, 1, 0x0A, body, is_response=False) + encode_frame(4, 2, 0x0A, body, is_response=False)

    events = connection.receive_data(frames)

    assert [type(e) for e in events] == [RequestReceived, RequestReceived]
    assert [e.stream for e in events] == [1, 2]
    assert events[0].message == events[1].message == _execute(b"\x01" * 16, b"local")


def test_a_bad_body_repeated_is_refused_every_time():
    connection = ServerConnection()
    bad = struct.pack(">H", 16) + b"\x01" * 16 + b"\x00\x63\x00"  # consistency 0x0063
    events = connection.receive_data(b"".join(encode_frame(4, s, 0x0A, bad, is_response=False) for s in (1, 2)))

    assert [type(e) for e in events] == [ProtocolViolation, ProtocolViolation]
    assert all("consistency 0x0063" in e.message for e in events)


# -- the server: every repeated request logged, counted, seen by faults -------------

def _pipelined(client: RawClient, query_id: bytes, streams: List[int]) -> List[Any]:
    client.send_raw(b"".join(request_frame(_execute(query_id, b"local"), stream=s) for s in streams))
    answers = []
    for _ in streams:
        frame, message = client.read()
        answers.append((frame.header.stream, message))
    return answers


def test_repeated_executes_are_each_logged_with_their_stream_and_values(cql_server_factory):
    server = cql_server_factory(tls=False)
    seen: List[Any] = []
    incidents: List[Any] = []
    server.activity.subscribe(seen.append)
    server.activity.subscribe(incidents.append, kinds=(Incident,))
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)
        prepared = client.request(Prepare(query=LOCAL))
        assert isinstance(prepared, PreparedResult)
        server.activity.unsubscribe(seen.append)
        answers = _pipelined(client, prepared.query_id, [5, 6, 7, 8])

    assert [stream for stream, _ in answers] == [5, 6, 7, 8]
    assert all(isinstance(a, RowsResult) and a == answers[0][1] for _, a in answers)
    executes = [e for e in server.activity.of_type(FrameReceived) if e.opcode == "EXECUTE"]
    assert [e.stream for e in executes] == [5, 6, 7, 8]
    assert {e.query for e in executes} == {LOCAL}
    assert all(e.values[0].value == "local" and e.values[0].type == "text" for e in executes)
    assert server.activity.counters().requests["EXECUTE"] == 4
    assert incidents == []  # a subscriber to incidents is given no frame entry
    assert not any(isinstance(e, FrameReceived) and e.opcode == "EXECUTE" for e in seen)  # unsubscribed before


def test_a_subscriber_gets_every_repeated_execute(cql_server_factory):
    server = cql_server_factory(tls=False)
    seen: List[Any] = []
    server.activity.subscribe(seen.append)
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)
        prepared = client.request(Prepare(query=LOCAL))
        assert isinstance(prepared, PreparedResult)
        _pipelined(client, prepared.query_id, [1, 2, 3])
    server.activity.unsubscribe(seen.append)

    assert [e.stream for e in seen if isinstance(e, FrameReceived) and e.opcode == "EXECUTE"] == [1, 2, 3]


def test_a_fault_aimed_at_a_repeated_request_still_sees_it(cql_server_factory):
    server = cql_server_factory(tls=False)
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)
        prepared = client.request(Prepare(query=LOCAL))
        assert isinstance(prepared, PreparedResult)
        _pipelined(client, prepared.query_id, [1, 2])  # the hot path is warm
        second = server.activity.counters().total_requests + 2  # this connection's only: stream 4 below
        server.faults.add(AnswerError("overloaded", "busy", on_request=second))
        answers = _pipelined(client, prepared.query_id, [3, 4, 5])

    assert [type(a) for _, a in answers] == [RowsResult, Error, RowsResult]
    assert answers[1][1].code == ErrorCode.OVERLOADED and answers[1][1].message == "busy"


def test_the_activity_log_stays_bounded_with_repeated_entries():
    log = ActivityLog(max_entries=10)
    entry = FrameReceived(1, stream=0, opcode="EXECUTE", query="SELECT 1")
    for stream in range(25):
        log.add_repeat(entry, stream, 9, count="EXECUTE")

    assert [e.stream for e in log.entries] == list(range(15, 25))
    assert all(isinstance(e, FrameReceived) and e.query == "SELECT 1" for e in log.entries)
    counters = log.counters()
    assert counters.requests == {"EXECUTE": 25} and counters.entries_dropped == 15
