# A 3-node Scylla cluster of 4 shards per node, over TLS, against the installed
# driver (issue 12: "In Scylla flavour with 4 shards, scylla-driver holds 4
# connections per node and routes a token-aware query to the shard the log
# names").
#
# scylla-driver learns each node's shards from SUPPORTED on its first pool
# connection and opens one connection per other shard to the node's
# shard-aware TLS port (the same port on every node), so its pools and every
# node's log must show shards {0, 1, 2, 3} per node; a token-aware prepared
# query must reach the replica fakecql's topology names, on the shard
# fakecql's own sharding computes for its key. cassandra-driver ignores the
# shard keys: one pool connection per node, the replica still right. The
# nodes say release_version 3.0.8, as a Scylla does, so the driver reads the
# schema with its Cassandra-3 parser: the table's metadata must come through.
from __future__ import annotations

import struct
from typing import Any, Callable, Dict, List, Set

from fakecql.activity import ConnectionClosed, ConnectionOpened, FrameReceived
from fakecql.cluster import ClusterNode, CQLCluster, routing_key
from fakecql.tls import client_context

from .. import waiting
from .helpers import is_scylla_driver, uses_ssl_port_with_ssl_context

NR_SHARDS = 4
SELECT = "SELECT v FROM app.kv WHERE k = ?"
WAIT = 15.0


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    waiting.wait_until(what, predicate, timeout)


def pool_shards_seen_by(node: ClusterNode) -> List[int]:
    """The shards of the connections the node holds open, the control connection's aside."""
    entries = node.activity.entries
    closed = {e.connection for e in entries if isinstance(e, ConnectionClosed)}
    control = {e.connection for e in entries if isinstance(e, FrameReceived) and e.opcode == "REGISTER"}
    return sorted(e.shard for e in entries  # type: ignore[misc]
                  if isinstance(e, ConnectionOpened) and e.connection not in closed | control)


def test_scylla_cluster_of_4_shards(
    cql_cluster_factory: Callable[..., CQLCluster], cql_ca: Any, driver_clusters: List[Any]
) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy

    fake = cql_cluster_factory(3, flavor="scylla", shards=NR_SHARDS)  # TLS, a certificate per node
    fake.schema.add_keyspace("app", {"class": "SimpleStrategy", "replication_factor": "1"})
    fake.schema.add_table("app", "kv", {"k": "int", "v": "text"}, partition_key="k")
    port = fake.shard_aware_port
    assert port is not None and [n.server.shard_aware_port for n in fake.nodes] == [port] * 3

    cluster = Cluster(
        contact_points=fake.contact_points[:1], port=fake.port,
        ssl_context=client_context(cql_ca, check_hostname=True),
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy()))},
        connect_timeout=5, control_connection_timeout=5,
    )
    driver_clusters.append(cluster)
    session = cluster.connect()
    # What a Scylla says, and the driver's schema parser for it still reads the table.
    assert {h.release_version for h in cluster.metadata.all_hosts()} == {"3.0.8"}
    assert [c.name for c in cluster.metadata.keyspaces["app"].tables["kv"].partition_key] == ["k"]
    assert sorted(h.address for h in cluster.metadata.all_hosts()) == fake.contact_points

    scylla = is_scylla_driver()
    per_node = NR_SHARDS if scylla else 1

    def pools() -> Dict[str, Any]:
        return {h.address: p for h, p in session._pools.items()}

    wait_until(f"{per_node} pool connection(s) to each of the 3 nodes", lambda: sorted(pools()) == fake.contact_points
               and all(len(p._connections if scylla else [p._connection]) == per_node for p in pools().values())
               and all(len(pool_shards_seen_by(n)) == per_node for n in fake.nodes))
    for n in fake.nodes:
        pool = pools()[n.host]
        if scylla:
            assert sorted(pool._connections) == list(range(NR_SHARDS))
            assert {s: c.features.shard_id for s, c in pool._connections.items()} == {s: s for s in range(NR_SHARDS)}
            assert pool.host.sharding_info.shards_count == NR_SHARDS
            if uses_ssl_port_with_ssl_context():
                assert pool._get_shard_aware_endpoint().port == port  # the TLS shard-aware port, the same everywhere
            else:  # scylla-driver 3.29.10 with an ssl_context: its pool fills through the ordinary port
                assert pool._get_shard_aware_endpoint() is None
            assert pool_shards_seen_by(n) == list(range(NR_SHARDS)), n
        else:
            assert len(pool_shards_seen_by(n)) == 1
    state = session.get_pool_state()
    assert sorted(s["open_count"] for s in state.values()) == [per_node] * 3

    # Token-aware: each EXECUTE reaches the key's replica, on the shard fakecql computes.
    prepared = session.prepare(SELECT)
    assert prepared.routing_key_indexes == [0]
    expected = []
    for k in range(40):
        key = routing_key(struct.pack(">i", k))
        (replica,) = fake.replicas(key, "app")
        assert replica.server.sharding is not None
        expected.append((f"{replica.host}:{fake.port}", replica.server.sharding.shard_of_key(key)))
        assert session.execute(prepared, [k]).all() == []
    executes = fake.requests(SELECT, opcode="EXECUTE")
    assert [e.node for e in executes] == [node for node, _ in expected]
    assert {node for node, _ in expected} == {f"{n.host}:{fake.port}" for n in fake.nodes}  # routing, not luck
    shards_named: Set[int] = {shard for _, shard in expected}
    assert shards_named == set(range(NR_SHARDS))
    if scylla:
        assert [(e.node, e.shard) for e in executes] == expected  # the shard the log names is fakecql's own
    for n in fake.nodes:
        assert [e.node for e in fake.requests(SELECT, node=n.index, opcode="EXECUTE")] == \
            [node for node, _ in expected if node == f"{n.host}:{fake.port}"]
