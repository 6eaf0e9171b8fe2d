# Many nodes on loopback, and what stands in front of them.
#
# (Part "nlb" of issue 12 adds client routes and the NLB here; part
# "cluster" adds CQLCluster: at merge, keep both lists of names.)
from .nlb import NLB
from .private_link import PrivateLink
from .routes import ClientRoute, ClientRoutes

__all__ = ["NLB", "ClientRoute", "ClientRoutes", "PrivateLink"]
