# `python -m fakecql serve`, in-process through cli.main(argv) and as a real
# process: the listening line comes once the port accepts connections (a
# raw CQL client connects right after reading it, no retry), SIGINT and
# SIGTERM end it cleanly, every bad flag and a busy port give one error
# line and status 2, and the printed driver snippet works as printed.
#
# Rules: every wait is bounded (subprocess output is read line by line by a
# thread into a queue, with a deadline); every process a test starts is
# killed in a finally block if it is still running; clients connect only to
# loopback addresses.
from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
import trustme

import fakecql
import fakecql.cli as cli
from fakecql import CQLServer, NodeIdentity, ProtocolIncident, ServerException, UnexpectedRequest
from fakecql.limits import Limits
from fakecql.protocol.frames import encode_frame
from fakecql.protocol.messages import Error, Query

from ..rawcql import RawClient
from ..serve_process import TIMEOUT, ServeProcess

RELEASE_VERSION = NodeIdentity().release_version


# --------------------------------------------------------------------------
# Helpers: a raw CQL OPTIONS exchange, a served process
# --------------------------------------------------------------------------

OP_ERROR, OP_OPTIONS, OP_SUPPORTED = 0x00, 0x05, 0x06


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def options_exchange(
    host: str, port: int, *, context: Optional[ssl.SSLContext] = None, version: int = 4,
    server_hostname: Optional[str] = None,
) -> Tuple[int, int, bytes, str]:
    """Send OPTIONS (stream 1) and read one frame: (version byte, opcode, body, TLS version or '')."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as raw:
        sock: socket.socket = raw
        if context is not None:
            sock = context.wrap_socket(raw, server_hostname=server_hostname or host)
        with sock:
            sock.sendall(struct.pack(">BBhBi", version, 0, 1, OP_OPTIONS, 0))
            answer_version, _flags, stream, opcode, length = struct.unpack(">BBhBi", _recv_exactly(sock, 9))
            assert stream == 1
            body = _recv_exactly(sock, length)
            return answer_version, opcode, body, sock.version() if context is not None else ""


def assert_supported(answer: Tuple[int, int, bytes, str], version: int = 4) -> None:
    answer_version, opcode, body, _ = answer
    assert (answer_version, opcode) == (0x80 | version, OP_SUPPORTED), answer
    assert b"CQL_VERSION" in body and b"PROTOCOL_VERSIONS" in body


def client_tls(ca_pem: Path, **kwargs: object) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_pem))
    for name, value in kwargs.items():
        setattr(context, name, value)
    return context


def run_cli(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakecql", *args], capture_output=True, text=True, timeout=timeout)


def env_with_tmpdir(tmp_path: Path) -> Tuple[Dict[str, str], Path]:
    """The environment for a served process whose temporary files go to a directory of the test's."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    return dict(os.environ, TMPDIR=str(tmpdir)), tmpdir


def assert_one_error_line(stderr: str, *fragments: str, prog: str = "fakecql") -> str:
    """argparse's usage (possibly wrapped), then exactly one error line containing `fragments`.

    `prog` is how the command was run: cli.main() in-process and the console
    script say `fakecql`, `python -m fakecql` says so."""
    lines = stderr.splitlines()
    assert lines, "nothing on stderr"
    assert "Traceback" not in stderr, stderr
    errors = [line for line in lines if not (line.startswith("usage: ") or line.startswith(" "))]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr
    assert lines[0].startswith(f"usage: {prog} "), stderr
    assert errors[0].startswith(f"{prog}: error: ") or errors[0].startswith(f"{prog} "), errors[0]
    assert ": error: " in errors[0], errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------
# Bad flags: one error line, status 2 (in-process)
# --------------------------------------------------------------------------

BAD_FLAGS = [
    ("port-too-big", ["serve", "--port", "70000"], ["--port", "port must be in 0-65535, got 70000"]),
    ("port-negative", ["serve", "--port", "-1"], ["--port", "port must be in 0-65535, got -1"]),
    ("port-not-a-number", ["serve", "--port", "ninety"], ["--port", "expected a port number, got 'ninety'"]),
    ("host-name", ["serve", "--host", "localhost"], ["--host", "expected an IP address", "'localhost'"]),
    ("host-bad-ip", ["serve", "--host", "127.0.0.256"], ["--host", "'127.0.0.256'"]),
    ("auth-no-colon", ["serve", "--auth", "cassandra"], ["--auth", "USER:PASSWORD", "'cassandra'"]),
    ("auth-no-user", ["serve", "--auth", ":secret"], ["--auth", "USER:PASSWORD", "':secret'"]),
    ("versions-unknown", ["serve", "--protocol-versions", "2,4"], ["--protocol-versions", "among 3, 4 and 5", "'2,4'"]),
    ("versions-not-numbers", ["serve", "--protocol-versions", "v4"], ["--protocol-versions", "like 3,4,5", "'v4'"]),
    ("versions-empty", ["serve", "--protocol-versions", ","], ["--protocol-versions", "among 3, 4 and 5"]),
    ("certs-dir-without-tls", ["serve", "--certs-dir", "certs"], ["--certs-dir needs --tls or --mtls"]),
    ("tls-min-without-tls", ["serve", "--tls-min", "1.3"], ["--tls-min needs --tls or --mtls"]),
    ("tls-max-without-tls", ["serve", "--tls-max", "1.2"], ["--tls-max needs --tls or --mtls"]),
    ("tls-min-above-max", ["serve", "--tls", "--tls-min", "1.3", "--tls-max", "1.2"],
     ["--tls-min 1.3 is above --tls-max 1.2"]),
    ("tls-version-unknown", ["serve", "--tls", "--tls-min", "1.1"], ["--tls-min", "'1.2' or '1.3'", "'1.1'"]),
    ("certs-dir-missing-parent", ["serve", "--tls", "--certs-dir", "/nonexistent/x"],
     ["--certs-dir /nonexistent/x: /nonexistent does not exist (serve creates the folder DIR, not its parents)"]),
    ("certs-dir-missing-parent-relative", ["serve", "--tls", "--certs-dir", "a/b"],
     ["--certs-dir a/b: ", "/a does not exist"]),
    ("max-frame-body-decimal-unit", ["serve", "--max-frame-body", "16MB"],
     ["argument --max-frame-body: expected a size in bytes such as 1048576, 512KiB, 16MiB or 1GiB, got '16MB' "
      "(decimal units are ambiguous: use KiB, MiB or GiB)"]),
    ("max-frame-body-zero", ["serve", "--max-frame-body", "0KiB"],
     ["argument --max-frame-body: must be at least 1 byte, got '0KiB'"]),
    ("max-query-bytes-words", ["serve", "--max-query-bytes", "lots"], ["argument --max-query-bytes:", "got 'lots'"]),
    ("max-query-bytes-above-frame", ["serve", "--max-query-bytes", "2MiB", "--max-frame-body", "1MiB"],
     ["--max-query-bytes 2MiB is above --max-frame-body 1MiB"]),
    ("max-frame-body-below-default-query", ["serve", "--max-frame-body", "1000"],
     ["--max-query-bytes 1MiB (the default) is above --max-frame-body 1000"]),
    ("prepared-cache-negative", ["serve", "--prepared-cache-bytes", "-5"],
     ["argument --prepared-cache-bytes: expected a size in bytes", "got '-5'"]),
    ("prepared-cache-unbounded", ["serve", "--prepared-cache-bytes", "unbounded"],
     ["argument --prepared-cache-bytes:", "got 'unbounded'"]),
    ("log-entries-zero", ["serve", "--log-entries", "0"],
     ["argument --log-entries: expected a number of entries (1 or more) or 'unbounded', got '0'"]),
    ("log-entries-size", ["serve", "--log-entries", "1KiB"], ["argument --log-entries:", "got '1KiB'"]),
    ("log-text-bytes-zero", ["serve", "--log-text-bytes", "0"],
     ["argument --log-text-bytes: must be at least 1 byte or 'unbounded', got '0'"]),
    ("log-text-bytes-unit", ["serve", "--log-text-bytes", "64 megabytes"],
     ["argument --log-text-bytes: expected a size in bytes such as 1048576, 512KiB, 16MiB or 1GiB, "
      "or 'unbounded', got '64 megabytes'"]),
    ("unknown-flag", ["serve", "--bogus"], ["fakecql serve: error: unrecognized arguments: --bogus"]),
    ("unknown-command", ["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ("no-command", [], ["the following arguments are required: COMMAND"]),
    ("unknown-reactor", ["demo", "--reactor", "nope"], ["--reactor", "invalid choice: 'nope'"]),
]


@pytest.mark.parametrize("argv, fragments", [b[1:] for b in BAD_FLAGS], ids=[b[0] for b in BAD_FLAGS])
def test_bad_flags_give_one_error_line_and_status_2(argv, fragments, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # --certs-dir certs must not be created anywhere but here (nor at all)

    status = cli.main(argv)

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert_one_error_line(err, *fragments)
    assert list(tmp_path.iterdir()) == []
    assert not Path("/nonexistent").exists()


def test_usage_errors_of_serve_show_serve_usage(capsys):
    assert cli.main(["serve", "--certs-dir", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fakecql serve ")
    assert err.splitlines()[-1] == "fakecql serve: error: --certs-dir needs --tls or --mtls"


@pytest.mark.parametrize("argv, fragments", [
    (["serve", "--port", "70000"], ["port must be in 0-65535"]),
    (["serve", "--tls", "--tls-min", "1.3", "--tls-max", "1.2"], ["--tls-min 1.3 is above --tls-max 1.2"]),
    (["serve", "--tls", "--certs-dir", "/nonexistent/x"], ["--certs-dir /nonexistent/x: /nonexistent does not exist"]),
    (["serve", "--max-frame-body", "1MB"], ["argument --max-frame-body:", "use KiB, MiB or GiB"]),
    ([], ["the following arguments are required: COMMAND"]),
], ids=["bad-port", "tls-min-above-max", "certs-dir-missing-parent", "max-frame-body-decimal", "no-command"])
def test_bad_flags_by_subprocess(argv, fragments):
    result = run_cli(*argv)
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, *fragments, prog="python -m fakecql")


def test_help_lists_every_serve_flag(capsys):
    assert cli.main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--host", "--port", "--tls", "--mtls", "--certs-dir", "--auth", "--protocol-versions",
                 "--tls-min", "--tls-max", "--no-frame-log", "--max-frame-body", "--max-query-bytes",
                 "--prepared-cache-bytes", "--log-entries", "--log-text-bytes", "--verbose"):
        assert flag in out
    assert "512KiB, 16MiB, 1GiB" in " ".join(out.split())  # what BYTES may be


def test_help_by_subprocess():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "demo" in result.stdout


def subcommands() -> List[str]:
    """Every subcommand the parser has (so one added later is covered too)."""
    [action] = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_subcommands_include_serve_and_demo():
    assert {"serve", "demo"} <= set(subcommands())


@pytest.mark.parametrize("command", subcommands())
def test_unknown_flag_of_a_subcommand_shows_its_usage(command, capsys):
    # Not the top-level usage: the subcommand's, and the flag by name.
    assert cli.main([command, "--bogus"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"usage: fakecql {command} "), err
    assert_one_error_line(err, f"fakecql {command}: error: unrecognized arguments: --bogus")


def test_unknown_flag_of_serve_by_subprocess():
    result = run_cli("serve", "--port", "0", "--bogus", "x")
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "python -m fakecql serve: error: unrecognized arguments: --bogus x",
                          prog="python -m fakecql serve")


# --------------------------------------------------------------------------
# The name in the usage, and --version
# --------------------------------------------------------------------------

def console_script() -> Path:
    """The `fakecql` console script installed beside this interpreter."""
    script = Path(sys.executable).parent / "fakecql"
    assert script.exists(), f"fakecql is not installed in {sys.prefix} (pip install -e .)"
    return script


def test_console_script_usage_names_fakecql():
    result = subprocess.run([str(console_script()), "serve", "--bogus"], capture_output=True, text=True,
                            timeout=TIMEOUT)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "fakecql serve: error: unrecognized arguments: --bogus",
                          prog="fakecql serve")
    assert "python -m" not in result.stderr


def test_python_m_usage_names_python_m_fakecql():
    result = run_cli("serve", "--bogus")
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "python -m fakecql serve: error: unrecognized arguments: --bogus",
                          prog="python -m fakecql serve")


def pyproject_version() -> str:
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    project = text.split("[project]", 1)[1].split("\n[", 1)[0]
    [version] = re.findall(r'^version = "([^"]+)"$', project, re.M)
    return version


def test_version_agrees_with_pyproject_and_the_installed_metadata():
    assert fakecql.__version__ == pyproject_version()
    assert metadata.version("fakecql") == fakecql.__version__


def test_version_in_process(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"fakecql {fakecql.__version__}\n"


@pytest.mark.parametrize("how", ["console-script", "python-m"])
def test_version_by_subprocess(how):
    command = [str(console_script())] if how == "console-script" else [sys.executable, "-m", "fakecql"]
    result = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"fakecql {pyproject_version()}\n"


# --------------------------------------------------------------------------
# A busy port: one line, status 2, no traceback
# --------------------------------------------------------------------------

def test_busy_port_in_process(busy_port, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    status = cli.main(["serve", "--tls", "--port", str(busy_port)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    assert err.splitlines() == [
        f"fakecql serve: error: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
        " (another process has this port; --port 0 picks a free one)"
    ]
    assert list(tmp_path.iterdir()) == []  # the temporary certificates are gone too


def test_busy_port_by_subprocess(busy_port):
    result = run_cli("serve", "--port", str(busy_port))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}: Address already in use" in lines[0]


def test_unwritable_certs_dir_names_it(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("not a directory")

    status = cli.main(["serve", "--tls", "--port", "0", "--certs-dir", str(target)])

    out, err = capsys.readouterr()
    assert status == 2
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"fakecql serve: error: --certs-dir {target}: cannot write the certificates")


# --------------------------------------------------------------------------
# Serving in-process: main() returns 0 when told to stop
# --------------------------------------------------------------------------

@dataclass
class Served:
    status: int
    out: str
    err: str
    server: CQLServer
    answer: object  # what the client returned, or the exception it raised
    handler: object  # the SIGINT handler in place while serving


def serve_in_process(argv: List[str], client: Callable[[CQLServer], object], capsys, monkeypatch) -> Served:
    """cli.main(["serve", *argv]) in this thread (signal handlers need the main thread) while
    `client(server)` runs in another; then the client's thread does what SIGINT does (calls
    the handler serve installed). The signal handlers are restored either way."""
    started = threading.Event()
    servers: List[CQLServer] = []

    class RecordingServer(CQLServer):
        def start(self, timeout: float = 10.0) -> CQLServer:
            super().start(timeout)
            servers.append(self)
            started.set()
            return self

    monkeypatch.setattr(cli, "CQLServer", RecordingServer)
    answers: List[object] = []
    handlers: List[object] = []

    def run_client() -> None:
        if not started.wait(TIMEOUT):
            return
        try:
            answers.append(client(servers[0]))
        except Exception as exc:
            answers.append(exc)
        finally:
            handler = signal.getsignal(signal.SIGINT)
            handlers.append(handler)
            if callable(handler) and handler is not signal.default_int_handler:
                handler(signal.SIGINT, None)

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=run_client)
    thread.start()
    try:
        status = cli.main(["serve", "--port", "0", *argv])
    finally:
        started.set()  # if serve never started: nothing to connect to, let the client end
        thread.join(TIMEOUT)
    assert not thread.is_alive()
    out, err = capsys.readouterr()
    assert status == 0 and servers, err
    assert len(answers) == 1 and len(handlers) == 1, (answers, err)
    assert not servers[0].running
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous
    assert handlers[0] not in previous  # serve's own handler was in place
    return Served(status, out, err, servers[0], answers[0], handlers[0])


def test_serve_in_process(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))

    def client(server: CQLServer) -> object:
        [ca_pem] = tmp_path.glob("fakecql-certs-*/ca.pem")
        return options_exchange("127.0.0.1", server.port, context=client_tls(ca_pem))

    served = serve_in_process(["--tls", "--protocol-versions", "4"], client, capsys, monkeypatch)

    assert served.err == ""
    assert_supported(served.answer)  # type: ignore[arg-type]
    lines = served.out.splitlines()
    assert lines[0] == f"listening on 127.0.0.1:{served.server.port} (tls)"
    assert lines[-1] == "stopped"
    assert list(tmp_path.iterdir()) == []  # the temporary certificates are removed


# --------------------------------------------------------------------------
# Incidents as they happen, the summary at exit, the limits flags
# --------------------------------------------------------------------------

UPDATE = "UPDATE app.users SET name = 'ada' WHERE id = 1"
UNKNOWN_OPCODE = encode_frame(4, 3, 0x42, b"", is_response=False)


def provoke_two_incidents(server: CQLServer) -> None:
    """An unprimed UPDATE (UnexpectedRequest) and a frame with an unknown opcode (ProtocolIncident)."""
    with RawClient(server.address, timeout=TIMEOUT) as client:
        client.start()
        client.request(Query(query=UPDATE), stream=1)  # answered as the node sees fit, and logged
        client.send_raw(UNKNOWN_OPCODE)
        assert isinstance(client.read()[1], Error)


def summary_of(out: str) -> List[str]:
    lines = out.splitlines()
    return lines[lines.index("summary:"):]


def test_serve_prints_each_incident_and_a_summary(capsys, monkeypatch):
    def client(server: CQLServer) -> object:
        provoke_two_incidents(server)
        with RawClient(server.address, timeout=TIMEOUT) as other:
            other.start()
            other.request(Query(query="SELECT release_version FROM system.local"), stream=2)
        return server.activity.counters()

    served = serve_in_process(["--log-entries", "3"], client, capsys, monkeypatch)

    [unexpected, malformed] = served.err.splitlines()
    assert unexpected.startswith("incident [connection 1] UnexpectedRequest: no priming matches")
    assert unexpected.endswith(f"; query: {UPDATE}")
    assert malformed == ("incident [connection 1] ProtocolIncident: unknown opcode 0x42 in frame header "
                         "(version 4, stream 3, length 0)")
    counters = served.server.activity.counters()
    assert counters.entries_dropped == counters.entries - 3 > 0  # --log-entries reached the log
    assert summary_of(served.out) == [
        "summary:",
        "  connections: 2",
        "  requests: 6 (OPTIONS 2, QUERY 2, STARTUP 2)",
        "  incidents: 2 (ProtocolIncident 1, UnexpectedRequest 1)",
        f"  dropped from the activity log: {counters.entries_dropped} entries "
        f"({counters.text_bytes_dropped} chars of query text), 0 incidents",
        "stopped",
    ]
    served.server.activity.take_incidents()


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_server_exception_is_one_line_and_its_traceback_with_verbose(verbose, capsys, monkeypatch):
    def client(server: CQLServer) -> object:
        def explode() -> None:
            raise KeyError("boom in a callback")

        assert server._loop is not None
        server._loop.call_soon_threadsafe(explode)
        return server.activity.wait_for(lambda e: isinstance(e, ServerException), timeout=TIMEOUT)

    served = serve_in_process(["-v"] if verbose else [], client, capsys, monkeypatch)

    lines = served.err.splitlines()
    assert lines[0] == "incident [node] ServerException: KeyError: 'boom in a callback'"
    if verbose:
        assert lines[1] == "    Traceback (most recent call last):"
        assert any("in explode" in line for line in lines)
        assert lines[-1] == "    KeyError: 'boom in a callback'"
        assert all(line.startswith("    ") for line in lines[1:])
    else:
        assert len(lines) == 1
    assert "  incidents: 1 (ServerException 1)" in summary_of(served.out)
    served.server.activity.take_incidents()


def test_limit_flags_reach_the_node_and_its_log(capsys, monkeypatch):
    served = serve_in_process(
        ["--max-frame-body", "2MiB", "--max-query-bytes", "512KiB", "--prepared-cache-bytes", "1048577",
         "--log-entries", "unbounded", "--log-text-bytes", "1GiB"],
        lambda server: None, capsys, monkeypatch,
    )

    assert served.server.limits == Limits(max_frame_body=2 * 1024 ** 2, max_query_text=512 * 1024,
                                          prepared_cache_bytes=1048577, log_entries=None,
                                          log_text_bytes=1024 ** 3)
    assert (served.server.activity.max_entries, served.server.activity.max_text_bytes) == (None, 1024 ** 3)


def test_without_limit_flags_the_node_has_the_default_limits(capsys, monkeypatch):
    served = serve_in_process([], lambda server: None, capsys, monkeypatch)

    assert served.server.limits == Limits()
    assert (served.server.activity.max_entries, served.server.activity.max_text_bytes) == (
        Limits().log_entries, Limits().log_text_bytes)
    assert summary_of(served.out) == [
        "summary:", "  connections: 0", "  requests: 0", "  incidents: 0",
        "  dropped from the activity log: 0 entries (0 chars of query text), 0 incidents", "stopped",
    ]


@pytest.mark.parametrize("text, expected", [
    ("1", 1), ("1048576", 1048576), ("512KiB", 512 * 1024), ("16MiB", 16 * 1024 ** 2), ("1GiB", 1024 ** 3),
    ("16 MiB", 16 * 1024 ** 2), ("16mib", 16 * 1024 ** 2), ("100B", 100),
])
def test_sizes(text, expected):
    assert cli._size(text) == expected


def test_certs_dir_is_created_when_its_parent_exists(tmp_path, capsys, monkeypatch):
    served = serve_in_process(["--tls", "--certs-dir", str(tmp_path / "certs")], lambda server: None,
                              capsys, monkeypatch)
    assert f"certificates in {tmp_path / 'certs'}" in served.out
    assert (tmp_path / "certs" / "ca.pem").exists()


def test_certs_dir_whose_parent_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a directory")
    assert cli.main(["serve", "--tls", "--certs-dir", str(tmp_path / "a-file" / "certs")]) == 2
    assert_one_error_line(capsys.readouterr().err, f"{tmp_path / 'a-file'} is not a folder")


def test_incident_line_is_one_line_and_shortens_the_query():
    query = "UPDATE t SET v = '\n\x1b[31m' WHERE k = 1" + " AND z = 1" * 30
    line = cli.incident_line(UnexpectedRequest(3, description="no priming matches\nsecond line", query=query))
    assert "\n" not in line
    shown = " ".join(query.split()).replace("\x1b", "\\x1b")[:100]  # the newline as a space, ESC escaped
    assert shown.startswith("UPDATE t SET v = ' \\x1b[31m' WHERE k = 1 AND z = 1")
    assert line == (f"incident [connection 3] UnexpectedRequest: no priming matches; query: "
                    f"{shown}... ({len(query)} chars)")
    assert cli.incident_line(ProtocolIncident(0, description="bad")) == "incident [node] ProtocolIncident: bad"


# --------------------------------------------------------------------------
# Serving by subprocess
# --------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_tls_serve_answers_then_stops_cleanly_on_signal(sig, tmp_path):
    env, tmpdir = env_with_tmpdir(tmp_path)
    with ServeProcess("--tls", env=env) as served:
        served.wait_listening()
        assert (served.host, served.mode) == ("127.0.0.1", "tls")
        # Right after the line, with no retry: the port accepts connections.
        [certs] = tmpdir.glob("fakecql-certs-*")
        assert_supported(options_exchange(served.host, served.port, context=client_tls(certs / "ca.pem")))
        served.read_through("certificates in ")
        started = time.monotonic()

        status, out, err = served.stop(sig)

    assert status == 0, err
    assert time.monotonic() - started < 10
    assert err == []
    assert out[-1] == "stopped"
    assert f"certificates in {certs}" in out
    assert not certs.exists()
    assert list(tmpdir.iterdir()) == []


def test_written_ca_rejects_and_is_needed(tmp_path):
    # Negative control: the same connection with a CA that is not the node's fails.
    with ServeProcess("--tls", "--certs-dir", str(tmp_path / "certs")) as served:
        served.wait_listening()
        other_ca = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(other_ca))
        with pytest.raises(ssl.SSLCertVerificationError):
            options_exchange(served.host, served.port, context=client_tls(other_ca))
        with pytest.raises(ssl.SSLCertVerificationError):
            options_exchange(served.host, served.port, context=client_tls(tmp_path / "certs" / "ca.pem"),
                             server_hostname="not-the-node.example")
        assert_supported(options_exchange(served.host, served.port, context=client_tls(tmp_path / "certs" / "ca.pem"),
                                          server_hostname="localhost"))
        status, _, err = served.stop()
    assert status == 0, err
    assert (tmp_path / "certs" / "ca.pem").exists()  # a --certs-dir is the user's: it stays


def test_plain_serve_with_protocol_versions():
    with ServeProcess("--protocol-versions", "3,4") as served:
        served.wait_listening()
        assert served.mode == "plain"
        assert_supported(options_exchange(served.host, served.port, version=4))
        assert_supported(options_exchange(served.host, served.port, version=3), version=3)
        answer_version, opcode, body, _ = options_exchange(served.host, served.port, version=5)
        assert opcode == OP_ERROR
        assert struct.unpack(">i", body[:4])[0] == 0x000A  # ProtocolError: v5 is not served
        status, out, err = served.stop()
    assert status == 0, err
    assert "certificates in" not in "\n".join(out)


@pytest.mark.parametrize("flags, client, expected", [
    (["--tls-max", "1.2"], {}, "TLSv1.2"),
    (["--tls-min", "1.3"], {}, "TLSv1.3"),
    (["--tls-min", "1.3"], {"maximum_version": ssl.TLSVersion.TLSv1_2}, None),
    (["--tls-max", "1.2"], {"minimum_version": ssl.TLSVersion.TLSv1_3}, None),
], ids=["max-1.2", "min-1.3", "min-1.3-refuses-1.2-client", "max-1.2-refuses-1.3-client"])
def test_tls_versions(flags, client, expected, tmp_path):
    with ServeProcess("--tls", "--certs-dir", str(tmp_path), *flags) as served:
        served.wait_listening()
        context = client_tls(tmp_path / "ca.pem", **client)
        if expected is None:
            with pytest.raises(ssl.SSLError):
                options_exchange(served.host, served.port, context=context)
        else:
            answer = options_exchange(served.host, served.port, context=context)
            assert_supported(answer)
            assert answer[3] == expected
        status, _, err = served.stop()
    assert status == 0, err


def test_mtls_certs_dir_auth_and_the_driver_snippet(tmp_path):
    certs = tmp_path / "certs"
    with ServeProcess("--mtls", "--certs-dir", str(certs), "--auth", "alice:s3cret pass") as served:
        served.wait_listening()
        served.read_through("certificates in ")

        assert sorted(p.name for p in certs.iterdir()) == ["ca.pem", "client.key", "client.pem", "cqlshrc"]
        assert stat.S_IMODE((certs / "client.key").stat().st_mode) == 0o600
        # Negative control: no client certificate, no CQL.
        with pytest.raises((ssl.SSLError, ConnectionError)):
            options_exchange(served.host, served.port, context=client_tls(certs / "ca.pem"))
        context = client_tls(certs / "ca.pem")
        context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        assert_supported(options_exchange(served.host, served.port, context=context))

        # The Python driver snippet, run as printed.
        code = served.snippet("Python driver (scylla-driver or cassandra-driver):")
        assert "PlainTextAuthProvider('alice', 's3cret pass')" in code
        assert f"load_cert_chain({str(certs / 'client.pem')!r}" in code
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert result.returncode == 0, result.stderr
        assert f"release_version='{RELEASE_VERSION}'" in result.stdout

        cqlsh = served.snippet("cqlsh:")
        assert cqlsh == (f"cqlsh --ssl --cqlshrc {certs / 'cqlshrc'} -u alice -p 's3cret pass' "
                         f"127.0.0.1 {served.port}")
        status, _, err = served.stop()
    assert status == 0, err


def test_plain_driver_snippet_works():
    with ServeProcess() as served:
        served.wait_listening()
        served.read_through("  print(session.execute")
        code = served.snippet("Python driver (scylla-driver or cassandra-driver):")
        assert "ssl" not in code
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT * 2)
        assert result.returncode == 0, result.stderr
        assert f"release_version='{RELEASE_VERSION}'" in result.stdout
        assert served.snippet("cqlsh:") == f"cqlsh 127.0.0.1 {served.port}"
        status, _, err = served.stop()
    assert status == 0, err


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_loopback(tmp_path):
    with ServeProcess("--host", "::1", "--tls", "--certs-dir", str(tmp_path)) as served:
        served.wait_listening()
        assert served.out.seen[0] == f"listening on [::1]:{served.port} (tls)"
        answer = options_exchange("::1", served.port, context=client_tls(tmp_path / "ca.pem"))
        assert_supported(answer)
        status, _, err = served.stop(signal.SIGTERM)
    assert status == 0, err


def test_non_loopback_host_warns(tmp_path):
    # Listens on every address; the test connects to none of them, it only stops the node.
    with ServeProcess("--host", "0.0.0.0") as served:
        served.wait_listening()
        assert served.host == "0.0.0.0"
        served.read_through("  print(session.execute")
        assert served.snippet("cqlsh:") == f"cqlsh 127.0.0.1 {served.port}"  # a wildcard is not an address to reach
        status, _, err = served.stop()
    assert status == 0, err
    assert err == ["warning: listening on 0.0.0.0, not loopback: other machines can reach this fake node"]


def test_no_key_material_in_any_output(tmp_path, capsys):
    """Keys go to files (0600) and nowhere else: not in the snippets, not in
    errors, not when the client is refused."""
    certs = tmp_path / "certs"
    with ServeProcess("--mtls", "--certs-dir", str(certs)) as served:
        served.wait_listening()
        served.read_through("certificates in ")
        with pytest.raises((ssl.SSLError, ConnectionError)):  # refused: no client certificate
            options_exchange(served.host, served.port, context=client_tls(certs / "ca.pem"))
        status, out, err = served.stop()
    key_lines = [line for line in (certs / "client.key").read_text().splitlines() if "-----" not in line]
    printed = "\n".join(out + err)
    assert status == 0 and key_lines
    assert "PRIVATE KEY" not in printed and not any(line in printed for line in key_lines)

    target = tmp_path / "a-file"
    target.write_text("not a directory")
    assert cli.main(["serve", "--mtls", "--port", "0", "--certs-dir", str(target)]) == 2
    assert "PRIVATE KEY" not in "".join(capsys.readouterr())


def test_serve_prints_incidents_as_they_happen_and_a_summary_by_subprocess():
    with ServeProcess("--log-entries", "4") as served:
        served.wait_listening()
        with RawClient((served.host, served.port), timeout=TIMEOUT) as client:
            client.start()
            client.request(Query(query=UPDATE), stream=1)
            # While the node serves, not at exit: the line is there before the next request.
            line = served.err.next_line(time.monotonic() + TIMEOUT)
            assert line is not None and line.startswith("incident [connection 1] UnexpectedRequest: ")
            assert line.endswith(f"; query: {UPDATE}")
            client.send_raw(UNKNOWN_OPCODE)
            client.read()
            line = served.err.next_line(time.monotonic() + TIMEOUT)
            assert line == ("incident [connection 1] ProtocolIncident: unknown opcode 0x42 in frame header "
                            "(version 4, stream 3, length 0)")
        status, out, err = served.stop(signal.SIGTERM)

    assert status == 0, err
    assert len(err) == 2
    summary = out[out.index("summary:"):]
    assert summary[:4] == ["summary:", "  connections: 1", "  requests: 3 (OPTIONS 1, QUERY 1, STARTUP 1)",
                           "  incidents: 2 (ProtocolIncident 1, UnexpectedRequest 1)"]
    assert re.fullmatch(r"  dropped from the activity log: [1-9]\d* entries \(\d+ chars of query text\), 0 incidents",
                        summary[4]), summary
    assert summary[5:] == ["stopped"]


@pytest.mark.parametrize("doc", ["README.md", "docs/PYPI.md"])
def test_the_docs_name_every_limit_flag_with_its_default(doc):
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    defaults = Limits()
    for flag, name, *_ in cli._LIMIT_FLAGS:
        default = getattr(defaults, name)
        shown = str(default) if name == "log_entries" else cli._format_size(default)
        assert f"| `{flag} " in text and f"| `{shown}` |" in text, (flag, shown)


def test_incident_line_of_a_server_exception_is_the_exception_line():
    try:
        raise KeyError("boom")
    except KeyError as exc:
        raised = exc
    traceback_text = "Traceback (most recent call last):\n  File \"x.py\", line 1, in f\nKeyError: 'boom'"
    with_exception = ServerException(2, description=traceback_text, exception=raised)
    without = ServerException(2, description=traceback_text)
    assert cli.incident_line(with_exception) == "incident [connection 2] ServerException: KeyError: 'boom'"
    assert cli.incident_line(without) == "incident [connection 2] ServerException: KeyError: 'boom'"
