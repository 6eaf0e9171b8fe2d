# Running the matrix: for every (driver, reactor, scenario) cell, a fresh
# fakecql node in this process and a worker process playing the client.
#
# Strategy: cells are independent and mostly wait (on timeouts, on the
# network), so they run `jobs` at a time in threads; each thread starts the
# cell's node (CQLServer, own loop thread), starts the worker with the driver
# environment's interpreter (worker.py, run by path), swaps the node's
# faults when the worker says it has connected, and reads the worker's
# result with a deadline. A worker that overruns is killed: the cell fails
# as "hung", with what the node saw. The verdict (verdicts.judge) and the
# expectation (expectations.py) make the Cell record.
#
# Rules: every node started here is stopped, every process reaped; every
# wait has a deadline; an exception inside the node (ServerException) or
# anything a node leaves behind fails the cell: that is fakecql's bug, not
# the reactor's.
from __future__ import annotations

import datetime
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import trustme

from ..activity import FaultApplied, HandshakeFailed, ServerException
from ..node import PasswordAuth
from ..server import CQLServer
from ..tls import ClientAuth, TLSConfig
from .causes import node_saw
from .envs import DriverEnv
from .expectations import BUGS, expected_outcome
from .records import Cell, MatrixRun
from .scenarios import PASSWORD, NodeSpec, Scenario
from .verdicts import judge

__all__ = ["CellJob", "Certificates", "plan", "run_cell", "run_matrix"]

WORKER = Path(__file__).resolve().with_name("worker.py")
MARK = "@@fakecql-matrix "
# Seconds a worker may take beyond its scenario's budget: interpreter start,
# imports (gevent, twisted), and a busy machine.
STARTUP_ALLOWANCE = 20.0
SHUTDOWN_ALLOWANCE = 10.0  # for Cluster.shutdown() after the result
# A fork server imports the driver and its reactor once; on a machine busy
# with other test processes that can take long, and it is not a cell's time.
SERVER_START_ALLOWANCE = 90.0


class Certificates:
    """The PEM files every cell's client may use, and the node's certificates."""

    def __init__(self, directory: Path) -> None:
        from cryptography.hazmat.primitives import serialization

        self.directory = directory
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()  # signs nothing the node trusts
        # The node's certificate also carries 127.0.0.1 as its common name, as
        # the drivers' own test certificates do: the pyOpenSSL reactors' host
        # name check reads the common name.
        self.node_cert = self.ca.issue_cert("127.0.0.1", "localhost", "::1", common_name="127.0.0.1")
        self.other_name_cert = self.ca.issue_cert("localhost", common_name="localhost")
        client = self.ca.issue_cert("fakecql-client", common_name="fakecql-client")
        other_client = self.other_ca.issue_cert("fakecql-client", common_name="fakecql-client")
        key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
        encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"cassandra"))
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "ca.pem": self.ca.cert_pem.bytes(),
            "other_ca.pem": self.other_ca.cert_pem.bytes(),
            "client.pem": b"".join(p.bytes() for p in client.cert_chain_pems),
            "client.key": client.private_key_pem.bytes(),
            "client_encrypted.key": encrypted,
            "other_client.pem": b"".join(p.bytes() for p in other_client.cert_chain_pems),
            "other_client.key": other_client.private_key_pem.bytes(),
        }
        for name, data in files.items():
            path = directory / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)

    def node_tls(self, spec: NodeSpec) -> Optional[TLSConfig]:
        if not spec.tls:
            return None
        return TLSConfig.create(
            self.ca, server_cert=self.other_name_cert if spec.cert == "other_name" else self.node_cert,
            client_auth=ClientAuth.REQUIRED if spec.mtls else ClientAuth.NONE,
            min_version=spec.tls_min, max_version=spec.tls_max, session_tickets=spec.session_tickets,
        )


@dataclass(frozen=True)
class CellJob:
    env: DriverEnv
    reactor: str
    scenario: Scenario


def plan(envs: Sequence[DriverEnv], reactors: Sequence[str], scenarios: Sequence[Scenario]) -> List[CellJob]:
    """Every cell: per driver, its reactors (those asked for, if any), every scenario."""
    jobs: List[CellJob] = []
    for env in envs:
        for reactor in env.info.reactors:
            if reactors and reactor not in reactors:
                continue
            jobs.extend(CellJob(env, reactor, scenario) for scenario in scenarios)
    return jobs


def _start_node(scenario: Scenario, certs: Certificates) -> CQLServer:
    spec = scenario.node
    server = CQLServer(tls=certs.node_tls(spec), protocol_versions=spec.protocol_versions,
                       auth=PasswordAuth("cassandra", PASSWORD) if spec.auth else None)
    if spec.tables:
        server.node.schema.add_keyspace("ks")
        server.node.schema.add_table("ks", "blobs", {"id": "uuid", "data": "blob"}, partition_key=["id"])
    for verb, kwargs in spec.faults:
        getattr(server.faults, verb)(**dict(kwargs))
    return server.start()


class _ForkServer:
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


class _BrokenWorker(RuntimeError):
    """The worker of a (driver, reactor) could not start: its cells fail with the reason."""


class _Servers:
    """Idle fork servers by (driver environment, reactor); a cell borrows one and gives it back."""

    def __init__(self, src: Path) -> None:
        self.src = src
        self._idle: Dict[Tuple[Path, str], List[_ForkServer]] = {}
        self._all: List[_ForkServer] = []
        self._unavailable: Dict[Tuple[Path, str], str] = {}
        self._broken: Dict[Tuple[Path, str], str] = {}
        self._lock = threading.Lock()

    def borrow(self, env: DriverEnv, reactor: str) -> "_ForkServer | str":
        """A ready server, or the reason the reactor cannot run in this environment."""
        key = (env.path, reactor)
        with self._lock:
            if key in self._unavailable:
                return self._unavailable[key]
            if key in self._broken:  # one start that failed is enough: no cascade of slow starts
                raise _BrokenWorker(self._broken[key])
            if self._idle.get(key):
                return self._idle[key].pop()
        server = _ForkServer(env, reactor, self.src)
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
            raise _BrokenWorker(self._broken[key]) from None
        if refused is not None:
            why = str(refused.get("unavailable") or refused.get("error") or "the reactor cannot be loaded")
            with self._lock:
                self._unavailable[key] = why
            server.close()
            return why
        return server

    def give_back(self, server: _ForkServer) -> None:
        with self._lock:
            self._idle.setdefault(server.key, []).append(server)

    def discard(self, server: _ForkServer) -> None:
        server.close()

    def close(self) -> None:
        with self._lock:
            servers, self._all = self._all, []
            self._idle.clear()
        for server in servers:
            server.close()


def _play(server: _ForkServer, node: CQLServer, request: Dict[str, Any], scenario: Scenario,
          began: float) -> Tuple[Optional[Dict[str, Any]], str, bool]:
    """(the child's result or None, why there is none, whether Cluster.shutdown() hung)."""
    deadline = began + scenario.budget + STARTUP_ALLOWANCE
    if not server.send(json.dumps(request)):
        return None, "the worker process is gone", False
    result: Optional[Dict[str, Any]] = None
    try:
        while result is None:
            event = server.next_event(deadline)
            if event is None:
                return None, "the worker process ended without a result", False
            if event["event"] == "connected":
                node.faults.clear()
                for verb, kwargs in scenario.node.query_faults:
                    getattr(node.faults, verb)(**dict(kwargs))
                server.send("go")
            elif event["event"] == "result":
                result = event
            elif event["event"] == "crash":
                return None, f"the worker crashed: {event.get('error')}", False
    except TimeoutError:
        server.kill_child()
        return None, (f"hung: no result within {scenario.budget + STARTUP_ALLOWANCE:.0f} s "
                      f"(budget {scenario.budget:.0f} s); the worker was killed"), False
    try:
        while True:  # Cluster.shutdown() runs now: "done", then the server's "ready"
            event = server.next_event(time.monotonic() + SHUTDOWN_ALLOWANCE)
            if event is None or event["event"] == "ready":
                return result, "", False
    except TimeoutError:
        server.kill_child()
        return result, "", True


def run_cell(job: CellJob, certs: Certificates, servers: _Servers) -> Cell:
    """Run one cell from start to verdict; never raises for what the reactor does."""
    scenario = job.scenario
    label = job.env.info.label
    expected, row = expected_outcome(job.env.info.name, job.env.info.version, job.reactor, scenario.name,
                                     job.env.info.python)
    bug = row.bug if row is not None and row.outcome == "xfail" else ""

    def cell(outcome: str, seconds: float, cause: str = "", rate: Optional[float] = None) -> Cell:
        if outcome == "fail" and expected == "xfail":
            outcome = "xfail"
        return Cell(driver=label, reactor=job.reactor, scenario=scenario.name, outcome=outcome,
                    expected=expected, seconds=round(seconds, 3), budget=scenario.budget, cause=cause,
                    rate=None if rate is None else round(rate, 1), bug=bug, baseline=scenario.baseline)

    try:
        server = servers.borrow(job.env, job.reactor)
    except _BrokenWorker as exc:
        return cell("fail", 0.0, str(exc))
    if isinstance(server, str):
        return cell("unavailable", 0.0, server)
    node = _start_node(scenario, certs)
    began = time.monotonic()
    healthy = False
    try:
        server.errors.clear()
        request = {"scenario": scenario.name, "reactor": job.reactor, "host": node.host, "port": node.port,
                   "certs_dir": str(certs.directory), "wait_for_go": bool(scenario.node.query_faults)}
        result, missing, shutdown_hung = _play(server, node, request, scenario, began)
        until = time.monotonic()
        healthy = not missing
    finally:
        node.stop()
        if healthy:
            servers.give_back(server)
        else:
            servers.discard(server)
    entries = node.activity.entries
    node_line = node_saw(entries, since=began, until=until)
    ours = [e for e in entries if isinstance(e, ServerException)]
    leftovers = node.leftovers()
    if result is None:
        stderr_tail = " | ".join(line for line in list(server.errors)[-3:] if line.strip())
        return cell("fail", until - began,
                    f"{missing}; {node_line}" + (f"; stderr: {stderr_tail}" if stderr_tail else ""))
    seconds = float(result.get("seconds") or (until - began))
    acted = any(isinstance(e, FaultApplied) for e in entries)
    refused = any(isinstance(e, HandshakeFailed) for e in entries)
    outcome, cause = judge(scenario, result, node_line, seconds, fault_acted=acted, node_refused=refused)
    if ours or leftovers:
        what = ours[0].description.splitlines()[-1] if ours else "; ".join(leftovers)
        outcome, cause = "fail", f"fakecql's own fault, not the reactor's: {what}; {node_line}"
    elif shutdown_hung and outcome == "pass":
        outcome, cause = "fail", f"Cluster.shutdown() did not return within {SHUTDOWN_ALLOWANCE:.0f} s; {node_line}"
    if outcome == "fail" and expected == "xfail" and bug:
        cause = cause or BUGS[bug].title
    return cell(outcome, seconds, cause, result.get("rate"))


def _interleaved(work: Sequence[CellJob]) -> List[int]:
    """Cell indices, round-robin over (driver, reactor) columns: cells running
    at once then belong to different columns, so each column needs about one
    fork server (each costs an interpreter and the driver's imports)."""
    columns: Dict[Tuple[Path, str], List[int]] = {}
    for index, job in enumerate(work):
        columns.setdefault((job.env.path, job.reactor), []).append(index)
    order: List[int] = []
    queues = list(columns.values())
    while any(queues):
        for queue_ in queues:
            if queue_:
                order.append(queue_.pop(0))
    return order


def run_matrix(
    envs: Sequence[DriverEnv], scenarios: Sequence[Scenario], *, reactors: Sequence[str] = (), jobs: int = 4,
    on_cell: Callable[[Cell], None] = lambda cell: None, cache_dir: Optional[Path] = None,
) -> MatrixRun:
    """Run every planned cell, `jobs` at a time; cells come back in plan order."""
    from .envs import default_cache_dir, source_links

    started = time.monotonic()
    work = plan(envs, reactors, scenarios)
    servers = _Servers(source_links(cache_dir or default_cache_dir()))
    results: List[Optional[Cell]] = [None] * len(work)
    with tempfile.TemporaryDirectory(prefix="fakecql-matrix-") as tmp:
        certs = Certificates(Path(tmp))

        def one(index: int) -> None:
            try:
                done = run_cell(work[index], certs, servers)
            except Exception as exc:  # a bug of ours: the cell says so, the run goes on
                job = work[index]
                expected, _ = expected_outcome(job.env.info.name, job.env.info.version, job.reactor,
                                               job.scenario.name, job.env.info.python)
                done = Cell(driver=job.env.info.label, reactor=job.reactor, scenario=job.scenario.name,
                            outcome="fail", expected=expected, seconds=0.0, budget=job.scenario.budget,
                            cause=f"the matrix runner failed: {type(exc).__name__}: {exc}")
            results[index] = done
            on_cell(done)

        try:
            with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="fakecql-cell") as pool:
                for future in [pool.submit(one, i) for i in _interleaved(work)]:
                    future.result()
        finally:
            servers.close()
    return MatrixRun(
        generated=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=sys.version.split()[0],
        machine=f"{platform.system()} {platform.release()} | {platform.machine()} | {os.cpu_count()} CPUs",
        drivers=[env.info for env in envs],
        cells=[c for c in results if c is not None],
        wall_seconds=time.monotonic() - started,
    )
