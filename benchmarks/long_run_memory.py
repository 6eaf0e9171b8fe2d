"""Long-run memory: the node's RSS over millions of mixed requests, beside a
stated ceiling.

A TLS node (`serve`) in its own process; this process drives N requests
(default 2,000,000) over a few connections, each with 64 in flight, mixing:
QUERY of system.local and system.peers, UPDATE statements the node does not
interpret, distinct 1 MiB statement texts (200 at the default N), PREPAREs of
distinct statements (100,000 at the default N), EXECUTEs of some just
prepared and of older ones (re-preparing on UNPREPARED, as a driver does).
Every answer is checked to be a well-formed v4 response frame of the kind
the request calls for. Prints the node's RSS every N/10 requests, its peak
(VmHWM) and final RSS, the requests/s and the CPU time per request, then
stops the node with SIGTERM and prints what `serve` printed from then on (its
exit summary) and how many incident lines it wrote on stderr meanwhile.

    python benchmarks/long_run_memory.py [--requests 2000000] [--connections 4]
        [--window 64] [--big-texts N] [--prepares N] [--ceiling-mib 512] [--prepared-cache-bytes B]

--big-texts and --prepares default to 200 and 100,000 scaled to --requests
(per 2,000,000). Exit status 1 if the final RSS is over the ceiling, or if
an answer was malformed or unexpected (a benchmark outcome, not a crash).
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import ssl
import struct
import subprocess
import sys
import threading
import time
from typing import Counter, Deque, Dict, List, Optional, Sequence, TextIO, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import HEADER, NodeProcess, machine, request_frame, table  # noqa: E402
from benchmarks.bystander import serve_flags  # noqa: E402
from fakecql.protocol.messages import Execute, Prepare, Query, QueryParameters, decode_message  # noqa: E402

MiB = 1024 * 1024
DEFAULT_REQUESTS = 2_000_000
BIG_TEXT = MiB  # the node's default query text limit: these texts are exactly at it
RESULT_KINDS = {1: "Void", 2: "Rows", 3: "SetKeyspace", 4: "Prepared", 5: "SchemaChange"}
UNPREPARED = 0x2500
FULL_DECODE_EVERY = 64  # every answer is checked cheaply; one in this many is decoded in full

LOCAL = "SELECT release_version FROM system.local WHERE key = 'local'"
PEERS = "SELECT peer, rpc_address FROM system.peers"


def _query(text: str) -> Tuple[int, bytes]:
    return 0x07, Query(query=text).encode_body(4)


def _prepared_text(j: int) -> str:
    """The j-th distinct statement to PREPARE (one bind marker)."""
    if j % 2:
        return f"SELECT release_version FROM system.local WHERE key = ? LIMIT {j}"
    return f"UPDATE ks.t SET v = ? WHERE k = {j}"


def _prepared_value(j: int) -> bytes:
    return b"local" if j % 2 else b"v"


class Plan:
    """What one connection sends: its share of each kind, spread over its requests."""

    def __init__(self, index: int, connections: int, requests: int, big_texts: int, prepares: int, seed: int) -> None:
        def share(total: int) -> int:
            return total // connections + (1 if index < total % connections else 0)

        self.index = index
        self.connections = connections
        self.requests = share(requests)
        self.big = share(big_texts)
        self.prepares = share(prepares)
        self.rng = random.Random(f"{seed}:{index}")
        # Spread over the first 80% of the requests: follow-ups (EXECUTEs
        # after PREPAREs, re-PREPAREs) take their share of the budget too.
        spread = self.requests * 4 // 5
        self.big_every = max(1, spread // self.big) if self.big else 0
        self.prepare_every = max(2, spread // self.prepares) if self.prepares else 0
        self.big_sent = 0
        self.prepared_sent = 0
        self.generated = 0
        self.base = "".join(self.rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=BIG_TEXT)) if self.big else ""

    def big_text(self, n: int) -> str:
        """A distinct statement of exactly BIG_TEXT UTF-8 bytes (n: which one, over all connections)."""
        head, tail = "UPDATE ks.t SET v = '", f"' WHERE k = {n}"
        size = BIG_TEXT - len(head) - len(tail)
        shift = (n * 7919) % size
        return head + (self.base[shift:] + self.base[:shift])[:size] + tail

    def next(self, known: List[int]) -> Tuple[str, object]:
        """The next request of this plan: (kind, argument)."""
        i = self.generated
        self.generated += 1
        if self.big_every and i % self.big_every == self.big_every // 2 and self.big_sent < self.big:
            self.big_sent += 1
            return "big", self.index + self.connections * (self.big_sent - 1)
        if self.prepare_every and i % self.prepare_every == 1 and self.prepared_sent < self.prepares:
            self.prepared_sent += 1
            return "prepare", self.index + self.connections * (self.prepared_sent - 1)
        roll = self.rng.random()
        if roll < 0.05 and known:
            return "execute", self.rng.choice(known)
        if roll < 0.60:
            return "local", None
        if roll < 0.90:
            return "update", i % 5000
        return "peers", None


class Driver(threading.Thread):
    """One TLS connection: sends its plan a window at a time, checks every answer."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext, plan: Plan, window: int) -> None:
        super().__init__(daemon=True)
        import socket

        sock = socket.create_connection((host, port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(sock, server_hostname=host)
        self.plan = plan
        self.window = window
        self.buf = bytearray()
        self.done = 0
        self.answers: Counter[str] = collections.Counter()  # "request kind -> answer"
        self.problems: List[str] = []  # malformed or unexpected answers (the first few are kept)
        self.problem_count = 0
        self.follow_ups: Deque[Tuple[str, object]] = collections.deque()
        self.ids: Dict[int, bytes] = {}  # statement j -> query id the node gave
        self.known: List[int] = []  # statements prepared on this connection
        self.error: Optional[str] = None
        self.seen = 0
        self._local = _query(LOCAL)
        self._peers = _query(PEERS)

    def _problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < 5:
            self.problems.append(text)

    def startup(self) -> None:
        key, value = b"CQL_VERSION", b"3.0.0"
        self.sock.sendall(request_frame(0x01, struct.pack(">HH", 1, len(key)) + key + struct.pack(">H", len(value)) + value))
        answer = self._read_frames(1)[0]
        if answer[1] != 0x02:
            raise RuntimeError(f"STARTUP answered with opcode 0x{answer[1]:02x}, expected READY (0x02)")

    def _body(self, kind: str, argument: object) -> Tuple[int, bytes]:
        if kind == "local":
            return self._local
        if kind == "peers":
            return self._peers
        if kind == "update":
            return _query(f"UPDATE ks.t SET v = 'x' WHERE k = {argument}")
        if kind == "big":
            return _query(self.plan.big_text(int(argument)))  # type: ignore[call-overload]
        if kind in ("prepare", "reprepare"):
            return 0x09, Prepare(query=_prepared_text(int(argument))).encode_body(4)  # type: ignore[call-overload]
        j = int(argument)  # type: ignore[call-overload]
        params = QueryParameters(values=(_prepared_value(j),))
        return 0x0A, Execute(query_id=self.ids[j], parameters=params).encode_body(4)

    def run(self) -> None:
        try:
            while self.done < self.plan.requests:
                batch: List[Tuple[str, object]] = []
                while len(batch) < min(self.window, self.plan.requests - self.done):
                    batch.append(self.follow_ups.popleft() if self.follow_ups else self.plan.next(self.known))
                frames = []
                for stream, (kind, argument) in enumerate(batch):
                    opcode, body = self._body(kind, argument)
                    frames.append(HEADER.pack(4, 0, stream, opcode, len(body)) + body)
                self.sock.sendall(b"".join(frames))
                for version, opcode, stream, flags, body in self._read_frames(len(batch)):
                    if not 0 <= stream < len(batch):
                        self._problem(f"answer on stream {stream}, which has no request in flight")
                        continue
                    self._check(batch[stream], version, opcode, flags, body)
                self.done += len(batch)
        except Exception as exc:  # noqa: BLE001 - reported in the figures
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.sock.close()

    def _read_frames(self, count: int) -> List[Tuple[int, int, int, int, bytes]]:
        """`count` frames: (version byte, opcode, stream, flags, body)."""
        out: List[Tuple[int, int, int, int, bytes]] = []
        pos = 0
        while len(out) < count:
            if len(self.buf) - pos >= 9:
                version, flags, stream, opcode, length = HEADER.unpack_from(self.buf, pos)
                if length < 0 or length > 256 * MiB:
                    raise RuntimeError(f"answer header with body length {length}: not a sound frame")
                if len(self.buf) - pos >= 9 + length:
                    out.append((version, opcode, stream, flags, bytes(self.buf[pos + 9 : pos + 9 + length])))
                    pos += 9 + length
                    continue
            del self.buf[:pos]
            pos = 0
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError(f"the node closed the connection after {self.done} requests")
            self.buf += chunk
        del self.buf[:pos]
        return out

    def _check(self, request: Tuple[str, object], version: int, opcode: int, flags: int, body: bytes) -> None:
        kind, argument = request
        self.seen += 1
        if version != 0x84 or flags & ~0x0A:
            self._problem(f"{kind}: answer header version byte 0x{version:02x}, flags 0x{flags:02x}")
            return
        if opcode not in (0x00, 0x08):
            self._problem(f"{kind}: answer opcode 0x{opcode:02x}, expected RESULT or ERROR")
            return
        if self.seen % FULL_DECODE_EVERY == 0 or opcode == 0x00:
            try:
                decode_message(opcode, _skip_prefix(body, flags), 4, is_response=True)
            except Exception as exc:  # noqa: BLE001 - a malformed answer is a figure
                self._problem(f"{kind}: malformed answer body: {exc}")
                return
        body = _skip_prefix(body, flags)
        if opcode == 0x00:
            code = struct.unpack_from(">i", body)[0]
            if kind == "execute" and code == UNPREPARED:
                self.answers[f"{kind} -> UNPREPARED (re-prepared)"] += 1
                self.follow_ups.append(("reprepare", argument))  # then EXECUTE, once its answer is in
                return
            self.answers[f"{kind} -> ERROR 0x{code:04X}"] += 1
            self._problem(f"{kind}: ERROR 0x{code:04X}: {body[6:120]!r}")
            return
        result = RESULT_KINDS.get(struct.unpack_from(">i", body)[0], "unknown")
        self.answers[f"{kind} -> {result}"] += 1
        expected = {"prepare": ("Prepared",), "reprepare": ("Prepared",), "local": ("Rows",),
                    "peers": ("Rows",)}.get(kind, ("Rows", "Void"))
        if result not in expected:
            self._problem(f"{kind}: RESULT {result}, expected {' or '.join(expected)}")
            return
        if kind == "reprepare":
            j = int(argument)  # type: ignore[call-overload]
            self.ids[j] = body[6 : 6 + struct.unpack_from(">H", body, 4)[0]]
            self.follow_ups.append(("execute", j))
        elif kind == "prepare":
            j = int(argument)  # type: ignore[call-overload]
            length = struct.unpack_from(">H", body, 4)[0]
            first = j not in self.ids
            self.ids[j] = body[6 : 6 + length]
            if first:
                self.known.append(j)
                if j // self.plan.connections % 2 == 0:  # every other new statement is executed at once
                    self.follow_ups.append(("execute", j))


def _skip_prefix(body: bytes, flags: int) -> bytes:
    """The body after a tracing id (0x02) and warnings (0x08)."""
    pos = 0
    if flags & 0x02:
        pos += 16
    if flags & 0x08:
        (count,) = struct.unpack_from(">H", body, pos)
        pos += 2
        for _ in range(count):
            pos += 2 + struct.unpack_from(">H", body, pos)[0]
    return body[pos:] if pos else body


def _mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB"


def collect(requests: int = DEFAULT_REQUESTS, connections: int = 4, window: int = 64,
            big_texts: Optional[int] = None, prepares: Optional[int] = None, ceiling_mib: float = 512,
            seed: int = 1, out: Optional[TextIO] = None, prepared_cache_bytes: Optional[int] = None) -> Dict[str, object]:
    """Run it; the figures and the report (its progress lines are printed to `out` as they come too)."""
    progress: List[str] = []

    def say(text: str) -> None:
        progress.append(text)
        if out is not None:
            print(text, file=out, flush=True)

    big = round(200 * requests / DEFAULT_REQUESTS) if big_texts is None else big_texts
    prep = round(100_000 * requests / DEFAULT_REQUESTS) if prepares is None else prepares
    say(f"{requests:,} requests over {connections} TLS connections × {window} in flight: {big} distinct 1 MiB "
        f"texts, {prep:,} distinct PREPAREs, EXECUTEs, system table QUERYs, uninterpreted UPDATEs\n")
    figures: Dict[str, object] = {}
    flags: List[str] = []
    if prepared_cache_bytes is not None:
        flags, missing = serve_flags({"--prepared-cache-bytes": str(prepared_cache_bytes)})
        if missing:
            say(f"(serve does not list {missing[0]}: the node keeps its default prepared-statement cache)")
    with NodeProcess("--tls", *flags) as node:
        context = ssl.create_default_context(cafile=node.ca_pem)
        time.sleep(0.3)
        rss_start = node.rss_bytes()
        drivers = [Driver(node.host, node.port, context, Plan(i, connections, requests, big, prep, seed), window)
                   for i in range(connections)]
        for driver in drivers:
            driver.startup()
        start = time.perf_counter()
        node_cpu0, client_cpu0 = node.cpu_seconds(), time.process_time()
        for driver in drivers:
            driver.start()
        say(f"  {'requests':>12}  {'node RSS':>10}  {'req/s (interval)':>16}")
        next_mark, last_done, last_time = requests // 10, 0, start
        while any(d.is_alive() for d in drivers):
            time.sleep(0.05)
            done = sum(d.done for d in drivers)
            if done >= next_mark and next_mark:
                now = time.perf_counter()
                say(f"  {done:>12,}  {_mib(node.rss_bytes()):>10}  {(done - last_done) / (now - last_time):>16,.0f}")
                last_done, last_time = done, now
                while next_mark and next_mark <= done:
                    next_mark += requests // 10
        elapsed = time.perf_counter() - start
        done = sum(d.done for d in drivers)
        alive = node.proc.poll() is None
        node_cpu = node.cpu_seconds() - node_cpu0 if alive else float("nan")
        client_cpu = time.process_time() - client_cpu0
        rss_final = node.rss_bytes() if alive else 0
        rss_peak = node.peak_rss_bytes() if alive else 0
        stderr_during = len(node.stderr_lines)
        summary_lines, stop_note = _stop(node)
    answers: Counter[str] = collections.Counter()
    for driver in drivers:
        answers.update(driver.answers)
    problems = [p for d in drivers for p in d.problems]
    problem_count = sum(d.problem_count for d in drivers)
    errors = [f"connection {i}: {d.error}" for i, d in enumerate(drivers) if d.error]
    over = rss_final > ceiling_mib * MiB or not alive
    figures.update({
        "requests": f"{done:,}",
        "seconds": f"{elapsed:.1f}",
        "requests/s": f"{done / elapsed:,.0f}",
        "node RSS at start": _mib(rss_start),
        "node RSS peak (VmHWM)": _mib(rss_peak),
        "node RSS final": _mib(rss_final),
        "ceiling": f"{ceiling_mib:g} MiB",
    })
    lines = progress + [
        "",
        f"requests: {done:,} of {requests:,} in {elapsed:.1f} s: {done / elapsed:,.0f} requests/s",
        f"node RSS: start {_mib(rss_start)}, peak {_mib(rss_peak)}, final {_mib(rss_final)}",
        f"CPU: node {node_cpu:.1f} s ({node_cpu / max(done, 1) * 1e6:.0f} µs per request), "
        f"this client {client_cpu:.1f} s",
        f"ceiling: {ceiling_mib:g} MiB: final RSS {'OVER it' if over else 'under it'}"
        + ("" if alive else " (the node died)"),
        f"answers checked: {sum(answers.values()):,}; malformed or unexpected: {problem_count:,}",
    ]
    lines += [f"  problem: {p}" for p in problems]
    lines += [f"  {e}" for e in errors]
    lines += ["", table([{"request -> answer": k, "count": f"{v:,}"} for k, v in sorted(answers.items())],
                        ["request -> answer", "count"]), ""]
    lines.append(f"serve wrote {stderr_during:,} lines on stderr during the run (one per incident)")
    lines.append(stop_note)
    lines += [f"    {line}" for line in summary_lines]
    report = "\n".join(lines)
    return {"report": report, "figures": figures, "over": over, "failed": bool(problem_count or errors),
            "headline": f"node RSS after {done:,} mixed TLS requests, final (peak)",
            "figure": f"{_mib(rss_final)} ({_mib(rss_peak)})", "target": f"≤ {ceiling_mib:g} MiB"}


def _stop(node: NodeProcess) -> Tuple[List[str], str]:
    """SIGTERM the node; (what it printed from then on, a sentence saying what happened)."""
    if node.proc.poll() is not None:
        return node.stderr_lines[-20:], f"serve had already exited (status {node.proc.returncode}); its last stderr:"
    out_before, err_before = len(node.stdout_lines), len(node.stderr_lines)
    node.proc.send_signal(signal.SIGTERM)
    try:
        code = node.proc.wait(60)
    except subprocess.TimeoutExpired:
        return [], "serve did not exit within 60 s of SIGTERM"
    for thread in node.drains:
        thread.join(10)
    out, err = node.stdout_lines[out_before:], node.stderr_lines[err_before:]
    if not out and not err:
        return [], f"serve exited with status {code} on SIGTERM and printed nothing (no exit summary)"
    has_summary = any(line.startswith("summary") for line in out + err)
    lines = out + [f"(stderr) {line}" for line in err]
    return lines, (f"serve exited with status {code} on SIGTERM; it printed"
                   + ("" if has_summary else " (no exit summary)") + ":")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=64, help="requests in flight per connection")
    parser.add_argument("--big-texts", type=int, default=None, help="distinct 1 MiB texts (default 200 per 2M)")
    parser.add_argument("--prepares", type=int, default=None, help="distinct PREPAREs (default 100,000 per 2M)")
    parser.add_argument("--ceiling-mib", type=float, default=512.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--prepared-cache-bytes", type=int, default=None,
                        help="passed to serve (default: the node's own); small values make EXECUTEs meet UNPREPARED")
    args = parser.parse_args(argv)
    if args.requests < args.connections or args.window < 1:
        parser.error("--requests must be at least --connections, --window at least 1")
    print(f"# Long-run memory\n\n{machine()}\n", flush=True)
    result = collect(args.requests, args.connections, args.window, args.big_texts, args.prepares,
                     args.ceiling_mib, args.seed, out=sys.stderr, prepared_cache_bytes=args.prepared_cache_bytes)
    print(result["report"])
    return 1 if result["over"] or result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
