# cqlsh (the scylla-cqlsh package) against `python -m fakecql serve`: over
# TLS with the written ca.pem (given by a cqlshrc or by cqlsh's SSL_CERTFILE
# and SSL_VALIDATE variables), with credentials, with a client certificate,
# and the cqlsh command `serve` prints, run as printed. Negative controls: a
# CA that is not the node's, a wrong password, no client certificate.
#
# cqlsh reads its SSL settings in cqlshlib/sslhandling.py: SSL_CERTFILE and
# SSL_VALIDATE from the environment, else [ssl] certfile/validate (and
# usercert/userkey, only from there) in the cqlshrc given by --cqlshrc.
# Every cqlsh runs with HOME in the test's tmp_path (it writes
# ~/.cassandra/cqlsh_history) and without the caller's SSL_* variables.
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import trustme

from fakecql import NodeIdentity

from ..serve_process import TIMEOUT, ServeProcess

pytestmark = pytest.mark.cqlsh

CQLSH = Path(sys.executable).parent / "cqlsh"
QUERY = "SELECT release_version FROM system.local;"
RELEASE_VERSION = NodeIdentity().release_version


def run_cqlsh(home: Path, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    assert CQLSH.exists(), (f"{CQLSH} is missing: pip install scylla-cqlsh into this environment, "
                            "or leave these tests out with -m 'not cqlsh'")
    home.mkdir(exist_ok=True)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_", "CQLSH_"))}
    environment.update(HOME=str(home), **(env or {}))
    return subprocess.run([str(CQLSH), *args], env=environment, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT * 2)


def write_cqlshrc(path: Path, **ssl_options: Path) -> Path:
    lines = ["[ssl]", "validate = true"] + [f"{name} = {value}" for name, value in ssl_options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_release_version(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"cqlsh failed:\n{result.stdout}\n{result.stderr}"
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    assert lines[:4] == ["release_version", "-" * len(lines[1]), RELEASE_VERSION, "(1 rows)"], result.stdout


def assert_refused(result: subprocess.CompletedProcess, *fragments: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert RELEASE_VERSION not in result.stdout
    for fragment in fragments:
        assert fragment in output, output


@pytest.fixture
def tls_node(tmp_path: Path):
    with ServeProcess("--tls", "--certs-dir", str(tmp_path / "certs")) as served:
        served.wait_listening()
        yield served
        status, _, err = served.stop()
        assert status == 0, err


def test_cqlsh_with_a_cqlshrc(tls_node, tmp_path):
    cqlshrc = write_cqlshrc(tmp_path / "cqlshrc", certfile=tmp_path / "certs" / "ca.pem")
    result = run_cqlsh(tmp_path / "home", "--ssl", "--cqlshrc", str(cqlshrc), "127.0.0.1", str(tls_node.port),
                       "-e", QUERY)
    assert_release_version(result)


def test_cqlsh_with_ssl_environment_variables(tls_node, tmp_path):
    env = {"SSL_CERTFILE": str(tmp_path / "certs" / "ca.pem"), "SSL_VALIDATE": "true"}
    result = run_cqlsh(tmp_path / "home", "--ssl", "127.0.0.1", str(tls_node.port), "-e", QUERY, env=env)
    assert_release_version(result)


def test_cqlsh_checking_the_host_name(tls_node, tmp_path):
    cqlshrc = write_cqlshrc(tmp_path / "cqlshrc", certfile=tmp_path / "certs" / "ca.pem")
    with cqlshrc.open("a") as rc:
        rc.write("check_hostname = true\n")
    result = run_cqlsh(tmp_path / "home", "--ssl", "--cqlshrc", str(cqlshrc), "127.0.0.1", str(tls_node.port),
                       "-e", QUERY)
    assert_release_version(result)


def test_cqlsh_refuses_a_node_its_ca_did_not_sign(tls_node, tmp_path):
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    cqlshrc = write_cqlshrc(tmp_path / "cqlshrc", certfile=other_ca)
    result = run_cqlsh(tmp_path / "home", "--ssl", "--cqlshrc", str(cqlshrc), "127.0.0.1", str(tls_node.port),
                       "-e", QUERY)
    assert_refused(result, "CERTIFICATE_VERIFY_FAILED")


def test_cqlsh_without_ssl_gets_no_answer_from_a_tls_node(tls_node, tmp_path):
    result = run_cqlsh(tmp_path / "home", "--connect-timeout", "3", "127.0.0.1", str(tls_node.port), "-e", QUERY)
    assert_refused(result, "Unable to connect")


def test_the_printed_cqlsh_command_works(tls_node, tmp_path):
    tls_node.read_through("certificates in ")
    command = shlex.split(tls_node.snippet("cqlsh:"))
    assert command[0] == "cqlsh"
    result = run_cqlsh(tmp_path / "home", *command[1:], "-e", QUERY)
    assert_release_version(result)


def test_cqlsh_with_credentials(tmp_path):
    with ServeProcess("--tls", "--certs-dir", str(tmp_path / "certs"), "--auth", "cassandra:s3cret") as served:
        served.wait_listening()
        cqlshrc = write_cqlshrc(tmp_path / "cqlshrc", certfile=tmp_path / "certs" / "ca.pem")
        base = ["--ssl", "--cqlshrc", str(cqlshrc), "127.0.0.1", str(served.port), "-e", QUERY]

        assert_release_version(run_cqlsh(tmp_path / "home", *base, "-u", "cassandra", "-p", "s3cret"))
        assert_refused(run_cqlsh(tmp_path / "home", *base, "-u", "cassandra", "-p", "wrong"), "AuthenticationFailed")

        status, _, err = served.stop()
    assert status == 0, err


def test_cqlsh_with_a_client_certificate_and_credentials(tmp_path):
    certs = tmp_path / "certs"
    with ServeProcess("--mtls", "--certs-dir", str(certs), "--auth", "cassandra:s3cret") as served:
        served.wait_listening()
        served.read_through("certificates in ")

        # The command serve printed, as printed: its cqlshrc names the client certificate.
        command = shlex.split(served.snippet("cqlsh:"))
        assert command[:4] == ["cqlsh", "--ssl", "--cqlshrc", str(certs / "cqlshrc")]
        assert_release_version(run_cqlsh(tmp_path / "home", *command[1:], "-e", QUERY))

        # Negative control: the same without the client certificate.
        cqlshrc = write_cqlshrc(tmp_path / "cqlshrc", certfile=certs / "ca.pem")
        result = run_cqlsh(tmp_path / "home", "--ssl", "--cqlshrc", str(cqlshrc), "-u", "cassandra", "-p", "s3cret",
                           "--connect-timeout", "5", "127.0.0.1", str(served.port), "-e", QUERY)
        assert_refused(result, "Unable to connect")

        status, _, err = served.stop()
    assert status == 0, err
