# A Scylla node of 4 shards (CQLServer(shards=4), Scylla-flavoured schema)
# against the installed driver, plain and TLS.
#
# scylla-driver reads the shard keys of SUPPORTED: its first pool connection
# (ordinary port, round-robin) tells it the shard count, and it opens one
# connection per other shard to the shard-aware port from a source port
# naming that shard. So it must hold 4 connections, one per shard, agreeing
# with the node's log; and a token-aware prepared query must be served on
# the shard that owns its partition key's token, as fakecql computes it.
# cassandra-driver ignores the keys: it must connect and query through one
# pool connection. Each test asserts what the installed driver must do; the
# pool is checked under every reactor that binds the shard's source port.
from __future__ import annotations

import re
import struct
from typing import Any, Dict, List, Optional, Set

import pytest

from fakecql import ConnectionClosed, ConnectionOpened, CQLServer, FrameReceived, Node, Schema
from fakecql.shards import Sharding

from ..waiting import eventually
from .helpers import is_scylla_driver, uses_ssl_port_with_ssl_context

NR_SHARDS = 4
SELECT = "SELECT v FROM ks.t WHERE id = ?"


def _scylla_node() -> Node:
    schema = Schema(flavor="scylla")
    schema.add_keyspace("ks", replication={"class": "SimpleStrategy", "replication_factor": "1"})
    schema.add_table("ks", "t", columns={"id": "int", "v": "text"}, partition_key=["id"])
    return Node(schema=schema)


@pytest.fixture(params=["plain", "tls"])
def sharded(request, cql_server_factory, cql_ca, cluster_factory):  # type: ignore[no-untyped-def]
    """(server, cluster(reactor=None)): a 4-shard Scylla node, plain or TLS, and a
    maker of token-aware driver Clusters for it."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy, TokenAwarePolicy

    from fakecql import client_context

    tls = request.param == "tls"
    server = cql_server_factory(tls=tls, shards=NR_SHARDS, node=_scylla_node())

    def cluster(reactor: Optional[str] = None) -> Any:
        options: Dict[str, Any] = {"execution_profiles": {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=TokenAwarePolicy(RoundRobinPolicy())),
        }}
        if tls:
            options["ssl_context"] = client_context(cql_ca, check_hostname=True)
        return cluster_factory(server, reactor=reactor, **options)

    return server, cluster


def _control_connections(server: CQLServer) -> Set[int]:
    return {f.connection for f in server.activity.of_type(FrameReceived) if f.opcode == "REGISTER"}


def _open_pool_connections(server: CQLServer) -> List[ConnectionOpened]:
    """What the node sees of the driver's pool: its open connections but the control connection's."""
    closed = {e.connection for e in server.activity.of_type(ConnectionClosed)}
    control = _control_connections(server)
    return [e for e in server.activity.of_type(ConnectionOpened) if e.connection not in closed | control]


def _pool(session: Any) -> Any:
    pools = list(session._pools.values())
    assert len(pools) == 1, pools
    return pools[0]


# The reactors that bind the connection's source port: the driver's own
# (base Connection._connect_socket) and cqltransport's, which keeps it.
@pytest.mark.parametrize("reactor", ["libev", "asyncore", "transport"])
def test_pool_holds_one_connection_per_shard(reactor, sharded):  # type: ignore[no-untyped-def]
    server, make_cluster = sharded
    cluster = make_cluster(reactor)
    session = cluster.connect()
    assert session.execute("SELECT release_version FROM system.local").one() is not None
    if not is_scylla_driver():  # cassandra-driver: one pool connection, the keys ignored
        assert eventually(lambda: len(_open_pool_connections(server)) == 1, 5)
        (state,) = session.get_pool_state().values()
        assert state["open_count"] == 1
        assert cluster.metadata.all_hosts()[0].is_up
        return
    pool = _pool(session)
    assert eventually(lambda: len(pool._connections) == NR_SHARDS and len(_open_pool_connections(server)) == NR_SHARDS, 10), \
        (pool._connections, _open_pool_connections(server))
    (state,) = session.get_pool_state().values()
    assert state["open_count"] == NR_SHARDS
    assert {shard: conn.features.shard_id for shard, conn in pool._connections.items()} == \
        {shard: shard for shard in range(NR_SHARDS)}
    assert pool.host.sharding_info.shards_count == NR_SHARDS
    opened = _open_pool_connections(server)
    assert sorted(e.shard for e in opened) == list(range(NR_SHARDS))
    if server.is_tls and not uses_ssl_port_with_ssl_context():
        # scylla-driver 3.29.10: every pool connection through the ordinary port, in turn.
        assert not [e for e in opened if e.shard_aware]
        assert pool._get_shard_aware_endpoint() is None
        return
    # The first pool connection came through the ordinary port, the others through
    # the shard-aware one, each from a source port naming its shard.
    assert pool._get_shard_aware_endpoint().port == server.shard_aware_port
    assert sum(not e.shard_aware for e in opened) == 1
    assert all(e.peer[1] % NR_SHARDS == e.shard for e in opened if e.shard_aware)
    # Every connection the driver opened to the shard-aware port landed where it asked:
    # it never had to give up on the port (which it does when one lands elsewhere).
    assert pool.advanced_shardaware_block_until == 0


def _keys_covering_every_shard(sharding: Sharding) -> Dict[int, int]:
    """Partition keys (int) -> the shard fakecql says owns them, until every shard has two."""
    found: Dict[int, int] = {}
    key = 0
    while any(list(found.values()).count(shard) < 2 for shard in range(sharding.nr_shards)):
        found[key] = sharding.shard_of_key(struct.pack(">i", key))
        key += 1
    return found


def test_metadata_queries_of_a_scylla_node(sharded):  # type: ignore[no-untyped-def]
    """With sharding info, scylla-driver treats the node as Scylla: no peers_v2, and
    ` USING TIMEOUT` on its metadata queries, which the Scylla-flavoured schema answers
    (the factory fails the test on any incident). cassandra-driver probes peers_v2,
    which a Scylla lacks, and falls back to peers."""
    server, make_cluster = sharded
    cluster = make_cluster()
    cluster.connect()
    assert cluster.metadata.keyspaces["ks"].tables["t"].partition_key[0].name == "id"
    assert cluster.metadata.token_map is not None
    control = _control_connections(server)
    queries = [f.query or "" for f in server.activity.of_type(FrameReceived)
               if f.opcode == "QUERY" and f.connection in control]
    assert any(re.search(r"FROM system\.peers( |$)", q) for q in queries), queries
    if is_scylla_driver():
        assert not [q for q in queries if "peers_v2" in q]
        assert queries and all(q.endswith("ms") and " USING TIMEOUT " in q for q in queries), queries
    else:
        assert [q for q in queries if "peers_v2" in q]
        assert not [q for q in queries if "USING TIMEOUT" in q]


def test_token_aware_query_is_served_by_the_shard_of_its_key(sharded):  # type: ignore[no-untyped-def]
    server, make_cluster = sharded
    session = make_cluster().connect()
    keys = _keys_covering_every_shard(server.sharding)
    assert set(keys.values()) == set(range(NR_SHARDS))
    prepared = session.prepare(SELECT)
    scylla = is_scylla_driver()
    if scylla:
        pool = _pool(session)
        assert eventually(lambda: len(pool._connections) == NR_SHARDS, 10), pool._connections
    first = len(server.activity.of_type(FrameReceived))
    for key in keys:
        assert session.execute(prepared, [key]).all() == []
    executes = [f for f in server.activity.of_type(FrameReceived)[first:] if f.opcode == "EXECUTE"]
    assert [f.query for f in executes] == [SELECT] * len(keys)
    if scylla:
        assert [f.shard for f in executes] == list(keys.values())  # the shard fakecql computed from each key's token
    else:  # cassandra-driver: all on its one pool connection, whatever shard that has
        assert len({(f.connection, f.shard) for f in executes}) == 1
