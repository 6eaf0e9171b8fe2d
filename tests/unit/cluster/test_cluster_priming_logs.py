# Priming and logs on a CQLCluster, over bare clients: a priming for the whole
# cluster answers on every node (and on nodes added later, and after a
# restart), one for a data center only on its nodes, a node's own first;
# unmet expectations of the shared books are listed once by check(); requests
# are read by node, data center and statement, and clear_logs() empties them.
# A Scylla cluster with shards: every node sharded on one shard-aware port,
# kept across a restart, and saying what a Scylla says in system.local.
from __future__ import annotations

import re
import socket
from typing import Optional

import pytest

from fakecql.activity import FrameReceived
from fakecql.cluster import CQLCluster
from fakecql.protocol.messages import Query, Ready, RowsResult, Supported, Options
from fakecql.protocol.types import INT
from fakecql.server import UnexpectedActivityError

from ...rawcql import RawClient

PRIMED = "SELECT v FROM app.kv"


def answer(address: object, query: str = PRIMED) -> Optional[int]:
    """The int the node answers to `query` (None if it answered no rows)."""
    with RawClient(address, timeout=3.0) as client:  # type: ignore[arg-type]
        assert isinstance(client.start(), Ready)
        result = client.request(Query(query=query))
    assert isinstance(result, RowsResult), result
    if not result.rows:
        return None
    cell = result.rows[0][0]
    assert cell is not None
    return int(INT.deserialize(cell))


def test_cluster_then_data_center_then_node_primings(cluster: CQLCluster) -> None:
    cluster.when_query(PRIMED).then_rows([(1,)], columns={"v": "int"})
    assert [answer(n.address) for n in cluster.nodes] == [1, 1, 1]
    cluster.data_center("dc2").when_query(PRIMED).then_rows([(2,)], columns={"v": "int"})
    assert [answer(n.address) for n in cluster.nodes] == [1, 1, 2]
    cluster.when_query(PRIMED, data_center="dc1").then_rows([(3,)], columns={"v": "int"})
    cluster.nodes[1].when_query(PRIMED).then_rows([(4,)], columns={"v": "int"})
    assert [answer(n.address) for n in cluster.nodes] == [3, 4, 2]
    assert [n.index for n in cluster.data_center("dc1").nodes] == [0, 1]

    cluster.data_center("dc1").clear_primings()
    assert [answer(n.address) for n in cluster.nodes] == [1, 4, 2]
    cluster.clear_primings()  # everything: cluster, data centers, nodes' own
    for n in cluster.nodes:
        with RawClient(n.address, timeout=3.0) as client:
            client.start()
            assert not isinstance(client.request(Query(query=PRIMED)), RowsResult)
        n.server.activity.take_incidents()  # the unprimed query, expected here


def test_added_and_restarted_nodes_keep_the_shared_books(cluster: CQLCluster) -> None:
    cluster.when_query(PRIMED).then_rows([(7,)], columns={"v": "int"})
    cluster.data_center("dc2").when_query(PRIMED).then_rows([(8,)], columns={"v": "int"})
    added = cluster.add_node(data_center="dc2")
    assert answer(added.address) == 8
    cluster.restart(0)
    cluster.kill(2)
    cluster.restart(2)
    assert [answer(n.address) for n in cluster.nodes] == [7, 7, 8, 8]


def test_unmet_expectations_of_shared_books_are_listed_once(cluster: CQLCluster) -> None:
    cluster.when_query(PRIMED).then_rows([(1,)], columns={"v": "int"}).expect(times=2)
    cluster.data_center("dc2").when_query("SELECT w FROM app.kv").then_void().expect()
    cluster.node(1).when_query("SELECT x FROM app.kv").then_void().expect()
    answer(cluster.node(0).address)
    unmet = cluster.unmet_expectations()
    assert [(u.book, u.expected, u.seen) for u in unmet] == [
        ("node 1 primings", "at least 1", 0), ("dc2 primings", "at least 1", 0),
        ("cluster primings", "exactly 2", 1)]
    with pytest.raises(UnexpectedActivityError) as raised:
        cluster.check()
    text = str(raised.value)
    assert text.count("'SELECT v FROM app.kv'") == 1  # shared by 3 nodes, listed once
    assert "3 priming expectation(s) not met" in text and "(in cluster primings): expected exactly 2" in text
    answer(cluster.node(2).address)
    with RawClient(cluster.node(2).address, timeout=3.0) as client:
        client.start()
        client.request(Query(query="SELECT w FROM app.kv"))
    with RawClient(cluster.node(1).address, timeout=3.0) as client:
        client.start()
        client.request(Query(query="SELECT x FROM app.kv"))
    assert cluster.unmet_expectations() == []
    cluster.check()


def test_unknown_data_center_is_named(cluster: CQLCluster) -> None:
    with pytest.raises(ValueError, match=r"no data center 'dc3'.*\['dc1', 'dc2'\]"):
        cluster.when_query(PRIMED, data_center="dc3")
    with pytest.raises(ValueError, match="no data center 'dc9'"):
        cluster.requests(data_center="dc9")
    with pytest.raises(ValueError, match="no node 7"):
        cluster.requests(node=7)
    with pytest.raises(TypeError, match="statement"):
        cluster.requests(42)  # type: ignore[arg-type]


def test_requests_by_node_data_center_and_statement(cluster: CQLCluster) -> None:
    cluster.when_query(re.compile(r"^SELECT v FROM app\.kv")).then_rows([(1,)], columns={"v": "int"})
    for n in cluster.nodes:
        answer(n.address)
    answer(cluster.node(2).address, "SELECT v FROM app.kv WHERE k = 1")
    every = cluster.requests(PRIMED)
    assert [e.node for e in every] == [f"{n.host}:{cluster.port}" for n in cluster.nodes]
    assert all(isinstance(e, FrameReceived) and e.opcode == "QUERY" for e in every)
    assert [e.at for e in every] == sorted(e.at for e in every)
    assert [e.node for e in cluster.requests(PRIMED, data_center="dc1")] == [
        f"127.0.0.1:{cluster.port}", f"127.0.0.2:{cluster.port}"]
    assert [e.query for e in cluster.requests(node=2, opcode="QUERY")] == [
        PRIMED, "SELECT v FROM app.kv WHERE k = 1"]
    assert len(cluster.requests(re.compile("WHERE k"))) == 1
    assert cluster.requests(node=cluster.node(1), opcode="query")[0].query == PRIMED
    assert [e.node for e in cluster.data_center("dc2").requests(opcode="STARTUP")] == [
        f"127.0.0.3:{cluster.port}"] * 2
    cluster.clear_logs()
    assert cluster.requests() == []
    answer(cluster.node(0).address)
    assert [e.node for e in cluster.requests(PRIMED)] == [f"127.0.0.1:{cluster.port}"]


def test_a_sharded_scylla_cluster_listens_on_one_shard_aware_port() -> None:
    fake = CQLCluster(3, flavor="scylla", shards=4, status_delay=0)
    assert fake.shard_aware_port is None  # not started yet
    with fake:
        port = fake.shard_aware_port
        assert port is not None and port != fake.port
        assert [n.server.sharding.nr_shards for n in fake.nodes] == [4, 4, 4]  # type: ignore[union-attr]
        assert [n.server.shard_aware_port for n in fake.nodes] == [port] * 3
        for n in fake.nodes:
            with RawClient((n.host, port), timeout=3.0) as client:
                supported = client.request(Options())
                assert isinstance(supported, Supported)
                assert supported.options["SCYLLA_NR_SHARDS"] == ["4"]
                assert supported.options["SCYLLA_SHARD_AWARE_PORT"] == [str(port)]
                assert supported.options["SCYLLA_SHARD"] == [str(client.sock.getsockname()[1] % 4)]
                assert isinstance(client.request(Options()), Supported)
                client.start()
                result = client.request(Query(query="SELECT release_version, cql_version FROM system.local"))
                assert isinstance(result, RowsResult)
                assert [bytes(c) for c in result.rows[0]] == [b"3.0.8", b"3.3.1"]  # what a Scylla says
        fake.kill(1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.2", port), timeout=2).close()
        fake.restart(1)
        fake.restart(2)
        assert [n.server.shard_aware_port for n in fake.nodes] == [port] * 3
        with RawClient(("127.0.0.2", port), timeout=3.0) as client:
            assert isinstance(client.request(Options()), Supported)
        added = fake.add_node()
        assert added.server.shard_aware_port == port and added.server.sharding is not None
    assert fake.leftovers() == []


def test_an_unsharded_cluster_has_no_shard_aware_port(cluster: CQLCluster) -> None:
    assert cluster.shard_aware_port is None
    assert all(n.server.sharding is None for n in cluster.nodes)


def test_a_busy_shard_aware_port_is_named() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.2", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        fake = CQLCluster(2, flavor="scylla", shards=2, shard_aware_port=taken, status_delay=0)
        with pytest.raises(OSError, match=rf"node 1 cannot listen on 127\.0\.0\.2:{taken} \(the shard-aware port\)"):
            fake.start()
    assert not fake.running and fake.leftovers() == []
