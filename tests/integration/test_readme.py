# The README's example of using the fixtures from another project's tests
# must run as written, and so must the one of "Client routes and the NLB".
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

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


def readme_section_block(heading: str) -> str:
    """The first ```python block under the README's `## heading`."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(r"```python\n(.*?)```", text[start:end if end != -1 else None], re.S)
    assert blocks, f"no python example under '## {heading}'"
    return blocks[0]


@pytest.mark.client_routes  # scylla-driver's ClientRoutesConfig: not run under cassandra-driver (tox.ini)
def test_readme_client_routes_example_runs(tmp_path: Path) -> None:
    script = tmp_path / "client_routes_example.py"
    script.write_text(readme_section_block("Client routes and the NLB") + "\nprint('example done')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=str(README.parent))
    assert done.returncode == 0 and done.stdout.strip().endswith("example done"), done.stderr[-3000:]
