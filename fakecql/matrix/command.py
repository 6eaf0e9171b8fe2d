# `fakecql matrix`: every reactor of every driver asked for, under every
# scenario, against fakecql nodes; a table, reports, and status 1 when any
# cell deviates from the expectations table.
#
# Strategy: argparse options are checked before anything is built (a bad
# driver spec, reactor or scenario glob is one line and status 2); the
# driver environments are built or reused (envs.py), side by side; cells
# run with a progress bar on stderr (progress.py); the table goes to
# stdout (reports.terminal_report) and the files to --report-dir.
#
# Rules: status 0 when every cell is as expected, 1 when any deviates, 2
# for bad input or an environment that cannot be built.
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List

from ..reactors import OPT_IN_REACTORS, REACTORS
from .envs import DriverEnv, EnvironmentBuildError, default_cache_dir, ensure_env, parse_driver_spec
from .progress import Progress
from .reports import terminal_report, write_reports
from .runner import plan, reactors_of, run_matrix
from .scenarios import SCENARIOS, select_scenarios

__all__ = ["DEFAULT_DRIVERS", "add_parser", "run"]

# The bug and the fix side by side: cassandra-driver 3.30.1 (the Apache
# driver, all seven of its reactors, its asyncio reactor still hangs over
# TLS), scylla-driver 3.29.10 (the release before the upstream fix) and
# scylla-driver 3.29.12 (with it); cqltransport's reactor under each.
DEFAULT_DRIVERS = ("cassandra-driver==3.30.1", "scylla-driver==3.29.10", "scylla-driver==3.29.12")
DEFAULT_REPORT_DIR = "fakecql-matrix"


class MatrixUsageError(Exception):
    """Bad input to `matrix`: reported like argparse does, status 2."""


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of cells to run at once, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--jobs must be at least 1, got {value}")
    return value


def _driver(text: str) -> str:
    try:
        parse_driver_spec(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    matrix = commands.add_parser(
        "matrix", help="run every scenario under every reactor of the drivers, report the cause of every failure",
        description="Run every scenario under every reactor of each driver against fakecql nodes. "
                    "Exit status: 0 every cell as expected, 1 some cell deviates, 2 bad input.")
    matrix.add_argument("--driver", action="append", type=_driver, metavar="SPEC", default=None,
                        help="a driver release, NAME or NAME==VERSION, built into a cached environment; or "
                             "'installed': the driver this Python has (a driver's own checkout, say); "
                             f"repeatable (default: {' '.join(DEFAULT_DRIVERS)})")
    matrix.add_argument("--reactor", action="append", choices=list(REACTORS), default=None,
                        help="only this reactor, repeatable (default: every reactor each driver has; "
                             "transport-uvloop, cqltransport's on uvloop, runs only when asked for)")
    matrix.add_argument("--scenario", action="append", metavar="GLOB", default=None,
                        help="only scenarios matching this glob, repeatable (--list shows them)")
    matrix.add_argument("--jobs", type=_jobs, default=max(4, 4 * (os.cpu_count() or 1)), metavar="N",
                        help="cells run at once (default: 4 per CPU; cells mostly wait on the network)")
    matrix.add_argument("--report-dir", type=Path, default=Path(DEFAULT_REPORT_DIR), metavar="DIR",
                        help=f"where matrix.json, matrix.md, junit.xml and matrix.html go "
                             f"(default: ./{DEFAULT_REPORT_DIR})")
    matrix.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help=f"where driver environments are kept (default: {default_cache_dir()}, "
                             f"or $FAKECQL_CACHE)")
    matrix.add_argument("--rebuild", action="store_true", help="rebuild the driver environments")
    matrix.add_argument("--list", action="store_true", help="list the scenarios and their promises, then exit")
    matrix.set_defaults(parser=matrix)
    return matrix


def _list() -> int:
    for scenario in SCENARIOS:
        print(f"{scenario.name}\n    {scenario.summary}\n    promise: {scenario.promise_text}; "
              f"budget {scenario.budget:g} s")
    return 0


def _build_envs(specs: List[str], cache: Path, rebuild: bool, progress: Progress) -> List[DriverEnv]:
    parsed = [parse_driver_spec(s) for s in dict.fromkeys(specs)]
    with ThreadPoolExecutor(max_workers=len(parsed)) as pool:
        futures = [pool.submit(ensure_env, spec, cache, note=progress.note, rebuild=rebuild) for spec in parsed]
        return [f.result() for f in futures]


def run(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    try:
        scenarios = select_scenarios(args.scenario or ())
    except ValueError as exc:
        raise MatrixUsageError(str(exc)) from None
    reactors = list(dict.fromkeys(args.reactor or ()))
    specs = args.driver or list(DEFAULT_DRIVERS)
    cache = args.cache_dir or default_cache_dir()
    started = time.monotonic()
    notes = Progress(0)
    try:
        envs = _build_envs(specs, cache, args.rebuild, notes)
    except EnvironmentBuildError as exc:
        notes.close()
        print(f"matrix: error: {exc}", file=sys.stderr)
        return 2
    notes.close()
    for reactor in reactors:
        if reactor not in OPT_IN_REACTORS and not any(reactor in env.info.reactors for env in envs):
            shipped = "; ".join(f"{env.info.label}: {', '.join(env.info.reactors)}" for env in envs)
            raise MatrixUsageError(f"--reactor {reactor}: no driver asked for has it ({shipped})")
    cells = len(plan(envs, reactors, scenarios))
    print(f"matrix: {cells} cells: {len(scenarios)} scenarios x "
          + ", ".join(f"{env.info.label} ({', '.join(reactors_of(env, reactors))})"
                      for env in envs)
          + f"; {args.jobs} at a time", file=sys.stderr, flush=True)
    progress = Progress(cells)
    try:
        run_ = run_matrix(envs, scenarios, reactors=reactors, jobs=args.jobs, on_cell=progress.advance,
                          cache_dir=cache)
    finally:
        progress.close()
    run_.wall_seconds = time.monotonic() - started  # environments included
    width = shutil.get_terminal_size((160, 40)).columns if sys.stdout.isatty() else 160
    print(terminal_report(run_, width=max(width, 100), color=sys.stdout.isatty()), flush=True)
    written = write_reports(run_, args.report_dir)
    print("reports: " + ", ".join(str(p) for p in written.values()))
    return 1 if run_.deviations else 0

