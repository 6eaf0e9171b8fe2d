"""Memory: the node's RSS growth per idle TLS connection, at 1,000 connections.

A fakecql node in its own process; this process opens N TLS 1.3 connections
(handshake and CQL STARTUP done, then idle) and reads the node's RSS before
and after. Prints figures; asserts nothing.

    python benchmarks/memory.py [--connections 1000]
"""
from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import NodeProcess, RawClient, machine, raise_fd_limit, table  # noqa: E402


def collect(connections: int = 1000) -> Dict[str, str]:
    raise_fd_limit(connections + 200)
    with NodeProcess("--tls", "--tls-min", "1.3") as node:
        context = ssl.create_default_context(cafile=node.ca_pem)
        time.sleep(0.2)
        before = node.rss_bytes()
        held: List[RawClient] = []
        try:
            for _ in range(connections):
                held.append(RawClient.started(node.host, node.port, context))
            time.sleep(0.5)  # let the node settle (tickets sent, buffers trimmed)
            after = node.rss_bytes()
        finally:
            for client in held:
                client.close()
    return {
        "idle TLS connections held": f"{connections}",
        "node RSS before": f"{before / 2**20:.1f} MiB",
        "node RSS with them": f"{after / 2**20:.1f} MiB",
        "RSS growth per idle TLS connection": f"{(after - before) / connections / 1024:.1f} KiB",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    args = parser.parse_args()
    print(f"# Memory per idle TLS connection\n\n{machine()}\n")
    figures = collect(args.connections)
    print(table([{"what": k, "figure": v} for k, v in figures.items()], ["what", "figure"]))


if __name__ == "__main__":
    main()
