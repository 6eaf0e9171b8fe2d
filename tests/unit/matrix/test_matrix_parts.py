# The matrix's pure parts: scenarios as data, the expectations table, the
# verdict on a cell, driver specs, and finding exceptions nobody read.
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import sys
import threading

import pytest

from fakecql.activity import ConnectionOpened, FaultApplied, FrameReceived, HandshakeCompleted, HandshakeFailed
from fakecql.matrix.causes import UnreadExceptions, node_saw, tracebacks_in
from fakecql.matrix.envs import parse_driver_spec
from fakecql.matrix.expectations import BUGS, EXPECTATIONS, Expectation, driver_matches, expected_outcome
from fakecql.matrix.scenarios import SCENARIOS, ClientSpec, NodeSpec, Scenario, scenario, select_scenarios
from fakecql.matrix.verdicts import judge


# -- scenarios -----------------------------------------------------------------------------

def test_the_fourteen_upstream_tests_are_all_there():
    from fakecql.matrix.scenarios import UPSTREAM  # test_ssl.py (client routes scenarios cite another file)

    upstream = [s.name for s in SCENARIOS if s.upstream == UPSTREAM]
    assert len(upstream) == 14 == len(set(upstream))
    assert all(name.startswith("test_") for name in upstream)
    # Both of the driver's TLS paths are exercised.
    assert {scenario(n).client.tls_path for n in upstream} >= {"options", "context", "default_context"}


def test_every_scenario_has_a_budget_above_the_connect_timeout_and_plain_controls_exist():
    from fakecql.matrix.scenarios import CONNECT_TIMEOUT

    assert all(s.budget > CONNECT_TIMEOUT for s in SCENARIOS)
    assert [s.name for s in SCENARIOS if not s.tls] == ["plain_connects_and_queries", "plain_large_write"]
    assert all(scenario(s.baseline) for s in SCENARIOS if s.baseline)


def test_select_scenarios_by_glob_keeps_order_and_names_a_glob_that_matches_nothing():
    chosen = select_scenarios(["fault_*", "plain_connects*"])
    assert [s.name for s in chosen] == [s.name for s in SCENARIOS
                                        if s.name.startswith("fault_") or s.name == "plain_connects_and_queries"]
    with pytest.raises(ValueError, match="'nothing\\*' matches no scenario"):
        select_scenarios(["nothing*"])


@pytest.mark.parametrize("bad, message", [
    (lambda: Scenario("x", "maybe", 1.0, "s"), "promise must be one of"),
    (lambda: Scenario("x", "connects", 0, "s"), "budget must be positive"),
    (lambda: NodeSpec(cert="self-signed"), "cert must be"),
    (lambda: NodeSpec(tls=False, mtls=True), "mtls=True needs tls=True"),
    (lambda: ClientSpec(tls_path="telnet"), "tls_path must be"),
    (lambda: ClientSpec(client_cert="stolen"), "client_cert must be"),
])
def test_specs_refuse_values_that_mean_nothing(bad, message):
    with pytest.raises(ValueError, match=message):
        bad()


# -- expectations --------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, name, version, matches", [
    ("*", "scylla-driver", "3.29.12", True),
    ("cassandra-driver", "cassandra-driver", "3.30.1", True),
    ("cassandra-driver", "scylla-driver", "3.30.1", False),
    ("scylla-driver<3.29.11", "scylla-driver", "3.29.10", True),
    ("scylla-driver<3.29.11", "scylla-driver", "3.29.11", False),
    ("scylla-driver<3.29.11", "scylla-driver", "3.29.9", True),
    ("scylla-driver>=3.29.11", "scylla-driver", "3.29.12", True),
])
def test_driver_patterns_compare_versions_as_numbers(pattern, name, version, matches):
    assert driver_matches(pattern, name, version) is matches


def test_every_xfail_row_names_a_written_up_bug():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "upstream-bugs.md").read_text()
    for row in EXPECTATIONS:
        if row.outcome == "xfail":
            assert row.bug in BUGS
            assert f'<a id="{row.bug}"></a>' in doc, f"docs/upstream-bugs.md has no anchor for {row.bug}"
    with pytest.raises(ValueError, match="must name a known bug"):
        Expectation("*", "*", "*", "xfail", "no-such-bug")


def test_unmatched_cells_are_expected_to_pass_and_the_seed_bug_is_expected_where_it_lives():
    assert expected_outcome("scylla-driver", "3.29.12", "transport", "test_can_connect_with_ssl_ca")[0] == "pass"
    assert expected_outcome("cassandra-driver", "3.30.1", "asyncio", "test_can_connect_with_ssl_ca")[0] == "xfail"
    assert expected_outcome("scylla-driver", "3.29.10", "asyncio", "tls13_key_update_mid_session")[0] == "xfail"
    assert expected_outcome("scylla-driver", "3.29.12", "asyncio", "test_can_connect_with_ssl_ca")[0] == "pass"
    # Plain TCP never meets the SSLSocket bug; on Python 3.9 cassandra-driver's asyncio reactor has another.
    assert expected_outcome("cassandra-driver", "3.30.1", "asyncio", "plain_connects_and_queries", "3.11.7")[0] == "pass"
    outcome, row = expected_outcome("cassandra-driver", "3.29.3", "asyncio", "plain_connects_and_queries", "3.9.18")
    assert outcome == "xfail" and row is not None and row.bug == "asyncio-py39-queue-loop"


# -- verdicts ------------------------------------------------------------------------------

CONNECTS = scenario("test_can_connect_with_ssl_ca")
REFUSED_CERT = scenario("test_cannot_connect_with_invalid_hostname")
FAILS_FAST = scenario("fault_reset_on_first_request")
TIMEOUT = "OperationTimedOut: errors=Timed out creating connection (2.0 seconds), last_host=None"


def result(**fields):
    base = {"connected": False, "queries_done": 0, "error": "", "error_chain": [], "certificate_error": False,
            "timed_out": False, "unread": [], "unavailable": ""}
    base.update(fields)
    return base


def test_a_connect_that_times_out_fails_and_names_what_was_left_unread():
    outcome, cause = judge(CONNECTS, result(error="NoHostAvailable: x", error_chain=["NoHostAvailable: x", TIMEOUT],
                                            timed_out=True,
                                            unread=["TypeError: Socket cannot be of type SSLSocket "
                                                    "(in a concurrent future nobody read)"]),
                           "node: 1 connection", 2.0)
    assert outcome == "fail"
    assert cause.startswith("did not connect: OperationTimedOut")
    assert "node: 1 connection" in cause and "TypeError: Socket cannot be of type SSLSocket" in cause


def test_connecting_where_a_refusal_was_promised_is_connected_although():
    outcome, cause = judge(REFUSED_CERT, result(connected=True, queries_done=5), "node: ...", 0.3)
    assert outcome == "fail" and cause.startswith("connected although it should have been refused")


def test_a_refusal_must_be_for_the_certificate_and_not_a_timeout():
    cert = result(error="NoHostAvailable: x", error_chain=["SSLCertVerificationError: hostname mismatch"],
                  certificate_error=True)
    assert judge(REFUSED_CERT, cert, "node", 0.1) == ("pass", "")
    other = result(error="NoHostAvailable: x", error_chain=["ConnectionRefusedError: no"])
    assert judge(REFUSED_CERT, other, "node", 0.1)[1].startswith("refused, but not for the certificate")
    slow = result(error="NoHostAvailable: x", error_chain=[TIMEOUT], timed_out=True)
    assert judge(REFUSED_CERT, slow, "node", 2.0)[1].startswith("timed out instead of being refused")


def test_refused_means_the_node_refused():
    alert = result(error="NoHostAvailable: x", error_chain=["SSLError: tlsv13 alert certificate required"])
    refused = scenario("test_cannot_connect_without_client_auth")
    assert judge(refused, alert, "node", 0.1, node_refused=True) == ("pass", "")
    outcome, cause = judge(refused, alert, "node", 0.1, node_refused=False)
    assert outcome == "fail" and cause.startswith("failed, but the node refused nothing")


def test_refused_credentials_means_the_authenticator_said_no():
    wrong = scenario("tls_wrong_password_is_refused")
    failed = result(error="NoHostAvailable: x", error_chain=["AuthenticationFailed: Failed to authenticate"],
                    authentication_failed=True)
    assert judge(wrong, failed, "node", 0.1) == ("pass", "")
    other = result(error="NoHostAvailable: x", error_chain=[TIMEOUT], timed_out=True)
    assert judge(wrong, other, "node", 2.0)[1].startswith("failed, but not by the authenticator")


def test_fails_fast_means_the_fault_acted_and_no_timeout():
    reset = result(error="NoHostAvailable: x", error_chain=["ConnectionResetError: reset"])
    assert judge(FAILS_FAST, reset, "node", 0.1) == ("pass", "")
    assert judge(FAILS_FAST, reset, "node", 0.1, fault_acted=False)[1].startswith("failed before the fault acted")
    late = result(error="NoHostAvailable: x", error_chain=[TIMEOUT], timed_out=True)
    assert judge(FAILS_FAST, late, "node", 2.0)[1].startswith("noticed only at the timeout")


def test_over_budget_fails_even_when_the_promise_was_kept():
    outcome, cause = judge(CONNECTS, result(connected=True, queries_done=5), "node", CONNECTS.budget + 0.5)
    assert outcome == "fail" and cause.startswith("took ")


def test_unavailable_is_reported_with_its_reason():
    assert judge(CONNECTS, result(unavailable="needs pyOpenSSL"), "node", 0.0) == ("unavailable", "needs pyOpenSSL")


# -- driver specs --------------------------------------------------------------------------

def test_driver_specs():
    assert str(parse_driver_spec("cassandra-driver==3.30.1")) == "cassandra-driver==3.30.1"
    assert parse_driver_spec("scylla_driver").requirement == "scylla-driver"
    for bad in ("pymongo==4.0", "scylla-driver>=3", ""):
        with pytest.raises(ValueError, match="driver spec"):
            parse_driver_spec(bad)


# -- what the node saw ------------------------------------------------------------------

def test_node_saw_a_handshake_and_then_silence():
    entries = [ConnectionOpened(1, peer=("127.0.0.1", 1), tls=True, at=10.0),
               HandshakeCompleted(1, protocol="TLSv1.3", at=10.1)]
    line = node_saw(entries, since=10.0, until=12.1)
    assert line == "node: 1 connection; 1 TLS handshake completed (TLSv1.3); no CQL frame in the 2.0 s after the first handshake"


def test_node_saw_frames_faults_and_failed_handshakes():
    entries = [ConnectionOpened(1, tls=True), HandshakeFailed(1, reason="UNKNOWN_CA"), ConnectionOpened(2, tls=True),
               HandshakeCompleted(2, protocol="TLSv1.2"), FrameReceived(2, opcode="OPTIONS"),
               FrameReceived(2, opcode="STARTUP"), FaultApplied(2, fault="ResetConnection", detail="reset")]
    line = node_saw(entries, since=0, until=1)
    assert "2 connections" in line and "TLS handshake failed: UNKNOWN_CA" in line
    assert "frames OPTIONS x1, STARTUP x1" in line and "ResetConnection seed=0: reset" in line


# -- exceptions nobody read ---------------------------------------------------------------

@pytest.fixture
def unread():
    found = UnreadExceptions().start()
    yield found
    found.stop()


def test_an_exception_in_a_future_nobody_read_is_found_and_a_read_one_is_not(unread):
    lost: concurrent.futures.Future = concurrent.futures.Future()
    lost.set_exception(TypeError("Socket cannot be of type SSLSocket"))
    seen: concurrent.futures.Future = concurrent.futures.Future()
    seen.set_exception(ValueError("somebody read me"))
    assert isinstance(seen.exception(), ValueError)
    assert unread.report() == ["TypeError: Socket cannot be of type SSLSocket (in a concurrent future nobody read)"]


def test_the_seeds_bug_shape_run_coroutine_threadsafe_on_a_loop_thread(unread):
    # What the driver did: a coroutine on another thread's loop raises, and
    # the concurrent future run_coroutine_threadsafe returned is never read.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def handle_write():
        raise TypeError("Socket cannot be of type SSLSocket")

    try:
        future = asyncio.run_coroutine_threadsafe(handle_write(), loop)
        concurrent.futures.wait([future], timeout=5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert "TypeError: Socket cannot be of type SSLSocket (in a concurrent future nobody read)" in unread.report()
    del future


# The thread's death is the point: pytest's own thread hook (ours chains to
# it) would turn it into a warning, hence an error.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_thread_deaths_log_records_and_stderr_tracebacks_are_found():
    # Started here, not in a fixture: pytest puts its own sys.stderr back
    # between a test's set-up and its call.
    unread = UnreadExceptions().start()
    try:
        def die():
            raise KeyError("lost in a thread")

        thread = threading.Thread(target=die, name="reader")
        thread.start()
        thread.join(5)
        try:
            raise OSError("logged at debug")
        except OSError:
            logging.getLogger("cassandra.connection").debug("Error reading", exc_info=True)
        sys.stderr.write("Traceback (most recent call last):\n  File \"x\", line 1\nOpenSSL.SSL.ZeroReturnError\n")
        found = unread.report(seen=["OSError: never mind"])
    finally:
        unread.stop()
    assert "KeyError: 'lost in a thread' (in thread reader, which died of it)" in found
    assert any(line.startswith("OSError: logged at debug (in a log record of cassandra.connection") for line in found)
    assert "OpenSSL.SSL.ZeroReturnError (in a traceback printed to stderr)" in found


def test_the_error_the_caller_got_is_not_unread(unread):
    try:
        raise RuntimeError("the caller saw this")
    except RuntimeError:
        logging.getLogger("x").warning("failed", exc_info=True)
    assert unread.report(seen=["RuntimeError: the caller saw this"]) == []


def test_tracebacks_in_text():
    text = ("noise\nTraceback (most recent call last):\n  File \"a.py\", line 1, in f\n    g()\n"
            "TypeError: a bytes-like object is required, not 'str'\nmore noise\n")
    assert tracebacks_in(text) == ["TypeError: a bytes-like object is required, not 'str'"]


def test_cell_records_are_frozen():
    from fakecql.matrix.records import Cell

    cell = Cell("d", "r", "s", "pass", "pass", 0.1, 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.outcome = "fail"  # type: ignore[misc]
