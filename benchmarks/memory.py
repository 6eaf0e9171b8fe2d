"""Memory: the node's RSS growth per idle TLS connection, at 1,000 connections.

A fakecql node in its own process; this process opens N TLS 1.3 connections
(handshake and CQL STARTUP done, then idle) and reads the node's RSS before
and after. Prints figures; asserts nothing.

    python benchmarks/memory.py [--connections 1000]
"""
from __future__ import annotations

import argparse
import os
import resource
import socket
import ssl
import struct
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import NodeProcess, machine, table  # noqa: E402


def _startup_frame() -> bytes:
    key, value = b"CQL_VERSION", b"3.0.0"
    body = struct.pack(">HH", 1, len(key)) + key + struct.pack(">H", len(value)) + value
    return struct.pack(">BBhBi", 4, 0, 0, 0x01, len(body)) + body


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def collect(connections: int = 1000) -> Dict[str, str]:
    _raise_fd_limit(connections + 200)
    with NodeProcess("--tls", "--tls-min", "1.3") as node:
        context = ssl.create_default_context(cafile=node.ca_pem)
        time.sleep(0.2)
        before = node.rss_bytes()
        held: List[ssl.SSLSocket] = []
        startup = _startup_frame()
        try:
            for _ in range(connections):
                sock = context.wrap_socket(socket.create_connection((node.host, node.port), timeout=30),
                                           server_hostname=node.host)
                sock.sendall(startup)
                assert sock.recv(9)[4] == 0x02  # READY
                held.append(sock)
            time.sleep(0.5)  # let the node settle (tickets sent, buffers trimmed)
            after = node.rss_bytes()
        finally:
            for sock in held:
                sock.close()
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
