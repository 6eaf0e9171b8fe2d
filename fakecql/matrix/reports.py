# Reports of a matrix run: terminal, JSON, Markdown, JUnit XML, HTML.
#
# Strategy: each format is one function of a MatrixRun returning a string;
# only write_reports touches the disk. The formats share one private view
# of the run (_tables): per driver, its reactors (columns), its scenarios
# (rows), the cells, and numbered notes. A note is the text behind a
# non-pass cell (a failure's cause, an xfail's bug, why a reactor is
# unavailable) or behind a pass that deviates; cells with the same text
# share one note, so a reactor that is unavailable in twenty scenarios
# gives one footnote, not twenty.
#
# Rules: deterministic (same run, same bytes: no clock, no dict-order
# surprises); every piece of text from a cell is escaped for the format it
# lands in (terminal: ASCII with control characters spelled out; XML/HTML:
# characters XML forbids spelled out, then escaped by the serialiser or
# html.escape; Markdown: punctuation backslash-escaped, full causes in
# fences longer than any backtick run inside). The terminal report never
# cuts the cell grid (it splits the columns into groups that fit instead)
# and cuts only footnotes; the deviation and slow sections wrap, so no
# word of a deviation's cause is lost.
from __future__ import annotations

import html
import json
import os
import re
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from .records import OUTCOMES, SLOW_SHARE, Cell, DriverInfo, MatrixRun, slow_cells

__all__ = [
    "terminal_report",
    "to_json",
    "to_markdown",
    "to_junit",
    "to_html",
    "write_reports",
    "REPORT_FILES",
]

# What write_reports writes, by key: the file name in the directory.
NOTE_LINES = 3  # a terminal footnote wraps onto at most this many lines

REPORT_FILES: Dict[str, str] = {
    "json": "matrix.json",
    "markdown": "matrix.md",
    "junit": "junit.xml",
    "html": "matrix.html",
}

_NO_CAUSE = "(no cause recorded)"


# ---------------------------------------------------------------- the shared view


@dataclass(frozen=True)
class _Note:
    number: int  # 1-based, per driver table
    outcome: str  # the outcome of the cells it explains
    short: str  # one line
    detail: str  # everything recorded, when the one line does not say it all; else ""
    where: Tuple[Tuple[str, str], ...]  # (reactor, scenario) of the cells it explains


@dataclass
class _Table:
    label: str  # "cassandra-driver 3.30.1"
    info: Optional[DriverInfo]
    reactors: List[str]
    scenarios: List[str]
    cells: Dict[Tuple[str, str], Cell]  # (reactor, scenario) -> cell
    notes: List[_Note] = field(default_factory=list)
    note_of: Dict[Tuple[str, str], int] = field(default_factory=dict)  # (reactor, scenario) -> note number

    def cell(self, reactor: str, scenario: str) -> Optional[Cell]:
        return self.cells.get((reactor, scenario))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _explain(cell: Cell) -> Optional[Tuple[str, str]]:
    """(short, detail) text behind a cell, or None for a pass that is
    expected: a failure's or unavailability's first line and, if it has
    more, the whole cause; an xfail's bug and its cause; a deviating
    pass's expectation."""
    if cell.outcome == "pass":
        if not cell.deviates:
            return None
        expected = f"expected {cell.expected}" + (f" (bug {cell.bug})" if cell.bug else "")
        return f"{expected}, but it passed", ""
    if cell.outcome == "xfail":
        short = f"bug {cell.bug}" if cell.bug else "known bug (not named)"
        gist = _gist(cell.cause)
        return (f"{short}: {gist}" if gist else short), cell.cause.strip("\n") if cell.cause.strip() else ""
    cause = cell.cause.strip("\n") if cell.cause.strip() else _NO_CAUSE
    short = _gist(cause) or _first_line(cause)
    return short, "" if cause.strip() == short else cause


def _gist(cause: str) -> str:
    """The part of a cause that is the same for every cell it explains: what
    the reactor did and left unread, before what this cell's node saw."""
    first = _first_line(cause)
    return first.split("; node: ")[0].strip()


def _where(table: "_Table", note: _Note) -> List[Tuple[str, str]]:
    """The cells a note explains, as (reactor, "every scenario" or the scenarios)."""
    by_reactor: Dict[str, List[str]] = {}
    for reactor, scenario in note.where:
        by_reactor.setdefault(reactor, []).append(scenario)
    return [(r, "every scenario" if len(ss) == len(table.scenarios) > 1 else ", ".join(ss))
            for r, ss in by_reactor.items()]


def _tables(run: MatrixRun) -> List[_Table]:
    """One table per driver: drivers in run.drivers order, then any driver
    only the cells name; columns and rows in the order cells were planned,
    plus reactors a DriverInfo lists that no cell ran (shown as not run)."""
    infos = {d.label: d for d in run.drivers}
    labels: Dict[str, None] = {d.label: None for d in run.drivers}
    for c in run.cells:
        labels.setdefault(c.driver, None)
    all_scenarios = run.scenarios()
    tables = []
    for label in labels:
        cells = {(c.reactor, c.scenario): c for c in run.cells if c.driver == label}
        reactors: Dict[str, None] = {r: None for d, r in run.columns() if d == label}
        info = infos.get(label)
        for r in info.reactors if info else ():
            reactors.setdefault(r, None)
        present = {s for _, s in cells}
        scenarios = [s for s in all_scenarios if s in present]
        table = _Table(label=label, info=info, reactors=list(reactors), scenarios=scenarios, cells=cells)
        by_text: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
        details: Dict[Tuple[str, str], str] = {}
        for scenario in scenarios:
            for reactor in table.reactors:
                cell = cells.get((reactor, scenario))
                explained = _explain(cell) if cell else None
                if cell is None or explained is None:
                    continue
                # One note per outcome and gist; its detail is the first cell's whole cause.
                key = (cell.outcome, explained[0])
                by_text.setdefault(key, [])
                details.setdefault(key, explained[1])
                by_text[key].append((reactor, scenario))
        for number, (key, where) in enumerate(by_text.items(), start=1):
            table.notes.append(_Note(number, key[0], key[1], details[key], tuple(where)))
            for spot in where:
                table.note_of[spot] = number
        tables.append(table)
    return tables


def _counts(cells: Sequence[Cell]) -> Dict[str, int]:
    counts = {o: 0 for o in OUTCOMES}
    for c in cells:
        counts[c.outcome] += 1
    return counts


def _seconds(value: float) -> str:
    return f"{value:.2f}s"


def _clock(seconds: float) -> str:
    """0:41, 12:03, 1:02:03."""
    total = int(round(max(seconds, 0.0)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _share_words(share: float) -> str:
    words = {0.5: "a half", 0.25: "a quarter", 0.2: "a fifth", 0.1: "a tenth"}
    return words.get(share, f"{share:.0%}")


def _slow_text(cell: Cell, run: MatrixRun) -> str:
    base = run.cell(cell.driver, cell.reactor, cell.baseline)
    base_rate = base.rate if base is not None and base.rate is not None else 0.0
    return (f"rate {cell.rate:.1f} q/s under the fault, below {_share_words(SLOW_SHARE)} "
            f"of {base_rate:.1f} q/s in {cell.baseline}")


def _summary(run: MatrixRun) -> str:
    counts = _counts(run.cells)
    per = ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)
    deviations = len(run.deviations)
    slow = len(slow_cells(run))
    return (f"{len(run.cells)} cells: {per}; {deviations} deviation{'s' if deviations != 1 else ''}; "
            f"{slow} slow; wall time {_clock(run.wall_seconds)}")


def _cell_name(cell: Cell) -> str:
    return f"{cell.driver} / {cell.reactor} / {cell.scenario}"


# Characters XML 1.0 cannot carry at all (and HTML calls parse errors):
# C0 controls other than tab/newline/CR, DEL and C1 controls, surrogates, U+FFFE/F.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _spell(match: "re.Match[str]") -> str:
    return f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100 else f"\\u{ord(match.group()):04x}"


def _printable(text: str) -> str:
    """Text with the characters XML/HTML cannot carry spelled out (\\x1b)."""
    return _FORBIDDEN.sub(_spell, text.replace("\r\n", "\n").replace("\r", "\n"))


# ---------------------------------------------------------------- terminal

_ANSI = {"pass": "\x1b[32m", "fail": "\x1b[31m", "xfail": "\x1b[33m", "unavailable": "\x1b[90m"}
_BOLD = "\x1b[1m"
_RESET = "\x1b[0m"


def _ascii(text: str) -> str:
    """One terminal-safe string: ASCII only, control characters spelled out."""
    text = _printable(text).replace("\t", "    ")
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 3, 1)] + "..."


def _wrap(text: str, width: int, indent: str) -> List[str]:
    lines: List[str] = []
    for raw in _ascii(text).split("\n"):
        lines.extend(textwrap.wrap(raw, width=max(width, len(indent) + 20), initial_indent=indent,
                                   subsequent_indent=indent + "  ", break_long_words=True,
                                   break_on_hyphens=False, drop_whitespace=True) or [indent.rstrip()])
    return lines


def _deviation(cell: Cell, name: str, bug: str, outcome: str) -> str:
    """One line on a deviating cell; the name, bug and outcome come marked up by the caller."""
    head = f"{name}: expected {cell.expected}"
    if cell.bug:
        head += f" (bug {bug})"
    head += f", outcome {outcome}"
    if cell.outcome != "unavailable":
        head += f" in {_seconds(cell.seconds)} (budget {_seconds(cell.budget)})"
    return head


def _grid_text(cell: Optional[Cell], note: Optional[int], slow: bool) -> str:
    if cell is None:
        return "-"
    text = cell.outcome.upper()
    if cell.outcome != "unavailable":
        text += " " + _seconds(cell.seconds)
    if note is not None:
        text += f" [{note}]"
    if slow:
        text += " ~"
    if cell.deviates:
        text += " !"
    return text


def _paint(text: str, width: int, cell: Optional[Cell], color: bool) -> str:
    padded = text.ljust(width)
    if not color or cell is None:
        return padded
    style = _ANSI[cell.outcome] + (_BOLD if cell.deviates else "")
    return style + text + _RESET + padded[len(text):]


def _column_groups(widths: List[int], first: int, width: int) -> List[List[int]]:
    """Split column indexes into groups whose rows fit `width` (at least one column each)."""
    groups: List[List[int]] = [[]]
    used = first
    for i, w in enumerate(widths):
        if groups[-1] and used + 2 + w > width:
            groups.append([])
            used = first
        groups[-1].append(i)
        used += 2 + w
    return groups


def terminal_report(run: MatrixRun, *, width: int = 160, color: bool = False) -> str:
    """The run as text for a terminal: a table per driver (scenario rows x
    reactor columns) with footnotes, the deviations, the slow cells and a
    summary line. Fits `width` columns except where one grid row cannot."""
    slow = {(c.driver, c.reactor, c.scenario) for c in slow_cells(run)}
    out: List[str] = []
    title = f"Reactor matrix  {_ascii(run.generated)}  python {_ascii(run.python)}"
    if run.machine:
        title += f"  {_ascii(run.machine)}"
    out.append(_cut(title, width))
    out.append("")
    for table in _tables(run):
        head = table.label
        if table.info is not None:
            head += f"  (python {table.info.python}; {table.info.spec})"
        out.append(_cut(_ascii(head), width))
        texts: Dict[Tuple[str, str], str] = {}
        for scenario in table.scenarios:
            for reactor in table.reactors:
                spot = (reactor, scenario)
                cell = table.cell(reactor, scenario)
                texts[spot] = _grid_text(cell, table.note_of.get(spot),
                                         (table.label, reactor, scenario) in slow)
        names = [_ascii(s) for s in table.scenarios]
        first = max([len("scenario")] + [len(n) for n in names])
        widths = [max([len(_ascii(r))] + [len(texts[(r, s)]) for s in table.scenarios]) for r in table.reactors]
        for group in _column_groups(widths, first, width):
            header = ["scenario".ljust(first)] + [_ascii(table.reactors[i]).ljust(widths[i]) for i in group]
            out.append("  ".join(header).rstrip())
            out.append("  ".join(["-" * first] + ["-" * widths[i] for i in group]))
            for scenario, name in zip(table.scenarios, names):
                row = [name.ljust(first)]
                for i in group:
                    reactor = table.reactors[i]
                    row.append(_paint(texts[(reactor, scenario)], widths[i], table.cell(reactor, scenario), color))
                out.append("  ".join(row).rstrip())
            out.append("")
        for note in table.notes:  # wrapped, not cut: the end of a cause names what was lost
            lines = _wrap(f"[{note.number}] {note.outcome.upper()}: {_ascii(note.short)}", width, "  ")
            if len(lines) > NOTE_LINES:
                lines = lines[:NOTE_LINES - 1] + [_cut(lines[NOTE_LINES - 1], width - 3) + "..."]
            out.extend(lines)
        if table.notes:
            out.append("")
    out.append(_cut("  ! deviates from its expectation (listed below)   ~ slow under its fault (listed below)", width))
    out.append("")

    deviations = run.deviations
    out.append(f"Deviations from the expectations: {len(deviations)}")
    for cell in deviations:
        head = _deviation(cell, _cell_name(cell), cell.bug, cell.outcome)
        out.extend(_wrap(head, width, "  "))
        if cell.cause.strip():
            out.extend(_wrap(cell.cause.strip("\n"), width, "      "))
    out.append("")

    slow_list = slow_cells(run)
    out.append(f"Slow cells: {len(slow_list)}")
    for cell in slow_list:
        out.extend(_wrap(f"{_cell_name(cell)}: {_slow_text(cell, run)}", width, "  "))
    out.append("")
    out.extend(_wrap(_summary(run), width, ""))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- JSON


def to_json(run: MatrixRun) -> str:
    """run.to_json() as text: indented, keys sorted, ASCII; reads back with
    MatrixRun.from_json(json.loads(text))."""
    return json.dumps(run.to_json(), indent=2, sort_keys=True) + "\n"


# ---------------------------------------------------------------- Markdown

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~&])")


def _md(text: str) -> str:
    """Inline Markdown text: one line, punctuation that could mean something escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(_printable(text).split()))


def _md_block(text: str) -> List[str]:
    """A fenced block that holds `text` verbatim, whatever backticks it has."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return [fence + "text", _printable(text).rstrip("\n"), fence]


def to_markdown(run: MatrixRun) -> str:
    """A GitHub-flavoured Markdown report: header, deviations, slow cells,
    then a table per driver with its notes listed below it."""
    counts = _counts(run.cells)
    slow_list = slow_cells(run)
    slow = {(c.driver, c.reactor, c.scenario) for c in slow_list}
    out = ["# Reactor matrix", ""]
    out.append(f"- generated: {_md(run.generated)}")
    out.append(f"- python: {_md(run.python)}")
    out.append(f"- machine: {_md(run.machine) or 'unknown'}")
    out.append(f"- wall time: {_clock(run.wall_seconds)} ({run.wall_seconds:.1f}s)")
    out.append("- drivers: " + (", ".join(
        f"{_md(d.label)} (python {_md(d.python)}, {_md(d.spec)})" for d in run.drivers) or "none"))
    out.append(f"- cells: {len(run.cells)} (" + ", ".join(f"{counts[o]} {o}" for o in OUTCOMES)
               + f"), {len(run.deviations)} deviating, {len(slow_list)} slow")
    out.append("")

    out.append(f"## Deviations ({len(run.deviations)})")
    out.append("")
    if not run.deviations:
        out.append("Every cell is what the expectations table says.")
        out.append("")
    for cell in run.deviations:
        out.append("- " + _deviation(cell, f"**{_md(_cell_name(cell))}**", _md(cell.bug), f"**{cell.outcome}**"))
        if cell.cause.strip():
            out.append("")
            out.extend("  " + line if line else "" for line in "\n".join(_md_block(cell.cause)).split("\n"))
        out.append("")

    out.append(f"## Slow cells ({len(slow_list)})")
    out.append("")
    if not slow_list:
        out.append("No cell's query rate fell below "
                   f"{_share_words(SLOW_SHARE)} of its baseline's.")
    for cell in slow_list:
        out.append(f"- {_md(_cell_name(cell))}: {_md(_slow_text(cell, run))}")
    out.append("")

    for table in _tables(run):
        out.append(f"## {_md(table.label)}")
        out.append("")
        if table.info is not None:
            out.append(f"python {_md(table.info.python)}, installed from `{table.info.spec.replace('`', '')}`")
            out.append("")
        out.append("| scenario | " + " | ".join(_md(r) for r in table.reactors) + " |")
        out.append("|---|" + "---|" * len(table.reactors))
        for scenario in table.scenarios:
            row = [_md(scenario)]
            for reactor in table.reactors:
                found = table.cell(reactor, scenario)
                if found is None:
                    row.append("not run")
                    continue
                text = found.outcome.upper()
                if found.deviates:
                    text = f"**{text}** \\(!\\)"
                if found.outcome != "unavailable":
                    text += f" {_seconds(found.seconds)}"
                number = table.note_of.get((reactor, scenario))
                if number is not None:
                    text += f" \\[{number}\\]"
                if (table.label, reactor, scenario) in slow:
                    text += " slow"
                row.append(text)
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        did = [s for s in table.scenarios if any(getattr(table.cell(r, s), "did", "") for r in table.reactors)]
        if did:  # the query phase: what each reactor's aimed queries did
            out.append("What the aimed queries did (the scenario's fault hit them alone), then the queries after them:")
            out.append("")
            out.append("| scenario | " + " | ".join(_md(r) for r in table.reactors) + " |")
            out.append("|---|" + "---|" * len(table.reactors))
            for scenario in did:
                cells = [table.cell(r, scenario) for r in table.reactors]
                out.append("| " + " | ".join([_md(scenario)] + [_md(c.did) if c is not None and c.did else "-"
                                                                 for c in cells]) + " |")
            out.append("")
        for note in table.notes:
            where = "; ".join(f"{_md(r)}: {_md(s)}" for r, s in _where(table, note))
            out.append(f"{note.number}. **{note.outcome.upper()}** {_md(note.short)} ({where})")
            if note.detail:
                out.append("")
                indent = " " * len(f"{note.number}. ")  # a list item's content column
                out.extend(indent + line if line else "" for line in "\n".join(_md_block(note.detail)).split("\n"))
                out.append("")
        out.append("")
    out.append(f"_{_md(_summary(run))}_")
    return "\n".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------- JUnit XML
#
# One <testsuite> per (driver, reactor), one <testcase> per cell. A cell
# that deviates is a <failure>; nothing is an <error> (the runner's own
# crashes are not cells). An expected xfail is <skipped type="xfail">, not
# a pass with <system-out>: that is what pytest's own junitxml writes for
# xfail, and Jenkins, GitLab and the GitHub JUnit actions all show a
# skipped test with its message in the list, while <system-out> of a
# passing test is hidden (GitLab) or a click away (Jenkins), and a pass
# would say the known bug is gone. Skipped never counts as failed.
# An expected unavailable cell is <skipped message="unavailable: why">.


def _junit_time(seconds: float) -> str:
    return f"{max(seconds, 0.0):.3f}"


def _timestamp(generated: str) -> str:
    """ISO 8601 without zone, as the JUnit schema's timestamp wants; the text as it is if unparsable."""
    try:
        when = datetime.fromisoformat(generated.replace("Z", "+00:00"))
    except ValueError:
        return _printable(generated)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _junit_case(parent: ET.Element, cell: Cell) -> Tuple[int, int]:
    """Adds the cell's <testcase>; returns (failures, skipped) it counts for."""
    case = ET.SubElement(parent, "testcase", {
        "classname": _printable(f"{cell.driver}.{cell.reactor}"),
        "name": _printable(cell.scenario),
        "time": _junit_time(cell.seconds),
    })
    if cell.deviates:
        message = f"expected {cell.expected}, outcome {cell.outcome}"
        if cell.bug:
            message += f" (bug {cell.bug})"
        first = _first_line(cell.cause)
        if first:
            message += f": {first}"
        failure = ET.SubElement(case, "failure", {"message": _printable(message), "type": f"deviation.{cell.outcome}"})
        body = [f"{_cell_name(cell)}", f"expected: {cell.expected}", f"outcome: {cell.outcome}",
                f"seconds: {cell.seconds:.2f} (budget {cell.budget:.2f})"]
        if cell.bug:
            body.append(f"bug: {cell.bug}")
        body.append(f"cause:\n{cell.cause}" if cell.cause.strip() else "cause: " + _NO_CAUSE)
        failure.text = _printable("\n".join(body))
        return 1, 0
    if cell.outcome == "xfail":
        text = f"xfail: bug {cell.bug}" if cell.bug else "xfail: known bug (not named)"
        skipped = ET.SubElement(case, "skipped", {"message": _printable(text), "type": "xfail"})
        if cell.cause.strip():
            skipped.text = _printable(cell.cause)
        return 0, 1
    if cell.outcome == "unavailable":
        why = _first_line(cell.cause) or _NO_CAUSE
        skipped = ET.SubElement(case, "skipped", {"message": _printable(f"unavailable: {why}"), "type": "unavailable"})
        if cell.cause.strip() and cell.cause.strip() != why:
            skipped.text = _printable(cell.cause)
        return 0, 1
    return 0, 0


def to_junit(run: MatrixRun) -> str:
    """JUnit XML: <testsuites> of one <testsuite> per driver and reactor."""
    root = ET.Element("testsuites", {"name": "reactor matrix"})
    totals = [0, 0, 0]  # tests, failures, skipped
    total_time = 0.0
    infos = {d.label: d for d in run.drivers}
    for index, (driver, reactor) in enumerate(run.columns()):
        cells = [c for c in run.cells if c.column == (driver, reactor)]
        suite_time = sum(c.seconds for c in cells)
        suite = ET.SubElement(root, "testsuite", {
            "name": _printable(f"{driver} / {reactor}"),
            "id": str(index),
            "package": _printable(driver),
            "timestamp": _timestamp(run.generated),
        })
        properties = ET.SubElement(suite, "properties")
        info = infos.get(driver)
        props = [("driver", driver), ("reactor", reactor), ("python", info.python if info else run.python),
                 ("machine", run.machine), ("generated", run.generated),
                 ("wall_seconds", f"{run.wall_seconds:.1f}")]
        if info is not None:
            props.append(("spec", info.spec))
        for name, value in props:
            ET.SubElement(properties, "property", {"name": name, "value": _printable(value)})
        failures = skipped = 0
        for cell in cells:
            f, s = _junit_case(suite, cell)
            failures += f
            skipped += s
        suite.set("tests", str(len(cells)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        suite.set("time", _junit_time(suite_time))
        totals[0] += len(cells)
        totals[1] += failures
        totals[2] += skipped
        total_time += suite_time
    root.set("tests", str(totals[0]))
    root.set("failures", str(totals[1]))
    root.set("errors", "0")
    root.set("skipped", str(totals[2]))
    # The sum of the cells' times, as each suite's is; the run's wall time is
    # shorter (cells run in parallel) and is the "wall_seconds" property.
    root.set("time", _junit_time(total_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 "DejaVu Sans",system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:20px 28px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ccc;padding-bottom:3px}
h2 small{font-weight:normal;color:#555;font-size:13px}
code,pre,.mono{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;margin:3px 0 0;background:#f6f6f6;border:1px solid #e2e2e2;border-radius:3px;padding:4px 6px}
.meta{display:grid;grid-template-columns:max-content auto;gap:1px 14px;margin:6px 0 10px}
.meta dt{color:#555}.meta dd{margin:0}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;margin:0 6px 2px 0;font-weight:600;border:1px solid transparent}
.pass{background:#dff3e3}.fail{background:#fbdcdc}.xfail{background:#fff1c7}.unavailable{background:#ececec;color:#555}
.badge.dev{background:#fff;border:2px solid #c00000;color:#c00000}
.badge.slow{background:#e6ecff;border-color:#4a62c9;color:#233a9c}
table{border-collapse:separate;border-spacing:3px}
table.matrix th{background:#f2f2f2;padding:4px 8px;text-align:left;font-weight:600}
table.matrix th.scenario{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px;font-weight:normal;white-space:nowrap}
table.matrix td{vertical-align:top;padding:3px 7px;min-width:15em;max-width:24em;border:3px solid transparent;border-radius:4px}
table.matrix td.dev{border-color:#c00000}
table.matrix td.none{background:#fafafa;color:#999}
.outcome{font-weight:700;font-size:13px}
.time{color:#444;font-variant-numeric:tabular-nums;font-size:12px;margin-left:4px}
.fail .outcome{color:#a30000}.pass .outcome{color:#1d6b2b}.xfail .outcome{color:#7a5600}.unavailable .outcome{color:#555}
.why{display:block;font-size:11.5px;line-height:1.3;color:#333;overflow-wrap:anywhere}
.why a{color:inherit;text-decoration:none;font-weight:600}
.flag{display:inline-block;font-size:10.5px;font-weight:700;padding:0 4px;border-radius:3px;margin-left:4px;vertical-align:1px}
.flag.dev{background:#c00000;color:#fff}.flag.slow{background:#4a62c9;color:#fff}
ol.notes{margin:6px 0 0;padding-left:2.4em;max-width:1400px}
ol.notes li{margin:0 0 6px}
ol.notes .where{color:#555;font-size:12px}
table.list{border-collapse:collapse;max-width:1500px}
table.list th,table.list td{border:1px solid #ddd;padding:4px 8px;vertical-align:top;text-align:left}
table.list th{background:#f2f2f2}
table.list td.cause{min-width:40em}
table.list td.nw{white-space:nowrap}
.legend{color:#444;font-size:12px;margin:4px 0 0}
.empty{color:#555}
""".strip()


def _h(text: object) -> str:
    return html.escape(_printable(str(text)), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def _in_cell(short: str) -> str:
    """What fits in a cell: the bug and, when the cause names an exception
    left unread, that exception (the rest is in the notes below the table)."""
    head, lost, unread = short.partition("left unread: ")
    if not lost:
        return short
    bug = head.split(": ")[0] if head.startswith("bug ") else ""
    return f"{bug + ': ' if bug else ''}left unread: {unread}"


def _html_cell(table: _Table, index: int, reactor: str, scenario: str, slow: bool) -> str:
    cell = table.cell(reactor, scenario)
    if cell is None:
        return '<td class="none">not run</td>'
    classes = [cell.outcome] + (["dev"] if cell.deviates else []) + (["slowcell"] if slow else [])
    title = f"{cell.outcome} (expected {cell.expected}); {cell.seconds:.2f}s of a {cell.budget:.0f}s budget"
    parts = [f'<td class="{" ".join(classes)}" title="{_h(title)}">',
             f'<span class="outcome">{cell.outcome.upper()}</span>']
    if cell.outcome != "unavailable":
        parts.append(f'<span class="time">{_seconds(cell.seconds)}</span>')
    if cell.deviates:
        expected = _h(cell.expected)
        parts.append(f'<span class="flag dev" title="expected {expected}">!&nbsp;expected&nbsp;{expected}</span>')
    if slow:
        parts.append('<span class="flag slow">SLOW</span>')
    number = table.note_of.get((reactor, scenario))
    if number is not None:
        note = table.notes[number - 1]
        parts.append(f'<span class="why" title="{_h(note.short)}"><a href="#n{index}-{number}">[{number}]</a> '
                     f"{_h(_short(_in_cell(note.short), 130))}</span>")
    # Spaces between the pieces, so copied text and screen readers read "PASS 0.31s".
    return parts[0] + " ".join(parts[1:]) + "</td>"


def to_html(run: MatrixRun) -> str:
    """One self-contained static page: header, deviations, slow cells, then a
    colour-coded table per driver with every cell's cause visible and the
    full texts listed below each table."""
    counts = _counts(run.cells)
    slow_list = slow_cells(run)
    slow = {(c.driver, c.reactor, c.scenario) for c in slow_list}
    deviations = run.deviations
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Reactor matrix {_h(run.generated)}</title>", f"<style>\n{_CSS}\n</style>", "</head>", "<body>",
           "<h1>Reactor matrix</h1>", '<dl class="meta">']
    meta = [("generated", run.generated), ("python", run.python), ("machine", run.machine or "unknown"),
            ("wall time", f"{_clock(run.wall_seconds)} ({run.wall_seconds:.1f}s)")]
    for name, value in meta:
        out.append(f"<dt>{_h(name)}</dt><dd>{_h(value)}</dd>")
    drivers = "<br>".join(
        f"<b>{_h(d.label)}</b> <span class=\"mono\">{_h(d.spec)}</span>, python {_h(d.python)}"
        + (f", reactors: {_h(', '.join(d.reactors))}" if d.reactors else "")
        for d in run.drivers) or "none"
    out.append(f"<dt>drivers</dt><dd>{drivers}</dd>")
    badges = "".join(f'<span class="badge {o}">{counts[o]} {o}</span>' for o in OUTCOMES)
    badges += f'<span class="badge dev">{len(deviations)} deviating</span>'
    badges += f'<span class="badge slow">{len(slow_list)} slow</span>'
    out.append(f"<dt>cells</dt><dd>{len(run.cells)} {badges}</dd>")
    out.append("</dl>")

    out.append(f'<h2 id="deviations">Deviations from the expectations ({len(deviations)})</h2>')
    if not deviations:
        out.append('<p class="empty">Every cell is what the expectations table says.</p>')
    else:
        out.append('<table class="list"><tr><th>driver</th><th>reactor</th><th>scenario</th><th>expected</th>'
                   "<th>outcome</th><th>time</th><th>cause</th></tr>")
        for cell in deviations:
            expected = cell.expected + (f" (bug {cell.bug})" if cell.bug else "")
            if cell.cause.strip():
                cause = f"<pre>{_h(cell.cause.strip(chr(10)))}</pre>"
            else:
                explained = _explain(cell)
                cause = _h(explained[0] if explained else _NO_CAUSE)
            out.append(f'<tr><td class="nw">{_h(cell.driver)}</td><td class="nw">{_h(cell.reactor)}</td>'
                       f'<td class="mono nw">{_h(cell.scenario)}</td><td>{_h(expected)}</td>'
                       f'<td class="{cell.outcome}"><b>{_h(cell.outcome.upper())}</b></td>'
                       f'<td class="nw">{_seconds(cell.seconds)} of {_seconds(cell.budget)}</td>'
                       f'<td class="cause">{cause}</td></tr>')
        out.append("</table>")

    out.append(f'<h2 id="slow">Slow cells ({len(slow_list)})</h2>')
    if not slow_list:
        out.append(f'<p class="empty">No cell\'s query rate fell below {_h(_share_words(SLOW_SHARE))} '
                   "of its baseline's.</p>")
    else:
        out.append("<ul>")
        for cell in slow_list:
            out.append(f"<li><b>{_h(_cell_name(cell))}</b>: {_h(_slow_text(cell, run))}</li>")
        out.append("</ul>")

    for index, table in enumerate(_tables(run)):
        sub = ""
        if table.info is not None:
            sub = (f' <small>python {_h(table.info.python)} &middot; '
                   f'<span class="mono">{_h(table.info.spec)}</span></small>')
        out.append(f'<h2 id="d{index}">{_h(table.label)}{sub}</h2>')
        out.append('<table class="matrix">')
        out.append("<tr><th>scenario</th>" + "".join(f"<th>{_h(r)}</th>" for r in table.reactors) + "</tr>")
        for scenario in table.scenarios:
            row = [f'<tr><th class="scenario">{_h(scenario)}</th>']
            row.extend(_html_cell(table, index, r, scenario, (table.label, r, scenario) in slow)
                       for r in table.reactors)
            row.append("</tr>")
            out.append("".join(row))
        out.append("</table>")
        out.append('<p class="legend">Red border and <span class="flag dev">!</span>: the cell deviates from its '
                   'expectation. <span class="flag slow">SLOW</span>: its query rate fell below '
                   f"{_h(_share_words(SLOW_SHARE))} of its baseline's. [n]: the note below.</p>")
        if table.notes:
            out.append('<ol class="notes">')
            for note in table.notes:
                where = "; ".join(f"{_h(r)}: {_h(s)}" for r, s in _where(table, note))
                detail = f"<pre>{_h(note.detail)}</pre>" if note.detail else ""
                out.append(f'<li id="n{index}-{note.number}" value="{note.number}">'
                           f'<b class="{note.outcome}">&nbsp;{_h(note.outcome.upper())}&nbsp;</b> '
                           f'{_h(note.short)} <span class="where">({where})</span>{detail}</li>')
            out.append("</ol>")
    out.append(f"<p><i>{_h(_summary(run))}</i></p>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- files


def write_reports(run: MatrixRun, directory: Union[str, "os.PathLike[str]"]) -> Dict[str, Path]:
    """Writes matrix.json, matrix.md, junit.xml and matrix.html into
    `directory` (made if missing); returns their paths by format key.
    Each file is written beside and renamed into place, so a reader never
    sees half a report."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    render = {"json": to_json, "markdown": to_markdown, "junit": to_junit, "html": to_html}
    paths: Dict[str, Path] = {}
    for key, name in REPORT_FILES.items():
        path = target / name
        partial = target / (name + ".partial")
        partial.write_text(render[key](run), encoding="utf-8")
        os.replace(partial, path)
        paths[key] = path
    return paths
