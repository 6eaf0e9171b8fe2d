"""Run the benchmarks, write their full reports to benchmarks/RESULTS.md and
the headline figures into the README's table (between its benchmark
markers). Prints figures; asserts nothing.

    python benchmarks/run_all.py [--quick] [--only reactor_throughput,node_capacity,...]

--quick runs each with smaller counts (for a smoke run, not for figures;
the README is left alone). --only runs the benchmarks named and replaces
their rows and sections only: the others keep the figures of their last run
(the table's `script` column says which script measured a row).
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from typing import Callable, Dict, List, Tuple, cast

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import (  # noqa: E402
    bystander, connection_setup, fixture_cost, load, long_run_memory, memory, node_capacity, reactor_instructions,
    reactor_throughput,
)
from benchmarks._common import machine, table  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
COLUMNS = ["benchmark", "figure", "target", "script"]
Rows = List[Dict[str, str]]
Section = Tuple[str, Rows]  # (Markdown report, summary rows)


def reactor_section(quick: bool) -> Section:
    result = reactor_throughput.collect(queries=3000 if quick else 20000, rounds=1 if quick else 5)
    medians = result["medians"]
    rows: Rows = []
    for mine in ("transport", "transport-uvloop"):
        for transport, label in (("tls", "TLS 1.3"), ("plain", "plain")):
            for concurrency in (1, 16, 128):
                ours, base = medians.get((transport, concurrency, mine)), medians.get((transport, concurrency, "libev"))
                if ours and base:
                    rows.append({"benchmark": f"{mine} reactor / libev, {label}, C = {concurrency}: queries/s, "
                                              f"CPU per query",
                                 "figure": f"{ours['qps'] / base['qps']:.2f}x, {ours['cpu_us'] / base['cpu_us']:.2f}x",
                                 "target": "≥ 1.0x, ≤ 1.0x"})
    if "asyncio" in result["ratios"]:
        rows.append({"benchmark": f"transport reactor / asyncio reactor, TLS 1.3, C = {result['C']}: queries/s",
                     "figure": f"{result['ratios']['asyncio']:.2f}x", "target": "≥ 1.3x"})
    for concurrency in (1, 128):
        ours, base = medians.get(("tls", concurrency, "transport")), medians.get(("tls", concurrency, "libev"))
        if ours and base:
            rows.append({"benchmark": f"objects the cyclic GC collected per 10,000 queries, TLS 1.3, C = "
                                      f"{concurrency}: transport / libev",
                         "figure": f"{ours['gc_collected']:,.0f} / {base['gc_collected']:,.0f}", "target": "0 / -"})
    return str(result["report"]), rows


def instructions_section(quick: bool) -> Section:
    result = reactor_instructions.collect(concurrencies=(1, 128) if quick else (1, 16, 128),
                                          fewer=200 if quick else 1000, more=600 if quick else 5000)
    counts = result["counts"]
    rows: Rows = []
    for transport, label in (("tls", "TLS 1.3"), ("plain", "plain")):
        for concurrency in (1, 16, 128):
            ours, base = counts.get((transport, concurrency, "transport")), counts.get((transport, concurrency, "libev"))
            if ours and base:
                rows.append({"benchmark": f"client instructions per query, transport reactor / libev, {label}, "
                                          f"C = {concurrency}",
                             "figure": f"{ours / base:.3f}x ({ours:,.0f} / {base:,.0f})", "target": "≤ 1.0x"})
    return str(result["report"]), rows


def node_section(quick: bool) -> Section:
    seconds = 1 if quick else 5
    reports, rows = [], []
    for use_uvloop in (False, True):
        result = node_capacity.collect(seconds=seconds, use_uvloop=use_uvloop)
        reports.append(str(result["report"]))
        loop = "uvloop" if use_uvloop else "asyncio"
        for (transport, window), figure in sorted(cast(Dict[Tuple[str, int], Dict[str, float]], result["figures"]).items()):
            target = {1: "≤ 60 µs", 64: "≤ 12 µs"}.get(window, "") if not use_uvloop else ""
            rows.append({"benchmark": f"node CPU per request ({loop}), TLS 1.3, {window} in flight per connection",
                         "figure": f"{figure['node_cpu_us']:.1f} µs (raw asyncio server: {figure['raw_cpu_us']:.1f})",
                         "target": target})
    distinct = node_capacity.collect(seconds=seconds, windows=[64], distinct=True)
    reports.append(str(distinct["report"]))
    for (transport, window), figure in sorted(cast(Dict[Tuple[str, int], Dict[str, float]], distinct["figures"]).items()):
        rows.append({"benchmark": f"node CPU per request, TLS 1.3, {window} in flight, every request another key",
                     "figure": f"{figure['node_cpu_us']:.1f} µs", "target": ""})
    reports.append("## Where the node's time goes (window 64)\n\n" + node_capacity.profile(
        seconds=1 if quick else 3, connections=4, window=64))
    return "# Node capacity\n\n" + "\n\n".join(reports), rows


def fixture_section(quick: bool) -> Section:
    costs = fixture_cost.collect(repeat=50 if quick else 200, suite=not quick)
    targets = {"TLS node start + stop (median)": "≤ 5 ms", "whole suite, pytest -n auto": "≤ 5 min"}
    return ("# Fixture cost\n\n" + table([{"what": k, "figure": v} for k, v in costs.items()], ["what", "figure"]),
            [{"benchmark": what, "figure": figure, "target": targets.get(what, "")} for what, figure in costs.items()])


def setup_section(quick: bool) -> Section:
    rows, reason = connection_setup.collect(connections=30 if quick else 200)
    report = "# Connection set-up: full vs resumed TLS handshake\n\n" + (reason or table(
        rows, ["TLS", "reactor", "handshake", "set-up ms (median)", "client CPU ms (median)", "sessions reused"]))
    return report, [{"benchmark": f"resumed / full TLS {row['TLS']} set-up, {row['reactor']}",
                     "figure": f"{row['set-up ms (median)']} time, {row['client CPU ms (median)']} CPU",
                     "target": "< 100%"} for row in rows if row["handshake"] == "resumed / full"]


def memory_section(quick: bool) -> Section:
    figures = memory.collect(connections=200 if quick else 1000)
    report = "# Memory per idle TLS connection\n\n" + table(
        [{"what": k, "figure": v} for k, v in figures.items()], ["what", "figure"])
    return report, [{"benchmark": f"node RSS per idle TLS connection (at {figures['idle TLS connections held']})",
                     "figure": figures["RSS growth per idle TLS connection"], "target": ""}]


def load_section(quick: bool) -> Section:
    result = load.collect(idle_connections=200 if quick else 1000)
    return str(result["report"]), [{"benchmark": what, "figure": figure, "target": ""}
                                   for what, figure in cast(Dict[str, str], result["summary"]).items()]


def bystander_section(quick: bool) -> Section:
    attacks = bystander.collect(max_frame_body=(1 if quick else 16) * 2**20,
                                max_query_bytes=(64 if quick else 1024) * 2**10)
    return ("# Bystander latency under attack\n\n" + str(attacks["report"]),
            [{"benchmark": "attacks (largest requests, LZ4 bombs, pathological texts) during which a bystander "
                           "query's worst latency stayed under 100 ms", "figure": str(attacks["met"]),
              "target": "all"}])


def long_run_section(quick: bool) -> Section:
    result = long_run_memory.collect(requests=20_000 if quick else 2_000_000, out=sys.stderr)
    return ("# Long-run memory\n\n" + str(result["report"]),
            [{"benchmark": str(result["headline"]), "figure": str(result["figure"]), "target": str(result["target"])}])


# In the order of the README's table and of RESULTS.md.
SECTIONS: Dict[str, Callable[[bool], Section]] = {
    "reactor_throughput": reactor_section,
    "reactor_instructions": instructions_section,
    "node_capacity": node_section,
    "fixture_cost": fixture_section,
    "connection_setup": setup_section,
    "memory": memory_section,
    "load": load_section,
    "bystander": bystander_section,
    "long_run_memory": long_run_section,
}


def section_markers(name: str) -> Tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def previous_sections(results: str) -> Dict[str, str]:
    """The sections of an earlier RESULTS.md, by script name."""
    found = {}
    for name in SECTIONS:
        begin, end = section_markers(name)
        match = re.search(re.escape(begin) + r"\n(.*?)\n" + re.escape(end), results, re.S)
        if match:
            found[name] = match.group(1)
    return found


def previous_rows(readme: str) -> Dict[str, Rows]:
    """The rows of the README's table, by the script that measured them."""
    rows: Dict[str, Rows] = {}
    block = re.search(re.escape(BEGIN) + "(.*?)" + re.escape(END), readme, re.S)
    for line in (block.group(1) if block else "").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == len(COLUMNS) and cells[3] in SECTIONS:
            rows.setdefault(cells[3], []).append(dict(zip(COLUMNS, cells)))
    return rows


def parse_only(text: str) -> List[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SECTIONS]
    if unknown or not names:
        raise SystemExit(f"run_all.py: --only: no such benchmark: {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(SECTIONS)}")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", type=parse_only, default=list(SECTIONS),
                        help=f"comma-separated, from: {', '.join(SECTIONS)}")
    args = parser.parse_args()
    if "reactor_instructions" in args.only and shutil.which("valgrind") is None:
        raise SystemExit(f"run_all.py: reactor_instructions: {reactor_instructions.VALGRIND_MISSING}; "
                         f"or leave it out with --only")
    results_path = os.path.join(ROOT, "benchmarks", "RESULTS.md")
    readme_path = os.path.join(ROOT, "README.md")
    with open(results_path) as handle:
        reports = previous_sections(handle.read())
    with open(readme_path) as handle:
        readme = handle.read()
    rows = previous_rows(readme)
    for name in args.only:
        report, summary = SECTIONS[name](args.quick)
        reports[name] = f"{machine()}\n\n{report}"
        rows[name] = [{**row, "script": name} for row in summary]

    body = "\n\n".join(f"{section_markers(name)[0]}\n{reports[name]}\n{section_markers(name)[1]}"
                       for name in SECTIONS if name in reports)
    results = f"# Benchmark results\n\nEach section names the machine and the day it was measured on.\n\n{body}\n"
    note = "" if set(args.only) == set(SECTIONS) else (
        f"\n\nThis run: {', '.join(args.only)}. The other rows keep their last run's figures; "
        f"benchmarks/RESULTS.md names the machine and day of each section.")
    headline = (f"{machine()}{note}\n\n"
                + table([row for name in SECTIONS for row in rows.get(name, [])], COLUMNS))
    print(results)
    print(headline)
    if args.quick:
        return
    with open(results_path, "w") as handle:
        handle.write(results)
    with open(readme_path) as handle:  # again: the runs take minutes, and the README may have been edited meanwhile
        readme = handle.read()
    replaced, count = re.subn(re.escape(BEGIN) + ".*?" + re.escape(END),
                              lambda _: f"{BEGIN}\n{headline}\n{END}", readme, flags=re.S)
    if count != 1:
        raise SystemExit(f"README.md must hold exactly one {BEGIN} ... {END} block")
    with open(readme_path, "w") as handle:
        handle.write(replaced)


if __name__ == "__main__":
    main()
