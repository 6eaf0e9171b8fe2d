# The reactor conformance suite (fakecql.conformance) under every reactor the
# installed driver ships (each cassandra/io/<name>reactor.py present), plus
# cqltransport's: one test per reactor and behaviour.
#
# Strategy: asyncio, asyncore, libev, twisted and transport run in this
# process through run_behaviour(). gevent and eventlet must monkey-patch the
# standard library before anything else is imported, so each runs once in a
# process of its own (`python -m fakecql.conformance --reactor NAME --json`);
# the first xdist worker to start starts those runs in the background (once
# per pytest run), their JSON lines land in a file the workers share, and
# each test reads its behaviour's line.
#
# Rules: a reactor the driver ships that cannot be loaded here FAILS with the
# reason; nothing is skipped. A third-party bug is pinned by a strict xfail
# whose reason names it and docs/upstream-bugs.md ("Found by the reactor
# conformance suite"); a bug of ours is fixed, not pinned. A cell expected
# to fail gets a short timeout, since the bugs it pins are hangs.
from __future__ import annotations

import builtins
import functools
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from fakecql.conformance import BEHAVIOURS, run_behaviour, select_behaviours
from fakecql.reactors import REACTORS, driver_info, load_reactor

from ...integration.helpers import (
    STOCK_ASYNCIO_PY39_BUG,
    STOCK_ASYNCIO_TLS_BUG,
    stock_asyncio_has_tls_transport,
    stock_asyncio_needs_callers_loop,
)

# cassandra-driver 3.30 deprecates its gevent, eventlet and twisted reactors
# (CASSPYTHON-12) with a DeprecationWarning at every instantiation: third-party, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated class:DeprecationWarning")

TIMEOUT = 10.0  # per behaviour
EXPECTED_FAILURE_TIMEOUT = 1.0  # the bugs pinned below are hangs: no need to wait them out
SUBPROCESS_REACTORS = ("gevent", "eventlet")
SUBPROCESS_TIMEOUT = 170.0  # under pytest-timeout's 180 s
DOC = "docs/upstream-bugs.md, 'Found by the reactor conformance suite'"


def shipped_reactors() -> List[str]:
    """The reactors of the installed driver (a cassandra/io/<x>reactor.py that exists), and transport;
    transport-uvloop too where uvloop is installed (tox's uvloop environment runs it: `-k transport-uvloop`)."""
    names = []
    for name, info in REACTORS.items():
        if name == "transport" or (importlib.util.find_spec(info.module) is not None
                                   and all(importlib.util.find_spec(need) is not None for need in info.needs)):
            names.append(name)
    return names


# -- third-party bugs, pinned --------------------------------------------------------------

def _driver() -> str:
    return driver_info()[0]


ASYNCORE_RESET_BUG = (
    "third-party bug: the asyncore reactor takes a TCP reset for an orderly close (asyncore.dispatcher "
    "turns ECONNRESET/EPIPE into handle_close(), AsyncoreConnection.handle_close calls close()): the "
    f"connection is closed, not defunct, and the error is lost ({DOC})"
)
SSLSOCKET_RESET_BUG = (
    "third-party bug: over TLS the {reactor} reactor takes a TCP reset for an orderly close: the driver wraps "
    "the socket with SSLContext.wrap_socket's default suppress_ragged_eofs=True, so the reset (an EOF without "
    f"close_notify to OpenSSL) reads as b'' and the reactor calls close(): not defunct, error lost ({DOC})"
)
LIBEV_EOF_MID_FRAME_BUG = (
    "third-party bug: libev's LibevConnection.handle_read tells data from EOF by self._iobuf.tell(), which "
    "counts the bytes of a partial frame read earlier: an EOF mid-frame is never noticed, the read watcher "
    f"spins at 100% CPU and the connection never closes ({DOC})"
)
EVENTLET_GREEN_RESET_BUG = (
    "third-party bug: eventlet's green socket turns ECONNRESET on recv into b'', so EventletConnection.handle_read "
    f"takes a reset for an orderly close: not defunct, error lost ({DOC})"
)
EVENTLET_PYOPENSSL_ERRORS_BUG = (
    "third-party bug: EventletConnection.handle_read/handle_write catch socket.error only; over TLS pyOpenSSL "
    "raises OpenSSL.SSL.Error/SysCallError (and eventlet's green SSL read returns the str '' at EOF): the "
    "greenthread dies, the connection is never closed and its requests hang (docs/upstream-bugs.md, "
    "'eventlet: a TLS close or reset kills the reader greenthread')"
)

@functools.lru_cache(maxsize=None)
def stdlib_tls_reads_reset_as_eof() -> bool:
    """Whether this Python's ssl module reads a TCP reset under TLS as an
    unexpected EOF (SSLEOFError, which suppress_ragged_eofs turns into b''),
    as Python 3.10+ does, rather than as ConnectionResetError (3.9): probed
    over loopback against the suite's own peer."""
    import socket

    from fakecql.conformance._client import Credentials
    from fakecql.conformance._harness import Deadline
    from fakecql.conformance._peer import LoopbackPeer
    from fakecql.tls import client_context

    credentials = Credentials.shared()
    peer = LoopbackPeer(Deadline(5.0), tls=credentials.server_context())
    try:
        raw = socket.create_connection(("127.0.0.1", peer.port), timeout=5.0)
        with client_context(credentials.ca).wrap_socket(raw) as client:
            peer.wait_connected()
            peer.reset()
            try:
                return client.recv(1) == b""
            except OSError:
                return False
    finally:
        peer.close()


def eventlet_wrap_returns_nothing() -> bool:
    """Whether the driver's EventletConnection._wrap_socket_from_context
    assigns self._socket and returns None (scylla-driver 3.29.10 and
    3.29.11), which Connection._connect_socket then stores as the socket.
    Read from the source: importing the module would import eventlet."""
    spec = importlib.util.find_spec("cassandra.io.eventletreactor")
    if spec is None or spec.origin is None:
        return False
    source = Path(spec.origin).read_text()
    start = source.find("def _wrap_socket_from_context")
    body = source[start : source.find("\n    def ", start + 1)]
    return start >= 0 and "return" not in body


EVENTLET_TLS_WRAP_BUG = (
    "third-party bug: EventletConnection._wrap_socket_from_context stores the pyOpenSSL connection in "
    "self._socket and returns None, which Connection._connect_socket assigns to self._socket: every TLS "
    "connection fails with AttributeError: 'NoneType' object has no attribute 'settimeout' "
    "(docs/upstream-bugs.md, 'scylla-driver 3.29.10, eventlet: no TLS connection through an ssl_context')"
)


# (reactor, behaviour glob, applies?, reason). A reason starting with RACY
# is a bug that shows only when one of the reactor's two paths (its reader,
# its writer) meets the reset first: the cell is retried until it shows.
KnownBug = Tuple[str, str, Callable[[], bool], str]
# What each bug raises through run_behaviour: a ConformanceFailure (an
# AssertionError) unless named here; anything else fails the test.
BUG_RAISES: Dict[str, type] = {}
# If it shows one time in four, 40 tries miss it about once in 100,000 runs.
RACY_TRIES = 40
RACY = f"(racy: retried up to {RACY_TRIES} times until it shows) "
KNOWN_BUGS: List[KnownBug] = [
    ("asyncio", "*[tls]", lambda: not stock_asyncio_has_tls_transport(), STOCK_ASYNCIO_TLS_BUG),
    ("asyncio", "*", stock_asyncio_needs_callers_loop, STOCK_ASYNCIO_PY39_BUG),
    ("asyncore", "reset_during_*", lambda: True, ASYNCORE_RESET_BUG),
    ("libev", "close_mid_frame[*]", lambda: True, LIBEV_EOF_MID_FRAME_BUG),
    # Where a reset under TLS reads as EOF, libev meets its EOF bug mid-frame.
    ("libev", "reset_during_read[tls]", stdlib_tls_reads_reset_as_eof, LIBEV_EOF_MID_FRAME_BUG),
    ("libev", "reset_during_write[tls]", stdlib_tls_reads_reset_as_eof, SSLSOCKET_RESET_BUG.format(reactor="libev")),
    ("gevent", "reset_during_*[tls]", stdlib_tls_reads_reset_as_eof, SSLSOCKET_RESET_BUG.format(reactor="gevent")),
    ("eventlet", "*[tls]", eventlet_wrap_returns_nothing, EVENTLET_TLS_WRAP_BUG),  # raises AttributeError
    ("eventlet", "reset_during_read[plain]", lambda: True, EVENTLET_GREEN_RESET_BUG),
    ("eventlet", "reset_during_write[plain]", lambda: True, RACY + EVENTLET_GREEN_RESET_BUG),
    ("eventlet", "reset_during_*[tls]", lambda: True, EVENTLET_PYOPENSSL_ERRORS_BUG),
    ("eventlet", "close_mid_frame[tls]", lambda: True, EVENTLET_PYOPENSSL_ERRORS_BUG),
]


BUG_RAISES[EVENTLET_TLS_WRAP_BUG] = AttributeError


def known_bug(reactor: str, behaviour: str) -> Optional[str]:
    """The reason a third-party bug makes (reactor, behaviour) fail here, if one does."""
    for bug_reactor, pattern, applies, reason in KNOWN_BUGS:
        if bug_reactor == reactor and behaviour in select_behaviours(pattern) and applies():
            return reason
    return None


def _cells() -> List[object]:
    cells = []
    for reactor in shipped_reactors():
        for behaviour in BEHAVIOURS:
            try:
                reason = known_bug(reactor, behaviour)
            except ImportError:
                reason = None  # the reactor cannot load: its tests fail with the reason
            # raises=: only the behaviour's own failure is the bug; an ImportError is not.
            raises = BUG_RAISES.get(reason or "", AssertionError)
            marks = [pytest.mark.xfail(strict=True, raises=raises, reason=reason)] if reason else []
            cells.append(pytest.param(reactor, behaviour, id=f"{reactor}-{behaviour}", marks=marks))
    return cells


# -- the reactors that run in a process of their own ---------------------------------------

def _results_file(tmp_path_factory: pytest.TempPathFactory, reactor: str) -> Path:
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this run
    return base / f"conformance-{reactor}.json"


def _invoke(command: List[str], reactor: str, names: List[str]) -> Dict[str, dict]:
    results: Dict[str, dict] = {}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
                              cwd=str(Path(__file__).resolve().parents[3]))
    except subprocess.TimeoutExpired as exc:
        reason = f"`{' '.join(command[1:])}` did not finish within {SUBPROCESS_TIMEOUT:g} s"
        return {name: {"outcome": "fail", "error": reason, "seconds": exc.timeout} for name in names}
    for line in done.stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("behaviour") in names:
            results[record["behaviour"]] = record
    tail = "\n".join(done.stderr.strip().splitlines()[-15:])
    for name in names:
        results.setdefault(name, {
            "outcome": "fail", "seconds": 0.0,
            "error": f"no result for {name} from `python -m fakecql.conformance --reactor {reactor}` "
                     f"(exit status {done.returncode}); its stderr ends with:\n{tail}",
        })
    return results


def _produce(reactor: str, path: Path) -> None:
    """Run `reactor`'s behaviours in subprocesses; write their results to `path` (atomically)."""
    try:
        results = _run_selected(reactor)
    except Exception as exc:  # the tests reading the file then fail with it
        results = {name: {"outcome": "fail", "seconds": 0.0, "error": f"running the subprocess failed: {exc!r}"}
                   for name in BEHAVIOURS}
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(results))
    os.replace(partial, path)


@pytest.fixture(scope="module")
def subprocess_results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Dict[str, dict]]]:
    """The results of each subprocess reactor's run. The first worker to get
    here starts every such run in the background, once per pytest run; the
    tests that need a run's results wait (bounded) for its file."""
    started: List[threading.Thread] = []
    for reactor in SUBPROCESS_REACTORS:
        if reactor not in shipped_reactors():
            continue
        path = _results_file(tmp_path_factory, reactor)
        try:
            os.close(os.open(f"{path}.started", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue  # another worker runs it
        thread = threading.Thread(target=_produce, args=(reactor, path), name=f"conformance-{reactor}", daemon=True)
        thread.start()
        started.append(thread)
    cache: Dict[str, Dict[str, dict]] = {}

    def results(reactor: str) -> Dict[str, dict]:
        if reactor not in cache:
            path = _results_file(tmp_path_factory, reactor)
            deadline = time.monotonic() + 2 * SUBPROCESS_TIMEOUT
            while not path.exists():
                if time.monotonic() > deadline:
                    pytest.fail(f"the {reactor} subprocess run left no results in {path}", pytrace=False)
                time.sleep(0.05)
            cache[reactor] = json.loads(path.read_text())
        return cache[reactor]

    yield results
    for thread in started:
        thread.join(2 * SUBPROCESS_TIMEOUT)


def _timeout_for(reactor: str, behaviour: str) -> float:
    try:
        return EXPECTED_FAILURE_TIMEOUT if known_bug(reactor, behaviour) else TIMEOUT
    except ImportError:
        return TIMEOUT


def _run_selected(reactor: str) -> Dict[str, dict]:
    """Two subprocess runs at most: the behaviours expected to pass, with the
    full timeout, and those a known bug makes fail, with the short one."""
    results: Dict[str, dict] = {}
    base = [sys.executable, "-m", "fakecql.conformance", "--reactor", reactor, "--json"]
    racy = [name for name in BEHAVIOURS if _is_racy(reactor, name)]
    for timeout in (TIMEOUT, EXPECTED_FAILURE_TIMEOUT):
        names = [name for name in BEHAVIOURS if _timeout_for(reactor, name) == timeout and name not in racy]
        if names:
            selection = [arg for name in names for arg in ("--behaviour", name)]
            results.update(_invoke(base + ["--timeout", str(timeout)] + selection, reactor, names))
    for name in racy:
        for _ in range(RACY_TRIES):
            command = base + ["--timeout", str(EXPECTED_FAILURE_TIMEOUT), "--behaviour", name]
            results.update(_invoke(command, reactor, [name]))
            if results[name]["outcome"] != "pass":
                break
    return results


def _is_racy(reactor: str, behaviour: str) -> bool:
    try:
        return (known_bug(reactor, behaviour) or "").startswith(RACY)
    except ImportError:
        return False


# -- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("reactor, behaviour", _cells())
def test_reactor_conforms(reactor: str, behaviour: str, subprocess_results) -> None:  # type: ignore[no-untyped-def]
    timeout = _timeout_for(reactor, behaviour)
    if reactor in SUBPROCESS_REACTORS:
        record = subprocess_results(reactor)[behaviour]
        if record["outcome"] != "pass":
            message = f"{reactor} reactor, {behaviour} (in its own process): {record['error']}"
            kind = str(record["error"]).split(":", 1)[0]
            if kind == "ConformanceFailure":
                raise AssertionError(message)  # what a pinned bug's xfail expects
            if kind in {t.__name__ for t in BUG_RAISES.values()}:
                raise getattr(builtins, kind)(message)
            pytest.fail(message, pytrace=False)  # anything else (ImportError, a crash) is never "the bug"
        return
    connection_class = load_reactor(reactor)  # ImportError (why it cannot load here) fails the test
    for _ in range(RACY_TRIES - 1 if _is_racy(reactor, behaviour) else 0):
        run_behaviour(behaviour, connection_class, timeout=timeout)  # until the race goes the bug's way
    run_behaviour(behaviour, connection_class, timeout=timeout)


def test_every_shipped_reactor_is_covered() -> None:
    """The suite runs under each reactor module the installed driver ships."""
    import cassandra.io

    shipped = {p.name[: -len("reactor.py")] for p in Path(cassandra.io.__path__[0]).glob("*reactor.py")}
    assert shipped <= set(shipped_reactors()), f"reactors the driver ships but fakecql.reactors does not know: {shipped}"


# -- negative controls: a reactor that misbehaves must fail ------------------------------

def _corrupting_reactor() -> type:
    """The transport reactor, but it flips one bit of the 5000th byte it receives."""
    from cqltransport import AsyncioTransportConnection

    class CorruptingConnection(AsyncioTransportConnection):
        received = 0

        def _bytes_received(self, data: bytes) -> None:
            start, self.received = self.received, self.received + len(data)
            if start <= 5000 < self.received:
                mangled = bytearray(data)
                mangled[5000 - start] ^= 0x01
                data = bytes(mangled)
            super()._bytes_received(data)

    return CorruptingConnection


def _eager_reactor() -> type:
    """The transport reactor, but it announces itself connected as soon as TCP/TLS is up."""
    from cqltransport import AsyncioTransportConnection

    class EagerConnection(AsyncioTransportConnection):
        def _transport_ready(self, protocol):  # type: ignore[no-untyped-def]
            self.connected_event.set()
            super()._transport_ready(protocol)

    return EagerConnection


@pytest.mark.parametrize("make, behaviour, expected", [
    (_corrupting_reactor, "mixed_sizes[plain]", "the first wrong one at offset"),
    (_eager_reactor, "successful_connection[tls]", "expected connected_event unset before any CQL answer"),
], ids=["a corrupted byte", "connected before READY"])
def test_a_misbehaving_reactor_fails(make: Callable[[], type], behaviour: str, expected: str) -> None:
    from fakecql.conformance import ConformanceFailure

    with pytest.raises(ConformanceFailure, match=expected):
        run_behaviour(behaviour, make(), timeout=5.0)
