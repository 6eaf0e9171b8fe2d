# The matrix's client-routes scenarios (TestSslThroughNlb's two halves),
# sans I/O: how they are declared, what their NodeSpec refuses, how the
# refused_by_driver promise is judged, and where the expectations table
# says a driver or reactor cannot run them, and why.
from __future__ import annotations

import pytest

from fakecql.matrix.expectations import BUGS, expected_outcome
from fakecql.matrix.scenarios import PROMISES, NodeSpec, scenario
from fakecql.matrix.verdicts import judge

WITHOUT = "test_ssl_without_hostname_verification_through_nlb"
WITH = "test_ssl_with_hostname_verification_raises_error"


def result(**fields):
    base = {"connected": False, "queries_done": 0, "error": "", "error_chain": [], "timed_out": False,
            "certificate_error": False, "driver_refused": False, "unavailable": ""}
    base.update(fields)
    return base


def test_both_halves_are_declared_on_three_scylla_nodes_behind_an_nlb():
    for name in (WITHOUT, WITH):
        declared = scenario(name)
        assert (declared.node.nodes, declared.node.flavor, declared.node.nlb, declared.node.tls) == (3, "scylla", True, True)
        assert declared.client.client_routes and "TestSslThroughNlb" in declared.upstream
    assert scenario(WITHOUT).promise == "connects" and scenario(WITHOUT).client.queries == 20
    assert not scenario(WITHOUT).client.check_hostname
    assert scenario(WITH).promise == "refused_by_driver" and scenario(WITH).client.check_hostname
    assert "ValueError" in PROMISES["refused_by_driver"]


@pytest.mark.parametrize("bad, message", [
    (lambda: NodeSpec(nodes=0), "nodes must be from 1 to 8"),
    (lambda: NodeSpec(nodes=9), "nodes must be from 1 to 8"),
    (lambda: NodeSpec(flavor="dse"), "flavor must be 'cassandra' or 'scylla'"),
    (lambda: NodeSpec(nlb=True), "nlb=True needs flavor='scylla'"),
    (lambda: NodeSpec(nodes=3, auth=True), "several nodes takes no faults, tables, auth"),
])
def test_node_spec_refuses_what_a_cluster_cell_cannot_build(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


def test_refused_by_driver_needs_the_drivers_value_error():
    refused = result(error="ValueError: SSL hostname verification (check_hostname=True) is currently incompatible",
                     error_chain=["ValueError: SSL hostname verification ..."], driver_refused=True)
    assert judge(scenario(WITH), refused, "node: nothing", 0.0) == ("pass", "")
    outcome, cause = judge(scenario(WITH), result(connected=True, queries_done=5), "node: ...", 0.3)
    assert outcome == "fail" and cause.startswith("connected although the driver should have refused")
    other = result(error="AttributeError: x", error_chain=["AttributeError: x"])
    outcome, cause = judge(scenario(WITH), other, "node: nothing", 0.0)
    assert outcome == "fail" and cause.startswith("not refused by Cluster() with a ValueError: AttributeError: x")


@pytest.mark.parametrize("driver, version, reactor, name, expected, bug", [
    ("scylla-driver", "3.29.12", "asyncio", WITHOUT, "pass", ""),
    ("scylla-driver", "3.29.12", "asyncore", WITHOUT, "pass", ""),
    ("scylla-driver", "3.29.12", "libev", WITH, "pass", ""),
    ("cassandra-driver", "3.30.1", "libev", WITHOUT, "unavailable", ""),
    ("cassandra-driver", "3.30.1", "asyncio", WITH, "unavailable", ""),
    ("scylla-driver", "3.29.10", "asyncio", WITHOUT, "xfail", "asyncio-sslsocket"),  # the seed
    ("scylla-driver", "3.29.10", "asyncio", WITH, "pass", ""),  # refused in Cluster(), before any reactor
    ("scylla-driver", "3.29.10", "eventlet", WITHOUT, "xfail", "client-routes-pyopenssl-context"),
    ("scylla-driver", "3.29.10", "twisted", WITH, "unavailable", ""),
])
def test_expectations(driver, version, reactor, name, expected, bug):
    outcome, row = expected_outcome(driver, version, reactor, name, "3.11.7")
    assert outcome == expected
    if bug:
        assert row is not None and row.bug == bug and bug in BUGS
    if expected == "unavailable":
        assert row is not None and row.why
