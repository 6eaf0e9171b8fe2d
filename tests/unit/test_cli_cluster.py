# `serve --nodes`: a cluster from the command line. One line per node (its
# address, data center and rack) once every node accepts connections; each
# node answers with its own host id and lists the others as peers; SIGINT
# stops all of them with a summary per node. Bad --nodes / --racks / --host
# combinations give one error line and status 2, in-process and by
# subprocess. Without --nodes the single-node output is unchanged
# (tests/unit/test_cli.py).
from __future__ import annotations

import re
import signal
import socket
import ssl
import time
from pathlib import Path
from typing import List

import pytest

import fakecql.cli as cli
from fakecql.protocol.messages import Options, Query, Ready, RowsResult, Supported
from fakecql.protocol.types import INET, UUID

from ..rawcql import RawClient
from ..serve_process import TIMEOUT, ServeProcess
from .test_cli import assert_one_error_line, run_cli

NODE_LINE = re.compile(r"^node (?P<index>\d+) listening on (?P<host>[0-9.]+):(?P<port>\d+) \((?P<mode>tls|plain)\), "
                       r"data center (?P<dc>\w+), rack (?P<rack>\w+)$")


def test_serve_nodes_serves_a_cluster_by_subprocess(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    with ServeProcess("--nodes", "2,1", "--racks", "2", "--tls", "--certs-dir", str(certs)) as serve:
        deadline = time.monotonic() + TIMEOUT
        lines = [serve.out.next_line(deadline) for _ in range(3)]
        matches = [NODE_LINE.match(line or "") for line in lines]
        assert all(matches), lines
        nodes = [m.groupdict() for m in matches if m]
        assert [(n["index"], n["host"], n["dc"], n["rack"], n["mode"]) for n in nodes] == [
            ("0", "127.0.0.1", "dc1", "rack1", "tls"),
            ("1", "127.0.0.2", "dc1", "rack2", "tls"),
            ("2", "127.0.0.3", "dc2", "rack1", "tls"),
        ]
        port = int(nodes[0]["port"])
        assert port > 0 and all(int(n["port"]) == port for n in nodes)
        serve.read_through("certificates in")
        assert any("contact_points=['127.0.0.1', '127.0.0.2', '127.0.0.3']" in line for line in serve.out.seen)
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))  # checks each node's own name
        host_ids = set()
        for n in nodes:
            with RawClient((n["host"], port), ssl_context=context) as client:
                assert isinstance(client.start(), Ready)
                local = client.request(Query(query="SELECT host_id, data_center FROM system.local"))
                assert isinstance(local, RowsResult)
                host_ids.add(UUID.deserialize(local.rows[0][0]))
                peers = client.request(Query(query="SELECT peer FROM system.peers"))
                assert isinstance(peers, RowsResult)
                assert sorted(str(INET.deserialize(row[0])) for row in peers.rows) == sorted(
                    o["host"] for o in nodes if o is not n)
        assert len(host_ids) == 3
        status, out, err = serve.stop(signal.SIGINT)
    assert status == 0, err
    assert err == []
    assert out[-1] == "stopped"
    for n in nodes:
        assert f"node {n['index']} ({n['host']}) summary:" in out


@pytest.mark.parametrize("argv, fragments", [
    (["--nodes", "0"], ["argument --nodes:", "at least 1 node", "'0'"]),
    (["--nodes", "-2"], ["argument --nodes:", "at least 1 node"]),
    (["--nodes", "2,0"], ["argument --nodes:", "at least 1 node", "'2,0'"]),
    (["--nodes", "three"], ["argument --nodes:", "such as 3", "'three'"]),
    (["--nodes", "2,,2"], ["argument --nodes:", "such as 2,2"]),
    (["--nodes", ""], ["argument --nodes:"]),
    (["--nodes", "255"], ["--nodes 255 needs 255 addresses from 127.0.0.1", "room for 254"]),
    (["--nodes", "100,100,100"], ["needs 300 addresses"]),
    (["--nodes", "3", "--host", "127.0.0.253"], ["needs 3 addresses from 127.0.0.253", "room for 2"]),
    (["--nodes", "3", "--host", "::1"], ["--nodes needs --host to be an IPv4 loopback address", "::1"]),
    (["--nodes", "3", "--host", "10.1.2.3"], ["IPv4 loopback", "10.1.2.3"]),
    (["--nodes", "3", "--host", "0.0.0.0"], ["IPv4 loopback", "0.0.0.0"]),
    (["--nodes", "2", "--racks", "0"], ["argument --racks:", "1 or more"]),
    (["--nodes", "2", "--racks", "x"], ["argument --racks:", "'x'"]),
    (["--racks", "2"], ["--racks needs --nodes"]),
], ids=lambda value: " ".join(value) if isinstance(value, list) and value and value[0].startswith("-") else None)
def test_bad_cluster_flags(argv: List[str], fragments: List[str], capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["serve", "--port", "0", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, *fragments)


def test_bad_nodes_by_subprocess() -> None:
    result = run_cli("serve", "--nodes", "0")
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "argument --nodes:", "at least 1 node", prog="python -m fakecql")


def test_a_port_busy_on_one_nodes_address(capsys: pytest.CaptureFixture) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        status = cli.main(["serve", "--nodes", "3", "--port", str(port)])
    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        f"fakecql serve: error: node 1 cannot listen on 127.0.0.2:{port}: Address already in use"
        " (another process has this port; --port 0 picks a free one)"
    ]


def test_serve_nodes_with_shards_shares_one_shard_aware_port() -> None:
    """--nodes with --shards: a Scylla cluster whose nodes all listen on one
    shard-aware port (printed), where a connection's shard is its source port % N."""
    with ServeProcess("--nodes", "2", "--shards", "3") as serve:
        deadline = time.monotonic() + TIMEOUT
        nodes = [NODE_LINE.match(serve.out.next_line(deadline) or "") for _ in range(2)]
        assert all(nodes), serve.out.seen
        line = serve.out.next_line(deadline) or ""
        match = re.match(r"^shard-aware port (\d+) on every node \(3 shards; a connection's shard is its "
                         r"source port % 3\)$", line)
        assert match, line
        shard_aware_port = int(match[1])
        for n in nodes:
            assert n is not None
            host = n["host"]
            with socket.socket() as probe:  # a free source port on this node's address
                probe.bind((host, 0))
                source = probe.getsockname()[1]
            sock = socket.socket()
            sock.bind((host, source))
            sock.settimeout(TIMEOUT)
            sock.connect((host, shard_aware_port))
            with RawClient((host, shard_aware_port), sock=sock) as client:
                answer = client.request(Options())
            assert isinstance(answer, Supported)
            assert answer.options["SCYLLA_SHARD"] == [str(source % 3)]
            assert answer.options["SCYLLA_NR_SHARDS"] == ["3"]
            assert answer.options["SCYLLA_SHARD_AWARE_PORT"] == [str(shard_aware_port)]
        status, out, err = serve.stop(signal.SIGINT)
    assert status == 0, err
    assert out[-1] == "stopped"
