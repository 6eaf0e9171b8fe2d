# Worker processes for matrix cells: one fork server per (driver
# environment, reactor), borrowed by one cell at a time.
#
# Strategy: a ForkServer runs worker.py with the driver environment's
# interpreter; it imports the driver and its reactor once, then forks a
# child per cell (worker.py says why). Its stdout and stderr are read by
# threads into a queue and a short ring, so every wait on it has a
# deadline. Servers keeps idle servers per (environment, reactor) and
# remembers a reactor that cannot be loaded (unavailable, with the reason)
# or whose server could not start (BrokenWorker: its cells fail at once
# instead of each paying another slow start).
#
# Rules: every process started here is reaped by close(); a child that
# overruns is killed by its pid, the server lives on.
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Deque, Dict, List, Optional, Tuple

from .envs import DriverEnv

__all__ = ["WORKER", "MARK", "SERVER_START_ALLOWANCE", "BrokenWorker", "ForkServer", "Servers"]

WORKER = Path(__file__).resolve().with_name("worker.py")
MARK = "@@fakecql-matrix "
# A fork server imports the driver and its reactor once; on a machine busy
# with other test processes that can take long, and it is not a cell's time.
SERVER_START_ALLOWANCE = 90.0


class ForkServer:
    """A worker.py fork server for one (driver, reactor): it forks one child per cell.
    Its output is read by threads so that every wait has a deadline."""

    def __init__(self, env: DriverEnv, reactor: str, src: Path) -> None:
        setup = {"reactor": reactor, "src": str(src)}
        environ = dict(os.environ, PYTHONWARNINGS="ignore")
        environ.pop("PYTHONPATH", None)
        self.key = (env.path, reactor)
        self.process = subprocess.Popen([str(env.python), str(WORKER), json.dumps(setup)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ, text=True,
                                        bufsize=1)
        self.events: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue()
        self.errors: "Deque[str]" = deque(maxlen=20)
        self.child: Optional[int] = None
        self._readers = [threading.Thread(target=self._read_events, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(MARK):
                try:
                    self.events.put(json.loads(line[len(MARK):]))
                except ValueError:
                    pass
        self.events.put(None)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line.rstrip("\n"))

    def next_event(self, deadline: float) -> Optional[Dict[str, Any]]:
        """The next event, None at EOF; TimeoutError at the deadline."""
        try:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None
        if event is not None and event.get("event") == "started":
            self.child = int(event["pid"])
        return event

    def send(self, line: str) -> bool:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def ready(self, deadline: float) -> Optional[Dict[str, Any]]:
        """Wait for "ready" (None) or the reason the reactor is unavailable (that event)."""
        while True:
            event = self.next_event(deadline)
            if event is None:
                raise RuntimeError(f"the worker ended before it was ready: {' | '.join(self.errors)}")
            if event["event"] == "ready":
                return None
            if event["event"] in ("result", "crash"):
                return event

    def kill_child(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        self.kill_child()
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        for reader in self._readers:
            reader.join(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class BrokenWorker(RuntimeError):
    """The worker of a (driver, reactor) could not start: its cells fail with the reason."""


class Servers:
    """Idle fork servers by (driver environment, reactor); a cell borrows one and gives it back."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self._idle: Dict[Tuple[Path, str], List[ForkServer]] = {}
        self._all: List[ForkServer] = []
        self._unavailable: Dict[Tuple[Path, str], str] = {}
        self._broken: Dict[Tuple[Path, str], str] = {}
        self._lock = threading.Lock()

    def borrow(self, env: DriverEnv, reactor: str) -> "ForkServer | str":
        """A ready server, or the reason the reactor cannot run in this environment."""
        key = (env.path, reactor)
        with self._lock:
            if key in self._unavailable:
                return self._unavailable[key]
            if key in self._broken:  # one start that failed is enough: no cascade of slow starts
                raise BrokenWorker(self._broken[key])
            if self._idle.get(key):
                return self._idle[key].pop()
        server = ForkServer(env, reactor, self.src)
        with self._lock:
            self._all.append(server)
        try:
            refused = server.ready(time.monotonic() + SERVER_START_ALLOWANCE)
        except (TimeoutError, RuntimeError) as exc:
            server.close()
            why = (f"the {reactor} worker of {env.info.label} did not start within {SERVER_START_ALLOWANCE:.0f} s"
                   if isinstance(exc, TimeoutError) else str(exc))
            with self._lock:
                self._broken[key] = f"{why}; its stderr: {' | '.join(server.errors) or 'nothing'}"
            raise BrokenWorker(self._broken[key]) from None
        if refused is not None:
            why = str(refused.get("unavailable") or refused.get("error") or "the reactor cannot be loaded")
            with self._lock:
                self._unavailable[key] = why
            server.close()
            return why
        return server

    def give_back(self, server: ForkServer) -> None:
        with self._lock:
            self._idle.setdefault(server.key, []).append(server)

    def discard(self, server: ForkServer) -> None:
        server.close()

    def close(self) -> None:
        with self._lock:
            servers, self._all = self._all, []
            self._idle.clear()
        for server in servers:
            server.close()
