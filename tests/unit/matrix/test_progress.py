# The progress display, driven with a fake clock: on a TTY one redrawn
# line, elsewhere a bounded number of plain lines; counts stay right when
# worker threads finish cells at the same time.
from __future__ import annotations

import io
import sys
import threading
import time
from typing import List

import pytest

from fakecql.matrix.progress import Progress
from fakecql.matrix.records import Cell


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cell(i: int = 0, outcome: str = "pass", expected: str = "pass", reactor: str = "libev") -> Cell:
    return Cell(driver="cassandra-driver 3.30.1", reactor=reactor, scenario=f"test_{i}", outcome=outcome,
                expected=expected, seconds=0.1, budget=10.0)


def test_plain_stream_gets_a_line_per_tenth_and_no_carriage_return() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(242, stream=stream, clock=clock)
    assert progress.isatty is False  # StringIO is not a TTY
    for i in range(242):
        clock.now += 0.1  # 24 s in all: the tenths come faster than the 10 s lines
        progress.advance(cell(i, outcome="fail" if i % 20 == 0 else "pass"))
    progress.close()
    output = stream.getvalue()
    assert "\r" not in output and "\x1b" not in output
    lines = output.splitlines()
    assert output.endswith("\n")
    assert len(lines) == 10, lines
    assert [int(line.split()[2].split("/")[0]) for line in lines] == [25, 49, 73, 97, 121, 146, 170, 194, 218, 242]
    assert lines[-1].startswith("matrix 100% 242/242 cells  13 fail  13 deviating  0:24 elapsed  last: libev / test_241 PASS")


def test_plain_stream_gets_a_line_every_ten_seconds_when_cells_are_slow() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(1000, stream=stream, isatty=False, clock=clock)
    for i in range(20):
        clock.now += 3.0  # 60 s, 2% of the cells
        progress.advance(cell(i))
    lines = stream.getvalue().splitlines()
    assert [line.split()[2] for line in lines] == ["4/1000", "8/1000", "12/1000", "16/1000", "20/1000"]
    assert "~" in lines[0] and "left" in lines[0]
    progress.close()
    assert len(stream.getvalue().splitlines()) == 5  # nothing new since the last line


def test_plain_close_prints_the_last_state_once() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(100, stream=stream, clock=clock)
    for i in range(5):
        progress.advance(cell(i))
    assert stream.getvalue() == ""  # 5% and no time passed: nothing yet
    progress.close()
    progress.close()
    assert stream.getvalue().splitlines() == ["matrix   5% 5/100 cells  0 fail  0:00 elapsed  ~0:00 left  "
                                              "last: libev / test_4 PASS"]


def test_tty_redraws_one_line_and_prints_notes_above_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    stream, clock = io.StringIO(), Clock()
    progress = Progress(242, stream=stream, isatty=True, clock=clock)
    progress.note("building environment cassandra-driver==3.30.1 ...")
    for i in range(37):
        clock.now += 41 / 37
        progress.advance(cell(i, outcome="fail" if i < 12 else "pass", reactor="libev"))
    output = stream.getvalue()
    assert output.count("\n") == 1  # only the note ended a line
    last = output.split("\r")[-1]
    assert last.endswith("\x1b[K")
    assert last == ("[###-----------------] 37/242 cells  12 fail  12 deviating  0:41 elapsed  "
                    "~3:47 left  last: libev / test_36 PASS\x1b[K")
    progress.note("env scylla-driver ready")
    after = stream.getvalue()[len(output):]
    assert after.startswith("\r\x1b[Kenv scylla-driver ready\n\r[###")  # erase the bar, note, redraw it
    progress.close()
    assert stream.getvalue().endswith("\n")


def test_tty_line_is_cut_to_the_terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "50")
    stream = io.StringIO()
    progress = Progress(10, stream=stream, isatty=True, clock=Clock())
    progress.advance(cell(0, reactor="a-reactor-with-a-long-name"))
    drawn = stream.getvalue().split("\r")[-1][: -len("\x1b[K")]
    assert len(drawn) == 49 and drawn.startswith("[##------------------] 1/10 cells")


def test_cell_names_cannot_move_the_cursor() -> None:
    stream = io.StringIO()
    progress = Progress(1, stream=stream, isatty=False, clock=Clock())
    progress.advance(cell(0, reactor="evil\r\x1b[2Jreactor\n"))
    progress.note("note with \x1b[31mcolour\x1b[0m")
    output = stream.getvalue()
    assert "\r" not in output and "\x1b" not in output
    assert output.count("\n") == 2


def test_threads_advancing_at_once_count_every_cell() -> None:
    stream = io.StringIO()
    progress = Progress(800, stream=stream, isatty=False)
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(100):
            outcome = "xfail" if i % 10 == 0 else "pass"
            progress.advance(cell(worker * 100 + i, outcome=outcome, expected="xfail" if outcome == "xfail" else "pass"))

    threads: List[threading.Thread] = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    # Switch threads as often as the interpreter can, so an unlocked
    # read-modify-write is likely to lose counts.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    progress.close()
    assert progress.done == 800
    assert progress.counts == {"pass": 720, "fail": 0, "xfail": 80, "unavailable": 0}
    assert progress.deviations == 0
    lines = stream.getvalue().splitlines()
    # A tenth at a time (plus at most a line per 10 s of this short test), each whole.
    assert 10 <= len(lines) <= 12
    assert all(line.startswith("matrix ") for line in lines)
    assert lines[-1].split()[2] == "800/800"


def test_a_negative_total_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="Progress total must be 0 or more cells, got -1"):
        Progress(-1, stream=io.StringIO())


class OneWriterAtATime(io.StringIO):
    """A stream that notices two threads writing at once (a torn bar)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = False
        self.overlaps = 0

    def write(self, text: str) -> int:
        if self.writing:
            self.overlaps += 1
        self.writing = True
        time.sleep(0.0002)  # long enough for another thread to barge in
        try:
            return super().write(text)
        finally:
            self.writing = False


def test_threads_never_write_over_each_other() -> None:
    stream = OneWriterAtATime()
    progress = Progress(200, stream=stream, isatty=True)
    barrier = threading.Barrier(4)

    def work(worker: int) -> None:
        barrier.wait()
        for i in range(50):
            progress.advance(cell(worker * 50 + i))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    progress.close()
    assert stream.overlaps == 0
    assert progress.done == 200
    assert stream.getvalue().split("\r")[-1].startswith("[####################] 200/200 cells")
