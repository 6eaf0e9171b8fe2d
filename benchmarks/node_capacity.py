"""Node capacity: the fakecql node's CPU per request and requests/s, over
TLS 1.3 (and plain TCP on request), beside a raw asyncio server answering the
same frames.

The figure that matters is CPU µs per request: the utime+stime the server
process spent (read from /proc/<pid>/stat) over the measured window, divided
by the requests it answered in that window. It is the server's own cost, so
it stays valid when the load generator, not the server, limits the rate (a
Python client on the same small machine usually does): a slower client makes
fewer requests and the server spends proportionally less, except that at
small windows the server wakes up more often per request, which is exactly
the per-request cost a driver with few requests in flight sees. Requests/s
is printed too, but it is bounded by the client and the machine.

The node runs with `serve`'s default flags (frame log on), as users get it.
The load generator is lean on purpose (not the driver): `--connections`
connections, each with a window of pipelined EXECUTEs of one prepared
statement, counting answers by their headers. The baseline ("raw asyncio")
is the practical floor for a Python asyncio server: stock asyncio TLS
(loop.create_server(ssl=...)), frames cut by their headers, each answered at
once with a canned frame of exactly the size the node answers, one write per
read. Both servers run in processes of their own. Prints figures; asserts
nothing.

    python benchmarks/node_capacity.py [--seconds 5] [--connections 4] [--windows 1,8,64] [--plain] [--uvloop] [--distinct]
    python benchmarks/node_capacity.py --profile [--window 64]   # where the node's time goes
"""
from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import struct
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import (  # noqa: E402
    HEADER,
    NodeProcess,
    RawClient,
    long_string,
    machine,
    process_cpu_seconds,
    request_frame,
    table,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERY = "SELECT release_version FROM system.local WHERE key = ?"
DISTINCT_VALUES = 4096  # --distinct: keys each connection cycles through


class Client(RawClient):
    """The load generator's connection: prepares, then pipelines EXECUTEs."""

    def prepare(self, distinct: bool = False) -> List[bytes]:
        """STARTUP, then PREPARE: the EXECUTE frames to send under load, in turn.

        One frame (key = 'local', the row of system.local), or with `distinct`
        DISTINCT_VALUES frames each with a key of its own (no row): no request
        repeats within a connection's recent ones, so the node's memos for
        repeated requests never help."""
        self.startup()
        self.sock.sendall(request_frame(0x09, long_string(QUERY)))
        opcode, _, body = self.read_frame()
        assert opcode == 0x08 and struct.unpack_from(">i", body)[0] == 4, body[:40]
        id_length = struct.unpack_from(">H", body, 4)[0]
        query_id = body[6 : 6 + id_length]
        values = [b"k%07d" % i for i in range(DISTINCT_VALUES)] if distinct else [b"local"]
        return [request_frame(0x0A, struct.pack(">H", len(query_id)) + query_id + struct.pack(">HBH", 0x0001, 0x01 | 0x02, 1)
                              + struct.pack(">i", len(value)) + value) for value in values]

    def first_answer_size(self, frame: bytes) -> int:
        """Sends `frame` once: the size of its answer frame (checked to be a RESULT)."""
        self.sock.sendall(frame)
        opcode, _, body = self.read_frame()
        assert opcode == 0x08, (opcode, body[:60])
        return 9 + len(body)

    def run(self, frames: List[bytes], window: int, stop_at: float, counter: List[int]) -> None:
        """Sends `window` frames, reads `window` answers, again until `stop_at`.

        Answers are counted by their headers in one buffer walked by offset
        (no per-frame copies), so the client spends as little as it can."""
        if len(frames) == 1:
            batches = [frames[0] * window]
        else:  # the frames in turn, `window` at a time
            batches = [b"".join(frames[(start + i) % len(frames)] for i in range(window))
                       for start in range(0, len(frames), window)]
        turn = 0
        answered = 0
        buf = bytearray(self.buf)
        unpack = HEADER.unpack_from
        recv_into = self.sock.recv_into
        chunk = bytearray(1 << 20)
        view = memoryview(chunk)
        while time.perf_counter() < stop_at:
            self.sock.sendall(batches[turn % len(batches)])
            turn += 1
            pending = window
            pos = 0
            while pending:
                while len(buf) - pos >= 9:
                    length = unpack(buf, pos)[4]
                    if len(buf) - pos < 9 + length:
                        break
                    pos += 9 + length
                    pending -= 1
                    if not pending:
                        break
                if pending:
                    received = recv_into(chunk)
                    if not received:
                        raise EOFError("the server closed the connection")
                    buf += view[:received]
            del buf[:pos]
            answered += window
        self.buf = bytes(buf)
        counter.append(answered)


class Measured:
    """One measured window: requests answered, seconds, server CPU seconds."""

    def __init__(self, requests: int, seconds: float, cpu_seconds: float, answer_size: int) -> None:
        self.requests = requests
        self.seconds = seconds
        self.cpu_seconds = cpu_seconds
        self.answer_size = answer_size

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / max(self.requests, 1) * 1e6


def drive(host: str, port: int, context: Optional[ssl.SSLContext], seconds: float, connections: int,
          window: int, server_cpu: Callable[[], float] = lambda: 0.0, distinct: bool = False) -> Measured:
    """`connections` connections pipelining `window` requests each for `seconds` (after a
    0.5 s warm-up); the server's CPU (`server_cpu()`) is read around the measured window only."""
    clients = [Client(host, port, context) for _ in range(connections)]
    frames = [c.prepare(distinct) for c in clients]
    size = clients[0].first_answer_size(frames[0][0])
    warm = time.perf_counter() + 0.5
    for client, frame in zip(clients, frames):  # warm up
        client.run(frame, window, warm, [])
    counter: List[int] = []
    start = time.perf_counter()
    stop_at = start + seconds
    threads = [threading.Thread(target=c.run, args=(f, window, stop_at, counter)) for c, f in zip(clients, frames)]
    cpu0 = server_cpu()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cpu = server_cpu() - cpu0
    elapsed = time.perf_counter() - start
    for client in clients:
        client.sock.close()
    return Measured(sum(counter), elapsed, cpu, size)


# -- the raw asyncio baseline --------------------------------------------------------

class _Responder(asyncio.Protocol):
    """Cuts frames by their headers and answers each with a canned frame."""

    def __init__(self, answer_size: int) -> None:
        self.buf = bytearray()
        self.answer_size = answer_size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        out = []
        pos = 0
        while len(self.buf) - pos >= 9:
            length = HEADER.unpack_from(self.buf, pos)[4]
            if len(self.buf) - pos < 9 + length:
                break
            opcode = self.buf[pos + 4]
            stream = self.buf[pos + 2 : pos + 4]
            out.append(self._answer(opcode, bytes(stream)))
            pos += 9 + length
        del self.buf[:pos]
        if out:
            self.transport.write(b"".join(out))

    def _answer(self, opcode: int, stream: bytes) -> bytes:
        if opcode == 0x01:  # STARTUP -> READY
            return b"\x84\x00" + stream + b"\x02\x00\x00\x00\x00"
        if opcode == 0x09:  # PREPARE -> Prepared: id, no bind markers, no result metadata
            query_id = b"0123456789abcdef"
            body = struct.pack(">iH", 4, len(query_id)) + query_id + struct.pack(">iiiii", 0, 0, 0, 0x04, 0)
            return b"\x84\x00" + stream + b"\x08" + struct.pack(">i", len(body)) + body
        body = b"\x00" * (self.answer_size - 9)
        return b"\x84\x00" + stream + b"\x08" + struct.pack(">i", len(body)) + body


def serve_raw(port_file: str, certs: Optional[str], answer_size: int, use_uvloop: bool = False) -> None:
    context = None
    if certs:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(os.path.join(certs, "server.pem"))
        context.minimum_version = ssl.TLSVersion.TLSv1_3

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(
            lambda: _Responder(answer_size), "127.0.0.1", 0, ssl=context)
        with open(port_file, "w") as handle:
            handle.write(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
    else:
        asyncio.run(main())


class RawServer:
    """The raw asyncio baseline in a process of its own (on uvloop if asked)."""

    def __init__(self, tls: bool, answer_size: int, use_uvloop: bool = False) -> None:
        import tempfile

        import trustme

        self.dir = tempfile.TemporaryDirectory(prefix="fakecql-raw-")
        self.tls = tls
        self.answer_size = answer_size
        self.use_uvloop = use_uvloop
        self.ca = trustme.CA()
        if tls:
            self.ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(
                os.path.join(self.dir.name, "server.pem"))

    def __enter__(self) -> "RawServer":
        port_file = os.path.join(self.dir.name, "port")
        argv = [sys.executable, os.path.abspath(__file__), "--raw-server", port_file,
                "--answer-size", str(self.answer_size)]
        if self.tls:
            argv += ["--certs", self.dir.name]
        if self.use_uvloop:
            argv += ["--uvloop"]
        self.proc = subprocess.Popen(argv)
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the raw server did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        return self

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def context(self) -> Optional[ssl.SSLContext]:
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ca.configure_trust(context)
        return context

    def __exit__(self, *exc_info: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--windows", default="1,8,64", help="pipelining windows to measure, comma-separated")
    parser.add_argument("--window", type=int, default=64, help="the window --profile drives at")
    parser.add_argument("--plain", action="store_true", help="measure plain TCP too (TLS 1.3 only by default)")
    parser.add_argument("--uvloop", action="store_true",
                        help="run the node with `serve --uvloop` and the raw baseline on uvloop")
    parser.add_argument("--node-flag", action="append", default=[], metavar="FLAG",
                        help="an extra `serve` flag for the node (repeatable), e.g. --node-flag=--no-frame-log")
    parser.add_argument("--distinct", action="store_true",
                        help="every request of a connection binds another key (no repeated request: the node's "
                             "memos for repeated requests do not help)")
    parser.add_argument("--profile", action="store_true",
                        help="run the TLS node under cProfile at --window and print where its time goes")
    parser.add_argument("--raw-server", help=argparse.SUPPRESS)
    parser.add_argument("--certs", help=argparse.SUPPRESS)
    parser.add_argument("--answer-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        serve_raw(args.raw_server, args.certs, args.answer_size, args.uvloop)
        return

    node_flags = [*args.node_flag, *(["--uvloop"] if args.uvloop else [])]
    if args.profile:
        print(f"# Node profile\n\n{machine()}\n")
        print(profile(args.seconds, args.connections, args.window, node_flags, distinct=args.distinct))
        return
    print(f"# Node capacity\n\n{machine()}\n")
    windows = [int(w) for w in args.windows.split(",")]
    transports = ["tls", "plain"] if args.plain else ["tls"]
    print(collect(args.seconds, args.connections, windows, transports, args.uvloop, node_flags,
                  args.distinct)["report"])


def collect(seconds: float = 5.0, connections: int = 4, windows: Sequence[int] = (1, 8, 64),
            transports: Sequence[str] = ("tls",), use_uvloop: bool = False,
            node_flags: Sequence[str] = (), distinct: bool = False) -> Dict[str, object]:
    """Node and raw server side by side for each transport and pipelining window.

    Returns the Markdown report; per (transport, window) the node's and the
    raw server's CPU µs per request and requests/s ("figures"), and the node's
    requests/s over the raw server's ("ratios")."""
    rows = []
    figures: Dict[Tuple[str, int], Dict[str, float]] = {}
    ratios: Dict[Tuple[str, int], float] = {}  # node req/s / raw req/s (run_all.py's summary reads it)
    loop_name = "uvloop" if use_uvloop else "asyncio"
    for transport in transports:
        tls = transport == "tls"
        for window in windows:
            with NodeProcess(*(["--tls", "--tls-min", "1.3"] if tls else []), *node_flags) as node:
                context = ssl.create_default_context(cafile=node.ca_pem) if tls else None
                ours = drive(node.host, node.port, context, seconds, connections, window, node.cpu_seconds, distinct)
            with RawServer(tls, ours.answer_size, use_uvloop) as raw:
                base = drive("127.0.0.1", raw.port, raw.context(), seconds, connections, window, raw.cpu_seconds,
                             distinct)
            ratios[(transport, window)] = ours.rate / base.rate
            figures[(transport, window)] = {
                "node_cpu_us": ours.cpu_us_per_request, "raw_cpu_us": base.cpu_us_per_request,
                "node_rate": ours.rate, "raw_rate": base.rate}
            rows.append({
                "transport": "TLS 1.3" if tls else "plain", "loop": loop_name, "window": window,
                "node CPU µs/req": f"{ours.cpu_us_per_request:.1f}",
                "raw CPU µs/req": f"{base.cpu_us_per_request:.1f}",
                "node req/s": f"{ours.rate:,.0f}", "raw req/s": f"{base.rate:,.0f}",
                "response bytes": ours.answer_size})
    flags = " ".join(node_flags) or "none"
    what = f"each of {DISTINCT_VALUES} distinct keys in turn" if distinct else "the same key"
    header = (f"{connections} connections, each with `window` pipelined EXECUTEs of one prepared statement "
              f"({what}); "
              f"{seconds} s measured per run after a 0.5 s warm-up. The node runs `serve` with default flags "
              f"(frame log on) plus: {flags}. CPU µs/req = the server process's utime+stime (/proc) over "
              f"the measured window / requests answered in it; req/s is bounded by the Python client.\n")
    columns = ["transport", "loop", "window", "node CPU µs/req", "raw CPU µs/req", "node req/s", "raw req/s",
               "response bytes"]
    return {"report": header + "\n" + table(rows, columns), "figures": figures, "ratios": ratios}


# -- where the node's time goes ----------------------------------------------------

# (what, file path fragments): a function belongs to the first part whose
# fragment its file contains; C functions are matched by their names.
PARTS = [
    ("CQL frame and message codec (fakecql/protocol)", ["fakecql/protocol/"]),
    ("node semantics: queries, system tables, priming", ["fakecql/node.py", "fakecql/cql.py", "fakecql/schema.py",
                                                         "fakecql/priming.py", "fakecql/caches.py"]),
    ("activity and frame log", ["fakecql/activity.py", "fakecql/requestlog.py"]),
    ("server shell: connections, faults, TLS engine", ["fakecql/server.py", "fakecql/tls.py", "fakecql/faults",
                                                       "fakecql/wireline.py"]),
    ("OpenSSL (ssl module)", ["_ssl.", "/ssl.py"]),
    ("asyncio, selectors, sockets", ["/asyncio/", "/selectors.py", "socket"]),
]


def _part(filename: str, function: str) -> str:
    where = filename if filename != "~" else function
    for name, fragments in PARTS:
        if any(fragment in where for fragment in fragments):
            return name
    return "other (interpreter, stdlib)"


def profile(seconds: float, connections: int, window: int, node_flags: Sequence[str] = (), top: int = 10,
            distinct: bool = False) -> str:
    """The TLS node under cProfile while driven at `window`: time per part and per request, top functions."""
    import pstats
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fakecql-profile-") as tmp:
        out = os.path.join(tmp, "node.prof")
        launcher = (os.path.join(os.path.dirname(os.path.abspath(__file__)), "_profiled_serve.py"), out)
        with NodeProcess("--tls", "--tls-min", "1.3", *node_flags, launcher=launcher) as node:
            context = ssl.create_default_context(cafile=node.ca_pem)
            measured = drive(node.host, node.port, context, seconds, connections, window, node.cpu_seconds,
                             distinct)
        requests = measured.requests
        rate = measured.rate
        stats = pstats.Stats(out)
    raw = stats.stats  # type: ignore[attr-defined]
    by_part: Dict[str, float] = {}
    functions = []
    cumulative = []
    for (filename, line, function), (_, calls, own, cum, _) in raw.items():
        part = _part(filename, function)
        by_part[part] = by_part.get(part, 0.0) + own
        where = os.path.relpath(filename, REPO) if filename.startswith(REPO) else os.path.basename(filename)
        name = f"{where}:{line} {function}" if filename != "~" else function
        functions.append((own, calls, name))
        if "fakecql/" in filename:
            cumulative.append((cum, calls, name))
    total = sum(by_part.values()) or 1.0
    rows = [{"part": part, "share of node CPU": f"{own / total:.0%}", "µs per request": f"{own / requests * 1e6:.1f}"}
            for part, own in sorted(by_part.items(), key=lambda item: -item[1])]
    functions.sort(reverse=True)
    top_rows = [{"function": name, "calls per request": f"{calls / requests:.1f}", "own µs per request": f"{own / requests * 1e6:.2f}"}
                for own, calls, name in functions[:top]]
    cumulative.sort(reverse=True)
    cum_rows = [{"function": name, "calls per request": f"{calls / requests:.1f}",
                 "cumulative µs per request": f"{cum / requests * 1e6:.2f}"} for cum, calls, name in cumulative[:top]]
    return "\n".join([
        f"TLS 1.3, {connections} connections × {window} pipelined EXECUTEs, {seconds} s: {rate:,.0f} req/s under "
        f"cProfile (which inflates Python calls; the shares are the point). Own time (cProfile "
        f"'tottime') of the node's loop thread, by part, per request answered in the measured "
        f"{seconds} s (the profile also holds the start-up and a 0.5 s warm-up, so these run a little high).\n",
        table(rows, ["part", "share of node CPU", "µs per request"]),
        f"\nTop {top} functions by own time:\n",
        table(top_rows, ["function", "calls per request", "own µs per request"]),
        f"\nTop {top} fakecql functions by cumulative time (callees included):\n",
        table(cum_rows, ["function", "calls per request", "cumulative µs per request"]),
        f"\nNode process CPU (/proc) while profiled: {measured.cpu_us_per_request:.1f} µs per request.",
    ])


if __name__ == "__main__":
    main()
