# Running the matrix: for every (driver, reactor, scenario) cell, a fresh
# fakecql node in this process and a worker process playing the client.
#
# Strategy: cells are independent and mostly wait (on timeouts, on the
# network), so they run `jobs` at a time in threads, round-robin over the
# (driver, reactor) columns; each thread starts the cell's node (CQLServer,
# own loop thread), borrows the column's fork server (workers.py), which
# forks a child for the cell, swaps the node's faults when the child says it
# has connected, and reads the child's result with a deadline. A child that
# overruns is killed: the cell fails as "hung", with what the node saw. The
# verdict (verdicts.judge) and the expectation (expectations.py) make the
# Cell record.
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
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import trustme

from ..activity import FaultApplied, HandshakeFailed, ServerException
from ..node import PasswordAuth
from ..reactors import OPT_IN_REACTORS
from ..server import CQLServer
from ..tls import ClientAuth, TLSConfig
from .causes import node_saw
from .deployments import Deployment
from .envs import DriverEnv
from .expectations import BUGS, expected_outcome
from .records import Cell, MatrixRun
from .scenarios import PASSWORD, NodeSpec, Scenario
from .verdicts import judge
from .workers import BrokenWorker, ForkServer, Servers

__all__ = ["CellJob", "Certificates", "plan", "run_cell", "run_matrix"]

# Seconds a cell's child may take beyond its scenario's budget: the fork,
# the reactor's start, a busy machine.
STARTUP_ALLOWANCE = 20.0
SHUTDOWN_ALLOWANCE = 10.0  # for Cluster.shutdown() after the result


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
        self.cluster_cert = self.ca.issue_cert(*(f"127.0.0.{i}" for i in range(1, 9)), "localhost",
                                               common_name="127.0.0.1")  # NodeSpec(nodes=N), N <= 8
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
        cert = self.other_name_cert if spec.cert == "other_name" else self.node_cert
        return TLSConfig.create(
            self.ca, server_cert=self.cluster_cert if spec.nodes > 1 else cert,
            client_auth=ClientAuth.REQUIRED if spec.mtls else ClientAuth.NONE,
            min_version=spec.tls_min, max_version=spec.tls_max, session_tickets=spec.session_tickets,
        )


@dataclass(frozen=True)
class CellJob:
    env: DriverEnv
    reactor: str
    scenario: Scenario


def reactors_of(env: DriverEnv, reactors: Sequence[str]) -> List[str]:
    """The reactors a driver's cells run: those asked for (an opt-in one only then), else all it has."""
    if not reactors:
        return list(env.info.reactors)
    return [r for r in env.info.reactors if r in reactors] + [r for r in OPT_IN_REACTORS if r in reactors]


def plan(envs: Sequence[DriverEnv], reactors: Sequence[str], scenarios: Sequence[Scenario]) -> List[CellJob]:
    """Every cell: per driver, its reactors (those asked for, if any), every scenario."""
    jobs: List[CellJob] = []
    for env in envs:
        for reactor in reactors_of(env, reactors):
            jobs.extend(CellJob(env, reactor, scenario) for scenario in scenarios)
    return jobs


def _start_node(scenario: Scenario, certs: Certificates) -> Union[CQLServer, Deployment]:
    spec = scenario.node
    if spec.nodes > 1 or spec.nlb:
        return Deployment(spec, certs.node_tls(spec)).start()
    server = CQLServer(tls=certs.node_tls(spec), protocol_versions=spec.protocol_versions,
                       auth=PasswordAuth("cassandra", PASSWORD) if spec.auth else None)
    if spec.tables:
        server.node.schema.add_keyspace("ks")
        server.node.schema.add_table("ks", "blobs", {"id": "uuid", "data": "blob"}, partition_key=["id"])
    for verb, kwargs in spec.faults:
        getattr(server.faults, verb)(**dict(kwargs))
    return server.start()


def _play(server: ForkServer, node: Union[CQLServer, Deployment], request: Dict[str, Any], scenario: Scenario,
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


def run_cell(job: CellJob, certs: Certificates, servers: Servers) -> Cell:
    """Run one cell from start to verdict; never raises for what the reactor does."""
    scenario = job.scenario
    label = job.env.info.label
    expected, row = expected_outcome(job.env.info.name, job.env.info.version, job.reactor, scenario.name,
                                     job.env.info.python)
    bug = row.bug if row is not None and row.outcome == "xfail" else ""

    def cell(outcome: str, seconds: float, cause: str = "", rate: Optional[float] = None, did: str = "") -> Cell:
        if outcome == "fail" and expected == "xfail":
            outcome = "xfail"
        return Cell(driver=label, reactor=job.reactor, scenario=scenario.name, outcome=outcome,
                    expected=expected, seconds=round(seconds, 3), budget=scenario.budget, cause=cause,
                    rate=None if rate is None else round(rate, 1), bug=bug, baseline=scenario.baseline, did=did)

    try:
        server = servers.borrow(job.env, job.reactor)
    except BrokenWorker as exc:
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
    elif outcome == "pass" and isinstance(node, Deployment) and scenario.promise == "connects" and node.bypassed():
        outcome, cause = "fail", f"the driver went around the NLB: {node.bypassed()}; {node_line}"
    elif shutdown_hung and outcome == "pass":
        outcome, cause = "fail", f"Cluster.shutdown() did not return within {SHUTDOWN_ALLOWANCE:.0f} s; {node_line}"
    if outcome == "fail" and expected == "xfail" and bug:
        cause = cause or BUGS[bug].title
    return cell(outcome, seconds, cause, result.get("rate"), aimed_did(result))


def aimed_did(result: Dict[str, Any]) -> str:
    """What the aimed queries did, in a few words: "OverloadedErrorMessage 0.05s; then 3 queries (1 retry)"."""
    aimed = result.get("aimed") or []
    if not aimed:
        return ""
    parts = []
    for run in aimed:
        chain = [str(e).split(":", 1)[0] for e in run.get("chain") or []]
        named = [n for n in chain if n not in ("NoHostAvailable",)]
        what = (named[-1] if named else chain[0] if chain else "error") if run.get("error") else "answered"
        if named and named[0] != named[-1]:
            what = f"{named[0]}({named[-1]})"
        parts.append(f"{what} {float(run.get('seconds') or 0.0):.2f}s")
    text = ", ".join(parts)
    if result.get("connected"):
        retries = int(result.get("retries") or 0)
        text += f"; then {result.get('queries_done', 0)} queries" + (f" ({retries} retries)" if retries else "")
    return text


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
    servers = Servers(source_links(cache_dir or default_cache_dir()))
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
