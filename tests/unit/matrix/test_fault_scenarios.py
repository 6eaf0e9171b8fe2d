# Issue 13's faults in the matrix: every fault verb has a scenario whose
# faults the node can build, and the query-phase promises are judged on
# what the aimed queries did.
from __future__ import annotations

import pytest

from fakecql.faults import VERBS
from fakecql.matrix.runner import aimed_did
from fakecql.matrix.scenarios import AIMED_QUERY, AIMED_TEXT, SCENARIOS, ClientSpec, Scenario, scenario
from fakecql.matrix.verdicts import judge
from fakecql.server import CQLServer

# Scenarios named otherwise than fault_<verb>: the six faults the matrix had before issue 13.
OLDER = {"stall_handshake": "fault_stalled_handshake", "key_update": "tls13_key_update_mid_session",
         "stop_reading": "fault_node_stops_reading_during_large_write", "reset": "fault_reset_on_first_request",
         "close": "fault_close_after_handshake", "dribble": "fault_dribbled_frames_v4"}


def _verbs_of(spec: Scenario) -> set:
    return {verb for verb, _ in spec.node.faults + spec.node.query_faults}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_fault_verb_is_a_scenario_of_the_matrix(verb):
    using = [s.name for s in SCENARIOS if verb in _verbs_of(s)]
    assert using, f"no matrix scenario for the fault {verb}"
    assert any(name == OLDER.get(verb) or name == f"fault_{verb}" or name.startswith(f"fault_{verb}_")
               for name in using), using


def test_every_scenario_fault_builds_on_a_node():
    server = CQLServer()  # never started: the verbs only build and check their faults
    for spec in SCENARIOS:
        for verb, kwargs in spec.node.faults + spec.node.query_faults:
            getattr(server.faults, verb)(**dict(kwargs))
        server.faults.clear()


def test_query_phase_faults_are_aimed_at_the_aimed_query_that_no_driver_sends():
    assert AIMED_TEXT in " ".join(AIMED_QUERY.lower().split())
    for spec in SCENARIOS:
        if spec.client.aimed:
            assert spec.node.query_faults and all(dict(k).get("query") == AIMED_TEXT
                                                  for _, k in spec.node.query_faults), spec.name


def test_a_query_phase_promise_needs_aimed_queries_and_query_error_names_the_error():
    with pytest.raises(ValueError, match="needs ClientSpec\\(aimed=N\\)"):
        Scenario("x", "query_error", 5.0, "s", client=ClientSpec(expect_error="ReadTimeout"))
    with pytest.raises(ValueError, match="needs ClientSpec\\(expect_error"):
        Scenario("x", "query_error", 5.0, "s", client=ClientSpec(aimed=1))
    with pytest.raises(ValueError, match="tls_min and tls_max"):
        ClientSpec(tls_min="1.1")


def _aimed(error="", chain=(), seconds=0.05, timed_out=False):
    return {"seconds": seconds, "error": error, "chain": list(chain), "timed_out": timed_out}


def _result(*aimed, **fields):
    base = {"connected": True, "queries_done": 5, "error": "", "error_chain": [], "timed_out": False,
            "unread": [], "unavailable": "", "aimed": list(aimed), "retries": 0}
    base.update(fields)
    return base


OVERLOADED = scenario("fault_answer_error_overloaded")
NEVER = scenario("fault_never_answer")
DELAYED = scenario("fault_delay_answer")
TRUNCATED = scenario("fault_truncate")


def test_query_error_wants_the_named_driver_error_anywhere_in_the_chain():
    wrapped = _aimed("NoHostAvailable: x", ["NoHostAvailable: x", "OverloadedErrorMessage: overloaded"])
    assert judge(OVERLOADED, _result(wrapped, queries_done=3), "node", 0.5) == ("pass", "")
    other = _aimed("ServerError: boom", ["ServerError: boom"])
    outcome, cause = judge(OVERLOADED, _result(other, queries_done=3), "node", 0.5)
    assert outcome == "fail" and cause.startswith("aimed query 1 of 1 raised ServerError: boom, not OverloadedErrorMessage")
    outcome, cause = judge(OVERLOADED, _result(_aimed(), queries_done=3), "node", 0.5)
    assert cause.startswith("aimed query 1 of 1 was answered in 0.05 s; expected OverloadedErrorMessage")


def test_query_error_then_the_session_must_answer_again():
    timeout = _aimed("OperationTimedOut: x", ["OperationTimedOut: x"], 1.0, True)
    assert judge(NEVER, _result(timeout, timeout), "node", 3.0) == ("pass", "")
    broken = _result(timeout, timeout, queries_done=2, error="OperationTimedOut: y", error_chain=["OperationTimedOut: y"])
    outcome, cause = judge(NEVER, broken, "node", 3.0)
    assert outcome == "fail" and cause.startswith("the session did not answer again after the aimed queries: 2 of 5")
    assert judge(NEVER, _result(timeout), "node", 3.0)[1].startswith("ran 1 of 2 aimed queries")


def test_answered_late_wants_answers_no_sooner_than_the_delay():
    late = _aimed(seconds=1.02)
    assert judge(DELAYED, _result(late, late), "node", 3.0) == ("pass", "")
    outcome, cause = judge(DELAYED, _result(late, _aimed(seconds=0.1)), "node", 3.0)
    assert outcome == "fail" and "sooner than the node's delay" in cause


def test_query_fails_fast_wants_an_error_that_is_not_a_timeout_and_the_fault_acting():
    cut = _aimed("NoHostAvailable: x", ["NoHostAvailable: x", "ConnectionShutdown: closed"])
    assert judge(TRUNCATED, _result(cut, queries_done=3, retries=4), "node", 2.0) == ("pass", "")
    slow = _aimed("OperationTimedOut: x", ["OperationTimedOut: x"], 8.0, True)
    assert judge(TRUNCATED, _result(slow, queries_done=3), "node", 9.0)[1].startswith(
        "aimed query 1 of 1 noticed the cut only at the timeout")
    assert judge(TRUNCATED, _result(cut, queries_done=3), "node", 2.0, fault_acted=False)[1].startswith(
        "the node's fault never acted")


def test_what_the_aimed_queries_did_in_a_few_words():
    wrapped = _aimed("NoHostAvailable: x", ["NoHostAvailable: x", "OverloadedErrorMessage: overloaded"])
    assert aimed_did(_result(wrapped, queries_done=3, retries=2)) == \
        "OverloadedErrorMessage 0.05s; then 3 queries (2 retries)"
    assert aimed_did(_result(_aimed(seconds=1.0))) == "answered 1.00s; then 5 queries"
    assert aimed_did(_result()) == ""


def test_half_close_read_wants_the_first_aimed_query_answered_and_the_next_timed_out():
    half = scenario("fault_half_close_read")
    timeout = _aimed("OperationTimedOut: x", ["OperationTimedOut: x"], 1.0, True)
    assert judge(half, _result(_aimed(), timeout, queries_done=0), "node", 3.0) == ("pass", "")
    outcome, cause = judge(half, _result(timeout, timeout, queries_done=0), "node", 3.0)
    assert outcome == "fail" and cause.startswith("aimed query 1 of 2 failed after 1.00 s, although the fault answers it")
    assert judge(half, _result(_aimed(), _aimed(), queries_done=0), "node", 3.0)[1].startswith(
        "aimed query 2 of 2 was answered")


@pytest.mark.parametrize("driver, version, reactor, name, bug", [
    ("cassandra-driver", "3.30.1", "gevent", "fault_truncate", "gevent-close-kills-own-reader"),
    ("scylla-driver", "3.29.10", "gevent", "fault_answer_error_protocol_error", "gevent-close-kills-own-reader"),
    ("cassandra-driver", "3.30.1", "eventlet", "fault_close_notify_keep_reading",
     "eventlet-pyopenssl-errors-kill-reader"),
    ("scylla-driver", "3.29.12", "libev", "fault_reset_at_byte_body", "libev-eof-with-partial-frame"),
    ("scylla-driver", "3.29.12", "libev", "fault_split_records_v5", "v5-split-segment-header"),
])
def test_the_fault_cells_a_driver_bug_breaks_are_expected_to_fail_with_it(driver, version, reactor, name, bug):
    from fakecql.matrix.expectations import expected_outcome

    outcome, row = expected_outcome(driver, version, reactor, name)
    assert outcome == "xfail" and row is not None and row.bug == bug


def test_the_fault_cells_no_bug_breaks_are_expected_to_pass():
    from fakecql.matrix.expectations import expected_outcome

    for name in ("fault_reset_at_byte_header", "fault_truncate", "fault_answer_error_overloaded",
                 "fault_never_answer", "fault_split_records_v5", "fault_expired_certificate"):
        assert expected_outcome("scylla-driver", "3.29.12", "asyncio", name)[0] == "pass", name
    # The refusals a client meets inside the blocking handshake come before the asyncio bug.
    assert expected_outcome("cassandra-driver", "3.30.1", "asyncio", "fault_expired_certificate")[0] == "pass"
    assert expected_outcome("cassandra-driver", "3.30.1", "eventlet", "fault_wrong_host_certificate")[0] == \
        "unavailable"
