# The README's example of using the fixtures from another project's tests
# must run as written.
from __future__ import annotations

import re
from pathlib import Path

from .helpers import run_documented_example

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_fixture_example_runs(pytester):
    run_documented_example(pytester, README)


def test_readme_starts_with_the_two_commands():
    first = README.read_text().splitlines()[:2]
    assert first[0].strip().endswith("python -m fakecql matrix")  # the main job: the reactor matrix
    assert "tox run-parallel -e scylla,cassandra" in first[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert first[1].strip() in ci  # CI runs the README's test command verbatim
    assert first[0].strip() in ci  # and its main job


def test_the_commands_can_create_their_virtual_environments():
    # A file where a command makes its venv stops that command: tox's PEP 832
    # redirect file `.venv` did (tox.ini turns it off), and got committed once.
    commands = README.read_text().splitlines()[:2]
    venvs = [m for line in commands for m in re.findall(r"python3 -m venv (\S+)", line)]
    assert venvs == [".venv", ".venv-tox"]
    tracked = [p for p in venvs if (README.parent / p).exists() and not (README.parent / p).is_dir()]
    assert not tracked, f"{tracked} exist as files; the README's commands need to create directories there"
