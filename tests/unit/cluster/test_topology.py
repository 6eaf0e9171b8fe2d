# The cluster's topology, sans I/O: layout (addresses, data centers, racks,
# deterministic host ids, tokens spread over the ring), adding and removing
# nodes without moving anyone's tokens, the system tables' rows of both
# flavours, and replica placement checked against the drivers' own
# strategies (imported in the tests only).
from __future__ import annotations

import ipaddress
import random
import struct
from typing import Any, Dict, List

import pytest

from fakecql.cluster import Topology, routing_key
from fakecql.murmur3 import MAX_TOKEN, MIN_TOKEN, murmur3_token
from fakecql.schema import Schema


def test_layout_of_two_data_centers_and_racks() -> None:
    topology = Topology([3, 2], racks=2, num_tokens=4)
    members = topology.members
    assert [m.host for m in members] == ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
    assert [m.data_center for m in members] == ["dc1", "dc1", "dc1", "dc2", "dc2"]
    assert [m.rack for m in members] == ["rack1", "rack2", "rack1", "rack1", "rack2"]
    assert topology.data_centers == ["dc1", "dc2"]
    assert len({m.host_id for m in members}) == 5
    assert all(len(m.tokens) == 4 for m in members)


def test_host_ids_and_tokens_are_deterministic() -> None:
    a, b = Topology([2, 2]), Topology([2, 2])
    assert [(m.host_id, m.tokens) for m in a.members] == [(m.host_id, m.tokens) for m in b.members]
    other = Topology([2, 2], cluster_name="other")
    assert {m.host_id for m in other.members}.isdisjoint(m.host_id for m in a.members)


@pytest.mark.parametrize("nodes, num_tokens", [(1, 1), (3, 1), (3, 4), ([2, 2], 4), (7, 3)])
def test_tokens_are_spread_evenly_and_dealt_in_turn(nodes: Any, num_tokens: int) -> None:
    topology = Topology(nodes, num_tokens=num_tokens)
    ring = topology.ring()
    tokens = [t for t, _ in ring]
    assert len(set(tokens)) == len(tokens) == len(topology.members) * num_tokens
    assert all(MIN_TOKEN < t <= MAX_TOKEN for t in tokens)
    gaps = [b - a for a, b in zip(tokens, tokens[1:])] + [tokens[0] + (1 << 64) - tokens[-1]]
    assert max(gaps) - min(gaps) <= 1
    owners = [m.index for _, m in ring]
    count = len(topology.members)
    assert owners == [i % count for i in range(len(owners))]  # every node's turn comes round


def test_add_node_moves_nobody_and_takes_gaps_all_round_the_ring() -> None:
    topology = Topology([2, 1], num_tokens=4)
    before = {m.index: m.tokens for m in topology.members}
    added = topology.add()
    assert (added.index, added.host, added.data_center, added.rack) == (3, "127.0.0.4", "dc1", "rack1")
    assert {m.index: m.tokens for m in topology.members if m.index != 3} == before
    quarters = {(t - MIN_TOKEN) * 4 // (1 << 64) for t in added.tokens}
    assert quarters == {0, 1, 2, 3}
    in_dc2 = topology.add("dc2")
    assert (in_dc2.index, in_dc2.data_center) == (4, "dc2")
    new_dc = topology.add("dc3", "r9")
    assert (new_dc.data_center, new_dc.rack) == ("dc3", "r9")
    assert topology.data_centers == ["dc1", "dc2", "dc3"]


def test_add_fills_the_emptiest_rack() -> None:
    topology = Topology(3, racks=2)  # rack1, rack2, rack1
    assert topology.add().rack == "rack2"


def test_remove_retires_the_index_and_address() -> None:
    topology = Topology(3)
    removed = topology.remove(1)
    assert removed.host == "127.0.0.2"
    assert [m.index for m in topology.members] == [0, 2]
    assert topology.add().host == "127.0.0.4"  # 127.0.0.2 is not reused
    with pytest.raises(ValueError, match=r"no node 1 in the ring \(nodes: 0, 2, 3\)"):
        topology.member(1)


def test_the_last_node_cannot_leave() -> None:
    topology = Topology(1)
    with pytest.raises(ValueError, match="last node of the ring"):
        topology.remove(0)


@pytest.mark.parametrize("kwargs, message", [
    ({"nodes": 0}, "whole number of nodes >= 1"),
    ({"nodes": -2}, "whole number of nodes >= 1"),
    ({"nodes": []}, "at least one data center"),
    ({"nodes": [2, 0]}, "whole number of nodes >= 1"),
    ({"nodes": True}, "number of nodes"),
    ({"nodes": "3"}, "whole number of nodes"),
    ({"racks": 0}, "racks must be a whole number >= 1"),
    ({"num_tokens": 0}, "num_tokens must be a whole number in 1..256"),
    ({"first_address": "10.0.0.1"}, "IPv4 loopback"),
    ({"first_address": "::1"}, "IPv4 loopback"),
    ({"first_address": "localhost"}, "IPv4 loopback address such as 127.0.0.1"),
    ({"nodes": 3, "first_address": "127.255.255.253"}, "past 127.255.255.254"),
    ({"cluster_name": ""}, "cluster_name must not be empty"),
])
def test_bad_layouts_are_refused_by_name(kwargs: Dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Topology(**kwargs)


def test_routing_key_of_composite_partition_keys() -> None:
    assert routing_key(b"\x00\x00\x00\x07") == b"\x00\x00\x00\x07"
    assert routing_key(b"ab", b"c") == b"\x00\x02ab\x00\x00\x01c\x00"
    with pytest.raises(ValueError, match="at least one"):
        routing_key()


# -- replicas, against the drivers' own strategies ----------------------------------

def _driver_replicas(topology: Topology, replication: Dict[str, str]) -> Dict[int, List[str]]:
    """token -> replica addresses, as the driver's strategy computes them."""
    from cassandra.metadata import NetworkTopologyStrategy, SimpleStrategy, Murmur3Token
    from cassandra.pool import Host
    from cassandra.connection import DefaultEndPoint
    from cassandra.policies import SimpleConvictionPolicy

    hosts = {m.index: Host(DefaultEndPoint(m.host, 9042), SimpleConvictionPolicy, datacenter=m.data_center,
                           rack=m.rack, host_id=m.host_id) for m in topology.members}
    owners = {Murmur3Token(t): hosts[m.index] for t, m in topology.ring()}
    ring = sorted(owners)
    options = {k: v for k, v in replication.items() if k != "class"}
    if replication["class"].endswith("SimpleStrategy"):
        strategy: Any = SimpleStrategy(options)
    else:
        strategy = NetworkTopologyStrategy(options)
    replica_map = strategy.make_token_replica_map(owners, ring)
    return {token.value: [h.address for h in replicas] for token, replicas in replica_map.items()}


@pytest.mark.parametrize("nodes, racks, replication", [
    (3, 1, {"class": "SimpleStrategy", "replication_factor": "2"}),
    (5, 1, {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}),
    ([2, 1], 1, {"class": "NetworkTopologyStrategy", "dc1": "1", "dc2": "1"}),
    ([3, 3], 2, {"class": "NetworkTopologyStrategy", "dc1": "2", "dc2": "3"}),
    ([4, 2], 3, {"class": "NetworkTopologyStrategy", "dc1": "3"}),
    ([6, 5], 3, {"class": "NetworkTopologyStrategy", "dc1": "2", "dc2": "2"}),
])
def test_replicas_agree_with_the_drivers_strategies(nodes: Any, racks: int, replication: Dict[str, str]) -> None:
    topology = Topology(nodes, racks=racks, num_tokens=3)
    topology.add("dc1")  # an added node's tokens, between the others'
    expected = _driver_replicas(topology, replication)
    for token, _ in topology.ring():
        mine = [m.host for m in topology.replicas(token, replication)]
        assert sorted(mine) == sorted(expected[token]), token
    rng = random.Random(5)
    ring_tokens = sorted(expected)
    for _ in range(200):  # keys: their token's replicas are those of the next ring token
        key = struct.pack(">i", rng.randrange(-(1 << 31), 1 << 31))
        token = murmur3_token(key)
        following = next((t for t in ring_tokens if t >= token), ring_tokens[0])
        mine = [m.host for m in topology.replicas_of_key(key, replication)]
        assert sorted(mine) == sorted(expected[following])


def test_simple_strategy_replicas_walk_the_ring_from_the_owner() -> None:
    topology = Topology(4, num_tokens=1)
    (first, owner0), (second, owner1) = topology.ring()[:2]
    assert topology.owner(first) == owner0
    assert topology.owner(first + 1) == owner1
    assert topology.owner(MAX_TOKEN) == owner0  # past the last token: wraps to the first
    replicas = topology.replicas(first + 1, {"class": "SimpleStrategy", "replication_factor": "3"})
    assert [m.index for m in replicas] == [owner1.index, (owner1.index + 1) % 4, (owner1.index + 2) % 4]


def test_replicas_refuse_what_they_cannot_model() -> None:
    topology = Topology(2)
    with pytest.raises(ValueError, match="LocalStrategy"):
        topology.replicas(0, {"class": "LocalStrategy"})
    with pytest.raises(ValueError, match="outside the Murmur3 ring"):
        topology.replicas(1 << 63, {"class": "SimpleStrategy", "replication_factor": "1"})
    with pytest.raises(ValueError, match="replication factor of dc1"):
        topology.replicas(0, {"class": "NetworkTopologyStrategy", "dc1": "x"})


# -- the rows each node serves ---------------------------------------------------

@pytest.mark.parametrize("flavor", ["cassandra", "scylla"])
def test_rows_fill_every_column_of_both_flavours(flavor: str) -> None:
    schema = Schema(flavor=flavor)
    topology = Topology([2, 1], racks=1)
    version = schema.version
    local = topology.local_row(1, port=9142, schema_version=version)
    peers = topology.peers_rows(1, port=9142, schema_version=version)
    for table, rows in (("local", [local]), ("peers", peers), ("peers_v2", peers)):
        definition = schema.table("system", table)
        if definition is None:
            assert flavor == "scylla" and table == "peers_v2"  # Scylla has no peers_v2
            continue
        for row in rows:
            missing = set(definition.column_names) - set(row)
            allowed_missing = {"truncated_at", "supported_features"}
            assert missing <= allowed_missing, (table, missing)
    assert local["host_id"] == topology.member(1).host_id
    assert local["rpc_address"] == ipaddress.ip_address("127.0.0.2")
    assert local["rpc_port"] == 9142
    assert local["tokens"] == list(topology.member(1).token_texts)
    assert (local["data_center"], local["rack"], local["cluster_name"]) == ("dc1", "rack1", "fakecql")
    assert [p["peer"] for p in peers] == [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("127.0.0.3")]
    assert all(p["native_port"] == 9142 and p["schema_version"] == version for p in peers)
    assert [p["data_center"] for p in peers] == ["dc1", "dc2"]
    assert peers[1]["host_id"] == topology.member(2).host_id
    assert peers[1]["tokens"] == list(topology.member(2).token_texts)
