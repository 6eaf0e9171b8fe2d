# Shared by the benchmark scripts: the machine they ran on, a fakecql node in
# a process of its own, and small statistics. Benchmarks print figures and
# assert nothing.
from __future__ import annotations

import os
import platform
import re
import resource
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple

LISTENING = re.compile(r"^listening on (?:\[(?P<h6>[0-9a-f:]+)\]|(?P<h4>[0-9.]+)):(?P<port>\d+)")


def machine() -> str:
    """One line naming the machine, for every benchmark's output."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from importlib import metadata

        driver = next(f"{d} {metadata.version(d)}" for d in ("scylla-driver", "cassandra-driver")
                      if _installed(d))
    except StopIteration:
        driver = "no driver"
    import ssl

    return (f"{time.strftime('%Y-%m-%d')} | {platform.system()} {platform.release()} | {cpu} | "
            f"{os.cpu_count()} CPUs | Python {platform.python_version()} | {ssl.OPENSSL_VERSION} | {driver}")


def _installed(dist: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def stop_process(proc: "subprocess.Popen[str]") -> None:
    """SIGTERM, then SIGKILL if it is still there after 10 s; reaped either way."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class NodeProcess:
    """`python -m fakecql serve` in its own process (its own GIL), stopped on exit.

    The node runs with `serve`'s default flags plus `flags` (the frame log is
    on, as a user gets it; pass "--no-frame-log" to measure without it)."""

    def __init__(self, *flags: str, launcher: Sequence[str] = ("-m", "fakecql")) -> None:
        self.flags = flags
        self.launcher = tuple(launcher)  # what runs `serve` (node_capacity --profile wraps it)
        self.certs = tempfile.TemporaryDirectory(prefix="fakecql-bench-")
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def ca_pem(self) -> str:
        return str(Path(self.certs.name) / "ca.pem")

    def __enter__(self) -> "NodeProcess":
        argv = [sys.executable, *self.launcher, "serve", "--port", "0", *self.flags]
        if "--tls" in self.flags:
            argv += ["--certs-dir", self.certs.name]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = self.proc.stdout.readline()
        match = LISTENING.match(line)
        if not match or time.monotonic() > deadline:
            self.proc.kill()
            raise RuntimeError(f"the node did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}")
        self.host = match["h4"] or match["h6"]
        self.port = int(match["port"])
        # Drained from now on: a node that prints much (an incident line per
        # unexpected request) must never block on a full pipe.
        self.stdout_lines: List[str] = []
        self.stderr_lines: List[str] = []
        self.drains = [threading.Thread(target=self._drain, args=(stream, sink), daemon=True)
                       for stream, sink in ((self.proc.stdout, self.stdout_lines),
                                            (self.proc.stderr, self.stderr_lines))]
        for thread in self.drains:
            thread.start()
        return self

    @staticmethod
    def _drain(stream: object, sink: List[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            sink.append(line.rstrip("\n"))

    def __exit__(self, *exc_info: object) -> None:
        stop_process(self.proc)
        for thread in self.drains:
            thread.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.certs.cleanup()

    def peak_rss_bytes(self) -> int:
        """The node's peak resident memory (VmHWM)."""
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """CPU time the node process has used so far (Linux)."""
        return process_cpu_seconds(self.proc.pid)

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` so far, from /proc/<pid>/stat (Linux)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A Markdown table."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in cells]
    return "\n".join(lines)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_flag(name: str, default: Optional[str] = None) -> Optional[str]:
    return os.environ.get(name, default)


# -- a bare CQL v4 client, for load generators that must not be the bottleneck --

HEADER = struct.Struct(">BBhBi")


def request_frame(opcode: int, body: bytes, stream: int = 0) -> bytes:
    return HEADER.pack(4, 0, stream, opcode, len(body)) + body


def long_string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw


def startup_frame() -> bytes:
    key, value = b"CQL_VERSION", b"3.0.0"
    return request_frame(0x01, struct.pack(">HH", 1, len(key)) + key + struct.pack(">H", len(value)) + value)


def query_frame(text: str, stream: int = 0) -> bytes:
    """QUERY at consistency ONE, no values."""
    return request_frame(0x07, long_string(text) + struct.pack(">HB", 0x0001, 0), stream)


class RawClient:
    """One blocking connection (TLS if `context`) speaking just enough CQL v4."""

    def __init__(self, host: str, port: int, context: Optional[ssl.SSLContext] = None) -> None:
        sock = socket.create_connection((host, port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = context.wrap_socket(sock, server_hostname=host) if context else sock
        self.buf = b""

    def read_frame(self) -> Tuple[int, int, bytes]:
        """(opcode, stream, body) of the next frame."""
        while True:
            if len(self.buf) >= 9:
                _, _, stream, opcode, length = HEADER.unpack_from(self.buf)
                if len(self.buf) >= 9 + length:
                    body, self.buf = self.buf[9 : 9 + length], self.buf[9 + length :]
                    return opcode, stream, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buf += chunk

    @classmethod
    def started(cls, host: str, port: int, context: Optional[ssl.SSLContext] = None) -> "RawClient":
        """A connection that has done its STARTUP (READY received)."""
        client = cls(host, port, context)
        client.startup()
        return client

    def startup(self) -> None:
        self.sock.sendall(startup_frame())
        opcode = self.read_frame()[0]
        if opcode != 0x02:
            raise RuntimeError(f"expected READY (0x02) to STARTUP, got opcode 0x{opcode:02x}")

    def close(self) -> None:
        self.sock.close()


def raise_fd_limit(wanted: int) -> None:
    """Raise the open-files soft limit to `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
