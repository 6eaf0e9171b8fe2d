"""Reactor throughput over TLS 1.3 and plain TCP against a fakecql node in
its own process.

For each reactor importable here (AsyncioTransportConnection, the driver's
asyncio reactor, libev, asyncore): N prepared queries with C in flight.
Prints queries/s, p50/p99 latency and client CPU seconds per 1,000 queries,
then the ratios of the transport reactor to each other reactor. Every
measurement runs in a fresh client process (no reactor thread of an earlier
run competes), and the reactor order alternates between rounds to cancel
drift. Prints figures; asserts nothing.

    python benchmarks/reactor_throughput.py [--queries 20000] [--concurrency 1,32,128] [--rounds 2]
"""
from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from collections import defaultdict
from typing import Any, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import NodeProcess, machine, median, percentile, table  # noqa: E402

QUERY = "SELECT release_version FROM system.local WHERE key = ?"
ALL_REACTORS = ["transport", "asyncio", "libev", "asyncore"]


def worker(args: argparse.Namespace) -> None:
    """One measurement, in this process: print one JSON line."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy
    from cassandra.query import tuple_factory

    from fakecql.reactors import load_reactor

    context = None
    if args.ca:
        context = ssl.create_default_context(cafile=args.ca)
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_3
    # Protocol v4 (what Scylla speaks) and tuple rows: the driver's v5 segment
    # CRCs and per-result namedtuple classes are pure Python and the same for
    # every reactor; leaving them out makes the reactors' own cost visible.
    cluster = Cluster(
        [args.host], port=args.port, ssl_context=context, connection_class=load_reactor(args.reactor),
        protocol_version=4,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), row_factory=tuple_factory)},
        connect_timeout=10, control_connection_timeout=10,
    )
    try:
        session = cluster.connect()
        statement = session.prepare(QUERY)
        run(session, statement, min(2000, args.queries), args.concurrency)  # warm up
        cpu0, wall0 = time.process_time(), time.perf_counter()
        latencies = run(session, statement, args.queries, args.concurrency)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        cluster.shutdown()
    print(json.dumps({
        "qps": args.queries / wall,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "cpu_per_1000": cpu / args.queries * 1000,
    }))


def run(session: Any, statement: Any, total: int, concurrency: int) -> List[float]:
    """`total` executions keeping `concurrency` in flight; the latency of each."""
    latencies: List[float] = []
    lock = threading.Lock()
    done = threading.Event()
    state = {"issued": 0, "finished": 0, "error": None}

    def issue() -> None:
        with lock:
            if state["issued"] >= total:
                return
            state["issued"] += 1
        started = time.perf_counter()
        future = session.execute_async(statement, ("local",))
        future.add_callbacks(finished, failed, callback_args=(started,), errback_args=(started,))

    def finished(rows: Any, started: float) -> None:
        latencies.append(time.perf_counter() - started)
        complete()

    def failed(exc: BaseException, started: float) -> None:
        state["error"] = exc
        complete()

    def complete() -> None:
        with lock:
            state["finished"] += 1
            last = state["finished"] >= total
        if last:
            done.set()
        else:
            issue()

    for _ in range(min(concurrency, total)):
        issue()
    if not done.wait(600):
        raise RuntimeError(f"only {state['finished']} of {total} queries finished in 600 s")
    if state["error"] is not None:
        raise RuntimeError(f"a query failed: {state['error']!r}")
    return latencies


def measure(node: NodeProcess, reactor: str, tls: bool, queries: int, concurrency: int) -> Dict[str, float]:
    argv = [sys.executable, os.path.abspath(__file__), "--worker", "--reactor", reactor,
            "--host", node.host, "--port", str(node.port), "--queries", str(queries),
            "--concurrency", str(concurrency)]
    if tls:
        argv += ["--ca", node.ca_pem]
    node_cpu = node.cpu_seconds()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    node_cpu = node.cpu_seconds() - node_cpu
    if result.returncode != 0:
        raise RuntimeError(f"{reactor} failed:\n{result.stderr[-2000:]}")
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    # The node's CPU over the whole run (connect and warm-up included): a
    # node near one core means the node, not the reactor, set the pace.
    figures["node_cpu_per_1000"] = node_cpu / (queries + min(2000, queries)) * 1000
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--concurrency", default="1,32,128")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--reactors", default=",".join(ALL_REACTORS))
    parser.add_argument("--transports", default="tls,plain")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reactor", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ca", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.concurrency = int(args.concurrency)
        worker(args)
        return

    figures = collect(args.queries, [int(c) for c in args.concurrency.split(",")], args.rounds,
                      args.reactors.split(","), args.transports.split(","), verbose=True)
    print(figures["report"])


def collect(queries: int = 20000, concurrencies: List[int] = (1, 32, 128), rounds: int = 2,  # type: ignore[assignment]
            reactors: List[str] = ALL_REACTORS, transports: List[str] = ("tls", "plain"),  # type: ignore[assignment]
            verbose: bool = False) -> Dict[str, Any]:
    """Run the measurements; the Markdown report and the ratios at TLS 1.3, C = max."""
    from fakecql.reactors import available_reactors

    usable, unusable = available_reactors(list(reactors))
    lines = [f"# Reactor throughput\n\n{machine()}\n"]
    for name, reason in unusable.items():
        lines.append(f"not measured: {name}: {reason}")
    samples: Dict[Tuple[str, int, str], List[Dict[str, float]]] = defaultdict(list)
    for transport in transports:
        tls = transport == "tls"
        with NodeProcess(*(["--tls", "--tls-min", "1.3"] if tls else [])) as node:
            for round_number in range(rounds):
                order = list(usable) if round_number % 2 == 0 else list(reversed(list(usable)))
                for concurrency in concurrencies:
                    for reactor in order:
                        samples[(transport, concurrency, reactor)].append(
                            measure(node, reactor, tls, queries, concurrency))
                        if verbose:
                            print(f"  {transport} C={concurrency} {reactor}: "
                                  f"{samples[(transport, concurrency, reactor)][-1]['qps']:,.0f} q/s", file=sys.stderr)
    rows = []
    for (transport, concurrency, reactor), runs in samples.items():
        rows.append({
            "transport": "TLS 1.3" if transport == "tls" else "plain",
            "C": concurrency,
            "reactor": reactor,
            "queries/s": f"{median([r['qps'] for r in runs]):,.0f}",
            "p50 ms": f"{median([r['p50_ms'] for r in runs]):.2f}",
            "p99 ms": f"{median([r['p99_ms'] for r in runs]):.2f}",
            "client CPU s/1000": f"{median([r['cpu_per_1000'] for r in runs]):.3f}",
            "node CPU s/1000": f"{median([r['node_cpu_per_1000'] for r in runs]):.3f}",
        })
    lines.append(f"N = {queries} per run, {rounds} rounds (median shown)\n")
    lines.append(table(rows, ["transport", "C", "reactor", "queries/s", "p50 ms", "p99 ms", "client CPU s/1000",
                              "node CPU s/1000"]))
    ratios: Dict[str, float] = {}
    if "transport" in usable:
        lines.append("\nratios, transport reactor / other (queries/s; >1 means the transport reactor is faster)\n")
        ratio_rows = []
        for (transport, concurrency, reactor), runs in samples.items():
            if reactor == "transport":
                continue
            mine = median([r["qps"] for r in samples[(transport, concurrency, "transport")]])
            other = median([r["qps"] for r in runs])
            ratio_rows.append({"transport": transport, "C": concurrency, "vs": reactor, "ratio": f"{mine / other:.2f}x"})
            if transport == "tls" and concurrency == max(concurrencies):
                ratios[reactor] = mine / other
        lines.append(table(ratio_rows, ["transport", "C", "vs", "ratio"]))
    return {"report": "\n".join(lines), "ratios": ratios, "C": max(concurrencies)}

if __name__ == "__main__":
    main()
