# The README's fault section works as written: every `server.faults.` line
# of it runs against a running node and adds the fault its verb names; every
# fault of VERBS has such a line; every `--fault` example parses; the error
# it quotes is the error raised. A failure lists every line that fails, not
# only the first.
from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import List, Tuple

import pytest

from fakecql.faults import VERBS
from fakecql.faults.registry import FaultSpecError, parse_fault

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "Faults are data, added to a running node", "Without pytest:"


def fault_section() -> str:
    text = README.read_text()
    assert START in text and END in text.split(START, 1)[1], f"the README has no fault section from {START!r} to {END!r}"
    return text.split(START, 1)[1].split(END, 1)[0]


def example_lines() -> List[Tuple[int, str]]:
    """(line number in the README, line) of every `server.faults.` line in the section's python blocks."""
    text = README.read_text()
    first = text[: text.index(START)].count("\n") + 1
    lines = []
    in_python = False
    for number, line in enumerate(fault_section().splitlines(), start=first):
        if line.startswith("```"):
            in_python = line.strip() == "```python"
            continue
        if in_python and line.startswith("server.faults."):
            lines.append((number, line))
    return lines


def _verb(line: str) -> str:
    match = re.match(r"server\.faults\.(\w+)\(", line)
    assert match, line
    return match[1]


def test_the_section_has_examples_of_every_family():
    section = fault_section()
    for family in ("# TLS: the handshake", "# TLS: records", "# Bytes:", "# CQL:", "# Triggers:"):
        assert family in section, family
    assert len(example_lines()) >= 30


def test_every_fault_has_an_example():
    shown = {_verb(line) for _, line in example_lines()}
    missing = sorted(set(VERBS) - shown)
    assert not missing, f"faults with no example line in the README's fault section: {missing}"


def test_every_example_line_runs_against_a_running_node(cql_server_factory):
    server = cql_server_factory()
    failures = []
    for number, line in example_lines():
        server.faults.clear()
        try:
            exec(compile(line, f"README.md:{number}", "exec"), {"server": server, "re": re})  # noqa: S102
            added = list(server.faults)
            verb = _verb(line)
            if verb not in VERBS:
                failures.append(f"README.md:{number}: {line}\n    -> {verb} is not in fakecql.faults.VERBS")
            elif len(added) != 1 or type(added[0]) is not VERBS[verb]:
                failures.append(f"README.md:{number}: {line}\n    -> added {added!r}, not one {VERBS[verb].__name__}")
        except Exception as exc:
            failures.append(f"README.md:{number}: {line}\n    -> {type(exc).__name__}: {exc}")
    server.faults.clear()
    assert not failures, f"{len(failures)} README fault lines fail:\n" + "\n".join(failures)


def test_every_fault_flag_example_parses():
    commands = [shlex.split(line) for line in fault_section().splitlines()
                if line.startswith("    python -m fakecql serve ")]
    specs = [argv[i + 1] for argv in commands for i, arg in enumerate(argv) if arg == "--fault"]
    assert "list" in specs and len(specs) >= 5
    failures = []
    for spec in specs:
        if spec == "list":
            continue
        try:
            parse_fault(spec)
        except FaultSpecError as exc:
            failures.append(f"--fault {spec}: {exc}")
    assert not failures, "\n".join(failures)


def test_the_quoted_error_is_the_one_raised(cql_plain_server):
    call, message = re.search(r'\(`(\w+\(.*?\))`: "(.*?)"\)', " ".join(fault_section().split())).groups()
    with pytest.raises((ValueError, TypeError)) as raised:
        eval(f"server.faults.{call}", {"server": cql_plain_server})  # noqa: S307
    assert str(raised.value) == message
