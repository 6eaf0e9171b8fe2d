# The expected outcome of every (driver, reactor, scenario) cell: one table.
#
# Strategy: rows are matched in order and the first that matches a cell
# gives its expectation; a cell no row matches is expected to pass. A row
# that expects a failure names a Bug, written up in docs/upstream-bugs.md
# (what, where in the driver's code, how fakecql shows it), so every
# "XFAIL" in a report points at the explanation. Driver patterns are a
# name with an optional version bound ("scylla-driver<3.29.11"); reactor
# and scenario patterns are globs.
#
# Rules: xfail only for a third-party bug; nothing of ours is ever expected
# to fail (fix it instead). When a driver release fixes a bug, its cells
# pass, deviate, and the run exits 1 until this table says so.
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

__all__ = ["Bug", "BUGS", "Expectation", "EXPECTATIONS", "expected_outcome", "driver_matches"]


@dataclass(frozen=True)
class Bug:
    id: str
    title: str
    upstream: str  # an upstream issue, or why none is cited

    @property
    def doc(self) -> str:
        return f"docs/upstream-bugs.md#{self.id}"


BUGS: Dict[str, Bug] = {b.id: b for b in (
    Bug("asyncio-sslsocket",
        "the asyncio reactor hands an ssl.SSLSocket to loop.sock_sendall/sock_recv; the TypeError dies in a "
        "future nobody reads and the connection hangs until OperationTimedOut",
        "scylladb/python-driver#821 (fixed in scylla-driver 3.29.11)"),
    Bug("v5-split-segment-header",
        "protocol v5: a segment header that arrives in pieces is dropped by reset_io_buffer(), then a CRC "
        "mismatch or a hang", "not reported yet"),
    Bug("libev-close-connected-event",
        "libev's close() never sets connected_event: a node ending the connection during the startup is "
        "noticed only at the connect timeout", "scylladb/python-driver#172 (fixed in scylla-driver by #292)"),
    Bug("ssl-options-check-hostname-ignored",
        "ssl_options={'check_hostname': True} beside an ssl_context is ignored: Connection._check_hostname "
        "is never set", "not reported yet"),
    Bug("pyopenssl-reactors-reject-ssl-options",
        "eventlet and twisted get a Python ssl.SSLContext built from ssl_options and hand it to pyOpenSSL",
        "not reported yet"),
    Bug("twisted-mutates-shared-context",
        "twisted's _SSLCreator calls set_info_callback on the application's pyOpenSSL context for every "
        "connection; pyOpenSSL refuses after the first", "not reported yet"),
    Bug("eventlet-pyopenssl-errors-kill-reader",
        "eventlet's handle_read catches only socket.error: pyOpenSSL's ZeroReturnError/SysCallError kill the "
        "reader greenthread and the connection hangs", "not reported yet"),
    Bug("asyncio-py39-queue-loop",
        "Python 3.9: cassandra-driver's asyncio reactor builds asyncio.Queue() in the connecting thread, so "
        "connections opened from the driver's executor threads fail (no current event loop)",
        "since PYTHON-1313 (apache/cassandra-python-driver#1179); scylla-driver keeps loop= below 3.10"),
    Bug("gevent-close-kills-own-reader",
        "gevent's close() kills its own read greenlet (kill(block=False)); GreenletExit lands inside "
        "error_all_requests(), so a query in flight when the node ends the connection hangs until its timeout",
        "not reported yet"),
    Bug("libev-eof-with-partial-frame",
        "libev's handle_read takes an EOF (recv() returning b'') for data while part of a frame is buffered: the "
        "connection is never closed, the watcher fires in a busy loop, and the query waits for its timeout",
        "not reported yet"),
    Bug("eventlet-wrap-returns-none",
        "scylla-driver 3.29.10/3.29.11's EventletConnection._wrap_socket_from_context returns None, so every TLS "
        "connect through an ssl_context fails with AttributeError", "not reported yet (gone from 3.29.12)"),
    Bug("client-routes-pyopenssl-context",
        "Cluster(client_routes_config=...) reads ssl_context.check_hostname, which a pyOpenSSL context (eventlet, "
        "twisted) lacks: AttributeError before any connection", "not reported yet (the reactors are gone from 3.29.12)"),
)}


@dataclass(frozen=True)
class Expectation:
    driver: str  # "cassandra-driver", "scylla-driver<3.29.11", "*"
    reactor: str  # glob
    scenario: str  # glob
    outcome: str  # "xfail" or "unavailable" (or "pass", to stop later rows matching)
    bug: str = ""  # a BUGS id, for xfail
    why: str = ""  # for unavailable
    python: str = ""  # a bound on the environment's Python, like "<3.10"; "" for any

    def __post_init__(self) -> None:
        if self.outcome not in ("pass", "xfail", "unavailable"):
            raise ValueError(f"expectation outcome must be pass, xfail or unavailable, got {self.outcome!r}")
        if self.outcome == "xfail" and self.bug not in BUGS:
            raise ValueError(f"an xfail expectation must name a known bug, got {self.bug!r}")


# The TLS scenarios that go through ssl_options alone (upstream's legacy path).
_OPTIONS_PATH = ("test_can_connect_with_ssl_ca", "test_can_connect_with_ssl_long_running",
                 "test_can_connect_with_ssl_ca_host_match", "test_can_connect_with_ssl_client_auth",
                 "test_can_connect_with_ssl_client_auth_host_name", "test_cannot_connect_without_client_auth",
                 "test_cannot_connect_with_bad_client_auth", "test_cannot_connect_with_invalid_hostname",
                 "test_ssl_want_write_errors_are_retried")
_SEED_DRIVERS = ("cassandra-driver", "scylla-driver<3.29.11")


# Issue 13's faults that end a connection under a query in flight (aimed at it).
_CUT_MID_QUERY = ("fault_truncate", "fault_data_after_close_notify", "fault_close_notify_keep_reading",
                  "fault_reset_at_byte_header", "fault_reset_at_byte_body", "fault_half_close_write")
# Issue 13's faults a client meets inside the blocking TLS handshake: refused
# certificates and TLS versions.
_REFUSED_IN_HANDSHAKE = ("fault_expired_certificate", "fault_not_yet_valid_certificate",
                         "fault_wrong_host_certificate", "fault_untrusted_certificate",
                         "fault_self_signed_certificate", "fault_only_tls_version_13", "fault_only_tls_version_12")

_CLIENT_ROUTES = ("test_ssl_without_hostname_verification_through_nlb",
                  "test_ssl_with_hostname_verification_raises_error")


def _rows() -> Tuple[Expectation, ...]:
    # Client routes are scylla-driver's (cassandra.client_routes); the refusal of
    # check_hostname happens in Cluster(), before any reactor connects.
    rows = [Expectation("cassandra-driver", "*", name, "unavailable",
                        why="cassandra-driver has no client routes (no cassandra.client_routes)")
            for name in _CLIENT_ROUTES]
    for reactor in ("eventlet", "twisted"):
        rows.append(Expectation("*", reactor, _CLIENT_ROUTES[0], "xfail", "client-routes-pyopenssl-context"))
        rows.append(Expectation("*", reactor, _CLIENT_ROUTES[1], "unavailable",
                                why="a pyOpenSSL context has no check_hostname to turn on"))
    rows.append(Expectation("*", "*", _CLIENT_ROUTES[1], "pass"))
    for reactor in ("eventlet", "twisted"):
        rows.append(Expectation("*", reactor, "fault_wrong_host_certificate", "unavailable",
                                why="a pyOpenSSL context checks no host name, and the driver's own check "
                                    "(ssl_options beside a context) is bug ssl-options-check-hostname-ignored"))
    rows.append(Expectation("cassandra-driver", "asyncio", "*", "xfail", "asyncio-py39-queue-loop", python="<3.10"))
    # The seed: every TLS scenario of the stock asyncio reactor, but those that
    # end inside the blocking TLS handshake, before the reactor's sock_*
    # calls (a certificate refused by the client, a stalled handshake).
    # scylla-driver 3.29.10 opens a second control connection after the first hangs
    # (the bug); the node resets it at accept, and that reset is the error it raises.
    rows.append(Expectation("scylla-driver<3.29.11", "asyncio", "fault_refuse_connections_after", "pass"))
    for driver in _SEED_DRIVERS:
        for passing in ("plain_*", "test_cannot_connect_with_invalid_hostname", "tls_unknown_ca_is_refused",
                        "fault_stalled_handshake", "fault_blackhole") + _REFUSED_IN_HANDSHAKE:
            rows.append(Expectation(driver, "asyncio", passing, "pass"))
        rows.append(Expectation(driver, "asyncio", "*", "xfail", "asyncio-sslsocket"))
    # The reactors that do TLS with pyOpenSSL cannot take a Python SSLContext.
    for reactor in ("eventlet", "twisted"):
        rows.append(Expectation("*", reactor, "test_can_connect_with_sslcontext_default_context", "unavailable",
                                why="the reactor takes pyOpenSSL contexts only (upstream skips this test for it)"))
        rows.extend(Expectation("*", reactor, name, "xfail", "pyopenssl-reactors-reject-ssl-options")
                    for name in _OPTIONS_PATH)
    rows.append(Expectation("*", "twisted", "plain_*", "pass"))
    # A handshake the node stalls never gets to a second connection; cassandra-driver
    # gives up on a node that closed after the handshake before opening another.
    rows.append(Expectation("*", "twisted", "fault_stalled_handshake", "pass"))
    # A node that never answers: the first connection times out, there is no second.
    rows.append(Expectation("*", "twisted", "fault_blackhole", "pass"))
    rows.append(Expectation("cassandra-driver", "twisted", "fault_close_after_handshake", "pass"))
    # cassandra-driver does not retry a control connection the certificate failed; scylla-driver
    # 3.29.10 does, with the same context, and meets the bug.
    rows.append(Expectation("cassandra-driver", "twisted", "tls_unknown_ca_is_refused", "pass"))
    rows.extend(Expectation("cassandra-driver", "twisted", name, "pass") for name in _REFUSED_IN_HANDSHAKE)
    rows.append(Expectation("*", "twisted", "*", "xfail", "twisted-mutates-shared-context"))
    rows.append(Expectation("scylla-driver<3.29.12", "eventlet", "plain_*", "pass"))
    rows.append(Expectation("scylla-driver<3.29.12", "eventlet", "*", "xfail", "eventlet-wrap-returns-none"))
    rows.append(Expectation("*", "eventlet", "fault_close_after_handshake", "xfail",
                            "eventlet-pyopenssl-errors-kill-reader"))
    rows.append(Expectation("*", "eventlet", "fault_reset_on_first_request", "xfail",
                            "eventlet-pyopenssl-errors-kill-reader"))
    for name in ("fault_close_after_handshake", "fault_reset_on_first_request"):
        rows.append(Expectation("cassandra-driver", "libev", name, "xfail", "libev-close-connected-event"))
    # Issue 13's faults: a cut under a query in flight.
    rows.extend(Expectation("*", "eventlet", name, "xfail", "eventlet-pyopenssl-errors-kill-reader")
                for name in _CUT_MID_QUERY + ("fault_close_after_requests",))
    rows.extend(Expectation("*", "gevent", name, "xfail", "gevent-close-kills-own-reader")
                for name in _CUT_MID_QUERY + ("fault_answer_error_protocol_error",))
    rows.append(Expectation("*", "libev", "fault_reset_at_byte_body", "xfail", "libev-eof-with-partial-frame"))
    # cqltransport (on asyncio and on uvloop) checks the name itself when ssl_options ask for it.
    rows.append(Expectation("*", "transport*", "test_cannot_connect_ssl_context_with_invalid_hostname", "pass"))
    rows.append(Expectation("*", "*", "test_cannot_connect_ssl_context_with_invalid_hostname", "xfail",
                            "ssl-options-check-hostname-ignored"))
    # cqltransport hands the driver whole v5 segments (its work-around).
    for name in ("fault_dribbled_frames_v5", "fault_split_records_v5"):
        rows.append(Expectation("*", "transport*", name, "pass"))
    # scylla-driver 3.29.12's asyncio reads what TLS records arrived together at once:
    # 16-byte records sent without a pause reach it as whole segments.
    rows.append(Expectation("scylla-driver>=3.29.12", "asyncio", "fault_split_records_v5", "pass"))
    for name in ("fault_dribbled_frames_v5", "fault_split_records_v5"):
        rows.append(Expectation("*", "*", name, "xfail", "v5-split-segment-header"))
    return tuple(rows)


EXPECTATIONS: Tuple[Expectation, ...] = _rows()

_BOUND = re.compile(r"^(?P<name>[a-z-]+)\s*(?:(?P<op><=|>=|==|<|>)\s*(?P<version>[0-9.]+))?$")


def _version(text: str) -> Tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:4])


def driver_matches(pattern: str, name: str, version: str) -> bool:
    if pattern == "*":
        return True
    match = _BOUND.match(pattern)
    if not match:
        raise ValueError(f"driver pattern {pattern!r} is not NAME or NAME<op>VERSION")
    if match.group("name") != name:
        return False
    op = match.group("op")
    if op is None:
        return True
    have, bound = _version(version), _version(match.group("version"))
    return {"<": have < bound, "<=": have <= bound, ">": have > bound, ">=": have >= bound,
            "==": have == bound}[op]


def python_matches(bound: str, python: str) -> bool:
    """Whether Python `python` ("3.9.18") is within `bound` ("<3.10", ">=3.12"; "" for any)."""
    if not bound:
        return True
    match = re.match(r"^(<=|>=|==|<|>)\s*([0-9.]+)$", bound)
    if not match:
        raise ValueError(f"python bound {bound!r} is not <op>VERSION, like <3.10")
    have, limit = _version(python)[: len(_version(match.group(2)))], _version(match.group(2))
    return {"<": have < limit, "<=": have <= limit, ">": have > limit, ">=": have >= limit,
            "==": have == limit}[match.group(1)]


def expected_outcome(name: str, version: str, reactor: str, scenario: str,
                     python: str = "") -> Tuple[str, Optional[Expectation]]:
    """(expected outcome, the row that said so, or None for the default pass).
    `python` is the driver environment's Python version ("" matches any row)."""
    for row in EXPECTATIONS:
        if row.python and python and not python_matches(row.python, python):
            continue
        if row.python and not python:
            continue
        if (driver_matches(row.driver, name, version) and fnmatch.fnmatchcase(reactor, row.reactor)
                and fnmatch.fnmatchcase(scenario, row.scenario)):
            return row.outcome, row
    return "pass", None
