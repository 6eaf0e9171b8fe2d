# Many fake nodes: a cluster on 127.0.0.1, .2, ... (cluster.py), its ring
# and system tables (topology.py), Cassandra's Murmur3 token (murmur3.py).
from .cluster import NODE_STATES, ClusterNode, CQLCluster
from .murmur3 import murmur3_token
from .topology import Member, Topology, routing_key

__all__ = ["CQLCluster", "ClusterNode", "NODE_STATES", "Topology", "Member", "murmur3_token", "routing_key"]
