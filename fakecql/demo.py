# The demonstration: a TLS node, a real Cluster.connect() with the installed
# driver, a query, and what the node saw, printed.
#
# Strategy: everything real but the node: trustme certificates, OpenSSL TLS
# on loopback, the driver's own reactor and protocol negotiation. It prints
# as it goes, so a hang shows where it stopped; every wait is bounded by the
# driver's connect timeout.
from __future__ import annotations

import time
from typing import Optional

import trustme

from .activity import FrameReceived, HandshakeCompleted
from .reactors import driver_info, load_reactor
from .server import CQLServer
from .tls import TLSConfig, client_context

__all__ = ["run_demo"]


def run_demo(reactor: Optional[str] = None, connect_timeout: float = 10.0) -> int:
    dist, version = driver_info()
    from cassandra.cluster import Cluster

    kwargs = {}
    if reactor is not None:
        kwargs["connection_class"] = load_reactor(reactor)
    ca = trustme.CA()
    with CQLServer(tls=TLSConfig.create(ca)) as node:
        print(f"fakecql node listening on {node.host}:{node.port} (TLS 1.2/1.3, certificate from a fresh trustme CA)")
        ctx = client_context(ca, check_hostname=True)
        cluster = Cluster(
            contact_points=[node.host], port=node.port, ssl_context=ctx,
            connect_timeout=connect_timeout, control_connection_timeout=connect_timeout, **kwargs,
        )
        name = cluster.connection_class.__module__ + "." + cluster.connection_class.__name__
        print(f"driver: {dist} {version}, reactor {name}")
        started = time.monotonic()
        try:
            session = cluster.connect()
            connected = time.monotonic() - started
            row = session.execute("SELECT release_version, cluster_name FROM system.local").one()
            print(f"connected in {connected * 1000:.0f} ms with protocol v{cluster.protocol_version}")
            print(f"SELECT release_version, cluster_name FROM system.local -> {tuple(row)}")
        finally:
            cluster.shutdown()
        for handshake in node.activity.of_type(HandshakeCompleted)[:1]:
            print(f"TLS: {handshake.protocol}, {handshake.cipher}")
        versions = sorted({e.version for e in node.activity.of_type(FrameReceived)})
        print(f"frame versions the node received: {versions} (the driver negotiated down by itself)")
        print("queries the node answered:")
        for query in node.activity.queries():
            print(f"  {query}")
        node.check()
    print("demo OK")
    return 0
