# `python -m fakecql serve ...` as a subprocess, for tests: its output is
# read line by line by a thread into a queue, so every wait has a deadline,
# and the process is killed on exit if it still runs.
from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import IO, Dict, List, Optional, Tuple

TIMEOUT = 30.0  # seconds any one step may take (process start, stop, connect)
LISTENING = re.compile(r"^listening on (?P<host>\[[0-9a-f:]+\]|[0-9.]+):(?P<port>\d+) \((?P<mode>tls|plain)\)$")


class _LineReader(threading.Thread):
    """Reads a pipe line by line into a queue, so the test can wait with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        self.start()

    def run(self) -> None:
        for line in self.stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # EOF

    def next_line(self, deadline: float) -> Optional[str]:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"no output line within the deadline; output so far: {self.seen}") from None
        if line is not None:
            self.seen.append(line)
        return line

    def rest(self, timeout: float = TIMEOUT) -> List[str]:
        """Every line up to EOF (the process has ended)."""
        self.join(timeout)
        assert not self.is_alive(), f"the pipe is still open after {timeout} s"
        while True:
            line = self.lines.get_nowait()
            if line is None:
                return self.seen
            self.seen.append(line)


class ServeProcess:
    """`python -m fakecql serve --port 0 ...` as a subprocess; use as a context manager."""

    def __init__(self, *flags: str, env: Optional[Dict[str, str]] = None, port: str = "0") -> None:
        self.argv = [sys.executable, "-m", "fakecql", "serve", "--port", port, *flags]
        self.env = env
        self.host = ""
        self.port = 0
        self.mode = ""

    def __enter__(self) -> "ServeProcess":
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=self.env)
        self.out = _LineReader(self.proc.stdout)  # type: ignore[arg-type]
        self.err = _LineReader(self.proc.stderr)  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(TIMEOUT)
        finally:
            self.out.join(TIMEOUT)
            self.err.join(TIMEOUT)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc.stderr.close()  # type: ignore[union-attr]

    def wait_listening(self) -> "ServeProcess":
        """Read stdout up to the listening line, which must be the first line."""
        line = self.out.next_line(time.monotonic() + TIMEOUT)
        if line is None:
            self.proc.wait(TIMEOUT)
            raise AssertionError(f"serve exited with {self.proc.returncode} before listening; "
                                 f"stderr: {self.err.rest()}")
        match = LISTENING.match(line)
        assert match, f"the first line is not the listening line: {line!r}"
        self.host, self.port, self.mode = match["host"].strip("[]"), int(match["port"]), match["mode"]
        assert self.port > 0, line  # --port 0 prints the port it picked
        return self

    def read_through(self, marker: str) -> List[str]:
        """Read stdout lines until one starting with `marker` (the snippets follow the listening line)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            line = self.out.next_line(deadline)
            assert line is not None, f"serve's output ended before {marker!r}: {self.out.seen}"
            if line.startswith(marker):
                return self.out.seen

    def stop(self, sig: int = signal.SIGINT) -> Tuple[int, List[str], List[str]]:
        """Send `sig`; (exit status, all stdout lines, all stderr lines)."""
        self.proc.send_signal(sig)
        try:
            status = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            # Still running: SIGABRT makes its faulthandler (on under -X dev /
            # PYTHONDEVMODE) print every thread's stack, which the failure shows.
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(TIMEOUT)
            raise AssertionError(f"serve did not stop within {TIMEOUT} s of signal {sig}; its stderr (threads' "
                                 f"stacks at the end):\n" + "\n".join(self.err.rest())) from None
        return status, self.out.rest(), self.err.rest()

    def snippet(self, title: str) -> str:
        """The indented block printed under the line `title`."""
        lines = self.out.seen[self.out.seen.index(title) + 1:]
        block = []
        for line in lines:
            if not line.startswith("  "):
                break
            block.append(line)
        return textwrap.dedent("\n".join(block))
