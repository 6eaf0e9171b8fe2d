# A stand-in for part "cluster"'s CQLCluster, until it is merged.
#
# Strategy: N CQLServers on 127.0.0.1, 127.0.0.2, ... and the same port,
# one shared Schema, each Node's system.peers rows written by hand from the
# others' identities (host id, tokens spread over the Murmur3 ring). It
# offers only the part of CQLCluster's agreed interface the NLB and client
# routes use (nodes[i].host/.port/.host_id/.node/.server, contact_points,
# port, schema, push_event, check, start/stop, context manager), so code
# written against it runs unchanged on CQLCluster.
#
# Rules: every server started is stopped (also when a later one fails to
# start); a port taken on one of the addresses is retried on a fresh port.
from __future__ import annotations

import errno
import ipaddress
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Union

from ..activity import ActivityLog
from ..node import Node, NodeIdentity
from ..protocol.messages import Event
from ..schema import Schema
from ..server import CQLServer
from ..tls import TLSConfig

__all__ = ["HandBuiltCluster", "HandBuiltNode"]

_RING = 2 ** 64
_ATTEMPTS = 5


@dataclass
class HandBuiltNode:
    index: int
    host: str
    host_id: uuid.UUID
    tokens: tuple
    server: CQLServer

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> tuple:
        return self.host, self.port

    @property
    def node(self) -> Node:
        return self.server.node


class HandBuiltCluster:
    """N fake nodes on consecutive loopback addresses and one port (see the module comment)."""

    def __init__(self, nodes: int = 3, *, tls: Union[None, TLSConfig, Sequence[TLSConfig]] = None,
                 flavor: str = "scylla", port: int = 0, first_address: str = "127.0.0.1",
                 cluster_name: str = "fakecql", release_version: str = "", activity: Optional[ActivityLog] = None,
                 **server_options: Any) -> None:
        if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
            raise ValueError(f"nodes must be a positive integer, got {nodes!r}")
        first = ipaddress.ip_address(first_address)
        if not first.is_loopback or first.version != 4:
            raise ValueError(f"first_address must be an IPv4 loopback address, got {first_address!r}")
        if isinstance(tls, (list, tuple)) and len(tls) != nodes:
            raise ValueError(f"tls gives {len(tls)} TLS configurations for {nodes} nodes")
        self.hosts = [str(first + i) for i in range(nodes)]
        self.schema = Schema(flavor=flavor)
        self.tls = tls
        self.cluster_name = cluster_name
        self.release_version = release_version or ("3.0.8" if flavor == "scylla" else "4.0.11")
        self.activity = activity
        self.server_options = server_options
        self.requested_port = port
        self.nodes: List[HandBuiltNode] = []

    @property
    def port(self) -> int:
        return self.nodes[0].port if self.nodes else self.requested_port

    @property
    def contact_points(self) -> List[str]:
        return list(self.hosts)

    def node(self, index: int) -> HandBuiltNode:
        return self.nodes[index]

    def _tls(self, index: int) -> Optional[TLSConfig]:
        if self.tls is None or isinstance(self.tls, TLSConfig):
            return self.tls
        return self.tls[index]

    def start(self, timeout: float = 10.0) -> "HandBuiltCluster":
        if self.nodes:
            raise RuntimeError("the cluster is already running")
        for attempt in range(_ATTEMPTS):
            try:
                self._start_all(timeout)
                return self
            except OSError as exc:
                self.stop(timeout)
                if exc.errno != errno.EADDRINUSE or self.requested_port or attempt == _ATTEMPTS - 1:
                    raise
        return self

    def _start_all(self, timeout: float) -> None:
        count = len(self.hosts)
        port = self.requested_port
        for index, host in enumerate(self.hosts):
            tokens = (str(-(2 ** 63) + index * (_RING // count)),)
            identity = NodeIdentity(cluster_name=self.cluster_name, release_version=self.release_version,
                                    host_id=uuid.uuid4(), tokens=tokens)
            node = Node(identity=identity, schema=self.schema, activity=self.activity or ActivityLog())
            server = CQLServer(tls=self._tls(index), host=host, port=port, node=node, **self.server_options)
            self.nodes.append(HandBuiltNode(index, host, identity.host_id, tokens, server))
            server.start(timeout)
            port = server.port  # the others listen on the first one's port
        for member in self.nodes:
            member.node.peers = [self._peer_row(other) for other in self.nodes if other is not member]

    def _peer_row(self, other: HandBuiltNode) -> Dict[str, Any]:
        address = ipaddress.ip_address(other.host)
        return {
            "peer": address, "rpc_address": address, "native_address": address, "preferred_ip": None,
            "peer_port": other.port, "native_port": other.port,
            "data_center": "datacenter1", "rack": "rack1", "host_id": other.host_id,
            "release_version": self.release_version, "schema_version": self.schema.version,
            "tokens": list(other.tokens),
        }

    def stop(self, timeout: float = 10.0) -> None:
        nodes, self.nodes = self.nodes, []
        errors: List[BaseException] = []
        for member in nodes:
            try:
                member.server.stop(timeout)
            except Exception as exc:  # stop the others first, then say so
                errors.append(exc)
        if errors:
            raise errors[0]

    def push_event(self, event: Event) -> None:
        for member in self.nodes:
            if member.server.running:
                member.server.push_event(event)

    def check(self) -> None:
        for member in self.nodes:
            member.server.check()

    def __enter__(self) -> "HandBuiltCluster":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
