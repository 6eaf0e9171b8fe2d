"""The reactor conformance suite: what every connection class ("reactor") of
the Python CQL drivers must do over real TCP and real TLS on loopback.

    from fakecql.conformance import BEHAVIOURS, run_behaviour
    from cassandra.io.libevreactor import LibevConnection

    for name in BEHAVIOURS:                  # "successful_connection[plain]", "...[tls]", ...
        run_behaviour(name, LibevConnection)  # AssertionError (ConformanceFailure) if it misbehaves

    python -m fakecql.conformance --reactor gevent --json   # one reactor per process, JSON lines

Names are "<check>[<transport>]": the check (a plain function in
_behaviours.py) and the transport it runs over, "plain" (TCP) or "tls".
Checks that only mean something over TLS exist only as "[tls]"; the timer
check only as "[plain]".
"""
# Strategy (trio.testing's _check_streams.py): plain functions over a
# factory (here the driver's connection class), importing nothing from
# pytest; a fresh loopback peer and connection per behaviour, always torn
# down; one Deadline bounds every wait of a run. Any test runner can call
# run_behaviour(); the CLI (__main__.py) runs one reactor per process,
# monkey-patching first for gevent and eventlet.
#
# Rules: a failed expectation is a ConformanceFailure (an AssertionError)
# naming what was expected and what happened; any other exception (a
# reactor that cannot be imported, a bug in the suite) propagates as itself.
from __future__ import annotations

import re
from typing import Dict, List, Optional

from ._behaviours import BEHAVIOURS, TRANSPORTS, Behaviour, Run
from ._harness import ConformanceFailure, Deadline

__all__ = ["BEHAVIOURS", "Behaviour", "ConformanceFailure", "TRANSPORTS", "run_behaviour", "select_behaviours"]

DEFAULT_TIMEOUT = 10.0


def select_behaviours(pattern: Optional[str] = None) -> List[str]:
    """The names of BEHAVIOURS matching the glob `pattern` (all if None), in
    order. Brackets match themselves, so "timers[plain]" and "*[tls]" mean
    what they say (fnmatch would read them as character sets)."""
    if pattern is None:
        return list(BEHAVIOURS)
    regex = re.compile("".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in pattern))
    return [name for name in BEHAVIOURS if regex.fullmatch(name)]


def run_behaviour(name: str, connection_class: type, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Run behaviour `name` against `connection_class`, within `timeout` seconds.

    Returns if the reactor conforms; raises ConformanceFailure (an
    AssertionError) saying what was expected and what happened if not. The
    peer and connection are torn down in every case.
    """
    try:
        behaviour = BEHAVIOURS[name]
    except KeyError:
        raise ValueError(f"unknown behaviour {name!r}; known: {', '.join(BEHAVIOURS)}") from None
    run = Run(connection_class, behaviour.transport, Deadline(timeout))
    failed = True
    try:
        behaviour.check(run)
        failed = False
    finally:
        errors = run.tear_down()
        if errors and not failed:
            raise ConformanceFailure(
                f"expected close() to end the connection quietly; it raised {errors[0]!r}") from errors[0]


def behaviours_by_check() -> Dict[str, List[Behaviour]]:
    """The behaviours grouped by check, for reports."""
    grouped: Dict[str, List[Behaviour]] = {}
    for behaviour in BEHAVIOURS.values():
        grouped.setdefault(behaviour.check_name, []).append(behaviour)
    return grouped
