# A real driver against a CQLCluster: pools to every node of a 3-node, 2-DC
# TLS cluster; a killed node marked down and avoided, then back up after a
# restart; a node added and connected to; token-aware queries landing on the
# replica that fakecql's own topology computes; STATUS_CHANGE, TOPOLOGY_CHANGE
# and SCHEMA_CHANGE events reaching the driver's control connection.
#
# Rules: the driver is imported inside the tests; every Cluster is shut down;
# every wait is bounded (wait_until raises with what it waited for). The
# driver's event windows are shortened (not zero: the real code path runs).
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List

from fakecql.activity import FrameReceived
from fakecql.cluster import CQLCluster, routing_key
from fakecql.tls import client_context

from .. import waiting

WAIT = 20.0  # seconds: a driver reconnects on its own schedule (1 s, 2 s, ... backoff) or on an event


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    waiting.wait_until(what, predicate, timeout)


def connect(fake: CQLCluster, ca: Any, clusters: List[Any], local_dc: str = "dc1") -> Any:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=local_dc, used_hosts_per_remote_dc=1))
    # One contact point: the driver finds the others in system.peers, and its control
    # connection (the one REGISTERed for events) is on node 0, which the tests never stop.
    # (A driver whose control connection is on the node that dies hears no event about
    # it, from a real cluster too: cassandra-driver then notices at its next heartbeat.)
    cluster = Cluster(
        contact_points=fake.contact_points[:1], port=fake.port,
        ssl_context=client_context(ca, check_hostname=True),
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=policy)},
        connect_timeout=5, control_connection_timeout=5,
        topology_event_refresh_window=0.2, status_event_refresh_window=0.2, schema_event_refresh_window=0.2,
    )
    clusters.append(cluster)
    return cluster


def executes_by_node(fake: CQLCluster) -> Dict[int, int]:
    return {n.index: sum(1 for e in n.server.activity.of_type(FrameReceived) if e.opcode == "EXECUTE")
            for n in fake.nodes}


def host_of(cluster: Any, node: Any) -> Any:
    for host in cluster.metadata.all_hosts():
        if host.address == node.host:
            return host
    return None


def with_app_schema(fake: CQLCluster) -> None:
    fake.schema.add_keyspace("app", {"class": "NetworkTopologyStrategy", "dc1": 1, "dc2": 1})
    fake.schema.add_table("app", "kv", {"k": "int", "v": "text"}, partition_key="k")


def test_pools_kill_restart_add_and_token_aware_routing(
    cql_cluster_factory: Callable[..., CQLCluster], cql_ca: Any, driver_clusters: List[Any]
) -> None:
    fake = cql_cluster_factory([2, 1])  # 3 TLS nodes: 127.0.0.1, .2 in dc1, .3 in dc2
    with_app_schema(fake)
    cluster = connect(fake, cql_ca, driver_clusters)
    session = cluster.connect()

    # Pools to every node, and every node holds connections.
    assert sorted(h.address for h in cluster.metadata.all_hosts()) == fake.contact_points
    # scylla-driver's connect() returns once the first pool is up; the others follow.
    wait_until("pools open to all 3 nodes", lambda: sorted(
        h.address for h, state in session.get_pool_state().items() if state["open_count"] >= 1
    ) == fake.contact_points)
    assert all(n.server.connection_count() >= 1 for n in fake.nodes)
    assert {h.address: h.datacenter for h in cluster.metadata.all_hosts()} == {
        "127.0.0.1": "dc1", "127.0.0.2": "dc1", "127.0.0.3": "dc2"}

    # Token-aware: each EXECUTE lands on the dc1 replica fakecql's topology names.
    select = session.prepare("SELECT v FROM app.kv WHERE k = ?")
    assert select.routing_key_indexes == [0]
    landed = set()
    for k in range(24):
        (replica,) = [n for n in fake.replicas(routing_key(struct.pack(">i", k)), "app") if n.data_center == "dc1"]
        before = executes_by_node(fake)
        session.execute(select, [k])
        after = executes_by_node(fake)
        moved = {i for i in after if after[i] != before.get(i, 0)}
        assert moved == {replica.index}, (k, replica, before, after)
        landed.add(replica.index)
    assert landed == {0, 1}  # the keys spread over both dc1 nodes: routing, not luck

    # Kill a dc1 node: the driver marks it down and queries go to the other.
    killed = fake.node(1)
    fake.kill(1)
    wait_until("the driver marks 127.0.0.2 down", lambda: not host_of(cluster, killed).is_up)
    before = executes_by_node(fake)
    for k in range(10):
        session.execute(select, [k])
    after = executes_by_node(fake)
    assert after[1] == before[1]
    assert sum(after.values()) - sum(before.values()) == 10  # all answered, by the others

    # Restart it: back up in the driver, with a pool again.
    fake.restart(1)
    wait_until("the driver marks 127.0.0.2 up", lambda: host_of(cluster, killed).is_up)
    wait_until("a pool to 127.0.0.2 again",
               lambda: session.get_pool_state().get(host_of(cluster, killed), {}).get("open_count", 0) >= 1)
    assert killed.server.connection_count() >= 1

    # Add a node: the driver learns it from the NEW_NODE event and connects to it.
    added = fake.add_node("dc1")
    assert added.host == "127.0.0.4"
    wait_until("the driver knows 127.0.0.4", lambda: host_of(cluster, added) is not None)
    wait_until("a pool to 127.0.0.4",
               lambda: session.get_pool_state().get(host_of(cluster, added), {}).get("open_count", 0) >= 1)
    assert added.server.connection_count() >= 1
    # The new ring routes too: fakecql's replica computation and the driver's agree.
    for k in range(24):
        (replica,) = [n for n in fake.replicas(routing_key(struct.pack(">i", k)), "app") if n.data_center == "dc1"]
        before = executes_by_node(fake)
        session.execute(select, [k])
        after = executes_by_node(fake)
        assert {i for i in after if after[i] != before.get(i, 0)} == {replica.index}, (k, replica)


def test_scylla_flavour_cluster_routes_token_aware_too(
    cql_cluster_factory: Callable[..., CQLCluster], cql_ca: Any, driver_clusters: List[Any]
) -> None:
    # No system.peers_v2 on Scylla: the driver falls back to system.peers (no incident).
    fake = cql_cluster_factory([2, 1], flavor="scylla", racks=2)
    with_app_schema(fake)
    cluster = connect(fake, cql_ca, driver_clusters)
    session = cluster.connect()
    wait_until("pools open to all 3 nodes", lambda: sorted(
        h.address for h, state in session.get_pool_state().items() if state["open_count"] >= 1
    ) == fake.contact_points)
    assert {h.address: h.rack for h in cluster.metadata.all_hosts()} == {
        "127.0.0.1": "rack1", "127.0.0.2": "rack2", "127.0.0.3": "rack1"}
    insert = session.prepare("INSERT INTO app.kv (k, v) VALUES (?, ?)")
    assert insert.routing_key_indexes == [0]
    for k in range(12):
        (replica,) = [n for n in fake.replicas(routing_key(struct.pack(">i", k)), "app") if n.data_center == "dc1"]
        before = executes_by_node(fake)
        session.execute(insert, [k, "v"])
        after = executes_by_node(fake)
        assert {i for i in after if after[i] != before.get(i, 0)} == {replica.index}, (k, replica)


def test_decommission_removes_the_host_from_the_driver(
    cql_cluster_factory: Callable[..., CQLCluster], cql_ca: Any, driver_clusters: List[Any]
) -> None:
    fake = cql_cluster_factory(3, tls=False)
    cluster = connect(fake, cql_ca, driver_clusters)
    cluster.ssl_context = None
    session = cluster.connect()
    wait_until("pools open to all 3 nodes", lambda: len(session.get_pool_state()) == 3)
    gone = fake.decommission(2)
    wait_until("the driver forgets 127.0.0.3", lambda: host_of(cluster, gone) is None)
    assert sorted(h.address for h in cluster.metadata.all_hosts()) == ["127.0.0.1", "127.0.0.2"]


def test_schema_change_through_the_cluster_reaches_the_driver(
    cql_cluster_factory: Callable[..., CQLCluster], cql_ca: Any, driver_clusters: List[Any]
) -> None:
    fake = cql_cluster_factory([2, 1])
    cluster = connect(fake, cql_ca, driver_clusters)
    cluster.connect()
    assert "shop" not in cluster.metadata.keyspaces
    fake.schema.add_keyspace("shop", {"class": "NetworkTopologyStrategy", "dc1": 2, "dc2": 1})
    wait_until("the driver sees keyspace shop", lambda: "shop" in cluster.metadata.keyspaces)
    strategy = cluster.metadata.keyspaces["shop"].replication_strategy
    assert type(strategy).__name__ == "NetworkTopologyStrategy"
    assert strategy.dc_replication_factors == {"dc1": 2, "dc2": 1}
    fake.schema.add_table("shop", "items", {"id": "uuid", "name": "text"}, partition_key="id")
    wait_until("the driver sees table shop.items", lambda: "items" in cluster.metadata.keyspaces["shop"].tables)


def test_readme_cluster_example_runs(pytester: Any) -> None:
    import re
    from pathlib import Path

    from .helpers import pytester_ini

    readme = Path(__file__).resolve().parents[2] / "README.md"
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    (example,) = [b for b in blocks if "def test_" in b and "cql_cluster" in b]
    pytester.makeini(pytester_ini())
    pytester.makepyfile(test_cluster_example=example)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
