# Judging a cell: did the reactor keep the scenario's promise, and if not,
# what is the cause, in one line a person can act on.
#
# Strategy: a pure function of the scenario, what the client reported
# (client.ClientResult as JSON), what the node saw (causes.node_saw) and
# how long it took. A refusal must be the node's or the certificate's, not a
# timeout: a reactor that hangs until OperationTimedOut has not been
# "refused", it has failed, and the cause says what it left unread.
from __future__ import annotations

from typing import Any, Dict, List, Tuple

from .scenarios import Scenario

__all__ = ["judge"]


def _unread(result: Dict[str, Any]) -> str:
    found: List[str] = result.get("unread") or []
    return ("; left unread: " + " | ".join(found)) if found else ""


def judge(scenario: Scenario, result: Dict[str, Any], node_line: str, seconds: float,
          fault_acted: bool = True, node_refused: bool = True) -> Tuple[str, str]:
    """(outcome, cause): outcome is pass, fail or unavailable; cause is '' for a pass.
    `fault_acted`: the node logged that a fault of the scenario acted (a
    failure the fault did not cause keeps no promise about the fault);
    `node_refused`: the node logged a failed TLS handshake (a client that
    fails on its own has not been refused)."""
    if result.get("unavailable"):
        return "unavailable", str(result["unavailable"])
    error = str(result.get("error") or "")
    chain = [str(e) for e in result.get("error_chain") or []]
    inner = _innermost(chain) or error
    connected = bool(result.get("connected"))
    timed_out = bool(result.get("timed_out"))
    tail = f"{_unread(result)}; {node_line}"  # what was lost first: it is the cause

    verdict = "pass"
    cause = ""
    promise = scenario.promise
    if promise == "connects":
        if not connected:
            verdict, cause = "fail", f"did not connect: {inner}"
        elif error:
            done = result.get("queries_done", 0)
            verdict, cause = "fail", f"connected, then failed after {done} of {scenario.client.queries} queries: {inner}"
    elif promise in ("refused_certificate", "refused"):
        if connected:
            verdict, cause = "fail", f"connected although it should have been refused ({scenario.summary})"
        elif timed_out and not result.get("certificate_error"):
            verdict, cause = "fail", f"timed out instead of being refused: {inner}"
        elif promise == "refused_certificate" and not result.get("certificate_error"):
            verdict, cause = "fail", f"refused, but not for the certificate: {inner}"
        elif promise == "refused" and not node_refused:
            verdict, cause = "fail", f"failed, but the node refused nothing: {inner}"
    elif promise == "refused_credentials":
        if connected:
            verdict, cause = "fail", f"connected although it should have been refused ({scenario.summary})"
        elif not result.get("authentication_failed"):
            verdict, cause = "fail", f"failed, but not by the authenticator: {inner}"
    elif promise == "fails_fast":
        if connected:
            verdict, cause = "fail", f"connected although the node ended the connection ({scenario.summary})"
        elif timed_out:
            verdict, cause = "fail", f"noticed only at the timeout: {inner}"
        elif not fault_acted:
            verdict, cause = "fail", f"failed before the fault acted: {inner}"
    elif promise == "refused_by_driver":
        if connected:
            verdict, cause = "fail", f"connected although the driver should have refused ({scenario.summary})"
        elif not result.get("driver_refused"):
            verdict, cause = "fail", f"not refused by Cluster() with a ValueError: {inner or 'no error at all'}"
    elif promise == "fails_within_budget":
        if connected:
            verdict, cause = "fail", f"connected although the node never finished the handshake ({scenario.summary})"
        elif not fault_acted:
            verdict, cause = "fail", f"failed before the fault acted: {inner}"
    elif promise in ("query_error", "answered_late", "query_fails_fast", "recovers"):
        done = result.get("queries_done", 0)
        if not connected:
            verdict, cause = "fail", f"did not connect: {inner}"
        elif _aimed_problem(scenario, result.get("aimed") or []):
            verdict, cause = "fail", _aimed_problem(scenario, result.get("aimed") or [])
        elif error:
            verdict, cause = "fail", (f"the session did not answer again after the aimed queries: {done} of "
                                      f"{scenario.client.queries} queries, then {inner}")
        elif promise in ("query_fails_fast", "recovers") and not fault_acted:
            verdict, cause = "fail", "the node's fault never acted: nothing was cut"
    if verdict == "pass" and seconds > scenario.budget:
        verdict, cause = "fail", f"took {seconds:.1f} s, over its budget of {scenario.budget:.1f} s" + (
            f": {inner}" if inner else "")
    if verdict == "pass":
        return "pass", ""
    return "fail", cause + tail


def _aimed_problem(scenario: Scenario, aimed: List[Dict[str, Any]]) -> str:
    """What the aimed queries did that the scenario's promise excludes ("" when nothing)."""
    spec = scenario.client
    if len(aimed) != spec.aimed:
        return f"ran {len(aimed)} of {spec.aimed} aimed queries"
    for number, run in enumerate(aimed, 1):
        error, seconds = str(run.get("error") or ""), float(run.get("seconds") or 0.0)
        chain = [str(e) for e in run.get("chain") or []]
        what = f"aimed query {number} of {spec.aimed}"
        if scenario.promise == "query_error" and number <= spec.answered_first:
            if error:
                return f"{what} failed after {seconds:.2f} s, although the fault answers it: {_innermost(chain) or error}"
        elif scenario.promise == "query_error":
            if not error:
                return f"{what} was answered in {seconds:.2f} s; expected {spec.expect_error}"
            names = {e.split(":", 1)[0] for e in chain}
            if spec.expect_error not in names:
                return f"{what} raised {_innermost(chain) or error}, not {spec.expect_error}"
        elif scenario.promise in ("answered_late", "recovers"):
            if error:
                return f"{what} failed after {seconds:.2f} s: {_innermost(chain) or error}"
            if spec.min_answer and seconds < spec.min_answer * 0.9:
                return (f"{what} was answered in {seconds:.2f} s, sooner than the node's delay of "
                        f"{spec.min_answer:.2f} s: the fault did not hold it")
        elif scenario.promise == "query_fails_fast":
            if not error:
                return f"{what} was answered in {seconds:.2f} s, although the node cut its connection"
            if run.get("timed_out"):
                return f"{what} noticed the cut only at the timeout, after {seconds:.2f} s: {_innermost(chain)}"
    return ""


def _innermost(chain: List[str]) -> str:
    """The most specific error in the chain: the last one that is not a wrapper."""
    wrappers = ("NoHostAvailable", "ConnectionShutdown")
    useful = [e for e in chain if not e.startswith(wrappers)]
    if not useful:
        return chain[0] if chain else ""
    return " <- ".join(dict.fromkeys(useful[:2]))
