# Scylla's shard-awareness, sans I/O: which shard owns a token, which shard
# a new connection belongs to, and what SUPPORTED says about it.
#
# Strategy: a Scylla node runs one shard per core and tells each connection,
# in SUPPORTED, the shard that serves it and how tokens map to shards
# (docs/dev/protocol-extensions.md "Intranode sharding" in scylladb):
# biased-token-round-robin, computed here in fakecql's own 64-bit
# arithmetic. A connection to the node's ordinary port gets the next shard
# in turn (round-robin); one to the shard-aware port gets the shard its
# client's source port names (source_port % nr_shards), which is how
# scylla-driver opens exactly one connection per shard. The server shell
# (server.py) only listens on the extra port and asks a ShardAssigner.
#
# Which shard-aware key a node advertises: SCYLLA_SHARD_AWARE_PORT names a
# plain port, SCYLLA_SHARD_AWARE_PORT_SSL a TLS one (scylla-driver 3.29.12
# reads the _SSL key when its Cluster has ssl_context or ssl_options, the
# plain one otherwise, and never falls back from one to the other). A
# fakecql node is plain or TLS, never both, so it advertises the one key of
# its kind. A Scylla with plain AND TLS listeners advertises both, each
# naming its own port; one that turned TLS on for its plain ports advertises
# the TLS shard-aware port under the plain key, which scylla-driver 3.29.12
# over TLS then does not use at all (it fills its pool round-robin through
# the ordinary port instead). fakecql does not play that misconfiguration.
#
# Rules: values are validated where they enter (Sharding), with messages
# naming the argument; nothing here knows sockets or asyncio.
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Dict, List

from .murmur3 import MAX_TOKEN, MIN_TOKEN, murmur3_token

__all__ = [
    "MURMUR3_PARTITIONER",
    "SHARDING_ALGORITHM",
    "DEFAULT_IGNORE_MSB",
    "Sharding",
    "ShardAssigner",
    "shard_of_token",
    "shard_of_port",
]

MURMUR3_PARTITIONER = "org.apache.cassandra.dht.Murmur3Partitioner"
SHARDING_ALGORITHM = "biased-token-round-robin"
DEFAULT_IGNORE_MSB = 12  # Scylla's murmur3_partitioner_ignore_msb_bits default

_U64 = (1 << 64) - 1


def _check_shards(nr_shards: object, name: str = "nr_shards") -> int:
    if not isinstance(nr_shards, int) or isinstance(nr_shards, bool) or nr_shards < 1:
        raise ValueError(f"{name} must be an integer of 1 or more (the node's number of shards), got {nr_shards!r}")
    return nr_shards


def shard_of_token(token: int, nr_shards: int, ignore_msb: int = DEFAULT_IGNORE_MSB) -> int:
    """The shard that owns `token` (a Murmur3 token) on a node of `nr_shards` shards.

    biased-token-round-robin: bias the token to unsigned (token + 2**63),
    shift it left by `ignore_msb` bits within 64 bits, and take the top 64
    bits of its product with nr_shards."""
    if not isinstance(token, int) or isinstance(token, bool) or not MIN_TOKEN <= token <= MAX_TOKEN:
        raise ValueError(f"token must be a signed 64-bit integer (a Murmur3 token), got {token!r}")
    _check_shards(nr_shards)
    biased = (token - MIN_TOKEN) & _U64
    biased = (biased << ignore_msb) & _U64
    return (biased * nr_shards) >> 64


def shard_of_port(source_port: int, nr_shards: int) -> int:
    """The shard a connection to the shard-aware port asks for with its source port."""
    return source_port % _check_shards(nr_shards)


@dataclass(frozen=True)
class Sharding:
    """How a Scylla node is sharded: its number of shards and the algorithm's parameter."""

    nr_shards: int
    ignore_msb: int = DEFAULT_IGNORE_MSB

    def __post_init__(self) -> None:
        _check_shards(self.nr_shards)
        if not isinstance(self.ignore_msb, int) or isinstance(self.ignore_msb, bool) or not 0 <= self.ignore_msb <= 63:
            raise ValueError(f"ignore_msb must be an integer in [0, 63], got {self.ignore_msb!r}")

    def shard_of_token(self, token: int) -> int:
        return shard_of_token(token, self.nr_shards, self.ignore_msb)

    def shard_of_key(self, routing_key: bytes) -> int:
        """The shard that owns a partition: `routing_key` is its serialized partition key."""
        return self.shard_of_token(murmur3_token(routing_key))

    def supported(self, shard: int, *, shard_aware_port: int, tls: bool) -> Dict[str, List[str]]:
        """The SUPPORTED options a connection served by `shard` gets (see the top of the file for the port key)."""
        if not 0 <= shard < self.nr_shards:
            raise ValueError(f"shard must be in [0, {self.nr_shards}), got {shard!r}")
        port_key = "SCYLLA_SHARD_AWARE_PORT_SSL" if tls else "SCYLLA_SHARD_AWARE_PORT"
        return {
            "SCYLLA_SHARD": [str(shard)],
            "SCYLLA_NR_SHARDS": [str(self.nr_shards)],
            "SCYLLA_PARTITIONER": [MURMUR3_PARTITIONER],
            "SCYLLA_SHARDING_ALGORITHM": [SHARDING_ALGORITHM],
            "SCYLLA_SHARDING_IGNORE_MSB": [str(self.ignore_msb)],
            port_key: [str(shard_aware_port)],
        }


class ShardAssigner:
    """Which shard serves each new connection of one node.

    On the shard-aware port, the shard the client's source port names; on
    the ordinary port, the next shard in turn (0, 1, ..., N-1, 0, ...)."""

    def __init__(self, sharding: Sharding) -> None:
        self.sharding = sharding
        self._turn = itertools.count()

    def assign(self, source_port: int, *, shard_aware: bool) -> int:
        if shard_aware:
            return shard_of_port(source_port, self.sharding.nr_shards)
        return next(self._turn) % self.sharding.nr_shards
