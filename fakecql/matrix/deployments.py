# A cell's server side when it is more than one node: a cluster on
# 127.0.0.1, 127.0.0.2, ... and, for NodeSpec(nlb=True), an NLB in front of
# it with client routes for ROUTES_CONNECTION_ID (Scylla's Private Link).
#
# Strategy: the runner handles a cell's server through what a CQLServer
# offers it (host, port, activity, faults, stop, leftovers); a Deployment
# offers the same, so the runner stays one code path: host and port are the
# NLB's discovery port (or the first node's), the activity log is shared by
# the nodes, leftovers include the NLB's own errors. bypassed() says which
# node no connection reached through its NLB port (a driver that went
# around the NLB has not kept the scenario's promise).
#
# Rules: what start() starts, stop() stops, also when start() fails half-way.
# The cluster is part nlb's hand-built stand-in for CQLCluster until that is
# merged (issue 12): _start is the one place to swap it.
from __future__ import annotations

from typing import List, Optional

from ..activity import ActivityLog
from ..cluster._hand_built import HandBuiltCluster
from ..cluster.private_link import PrivateLink
from ..server import CQLServer
from ..faults import FaultPlan
from ..tls import TLSConfig
from .scenarios import ROUTES_CONNECTION_ID, NodeSpec

__all__ = ["Deployment"]


class Deployment:
    """Several nodes (and maybe an NLB), seen by the runner as one node."""

    def __init__(self, spec: NodeSpec, tls: Optional[TLSConfig]) -> None:
        self.spec = spec
        self.activity = ActivityLog()
        self.faults = FaultPlan(())  # a NodeSpec of several nodes takes no faults (scenarios.py)
        self.cluster = HandBuiltCluster(spec.nodes, tls=tls, flavor=spec.flavor, activity=self.activity,
                                        protocol_versions=spec.protocol_versions)
        self.link: Optional[PrivateLink] = None
        self.servers: List[CQLServer] = []  # kept past stop(), for leftovers()

    def start(self) -> "Deployment":
        self.cluster.start()
        self.servers = [member.server for member in self.cluster.nodes]
        try:
            if self.spec.nlb:
                self.link = PrivateLink(self.cluster, connection_id=ROUTES_CONNECTION_ID).start()
        except BaseException:
            self.cluster.stop()
            raise
        return self

    @property
    def host(self) -> str:
        return self.link.address[0] if self.link else self.cluster.nodes[0].host

    @property
    def port(self) -> int:
        return self.link.address[1] if self.link else self.cluster.port

    def stop(self) -> None:
        try:
            if self.link is not None:
                self.link.stop()
        finally:
            self.cluster.stop()

    def leftovers(self) -> List[str]:
        found: List[str] = []
        for server in self.servers:
            found.extend(f"node {server.host}: {text}" for text in server.leftovers())
        if self.link is not None:
            found.extend(f"the NLB: {error.splitlines()[-1]}" for error in self.link.nlb.errors)
        return found

    def bypassed(self) -> str:
        """'' if every node was reached through its NLB port, else which were not."""
        if self.link is None:
            return ""
        missed = [self.cluster.hosts[i] for i in range(len(self.cluster.hosts)) if self.link.nlb.forwarded(i) == 0]
        return f"no connection reached {', '.join(missed)} through its NLB port" if missed else ""
