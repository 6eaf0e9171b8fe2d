# How a fault is aimed, end to end against a running node: a raw client
# sends the requests and sees which of them came back as the fault's error
# (decoded by the installed driver), by opcode; by query text (contained,
# case and spacing ignored), regex or predicate; an EXECUTE by its prepared
# text and a BATCH by its statements; by the Nth request; on some
# connections, by number or by a predicate on ConnectionInfo; and by a
# seeded probability that picks the same requests run after run. Bad
# trigger arguments are refused at construction, naming what is allowed.
from __future__ import annotations

import re
import socket
from typing import Any, List, Optional

import pytest

from fakecql import FaultApplied, client_context
from fakecql.faults import (
    AnswerError,
    CloseAfterRequests,
    ConnectionInfo,
    DelayAnswer,
    NeverAnswer,
    RefuseConnectionsAfter,
)
from fakecql.protocol.messages import (
    Batch,
    BatchStatement,
    Execute,
    Options,
    Prepare,
    PreparedResult,
    Query,
    Ready,
    Register,
    Startup,
)

from ..driver_decode import driver_decode
from ..rawcql import RawClient

LOCAL = "SELECT release_version FROM system.local"
PEERS = "SELECT peer FROM system.peers"
OVERLOADED = 0x1001


def _answer(client: RawClient, message: Any, stream: int) -> str:
    """What the client read for `message`: "overloaded" (the fault's error) or the opcode's kind."""
    client.send(message, stream=stream)
    frame = client.read_frame()
    assert frame.header.stream == stream
    decoded = driver_decode(frame)
    if frame.header.opcode == 0x00:
        return "overloaded" if decoded.code == OVERLOADED else f"error 0x{decoded.code:04x}"
    return "answered"


def _hits(client: RawClient, messages: List[Any], first_stream: int = 1) -> List[bool]:
    return [_answer(client, message, stream) == "overloaded"
            for stream, message in enumerate(messages, start=first_stream)]


def _startup() -> Startup:
    return Startup(options={"CQL_VERSION": "3.0.0"})


# -- opcode -------------------------------------------------------------------------------
@pytest.mark.parametrize("opcode, hit", [
    ("QUERY", [False, False, True, False, True]),
    (("prepare", "OPTIONS"), [True, False, False, True, False]),
])
def test_opcode(opcode, hit, cql_plain_server):
    cql_plain_server.faults.answer_error("overloaded", opcode=opcode)
    with RawClient(cql_plain_server.address) as client:
        assert _hits(client, [Options(), _startup(), Query(query=LOCAL), Prepare(query=LOCAL),
                              Query(query=PEERS)]) == hit


# -- query: text, regex, predicate -----------------------------------------------------------
@pytest.mark.parametrize("query", [
    "select   RELEASE_VERSION from\nSYSTEM.local",  # contained, case and spacing ignored
    re.compile(r"release_version\s+FROM\s+system\.local$"),
    lambda text: "release_version" in text,
], ids=["text", "regex", "predicate"])
def test_query(query, cql_plain_server):
    cql_plain_server.faults.answer_error("overloaded", query=query)
    with RawClient(cql_plain_server.address) as client:
        assert isinstance(client.start(), Ready)  # OPTIONS and STARTUP have no text: never hit
        assert _hits(client, [Query(query=LOCAL), Query(query=PEERS), Query(query=f"  {LOCAL}"),
                              Query(query="SELECT cluster_name FROM system.local")]) == [True, False, True, False]


def test_text_that_is_not_contained_misses(cql_plain_server):
    # Negative control: the words of the query, in another order, are not the query.
    cql_plain_server.faults.answer_error("overloaded", query="FROM system.local SELECT")
    with RawClient(cql_plain_server.address) as client:
        assert isinstance(client.start(), Ready)
        assert _hits(client, [Query(query=LOCAL)]) == [False]


def test_an_execute_is_matched_by_its_prepared_text(cql_plain_server):
    cql_plain_server.faults.answer_error("overloaded", query="system.local", opcode="EXECUTE")
    with RawClient(cql_plain_server.address) as client:
        assert isinstance(client.start(), Ready)
        local = client.request(Prepare(query=LOCAL), stream=1)  # a PREPARE: not aimed at
        peers = client.request(Prepare(query=PEERS), stream=2)
        assert isinstance(local, PreparedResult) and isinstance(peers, PreparedResult)
        assert _hits(client, [Execute(query_id=local.query_id), Execute(query_id=peers.query_id),
                              Execute(query_id=local.query_id)], first_stream=3) == [True, False, True]


def test_a_batch_is_matched_by_its_statements(cql_plain_server):
    schema = cql_plain_server.node.schema
    schema.add_keyspace("shop")
    schema.add_table("shop", "orders", {"id": "int", "total": "int"}, partition_key="id")
    schema.add_table("shop", "audit", {"id": "int", "what": "text"}, partition_key="id")
    with RawClient(cql_plain_server.address) as client:
        assert isinstance(client.start(), Ready)
        audit = client.request(Prepare(query="INSERT INTO shop.audit (id, what) VALUES (?, ?)"), stream=2)
        assert isinstance(audit, PreparedResult)
        # Aimed from now on: any request whose statements write the audit table.
        cql_plain_server.faults.answer_error("overloaded", query="insert into shop.AUDIT")
        by_text = Batch(statements=(BatchStatement(query="INSERT INTO shop.orders (id, total) VALUES (1, 2)"),
                                    BatchStatement(query="INSERT INTO shop.audit (id, what) VALUES (1, 'x')")))
        by_id = Batch(statements=(BatchStatement(query="INSERT INTO shop.orders (id, total) VALUES (2, 3)"),
                                  BatchStatement(query_id=audit.query_id, values=(b"\x00\x00\x00\x02", b"y"))))
        orders_only = Batch(statements=(BatchStatement(query="INSERT INTO shop.orders (id, total) VALUES (3, 4)"),))
        assert _hits(client, [by_text, by_id, orders_only], first_stream=3) == [True, True, False]


# -- on_request, connections ---------------------------------------------------------------
def test_on_request(cql_plain_server):
    cql_plain_server.faults.answer_error("overloaded", on_request=3)
    with RawClient(cql_plain_server.address) as client:
        assert _hits(client, [Options(), _startup()] + [Query(query=LOCAL)] * 3) == [False, False, True, False,
                                                                                    False]


def test_connections_by_number(cql_plain_server):
    cql_plain_server.faults.answer_error("overloaded", connections=(2, 4))
    hit = []
    for _ in range(4):
        with RawClient(cql_plain_server.address) as client:
            hit.append(_hits(client, [Options()]) == [True])
    assert hit == [False, True, False, True]


def test_connections_by_predicate_on_connection_info(cql_server, cql_ca):
    seen: List[ConnectionInfo] = []
    chosen: List[Optional[int]] = [None]

    def from_chosen_port(info: ConnectionInfo) -> bool:
        seen.append(info)
        return info.peer[1] == chosen[0]

    cql_server.faults.answer_error("overloaded", connections=from_chosen_port)
    context = client_context(cql_ca)
    results = []
    for attempt in range(3):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        if attempt == 1:
            chosen[0] = sock.getsockname()[1]
        sock.connect(cql_server.address)
        with RawClient(cql_server.address, ssl_context=context, sock=sock) as client:
            results.append(_hits(client, [Options()]) == [True])
    assert results == [False, True, False]
    assert [info.number for info in seen] == [1, 2, 3]
    assert all(info.tls and info.peer[0] == "127.0.0.1" and not info.shard_aware for info in seen)


# -- probability and seed ---------------------------------------------------------------------
REQUESTS = 24


def _picked(server_factory: Any, seed: int) -> List[int]:
    """The QUERY requests (by count on the connection) a p=0.5 fault picked, as the client saw them."""
    server = server_factory(tls=False)
    server.faults.answer_error("overloaded", opcode="QUERY", probability=0.5, seed=seed)
    with RawClient(server.address) as client:
        assert isinstance(client.start(), Ready)
        hits = _hits(client, [Query(query=LOCAL)] * REQUESTS)
    picked = [count for count, hit in enumerate(hits, start=3) if hit]
    entries = server.activity.of_type(FaultApplied)
    # The seed is in every entry, and in the triggers each entry lists.
    assert [entry.seed for entry in entries] == [seed] * len(picked)
    assert all(entry.triggers == f"opcode=('QUERY',) probability=0.5 seed={seed}" for entry in entries)
    assert [int(entry.detail.split()[2]) for entry in entries] == picked  # "answered request N (...)"
    return picked


def test_the_same_seed_picks_the_same_requests(cql_server_factory):
    first = _picked(cql_server_factory, seed=7)
    assert 0 < len(first) < REQUESTS  # some, not all
    assert _picked(cql_server_factory, seed=7) == first
    assert _picked(cql_server_factory, seed=8) != first


def test_probability_for_whole_connections_is_drawn_once(cql_server_factory):
    # A fault acting on whole connections draws once per connection: each
    # connection is either closed after its 3rd request or never.
    server = cql_server_factory(tls=False)
    server.faults.close_after_requests(3, probability=0.5, seed=3)
    closed = []
    for _ in range(8):
        with RawClient(server.address, timeout=5) as client:
            assert isinstance(client.start(), Ready)
            client.send(Query(query=LOCAL), stream=3)
            assert client.read_frame().header.stream == 3
            client.send(Query(query=LOCAL), stream=4)  # answered, unless the connection was closed
            try:
                closed.append(client.read_frame().header.stream != 4)
            except (EOFError, ConnectionResetError):  # the FIN first, or a reset for writing after it
                closed.append(True)
    assert True in closed and False in closed
    assert len(server.activity.of_type(FaultApplied)) == closed.count(True)


# -- bad triggers ------------------------------------------------------------------------------
@pytest.mark.parametrize("build, error, match", [
    (lambda: AnswerError(on_request=-1), ValueError, r"AnswerError on_request must be >= 1, got -1"),
    (lambda: DelayAnswer(on_request=0), ValueError, r"DelayAnswer on_request must be >= 1, got 0"),
    (lambda: NeverAnswer(opcode="NOPE"), ValueError,
     r"NeverAnswer opcode must be one of 'STARTUP', 'OPTIONS', 'QUERY', 'PREPARE', 'EXECUTE', 'REGISTER', "
     r"'BATCH', 'AUTH_RESPONSE'; got 'NOPE'"),
    (lambda: NeverAnswer(opcode=7), TypeError, r"opcode must be an opcode name or a tuple of them \(STARTUP, "),
    (lambda: NeverAnswer(opcode=()), ValueError, r"opcode must name at least one of STARTUP, "),
    (lambda: NeverAnswer(probability=0), ValueError, r"probability must be > 0 and <= 1, got 0"),
    (lambda: NeverAnswer(probability=1.5), ValueError, r"probability must be > 0 and <= 1, got 1.5"),
    (lambda: NeverAnswer(probability="half"), TypeError, r"probability must be a number > 0 and <= 1"),
    (lambda: NeverAnswer(query=42), TypeError,
     r"query must be text, a compiled regex \(re.compile\) or a predicate taking the query text, got 42"),
    (lambda: NeverAnswer(query="  "), ValueError, r"query must be non-blank text"),
    (lambda: NeverAnswer(connections=0), ValueError, r"connections must be >= 1, got 0"),
    (lambda: NeverAnswer(connections=[]), ValueError, r"connections must name at least one connection number"),
    (lambda: NeverAnswer(connections=[1, "2"]), TypeError, r"connections must be an integer >= 1, got '2'"),
    (lambda: NeverAnswer(seed=1.5), TypeError, r"NeverAnswer seed must be an integer"),
    (lambda: RefuseConnectionsAfter(on_request=2), ValueError,
     r"RefuseConnectionsAfter cannot be aimed with on_request= \(it acts on whole connections\); "
     r"it takes connections, probability, seed"),
    (lambda: RefuseConnectionsAfter(query="x"), ValueError, r"cannot be aimed with query="),
    (lambda: CloseAfterRequests(on_request=2), ValueError,
     r"CloseAfterRequests cannot be aimed with on_request= \(it acts on requests\); "
     r"it takes connections, opcode, query, probability, seed"),
])
def test_bad_triggers_are_refused_naming_what_is_allowed(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_a_verb_with_bad_triggers_adds_nothing(cql_plain_server):
    with pytest.raises(ValueError, match="on_request must be >= 1"):
        cql_plain_server.faults.delay_answer(1.0, on_request=-1)
    with pytest.raises(ValueError, match="cannot be aimed with opcode="):
        cql_plain_server.faults.refuse_connections_after(1, opcode="QUERY")
    assert len(cql_plain_server.faults) == 0


def test_requests_without_text_show_a_query_predicate_empty_text(cql_plain_server):
    with RawClient(cql_plain_server.address) as client:
        assert isinstance(client.start(), Ready)
        # The predicate sees "" for requests without text: it is the test's own to decide on.
        cql_plain_server.faults.answer_error("overloaded", query=lambda text: text == "")
        assert _hits(client, [Options(), Register(event_types=("STATUS_CHANGE",)), Query(query=LOCAL)]) == [
            True, True, False]
