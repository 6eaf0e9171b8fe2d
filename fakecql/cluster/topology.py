# A cluster's topology, sans I/O: data centers, racks, nodes on consecutive
# loopback addresses, their host ids and tokens, the system.local /
# system.peers / system.peers_v2 rows each node serves, and which nodes are
# replicas of a partition key under SimpleStrategy or NetworkTopologyStrategy.
#
# Strategy: a Topology is a list of Members (index, address, data center,
# rack, host id, tokens). Everything is deterministic: host ids are derived
# from the cluster name and the member's index, tokens from the ring layout,
# so two runs of a test see the same ring. The first layout spreads
# nodes * num_tokens tokens evenly over the Murmur3 ring and deals them to the
# nodes in turn (so every data center's nodes alternate around the ring);
# a node added later takes the middles of the largest gaps, and no other
# node's tokens move, as with a real bootstrap. Replicas are computed as
# Cassandra's strategies compute them (NetworkTopologyStrategy prefers
# distinct racks), so a test can check where a token-aware driver sent a
# request.
#
# Rules: indexes are never reused (a decommissioned node's index and
# address stay retired); every refusal is a ValueError naming what was wrong.
# The rows are full dicts; the node's table definition picks the columns its
# flavor has (Scylla has no peers_v2, and adds supported_features).
from __future__ import annotations

import bisect
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..murmur3 import MAX_TOKEN, MIN_TOKEN, murmur3_token

__all__ = ["Member", "Topology", "routing_key", "STORAGE_PORT"]

# The inter-node port peers_v2 names (Cassandra's default storage_port).
STORAGE_PORT = 7000
# Host ids are uuid5(this, "<cluster name>/<index>").
_HOST_ID_NAMESPACE = uuid.UUID("6d3a1f0e-6a8e-4c1f-9f53-0fa4ec9e1a3c")
_RING = 1 << 64
_LAST_LOOPBACK = ipaddress.IPv4Address("127.255.255.254")


@dataclass(frozen=True)
class Member:
    """One node of the ring: where it listens and what it owns."""

    index: int
    address: ipaddress.IPv4Address
    data_center: str
    rack: str
    host_id: uuid.UUID
    tokens: Tuple[int, ...]

    @property
    def host(self) -> str:
        return str(self.address)

    @property
    def token_texts(self) -> Tuple[str, ...]:
        """The tokens as system.local/peers keep them (text)."""
        return tuple(str(t) for t in self.tokens)


def routing_key(*components: bytes) -> bytes:
    """A partition key's routing key from its serialized components: the value
    itself for one component; for several, each as a 2-byte length, the bytes, 0."""
    if not components:
        raise ValueError("routing_key() needs at least one serialized partition key component")
    if len(components) == 1:
        return bytes(components[0])
    out = bytearray()
    for part in components:
        if len(part) > 0xFFFF:
            raise ValueError(f"a partition key component of {len(part)} bytes is over 65535")
        out += len(part).to_bytes(2, "big") + bytes(part) + b"\x00"
    return bytes(out)


def _dc_sizes(nodes: Union[int, Sequence[int]]) -> List[int]:
    if isinstance(nodes, bool):
        raise ValueError(f"nodes must be a number of nodes or a list of nodes per data center, got {nodes!r}")
    sizes = [nodes] if isinstance(nodes, int) else list(nodes)
    if not sizes:
        raise ValueError("nodes must name at least one data center, got an empty list")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"each data center needs a whole number of nodes >= 1, got {nodes!r}")
    return sizes


def _replication_factor(dc: str, value: str) -> int:
    number = str(value).split("/", 1)[0]
    if not number.isdigit():
        raise ValueError(f"replication factor of {dc} must be a number like '3' or '3/1', got {value!r}")
    return int(number)


class Topology:
    """Data centers, racks and nodes of a fake cluster, and their ring."""

    def __init__(
        self,
        nodes: Union[int, Sequence[int]] = 3,
        *,
        racks: int = 1,
        first_address: str = "127.0.0.1",
        cluster_name: str = "fakecql",
        num_tokens: int = 4,
        release_version: str = "4.0.11",
        cql_version: str = "3.4.5",
        partitioner: str = "org.apache.cassandra.dht.Murmur3Partitioner",
    ) -> None:
        sizes = _dc_sizes(nodes)
        if isinstance(racks, bool) or not isinstance(racks, int) or racks < 1:
            raise ValueError(f"racks must be a whole number >= 1 (racks per data center), got {racks!r}")
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) or not 1 <= num_tokens <= 256:
            raise ValueError(f"num_tokens must be a whole number in 1..256, got {num_tokens!r}")
        try:
            first = ipaddress.ip_address(first_address)
        except ValueError:
            raise ValueError(f"first_address must be an IPv4 loopback address such as 127.0.0.1, "
                             f"got {first_address!r}") from None
        if not isinstance(first, ipaddress.IPv4Address) or not first.is_loopback:
            raise ValueError(f"first_address must be an IPv4 loopback address (127.0.0.0/8: one address per "
                             f"node, all on lo), got {first_address!r}")
        total = sum(sizes)
        if int(first) + total - 1 > int(_LAST_LOOPBACK):
            raise ValueError(f"{total} nodes from {first} would go past {_LAST_LOOPBACK}, the last loopback address")
        if not cluster_name:
            raise ValueError("cluster_name must not be empty")
        self.first_address = first
        self.cluster_name = cluster_name
        self.racks = racks
        self.num_tokens = num_tokens
        self.release_version = release_version
        self.cql_version = cql_version
        self.partitioner = partitioner
        self._members: List[Member] = []
        self._next_index = 0
        count = total * num_tokens
        # Evenly spread, each token in the middle of its share of the ring; dealt in turn.
        tokens = [MIN_TOKEN + ((2 * k + 1) * _RING) // (2 * count) for k in range(count)]
        for dc_number, size in enumerate(sizes, start=1):
            for j in range(size):
                index = self._next_index
                mine = tuple(tokens[k] for k in range(index, count, total))
                self._append(f"dc{dc_number}", f"rack{j % racks + 1}", mine)

    # -- members -------------------------------------------------------------------
    @property
    def members(self) -> List[Member]:
        """The nodes in the ring, by index."""
        return list(self._members)

    @property
    def data_centers(self) -> List[str]:
        seen: List[str] = []
        for m in self._members:
            if m.data_center not in seen:
                seen.append(m.data_center)
        return seen

    def member(self, index: int) -> Member:
        for m in self._members:
            if m.index == index:
                return m
        known = ", ".join(str(m.index) for m in self._members)
        raise ValueError(f"no node {index!r} in the ring (nodes: {known})")

    def add(self, data_center: Optional[str] = None, rack: Optional[str] = None) -> Member:
        """A new member on the next address: in `data_center` (default: the first
        one; a new name makes a new data center) and `rack` (default: the rack of
        that data center with the fewest nodes); its tokens split the largest gaps."""
        dc = data_center if data_center is not None else (self.data_centers or ["dc1"])[0]
        if not isinstance(dc, str) or not dc:
            raise ValueError(f"data_center must be a non-empty name, got {data_center!r}")
        if rack is None:
            in_dc = [m.rack for m in self._members if m.data_center == dc]
            names = [f"rack{r}" for r in range(1, self.racks + 1)]
            rack = min(names, key=lambda name: (in_dc.count(name), names.index(name)))
        elif not isinstance(rack, str) or not rack:
            raise ValueError(f"rack must be a non-empty name, got {rack!r}")
        if int(self.first_address) + self._next_index > int(_LAST_LOOPBACK):
            raise ValueError(f"no loopback address left for another node after {_LAST_LOOPBACK}")
        taken = sorted(t for m in self._members for t in m.tokens)
        new: List[int] = []
        for j in range(self.num_tokens):  # one token near each of num_tokens evenly spaced points
            target = MIN_TOKEN + ((2 * j + 1) * _RING) // (2 * self.num_tokens)
            new.append(self._split_gap_at(taken, target))
            bisect.insort(taken, new[-1])
        return self._append(dc, rack, tuple(sorted(new)))

    def remove(self, index: int) -> Member:
        """Take a member out of the ring (decommission); its index is not reused."""
        member = self.member(index)
        if len(self._members) == 1:
            raise ValueError(f"node {index} is the last node of the ring: a cluster keeps at least one")
        self._members.remove(member)
        return member

    def _append(self, dc: str, rack: str, tokens: Tuple[int, ...]) -> Member:
        index = self._next_index
        self._next_index += 1
        member = Member(
            index=index,
            address=ipaddress.IPv4Address(int(self.first_address) + index),
            data_center=dc,
            rack=rack,
            host_id=uuid.uuid5(_HOST_ID_NAMESPACE, f"{self.cluster_name}/{index}"),
            tokens=tokens,
        )
        self._members.append(member)
        return member

    @staticmethod
    def _split_gap_at(taken: List[int], target: int) -> int:
        """The middle of the gap between ring tokens that holds `target`."""
        if not taken:
            return target
        i = bisect.bisect_left(taken, target)
        if 0 < i < len(taken):
            low, high = taken[i - 1], taken[i]
        else:  # the gap across the wrap of the ring
            low, high = taken[-1], taken[0] + _RING
        middle = low + (high - low) // 2
        if middle > MAX_TOKEN:
            middle -= _RING
        if middle == MIN_TOKEN:  # the ring's minimum is no node's token
            middle += 1
        if middle in taken:
            raise ValueError(f"the ring has no free token left near {target}")
        return middle

    # -- the ring ------------------------------------------------------------------
    def ring(self) -> List[Tuple[int, Member]]:
        """(token, owner) for every token, in token order."""
        return sorted(((t, m) for m in self._members for t in m.tokens), key=lambda pair: pair[0])

    def owner(self, token: int) -> Member:
        """The primary owner of `token`: the node of the first ring token >= it (wrapping)."""
        return self.replicas(token, {"class": "SimpleStrategy", "replication_factor": "1"})[0]

    def replicas(self, token: int, replication: Mapping[str, str]) -> List[Member]:
        """The replicas of `token` under a keyspace's replication (as
        system_schema.keyspaces holds it: "class" and options), walking the ring
        clockwise from the token's owner. SimpleStrategy: the first RF distinct
        nodes; NetworkTopologyStrategy: per data center, the first RF distinct
        nodes, distinct racks first (as Cassandra places them)."""
        if not MIN_TOKEN <= token <= MAX_TOKEN:
            raise ValueError(f"token {token} is outside the Murmur3 ring [{MIN_TOKEN}, {MAX_TOKEN}]")
        options = dict(replication)
        strategy = str(options.pop("class", "")).rsplit(".", 1)[-1]
        ring = self.ring()
        start = bisect.bisect_left([t for t, _ in ring], token) % len(ring)
        walk = [m for _, m in ring[start:] + ring[:start]]
        if strategy == "SimpleStrategy":
            rf = _replication_factor("SimpleStrategy", options.get("replication_factor", ""))
            return self._distinct(walk)[:rf]
        if strategy == "NetworkTopologyStrategy":
            options.pop("replication_factor", None)  # Cassandra 4.1's default for every DC; not used here
            found: List[Member] = []
            for dc, value in options.items():
                found.extend(self._dc_replicas(walk, dc, _replication_factor(dc, value)))
            return found
        if strategy == "EverywhereStrategy":
            return self._distinct(walk)
        raise ValueError(f"replicas: strategy {replication.get('class')!r} is not modelled "
                         f"(SimpleStrategy, NetworkTopologyStrategy, EverywhereStrategy are)")

    def replicas_of_key(self, key: bytes, replication: Mapping[str, str]) -> List[Member]:
        """The replicas of a routing key (see routing_key()) under `replication`."""
        return self.replicas(murmur3_token(key), replication)

    @staticmethod
    def _distinct(walk: List[Member]) -> List[Member]:
        seen: List[Member] = []
        for m in walk:
            if m not in seen:
                seen.append(m)
        return seen

    def _dc_replicas(self, walk: List[Member], dc: str, rf: int) -> List[Member]:
        racks = {m.rack for m in self._members if m.data_center == dc}
        chosen: List[Member] = []
        skipped: List[Member] = []
        seen_racks: set = set()
        for m in walk:
            if len(chosen) >= rf:
                break
            if m.data_center != dc or m in chosen:
                continue
            if len(seen_racks) == len(racks):
                chosen.append(m)
            elif m.rack in seen_racks:
                if m not in skipped:
                    skipped.append(m)
            else:
                chosen.append(m)
                seen_racks.add(m.rack)
                if len(seen_racks) == len(racks):  # every rack has one: the skipped come next, in ring order
                    for extra in skipped:
                        if len(chosen) >= rf:
                            break
                        chosen.append(extra)
        return chosen

    # -- the rows each node serves -------------------------------------------------
    def local_row(self, index: int, *, port: int, schema_version: uuid.UUID) -> Dict[str, Any]:
        """system.local of node `index` (every column of either flavor; the table picks its own)."""
        m = self.member(index)
        return {
            "key": "local",
            "bootstrapped": "COMPLETED",
            "broadcast_address": m.address,
            "broadcast_port": STORAGE_PORT,
            "cluster_name": self.cluster_name,
            "cql_version": self.cql_version,
            "data_center": m.data_center,
            "gossip_generation": 1,
            "host_id": m.host_id,
            "listen_address": m.address,
            "listen_port": STORAGE_PORT,
            "native_protocol_version": "5",
            "partitioner": self.partitioner,
            "rack": m.rack,
            "release_version": self.release_version,
            "rpc_address": m.address,
            "rpc_port": port,
            "schema_version": schema_version,
            "tokens": list(m.token_texts),
        }

    def peers_rows(self, index: int, *, port: int, schema_version: uuid.UUID) -> List[Dict[str, Any]]:
        """system.peers and system.peers_v2 of node `index`: every other member of
        the ring (a real node lists down nodes too), both tables' columns in each row."""
        self.member(index)
        return [
            {
                "peer": m.address,
                "peer_port": STORAGE_PORT,
                "data_center": m.data_center,
                "host_id": m.host_id,
                "preferred_ip": None,
                "preferred_port": None,
                "rack": m.rack,
                "release_version": self.release_version,
                "rpc_address": m.address,
                "native_address": m.address,
                "native_port": port,
                "schema_version": schema_version,
                "tokens": list(m.token_texts),
            }
            for m in self._members if m.index != index
        ]

    def __repr__(self) -> str:
        shown = ", ".join(f"{m.index}:{m.address}/{m.data_center}/{m.rack}" for m in self._members)
        return f"<Topology {self.cluster_name} [{shown}]>"
