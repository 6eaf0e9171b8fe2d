"""Connection set-up: a full TLS handshake against a resumed session.

For the transport reactor and for libev, each with the driver's TLS
session cache (scylla-driver 3.29.12+; a driver without one has nothing to
resume), the time and client CPU of Connection.factory (TCP connect, TLS
handshake, CQL startup) against a fakecql node in its own process, with an
RSA 2048 certificate: with an
empty cache every time (full handshake), and with a cache primed by one
connection (resumed). TLS 1.2 and 1.3. Prints figures; asserts nothing.

    python benchmarks/connection_setup.py [--connections 200]
"""
from __future__ import annotations

import argparse
import inspect
import os
import ssl
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import NodeProcess, machine, median, table  # noqa: E402

REACTORS = ["transport", "libev"]


def _reused(conn: Any) -> bool:
    tls = getattr(conn, "_tls", None)
    if tls is not None:  # the transport reactor's MemoryBIO TLS object
        return bool(tls.sslobj.session_reused)
    return bool(conn._socket.session_reused)


def connect_pairs(node: NodeProcess, reactor: str, tls_version: str,
                  count: int) -> Dict[str, Tuple[List[float], List[float], int]]:
    """For "full" and "resumed": (wall seconds, client CPU seconds, sessions
    reused) per connection. The two kinds alternate, one of each per round,
    so drift in the machine's load weighs on both alike."""
    from cassandra.connection import DefaultEndPoint
    from cassandra.ssl_session_cache import SSLSessionCache

    from fakecql.reactors import load_reactor

    cls = load_reactor(reactor)
    cls.initialize_reactor()
    version = ssl.TLSVersion.TLSv1_3 if tls_version == "1.3" else ssl.TLSVersion.TLSv1_2
    context = ssl.create_default_context(cafile=node.ca_pem)
    context.minimum_version = context.maximum_version = version
    endpoint = DefaultEndPoint(node.host, node.port)
    primed = SSLSessionCache()
    cls.factory(endpoint, 10, ssl_context=context, protocol_version=4, ssl_session_cache=primed).close()
    walls: Dict[str, List[float]] = {"full": [], "resumed": []}
    cpus: Dict[str, List[float]] = {"full": [], "resumed": []}
    reused = {"full": 0, "resumed": 0}
    for _ in range(count):
        for kind in ("full", "resumed"):
            cache = primed if kind == "resumed" else SSLSessionCache()  # empty: a full handshake
            cpu, wall = time.process_time(), time.perf_counter()
            conn = cls.factory(endpoint, 10, ssl_context=context, protocol_version=4, ssl_session_cache=cache)
            walls[kind].append(time.perf_counter() - wall)
            cpus[kind].append(time.process_time() - cpu)
            reused[kind] += _reused(conn)
            conn.close()
    return {kind: (walls[kind], cpus[kind], reused[kind]) for kind in walls}


def collect(connections: int = 200) -> Tuple[List[Dict[str, object]], Optional[str]]:
    from cassandra.connection import Connection

    if "ssl_session_cache" not in inspect.signature(Connection.__init__).parameters:
        return [], "this driver has no TLS session cache (scylla-driver 3.29.12+ has one): nothing to resume"
    rows: List[Dict[str, object]] = []
    # RSA 2048, as most clusters' certificates are: with ECDSA P-256 a full
    # handshake is already cheap and resumption saves less.
    with NodeProcess("--tls", "--key-type", "rsa") as node:
        for tls_version in ("1.3", "1.2"):
            for reactor in REACTORS:
                measured = connect_pairs(node, reactor, tls_version, connections)
                full, resumed = measured["full"], measured["resumed"]
                for label, (walls, cpus, reused) in (("full", full), ("resumed", resumed)):
                    rows.append({
                        "TLS": tls_version, "reactor": reactor, "handshake": label,
                        "set-up ms (median)": f"{median(walls) * 1000:.2f}",
                        "client CPU ms (median)": f"{median(cpus) * 1000:.2f}",
                        "sessions reused": f"{reused}/{len(walls)}",
                    })
                rows.append({"TLS": tls_version, "reactor": reactor, "handshake": "resumed / full",
                             "set-up ms (median)": f"{median(resumed[0]) / median(full[0]):.0%}",
                             "client CPU ms (median)": f"{median(resumed[1]) / median(full[1]):.0%}"})
    return rows, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=200)
    args = parser.parse_args()
    print(f"# Connection set-up: full vs resumed TLS handshake\n\n{machine()}\n")
    rows, reason = collect(args.connections)
    if reason:
        print(reason)
        return
    print(table(rows, ["TLS", "reactor", "handshake", "set-up ms (median)", "client CPU ms (median)",
                       "sessions reused"]))


if __name__ == "__main__":
    main()
