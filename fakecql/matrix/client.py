# The client side of a matrix cell: the driver and reactor under test play a
# scenario's ClientSpec against the node the runner started.
#
# Strategy: runs inside a worker process whose interpreter has the driver
# (and, for gevent/eventlet, was monkey-patched before anything else was
# imported: see worker.py). It builds the Cluster the way an application
# would, through the TLS path the scenario names (ssl_options alone, an
# ssl_context, or ssl.create_default_context), with Python's ssl or, for the
# reactors that take only pyOpenSSL contexts, OpenSSL.SSL; connects; runs
# the queries; and returns what happened as plain data. Judging the result
# against the scenario's promise is the runner's job (verdicts.py).
#
# Rules: every wait is bounded by the driver's own timeouts (connect and
# request); the Cluster is always shut down; errors are returned, never
# raised, with the whole chain of causes the driver wrapped.
from __future__ import annotations

import os
import ssl
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from ..reactors import uses_pyopenssl
from .causes import describe
from .scenarios import AIMED_QUERY, CONNECT_TIMEOUT, ROUTES_CONNECTION_ID, ClientSpec, Scenario

__all__ = ["ClientResult", "CertFiles", "run_client", "error_chain"]

QUERY = "SELECT release_version FROM system.local"
KEY_PASSWORD = "cassandra"  # the encrypted client key's password, as upstream's


@dataclass(frozen=True)
class CertFiles:
    """PEM files the runner wrote for the cell (paths as strings)."""

    ca: str
    other_ca: str
    client_cert: str
    client_key: str
    client_key_encrypted: str
    other_client_cert: str
    other_client_key: str

    @classmethod
    def in_directory(cls, directory: "str | Path") -> "CertFiles":
        d = Path(directory)
        return cls(
            ca=str(d / "ca.pem"), other_ca=str(d / "other_ca.pem"),
            client_cert=str(d / "client.pem"), client_key=str(d / "client.key"),
            client_key_encrypted=str(d / "client_encrypted.key"),
            other_client_cert=str(d / "other_client.pem"), other_client_key=str(d / "other_client.key"),
        )


@dataclass
class ClientResult:
    connected: bool = False
    connect_seconds: Optional[float] = None
    queries_done: int = 0
    query_seconds: Optional[float] = None
    rate: Optional[float] = None  # queries/s, when queries were not spaced
    error: str = ""  # "Type: message" of what the driver raised
    error_chain: List[str] = field(default_factory=list)  # every error it wrapped
    certificate_error: bool = False  # a certificate verification failure is in the chain
    timed_out: bool = False  # the chain holds a driver timeout (OperationTimedOut and kin)
    authentication_failed: bool = False  # the chain holds the driver's AuthenticationFailed
    driver_refused: bool = False  # Cluster() itself raised ValueError: the driver refused the configuration
    seconds: float = 0.0
    unavailable: str = ""  # why this reactor cannot play this scenario here
    # One entry per run of AIMED_QUERY: seconds it took, and what it raised
    # ("" and [] when it was answered), with its timeout flag.
    aimed: List[Dict[str, Any]] = field(default_factory=list)
    retries: int = 0  # queries after the aimed ones that failed and were retried (ClientSpec.recover)

    def to_json(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def error_chain(exc: BaseException) -> List[BaseException]:
    """The exception, what NoHostAvailable wraps per host, and their causes and contexts."""
    seen: List[BaseException] = []
    todo: List[Any] = [exc]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or any(current is s for s in seen):
            continue
        seen.append(current)
        todo.extend([current.__cause__, current.__context__])
        errors = getattr(current, "errors", None)
        if isinstance(errors, dict):
            todo.extend(errors.values())
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
    return seen


def _is_certificate_error(exc: BaseException) -> bool:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return True
    text = f"{type(exc).__name__} {exc}".upper()
    return any(word in text for word in ("CERTIFICATE_VERIFY_FAILED", "CERTIFICATE VERIFY FAILED",
                                         "HOSTNAME VERIFICATION FAILED", "HOSTNAME MISMATCH",
                                         "DOESN'T MATCH", "CERTIFICATE NAME"))


def _is_timeout(exc: BaseException) -> bool:
    return "TIMED OUT" in str(exc).upper() or type(exc).__name__ in ("OperationTimedOut", "TimeoutError", "timeout")


# -- TLS settings per path -----------------------------------------------------------

def _stdlib_context(spec: ClientSpec, files: CertFiles) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = spec.check_hostname and spec.verify
    if spec.verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(files.ca if spec.ca == "ca" else files.other_ca)
    else:
        context.verify_mode = ssl.CERT_NONE
    if spec.client_cert == "good":
        context.load_cert_chain(files.client_cert, files.client_key)
    elif spec.client_cert == "encrypted":
        context.load_cert_chain(files.client_cert, files.client_key_encrypted, password=KEY_PASSWORD)
    elif spec.client_cert == "other_ca":
        context.load_cert_chain(files.other_client_cert, files.other_client_key)
    if spec.tls_max == "1.2":
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    if spec.tls_min == "1.3":
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


def _pyopenssl_context(spec: ClientSpec, files: CertFiles) -> Any:
    from OpenSSL import SSL, crypto  # the reactors that need it bring it (pyOpenSSL)

    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if spec.verify:
        context.load_verify_locations(files.ca if spec.ca == "ca" else files.other_ca)
        context.set_verify(SSL.VERIFY_PEER, lambda conn, cert, errno, depth, ok: bool(ok))
    else:
        context.set_verify(SSL.VERIFY_NONE, lambda conn, cert, errno, depth, ok: True)
    if spec.client_cert in ("good", "encrypted"):
        context.use_certificate_file(files.client_cert)
        if spec.client_cert == "encrypted":
            with open(files.client_key_encrypted, "rb") as handle:
                context.use_privatekey(crypto.load_privatekey(crypto.FILETYPE_PEM, handle.read(),
                                                              KEY_PASSWORD.encode()))
        else:
            context.use_privatekey_file(files.client_key)
    elif spec.client_cert == "other_ca":
        context.use_certificate_file(files.other_client_cert)
        context.use_privatekey_file(files.other_client_key)
    if spec.tls_max == "1.2":
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
    if spec.tls_min == "1.3":
        context.set_min_proto_version(SSL.TLS1_3_VERSION)
    return context


def _ssl_options(spec: ClientSpec, files: CertFiles, pyopenssl: bool) -> Dict[str, Any]:
    """Cluster(ssl_options=...) alone, as upstream's legacy-path tests build it."""
    options: Dict[str, Any] = {"ca_certs": files.ca if spec.ca == "ca" else files.other_ca}
    if pyopenssl:
        from OpenSSL import SSL

        options["cert_reqs"] = SSL.VERIFY_PEER if spec.verify else SSL.VERIFY_NONE
    else:
        options["cert_reqs"] = ssl.CERT_REQUIRED if spec.verify else ssl.CERT_NONE
    if spec.check_hostname:
        options["check_hostname"] = True
    if spec.client_cert == "good":
        options.update(certfile=files.client_cert, keyfile=files.client_key)
    elif spec.client_cert == "other_ca":
        options.update(certfile=files.other_client_cert, keyfile=files.other_client_key)
    elif spec.client_cert == "encrypted":
        raise ValueError("ssl_options cannot carry a key password; use the context path")
    return options


def tls_settings(scenario: Scenario, files: CertFiles, connection_class: type) -> Dict[str, Any]:
    """The Cluster keyword arguments for the scenario's TLS path (empty for plain TCP);
    ValueError when this reactor cannot take that path at all."""
    spec = scenario.client
    pyopenssl = uses_pyopenssl(connection_class)
    if spec.tls_path == "none":
        return {}
    if spec.tls_path == "options":
        return {"ssl_options": _ssl_options(spec, files, pyopenssl)}
    if spec.tls_path == "default_context":
        if pyopenssl:
            raise ValueError("this reactor does TLS with pyOpenSSL and cannot take a Python ssl.SSLContext "
                             "(upstream skips this test for it too)")
        return {"ssl_context": ssl.create_default_context(cafile=files.ca)}
    if spec.tls_path == "context":
        if pyopenssl and spec.check_hostname:
            raise ValueError("a pyOpenSSL context has no check_hostname, which is what this scenario sets")
        settings: Dict[str, Any] = {
            "ssl_context": _pyopenssl_context(spec, files) if pyopenssl else _stdlib_context(spec, files)}
        if spec.hostname_option:
            settings["ssl_options"] = {"check_hostname": True}
        return settings
    raise ValueError(f"unknown TLS path {spec.tls_path!r}")


def _check_routed(cluster: Any, host: str, port: int, nodes: int) -> None:
    """Every host's endpoint resolves to the NLB (`host`) with a port of its own, not the discovery port."""
    from cassandra.connection import ClientRoutesEndPoint

    resolved = {}
    for member in cluster.metadata.all_hosts():
        if not isinstance(member.endpoint, ClientRoutesEndPoint):
            raise AssertionError(f"host {member} has endpoint {member.endpoint!r}, not a ClientRoutesEndPoint")
        resolved[member.endpoint.address] = member.endpoint.resolve()
    ports = {p for _, p in resolved.values()}
    if (len(resolved) != nodes or {h for h, _ in resolved.values()} != {host} or len(ports) != nodes
            or port in ports):
        raise AssertionError(f"expected {nodes} hosts whose endpoints resolve to {host} with a port of their own "
                             f"(not the discovery port {port}), got {resolved}")


# -- running ------------------------------------------------------------------------------

def _run_aimed(session: Any) -> Dict[str, Any]:
    """Run AIMED_QUERY once: how long it took and what it raised (the scenario judges it)."""
    began = time.monotonic()
    try:
        session.execute(AIMED_QUERY)
    except Exception as exc:
        chain = error_chain(exc)
        return {"seconds": round(time.monotonic() - began, 3), "error": describe(exc),
                "chain": [describe(e) for e in chain], "timed_out": any(_is_timeout(e) for e in chain)}
    return {"seconds": round(time.monotonic() - began, 3), "error": "", "chain": [], "timed_out": False}


def run_client(
    scenario: Scenario, connection_class: type, host: str, port: int, files: CertFiles,
    on_connected: Optional[Callable[[], None]] = None,
    before_shutdown: Optional[Callable[[ClientResult], None]] = None,
) -> ClientResult:
    """Play the scenario's client side; never raises for what the driver does.
    `on_connected` runs once Cluster.connect() returned (the query phase
    starts after it); `before_shutdown` sees the result before the Cluster
    is shut down (what the reactor left behind is looked for then)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    spec = scenario.client
    result = ClientResult()
    if spec.client_routes:
        try:
            from cassandra.client_routes import ClientRouteProxy, ClientRoutesConfig
        except ImportError as exc:
            result.unavailable = f"this driver has no client routes (cassandra.client_routes): {exc}"
            return result
    try:
        settings = tls_settings(scenario, files, connection_class)
    except ValueError as exc:
        result.unavailable = str(exc)
        return result
    request_timeout = spec.request_timeout or max(scenario.budget - CONNECT_TIMEOUT, 1.0)
    options: Dict[str, Any] = dict(
        contact_points=[spec.contact], port=port, connection_class=connection_class,
        connect_timeout=CONNECT_TIMEOUT, control_connection_timeout=CONNECT_TIMEOUT,
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(
            load_balancing_policy=RoundRobinPolicy(), request_timeout=request_timeout)},
        **settings,
    )
    if spec.protocol_version is not None:
        options["protocol_version"] = spec.protocol_version
    if spec.password:
        from cassandra.auth import PlainTextAuthProvider

        options["auth_provider"] = PlainTextAuthProvider("cassandra", spec.password)
    if spec.client_routes:
        options["client_routes_config"] = ClientRoutesConfig(
            proxies=[ClientRouteProxy(ROUTES_CONNECTION_ID, host)])
        options["contact_points"] = [host]  # the NLB's discovery port
    started = time.monotonic()
    try:
        cluster = Cluster(**options)
    except ImportError as exc:  # the driver refuses this reactor here (a package it needs is missing)
        result.unavailable = f"Cluster() refuses this reactor: {exc}"
        return result
    except Exception as exc:  # the driver refuses the configuration (client routes with check_hostname, say)
        result.error = describe(exc)
        result.error_chain = [describe(e) for e in error_chain(exc)]
        result.driver_refused = isinstance(exc, ValueError)
        result.seconds = time.monotonic() - started
        return result
    try:
        session = cluster.connect(wait_for_all_pools=spec.client_routes)
        result.connected = True
        result.connect_seconds = time.monotonic() - started
        if on_connected is not None:
            on_connected()
        insert = None
        if spec.large_write:
            insert = session.prepare("INSERT INTO ks.blobs (id, data) VALUES (?, ?)")
        value = os.urandom(spec.large_write)  # incompressible: LZ4 is negotiated, and zeros would shrink to nothing
        for _ in range(spec.aimed):
            result.aimed.append(_run_aimed(session))
        query_started = time.monotonic()
        # A query that fails is retried (ClientSpec.recover) until this, so the
        # cell's own budget check still sees a session that never came back.
        give_up = started + scenario.budget - 0.5
        for number in range(spec.queries):
            if spec.spacing and (number or result.aimed):  # the aimed queries are spaced from the rest too
                time.sleep(spec.spacing)
            while True:
                try:
                    if insert is not None:
                        session.execute(insert, (uuid.uuid4(), value))
                    else:
                        row = session.execute(QUERY).one()
                        if row is None or not row.release_version:
                            raise AssertionError(f"{QUERY} returned {row!r}")
                    break
                except Exception:
                    if not spec.recover or time.monotonic() >= give_up:
                        raise
                    result.retries += 1
                    time.sleep(0.2)
            result.queries_done += 1
        result.query_seconds = time.monotonic() - query_started
        if spec.queries and not spec.spacing and result.query_seconds > 0:
            result.rate = result.queries_done / result.query_seconds
        if spec.client_routes:
            _check_routed(cluster, host, port, scenario.node.nodes)
    except Exception as exc:  # the driver's error is the result; the runner judges it
        chain = error_chain(exc)
        result.error = describe(exc)
        result.error_chain = [describe(e) for e in chain]
        result.certificate_error = any(_is_certificate_error(e) for e in chain)
        result.timed_out = any(_is_timeout(e) for e in chain)
        result.authentication_failed = any(type(e).__name__ == "AuthenticationFailed" for e in chain)
    finally:
        result.seconds = time.monotonic() - started
        try:
            if before_shutdown is not None:
                before_shutdown(result)
        finally:
            cluster.shutdown()
    return result
