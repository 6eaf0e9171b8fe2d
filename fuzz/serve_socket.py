"""Fuzz a running node over sockets: mutated frames of every opcode and
version, sent to `python -m fakecql serve` (plain and TLS), with invariants
checked after every case.

    python fuzz/serve_socket.py [--seconds 60 | --cases N] [--seed S] [--replay INDEX]

Strategy: each case is made from its own generator, random.Random("seed:index"),
so a case replays alone (--replay INDEX with the same --seed; the node's
state, such as its prepared statements, comes from the cases before, so a
replay may need the run up to it). A case connects to one of the two nodes,
does the handshake or not (protocol v3, v4 or v5; LZ4 or not; v5 then speaks
segments), builds 1-3 valid requests with fakecql.protocol.messages (every
request opcode, and response opcodes sent as requests), then mutates them at
one layer (the message body, the frames, the v5 segments) with bit flips,
truncations, length fields set to extremes, random splices, chunks
duplicated or deleted, and sends the bytes in a few pieces.

Invariants, each a failure when broken:
  * every complete frame the bytes hold (counted by fakecql's own framing
    readers, leniently: up to the first fatal error or a v5 STARTUP) is
    answered with a well-formed response frame, or the node closes the
    connection, within --answer-timeout;
  * a fresh connection's STARTUP and QUERY are answered within --bystander-bound
    after every case (while the case's connection is still open);
  * serve never exits; its stderr shows no Traceback or ServerException.

Prints the cases run, the answers by kind, and every failure with the seed
and index that replay it; exits 1 on any failure.
"""
from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Counter, Dict, List, Optional, Sequence, Tuple, Union

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks._common import machine  # noqa: E402
from benchmarks.bystander import LZ4, Wire, decode  # noqa: E402
from fakecql.protocol.errors import RemoteProtocolError  # noqa: E402
from fakecql.protocol.frames import (  # noqa: E402
    FrameFlag, FrameReader, SegmentReader, crc24, crc32, encode_frame, encode_segments,
)
from fakecql.protocol.messages import (  # noqa: E402
    AuthResponse, Batch, BatchStatement, BatchType, Consistency, Error, Execute, Message, Options, Prepare,
    PreparedResult, Query, QueryParameters, Ready, Register, Startup,
)
from fakecql.protocol.wire import UNSET, Unset  # noqa: E402
from tests.rawcql import request_frame  # noqa: E402
from tests.serve_process import ServeProcess  # noqa: E402

Value = Union[bytes, None, Unset]

MiB = 1024 * 1024
MAX_FRAME_BODY = 16 * MiB  # the node's default limit, which the counting of complete frames uses
STDERR_ALARMS = ("Traceback", "ServerException", "Exception in callback", "exception was never retrieved")

TEXTS = [
    "SELECT release_version FROM system.local",
    "SELECT * FROM system.local WHERE key = ?",
    "SELECT peer, rpc_address FROM system.peers",
    "SELECT * FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
    "SELECT key, release_version FROM system.local WHERE key IN (?, ?, 'local') LIMIT ?",
    "SELECT count(*) FROM system.local",
    "INSERT INTO system.local (key, release_version) VALUES (?, ?)",
    "UPDATE ks.t SET v = ? WHERE k = 1",
    "USE system",
    "USE \"no_such_keyspace\"",
    "BEGIN BATCH INSERT INTO t (k) VALUES (1) APPLY BATCH",
    "SELECT * FROM t USING TIMEOUT 5s",
    "SELECT * FROM t" + " ;" * 40 + " x",
    "'a" * 40,
    "",
    "SELECT \"é\" FROM system.local WHERE key = :k",
]


# -- the nodes -----------------------------------------------------------------------

_HELP: List[str] = []


def _serve_lists(flag: str) -> bool:
    """Whether `serve --help` lists `flag` (flags land while the node is hardened)."""
    if not _HELP:
        _HELP.append(subprocess.run([sys.executable, "-m", "fakecql", "serve", "--help"], capture_output=True,
                                    text=True, timeout=60).stdout)
    return flag in _HELP[0]


def alarms(lines: Sequence[str]) -> List[str]:
    """Each alarming stderr line with the (indented) traceback lines after it."""
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if any(a in line for a in STDERR_ALARMS):
            context = [line[:300]]
            while i < len(lines) and len(context) < 40 and lines[i].startswith((" ", "Traceback")):
                context.append(lines[i][:300])
                i += 1
            found.append("\n        ".join(context))
    return found

class Node:
    """One `serve` process (plain or TLS), restarted if it dies."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.certs = tempfile.TemporaryDirectory(prefix="fakecql-fuzz-")
        self.serve: Optional[ServeProcess] = None
        self.context: Optional[ssl.SSLContext] = None
        self.start()

    def start(self) -> None:
        flags = ["--tls", "--certs-dir", self.certs.name] if self.transport == "tls" else []
        if _serve_lists("--verbose"):
            flags.append("--verbose")  # a server exception's traceback follows its incident line
        self.serve = ServeProcess(*flags).__enter__()
        self.serve.wait_listening()
        if self.transport == "tls":
            self.context = ssl.create_default_context(cafile=os.path.join(self.certs.name, "ca.pem"))

    @property
    def address(self) -> Tuple[str, int]:
        assert self.serve is not None
        return self.serve.host, self.serve.port

    def alive(self) -> bool:
        return self.serve is not None and self.serve.proc.poll() is None

    def new_stderr(self) -> List[str]:
        """stderr lines written since the last call."""
        assert self.serve is not None
        lines: List[str] = []
        while True:
            try:
                line = self.serve.err.lines.get_nowait()
            except Exception:  # noqa: BLE001 - queue.Empty
                return lines
            if line is None:
                return lines
            self.serve.err.seen.append(line)
            lines.append(line)

    def restart(self) -> None:
        self.close()
        self.start()

    def stop(self) -> Tuple[Optional[int], List[str]]:
        """SIGTERM; (exit status, stderr lines from then on)."""
        assert self.serve is not None
        self.new_stderr()  # what came before the signal was checked after the last case
        try:
            self.serve.proc.send_signal(signal.SIGTERM)
            status: Optional[int] = self.serve.proc.wait(30)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired: reported as None
            status = None
        time.sleep(0.1)
        lines = self.new_stderr()
        self.close()
        return status, lines

    def close(self) -> None:
        if self.serve is not None:
            self.serve.__exit__(None, None, None)
            self.serve = None


# -- requests, valid then mutated -----------------------------------------------------

def _value(rng: random.Random, version: int) -> Value:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.15 and version >= 4:
        return UNSET
    if roll < 0.22:
        return rng.randbytes(rng.randint(20_000, 80_000))  # large: the node decodes it off its loop
    return rng.choice([b"local", b"", b"\x00\x00\x00\x01", rng.randbytes(rng.randint(0, 40))])


def _params(rng: random.Random, version: int, markers: Optional[int] = None) -> QueryParameters:
    count = rng.randint(0, 3) if markers is None else markers
    values = tuple(_value(rng, version) for _ in range(count))
    options: Dict[str, object] = {"consistency": rng.choice(list(Consistency)), "values": values}
    if values and rng.random() < 0.2:
        options["names"] = tuple(rng.choice(["k", "key", "v", "é", ""]) for _ in values)
    if rng.random() < 0.3:
        options["page_size"] = rng.choice([1, 100, 5000, 2**31 - 1])
    if rng.random() < 0.2:
        options["paging_state"] = rng.randbytes(rng.randint(0, 12))
    if rng.random() < 0.2:
        options["serial_consistency"] = rng.choice([Consistency.SERIAL, Consistency.LOCAL_SERIAL, Consistency.ONE])
    if rng.random() < 0.2:
        options["timestamp"] = rng.choice([0, -1, 2**63 - 1, 1_700_000_000_000_000])
    options["skip_metadata"] = rng.random() < 0.3
    if version >= 5 and rng.random() < 0.3:
        options["keyspace"] = rng.choice(["system", "ks", "", "x" * 300])
    if version >= 5 and rng.random() < 0.2:
        options["now_in_seconds"] = rng.choice([0, -1, 2**31 - 1])
    return QueryParameters(**options)  # type: ignore[arg-type]


def random_request(rng: random.Random, version: int, ids: Sequence[bytes]) -> Message:
    """A valid request message of a random opcode (Options if the dice built an invalid one)."""
    def query_id() -> bytes:
        return rng.choice(ids) if ids and rng.random() < 0.7 else rng.randbytes(rng.choice([0, 1, 16, 300]))

    text = rng.choice(TEXTS)
    # Mostly as many values as the text has markers, so that the node gets past counting them.
    markers = text.count("?") + text.count(":k") if rng.random() < 0.7 else None
    builders: List[Callable[[], Message]] = [
        lambda: Options(),
        lambda: Startup(options={"CQL_VERSION": rng.choice(["3.0.0", "3.4.5", "4.0.0", "x"]),
                                 **({"DRIVER_NAME": "fuzz", "THROW_ON_OVERLOAD": "1"} if rng.random() < 0.5 else {})}),
        lambda: Query(query=text, parameters=_params(rng, version, markers)),
        lambda: Prepare(query=rng.choice(TEXTS), **({"keyspace": rng.choice(["system", "nope"])}
                                                   if version >= 5 and rng.random() < 0.5 else {})),
        lambda: Execute(query_id=query_id(), parameters=_params(rng, version, rng.choice([0, 1, 2, None])),
                        **({"result_metadata_id": rng.randbytes(16)} if version >= 5 else {})),
        lambda: Batch(statements=tuple(
            BatchStatement(query=rng.choice(TEXTS), values=tuple(_value(rng, version) for _ in range(rng.randint(0, 2))))
            if rng.random() < 0.6 else BatchStatement(query_id=query_id())
            for _ in range(rng.randint(1, 4))), batch_type=rng.choice(list(BatchType))),
        lambda: Register(event_types=tuple(rng.sample(["TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE", "NOPE"],
                                                      rng.randint(0, 3)))),
        lambda: AuthResponse(token=rng.choice([None, b"", b"\x00cassandra\x00cassandra", rng.randbytes(20)])),
    ]
    try:
        return rng.choice(builders)()
    except Exception:  # noqa: BLE001 - the dice asked for a message that cannot be built
        return Options()


EXTREMES_32 = [0, 1, -1, 2**31 - 1, -(2**31), MAX_FRAME_BODY, MAX_FRAME_BODY + 1, 255 * MiB, 65535, 65536]
EXTREMES_16 = [0, 1, 0x7FFF, 0x8000, 0xFFFF]


def mutate(rng: random.Random, data: bytes, frame_starts: Sequence[int], donors: Sequence[bytes]) -> Tuple[bytes, List[str]]:
    """`data` after 1-3 mutations; their names."""
    out = bytearray(data)
    done: List[str] = []
    for _ in range(rng.randint(1, 3)):
        if not out:
            out += rng.randbytes(rng.randint(1, 12))
            done.append("random bytes")
            continue
        kind = rng.choice(["flip", "truncate", "length", "length", "field", "splice", "duplicate", "delete",
                           "insert", "header"])
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
            done.append("bit flips")
        elif kind == "truncate":
            cut = rng.randrange(len(out))
            del out[cut:]
            done.append(f"truncated at {cut}")
        elif kind == "length" and frame_starts:
            start = rng.choice(frame_starts)
            if start + 9 <= len(out):
                value = rng.choice(EXTREMES_32 + [len(out) - start - 9 + rng.randint(-2, 2)])
                out[start + 5 : start + 9] = struct.pack(">i", value)
                done.append(f"frame length at {start} := {value}")
        elif kind in ("length", "field"):
            at = rng.randrange(len(out))
            if rng.random() < 0.5:
                value = rng.choice(EXTREMES_32)
                out[at : at + 4] = struct.pack(">i", value)
            else:
                value = rng.choice(EXTREMES_16)
                out[at : at + 2] = struct.pack(">H", value)
            done.append(f"field at {at} := {value}")
        elif kind == "splice" and donors:
            donor = rng.choice(donors)
            a = rng.randrange(len(donor) + 1)
            b = rng.randrange(a, len(donor) + 1)
            at = rng.randrange(len(out) + 1)
            out[at:at + (rng.randrange(8) if rng.random() < 0.5 else 0)] = donor[a:b]
            done.append(f"splice of {b - a} bytes at {at}")
        elif kind == "duplicate":
            a = rng.randrange(len(out))
            b = min(len(out), a + rng.randint(1, 64))
            out[b:b] = out[a:b] * rng.randint(1, 4)
            done.append(f"duplicated {a}:{b}")
        elif kind == "delete":
            a = rng.randrange(len(out))
            del out[a : a + rng.randint(1, 16)]
            done.append(f"deleted at {a}")
        elif kind == "insert":
            at = rng.randrange(len(out) + 1)
            out[at:at] = rng.randbytes(rng.randint(1, 16))
            done.append(f"inserted at {at}")
        elif kind == "header" and frame_starts:
            start = rng.choice(frame_starts)
            offset = rng.choice([0, 1, 2, 4])
            if start + offset < len(out):
                out[start + offset] = rng.choice([0x00, 0x01, 0x02, 0x03, 0x05, 0x06, 0x45, 0x83, 0x85, 0x12, 0xFF,
                                                  rng.randrange(256)])
                done.append(f"header byte {offset} of frame at {start} := 0x{out[start + offset]:02x}")
    return bytes(out), done


@dataclass
class Case:
    index: int
    transport: str
    version: int
    handshake: bool
    compression: bool
    layer: str
    requests: List[str]
    mutations: List[str] = field(default_factory=list)
    data: bytes = b""

    def describe(self) -> str:
        return (f"{self.transport} v{self.version} handshake={self.handshake} lz4={self.compression} "
                f"layer={self.layer} requests=[{', '.join(self.requests)}] mutations=[{'; '.join(self.mutations)}] "
                f"{len(self.data)} bytes sent, first 48: {self.data[:48].hex()}")


def build_case(seed: int, index: int, ids: Sequence[bytes]) -> Case:
    rng = random.Random(f"{seed}:{index}")
    version = rng.choice([3, 4, 5])
    handshake = rng.random() < 0.7
    compression = handshake and rng.random() < 0.4
    segments = handshake and version >= 5
    layers = ["none", "body", "frames"] + (["segments", "segments", "raw frames"] if segments else [])
    case = Case(index, rng.choice(["plain", "tls"]), version, handshake, compression, rng.choice(layers), [])
    messages = [random_request(rng, version, ids) for _ in range(rng.randint(1, 3))]
    if not handshake and rng.random() < 0.5:  # a STARTUP first, so the rest reaches the node's queries
        messages.insert(0, Startup(options={"CQL_VERSION": "3.0.0"}))
    case.requests = [type(m).__name__ for m in messages]
    donors = [request_frame(random_request(rng, version, ids), version=version) for _ in range(2)]
    frames, starts = [], []
    position = 0
    for message in messages:
        body = message.encode_body(version)
        if case.layer == "body":
            body, done = mutate(rng, body, [], donors)
            case.mutations += [f"body: {d}" for d in done]
        flags = 0
        if compression and version < 5:
            body, flags = LZ4.compress_body(body), int(FrameFlag.COMPRESSION)
        if rng.random() < 0.05:
            flags |= rng.choice([0x02, 0x04, 0x08, 0x10, 0xFF])
        stream = rng.choice([0, 1, rng.randrange(32768), -1, -(2**15)]) if rng.random() < 0.3 else rng.randrange(128)
        frame = encode_frame(version, stream, message.opcode, body, flags=flags, is_response=False)
        starts.append(position)
        position += len(frame)
        frames.append(frame)
    data = b"".join(frames)
    if case.layer == "frames":
        data, done = mutate(rng, data, starts, donors)
        case.mutations += [f"frames: {d}" for d in done]
    if segments and case.layer != "raw frames":
        if rng.random() < 0.2:  # cut into small segments that are not self-contained
            cut = rng.choice([1, 7, 97, 4096])
            data = b"".join(_segment_of(data[i : i + cut], compression) for i in range(0, len(data), cut))
        else:
            data = encode_segments(data, LZ4 if compression else None)
        if case.layer == "segments":
            data, done = mutate(rng, data, [], donors)
            case.mutations += [f"segments: {d}" for d in done]
    case.data = data
    return case


def _segment_of(payload: bytes, compression: bool) -> bytes:
    """One v5 segment, not self-contained, of `payload` (LZ4-compressed if that is shorter)."""
    size, uncompressed = (5, len(payload)) if compression else (3, 0)
    if compression:
        block = LZ4.compress_raw(payload)
        if len(block) < len(payload):
            payload = block
        else:
            uncompressed = 0
    header = len(payload) | (uncompressed << 17)
    return (header.to_bytes(size, "little") + crc24(header, size).to_bytes(3, "little") + payload
            + crc32(payload).to_bytes(4, "little"))


# -- counting what the node must answer -----------------------------------------------

def complete_frames(case: Case) -> int:
    """How many frames the node must answer (or close the connection).

    Lenient: counts up to the first fatal error (answered, then the node may
    close) and stops after a v5 STARTUP (the framing may switch to segments).
    """
    frames = FrameReader(versions=(3, 4, 5), max_body=MAX_FRAME_BODY)
    count = 0
    version: Optional[int] = case.version if case.handshake else None
    payloads: List[bytes] = []
    if case.handshake and case.version >= 5:
        segments = SegmentReader(LZ4 if case.compression else None)
        segments.feed(case.data)
        try:
            while True:
                payload = segments.next_payload()
                if payload is None:
                    break
                payloads.append(payload)
        except RemoteProtocolError:
            pass  # fatal: the frames of the segments before it are answered, then the node may close
    else:
        payloads = [case.data]
    for payload in payloads:
        frames.feed(payload)
    while True:
        try:
            frame = frames.next_frame()
        except RemoteProtocolError as exc:
            count += 1
            if exc.fatal:
                return count
            continue
        if frame is None:
            break
        count += 1
        if version is None:
            version = frame.header.version
        elif frame.header.version != version:
            return count
        if frame.header.opcode == 0x01 and frame.header.version >= 5 and not case.handshake:
            return count
    return count


# -- running a case -------------------------------------------------------------------

@dataclass
class Outcome:
    answers: List[str]
    closed: bool
    failure: Optional[str] = None
    prepared: List[bytes] = field(default_factory=list)


def run_case(case: Case, node: Node, answer_timeout: float, bystander_bound: float,
             rng: random.Random) -> Tuple[Outcome, float]:
    """Send the case, read its answers, check the bystander; (outcome, bystander seconds)."""
    outcome = Outcome([], False)
    expected = complete_frames(case)
    try:
        wire = Wire(node.address, node.context, answer_timeout)
    except OSError as exc:
        outcome.failure = f"cannot connect: {exc}"
        return outcome, 0.0
    try:
        if case.handshake:
            try:
                wire.start_with(case.version, case.compression)
            except (OSError, EOFError, RuntimeError, RemoteProtocolError) as exc:
                outcome.failure = f"the valid handshake failed: {type(exc).__name__}: {exc}"
                return outcome, 0.0
        pieces = sorted(rng.sample(range(1, len(case.data)), min(rng.randint(0, 2), max(len(case.data) - 1, 0))))
        bounds = [0, *pieces, len(case.data)]
        try:
            for a, b in zip(bounds, bounds[1:]):
                wire.send_raw(case.data[a:b])
        except OSError:  # the node closed its end early (after a fatal error): read what it answered
            pass
        _read_answers(wire, expected, outcome)
        if outcome.failure is None and not outcome.closed and len(outcome.answers) < expected:
            outcome.failure = (f"{expected} complete frame(s) sent, {len(outcome.answers)} answered within "
                               f"{answer_timeout:g} s, and the connection is still open")
        seconds = _bystander(node, bystander_bound)  # the case's connection still open
        if seconds > bystander_bound and outcome.failure is None:
            outcome.failure = f"a fresh connection's query was answered in {seconds:.2f} s (bound {bystander_bound:g} s)"
        return outcome, seconds
    finally:
        wire.close()


def _read_answers(wire: Wire, expected: int, outcome: Outcome) -> None:
    while len(outcome.answers) < expected:
        try:
            frame = wire.read_frame()
        except (TimeoutError, socket.timeout):
            return
        except (EOFError, OSError):  # EOF, reset, TLS EOF: the node closed the connection
            outcome.closed = True
            return
        except RemoteProtocolError as exc:
            outcome.failure = f"the node's answer bytes do not make a response frame: {exc}"
            return
        try:
            message = decode(frame)
        except Exception as exc:  # noqa: BLE001 - a malformed answer is a failure
            outcome.failure = f"malformed answer (opcode 0x{frame.header.opcode:02x}): {exc}"
            return
        outcome.answers.append(_kind(message))
        if isinstance(message, PreparedResult):
            outcome.prepared.append(message.query_id)
        if isinstance(message, Ready) and frame.header.version >= 5 and not wire.segments:
            # A fuzzed STARTUP was accepted: the node speaks segments from here on.
            wire.segments = True
            wire._segment_reader = SegmentReader()
            wire._segment_reader.feed(wire.reader.take_buffer())


def _kind(message: Message) -> str:
    if isinstance(message, Error):
        return f"ERROR {message.code.name}"
    return type(message).__name__


def _bystander(node: Node, bound: float) -> float:
    """Seconds a fresh connection took for OPTIONS, STARTUP and a QUERY (bound + 1 if it failed)."""
    start = time.perf_counter()
    try:
        with Wire(node.address, node.context, bound + 1) as wire:
            wire.start(4)
            answer = wire.request(Query(query="SELECT release_version FROM system.local"))
            if isinstance(answer, Error):
                return bound + 1
    except (OSError, EOFError, TimeoutError, socket.timeout, RemoteProtocolError):
        return bound + 1
    return time.perf_counter() - start


# -- the run --------------------------------------------------------------------------

def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="run this long (default 60)")
    parser.add_argument("--cases", type=int, default=None, help="run this many cases (instead of --seconds)")
    parser.add_argument("--seed", type=int, default=None, help="default: random, printed")
    parser.add_argument("--replay", type=int, default=None, help="run only the case of this index")
    parser.add_argument("--answer-timeout", type=float, default=3.0)
    parser.add_argument("--bystander-bound", type=float, default=2.0)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    print(f"# Fuzzing a running node over sockets\n\n{machine()}\n", flush=True)
    print(f"seed {seed}" + (f", replaying case {args.replay}" if args.replay is not None else ""), flush=True)
    nodes = {t: Node(t) for t in ("plain", "tls")}
    answers: Counter[str] = collections.Counter()
    shapes: Counter[str] = collections.Counter()
    failures: List[str] = []
    ids: List[bytes] = []
    worst_bystander = 0.0
    start = time.monotonic()
    index = args.replay if args.replay is not None else 0
    ran = 0
    try:
        while True:
            if args.replay is not None and ran == 1:
                break
            if args.replay is None and (ran >= args.cases if args.cases is not None
                                        else time.monotonic() - start >= args.seconds):
                break
            case = build_case(seed, index, ids)
            node = nodes[case.transport]
            outcome, seconds = run_case(case, node, args.answer_timeout, args.bystander_bound,
                                        random.Random(f"{seed}:{index}:send"))
            worst_bystander = max(worst_bystander, seconds)
            ran += 1
            shapes[f"v{case.version} {'handshake' if case.handshake else 'no handshake'}"
                   f"{' lz4' if case.compression else ''}, {case.layer}"] += 1
            answers.update(outcome.answers)
            if outcome.closed:
                answers["(connection closed by the node)"] += 1
            ids = (ids + outcome.prepared)[-50:]
            problems = [outcome.failure] if outcome.failure else []
            if not node.alive():
                problems.append(f"serve exited with status {node.serve.proc.returncode}")  # type: ignore[union-attr]
            alarming = alarms(node.new_stderr())
            if alarming:
                problems.append(f"serve's stderr: {alarming[0]}")
            for problem in problems:
                failures.append(f"case {index} (replay: --seed {seed} --replay {index}): {problem}\n"
                                f"    {case.describe()}")
                print(f"FAILURE {failures[-1]}", flush=True)
            if not node.alive():
                node.restart()
            index += 1
    finally:
        elapsed = time.monotonic() - start
        exits = {t: n.stop() for t, n in nodes.items()}
    for transport, (status, lines) in exits.items():
        alarming = alarms(lines)
        if status != 0:
            failures.append(f"at exit: the {transport} serve exited with status {status} on SIGTERM")
        if alarming:
            failures.append(f"at exit: the {transport} serve's stderr: {alarming[0]}")
    print(f"\ncases run: {ran} in {elapsed:.1f} s ({ran / max(elapsed, 1e-9):.0f}/s), seed {seed}")
    print("\ncases by shape:")
    for shape, n in sorted(shapes.items()):
        print(f"  {shape:<44} {n:>7}")
    print("\nanswers by kind:")
    for kind, n in sorted(answers.items(), key=lambda item: -item[1]):
        print(f"  {kind:<44} {n:>7}")
    print(f"\nbystander: worst {worst_bystander * 1000:.1f} ms for connect, STARTUP and a QUERY "
          f"(bound {args.bystander_bound * 1000:.0f} ms)")
    print(f"failures: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
