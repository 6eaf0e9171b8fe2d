# Smoke runs of the hardening scripts: benchmarks/bystander.py,
# benchmarks/long_run_memory.py and fuzz/serve_socket.py, each in a
# subprocess with tiny parameters and a bounded time. Each must exit 0 and
# print its figure lines; what the figures say is not asserted (a benchmark
# asserts nothing, and timings depend on the machine). Negative controls: the
# memory benchmark exits 1 over its ceiling, and the fuzzer reports a node
# that never answers.
from __future__ import annotations

import importlib.util
import random
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 150  # seconds a smoke run may take (pytest's own timeout is 180)


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=TIMEOUT)


def assert_lines(output: str, *fragments: str) -> None:
    missing = [f for f in fragments if f not in output]
    assert not missing, f"missing {missing} in the output:\n{output}"


def test_bystander_prints_a_row_per_attack_and_the_target() -> None:
    attacks = ["none", "query_max", "lz4_v4_255mib", "text_quotes"]
    result = run_script("benchmarks/bystander.py", "--plain", "--attacks", ",".join(attacks),
                        "--max-frame-body", "262144", "--max-query-bytes", "65536", "--answer-timeout", "30")
    assert result.returncode == 0, result.stderr
    assert_lines(result.stdout, "# Bystander latency under attack", " CPUs | Python ",
                 "| transport | attack ", "| bystander worst ms |", "| RSS before/peak/after MiB |",
                 "target: bystander worst latency < 100 ms: met in ")
    rows = [line for line in result.stdout.splitlines() if line.startswith("| plain ")]
    assert [row.split("|")[2].strip() for row in rows] == attacks, result.stdout


def test_long_run_memory_prints_rss_rate_ceiling_and_stops_the_node() -> None:
    result = run_script("benchmarks/long_run_memory.py", "--requests", "4000", "--connections", "2",
                        "--big-texts", "1", "--prepares", "100", "--prepared-cache-bytes", "4096")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_lines(result.stdout, "# Long-run memory", " CPUs | Python ", "node RSS", "req/s (interval)",
                 "requests: 4,000 of 4,000 in ", " requests/s", "node RSS: start ", ", peak ", ", final ",
                 "ceiling: 512 MiB: final RSS under it", "malformed or unexpected: 0", "big -> ",
                 "prepare -> Prepared", "execute -> UNPREPARED (re-prepared)", "reprepare -> Prepared",
                 "on SIGTERM")


def test_long_run_memory_exits_1_over_its_ceiling() -> None:
    result = run_script("benchmarks/long_run_memory.py", "--requests", "500", "--connections", "1",
                        "--ceiling-mib", "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert_lines(result.stdout, "ceiling: 1 MiB: final RSS OVER it")


def test_serve_socket_fuzz_runs_cases_and_reports_no_failure() -> None:
    result = run_script("fuzz/serve_socket.py", "--cases", "40", "--seed", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_lines(result.stdout, "seed 1", "cases run: 40 in ", "cases by shape:", "answers by kind:",
                 "bystander: worst ", "failures: 0")


# -- negative control: the fuzzer against a "node" that reads and never answers --

def _load_fuzzer(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """fuzz/serve_socket.py as a module (fuzz/ is not a package); unregistered after the test."""
    spec = importlib.util.spec_from_file_location("fuzz_serve_socket", ROOT / "fuzz" / "serve_socket.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


class _Mute:
    """Accepts connections on loopback and reads them, never answering."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address: Tuple[str, int] = self.listener.getsockname()[:2]
        self.context = None
        self.accepted: List[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(conn)
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def mute_node() -> Iterator[_Mute]:
    node = _Mute()
    yield node
    node.close()


def test_serve_socket_fuzz_reports_a_node_that_never_answers(mute_node: _Mute, monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz = _load_fuzzer(monkeypatch)
    from fakecql.protocol.messages import Options

    from ..rawcql import request_frame

    case = fuzz.Case(index=0, transport="plain", version=4, handshake=False, compression=False, layer="none",
                     requests=["Options"], data=request_frame(Options(), version=4))
    outcome, seconds = fuzz.run_case(case, mute_node, 0.3, 0.3, random.Random(0))
    assert outcome.failure == "1 complete frame(s) sent, 0 answered within 0.3 s, and the connection is still open"
    assert seconds > 0.3  # the bystander was not answered either


def test_serve_socket_fuzz_takes_a_server_exception_with_its_traceback_as_a_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    fuzz = _load_fuzzer(monkeypatch)
    lines = ["incident [connection 3] ProtocolIncident: frame body length 99 exceeds the limit of 9",
             "incident [connection 4] ServerException: ValueError: boom",
             "    Traceback (most recent call last):",
             '      File "fakecql/node.py", line 1, in handle',
             "incident [connection 5] UnexpectedRequest: no priming matches"]
    assert fuzz.alarms(lines) == ["\n        ".join(lines[1:4])]
    assert fuzz.alarms([lines[0], lines[4]]) == []
