# Scylla's Private Link on loopback: an NLB in front of a cluster, and the
# client routes that send a driver through it.
#
# Strategy: wires the two sans-IO-ish pieces to a running cluster (a
# CQLCluster, or anything with the same `nodes` (.host, .port, .host_id,
# .node) and `push_event`): an NLB with one port per node, a ClientRoutes
# book every node serves as system.client_routes and whose changes every
# node pushes as CLIENT_ROUTES_CHANGE, and one route per node for
# `connection_id` pointing at that node's NLB port (as port and tls_port).
# A driver then connects with contact point `nlb.address` and
# ClientRoutesConfig([ClientRouteProxy(connection_id, nlb.host)]). It
# follows a CQLCluster's membership (CQLCluster.on_membership): a node added
# gets the routes table, a port on the NLB and its route (posted, so the
# drivers hear CLIENT_ROUTES_CHANGE) before the others announce NEW_NODE; a
# decommissioned node's route is deleted (its NLB port stays, refusing, as a
# real NLB's target group keeps a drained target until someone removes it).
#
# Rules: start() after the cluster started, stop() before it stops; what
# start() started, stop() stops, also when start() fails half-way. NLB ports
# are by position among the nodes PrivateLink saw, not by node index (they
# differ once a node was decommissioned): node_port(node) maps them.
from __future__ import annotations

import uuid
from typing import Any, Dict, Optional, Tuple

from .nlb import DEFAULT_HOST, NLB
from .routes import ClientRoute, ClientRoutes

__all__ = ["PrivateLink"]


class PrivateLink:
    """An NLB and client routes for `connection_id` in front of a running cluster."""

    def __init__(self, cluster: Any, *, connection_id: Optional[str] = None, host: str = DEFAULT_HOST,
                 tls_port: bool = True, **nlb_options: Any) -> None:
        if not getattr(cluster, "nodes", None):
            raise ValueError("PrivateLink needs a started cluster (its nodes give the NLB's targets)")
        self.cluster = cluster
        self.connection_id = connection_id or str(uuid.uuid4())
        self.routes = ClientRoutes()
        self.nlb = NLB([(n.host, n.port) for n in cluster.nodes], host=host, **nlb_options)
        self._tls_port = tls_port
        self._positions: Dict[uuid.UUID, int] = {n.host_id: i for i, n in enumerate(cluster.nodes)}

    @property
    def address(self) -> Tuple[str, int]:
        """The NLB's discovery (host, port): the driver's contact point."""
        return self.nlb.address

    def nlb_index(self, node: Any) -> int:
        """The NLB's index for cluster node `node` (its counters, forwarded(i), take it)."""
        position = self._positions.get(node.host_id)
        if position is None:
            raise ValueError(f"node {node.index} ({node.host}) is not behind this NLB: it joined while "
                             f"the PrivateLink was stopped")
        return position

    def node_port(self, node: Any) -> int:
        """The NLB port that always reaches cluster node `node`."""
        return self.nlb.node_port(self.nlb_index(node))

    def start(self, timeout: float = 10.0) -> "PrivateLink":
        self.nlb.start(timeout)
        try:
            for member in self.cluster.nodes:
                self.routes.install(member.node)
            self.routes.on_change(self.cluster.push_event)
            self.routes.post(self.nlb.client_routes(self.connection_id, [n.host_id for n in self.cluster.nodes],
                                                    tls=self._tls_port))
            if hasattr(self.cluster, "on_membership"):
                self.cluster.on_membership(self._membership_changed)
        except BaseException:
            self.nlb.stop(timeout)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.nlb.stop(timeout)

    def _membership_changed(self, change: str, node: Any) -> None:
        if not self.nlb.running:
            return  # stopped: nothing in front of the cluster to follow it
        if change == "NEW_NODE":
            self.routes.install(node.node)
            position = self.nlb.add_target((node.host, node.port))
            self._positions[node.host_id] = position
            port = self.nlb.node_port(position)
            self.routes.post([ClientRoute(connection_id=self.connection_id, host_id=node.host_id,
                                          address=self.nlb.host, port=port,
                                          tls_port=port if self._tls_port else None)])
        elif change == "REMOVED_NODE":
            self.routes.delete([(self.connection_id, node.host_id)])

    def check(self) -> None:
        self.nlb.check()

    def __enter__(self) -> "PrivateLink":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
