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
# ClientRoutesConfig([ClientRouteProxy(connection_id, nlb.host)]).
#
# Rules: start() after the cluster started, stop() before it stops; what
# start() started, stop() stops, also when start() fails half-way.
from __future__ import annotations

import uuid
from typing import Any, Optional, Tuple

from .nlb import DEFAULT_HOST, NLB
from .routes import ClientRoutes

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

    @property
    def address(self) -> Tuple[str, int]:
        """The NLB's discovery (host, port): the driver's contact point."""
        return self.nlb.address

    def start(self, timeout: float = 10.0) -> "PrivateLink":
        self.nlb.start(timeout)
        try:
            for member in self.cluster.nodes:
                self.routes.install(member.node)
            self.routes.on_change(self.cluster.push_event)
            self.routes.post(self.nlb.client_routes(self.connection_id, [n.host_id for n in self.cluster.nodes],
                                                    tls=self._tls_port))
        except BaseException:
            self.nlb.stop(timeout)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.nlb.stop(timeout)

    def check(self) -> None:
        self.nlb.check()

    def __enter__(self) -> "PrivateLink":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
