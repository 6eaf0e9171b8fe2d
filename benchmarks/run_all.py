"""Run every benchmark, write the full reports to benchmarks/RESULTS.md and
the headline figures into the README's table (between its benchmark
markers). Prints figures; asserts nothing.

    python benchmarks/run_all.py [--quick]

--quick runs each with smaller counts (for a smoke run, not for figures).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import (  # noqa: E402
    bystander, connection_setup, fixture_cost, load, long_run_memory, memory, node_capacity, reactor_throughput,
)
from benchmarks._common import machine, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = args.quick
    reports: List[str] = [f"# Benchmark results\n\n{machine()}\n"]
    summary: List[Dict[str, str]] = []

    throughput = reactor_throughput.collect(queries=3000 if quick else 20000, rounds=1 if quick else 2)
    reports.append(throughput["report"])
    for other, target in (("asyncio", "≥ 1.3x"), ("libev", "≥ 1.0x")):
        if other in throughput["ratios"]:
            summary.append({"benchmark": f"transport reactor / {other} reactor, TLS 1.3, C = {throughput['C']}",
                            "figure": f"{throughput['ratios'][other]:.2f}x", "target": target})

    capacity = node_capacity.collect(seconds=1 if quick else 5)
    reports.append("# Node capacity\n\n" + str(capacity["report"]))
    reports.append("## Where the node's time goes (window 64)\n\n" + node_capacity.profile(
        seconds=1 if quick else 3, connections=4, window=64))
    for (transport, window), ratio in sorted(capacity["ratios"].items()):  # type: ignore[union-attr]
        if transport == "tls":
            summary.append({"benchmark": f"node / raw asyncio server, TLS 1.3, {window} pipelined per connection",
                            "figure": f"{ratio:.0%}", "target": "≥ 50%"})

    costs = fixture_cost.collect(repeat=50 if quick else 200, suite=not quick)
    reports.append("# Fixture cost\n\n" + table([{"what": k, "figure": v} for k, v in costs.items()], ["what", "figure"]))
    for what, figure in costs.items():
        target = {"TLS node start + stop (median)": "≤ 5 ms", "whole suite, pytest -n auto": "≤ 5 min"}.get(what, "")
        summary.append({"benchmark": what, "figure": figure, "target": target})

    rows, reason = connection_setup.collect(connections=30 if quick else 200)
    reports.append("# Connection set-up: full vs resumed TLS handshake\n\n" + (reason or table(
        rows, ["TLS", "reactor", "handshake", "set-up ms (median)", "client CPU ms (median)", "sessions reused"])))
    for row in rows:
        if row["handshake"] == "resumed / full":
            summary.append({"benchmark": f"resumed / full TLS {row['TLS']} set-up, {row['reactor']}",
                            "figure": f"{row['set-up ms (median)']} time, {row['client CPU ms (median)']} CPU",
                            "target": "< 100%"})

    memory_figures = memory.collect(connections=200 if quick else 1000)
    reports.append("# Memory per idle TLS connection\n\n" + table(
        [{"what": k, "figure": v} for k, v in memory_figures.items()], ["what", "figure"]))
    summary.append({"benchmark": f"node RSS per idle TLS connection (at {memory_figures['idle TLS connections held']})",
                    "figure": memory_figures["RSS growth per idle TLS connection"], "target": ""})

    load_report = load.collect(idle_connections=200 if quick else 1000)
    reports.append(str(load_report["report"]))
    for what, figure in load_report["summary"].items():  # type: ignore[union-attr]
        summary.append({"benchmark": what, "figure": figure, "target": ""})

    attacks = bystander.collect(max_frame_body=(1 if quick else 16) * 2**20, max_query_bytes=(64 if quick else 1024) * 2**10)
    reports.append("# Bystander latency under attack\n\n" + str(attacks["report"]))
    summary.append({"benchmark": "attacks (largest requests, LZ4 bombs, pathological texts) during which a bystander "
                                 "query's worst latency stayed under 100 ms", "figure": str(attacks["met"]),
                    "target": "all"})

    long_run = long_run_memory.collect(requests=20_000 if quick else 2_000_000, out=sys.stderr)
    reports.append("# Long-run memory\n\n" + str(long_run["report"]))
    summary.append({"benchmark": str(long_run["headline"]), "figure": str(long_run["figure"]),
                    "target": str(long_run["target"])})

    results = "\n\n".join(reports) + "\n"
    with open(os.path.join(ROOT, "benchmarks", "RESULTS.md"), "w") as handle:
        handle.write(results)
    headline = f"{machine()}\n\n" + table(summary, ["benchmark", "figure", "target"])
    print(results)
    print(headline)
    if not quick:
        readme_path = os.path.join(ROOT, "README.md")
        with open(readme_path) as handle:
            readme = handle.read()
        replaced, count = re.subn(re.escape(BEGIN) + ".*?" + re.escape(END),
                                  lambda _: f"{BEGIN}\n{headline}\n{END}", readme, flags=re.S)
        if count != 1:
            raise SystemExit(f"README.md must hold exactly one {BEGIN} ... {END} block")
        with open(readme_path, "w") as handle:
            handle.write(replaced)


if __name__ == "__main__":
    main()
