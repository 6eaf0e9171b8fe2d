"""The long run of the protocol properties: tests/unit/protocol/test_properties.py
with fresh random cases and many more of them than the suite runs.

    python fuzz/long_run.py [--cases 100000] [--workers N] [-k EXPR]

Strategy: the same properties and the same strategies (strategies.py) as the
CI run, under the "fakecql-long" Hypothesis profile (random, database-less):
pytest runs the file in a subprocess, in rounds, until --cases cases have run
in total (a round's size is what is left, shared out among the tests; a test
whose cases run out early, such as one over a handful of messages, stops
sooner). Each test reports its number of cases (the `cases` property of its
report, which crosses pytest-xdist workers); this file is also the pytest
plugin (-p long_run) that adds them up. Prints the cases per property, the
total and the time; exits 1 if any property failed (pytest prints the shrunk
failing case above), 0 otherwise.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join("tests", "unit", "protocol", "test_properties.py")
REPORT_ENV = "FAKECQL_LONG_RUN_REPORT"

# -- the pytest plugin (-p long_run): each round's counts into a JSON file ----
_cases: Dict[str, int] = collections.Counter()
_failed: List[str] = []


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        _failed.append(report.nodeid)
    if report.when == "teardown":
        for name, value in report.user_properties:
            if name == "cases":
                _cases[report.nodeid] += int(value)


def pytest_sessionfinish(session: Any) -> None:
    path = os.environ.get(REPORT_ENV)
    if path and not hasattr(session.config, "workerinput"):  # the xdist controller, or no xdist
        with open(path, "w") as f:
            json.dump({"cases": _cases, "failed": _failed}, f)


# -- the command -------------------------------------------------------------
def _property(nodeid: str) -> str:
    return nodeid.split("::", 1)[-1].split("[", 1)[0]


def _round(per_round: int, args: argparse.Namespace, report: str) -> Dict[str, Any]:
    command = [
        sys.executable, "-m", "pytest", TEST_FILE, "-q", "--no-header", "-p", "no:cacheprovider",
        "-p", "long_run", "-o", "timeout=0",
    ]
    if args.workers > 1:
        command += ["-n", str(args.workers)]
    if args.keyword:
        command += ["-k", args.keyword]
    env = dict(
        os.environ,
        FAKECQL_HYPOTHESIS_PROFILE="fakecql-long",
        FAKECQL_LONG_EXAMPLES=str(per_round),
        PYTHONPATH=os.pathsep.join(filter(None, [os.path.join(ROOT, "fuzz"), os.environ.get("PYTHONPATH")])),
        **{REPORT_ENV: report},
    )
    code = subprocess.call(command, cwd=ROOT, env=env)
    try:
        with open(report) as f:
            result = json.load(f)
    except (OSError, ValueError):
        result = {"cases": {}, "failed": []}
    result["code"] = code
    return result


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000, help="cases to run in total (default 100000)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="pytest-xdist workers (default: one per CPU; 1: no xdist)")
    parser.add_argument("-k", dest="keyword", default=None, help="only the properties pytest -k selects")
    args = parser.parse_args(argv)

    cases: Dict[str, int] = collections.Counter()
    failed: List[str] = []
    start = time.monotonic()
    rounds = 0
    code = 0
    # The first round's size is a guess (about 40 shares of test_properties'
    # budget() in all: some 70% of --cases); the next ones size themselves
    # on what a round gave, until the cases asked for have run.
    per_round = max(10, math.ceil(args.cases / 55))
    with tempfile.TemporaryDirectory() as tmp:
        while sum(cases.values()) < args.cases:
            rounds += 1
            print(f"--- round {rounds}: up to {per_round} cases per test", flush=True)
            result = _round(per_round, args, os.path.join(tmp, f"round{rounds}.json"))
            ran = sum(result["cases"].values())
            cases.update(result["cases"])
            failed += result["failed"]
            code = result["code"]
            if code != 0 or failed or ran == 0:
                break
            missing = args.cases - sum(cases.values())
            per_round = max(10, math.ceil(missing * per_round / ran * 1.05))
    elapsed = time.monotonic() - start

    by_property: Dict[str, int] = collections.Counter()
    items: Dict[str, int] = collections.Counter()
    for nodeid, n in cases.items():
        if n:  # the plain regression tests in the file run no cases
            by_property[_property(nodeid)] += n
            items[_property(nodeid)] += 1
    total = sum(by_property.values())
    print()
    print(f"{'property':<44} {'tests':>5} {'cases':>9}")
    for name in sorted(by_property):
        print(f"{name:<44} {items[name]:>5} {by_property[name]:>9}")
    print(f"{'total':<44} {sum(items.values()):>5} {total:>9}")
    result_word = "FAILED" if code != 0 or failed else "passed"
    print(
        f"long run: {total} cases in {rounds} round(s), {elapsed:.0f} s, "
        f"{args.workers} worker(s), Python {sys.version.split()[0]}: {result_word}"
    )
    if failed:
        print("failed: " + ", ".join(sorted(set(failed))))
        return 1
    if code != 0:
        return 1
    if total < args.cases:
        print(f"only {total} of the {args.cases} cases asked for ran", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
