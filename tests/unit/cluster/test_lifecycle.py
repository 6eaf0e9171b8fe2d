# CQLCluster against bare clients: every node answers from the shared ring
# (system.local, system.peers), and each lifecycle step does to connections
# what it says (stop: FIN and refused; kill: RST; pause: accepted, unanswered;
# resume and restart: answered again, same host id) and pushes the event a
# real cluster pushes, to REGISTERed connections of the *other* nodes only.
# Schema changes through cluster.schema reach every node's registered
# connections. Misuse gets a ValueError naming the node and its state.
from __future__ import annotations

import ipaddress
import socket
import uuid
from typing import List, Tuple

import pytest

from fakecql.cluster import CQLCluster
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import (
    Error,
    Event,
    Execute,
    Prepare,
    PreparedResult,
    Query,
    Ready,
    Register,
    RowsResult,
    SchemaChange,
    StatusChange,
    TopologyChange,
)
from fakecql.protocol.types import INET, UUID
from fakecql.server import UnexpectedActivityError

from ...rawcql import RawClient

EVENTS = ("TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE")


def registered(address: Tuple[str, int], events: Tuple[str, ...] = EVENTS) -> RawClient:
    client = RawClient(address, timeout=3.0)
    assert isinstance(client.start(), Ready)
    if events:
        assert isinstance(client.request(Register(event_types=events)), Ready)
    return client


def next_event(client: RawClient) -> Event:
    frame, message = client.read()
    assert frame.header.stream == -1 and isinstance(message, Event), message
    return message


def no_event(client: RawClient, seconds: float = 0.3) -> bool:
    client.timeout, saved = seconds, client.timeout
    try:
        client.read()
    except TimeoutError:
        return True
    finally:
        client.timeout = saved
    return False


def rows(client: RawClient, query: str) -> List[Tuple[object, ...]]:
    answer = client.request(Query(query=query))
    assert isinstance(answer, RowsResult), answer
    return [tuple(row) for row in answer.rows]


def host_id_of(client: RawClient) -> uuid.UUID:
    ((cell,),) = rows(client, "SELECT host_id FROM system.local")
    assert cell is not None
    return UUID.deserialize(cell)


def test_every_node_serves_the_ring(cluster: CQLCluster) -> None:
    assert cluster.contact_points == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    for n in cluster.nodes:
        with registered(n.address, ()) as client:
            assert host_id_of(client) == n.host_id
            peers = rows(client, "SELECT peer, host_id FROM system.peers")
            assert sorted(INET.deserialize(p) for p, _ in peers) == sorted(
                ipaddress.ip_address(o.host) for o in cluster.nodes if o is not n)
            assert len(rows(client, "SELECT peer FROM system.peers_v2")) == 2
            versions = {v for (v,) in rows(client, "SELECT schema_version FROM system.peers")}
            assert versions == {UUID.serialize(cluster.schema.version)}


def test_stop_closes_refuses_and_tells_the_others(cluster: CQLCluster) -> None:
    with registered(cluster.node(0).address) as watcher, registered(cluster.node(1).address) as victim, \
            registered(cluster.node(2).address, ()) as unregistered:
        cluster.stop_node(1)
        assert victim.closed_by_peer()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(cluster.node(1).address, timeout=2).close()
        event = next_event(watcher)
        assert event.event == StatusChange(change="DOWN", address=ipaddress.ip_address("127.0.0.2"), port=cluster.port)
        assert no_event(unregistered)  # only REGISTERed connections hear events
        assert cluster.node(1).state == "stopped"
        host_id = cluster.node(1).host_id
        cluster.restart(1)
        assert next_event(watcher).event == StatusChange(
            change="UP", address=ipaddress.ip_address("127.0.0.2"), port=cluster.port)
        with registered(cluster.node(1).address, ()) as again:
            assert host_id_of(again) == host_id
        assert cluster.node(1).state == "up"


def test_kill_resets_every_connection(cluster: CQLCluster) -> None:
    with registered(cluster.node(2).address) as watcher, registered(cluster.node(0).address, ()) as victim:
        cluster.kill(0)
        with pytest.raises(ConnectionResetError):
            victim.sock.settimeout(3)
            victim.sock.recv(100)
        assert next_event(watcher).event.change == "DOWN"
        assert cluster.node(0).state == "killed"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(cluster.node(0).address, timeout=2).close()
        cluster.restart(0)
        with registered(cluster.node(0).address, ()) as again:
            assert host_id_of(again) == cluster.node(0).host_id


def test_a_restarted_node_has_forgotten_its_prepared_statements(cluster: CQLCluster) -> None:
    with registered(cluster.node(1).address, ()) as client:
        prepared = client.request(Prepare(query="SELECT key FROM system.local"))
        assert isinstance(prepared, PreparedResult)
        assert isinstance(client.request(Execute(query_id=prepared.query_id)), RowsResult)
    cluster.restart(1)
    with registered(cluster.node(1).address, ()) as client:
        answer = client.request(Execute(query_id=prepared.query_id))
        assert isinstance(answer, Error) and answer.code == ErrorCode.UNPREPARED


def test_pause_accepts_and_answers_nothing_until_resume(cluster: CQLCluster) -> None:
    with registered(cluster.node(0).address) as watcher, registered(cluster.node(1).address, ()) as held:
        cluster.pause(1)
        assert next_event(watcher).event.change == "DOWN"
        held.send(Query(query="SELECT host_id FROM system.local"), stream=7)
        assert no_event(held, 0.5)  # no answer: the node reads nothing
        late = RawClient(cluster.node(1).address, timeout=0.5)  # accepted (the kernel's backlog, then the node)
        late.send(Query(query="SELECT key FROM system.local"))
        with pytest.raises(TimeoutError):
            late.read()
        cluster.resume(1)
        assert next_event(watcher).event.change == "UP"
        frame, answer = held.read()
        assert frame.header.stream == 7 and isinstance(answer, RowsResult)
        late.timeout = 3
        late.read()  # answered now (an error: it never sent STARTUP)
        late.close()
        cluster.node(1).server.activity.take_incidents()  # the late client's query before STARTUP


def test_add_and_decommission_change_every_peers_table(cluster: CQLCluster) -> None:
    with registered(cluster.node(0).address) as watcher:
        added = cluster.add_node("dc2")
        assert (added.index, added.host, added.data_center, added.port) == (3, "127.0.0.4", "dc2", cluster.port)
        assert next_event(watcher).event == TopologyChange(
            change="NEW_NODE", address=ipaddress.ip_address("127.0.0.4"), port=cluster.port)
        peers = {INET.deserialize(p) for (p,) in rows(watcher, "SELECT peer FROM system.peers")}
        assert ipaddress.ip_address("127.0.0.4") in peers
        with registered(added.address, ()) as client:
            assert len(rows(client, "SELECT peer FROM system.peers")) == 3
        cluster.decommission(1)
        assert next_event(watcher).event == TopologyChange(
            change="REMOVED_NODE", address=ipaddress.ip_address("127.0.0.2"), port=cluster.port)
        peers = {INET.deserialize(p) for (p,) in rows(watcher, "SELECT peer FROM system.peers")}
        assert peers == {ipaddress.ip_address("127.0.0.3"), ipaddress.ip_address("127.0.0.4")}
        assert [n.index for n in cluster.nodes] == [0, 2, 3]
        with pytest.raises(ValueError, match="no node 1 in the cluster \\(it was decommissioned\\)"):
            cluster.node(1)


def test_schema_changes_reach_every_node(cluster: CQLCluster) -> None:
    clients = [registered(n.address) for n in cluster.nodes]
    try:
        cluster.schema.add_keyspace("shop", {"class": "NetworkTopologyStrategy", "dc1": 2, "dc2": 1})
        cluster.schema.add_table("shop", "items", {"id": "int", "name": "text"}, partition_key="id")
        for client in clients:
            assert next_event(client).event == SchemaChange(change_type="CREATED", target="KEYSPACE", keyspace="shop")
            assert next_event(client).event == SchemaChange(
                change_type="CREATED", target="TABLE", keyspace="shop", name="items")
        versions = {UUID.deserialize(v) for c in clients for (v,) in rows(c, "SELECT schema_version FROM system.local")}
        assert versions == {cluster.schema.version}
    finally:
        for client in clients:
            client.close()


def test_status_events_wait_for_the_status_delay() -> None:
    with CQLCluster(2, status_delay=0.2) as fake:
        with registered(fake.node(0).address) as watcher:
            fake.stop_node(1)
            assert next_event(watcher).event.change == "DOWN"
            fake.restart(1)
            fake.stop_node(1)  # the UP and DOWN both arrive, in order
            assert [next_event(watcher).event.change for _ in range(2)] == ["UP", "DOWN"]
        fake.restart(1)
    assert fake.leftovers() == []


def test_push_event_reaches_every_running_node(cluster: CQLCluster) -> None:
    with registered(cluster.node(0).address) as a, registered(cluster.node(2).address) as b:
        event = Event(event=StatusChange(change="UP", address=ipaddress.ip_address("127.0.0.9"), port=1))
        cluster.push_event(event)
        assert next_event(a) == event and next_event(b) == event


def test_misuse_is_refused_by_name(cluster: CQLCluster) -> None:
    cluster.stop_node(2)
    with pytest.raises(ValueError, match=r"cannot stop node 2 \(127.0.0.3\): it is stopped"):
        cluster.stop_node(2)
    with pytest.raises(ValueError, match="cannot pause node 2 .*it must be up"):
        cluster.pause(2)
    with pytest.raises(ValueError, match="cannot resume node 0 .*it is up"):
        cluster.resume(0)
    with pytest.raises(ValueError, match="no node 7 in the cluster"):
        cluster.kill(7)
    cluster.restart(2)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="CQLCluster sets host of each node itself"):
        CQLCluster(2, host="127.0.0.1")
    with pytest.raises(ValueError, match="status_delay"):
        CQLCluster(2, status_delay=-1)
    with pytest.raises(ValueError, match="port must be"):
        CQLCluster(2, port=70000)
    with pytest.raises(RuntimeError, match="not running"):
        CQLCluster(2).kill(0)


def test_check_lists_every_nodes_incidents(cluster: CQLCluster) -> None:
    for index in (0, 2):
        with registered(cluster.node(index).address, ()) as client:
            client.request(Query(query="SELECT nothing FROM app.missing"))
    with pytest.raises(UnexpectedActivityError) as raised:
        cluster.check()
    text = str(raised.value)
    assert "node 0 (dc1/rack1)" in text and "node 2 (dc2/rack1)" in text and "app.missing" in text
    for n in cluster.nodes:
        n.server.activity.take_incidents()
    cluster.check()


def test_membership_listeners_hear_joins_and_departures(cluster: CQLCluster) -> None:
    heard: List[Tuple[str, int, str]] = []
    cluster.on_membership(lambda change, node: heard.append((change, node.index, node.state)))
    added = cluster.add_node()
    cluster.decommission(added.index)
    assert heard == [("NEW_NODE", added.index, "up"), ("REMOVED_NODE", added.index, "stopped")]


def test_a_failing_membership_listener_undoes_add_node(cluster: CQLCluster) -> None:
    before = [n.index for n in cluster.nodes]

    def refuse(change: str, node: object) -> None:
        raise RuntimeError("cannot follow")

    cluster.on_membership(refuse)
    with registered(cluster.node(0).address) as watcher:
        with pytest.raises(RuntimeError, match="cannot follow"):
            cluster.add_node()
        assert [n.index for n in cluster.nodes] == before
        assert len(cluster.topology.members) == len(before)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.4", cluster.port), timeout=3.0).close()
        assert no_event(watcher)  # no NEW_NODE announced


def test_a_membership_listener_must_be_callable(cluster: CQLCluster) -> None:
    with pytest.raises(TypeError, match="must be callable"):
        cluster.on_membership("not a function")  # type: ignore[arg-type]
