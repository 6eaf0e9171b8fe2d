"""Fixture cost: what a test pays for a fakecql node.

Start + stop of a TLS node (CA and TLS settings already made, as the
session-scoped cql_ca gives them), the TLS handshake + CQL startup of one
connection, and the wall time of the whole default test suite with
`pytest -n auto`. Prints figures; asserts nothing.

    python benchmarks/fixture_cost.py [--repeat 200] [--no-suite]
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, median, percentile, startup_frame, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_stop(repeat: int) -> List[float]:
    import trustme

    from fakecql import CQLServer, TLSConfig

    config = TLSConfig.create(trustme.CA())
    CQLServer(tls=config).start().stop()  # imports and first-use caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        server = CQLServer(tls=config).start()
        server.stop()
        times.append(time.perf_counter() - started)
    return times


def handshake_and_startup(repeat: int) -> List[float]:
    import trustme

    from fakecql import CQLServer, TLSConfig, client_context

    ca = trustme.CA()
    context = client_context(ca, check_hostname=True)
    startup = startup_frame()
    times = []
    with CQLServer(tls=TLSConfig.create(ca), record_frames=False) as server:
        for _ in range(repeat + 5):
            started = time.perf_counter()
            with socket.create_connection(server.address, timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname=server.host) as sock:
                    sock.sendall(startup)
                    header = sock.recv(9)
                    assert header[4] == 0x02, header  # READY
            times.append(time.perf_counter() - started)
    return times[5:]


def suite_wall_time() -> Optional[float]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "auto", "-q", "-p", "no:cacheprovider",
                             "-m", os.environ.get("MARKEXPR", "")], cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-300:]
    print(f"suite: {summary}")
    return elapsed if result.returncode == 0 else None


def collect(repeat: int = 200, suite: bool = True) -> Dict[str, str]:
    starts = start_stop(repeat)
    handshakes = handshake_and_startup(repeat)
    figures = {
        "TLS node start + stop (median)": f"{median(starts) * 1000:.2f} ms",
        "TLS node start + stop (p90)": f"{percentile(starts, 0.9) * 1000:.2f} ms",
        "TLS 1.3 handshake + CQL STARTUP (median)": f"{median(handshakes) * 1000:.2f} ms",
    }
    if suite:
        wall = suite_wall_time()
        figures["whole suite, pytest -n auto"] = f"{wall:.0f} s" if wall is not None else "FAILED"
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--no-suite", action="store_true", help="skip timing the whole test suite")
    args = parser.parse_args()
    print(f"# Fixture cost\n\n{machine()}\n")
    figures = collect(args.repeat, not args.no_suite)
    print(table([{"what": k, "figure": v} for k, v in figures.items()], ["what", "figure"]))


if __name__ == "__main__":
    main()
