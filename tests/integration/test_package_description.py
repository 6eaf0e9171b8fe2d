# What PyPI shows: the long description (docs/PYPI.md, not the README, whose
# first lines are checkout commands), the licence, and that its example runs.
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .helpers import run_documented_example

ROOT = Path(__file__).resolve().parents[2]
PYPI = ROOT / "docs" / "PYPI.md"

# md5 of the Apache License 2.0 text as apache.org publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt), unmodified.
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def project_table() -> str:
    return (ROOT / "pyproject.toml").read_text().split("[project]", 1)[1].split("\n[", 1)[0]


def test_pyproject_declares_the_description_and_the_licence():
    project = project_table()
    assert re.search(r'^readme = "docs/PYPI.md"$', project, re.M), project
    assert re.search(r'^license = "Apache-2.0"$', project, re.M), project
    assert re.search(r'^license-files = \["LICENSE"\]$', project, re.M), project


def test_licence_is_the_unmodified_apache_2_text():
    assert hashlib.md5((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_MD5


def test_description_starts_with_what_fakecql_is_and_how_to_install_it():
    text = PYPI.read_text()
    lines = text.splitlines()
    assert lines[0] == "# fakecql"
    assert "fake Cassandra/Scylla node" in " ".join(lines[:5])
    head = text.split("\n## ", 1)[0]
    assert "pip install fakecql" in head
    # Not the README's checkout commands: a PyPI reader has no checkout.
    assert "python3 -m venv" not in text and "pip install -e" not in text and "tox" not in text
    for section in ("## pytest fixtures", "## Serve any client", "## cqltransport"):
        assert section in text


def test_description_example_runs(pytester):
    run_documented_example(pytester, PYPI)


def test_description_lists_the_readme_fixtures():
    fixtures = set(re.findall(r"^\| `(cql_\w+)` \|", (ROOT / "README.md").read_text(), re.M))
    assert fixtures and fixtures == set(re.findall(r"^\| `(cql_\w+)` \|", PYPI.read_text(), re.M))
