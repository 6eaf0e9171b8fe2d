# uvloop for the node and the transport reactor: CQLServer(uvloop=True),
# `serve --uvloop`, the plugin's FAKECQL_UVLOOP=1, and cqltransport's
# UvloopTransportConnection ("transport-uvloop") really run uvloop's loop
# (checked from inside the loop: asyncio.get_running_loop() is a
# uvloop.Loop), each beside its asyncio control; and asking for uvloop where
# it is not installed (simulated: sys.modules["uvloop"] = None makes its
# import fail) is a clear error naming the package, at once.
#
# uvloop is in the `test` extra, so these run in every environment; tox's
# uvloop environment runs the node's and the reactor's own tests on uvloop
# (FAKECQL_UVLOOP=1, tests/conftest.py).
from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any, Dict, Iterator, List

import pytest
import uvloop

import fakecql.cli as cli
from fakecql import CQLServer, client_context
from fakecql.cluster import CQLCluster
from fakecql.loops import UVLOOP_MISSING
from fakecql.protocol.messages import Query, RowsResult
from fakecql.pytest_plugin import uvloop_requested
from fakecql.reactors import REACTORS, load_reactor

from ..rawcql import RawClient
from .test_cli import assert_supported, options_exchange, serve_in_process

WAIT = 10.0


def loop_of(server: CQLServer) -> asyncio.AbstractEventLoop:
    """The loop the node's callbacks run on, as seen from inside it."""
    async def running() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert server._loop is not None
    return asyncio.run_coroutine_threadsafe(running(), server._loop).result(WAIT)


def release_version(address: Any, **tls: Any) -> str:
    with RawClient(address, **tls) as client:
        client.start()
        rows = client.request(Query(query="SELECT release_version FROM system.local"))
    assert isinstance(rows, RowsResult), rows
    value = rows.rows[0][0]
    assert value is not None
    return value.decode()


@pytest.fixture
def no_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process as if uvloop were not installed: `import uvloop` raises ImportError."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ImportError):
        import uvloop  # noqa: F401  (the simulation works)


# -- the node ------------------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_node_asked_for_uvloop_runs_on_uvloop(tls, cql_ca):
    from fakecql import TLSConfig

    config = TLSConfig.create(cql_ca) if tls else None
    server = CQLServer(uvloop=True, tls=config)
    assert server.uvloop
    with server:
        assert isinstance(loop_of(server), uvloop.Loop)
        extra = {"ssl_context": client_context(cql_ca)} if tls else {}
        assert release_version(server.address, **extra) == "4.0.11"
    assert server.leftovers() == []
    assert server.activity.incidents() == []


def test_a_node_runs_on_asyncios_loop_by_default():
    with CQLServer() as server:
        loop = loop_of(server)
        assert not isinstance(loop, uvloop.Loop)
        assert isinstance(loop, asyncio.BaseEventLoop)
    assert server.leftovers() == []


def test_every_node_of_a_cluster_runs_on_uvloop():
    cluster = CQLCluster(2, uvloop=True, status_delay=0)
    with cluster:
        assert [isinstance(loop_of(n.server), uvloop.Loop) for n in cluster.nodes] == [True, True]
        assert release_version(cluster.nodes[1].address) == "4.0.11"
    assert cluster.leftovers() == []


def test_async_with_on_a_uvloop_caller_runs_there():
    async def serve() -> str:
        async with CQLServer(uvloop=True) as server:
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
            return await asyncio.get_running_loop().run_in_executor(None, release_version, server.address)

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(serve()) == "4.0.11"
    finally:
        loop.close()


def test_async_with_refuses_uvloop_on_an_asyncio_caller():
    """uvloop=True asked for uvloop: the caller's asyncio loop is refused, not used quietly."""
    async def serve() -> None:
        async with CQLServer(uvloop=True):
            pass  # pragma: no cover - refused before listening

    with pytest.raises(RuntimeError, match=r"uvloop=True, but `async with` runs the node on the caller's loop"):
        asyncio.run(serve())


def test_a_node_asked_for_uvloop_without_it_fails_at_construction(no_uvloop):
    with pytest.raises(ImportError) as raised:
        CQLServer(uvloop=True)
    assert str(raised.value) == "uvloop was asked for but is not installed: pip install uvloop" == UVLOOP_MISSING
    with pytest.raises(ImportError, match="pip install uvloop"):
        CQLCluster(2, uvloop=True)
    CQLServer()  # without uvloop nothing needs it


# -- serve --uvloop ------------------------------------------------------------------------

def test_serve_uvloop_serves_on_uvloop(capsys, monkeypatch):
    def client(server: CQLServer) -> object:
        return loop_of(server), options_exchange("127.0.0.1", server.port)

    served = serve_in_process(["--uvloop"], client, capsys, monkeypatch)
    assert served.err == ""
    loop, answer = served.answer  # type: ignore[misc]
    assert isinstance(loop, uvloop.Loop)
    assert_supported(answer)
    assert served.server.uvloop


def test_serve_without_uvloop_serves_on_asyncio(capsys, monkeypatch):
    served = serve_in_process([], lambda server: loop_of(server), capsys, monkeypatch)
    assert not isinstance(served.answer, uvloop.Loop) and isinstance(served.answer, asyncio.BaseEventLoop)
    assert not served.server.uvloop


def test_serve_nodes_uvloop_gives_every_node_uvloop(capsys, monkeypatch):
    made: List[Dict[str, Any]] = []

    class RecordingCluster(CQLCluster):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            made.append(kwargs)
            super().__init__(*args, **kwargs)

        def start(self, timeout: float = 10.0) -> CQLCluster:
            raise OSError(98, "refused by the test")  # serve reports it (status 2): no need to serve

    monkeypatch.setattr("fakecql.cluster.CQLCluster", RecordingCluster)
    assert cli.main(["serve", "--port", "0", "--nodes", "2", "--uvloop"]) == 2
    assert [kwargs["uvloop"] for kwargs in made] == [True]
    assert "refused by the test" in capsys.readouterr().err


@pytest.mark.parametrize("extra", [[], ["--nodes", "2"], ["--tls", "--nodes", "2", "--nlb"]])
def test_serve_uvloop_without_uvloop_is_one_line_and_status_2(extra, no_uvloop, capsys):
    assert cli.main(["serve", "--port", "0", "--uvloop", *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["fakecql serve: error: uvloop was asked for but is not installed: pip install uvloop"]


def test_serve_uvloop_without_uvloop_by_subprocess():
    """As a user sees it: a Python where `import uvloop` fails (sys.modules entry set before fakecql runs)."""
    code = "import sys; sys.modules['uvloop'] = None; from fakecql.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "serve", "--port", "0", "--uvloop"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "fakecql serve: error: uvloop was asked for but is not installed: pip install uvloop"]


# -- the pytest plugin: FAKECQL_UVLOOP ------------------------------------------------------

@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


PLUGIN_TEST = """
    import asyncio

    def loop_type(server):
        async def running():
            return type(asyncio.get_running_loop()).__module__
        return asyncio.run_coroutine_threadsafe(running(), server._loop).result(10)

    def test_nodes(cql_server, cql_server_factory, cql_cluster_factory):
        print()
        print("server", loop_type(cql_server), cql_server.uvloop)
        print("explicit", loop_type(cql_server_factory(tls=False, uvloop=False)))
        cluster = cql_cluster_factory(2, tls=False)
        print("cluster", sorted({loop_type(n.server) for n in cluster.nodes}))
"""


@pytest.mark.parametrize("value, loops", [
    ("1", ["server uvloop True", "explicit asyncio.unix_events", "cluster ['uvloop']"]),
    ("0", ["server asyncio.unix_events False", "explicit asyncio.unix_events", "cluster ['asyncio.unix_events']"]),
    (None, ["server asyncio.unix_events False", "explicit asyncio.unix_events", "cluster ['asyncio.unix_events']"]),
])
def test_fakecql_uvloop_makes_the_fixtures_start_nodes_on_uvloop(value, loops, suite, monkeypatch):
    """FAKECQL_UVLOOP=1: the factories' nodes run on uvloop, unless a test says uvloop=False itself."""
    if value is None:
        monkeypatch.delenv("FAKECQL_UVLOOP", raising=False)
    else:
        monkeypatch.setenv("FAKECQL_UVLOOP", value)
    suite.makepyfile(PLUGIN_TEST)
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    printed = [line for line in result.outlines if line.startswith(("server ", "explicit ", "cluster "))]
    assert printed == loops, result.outlines


@pytest.mark.parametrize("value, message", [
    ("yes", "FAKECQL_UVLOOP must be 1 (nodes on uvloop) or 0, got 'yes'"),
])
def test_fakecql_uvloop_refuses_other_values(value, message, suite, monkeypatch):
    monkeypatch.setenv("FAKECQL_UVLOOP", value)
    suite.makepyfile("def test_nothing():\n    pass\n")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_fakecql_uvloop_without_uvloop_stops_the_run(suite, monkeypatch):
    monkeypatch.setenv("FAKECQL_UVLOOP", "1")
    suite.makeconftest("import sys\nsys.modules['uvloop'] = None\n")
    suite.makepyfile("def test_nothing():\n    pass\n")
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "FAKECQL_UVLOOP=1: uvloop was asked for but is not installed: pip install uvloop" in result.stderr.str()


def test_uvloop_requested_reads_the_variable(monkeypatch):
    monkeypatch.setenv("FAKECQL_UVLOOP", "1")
    assert uvloop_requested()
    monkeypatch.setenv("FAKECQL_UVLOOP", "0")
    assert not uvloop_requested()


# -- the transport reactor -----------------------------------------------------------------

@pytest.fixture
def driver_cluster() -> Iterator[List[Any]]:
    clusters: List[Any] = []
    yield clusters
    for cluster in clusters:
        cluster.shutdown()


def reactor_loop(connection_class: Any) -> asyncio.AbstractEventLoop:
    async def running() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    return asyncio.run_coroutine_threadsafe(running(), connection_class._loop).result(WAIT)


def test_transport_uvloop_connects_and_queries_on_uvloop(driver_cluster, cql_server, cql_ca):
    from cassandra.cluster import Cluster

    from cqltransport import AsyncioTransportConnection, UvloopTransportConnection

    AsyncioTransportConnection.initialize_reactor()  # the asyncio reactor's loop first: never shared
    connection_class = load_reactor("transport-uvloop")
    assert connection_class is UvloopTransportConnection
    assert issubclass(connection_class, AsyncioTransportConnection)
    cluster = Cluster([cql_server.host], port=cql_server.port, connection_class=connection_class,
                      ssl_context=client_context(cql_ca, check_hostname=True), connect_timeout=5)
    driver_cluster.append(cluster)
    session = cluster.connect()
    assert session.execute("SELECT release_version FROM system.local").one().release_version == "4.0.11"
    assert isinstance(reactor_loop(UvloopTransportConnection), uvloop.Loop)
    # A loop thread of its own, beside the asyncio reactor's (uvloop's only under FAKECQL_UVLOOP=1).
    assert UvloopTransportConnection._loop_thread is not AsyncioTransportConnection._loop_thread
    assert isinstance(reactor_loop(AsyncioTransportConnection), uvloop.Loop) == uvloop_requested()


def test_transport_runs_on_asyncio_unless_the_suite_asks_for_uvloop(driver_cluster, cql_plain_server):
    """The control: the stock transport reactor's loop is asyncio's (uvloop's only under FAKECQL_UVLOOP=1,
    where tests/conftest.py gives it uvloop's factory)."""
    from cassandra.cluster import Cluster

    from cqltransport import AsyncioTransportConnection

    cluster = Cluster([cql_plain_server.host], port=cql_plain_server.port, connect_timeout=5,
                      connection_class=load_reactor("transport"))
    driver_cluster.append(cluster)
    assert cluster.connect().execute("SELECT release_version FROM system.local").one()
    assert isinstance(reactor_loop(AsyncioTransportConnection), uvloop.Loop) == uvloop_requested()


def test_transport_uvloop_without_uvloop_names_the_package(no_uvloop):
    from cqltransport.loops import uvloop_loop

    with pytest.raises(ImportError, match=r"^reactor transport-uvloop \(cqltransport.UvloopTransportConnection\) "
                                          r"cannot be used here: uvloop is not installed: pip install uvloop$"):
        load_reactor("transport-uvloop")
    with pytest.raises(ImportError, match="^uvloop was asked for but is not installed: pip install uvloop$"):
        uvloop_loop()
    load_reactor("transport")  # the asyncio one needs nothing more

