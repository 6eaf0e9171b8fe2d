# The reports, read back the way their readers read them: the terminal
# table cell by cell, JSON through MatrixRun.from_json, JUnit through
# ElementTree against the JUnit schema's shape, HTML through html.parser,
# Markdown by its table rows. The runs are synthetic (samples.py) and carry
# markup, quotes, newlines and a terminal escape in their causes.
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Dict, List, Optional, Tuple

import pytest

from fakecql.matrix.records import Cell, MatrixRun, slow_cells
from fakecql.matrix.reports import (
    REPORT_FILES,
    terminal_report,
    to_html,
    to_json,
    to_junit,
    to_markdown,
    write_reports,
)

from .samples import CASSANDRA, ESCAPE, NASTY, SCYLLA, SHARED_WHY, nasty_run, realistic_run

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _section(report: str, title: str) -> List[str]:
    """The lines of a terminal report from `title` to the next blank line."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def _row(report: str, driver: str, scenario: str) -> str:
    """The grid row of `scenario` in `driver`'s table."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(driver))
    return next(line for line in lines[start:] if line.split("  ")[0].strip() == scenario)


def _row_cells(row: str) -> List[str]:
    return [part.strip() for part in re.split(r" {2,}", row.strip())]


# ---------------------------------------------------------------- terminal


def test_terminal_cells_read_outcome_time_footnote_and_marks() -> None:
    report = terminal_report(nasty_run(), width=160)
    assert _row_cells(_row(report, CASSANDRA, "test_connect")) == ["test_connect", "PASS 0.31s", "FAIL 2.04s [1] !"]
    assert _row_cells(_row(report, CASSANDRA, "test_key_update")) == [
        "test_key_update", "XFAIL 2.01s [2]", "PASS 0.50s [3] !"]
    assert _row_cells(_row(report, CASSANDRA, "test_rate_dribbled")) == [
        "test_rate_dribbled", "PASS 3.00s ~", "PASS 3.00s"]
    # One footnote for a reactor unavailable in every scenario, not three.
    assert _row_cells(_row(report, SCYLLA, "test_connect")) == ["test_connect", "UNAVAILABLE [1] !", "UNAVAILABLE [2]"]
    assert _row_cells(_row(report, SCYLLA, "test_dribble")) == ["test_dribble", "FAIL 4.50s [4] !", "UNAVAILABLE [2]"]


def test_terminal_footnotes_carry_the_short_cause() -> None:
    report = terminal_report(nasty_run(), width=160)
    first_line = NASTY.splitlines()[0]
    assert f"  [1] FAIL: {first_line}" in report.splitlines()
    # An xfail's footnote: the bug, and the gist of its cause (what the node saw is per cell).
    assert "  [2] XFAIL: bug key-update-asyncio: read 0 bytes after the KeyUpdate" in report.splitlines()
    assert "  [3] PASS: expected xfail (bug key-update-libev), but it passed" in report.splitlines()
    assert f"  [2] UNAVAILABLE: {SHARED_WHY}" in report.splitlines()
    assert report.count(SHARED_WHY) == 1
    # Only the first line of a cause goes into a footnote; the rest is in the deviations.
    footnote_block = report.split("Deviations from the expectations")[0]
    assert "Traceback" not in footnote_block


def test_terminal_lists_every_deviation_with_its_full_cause() -> None:
    run = nasty_run()
    report = terminal_report(run, width=160)
    section = "\n".join(_section(report, "Deviations from the expectations"))
    assert section.startswith("Deviations from the expectations: 4")
    for cell in run.deviations:
        assert f"{cell.driver} / {cell.reactor} / {cell.scenario}: expected {cell.expected}" in section
    assert "expected xfail (bug key-update-libev), outcome pass in 0.50s" in section
    for line in NASTY.splitlines()[:3]:
        assert line.strip() in section
    # Cells that are what the table expects are not listed.
    assert "test_rate_baseline" not in section and "transport" not in section


def test_terminal_slow_cells_and_summary() -> None:
    report = terminal_report(nasty_run(), width=160)
    assert _section(report, "Slow cells") == [
        "Slow cells: 1",
        f"  {CASSANDRA} / asyncio / test_rate_dribbled: rate 50.0 q/s under the fault, below a tenth of "
        "1000.0 q/s in test_rate_baseline",
    ]
    assert report.rstrip("\n").splitlines()[-1] == (
        "14 cells: 6 pass, 2 fail, 2 xfail, 4 unavailable; 4 deviations; 1 slow; wall time 0:42")


def test_terminal_is_ascii_deterministic_and_spells_out_escapes() -> None:
    run = nasty_run()
    report = terminal_report(run)
    assert report == terminal_report(nasty_run())
    assert report.isascii()
    assert "\x1b" not in report and "\x00" not in report
    assert "reactor printed \\x1b[31mred\\x1b[0m and \\x00 a NUL" in report
    assert "caf\\xe9" in report


def _grid(report: str, run: MatrixRun, driver: str) -> Dict[str, List[str]]:
    """Scenario -> its grid texts in `driver`'s table, across column groups."""
    scenarios = set(run.scenarios())
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(driver))
    grid: Dict[str, List[str]] = {}
    for line in lines[start + 1:]:
        if line.startswith("  ") or any(line.startswith(d.label) for d in run.drivers):
            break  # its footnotes, the legend or the next driver
        cells = _row_cells(line) if line.strip() else []
        if cells and cells[0] in scenarios:
            grid.setdefault(cells[0], []).extend(cells[1:])
    return grid


@pytest.mark.parametrize("width", [60, 80, 100, 160])
def test_terminal_fits_width_without_cutting_a_cell(width: int) -> None:
    run = realistic_run()
    report = terminal_report(run, width=width)
    for line in report.splitlines():
        assert len(line) <= width, line
    for driver in run.drivers:
        grid = _grid(report, run, driver.label)
        assert list(grid) == [s for s in run.scenarios()]
        for scenario, texts in grid.items():
            cells = [run.cell(driver.label, r, scenario) for r in driver.reactors]
            assert len(texts) == len(cells)
            for text, cell in zip(texts, cells):
                assert cell is not None
                expected = "UNAVAILABLE" if cell.outcome == "unavailable" else (
                    f"{cell.outcome.upper()} {cell.seconds:.2f}s")
                assert text.startswith(expected), (text, cell)
                assert text.endswith(" !") == cell.deviates


def test_terminal_narrow_width_splits_the_grid_into_column_groups() -> None:
    report = terminal_report(realistic_run(), width=80)
    headers = [line.split() for line in report.splitlines() if line.startswith("scenario ")]
    # cassandra-driver's four reactors cannot share one 80-column row.
    assert headers[0][0] == "scenario" and len(headers) > 3
    reactors_seen = [name for header in headers[:2] for name in header[1:]]
    assert reactors_seen == ["asyncio", "asyncore", "libev", "twisted"]


def test_terminal_colour_wraps_cells_without_moving_them() -> None:
    run = nasty_run()
    plain = terminal_report(run)
    coloured = terminal_report(run, color=True)
    assert ANSI.sub("", coloured) == plain
    assert "\x1b[32mPASS 0.31s\x1b[0m" in coloured
    assert "\x1b[31m\x1b[1mFAIL 2.04s [1] !\x1b[0m" in coloured
    assert "\x1b[33mXFAIL 2.01s [2]\x1b[0m" in coloured
    assert "\x1b[90mUNAVAILABLE [2]\x1b[0m" in coloured


# ---------------------------------------------------------------- JSON


def test_json_round_trips_and_has_the_schema_keys() -> None:
    run = nasty_run()
    text = to_json(run)
    data = json.loads(text)
    assert MatrixRun.from_json(data) == run
    assert {"generated", "python", "drivers", "cells"} <= set(data)
    assert data["drivers"][0]["driver"] == CASSANDRA
    for cell in data["cells"]:
        assert {"driver", "reactor", "scenario", "outcome", "expected", "seconds", "budget", "cause"} <= set(cell)
    assert data["cells"][1]["cause"] == NASTY
    assert data["deviations"] == 4
    assert data["slow"] == [f"{CASSANDRA} / asyncio / test_rate_dribbled"]
    assert text == to_json(nasty_run()) and text.isascii()


# ---------------------------------------------------------------- JUnit

# The shape of the JUnit schema CI systems read (Jenkins' junit-10.xsd,
# which GitLab and the GitHub JUnit actions follow): which children and
# attributes each element may have.
SCHEMA: Dict[str, Tuple[set, set, set]] = {  # element: (required attrs, allowed attrs, allowed children)
    "testsuites": (set(), {"name", "time", "tests", "failures", "disabled", "errors", "skipped"}, {"testsuite"}),
    "testsuite": ({"name", "tests"}, {"name", "tests", "failures", "errors", "time", "disabled", "skipped",
                                      "timestamp", "hostname", "id", "package", "file", "log", "url", "version"},
                  {"properties", "testcase", "system-out", "system-err"}),
    "properties": (set(), set(), {"property"}),
    "property": ({"name", "value"}, {"name", "value"}, set()),
    "testcase": ({"name"}, {"name", "assertions", "time", "classname", "status"},
                 {"skipped", "error", "failure", "system-out", "system-err"}),
    "skipped": (set(), {"message", "type"}, set()),
    "failure": (set(), {"message", "type"}, set()),
}


def _check_shape(element: ET.Element) -> None:
    required, allowed, children = SCHEMA[element.tag]
    assert required <= set(element.attrib), (element.tag, element.attrib)
    assert set(element.attrib) <= allowed, (element.tag, element.attrib)
    for child in element:
        assert child.tag in children, (element.tag, child.tag)
        _check_shape(child)
    if element.tag == "testsuite":
        tags = [child.tag for child in element]
        assert tags.index("properties") == 0  # properties come first
    for name in ("tests", "failures", "errors", "skipped"):
        if name in element.attrib:
            assert int(element.attrib[name]) >= 0
    if "time" in element.attrib:
        assert float(element.attrib["time"]) >= 0


def test_junit_parses_fits_the_schema_and_counts_right() -> None:
    run = nasty_run()
    root = ET.fromstring(to_junit(run))
    _check_shape(root)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [
        f"{CASSANDRA} / asyncio", f"{CASSANDRA} / libev", f"{SCYLLA} / asyncio", f"{SCYLLA} / transport"]
    for suite in suites:
        cases = suite.findall("testcase")
        assert int(suite.get("tests", "")) == len(cases)
        assert int(suite.get("failures", "")) == sum(1 for c in cases if c.find("failure") is not None)
        assert int(suite.get("skipped", "")) == sum(1 for c in cases if c.find("skipped") is not None)
        assert suite.get("errors") == "0"
        assert float(suite.get("time", "")) == pytest.approx(sum(float(c.get("time", "")) for c in cases), abs=0.01)
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("14", "4", "5")
    assert root.get("timestamp") is None and suites[0].get("timestamp") == "2026-11-20T09:30:00"


def test_junit_cases_say_what_happened() -> None:
    root = ET.fromstring(to_junit(nasty_run()))

    def case(suite: str, name: str) -> ET.Element:
        found = root.find(f"testsuite[@name='{suite}']/testcase[@name='{name}']")
        assert found is not None, (suite, name)
        return found

    passed = case(f"{CASSANDRA} / asyncio", "test_connect")
    assert passed.get("classname") == f"{CASSANDRA}.asyncio" and passed.get("time") == "0.310" and len(passed) == 0
    failure = case(f"{CASSANDRA} / libev", "test_connect").find("failure")
    assert failure is not None
    assert failure.get("message") == f"expected pass, outcome fail: {NASTY.splitlines()[0]}"
    assert NASTY in (failure.text or "")  # the whole cause, markup and all, survives the round trip
    xpass = case(f"{CASSANDRA} / libev", "test_key_update").find("failure")
    assert xpass is not None and "expected xfail, outcome pass (bug key-update-libev)" == xpass.get("message")
    # An expected xfail is skipped, not failed, and names its bug.
    xfail = case(f"{CASSANDRA} / asyncio", "test_key_update")
    assert xfail.find("failure") is None
    skipped = xfail.find("skipped")
    assert skipped is not None and skipped.get("message") == "xfail: bug key-update-asyncio"
    unavailable = case(f"{SCYLLA} / transport", "test_dribble").find("skipped")
    assert unavailable is not None and unavailable.get("message") == f"unavailable: {SHARED_WHY}"
    # A cell that should have run but was unavailable fails.
    assert case(f"{SCYLLA} / asyncio", "test_connect").find("failure") is not None
    # Characters XML cannot carry are spelled out, not dropped.
    escape = case(f"{SCYLLA} / asyncio", "test_dribble").find("failure")
    assert escape is not None and "reactor printed \\x1b[31mred" in (escape.text or "")


def test_junit_all_expected_has_no_failures() -> None:
    run = nasty_run()
    run.cells = [c for c in run.cells if not c.deviates]
    root = ET.fromstring(to_junit(run))
    assert root.get("failures") == "0" and root.findall(".//failure") == []
    assert root.get("skipped") == str(sum(1 for c in run.cells if c.outcome in ("xfail", "unavailable")))


# ---------------------------------------------------------------- Markdown


def test_markdown_has_header_tables_notes_and_deviations() -> None:
    text = to_markdown(nasty_run())
    lines = text.splitlines()
    assert lines[0] == "# Reactor matrix"
    assert "- generated: 2026-11-20T09:30:00Z" in lines
    assert "- machine: Linux x86\\_64, 8 CPUs" in lines
    assert "- wall time: 0:42 (41.5s)" in lines
    assert f"## {CASSANDRA}" in lines and f"## {SCYLLA}" in lines
    assert "| scenario | asyncio | libev |" in lines
    assert "| test\\_connect | PASS 0.31s | **FAIL** \\(!\\) 2.04s \\[1\\] |" in lines
    assert "| test\\_key\\_update | XFAIL 2.01s \\[2\\] | **PASS** \\(!\\) 0.50s \\[3\\] |" in lines
    assert "| test\\_rate\\_dribbled | PASS 3.00s slow | PASS 3.00s |" in lines
    assert "| test\\_connect | **UNAVAILABLE** \\(!\\) \\[1\\] | UNAVAILABLE \\[2\\] |" in lines
    assert "## Deviations (4)" in lines and "## Slow cells (1)" in lines
    assert ("2. **UNAVAILABLE** transport reactor needs Python \\>= 3.10 \\& an \\<asyncio\\> \"loop\" "
            "(transport: every scenario)") in lines


def test_markdown_escapes_inline_text_and_fences_full_causes() -> None:
    text = to_markdown(nasty_run())
    outside_fences = re.sub(r"```text\n.*?\n *```", "", text, flags=re.S)
    assert "<script>" not in outside_fences and "</td>" not in outside_fences
    assert "\\<script\\>" in outside_fences
    # Every table row has as many cells as its header: no stray pipe from a cause.
    for line in text.splitlines():
        if line.startswith("| "):
            assert len(re.findall(r"(?<!\\)\|", line)) == 4, line
    # The full cause, verbatim, inside a fence.
    assert "\n".join("  " + line for line in NASTY.splitlines()) in text


def test_markdown_fence_outgrows_backticks_in_a_cause() -> None:
    run = nasty_run()
    cell = run.cells[1]
    run.cells[1] = Cell.from_json({**cell.to_json(), "cause": "one\n```\nclosed? no\n````"})
    text = to_markdown(run)
    assert "  `````text\n  one\n  ```\n  closed? no\n  ````\n  `````" in text


# ---------------------------------------------------------------- HTML


class _Page(HTMLParser):
    """Tables of class "matrix" as rows of (class, text) cells, and all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: List[List[List[Tuple[str, str]]]] = []
        self.text: List[str] = []
        self.tags: List[str] = []
        self._in_matrix = False
        self._cell: Optional[List[str]] = None
        self._cell_class = ""

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "table" and a.get("class") == "matrix":
            self._in_matrix = True
            self.tables.append([])
        elif self._in_matrix and tag == "tr":
            self.tables[-1].append([])
        elif self._in_matrix and tag in ("td", "th"):
            self._cell = []
            self._cell_class = a.get("class") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_matrix = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell_class, " ".join("".join(self._cell).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _page(run: MatrixRun) -> Tuple[str, _Page]:
    source = to_html(run)
    page = _Page()
    page.feed(source)
    page.close()
    return source, page


def test_html_has_one_matrix_table_per_driver_with_every_cell() -> None:
    run = nasty_run()
    _, page = _page(run)
    assert len(page.tables) == len(run.drivers)
    for table, driver in zip(page.tables, run.drivers):
        header = [text for _, text in table[0]]
        assert header == ["scenario"] + list(driver.reactors)
        for row in table[1:]:
            scenario = row[0][1]
            for (classes, text), reactor in zip(row[1:], driver.reactors):
                cell = run.cell(driver.label, reactor, scenario)
                assert cell is not None
                assert classes.split()[0] == cell.outcome
                assert ("dev" in classes.split()) == cell.deviates
                assert text.startswith(cell.outcome.upper())
                if cell.outcome != "unavailable":
                    assert f"{cell.seconds:.2f}s" in text
    # The cause is visible in the cell itself, not only in a tooltip.
    libev_connect = page.tables[0][1][2][1]
    assert "[1] " + NASTY.splitlines()[0][:60] in libev_connect
    assert "bug key-update-asyncio" in page.tables[0][2][1][1]
    assert SHARED_WHY in page.tables[1][1][2][1]


def test_html_shows_every_cause_whole_and_escapes_it() -> None:
    run = nasty_run()
    source, page = _page(run)
    text = "".join(page.text)
    for cell in run.cells:
        assert cell.outcome.upper() in text
        if cell.cause and "\x1b" not in cell.cause:
            assert cell.cause in text, cell
        if cell.bug:
            assert cell.bug in text
    assert ESCAPE.replace("\x1b", "\\x1b").replace("\x00", "\\x00") in text
    assert "<script>" not in source and "</td><script>" not in source
    assert "&lt;alert&gt; &amp; &quot;bad&quot; &#x27;record&#x27;" in source
    assert "\x1b" not in source and "\x00" not in source
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "http://" not in source and "https://" not in source


def test_html_lists_deviations_first_and_flags_slow_cells() -> None:
    run = nasty_run()
    source, page = _page(run)
    deviations_at = source.index('id="deviations"')
    assert deviations_at < source.index('class="matrix"')
    deviation_rows = source[deviations_at:source.index('id="slow"')].count("<tr><td")
    assert deviation_rows == len(run.deviations) == 4
    flagged = [(table[0][0][1], row[0][1], text) for table in page.tables for row in table[1:]
               for classes, text in row[1:] if "slowcell" in classes.split()]
    assert len(slow_cells(run)) == 1
    assert flagged == [("scenario", "test_rate_dribbled", "PASS 3.00s SLOW")]
    text = "".join(page.text)
    for word in ("2026-11-20T09:30:00Z", "3.11.7", "Linux x86_64, 8 CPUs", "0:42", "6 pass", "2 fail",
                 "2 xfail", "4 unavailable", "4 deviating", "1 slow", "cassandra-driver==3.30.1"):
        assert word in text, word


def test_html_with_nothing_deviating_says_so() -> None:
    run = nasty_run()
    run.cells = [c for c in run.cells if not c.deviates]
    source, _ = _page(run)
    assert "Every cell is what the expectations table says." in source
    assert 'class="flag dev"' not in source.split('class="legend"')[0]


# ---------------------------------------------------------------- files


def test_write_reports_writes_the_four_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = nasty_run()
    target = tmp_path / "new" / "reports"
    paths = write_reports(run, target)
    assert set(paths) == {"json", "markdown", "junit", "html"}
    assert sorted(p.name for p in target.iterdir()) == sorted(REPORT_FILES.values())
    assert paths["json"].read_text(encoding="utf-8") == to_json(run)
    assert paths["markdown"].read_text(encoding="utf-8") == to_markdown(run)
    assert paths["junit"].read_text(encoding="utf-8") == to_junit(run)
    assert paths["html"].read_text(encoding="utf-8") == to_html(run)
    # And again over the old files.
    assert write_reports(run, str(target)) == paths


def test_a_run_with_no_cells_still_reports() -> None:
    run = MatrixRun(generated="2026-11-20T09:30:00Z", python="3.11.7")
    assert terminal_report(run).rstrip().endswith("0 cells: 0 pass, 0 fail, 0 xfail, 0 unavailable; "
                                                  "0 deviations; 0 slow; wall time 0:00")
    assert MatrixRun.from_json(json.loads(to_json(run))) == run
    assert ET.fromstring(to_junit(run)).get("tests") == "0"
    _, page = _page(run)
    assert page.tables == []
    assert "# Reactor matrix" in to_markdown(run)


def test_cells_with_the_same_gist_share_one_footnote_that_keeps_the_lost_exception() -> None:
    from fakecql.matrix.records import Cell, DriverInfo, MatrixRun

    lost = ("did not connect: OperationTimedOut: errors=Timed out creating connection (2.0 seconds), "
            "last_host=None; left unread: TypeError: Socket cannot be of type SSLSocket "
            "(in a concurrent future nobody read)")
    cells = [Cell("cassandra-driver 3.30.1", "asyncio", name, "xfail", "xfail", 2.0, 6.0, bug="asyncio-sslsocket",
                  cause=f"{lost}; node: 1 connection; no CQL frame in the {seconds} s after the first handshake")
             for name, seconds in (("a", "2.1"), ("b", "2.3"))]
    run = MatrixRun(generated="2026-11-30T00:00:00+00:00", python="3.11.7", cells=cells,
                    drivers=[DriverInfo("cassandra-driver==3.30.1", "cassandra-driver", "3.30.1", "3.11.7",
                                        ("asyncio",))])
    report = terminal_report(run, width=100)
    assert report.count("[1] XFAIL: bug asyncio-sslsocket") == 1 and "[2]" not in report
    footnote = " ".join(line.strip() for line in report.split("[1] XFAIL:")[1].splitlines()[:3])
    assert "TypeError: Socket cannot be of type SSLSocket (in a concurrent future nobody read)" in footnote
