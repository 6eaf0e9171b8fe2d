# The reactor matrix end to end, with the driver of this environment
# (`--driver installed`): real worker processes, real nodes, real verdicts.
# The stock asyncio reactor of a driver with the seed's bug must fail with
# the TypeError it left in a future nobody read, within its budget + 1 s;
# the transport reactor must pass the same scenarios.
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from fakecql import cli
from fakecql.matrix.envs import installed_env
from fakecql.matrix.runner import run_matrix
from fakecql.matrix.scenarios import scenario

from .helpers import stock_asyncio_has_tls_transport, stock_asyncio_needs_callers_loop

SCENARIOS = ["test_can_connect_with_ssl_ca", "tls13_key_update_mid_session", "plain_connects_and_queries"]


def test_transport_keeps_every_promise_and_stock_asyncio_fails_fast_naming_the_lost_type_error():
    # One run for both reactors (pytest-xdist would run a shared fixture once per worker).
    run = run_matrix([installed_env()], [scenario(n) for n in SCENARIOS], reactors=["asyncio", "transport"], jobs=4)

    transport = [c for c in run.cells if c.reactor == "transport"]
    assert [c.scenario for c in transport] == SCENARIOS
    assert all(c.outcome == "pass" and not c.deviates for c in transport), transport
    key_update = next(c for c in transport if c.scenario == "tls13_key_update_mid_session")
    assert key_update.rate and key_update.rate > 0

    stock = {c.scenario: c for c in run.cells if c.reactor == "asyncio"}
    assert all(not c.deviates for c in stock.values()), stock
    if stock_asyncio_needs_callers_loop():  # Python 3.9: another bug of the same reactor comes first
        assert {c.bug for c in stock.values()} == {"asyncio-py39-queue-loop"}
        return
    assert stock["plain_connects_and_queries"].outcome == "pass"
    for name in ("test_can_connect_with_ssl_ca", "tls13_key_update_mid_session"):
        cell = stock[name]
        if stock_asyncio_has_tls_transport():
            assert cell.outcome == "pass", cell
            continue
        assert cell.outcome == "xfail" and cell.bug == "asyncio-sslsocket"
        assert cell.seconds <= cell.budget + 1
        assert "TypeError: Socket cannot be of type SSLSocket (in a concurrent future nobody read)" in cell.cause
        assert re.search(r"\d+ TLS handshakes? completed", cell.cause) and "no CQL frame" in cell.cause


def test_the_command_prints_the_table_writes_the_reports_and_exits_by_the_expectations(tmp_path, capsys):
    status = cli.main(["matrix", "--driver", "installed", "--reactor", "transport", "--reactor", "asyncio",
                       "--scenario", "test_can_connect_with_ssl_ca", "--scenario", "plain_*",
                       "--report-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 0, out + err
    assert "test_can_connect_with_ssl_ca" in out and "PASS" in out
    assert "matrix: 6 cells" in err
    data = json.loads((tmp_path / "matrix.json").read_text())
    assert set(data) >= {"generated", "python", "drivers", "cells"}
    assert len(data["cells"]) == 6
    assert set(data["cells"][0]) >= {"driver", "reactor", "scenario", "outcome", "expected", "seconds", "budget", "cause"}
    suites = ET.parse(tmp_path / "junit.xml").getroot()
    assert sum(int(s.get("tests")) for s in suites.iter("testsuite")) == 6
    assert (tmp_path / "matrix.html").read_text().count("<table") >= 1
    assert "|" in (tmp_path / "matrix.md").read_text()


def test_bad_input_is_one_line_and_status_2(capsys):
    assert cli.main(["matrix", "--driver", "installed", "--scenario", "no_such_*"]) == 2
    assert "--scenario 'no_such_*' matches no scenario" in capsys.readouterr().err
    assert cli.main(["matrix", "--driver", "mongo-driver==1.0"]) == 2
    assert "the driver must be one of scylla-driver, cassandra-driver" in capsys.readouterr().err
