# The NLB and client routes (fakecql/cluster/nlb.py, routes.py,
# private_link.py) against scylla-driver: the seed's TestSslThroughNlb
# (scylladb/python-driver tests/integration/standard/test_client_routes.py)
# under every reactor scylla-driver 3.29.12 ships that runs here (asyncio,
# asyncore, libev), in-process and through `serve --tls --nodes 3 --nlb` in
# a separate process; then the proxy itself: TLS passes through (the client
# sees each node's own certificate), round-robin discovery, half-close,
# bounded buffers, a refusing node, shutdown of both directions.
#
# Rules: everything started is stopped (fixtures, context managers); every
# wait is bounded. The cluster is a CQLCluster(3, flavor="scylla") on
# 127.0.0.1-3, one port, each node with its own certificate naming its
# address (so a client can tell which node answered).
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import struct
import ssl
import threading
import time
import uuid
from typing import Any, Iterator, List, Tuple

import pytest
import trustme

from fakecql.cluster import NLB, ClientRoute, CQLCluster, PrivateLink
from fakecql.cluster.nlb import NLBError
from fakecql.reactors import load_reactor
from fakecql.tls import TLSConfig
from tests.integration.helpers import STOCK_ASYNCIO_TLS_BUG, stock_asyncio_has_tls_transport
from tests.serve_process import TIMEOUT, ServeProcess
from tests.waiting import eventually

pytestmark = pytest.mark.client_routes

CONNECT_TIMEOUT = 5.0
REACTORS = ["asyncio", "asyncore", "libev"]
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")
NLB_LINE = re.compile(r"^nlb listening on (?P<host>[0-9.]+):(?P<port>\d+) \(discovery\), connection id (?P<id>\S+)$")


def reactor_param(name: str) -> Any:
    """asyncio is a known third-party failure where the driver lacks the seed's fix (scylla-driver 3.29.10)."""
    if name == "asyncio" and not stock_asyncio_has_tls_transport():
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=STOCK_ASYNCIO_TLS_BUG))
    return name


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def three_nodes(ca: trustme.CA) -> Iterator[CQLCluster]:
    """Three TLS Scylla nodes, each with its own certificate from `ca` naming its address."""
    with CQLCluster(3, tls=TLSConfig.create(ca), flavor="scylla") as cluster:
        yield cluster
        cluster.check()


@pytest.fixture
def link(three_nodes: CQLCluster) -> Iterator[PrivateLink]:
    with PrivateLink(three_nodes) as private_link:
        yield private_link
        private_link.check()


@pytest.fixture
def node_certs(three_nodes: CQLCluster) -> List[trustme.LeafCert]:
    """Each node's own certificate, in node order."""
    certs = []
    for member in three_nodes.nodes:
        assert member.server.tls is not None
        certs.append(member.server.tls.server_cert)
    assert len({der_of(cert) for cert in certs}) == 3
    return certs


def client_context(ca: trustme.CA, check_hostname: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = check_hostname
    ca.configure_trust(context)
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still checked
    return context


def routes_cluster(host: str, port: int, connection_id: str, context: ssl.SSLContext, reactor: str) -> Any:
    from cassandra.client_routes import ClientRouteProxy, ClientRoutesConfig
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    return Cluster(
        contact_points=[host], port=port, ssl_context=context, connection_class=load_reactor(reactor),
        client_routes_config=ClientRoutesConfig(proxies=[ClientRouteProxy(connection_id, host)]),
        execution_profiles={EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())},
        connect_timeout=CONNECT_TIMEOUT, control_connection_timeout=CONNECT_TIMEOUT,
    )


def endpoints(cluster: Any) -> dict:
    """{node address: (host, port) its endpoint resolves to}, for every host of the driver's metadata."""
    from cassandra.connection import ClientRoutesEndPoint

    found = {}
    for host in cluster.metadata.all_hosts():
        assert isinstance(host.endpoint, ClientRoutesEndPoint), host.endpoint
        found[host.endpoint.address] = host.endpoint.resolve()
    return found


# -- TestSslThroughNlb ----------------------------------------------------------------------------

@pytest.mark.parametrize("reactor", [reactor_param(r) for r in REACTORS])
def test_ssl_without_hostname_verification_through_nlb(reactor: str, ca: trustme.CA, three_nodes: Any,
                                                       link: PrivateLink) -> None:
    nlb = link.nlb
    cluster = routes_cluster(nlb.host, nlb.discovery_port, link.connection_id, client_context(ca, False), reactor)
    try:
        session = cluster.connect(wait_for_all_pools=True)
        for _ in range(20):
            row = session.execute("SELECT release_version FROM system.local").one()
            assert row is not None and row.release_version
        assert endpoints(cluster) == {host: nlb.node_address(i) for i, host in enumerate(HOSTS)}
        pools = session.get_pool_state()
        assert len(pools) == 3
        for host, state in pools.items():
            index = HOSTS.index(host.endpoint.address)
            assert nlb.forwarded(index) >= state["open_count"] >= 1, (host, state, nlb.forwarded(index))
        # Nothing reached a node but through the NLB: the nodes hold exactly the connections it forwards.
        assert sum(member.server.connection_count() for member in three_nodes.nodes) == nlb.active_connections()
        assert sum(nlb.discovered(i) for i in range(3)) >= 1  # the control connection came in through discovery
    finally:
        cluster.shutdown()


@pytest.mark.parametrize("reactor", REACTORS)
def test_ssl_with_hostname_verification_raises_error(reactor: str, ca: trustme.CA) -> None:
    from cassandra.client_routes import ClientRouteProxy, ClientRoutesConfig
    from cassandra.cluster import Cluster

    with pytest.raises(ValueError) as info:
        Cluster(contact_points=["127.0.0.100"], ssl_context=client_context(ca, True),
                connection_class=load_reactor(reactor),
                client_routes_config=ClientRoutesConfig(proxies=[ClientRouteProxy("test-id", "127.0.0.100")]))
    assert "check_hostname" in str(info.value)


def test_hostname_check_fails_through_the_nlb_without_client_routes(ca: trustme.CA, link: PrivateLink) -> None:
    """The negative control behind the driver's refusal: the NLB's address is in no node's certificate."""
    with socket.create_connection(link.nlb.node_address(0), timeout=CONNECT_TIMEOUT) as raw:
        with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
            client_context(ca, True).wrap_socket(raw, server_hostname=link.nlb.host)


def test_route_change_event_moves_the_driver(ca: trustme.CA, three_nodes: Any, link: PrivateLink) -> None:
    """Posting routes fires CLIENT_ROUTES_CHANGE; the driver re-reads the changed pairs and follows them.
    (The driver puts the ClientRouteProxy's address in place of a route's: a second NLB shares the address.)"""
    nlb = link.nlb
    cluster = routes_cluster(nlb.host, nlb.discovery_port, link.connection_id, client_context(ca, False), "asyncore")
    with NLB([(m.host, m.port) for m in three_nodes.nodes], host=nlb.host) as second:
        try:
            cluster.connect(wait_for_all_pools=True)
            assert endpoints(cluster)[HOSTS[1]] == nlb.node_address(1)
            moved = ClientRoute(connection_id=link.connection_id, host_id=three_nodes.nodes[1].host_id,
                                address=second.host, port=second.node_port(1), tls_port=second.node_port(1))
            link.routes.post([moved])
            assert eventually(lambda: endpoints(cluster)[HOSTS[1]] == second.node_address(1), 10.0), endpoints(cluster)
            assert endpoints(cluster)[HOSTS[0]] == nlb.node_address(0)  # the others keep their routes
            link.routes.delete([(link.connection_id, three_nodes.nodes[2].host_id)])
            # no route left for node 3: the driver falls back to the node's own address
            assert eventually(lambda: endpoints(cluster)[HOSTS[2]] == (HOSTS[2], nlb.discovery_port), 10.0), \
                endpoints(cluster)
        finally:
            cluster.shutdown()
        second.check()


def test_the_nlb_follows_added_and_decommissioned_nodes(ca: trustme.CA, three_nodes: CQLCluster,
                                                       link: PrivateLink) -> None:
    """add_node: the new node gets an NLB port, its route (CLIENT_ROUTES_CHANGE) and the routes table, and
    the driver opens its pool through that port; decommission: its route goes, and the driver drops it."""
    nlb = link.nlb
    cluster = routes_cluster(nlb.host, nlb.discovery_port, link.connection_id, client_context(ca, False), "asyncore")
    try:
        session = cluster.connect(wait_for_all_pools=True)
        added = three_nodes.add_node()
        position = link.nlb_index(added)
        assert position == 3 and nlb.node_port(3) == link.node_port(added)
        assert [(r.address, r.port, r.tls_port) for r in link.routes.routes() if r.host_id == added.host_id] == \
            [(nlb.host, nlb.node_port(3), nlb.node_port(3))]
        assert len(added.node.row_sources[("system", "client_routes")]()) == 4  # the new node serves the table
        assert eventually(lambda: endpoints(cluster).get(added.host) == nlb.node_address(3), 10.0), endpoints(cluster)
        assert eventually(lambda: nlb.forwarded(3) >= 1, 10.0)  # its pool came in through its own NLB port
        assert peer_certificate(nlb.node_address(3), ca) == der_of(added.server.tls.server_cert)  # type: ignore
        for _ in range(8):
            assert session.execute("SELECT release_version FROM system.local").one() is not None
        three_nodes.decommission(added.index)
        assert [r.host_id for r in link.routes.routes()] == sorted((m.host_id for m in three_nodes.nodes), key=str)
        assert eventually(lambda: added.host not in endpoints(cluster), 10.0), endpoints(cluster)
        with pytest.raises(ValueError, match="not behind this NLB"):
            link.nlb_index(type("Stranger", (), {"host_id": uuid.uuid4(), "index": 9, "host": "127.0.0.9"})())
    finally:
        cluster.shutdown()


def test_a_restarted_node_keeps_its_routes_and_nlb_port(ca: trustme.CA, three_nodes: CQLCluster,
                                                        link: PrivateLink) -> None:
    """restart() keeps the node's Node (so its routes table) and its port: its NLB port reaches it again."""
    member = three_nodes.node(1)
    address = link.nlb.node_address(link.nlb_index(member))
    three_nodes.kill(1)
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT) as raw:
        raw.settimeout(CONNECT_TIMEOUT)
        assert read_to_eof(raw) == b""  # the node refuses: the NLB closes the client's connection
    assert eventually(lambda: link.nlb.refused(link.nlb_index(member)) == 1, CONNECT_TIMEOUT)
    three_nodes.restart(1)
    assert len(member.node.row_sources[("system", "client_routes")]()) == 3
    assert member.server.tls is not None
    assert peer_certificate(address, ca) == der_of(member.server.tls.server_cert)


# -- the same two halves as matrix scenarios (worker processes, this environment's driver) ----------

def test_both_halves_as_matrix_scenarios_under_every_reactor() -> None:
    from fakecql.matrix.envs import installed_env
    from fakecql.matrix.runner import run_matrix
    from fakecql.matrix.scenarios import scenario

    names = ["test_ssl_without_hostname_verification_through_nlb", "test_ssl_with_hostname_verification_raises_error"]
    run = run_matrix([installed_env()], [scenario(n) for n in names], reactors=REACTORS, jobs=2)
    cells = {(c.reactor, c.scenario): c for c in run.cells}
    assert set(cells) == {(r, n) for r in REACTORS for n in names}
    assert all(not c.deviates for c in cells.values()), [c for c in cells.values() if c.deviates]
    for (reactor, name), cell in cells.items():
        expected = "xfail" if reactor == "asyncio" and name == names[0] and not stock_asyncio_has_tls_transport() else "pass"
        assert cell.outcome == expected, cell


# -- through `serve --tls --nodes 3 --nlb`, a separate process ---------------------------------------

def test_serve_nlb_from_a_separate_process(tmp_path: Any) -> None:
    from cassandra.client_routes import ClientRouteProxy, ClientRoutesConfig
    from cassandra.cluster import Cluster

    with ServeProcess("--tls", "--nodes", "3", "--nlb", "--certs-dir", str(tmp_path)) as serve:
        deadline = time.monotonic() + TIMEOUT
        match = None
        while match is None:
            line = serve.out.next_line(deadline)
            assert line is not None, f"serve ended early: {serve.out.seen} {serve.err.seen}"
            match = NLB_LINE.match(line)
        host, port, connection_id = match["host"], int(match["port"]), match["id"]
        context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        context.check_hostname = False
        for reactor in REACTORS if stock_asyncio_has_tls_transport() else REACTORS[1:]:
            cluster = routes_cluster(host, port, connection_id, context, reactor)
            try:
                session = cluster.connect(wait_for_all_pools=True)
                for _ in range(20):
                    assert session.execute("SELECT release_version FROM system.local").one() is not None
                resolved = endpoints(cluster)
                assert sorted(resolved) == list(HOSTS)
                assert {h for h, _ in resolved.values()} == {host} and port not in {p for _, p in resolved.values()}
                assert len({p for _, p in resolved.values()}) == 3
            finally:
                cluster.shutdown()
        checking = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with pytest.raises(ValueError, match="check_hostname"):
            Cluster(contact_points=[host], port=port, ssl_context=checking,
                    client_routes_config=ClientRoutesConfig(proxies=[ClientRouteProxy(connection_id, host)]))
        serve.proc.send_signal(2)
        assert serve.proc.wait(TIMEOUT) == 0, serve.err.seen
        assert serve.out.rest()[-1] == "stopped"


def test_scylla_driver_decodes_the_client_routes_change_event() -> None:
    from cassandra.protocol import EventMessage
    from cassandra.protocol import ProtocolHandler

    from fakecql.protocol.messages import ClientRoutesChange, Event
    from tests.integration.test_driver_decodes_results import driver_decode

    event = Event(event=ClientRoutesChange(connection_ids=("c1", "c2"), host_ids=(str(uuid.uuid4()), "h2")))
    for version in (3, 4, 5):
        message = driver_decode(ProtocolHandler, event, version)
        assert isinstance(message, EventMessage) and message.event_type == "CLIENT_ROUTES_CHANGE"
        assert message.event_args == {"change_type": "UPDATE_NODES", "connection_ids": ["c1", "c2"],
                                      "host_ids": list(event.event.host_ids)}


# -- the proxy itself ---------------------------------------------------------------------------------

def peer_certificate(address: Tuple[str, int], ca: trustme.CA) -> bytes:
    with socket.create_connection(address, timeout=CONNECT_TIMEOUT) as raw:
        with client_context(ca, False).wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


def der_of(cert: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def test_tls_passes_through_to_each_nodes_own_certificate(ca: trustme.CA, node_certs: List[trustme.LeafCert],
                                                          link: PrivateLink) -> None:
    nlb = link.nlb
    for index, cert in enumerate(node_certs):
        assert peer_certificate(nlb.node_address(index), ca) == der_of(cert)
        assert nlb.forwarded(index) == 1


def test_discovery_port_is_round_robin(ca: trustme.CA, node_certs: List[trustme.LeafCert],
                                       link: PrivateLink) -> None:
    nlb = link.nlb
    seen = [peer_certificate(nlb.address, ca) for _ in range(4)]
    assert seen == [der_of(node_certs[i]) for i in (0, 1, 2, 0)]
    assert [nlb.discovered(i) for i in range(3)] == [2, 1, 1]
    assert [nlb.forwarded(i) for i in range(3)] == [0, 0, 0]


class Target:
    """A plain TCP node stand-in on loopback: each connection is handled by `handler(conn)` in a thread."""

    def __init__(self, handler: Any) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(TIMEOUT)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.errors: List[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.sock.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                self.handler(conn)
        except BaseException as exc:  # read by close()
            self.errors.append(exc)

    def close(self) -> None:
        self.thread.join(TIMEOUT)
        self.sock.close()
        assert not self.thread.is_alive(), "the target's handler did not end"
        if self.errors:
            raise self.errors[0]


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_half_close_passes_through() -> None:
    """The client shuts its sending side; the node reads to EOF, then still answers on the open direction."""
    def answer_after_eof(conn: socket.socket) -> None:
        received = read_to_eof(conn)
        conn.sendall(b"got %d bytes" % len(received))

    target = Target(answer_after_eof)
    try:
        with NLB([("127.0.0.1", target.port)]) as nlb:
            with socket.create_connection(nlb.node_address(0), timeout=TIMEOUT) as client:
                client.sendall(b"x" * 100_000)
                client.shutdown(socket.SHUT_WR)
                assert read_to_eof(client) == b"got 100000 bytes"
            assert eventually(lambda: nlb.active_connections() == 0, TIMEOUT)
            nlb.check()
    finally:
        target.close()


def test_buffers_are_bounded_and_bytes_arrive_in_order() -> None:
    """A node that does not read: the client can push only about the socket buffers and the NLB's limit;
    once the node reads, every byte arrives, in order."""
    started = threading.Event()
    digest: List[str] = []

    def slow_reader(conn: socket.socket) -> None:
        assert started.wait(TIMEOUT)
        digest.append(hashlib.sha256(read_to_eof(conn)).hexdigest())

    target = Target(slow_reader)
    payload = os.urandom(64 * 1024 * 1024)
    try:
        with NLB([("127.0.0.1", target.port)], buffer_limit=64 * 1024) as nlb:
            with socket.create_connection(nlb.node_address(0), timeout=TIMEOUT) as client:
                client.settimeout(1.0)
                sent = 0
                try:
                    while sent < len(payload):
                        sent += client.send(payload[sent:sent + 1024 * 1024])
                except socket.timeout:  # the NLB stopped reading: back-pressure reached the client
                    pass
                assert sent < 48 * 1024 * 1024, f"the NLB took {sent} bytes from a client whose node reads nothing"
                started.set()
                client.settimeout(TIMEOUT)
                client.sendall(payload[sent:])
                client.shutdown(socket.SHUT_WR)
                assert read_to_eof(client) == b""
        nlb.check()
    finally:
        started.set()
        target.close()
    assert digest == [hashlib.sha256(payload).hexdigest()]


def test_a_refusing_node_closes_the_clients_connection() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed_port = spare.getsockname()[1]  # nothing listens there
    with NLB([("127.0.0.1", closed_port)]) as nlb:
        with socket.create_connection(nlb.node_address(0), timeout=TIMEOUT) as client:
            assert read_to_eof(client) == b""
        assert nlb.refused(0) == 1 and nlb.forwarded(0) == 0
        assert eventually(lambda: nlb.active_connections() == 0, TIMEOUT)
        nlb.check()


def test_discovery_skips_a_refusing_node() -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        closed_port = spare.getsockname()[1]

    def echo(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100))

    target = Target(echo)
    try:
        with NLB([("127.0.0.1", closed_port), ("127.0.0.1", target.port)]) as nlb:
            with socket.create_connection(nlb.address, timeout=TIMEOUT) as client:
                client.sendall(b"ping")
                assert client.recv(100) == b"ping"
            assert (nlb.refused(0), nlb.discovered(1)) == (1, 1)
            nlb.check()
    finally:
        target.close()


def test_add_target_listens_at_once_on_a_running_nlb() -> None:
    def echo(conn: socket.socket) -> None:
        conn.sendall(conn.recv(100))

    first, second = Target(echo), Target(echo)
    try:
        with NLB([("127.0.0.1", first.port)]) as nlb:
            assert nlb.add_target(("127.0.0.1", second.port)) == 1
            for index in (1, 0):  # each Target answers one connection
                with socket.create_connection(nlb.node_address(index), timeout=TIMEOUT) as client:
                    client.sendall(b"ping")
                    assert client.recv(100) == b"ping"
            assert (nlb.forwarded(0), nlb.forwarded(1)) == (1, 1)
            with pytest.raises(ValueError, match="port in 1..65535"):
                nlb.add_target(("127.0.0.1", 0))
            assert len(nlb.targets) == len(nlb.node_ports) == 2
            nlb.check()
    finally:
        first.close()
        second.close()


def test_stop_closes_both_directions() -> None:
    node_saw_eof = threading.Event()

    def wait_for_eof(conn: socket.socket) -> None:
        conn.sendall(b"hello")
        if read_to_eof(conn) == b"":
            node_saw_eof.set()

    target = Target(wait_for_eof)
    try:
        nlb = NLB([("127.0.0.1", target.port)]).start()
        try:
            client = socket.create_connection(nlb.node_address(0), timeout=TIMEOUT)
            with client:
                assert client.recv(5) == b"hello"
                assert nlb.active_connections() == 1
                nlb.stop()
                assert read_to_eof(client) == b""  # the client's direction closed
            assert node_saw_eof.wait(TIMEOUT)  # and the node's
            assert nlb.active_connections() == 0 and not nlb.running
            with pytest.raises(OSError):
                socket.create_connection(nlb.node_address(0), timeout=TIMEOUT).close()
        finally:
            nlb.stop()
        nlb.check()
    finally:
        target.close()


def test_a_reset_passes_through_as_a_reset() -> None:
    def reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST

    target = Target(reset)
    try:
        with NLB([("127.0.0.1", target.port)]) as nlb:
            with socket.create_connection(nlb.node_address(0), timeout=TIMEOUT) as client:
                client.sendall(b"hi")
                with pytest.raises(ConnectionResetError):
                    read_to_eof(client)
            assert eventually(lambda: nlb.active_connections() == 0, TIMEOUT)
            nlb.check()
    finally:
        target.close()


def test_an_exception_inside_the_nlb_surfaces_in_check(monkeypatch: Any) -> None:
    """The founding bug of this project was an exception nobody read: the NLB keeps every one."""
    from fakecql.cluster import nlb as nlb_module

    def broken(self: Any, side: Any, data: bytes) -> None:
        raise RuntimeError("forwarding broke")

    def echo(conn: socket.socket) -> None:
        try:
            conn.sendall(conn.recv(10))
        except ConnectionResetError:  # the NLB resets a connection it failed on
            pass

    target = Target(echo)
    try:
        with NLB([("127.0.0.1", target.port)]) as nlb:
            monkeypatch.setattr(nlb_module._Pipe, "forward", broken)
            with socket.create_connection(nlb.node_address(0), timeout=TIMEOUT) as client:
                client.sendall(b"ping")
                with contextlib.suppress(ConnectionResetError):
                    read_to_eof(client)  # the failing connection is closed
            assert eventually(lambda: bool(nlb.errors), TIMEOUT)
            with pytest.raises(NLBError, match="RuntimeError: forwarding broke"):
                nlb.check()
    finally:
        target.close()


BAD_NLB = [
    ("no-targets", lambda: NLB([]), ValueError, "at least one target"),
    ("bad-host", lambda: NLB([("127.0.0.1", 9042)], host="nlb.local"), ValueError, "must be an IP address"),
    ("bad-port", lambda: NLB([("127.0.0.1", 0)]), ValueError, "port in 1..65535"),
    ("ports-count", lambda: NLB([("127.0.0.1", 9042)], node_ports=[1, 2]), ValueError, "2 ports for 1 targets"),
    ("small-buffer", lambda: NLB([("127.0.0.1", 9042)], buffer_limit=10), ValueError, "at least 1024"),
    ("routes-count", lambda: NLB([("127.0.0.1", 9042)]).client_routes("c", [uuid.uuid4(), uuid.uuid4()]),
     ValueError, "2 host ids for 1 NLB targets"),
    ("node-index", lambda: NLB([("127.0.0.1", 9042)]).node_port(1), IndexError, "no NLB target 1"),
]


@pytest.mark.parametrize("build, kind, words", [r[1:] for r in BAD_NLB], ids=[r[0] for r in BAD_NLB])
def test_misuse_is_refused(build: Any, kind: type, words: str) -> None:
    with pytest.raises(kind, match=re.escape(words)):
        build()


def test_busy_port_names_the_address() -> None:
    with socket.create_server(("127.0.0.100", 0)) as busy:
        port = busy.getsockname()[1]
        nlb = NLB([("127.0.0.1", 9042)], discovery_port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.100:{port} \\(discovery port\\)"):
            nlb.start()
        assert not nlb.running
