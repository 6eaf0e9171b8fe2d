# A cell's server side when it is more than one node: a cluster on
# 127.0.0.1, 127.0.0.2, ... and, for NodeSpec(nlb=True), an NLB in front of
# it with client routes for ROUTES_CONNECTION_ID (Scylla's Private Link).
#
# Strategy: the runner handles a cell's server through what a CQLServer
# offers it (host, port, activity, faults, stop, leftovers); a Deployment
# offers the same, so the runner stays one code path: host and port are the
# NLB's discovery port (or the first node's), the activity log is every
# node's log merged in time order (each CQLCluster node keeps its own, which
# its check() and per-node views rely on), leftovers include the NLB's own
# errors. bypassed() says which
# node no connection reached through its NLB port (a driver that went
# around the NLB has not kept the scenario's promise).
#
# Rules: what start() starts, stop() stops, also when start() fails half-way.
from __future__ import annotations

from typing import List, Optional

from ..activity import ActivityLog
from ..cluster import CQLCluster
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
        self.faults = FaultPlan(())  # a NodeSpec of several nodes takes no faults (scenarios.py)
        self.cluster = CQLCluster(spec.nodes, tls=tls, flavor=spec.flavor, protocol_versions=spec.protocol_versions)
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
    def activity(self) -> ActivityLog:
        """Every node's log merged, oldest entry first (a snapshot, read once the cell ended)."""
        merged = ActivityLog.unbounded()
        for entry in sorted((e for member in self.cluster.nodes for e in member.activity.entries),
                            key=lambda e: e.at):
            merged.add(entry)
        return merged

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
        link = self.link
        missed = [m.host for m in self.cluster.nodes if link.nlb.forwarded(link.nlb_index(m)) == 0]
        return f"no connection reached {', '.join(missed)} through its NLB port" if missed else ""
