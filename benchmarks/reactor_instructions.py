"""Instructions the client executes per query, by reactor: a measure of a
reactor's cost that the machine's noise does not move.

On a shared 2-CPU VM a client's CPU time per query spreads by a third from
one run to the next (reactor_throughput.py shows it), more than the
difference between two good reactors. The user-space instructions a client
executes, counted by valgrind (cachegrind, no cache simulation), move by
two or three per cent at most (the threads interleave differently). Each
count runs reactor_throughput's client (same driver set-up, same prepared query,
same peer) under valgrind twice, with fewer and with more queries; the
difference divided by the difference in queries run (warm-ups included)
is the cost of one query: start-up and connection cancel out.

What it does not count: time in the kernel (system calls), cache misses and
stalls, the cyclic garbage collector's cost beyond its instructions. It
complements reactor_throughput's CPU figures, it does not replace them.
Under valgrind the client runs some 50 times slower, so the peer is always
ahead of it: every read finds the answers ready, the client-bound case
(at one in flight a read holds one answer anyway). Needs valgrind
(`apt install valgrind`). Prints figures; asserts nothing.

    python benchmarks/reactor_instructions.py [--concurrency 1,16,128] [--transports plain,tls]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import machine, table  # noqa: E402
from benchmarks.reactor_throughput import BASELINE, known_reactors, start_peer, warm_up, worker_argv  # noqa: E402

INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")
VALGRIND_MISSING = "valgrind is not installed (or not on PATH): apt install valgrind"


def instructions(argv: Sequence[str], what: str) -> int:
    """User-space instructions `argv` executes (its own process only)."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *argv]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    found = INSTRUCTIONS.findall(result.stderr)
    if result.returncode != 0 or not found:
        raise RuntimeError(f"{what} under valgrind failed (exit {result.returncode}):\n"
                           f"{result.stderr[-2000:]}")
    return int(found[-1].replace(",", ""))


def per_query(reactor: str, tls: bool, concurrency: int, fewer: int, more: int) -> float:
    """Instructions for one query: two runs, `more` and `fewer` queries
    (each after its warm-up), subtracted."""
    what = f"the {reactor} client ({'TLS' if tls else 'plain'}, C={concurrency})"
    with start_peer("canned", tls) as peer:
        low = instructions(worker_argv(peer, reactor, tls, fewer, concurrency), what)
        high = instructions(worker_argv(peer, reactor, tls, more, concurrency), what)
    return (high - low) / ((more + warm_up(more)) - (fewer + warm_up(fewer)))


def collect(reactors: Sequence[str] = ("transport", BASELINE), transports: Sequence[str] = ("plain", "tls"),
            concurrencies: Sequence[int] = (1, 16, 128), fewer: int = 1000, more: int = 5000,
            verbose: bool = True) -> Dict[str, Any]:
    """{"counts": {(transport, C, reactor): instructions per query}, "report": Markdown}."""
    if shutil.which("valgrind") is None:
        raise RuntimeError(VALGRIND_MISSING)
    usable, unusable = known_reactors(reactors)
    counts: Dict[Tuple[str, int, str], float] = {}
    for transport in transports:
        for concurrency in concurrencies:
            for reactor in usable:
                count = per_query(reactor, transport == "tls", concurrency, fewer, more)
                counts[(transport, concurrency, reactor)] = count
                if verbose:
                    print(f"  {transport} C={concurrency} {reactor}: {count:,.0f} instructions/query",
                          file=sys.stderr, flush=True)
    rows = []
    for (transport, concurrency, reactor), count in counts.items():
        base = counts.get((transport, concurrency, BASELINE))
        rows.append({"transport": transport, "C": concurrency, "reactor": reactor,
                     "instructions/query": f"{count:,.0f}", f"/ {BASELINE}": f"{count / base:.3f}x" if base else "-"})
    lines = [f"# Client instructions per query\n\nvalgrind (cachegrind, no cache simulation); runs of {fewer} and "
             f"{more} queries, subtracted; the canned peer\n",
             table(rows, ["transport", "C", "reactor", "instructions/query", f"/ {BASELINE}"])]
    lines += [f"\n{name}: not measured: {why}" for name, why in unusable.items()]
    return {"counts": counts, "report": "\n".join(lines)}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reactors", default=f"transport,{BASELINE}")
    parser.add_argument("--transports", default="plain,tls")
    parser.add_argument("--concurrency", default="1,16,128")
    parser.add_argument("--fewer", type=int, default=1000, help="queries in the shorter run (after its warm-up)")
    parser.add_argument("--more", type=int, default=5000, help="queries in the longer run")
    args = parser.parse_args(argv)
    if args.fewer < 1 or args.more <= args.fewer:
        parser.error(f"--more ({args.more}) must be larger than --fewer ({args.fewer}), and --fewer at least 1")
    transports = args.transports.split(",")
    for transport in transports:
        if transport not in ("plain", "tls"):
            parser.error(f"--transports: {transport!r} is neither plain nor tls")
    try:
        concurrencies = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error(f"--concurrency: {args.concurrency!r} is not a comma-separated list of whole numbers")
    if shutil.which("valgrind") is None:
        print(VALGRIND_MISSING, file=sys.stderr)
        return 2
    result = collect(args.reactors.split(","), transports, concurrencies, args.fewer, args.more)
    print(machine())
    print()
    print(result["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
