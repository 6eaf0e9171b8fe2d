# The server shell of a sharded node against a bare client: the extra
# shard-aware port, the shard each connection gets (its source port's on the
# shard-aware port, round-robin on the ordinary one), the SUPPORTED that says
# so, the shard in the activity log, and the checks on the options.
from __future__ import annotations

import socket
from typing import Iterator, List, Optional

import pytest

from fakecql import CQLServer, ConnectionOpened, FrameReceived, TLSConfig, client_context
from fakecql.protocol.messages import Options, Query, RowsResult, Supported

from ..rawcql import RawClient

NR_SHARDS = 4


def _bound_sockets(count: int) -> List[socket.socket]:
    """`count` sockets bound to consecutive source ports of 127.0.0.1 (one per shard of `count`)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1] // count * count + count
        probe.close()
        if base + count > 65535:
            continue
        bound: List[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                bound.append(sock)
                sock.bind(("127.0.0.1", port))
            return bound
        except OSError:  # one of them is in use: try elsewhere
            for sock in bound:
                sock.close()
    raise RuntimeError(f"found no {count} consecutive free ports on 127.0.0.1")


@pytest.fixture
def sockets() -> Iterator[List[socket.socket]]:
    made = _bound_sockets(NR_SHARDS)
    yield made
    for sock in made:
        sock.close()


def _supported(client: RawClient) -> Supported:
    answer = client.request(Options())
    assert isinstance(answer, Supported)
    return answer


def _client(server: CQLServer, port: int, sock: Optional[socket.socket] = None, ca=None) -> RawClient:  # type: ignore[no-untyped-def]
    if sock is not None:
        sock.settimeout(5)
        sock.connect((server.host, port))
    return RawClient((server.host, port), sock=sock, ssl_context=client_context(ca) if ca is not None else None)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_shard_aware_port_serves_the_shard_of_the_source_port(tls, cql_server_factory, cql_ca, sockets):  # type: ignore[no-untyped-def]
    server = cql_server_factory(tls=tls, shards=NR_SHARDS)
    assert server.shard_aware_port not in (None, 0, server.port)
    port_key = "SCYLLA_SHARD_AWARE_PORT_SSL" if tls else "SCYLLA_SHARD_AWARE_PORT"
    seen = {}
    source_ports = [sock.getsockname()[1] for sock in sockets]
    for sock, source_port in zip(sockets, source_ports):
        with _client(server, server.shard_aware_port, sock, cql_ca if tls else None) as client:
            options = _supported(client).options
        seen[source_port % NR_SHARDS] = options["SCYLLA_SHARD"]
        assert options["SCYLLA_NR_SHARDS"] == ["4"]
        assert options[port_key] == [str(server.shard_aware_port)]
        assert ("SCYLLA_SHARD_AWARE_PORT" in options) != ("SCYLLA_SHARD_AWARE_PORT_SSL" in options)
        assert options["SCYLLA_PARTITIONER"] == ["org.apache.cassandra.dht.Murmur3Partitioner"]
        assert options["SCYLLA_SHARDING_ALGORITHM"] == ["biased-token-round-robin"]
        assert options["SCYLLA_SHARDING_IGNORE_MSB"] == ["12"]
        assert options["CQL_VERSION"] and options["COMPRESSION"]  # the node's own options are still there
    assert seen == {shard: [str(shard)] for shard in range(NR_SHARDS)}
    opened = server.activity.of_type(ConnectionOpened)
    assert [(e.peer[1], e.shard, e.shard_aware) for e in opened] == \
        [(port, port % NR_SHARDS, True) for port in source_ports]


def test_ordinary_port_assigns_shards_in_turn(cql_server_factory):  # type: ignore[no-untyped-def]
    server = cql_server_factory(tls=False, shards=3)
    shards = []
    for _ in range(5):
        with _client(server, server.port, socket.create_connection(server.address, timeout=5)) as client:
            shards.append(_supported(client).options["SCYLLA_SHARD"])
    assert shards == [["0"], ["1"], ["2"], ["0"], ["1"]]
    assert [(e.shard, e.shard_aware) for e in server.activity.of_type(ConnectionOpened)] == \
        [(0, False), (1, False), (2, False), (0, False), (1, False)]


def test_requests_are_logged_with_their_shard(cql_server_factory, sockets):  # type: ignore[no-untyped-def]
    server = cql_server_factory(tls=False, shards=NR_SHARDS)
    sock = sockets[2]
    shard = sock.getsockname()[1] % NR_SHARDS
    with _client(server, server.shard_aware_port, sock) as client:
        client.start()
        rows = client.request(Query(query="SELECT release_version FROM system.local"), stream=3)
    assert isinstance(rows, RowsResult)
    frames = server.activity.of_type(FrameReceived)
    assert [(f.opcode, f.shard) for f in frames] == [("OPTIONS", shard), ("STARTUP", shard), ("QUERY", shard)]


def test_node_without_shards_says_nothing_of_shards(cql_server_factory):  # type: ignore[no-untyped-def]
    server = cql_server_factory(tls=False)
    assert server.sharding is None and server.shard_aware_port is None
    with _client(server, server.port, socket.create_connection(server.address, timeout=5)) as client:
        options = _supported(client).options
    assert not [key for key in options if key.startswith("SCYLLA")]
    assert [(e.shard, e.shard_aware) for e in server.activity.of_type(ConnectionOpened)] == [(None, False)]
    assert {f.shard for f in server.activity.of_type(FrameReceived)} == {None}


def test_shards_zero_is_a_node_without_shards() -> None:
    assert CQLServer(shards=0).sharding is None


def test_fixed_shard_aware_port_and_restart_keeps_it(cql_ca) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        wanted = probe.getsockname()[1]
    server = CQLServer(tls=TLSConfig.create(cql_ca), shards=2, shard_aware_port=wanted)
    with server:
        assert server.shard_aware_port == wanted
        first_port = server.port
        with _client(server, wanted, socket.create_connection((server.host, wanted), timeout=5), cql_ca) as client:
            assert _supported(client).options["SCYLLA_SHARD_AWARE_PORT_SSL"] == [str(wanted)]
    with server:  # a restarted node listens where it did
        assert (server.port, server.shard_aware_port) == (first_port, wanted)
    assert server.leftovers() == []
    with pytest.raises(OSError):  # both ports are closed
        socket.create_connection((server.host, wanted), timeout=1).close()


def test_busy_shard_aware_port_is_a_clear_error_and_frees_the_ordinary_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        server = CQLServer(shards=2, shard_aware_port=taken)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken} \\(the shard-aware port\\)"):
            server.start()
        assert server.leftovers() == []
        assert not server.running


@pytest.mark.parametrize("kwargs, message", [
    ({"shards": -1}, "shards must be an integer of 1 or more .*got -1"),
    ({"shards": "4"}, "shards must be an integer of 1 or more .*got '4'"),
    ({"shards": 2.0}, "shards must be an integer of 1 or more .*got 2.0"),
    ({"shards": True}, "shards must be an integer of 1 or more .*got True"),
    ({"shard_aware_port": 19042}, "shard_aware_port=19042 needs shards=N"),
    ({"shards": 4, "shard_aware_port": 70000}, r"shard_aware_port must be an integer in \[0, 65535\], got 70000"),
    ({"shards": 4, "port": 9042, "shard_aware_port": 9042}, "shard_aware_port must differ from port"),
])
def test_bad_shard_options_are_refused(kwargs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        CQLServer(**kwargs)
