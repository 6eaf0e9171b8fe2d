# The demonstration: a TLS node, a real Cluster.connect() with the installed
# driver, a query, and what the node saw, printed.
#
# Strategy: everything real but the node: trustme certificates, OpenSSL TLS
# on loopback, the driver's own reactor and protocol negotiation. It prints
# as it goes, so a hang shows where it stopped; every wait is bounded by the
# driver's connect timeout.
#
# Rules: it ends with "demo OK" and status 0, or one line "demo FAILED: ..."
# on stderr and status 1 (the driver could not connect or query, or the node
# saw something unexpected); a driver or reactor that cannot be used here is
# one error line and status 2.
from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional

import trustme

from .activity import FrameReceived, HandshakeCompleted, VersionRefused
from .reactors import driver_info, load_reactor
from .server import CQLServer, UnexpectedActivityError
from .tls import TLSConfig, client_context

__all__ = ["run_demo"]

QUERY = "SELECT release_version, cluster_name FROM system.local"


def run_demo(reactor: Optional[str] = None, connect_timeout: float = 10.0) -> int:
    kwargs: Dict[str, Any] = {}
    try:
        dist, version = driver_info()
        if reactor is not None:
            kwargs["connection_class"] = load_reactor(reactor)
    except ImportError as exc:
        print(f"demo cannot run: {exc}", file=sys.stderr)
        return 2
    from cassandra.cluster import Cluster

    ca = trustme.CA()
    with CQLServer(tls=TLSConfig.create(ca)) as node:
        print(f"fakecql node listening on {node.host}:{node.port} "
              f"(TLS 1.2/1.3, certificate from a fresh trustme CA; protocol v3-v5)", flush=True)
        cluster = Cluster(
            contact_points=[node.host], port=node.port, ssl_context=client_context(ca, check_hostname=True),
            connect_timeout=connect_timeout, control_connection_timeout=connect_timeout, **kwargs,
        )
        name = cluster.connection_class.__module__ + "." + cluster.connection_class.__name__
        print(f"driver: {dist} {version}, reactor {name}", flush=True)
        started = time.monotonic()
        try:
            session = cluster.connect()
            print(f"connected in {(time.monotonic() - started) * 1000:.0f} ms with protocol v{cluster.protocol_version}",
                  flush=True)
            row = session.execute(QUERY).one()
            print(f"{QUERY} -> release_version {row.release_version}, cluster_name {row.cluster_name}", flush=True)
        except Exception as exc:  # the driver's own error says what failed; a demo reports it in one line
            print(f"demo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            cluster.shutdown()
        for handshake in node.activity.of_type(HandshakeCompleted)[:1]:
            print(f"TLS: {handshake.protocol}, {handshake.cipher}")
        refused = sorted({e.requested for e in node.activity.of_type(VersionRefused)})
        received = sorted({e.version for e in node.activity.of_type(FrameReceived)})
        if refused:
            print(f"protocol: the node refused v{', v'.join(map(str, refused))}; "
                  f"the driver came down to v{max(received)} by itself")
        else:
            print(f"protocol: the driver's first version, v{max(received)}, was served (no negotiation needed)")
        print("queries the node answered:")
        for query in node.activity.queries():
            print(f"  {query}")
        try:
            node.check()
        except UnexpectedActivityError as exc:
            print(f"demo FAILED: {exc}", file=sys.stderr)
            return 1
    print("demo OK")
    return 0
