# python -m fakecql.conformance: run behaviours under one reactor, in this
# process, and print one line per behaviour (JSON with --json).
#
# Strategy: one reactor per process, because gevent and eventlet need the
# standard library monkey-patched before anything else runs (__main__.py
# sees to that) and cannot share a process with the other reactors. A
# reactor that cannot be loaded here fails every behaviour with the reason,
# so a caller that reads the JSON lines reports a failure, never a skip.
#
# Rules: stdout carries only the result lines; exit status 0 when every
# behaviour passed, 1 when one failed, 2 for a usage error.
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import List, Optional, TextIO

from .._monkey import PATCHES as MONKEY_PATCHES
from .._monkey import monkey_patch
from ..reactors import REACTORS, load_reactor
from . import DEFAULT_TIMEOUT, run_behaviour, select_behaviours

__all__ = ["main", "MONKEY_PATCHES"]



def _is_patched(reactor: str) -> bool:
    try:
        if reactor == "gevent":
            from gevent import monkey

            return bool(monkey.is_module_patched("socket"))
        if reactor == "eventlet":
            from eventlet import patcher

            return bool(patcher.is_monkey_patched("socket"))
    except ImportError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fakecql.conformance",
        description="Run the reactor conformance suite under one reactor of the installed driver.",
    )
    parser.add_argument("--reactor", required=True, choices=list(REACTORS), help="the reactor to test")
    parser.add_argument("--behaviour", action="append", metavar="GLOB",
                        help="run only behaviours whose name matches GLOB (e.g. 'reset_*', '*[tls]'; "
                             "[ and ] match themselves); may be repeated")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per line: {"behaviour", "outcome", "seconds", "error"}')
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds each behaviour may take (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--list", action="store_true", help="list the behaviours and exit")
    return parser


def _emit(out: TextIO, as_json: bool, behaviour: str, outcome: str, seconds: float, error: Optional[str]) -> None:
    if as_json:
        line = json.dumps({"behaviour": behaviour, "outcome": outcome, "seconds": round(seconds, 3), "error": error})
    else:
        line = f"{outcome:<4}  {behaviour:<40} {seconds:6.2f} s" + (f"\n      {error}" if error else "")
    out.write(line + "\n")
    out.flush()


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout:g}")
    patterns = args.behaviour or ["*"]
    names = [name for name in select_behaviours() if any(name in select_behaviours(p) for p in patterns)]
    if not names:
        parser.error(f"no behaviour matches {' or '.join(patterns)!r}; --list shows them")
    if args.list:
        for name in names:
            out.write(name + "\n")
        return 0
    if args.reactor in MONKEY_PATCHES and not _is_patched(args.reactor):
        # Run through `python -m` this cannot happen (__main__.py patches first).
        monkey_patch(args.reactor)
    try:
        connection_class = load_reactor(args.reactor)
    except ImportError as exc:
        for name in names:
            _emit(out, args.json, name, "fail", 0.0, f"ImportError: {exc}")
        return 1
    failed = 0
    for name in names:
        started = time.monotonic()
        error: Optional[str] = None
        try:
            run_behaviour(name, connection_class, timeout=args.timeout)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            failed += 1
        _emit(out, args.json, name, "fail" if error else "pass", time.monotonic() - started, error)
    return 1 if failed else 0
