# Client routes (fakecql/cluster/routes.py), sans I/O: the rows a ClientRoutes
# book keeps, the CLIENT_ROUTES_CHANGE event each change fires, the REST
# API's JSON shapes, and a Scylla-flavour Node serving the rows to the very
# queries scylla-driver 3.29.12 sends (client_routes.py: unprepared QUERY
# messages with bound values, `WHERE connection_id IN (...)` and
# `... AND host_id IN (...)`).
#
# Rules: every answer is compared whole; refusals name what was wrong.
from __future__ import annotations

import uuid
from typing import Any, Dict, List

import pytest

from fakecql.activity import UnexpectedRequest
from fakecql.cluster.routes import TABLE, ClientRoute, ClientRoutes
from fakecql.node import Node
from fakecql.protocol.messages import (
    ClientRoutesChange,
    Event,
    Query,
    QueryParameters,
    Ready,
    Register,
    RowsResult,
    Startup,
)
from fakecql.schema import Schema

H1 = uuid.UUID("11111111-1111-4111-8111-111111111111")
H2 = uuid.UUID("22222222-2222-4222-8222-222222222222")
H3 = uuid.UUID("33333333-3333-4333-8333-333333333333")
ALL_ROUTES = ("SELECT connection_id, host_id, address, port, tls_port FROM system.client_routes "
              "WHERE connection_id IN (?, ?)")
PAIRS = ("SELECT connection_id, host_id, address, port, tls_port FROM system.client_routes "
         "WHERE connection_id IN (?) AND host_id IN (?, ?)")


def route(cid: str, host_id: uuid.UUID, port: int, tls_port: Any = None) -> ClientRoute:
    return ClientRoute(connection_id=cid, host_id=host_id, address="127.0.0.100", port=port, tls_port=tls_port)


@pytest.fixture
def book() -> ClientRoutes:
    routes = ClientRoutes()
    routes.post([route("c1", H2, 9002, 9102), route("c1", H1, 9001, 9101), route("c2", H1, 9201)])
    return routes


def test_post_keeps_rows_in_key_order(book):
    assert [(r.connection_id, r.host_id) for r in book.routes()] == [("c1", H1), ("c1", H2), ("c2", H1)]
    assert book.rows()[0] == {"connection_id": "c1", "host_id": H1, "address": "127.0.0.100", "port": 9001,
                              "tls_port": 9101, "alternator_port": None, "alternator_https_port": None}
    assert [r.host_id for r in book.routes("c1")] == [H1, H2]


def test_post_replaces_a_route_with_the_same_key(book):
    book.post([route("c1", H1, 9501)])
    assert len(book) == 3
    assert [r.port for r in book.routes("c1")] == [9501, 9002]


def test_post_fires_one_pair_per_route_to_every_listener():
    routes = ClientRoutes()
    seen: List[Event] = []
    also: List[Event] = []
    routes.on_change(seen.append)
    routes.on_change(also.append)
    event = routes.post([route("c1", H1, 9001), route("c1", H2, 9002)])
    assert event == Event(event=ClientRoutesChange(change="UPDATE_NODES", connection_ids=("c1", "c1"),
                                                   host_ids=(str(H1), str(H2))))
    assert seen == also == [event]
    assert event.event_type == "CLIENT_ROUTES_CHANGE"


def test_listener_sees_the_rows_already_written():
    routes = ClientRoutes()
    counts: List[int] = []
    routes.on_change(lambda event: counts.append(len(routes)))
    routes.post([route("c1", H1, 9001)])
    assert counts == [1]


def test_delete_removes_rows_and_fires(book):
    seen: List[Event] = []
    book.on_change(seen.append)
    event = book.delete([("c1", H1), ("c9", str(H3))])  # an absent route is no error, as in Scylla
    assert [(r.connection_id, r.host_id) for r in book.routes()] == [("c1", H2), ("c2", H1)]
    assert event.event == ClientRoutesChange(connection_ids=("c1", "c9"), host_ids=(str(H1), str(H3)))
    assert seen == [event]


def test_post_json_takes_the_rest_api_payload():
    routes = ClientRoutes()
    routes.post_json([{"connection_id": "c1", "host_id": str(H1), "address": "nlb.example", "port": 9001,
                       "tls_port": 9101}])
    assert routes.routes() == [ClientRoute(connection_id="c1", host_id=H1, address="nlb.example", port=9001,
                                           tls_port=9101)]
    routes.delete_json([{"connection_id": "c1", "host_id": str(H1)}])
    assert len(routes) == 0


REFUSED = [
    ("empty-connection-id", lambda: route("", H1, 9001), "connection_id must be a non-empty str, got ''"),
    ("host-id-text", lambda: ClientRoute(connection_id="c", host_id=str(H1), address="a", port=1),  # type: ignore[arg-type]
     "host_id must be a uuid.UUID"),
    ("port-zero", lambda: route("c", H1, 0), "port must be an integer in 1..65535, got 0"),
    ("port-none", lambda: route("c", H1, None), "port must be an integer in 1..65535, got None"),  # type: ignore[arg-type]
    ("tls-port-big", lambda: route("c", H1, 1, 70000), "tls_port must be an integer in 1..65535, got 70000"),
    ("no-address", lambda: ClientRoute(connection_id="c", host_id=H1, address="", port=1),
     "address must be a non-empty str"),
    ("json-not-list", lambda: ClientRoutes().post_json({"connection_id": "c"}),  # type: ignore[arg-type]
     "payload must be a JSON list of routes"),
    ("json-unknown-field", lambda: ClientRoutes().post_json([{"connection_id": "c", "host_id": str(H1),
                                                               "address": "a", "port": 1, "weight": 3}]),
     "unknown fields ['weight']"),
    ("json-missing", lambda: ClientRoutes().post_json([{"connection_id": "c", "host_id": str(H1)}]),
     "lacks ['address', 'port']"),
    ("json-bad-host-id", lambda: ClientRoutes().post_json([{"connection_id": "c", "host_id": "nope",
                                                             "address": "a", "port": 1}]),
     "host_id must be a UUID, got 'nope'"),
    ("json-delete-shape", lambda: ClientRoutes().delete_json([{"connection_id": "c"}]),
     "a client route to delete must be {connection_id, host_id}"),
]


@pytest.mark.parametrize("build, words", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused(build, words):
    with pytest.raises(ValueError) as info:
        build()
    assert words in str(info.value)


def test_post_refuses_what_is_not_a_route():
    with pytest.raises(TypeError, match="post\\(\\) takes ClientRoute objects"):
        ClientRoutes().post([{"connection_id": "c"}])  # type: ignore[list-item]


def test_a_bad_route_in_a_batch_writes_nothing():
    routes = ClientRoutes()
    with pytest.raises(ValueError):
        routes.post_json([{"connection_id": "c", "host_id": str(H1), "address": "a", "port": 1},
                          {"connection_id": "c", "host_id": str(H2), "address": "a", "port": 0}])
    assert len(routes) == 0


# -- served by a Scylla-flavour node ------------------------------------------------------------

def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _rows(result: Any) -> List[Dict[str, Any]]:
    assert isinstance(result, RowsResult), result
    columns = result.metadata.columns
    return [{c.name: None if cell is None else c.type.deserialize(cell) for c, cell in zip(columns, row)}
            for row in result.rows]


@pytest.fixture
def node(book: ClientRoutes) -> Node:
    node = Node(schema=Schema(flavor="scylla"))
    book.install(node)
    return node


def _session(node: Node) -> Any:
    session = node.session(1)
    assert session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), 4, 0) == Ready()
    return session


def test_node_serves_the_drivers_full_refresh(node):
    session = _session(node)
    result = session.handle(Query(query=ALL_ROUTES, parameters=QueryParameters(values=(_text("c1"), _text("c2")))), 4, 1)
    assert _rows(result) == [
        {"connection_id": "c1", "host_id": H1, "address": "127.0.0.100", "port": 9001, "tls_port": 9101},
        {"connection_id": "c1", "host_id": H2, "address": "127.0.0.100", "port": 9002, "tls_port": 9102},
        {"connection_id": "c2", "host_id": H1, "address": "127.0.0.100", "port": 9201, "tls_port": None},
    ]
    assert not [e for e in node.activity.entries if isinstance(e, UnexpectedRequest)]


def test_node_serves_the_drivers_change_event_query(node, book):
    session = _session(node)
    book.post([route("c1", H3, 9003, 9103)])
    values = (_text("c1"), H1.bytes, H3.bytes)
    result = session.handle(Query(query=PAIRS, parameters=QueryParameters(values=values)), 4, 1)
    assert [(r["host_id"], r["tls_port"]) for r in _rows(result)] == [(H1, 9101), (H3, 9103)]


def test_node_without_routes_has_an_empty_table():
    session = _session(Node(schema=Schema(flavor="scylla")))
    result = session.handle(Query(query=ALL_ROUTES, parameters=QueryParameters(values=(_text("c1"), _text("c2")))), 4, 1)
    assert _rows(result) == []


def test_install_uses_the_tables_key():
    node = Node(schema=Schema(flavor="scylla"))
    ClientRoutes().install(node)
    assert TABLE in node.row_sources and TABLE == ("system", "client_routes")


def test_node_accepts_register_for_client_routes_change(node):
    session = _session(node)
    assert session.handle(Register(event_types=("CLIENT_ROUTES_CHANGE", "STATUS_CHANGE")), 4, 2) == Ready()
    assert "CLIENT_ROUTES_CHANGE" in session.registered


def test_node_serves_the_upstream_tests_visibility_query(node):
    """test_client_routes.py polls every node with this before it connects through the NLB."""
    session = _session(node)
    text = "SELECT * FROM system.client_routes WHERE connection_id = 'c1' ALLOW FILTERING"
    rows = _rows(session.handle(Query(query=text, parameters=QueryParameters()), 4, 1))
    assert [(r["connection_id"], r["host_id"], r["port"]) for r in rows] == [("c1", H1, 9001), ("c1", H2, 9002)]
    assert set(rows[0]) == {"connection_id", "host_id", "address", "port", "tls_port", "alternator_port",
                            "alternator_https_port"}
