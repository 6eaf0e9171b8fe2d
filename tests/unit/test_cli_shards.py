# `serve --shards N`: a Scylla node of N shards from the command line. It
# prints the shard-aware port after the listening line; a connection to that
# port from a chosen source port is served by the shard the port names. Bad
# values are usage errors naming the flag.
from __future__ import annotations

import re
import socket
import time

import pytest

from fakecql import cli
from fakecql.protocol.messages import Options, Supported

from ..rawcql import RawClient
from ..serve_process import TIMEOUT, ServeProcess
from .test_cli import assert_one_error_line, busy_port  # noqa: F401  (busy_port is a fixture)

SHARD_AWARE = re.compile(r"^shard-aware port 127\.0\.0\.1:(?P<port>\d+) \((?P<n>\d+) shards; "
                         r"a connection's shard is its source port % (?P=n)\)$")


@pytest.mark.parametrize("argv, fragments", [
    (["serve", "--shards", "0"], ["argument --shards: expected a number of shards (1 or more), got '0'"]),
    (["serve", "--shards", "-3"], ["argument --shards: expected a number of shards (1 or more), got '-3'"]),
    (["serve", "--shards", "four"], ["argument --shards: expected a number of shards (1 or more), got 'four'"]),
    (["serve", "--shards", "2.5"], ["argument --shards:", "got '2.5'"]),
    (["serve", "--shard-aware-port", "19042"], ["--shard-aware-port needs --shards"]),
    (["serve", "--shards", "4", "--shard-aware-port", "70000"], ["argument --shard-aware-port: port must be in 0-65535"]),
    (["serve", "--shards", "4", "--port", "9042", "--shard-aware-port", "9042"],
     ["--shard-aware-port must differ from --port (both are 9042)"]),
], ids=["zero", "negative", "word", "fraction", "port-without-shards", "port-too-big", "same-port"])
def test_bad_shard_flags_give_one_error_line_and_status_2(argv, fragments, capsys):  # type: ignore[no-untyped-def]
    assert cli.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_error_line(err, *fragments)


def test_help_lists_the_shard_flags(capsys):  # type: ignore[no-untyped-def]
    assert cli.main(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--shards N" in out and "--shard-aware-port PORT" in out
    assert "source port % N" in out


def test_busy_shard_aware_port_names_it(busy_port, capsys):  # type: ignore[no-untyped-def]
    assert cli.main(["serve", "--port", "0", "--shards", "2", "--shard-aware-port", str(busy_port)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"fakecql serve: error: cannot listen on 127.0.0.1:{busy_port} (the shard-aware port): Address already "
        "in use (another process has this port; without --shard-aware-port the node picks a free one)"
    ]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_serve_shards_prints_the_shard_aware_port_and_serves_shards(tls):  # type: ignore[no-untyped-def]
    flags = ["--shards", "3"] + (["--tls"] if tls else [])
    with ServeProcess(*flags) as served:
        served.wait_listening()
        line = served.out.next_line(time.monotonic() + TIMEOUT)
        assert line is not None
        match = SHARD_AWARE.match(line)
        assert match and match["n"] == "3", line
        port = int(match["port"])
        assert port not in (0, served.port)
        if not tls:  # the TLS side of the port is covered in-process (test_shard_aware_server.py)
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                source = probe.getsockname()[1]
            sock = socket.socket()
            sock.bind(("127.0.0.1", source))
            sock.settimeout(TIMEOUT)
            sock.connect(("127.0.0.1", port))
            with RawClient(("127.0.0.1", port), sock=sock) as client:
                answer = client.request(Options())
            assert isinstance(answer, Supported)
            assert answer.options["SCYLLA_SHARD"] == [str(source % 3)]
            assert answer.options["SCYLLA_SHARD_AWARE_PORT"] == [str(port)]
        status, out, err = served.stop()
    assert status == 0, err
    assert out[-1] == "stopped"
