# A progress display for a matrix run, fed one finished Cell at a time.
#
# Strategy: two ways of showing the same counters. On a TTY, one line
# redrawn in place ("\r" + line + erase-to-end), cut to the terminal's
# width so it never wraps (a wrapped line cannot be redrawn); notes are
# printed above it. Anywhere else (CI logs, files), plain lines only: one
# each time another tenth of the cells is done or, failing that, when
# 10 seconds have passed since the last line, and one at close(); never a
# carriage return, so a log shows a few dozen lines, not a storm.
#
# Rules: every public method takes the one lock, so worker threads may
# call advance() at the same time; nothing here starts a thread or a
# timer (lines appear when cells finish); close() is idempotent and ends
# the display with a newline; the clock is injectable for tests.
from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Callable, Dict, Optional, TextIO

from .records import OUTCOMES, Cell

__all__ = ["Progress"]

# Non-TTY output: a line each time another 1/PLAIN_STEPS of the cells is
# done, or after PLAIN_INTERVAL seconds without one.
PLAIN_STEPS = 10
PLAIN_INTERVAL = 10.0
BAR_WIDTH = 20


def _clock(seconds: float) -> str:
    total = int(max(seconds, 0.0))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _ascii(text: str) -> str:
    """One line of plain ASCII: a cell name cannot move the cursor."""
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text.encode("ascii", "replace").decode("ascii")


class Progress:
    """Shows how far a matrix run is: Progress(total), then advance(cell)
    from any thread as cells finish, note(text) for a line of news, close()."""

    def __init__(self, total: int, stream: Optional[TextIO] = None, isatty: Optional[bool] = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`stream` defaults to sys.stderr as it is when the Progress is made;
        `isatty` defaults to what the stream says."""
        if total < 0:
            raise ValueError(f"Progress total must be 0 or more cells, got {total}")
        self.total = total
        self._stream: TextIO = stream if stream is not None else sys.stderr
        if isatty is None:
            try:
                isatty = bool(self._stream.isatty())
            except (AttributeError, ValueError, OSError):
                isatty = False
        self.isatty = isatty
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self.done = 0
        self.counts: Dict[str, int] = {o: 0 for o in OUTCOMES}
        self.deviations = 0
        self._last = ""
        self._drawn = False  # a TTY bar is on screen, to be erased before a note
        self._next_step = 1  # non-TTY: the next tenth that earns a line
        self._last_line_at = self._start
        self._last_line_done = -1
        self._closed = False

    # ------------------------------------------------------------ public

    def advance(self, cell: Cell) -> None:
        """Counts a finished cell and shows it."""
        with self._lock:
            self.done += 1
            self.counts[cell.outcome] += 1
            if cell.deviates:
                self.deviations += 1
            self._last = f"{cell.reactor} / {cell.scenario} {cell.outcome.upper()}"
            if self._closed:
                return
            if self.isatty:
                self._draw()
            elif self._plain_due():
                self._plain_line()

    def note(self, text: str) -> None:
        """A line above the bar ("building environment cassandra-driver==3.30.1 ...")."""
        with self._lock:
            if self._closed:
                self._write(_ascii(text) + "\n")
                return
            if self.isatty:
                self._write("\r\x1b[K" + _ascii(text) + "\n")
                if self._drawn:
                    self._draw()
            else:
                self._write(_ascii(text) + "\n")

    def close(self) -> None:
        """Shows the final state and ends the line; later calls do nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.isatty:
                self._draw()
                self._write("\n")
            elif self._last_line_done != self.done or self.done == 0:
                self._plain_line()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ lines

    def status(self) -> str:
        """The counters as one line, without the bar."""
        elapsed = self._clock() - self._start
        parts = [f"{self.done}/{self.total} cells", f"{self.counts['fail']} fail"]
        if self.deviations:
            parts.append(f"{self.deviations} deviating")
        parts.append(f"{_clock(elapsed)} elapsed")
        if 0 < self.done < self.total:
            parts.append(f"~{_clock(elapsed / self.done * (self.total - self.done))} left")
        if self._last:
            parts.append(f"last: {_ascii(self._last)}")
        return "  ".join(parts)

    def _bar(self) -> str:
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * BAR_WIDTH)
        return "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]"

    def _fit(self, line: str) -> str:
        columns = shutil.get_terminal_size((100, 24)).columns
        return line[: max(columns - 1, 10)]

    def _draw(self) -> None:
        self._write("\r" + self._fit(f"{self._bar()} {self.status()}") + "\x1b[K")
        self._drawn = True

    def _plain_due(self) -> bool:
        if self.total and self.done >= self.total:
            return True
        step_due = self.total > 0 and self.done * PLAIN_STEPS >= self._next_step * self.total
        return step_due or self._clock() - self._last_line_at >= PLAIN_INTERVAL

    def _plain_line(self) -> None:
        percent = f"{self.done / self.total:.0%}" if self.total else "100%"
        self._write(f"matrix {percent:>4} {self.status()}\n")
        self._last_line_done = self.done
        self._last_line_at = self._clock()
        if self.total:
            while self._next_step * self.total <= self.done * PLAIN_STEPS:
                self._next_step += 1

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
