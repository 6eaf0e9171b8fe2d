# pytest fixtures for testing CQL clients against a fake node. Fixtures only.
#
# Strategy (pytest-httpserver's shape): session-scoped configuration fixtures
# a project may override (cql_ca, cql_server_options), a factory fixture
# that builds any node and stops every node it built, and ready-made nodes
# on top of it. At teardown the factory fails the test if a node saw
# something the test did not expect (pytest_httpx's lesson: check by
# default), unless the test is marked `fakecql_allow_unexpected`; and if a
# priming's expectation (Priming.expect) was not met, marker or not.
#
# Safe under pytest-xdist: every node listens on port 0 of loopback and
# nothing is shared between workers but the CA object in each process.
#
# FAKECQL_UVLOOP=1 in the environment makes the factories start every node
# on uvloop (CQLServer(uvloop=True)) unless the test passes uvloop= itself;
# a run that asks for it without uvloop installed stops at once, saying so.
from __future__ import annotations

import os
import ssl
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Union

import pytest
import trustme

from .cluster import CQLCluster
from .loops import require_uvloop
from .server import CQLServer, UnexpectedActivityError
from .tls import ClientAuth, TLSConfig, client_context

MARKER = "fakecql_allow_unexpected"
UVLOOP_VARIABLE = "FAKECQL_UVLOOP"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: do not fail the test when a fakecql node saw unexpected "
        "queries, malformed frames or server exceptions",
    )
    if uvloop_requested():
        try:
            require_uvloop()
        except ImportError as exc:
            raise pytest.UsageError(f"{UVLOOP_VARIABLE}=1: {exc}") from None


def uvloop_requested() -> bool:
    """Whether FAKECQL_UVLOOP asks for nodes on uvloop ("1"; "0" or unset: no; anything else is refused)."""
    value = os.environ.get(UVLOOP_VARIABLE, "").strip()
    if value not in ("", "0", "1"):
        raise pytest.UsageError(f"{UVLOOP_VARIABLE} must be 1 (nodes on uvloop) or 0, got {value!r}")
    return value == "1"


@pytest.fixture(scope="session")
def cql_ca() -> trustme.CA:
    """The certificate authority that signs fakecql nodes' and clients' certificates."""
    return trustme.CA()


@pytest.fixture(scope="session")
def cql_server_options() -> Dict[str, Any]:
    """Default keyword arguments for every node the factory builds; override to change them."""
    return {}


@pytest.fixture
def cql_server_factory(
    request: pytest.FixtureRequest, cql_ca: trustme.CA, cql_server_options: Dict[str, Any]
) -> Iterator[Callable[..., CQLServer]]:
    """Build and start fakecql nodes: factory(tls=True, mtls=False, **CQLServer options).

    `tls` is True (a TLS node with a certificate from cql_ca), False (plain
    TCP) or a TLSConfig; `mtls=True` requires a client certificate signed by
    cql_ca. Every node is stopped at teardown, then checked. FAKECQL_UVLOOP=1
    starts them on uvloop.
    """
    servers: List[CQLServer] = []

    def factory(*, tls: Union[bool, TLSConfig] = True, mtls: bool = False, **options: Any) -> CQLServer:
        settings = {"uvloop": uvloop_requested(), **cql_server_options, **options}
        server = CQLServer(tls=_tls_config(cql_ca, tls, mtls, settings), **settings)
        server.start()
        servers.append(server)
        return server

    yield factory

    _stop_all(servers)
    reports = []
    if request.node.get_closest_marker(MARKER) is None:
        for server in servers:
            incidents = server.activity.incidents()
            if incidents or server.activity.incidents_dropped:
                reports.append(server.describe_incidents(incidents))
    # Expectations the test made itself fail it whatever the marker says; a book
    # shared by several nodes is listed once.
    books_seen: List[int] = []
    for server in servers:
        unmet = []
        for book in (server.node.priming_book,) + server.node.priming_sources():
            if id(book) not in books_seen:
                books_seen.append(id(book))
                unmet.extend(book.unmet())
        if unmet:
            reports.append(server.describe_unmet(unmet))
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


@pytest.fixture
def cql_cluster_factory(
    request: pytest.FixtureRequest, cql_ca: trustme.CA, cql_server_options: Dict[str, Any]
) -> Iterator[Callable[..., CQLCluster]]:
    """Build and start fakecql clusters: factory(nodes=3, tls=True, mtls=False, **CQLCluster options).

    `nodes` is a number of nodes (one data center) or nodes per data center
    ([2, 1]: dc1 and dc2). Each node of a TLS cluster has a certificate from
    cql_ca naming its address. Every cluster is stopped at teardown, then
    every node checked, as cql_server_factory does.
    """
    clusters: List[CQLCluster] = []

    def factory(nodes: Union[int, Sequence[int]] = 3, *, tls: Union[bool, TLSConfig] = True,
                mtls: bool = False, **options: Any) -> CQLCluster:
        settings = {"uvloop": uvloop_requested(), **cql_server_options, **options}
        config = _tls_config(cql_ca, tls, mtls, settings)
        cluster = CQLCluster(nodes, tls=config, **settings)
        cluster.start()
        clusters.append(cluster)
        return cluster

    yield factory

    _stop_all(clusters)
    reports = []
    if request.node.get_closest_marker(MARKER) is None:
        for cluster in clusters:
            try:
                cluster.check()  # incidents and unmet expectations
            except UnexpectedActivityError as exc:
                reports.append(str(exc))
    else:  # expectations the test made itself fail it whatever the marker says
        reports.extend(c.describe_unmet(c.unmet_expectations()) for c in clusters if c.unmet_expectations())
    if reports:
        pytest.fail("\n\n".join(reports), pytrace=False)


@pytest.fixture
def cql_cluster(cql_cluster_factory: Callable[..., CQLCluster]) -> CQLCluster:
    """A running cluster of 3 TLS nodes in one data center (dc1), on 127.0.0.1-3 and one port."""
    return cql_cluster_factory(3)


def _stop_all(started: Sequence[Union[CQLServer, CQLCluster]]) -> None:
    """Stop every node or cluster a test started, then fail the test naming any
    that would not stop or left something behind (all are stopped first)."""
    errors = []
    for each in started:
        try:
            each.stop()
        except Exception as exc:  # keep stopping the others; report all
            errors.append(f"stopping {each!r} failed: {exc!r}")
            continue
        errors.extend(f"{each!r} left behind: {what}" for what in each.leftovers())
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


def _tls_config(ca: trustme.CA, tls: Union[bool, TLSConfig], mtls: bool, settings: Dict[str, Any]) -> Optional[TLSConfig]:
    if isinstance(tls, TLSConfig):
        return tls
    if tls:
        return TLSConfig.create(ca, client_auth=ClientAuth.REQUIRED if mtls else ClientAuth.NONE,
                                **settings.pop("tls_options", {}))
    if mtls:
        raise ValueError("mtls=True needs tls=True (or a TLSConfig)")
    return None


@pytest.fixture
def cql_server(cql_server_factory: Callable[..., CQLServer]) -> CQLServer:
    """A running TLS node (TLS 1.2 and 1.3) on 127.0.0.1 with a certificate from cql_ca."""
    return cql_server_factory()


@pytest.fixture
def cql_plain_server(cql_server_factory: Callable[..., CQLServer]) -> CQLServer:
    """A running node speaking plain TCP on 127.0.0.1."""
    return cql_server_factory(tls=False)


@pytest.fixture
def cql_ssl_context(cql_ca: trustme.CA) -> ssl.SSLContext:
    """A client SSLContext that trusts cql_ca and verifies the node's name (127.0.0.1, ::1, localhost)."""
    return client_context(cql_ca, check_hostname=True)


@pytest.fixture
def cql_client_cert(cql_ca: trustme.CA) -> trustme.LeafCert:
    """A client certificate signed by cql_ca, for nodes built with mtls=True."""
    return cql_ca.issue_cert("fakecql-client", common_name="fakecql-client")
