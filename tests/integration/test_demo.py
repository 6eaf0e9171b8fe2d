# `python -m fakecql demo` as a user runs it: a TLS node, the installed
# driver (scylla-driver or cassandra-driver, whichever this environment
# has) connecting with its default reactor, a query, "demo OK", status 0.
# A reactor this environment cannot load is one line and status 2; a driver
# that cannot connect is "demo FAILED: ..." and status 1.
from __future__ import annotations

import subprocess
import sys

import trustme

from fakecql import NodeIdentity, client_context, demo
from fakecql.reactors import driver_info

TIMEOUT = 60.0


def run_demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakecql", "demo", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def test_demo_connects_the_installed_driver_over_tls():
    result = run_demo()

    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert lines[-1] == "demo OK"
    dist, version = driver_info()
    assert f"driver: {dist} {version}, reactor " in result.stdout
    release = NodeIdentity().release_version
    assert (f"SELECT release_version, cluster_name FROM system.local -> release_version {release}, "
            f"cluster_name {NodeIdentity().cluster_name}") in lines
    assert any(line.startswith("TLS: TLSv1.3, ") for line in lines), result.stdout
    assert any(line.startswith("protocol: ") for line in lines), result.stdout
    assert "  SELECT release_version, cluster_name FROM system.local" in lines  # what the node answered
    assert "Traceback" not in result.stderr


def test_demo_with_an_unloadable_reactor_says_why(monkeypatch, capsys):
    def unloadable(name: str) -> None:
        raise ImportError(f"reactor {name} (cassandra.io.libevreactor.LibevConnection) cannot be imported here: test")

    monkeypatch.setattr(demo, "load_reactor", unloadable)

    assert demo.run_demo(reactor="libev") == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "demo cannot run: reactor libev (cassandra.io.libevreactor.LibevConnection) cannot be imported here: test"
    ]


def test_demo_fails_when_the_driver_cannot_connect(monkeypatch, capsys):
    # Negative control: the driver trusts another CA, so the demo must not say OK.
    other_ca = trustme.CA()
    monkeypatch.setattr(demo, "client_context", lambda ca, **kwargs: client_context(other_ca, **kwargs))

    assert demo.run_demo(connect_timeout=5.0) == 1

    out, err = capsys.readouterr()
    assert "demo OK" not in out
    [line] = err.splitlines()
    assert line.startswith("demo FAILED: NoHostAvailable: ")
    assert "CERTIFICATE_VERIFY_FAILED" in line
