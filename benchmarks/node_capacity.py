"""Node capacity: requests/s one fakecql process serves, over TLS 1.3 and
plain TCP, beside a raw asyncio server answering the same frames.

The load generator is lean on purpose (not the driver): a few connections,
each with a window of pipelined EXECUTE frames, counting answers by their
headers. The baseline ("raw asyncio") is the practical ceiling for a Python
asyncio server: stock asyncio TLS (loop.create_server(ssl=...)), frames cut
by their headers, each answered at once with a canned frame of exactly the
size the node answers, one write per read. Both servers run in their own
process. Prints figures; asserts nothing.

    python benchmarks/node_capacity.py [--seconds 5] [--connections 4] [--window 64]
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
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import HEADER, NodeProcess, RawClient, long_string, machine, request_frame, table  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERY = "SELECT release_version FROM system.local WHERE key = ?"
class Client(RawClient):
    """The load generator's connection: prepares, then pipelines EXECUTEs."""

    def prepare(self) -> bytes:
        """STARTUP, then PREPARE: the EXECUTE frame to send under load."""
        self.startup()
        self.sock.sendall(request_frame(0x09, long_string(QUERY)))
        opcode, _, body = self.read_frame()
        assert opcode == 0x08 and struct.unpack_from(">i", body)[0] == 4, body[:40]
        id_length = struct.unpack_from(">H", body, 4)[0]
        query_id = body[6 : 6 + id_length]
        value = b"local"
        params = struct.pack(">HBH", 0x0001, 0x01 | 0x02, 1) + struct.pack(">i", len(value)) + value
        return request_frame(0x0A, struct.pack(">H", len(query_id)) + query_id + params)

    def run(self, frame: bytes, window: int, stop_at: float, counter: List[int], response_size: List[int]) -> None:
        batch = frame * window
        answered = 0
        while time.perf_counter() < stop_at:
            self.sock.sendall(batch)
            for _ in range(window):
                body = self.read_frame()[2]
                if not response_size[0]:
                    response_size[0] = 9 + len(body)
            answered += window
        counter.append(answered)


def drive(host: str, port: int, context: Optional[ssl.SSLContext], seconds: float, connections: int,
          window: int) -> Tuple[float, int]:
    """(requests/s, response frame size) with `connections` pipelining `window` requests each."""
    clients = [Client(host, port, context) for _ in range(connections)]
    frames = [c.prepare() for c in clients]
    counter: List[int] = []
    size = [0]
    warm = time.perf_counter() + 0.5
    for client, frame in zip(clients, frames):  # warm up
        client.run(frame, window, warm, [], size)
    start = time.perf_counter()
    stop_at = start + seconds
    threads = [threading.Thread(target=c.run, args=(f, window, stop_at, counter, size)) for c, f in zip(clients, frames)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    for client in clients:
        client.sock.close()
    return sum(counter) / elapsed, size[0]


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


def serve_raw(port_file: str, certs: Optional[str], answer_size: int) -> None:
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

    asyncio.run(main())


class RawServer:
    def __init__(self, tls: bool, answer_size: int) -> None:
        import tempfile

        import trustme

        self.dir = tempfile.TemporaryDirectory(prefix="fakecql-raw-")
        self.tls = tls
        self.answer_size = answer_size
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
        self.proc = subprocess.Popen(argv)
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the raw server did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read())
        return self

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
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--profile", action="store_true",
                        help="run the TLS node under cProfile at --window and print where its time goes")
    parser.add_argument("--raw-server", help=argparse.SUPPRESS)
    parser.add_argument("--certs", help=argparse.SUPPRESS)
    parser.add_argument("--answer-size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_server:
        serve_raw(args.raw_server, args.certs, args.answer_size)
        return

    if args.profile:
        print(f"# Node profile\n\n{machine()}\n")
        print(profile(args.seconds, args.connections, args.window))
        return
    print(f"# Node capacity\n\n{machine()}\n")
    print(collect(args.seconds, args.connections, [args.window])["report"])


def collect(seconds: float = 5.0, connections: int = 4, windows: List[int] = (1, 8, 64)) -> Dict[str, object]:  # type: ignore[assignment]
    """Node and raw server side by side for each pipelining window; the ratios."""
    lines = []
    rows = []
    ratios: Dict[Tuple[str, int], float] = {}
    for window in windows:
        for transport in ("tls", "plain"):
            tls = transport == "tls"
            with NodeProcess(*(["--tls", "--tls-min", "1.3"] if tls else [])) as node:
                context = ssl.create_default_context(cafile=node.ca_pem) if tls else None
                cpu0 = node.cpu_seconds()
                node_rate, size = drive(node.host, node.port, context, seconds, connections, window)
                node_cpu = node.cpu_seconds() - cpu0
            with RawServer(tls, size) as raw:
                raw_rate, _ = drive("127.0.0.1", raw.port, raw.context(), seconds, connections, window)
            ratios[(transport, window)] = node_rate / raw_rate
            rows.append({"transport": "TLS 1.3" if tls else "plain", "window": window,
                         "fakecql node req/s": f"{node_rate:,.0f}", "raw asyncio req/s": f"{raw_rate:,.0f}",
                         "node / raw": f"{node_rate / raw_rate:.0%}", "node CPU µs/req": f"{node_cpu / max(node_rate * seconds, 1) * 1e6:.0f}",
                         "response bytes": size})
    lines.append(f"{connections} connections, each with `window` pipelined EXECUTEs; {seconds} s per run\n")
    lines.append(table(rows, ["transport", "window", "fakecql node req/s", "raw asyncio req/s", "node / raw",
                              "node CPU µs/req", "response bytes"]))
    return {"report": "\n".join(lines), "ratios": ratios}

# -- where the node's time goes ----------------------------------------------------

# (what, file path fragments): a function belongs to the first part whose
# fragment its file contains; C functions are matched by their names.
PARTS = [
    ("CQL frame and message codec (fakecql/protocol)", ["fakecql/protocol/"]),
    ("node semantics: queries, system tables, activity log", ["fakecql/node.py", "fakecql/cql.py",
                                                              "fakecql/schema.py", "fakecql/activity.py"]),
    ("server shell: connections, faults, TLS engine", ["fakecql/server.py", "fakecql/tls.py", "fakecql/faults.py"]),
    ("OpenSSL (ssl module)", ["_ssl.", "/ssl.py"]),
    ("asyncio, selectors, sockets", ["/asyncio/", "/selectors.py", "socket"]),
]


def _part(filename: str, function: str) -> str:
    where = filename if filename != "~" else function
    for name, fragments in PARTS:
        if any(fragment in where for fragment in fragments):
            return name
    return "other (interpreter, stdlib)"


def profile(seconds: float, connections: int, window: int, top: int = 15) -> str:
    """The TLS node under cProfile while driven at `window`: time per part and per request, top functions."""
    import pstats
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fakecql-profile-") as tmp:
        out = os.path.join(tmp, "node.prof")
        launcher = (os.path.join(os.path.dirname(os.path.abspath(__file__)), "_profiled_serve.py"), out)
        with NodeProcess("--tls", "--tls-min", "1.3", launcher=launcher) as node:
            context = ssl.create_default_context(cafile=node.ca_pem)
            rate, _ = drive(node.host, node.port, context, seconds, connections, window)
        requests = rate * seconds
        stats = pstats.Stats(out)
    raw = stats.stats  # type: ignore[attr-defined]
    by_part: Dict[str, float] = {}
    functions = []
    for (filename, line, function), (_, calls, own, _, _) in raw.items():
        part = _part(filename, function)
        by_part[part] = by_part.get(part, 0.0) + own
        where = os.path.relpath(filename, REPO) if filename.startswith(REPO) else os.path.basename(filename)
        functions.append((own, calls, f"{where}:{line} {function}" if filename != "~" else function))
    total = sum(by_part.values()) or 1.0
    rows = [{"part": part, "share of node CPU": f"{own / total:.0%}", "µs per request": f"{own / requests * 1e6:.1f}"}
            for part, own in sorted(by_part.items(), key=lambda item: -item[1])]
    functions.sort(reverse=True)
    top_rows = [{"function": name, "calls per request": f"{calls / requests:.1f}", "own µs per request": f"{own / requests * 1e6:.2f}"}
                for own, calls, name in functions[:top]]
    return "\n".join([
        f"TLS 1.3, {connections} connections × {window} pipelined EXECUTEs, {seconds} s: {rate:,.0f} req/s under "
        f"cProfile (which inflates Python calls; the shares are the point). Own time (cProfile "
        f"'tottime') of the node's loop thread, by part, per request answered in the measured "
        f"{seconds} s (the profile also holds the start-up and a 0.5 s warm-up, so these run a little high).\n",
        table(rows, ["part", "share of node CPU", "µs per request"]),
        f"\nTop {top} functions by own time:\n",
        table(top_rows, ["function", "calls per request", "own µs per request"]),
    ])


if __name__ == "__main__":
    main()
