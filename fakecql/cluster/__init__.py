# Many fake nodes: a cluster on 127.0.0.1, .2, ... (cluster.py), its ring
# and system tables (topology.py), and what stands in front of them: client
# routes (routes.py) and a layer-4 NLB (nlb.py), wired by private_link.py.
from .books import DataCenter
from .cluster import NODE_STATES, ClusterNode, CQLCluster
from ..murmur3 import murmur3_token
from .nlb import NLB
from .private_link import PrivateLink
from .routes import ClientRoute, ClientRoutes
from .topology import Member, Topology, routing_key

__all__ = [
    "CQLCluster", "ClusterNode", "NODE_STATES", "Topology", "Member", "murmur3_token", "routing_key",
    "NLB", "ClientRoute", "ClientRoutes", "PrivateLink",
]
__all__ += ["DataCenter"]  # priming and logs per data center (books.py)
