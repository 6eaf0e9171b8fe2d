"""Load: how long a query takes to be answered by a node holding 1,000 idle
TLS connections, against the same node holding none.

A fakecql node in its own process (TLS 1.3, ECDSA P-256); this process first
times queries on one TLS connection (one at a time: send, wait for the
answer), then opens N more TLS connections (handshake and CQL STARTUP done,
then idle), times the same queries again, and closes them. Prints p50, p99
and max; asserts nothing.

    python benchmarks/load.py [--idle-connections 1000] [--queries 200]
"""
from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import NodeProcess, RawClient, machine, percentile, query_frame, raise_fd_limit, table  # noqa: E402

QUERY = "SELECT release_version FROM system.local"
WARM_UP = 20
def time_queries(client: RawClient, count: int) -> List[float]:
    """Seconds from sending each query to reading its answer, one query at a time."""
    times = []
    for i in range(WARM_UP + count):
        stream = i % 32768
        started = time.perf_counter()
        client.sock.sendall(query_frame(QUERY, stream))
        opcode, answered, _ = client.read_frame()
        elapsed = time.perf_counter() - started
        if opcode != 0x08 or answered != stream:
            raise RuntimeError(f"expected RESULT (0x08) on stream {stream}, got opcode 0x{opcode:02x} on {answered}")
        if i >= WARM_UP:
            times.append(elapsed)
    return times


def _row(idle: int, times: List[float]) -> Dict[str, object]:
    return {
        "idle TLS connections": idle,
        "queries": len(times),
        "p50 ms": f"{percentile(times, 0.50) * 1000:.3f}",
        "p99 ms": f"{percentile(times, 0.99) * 1000:.3f}",
        "max ms": f"{max(times) * 1000:.3f}",
    }


def collect(idle_connections: int = 1000, queries: int = 200) -> Dict[str, object]:
    """{"report": Markdown, "summary": {what: figure}} for run_all.py."""
    raise_fd_limit(idle_connections + 500)  # the node process inherits it
    rows: List[Dict[str, object]] = []
    with NodeProcess("--tls", "--tls-min", "1.3") as node:
        context = ssl.create_default_context(cafile=node.ca_pem)
        querier = RawClient.started(node.host, node.port, context)
        held: List[RawClient] = []
        try:
            rows.append(_row(0, time_queries(querier, queries)))
            started = time.perf_counter()
            for _ in range(idle_connections):
                held.append(RawClient.started(node.host, node.port, context))
            opening = time.perf_counter() - started
            time.sleep(0.5)  # let the node settle (session tickets sent)
            rss = node.rss_bytes()
            rows.append(_row(idle_connections, time_queries(querier, queries)))
        finally:
            for client in held:
                client.close()
            querier.close()
    columns = ["idle TLS connections", "queries", "p50 ms", "p99 ms", "max ms"]
    report = "\n".join([
        f"## Load: query answer time with {idle_connections} idle TLS connections held open",
        "",
        table(rows, columns),
        "",
        f"Opening the {idle_connections} connections (TLS 1.3 handshake and STARTUP, one after another): "
        f"{opening:.2f} s ({opening / max(idle_connections, 1) * 1000:.2f} ms each); "
        f"node RSS with them: {rss / 2**20:.1f} MiB.",
    ])
    loaded = rows[-1]
    summary = {
        f"query answer time p50 / p99, {idle_connections} idle TLS connections held open":
            f"{loaded['p50 ms']} / {loaded['p99 ms']} ms (none held: {rows[0]['p50 ms']} / {rows[0]['p99 ms']} ms)",
    }
    return {"report": report, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-connections", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    print(f"# Load\n\n{machine()}\n")
    print(collect(args.idle_connections, args.queries)["report"])


if __name__ == "__main__":
    main()
