"""Coverage-guided fuzzing of ServerConnection.receive_data and decode_message (atheris).

    pip install atheris        # libFuzzer for Python; wheels for Linux x86_64
    python fuzz/atheris_receive_data.py [-runs=200000] [-max_len=4096] [CORPUS_DIR ...]

Without -runs it stops after 100,000 inputs. It starts from CORPUS_DIR (if
given) and a seed corpus it writes to a temporary directory: valid
encodings of requests and responses of protocol v3-v5. An input's first four
bytes say what to do with the rest: the first picks the target, the second
the version (3 + byte % 3), the other two are the target's:

  0  decode_message(opcode, body, version, is_response): anything but
     RemoteProtocolError is a crash;
  1  ServerConnection.receive_data before the handshake, the bytes cut into
     chunks of 1-64 bytes: any exception at all is a crash;
  2  the same after STARTUP and READY (v3/v4: frames, LZ4-compressed
     frames when negotiated; v5: the bytes wrapped in segments with good
     CRCs, LZ4 ones when negotiated, so the fuzzer reaches the frames);
  3  read_type_option, then deserialize of the rest with the type read.

A crash is saved by libFuzzer as crash-<sha1> in the current directory;
re-run the script with that file as its argument to replay it.
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import atheris  # noqa: E402

with atheris.instrument_imports(include=["fakecql.protocol"]):
    from fakecql.protocol.compression import Lz4
    from fakecql.protocol.connection import ServerConnection
    from fakecql.protocol.errors import RemoteProtocolError
    from fakecql.protocol.frames import MAX_SEGMENT_PAYLOAD, FrameFlag, crc24, crc32, encode_frame
    from fakecql.protocol.messages import (
        Batch, BatchStatement, Error, ErrorCode, Execute, Options, Prepare, Query,
        QueryParameters, Ready, Register, Response, Startup, Supported, UnavailableInfo,
        VoidResult, decode_message,
    )
    from fakecql.protocol.types import NATIVE_TYPES, ListType, MapType, read_type_option, write_type_option
    from fakecql.protocol.wire import Reader, Writer

LZ4 = Lz4()


def _segments(data: bytes, cut: int, compressed: bool) -> bytes:
    """`data` in v5 segments with good CRCs, cut every `cut` bytes."""
    out = []
    for i in range(0, max(len(data), 1), cut):
        payload = data[i : i + cut]
        if compressed:
            block = LZ4.compress_raw(payload)
            if len(block) < len(payload):
                header, payload = len(block) | (len(payload) << 17), block
            else:
                header = len(payload)
            size = 5
        else:
            header, size = len(payload), 3
        out.append(
            header.to_bytes(size, "little") + crc24(header, size).to_bytes(3, "little")
            + payload + crc32(payload).to_bytes(4, "little")
        )
    return b"".join(out)


def _feed(connection: ServerConnection, data: bytes, cut: int) -> None:
    for i in range(0, max(len(data), 1), cut):
        connection.receive_data(data[i : i + cut])  # must never raise


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    # Four bytes of header: the target, the version, then two per target.
    target, version, a, b, rest = data[0] % 4, 3 + data[1] % 3, data[2], data[3], data[4:]
    if target == 0:
        try:
            decode_message(a % 0x12, rest, version, is_response=bool(b & 1))
        except RemoteProtocolError:
            pass
    elif target in (1, 2):
        cut, compressed = 1 + a % 64, bool(b & 1)
        connection = ServerConnection()
        if target == 2:
            options = {"CQL_VERSION": "3.0.0", **({"COMPRESSION": "lz4"} if compressed else {})}
            startup = Startup(options=options).encode_body(version)
            connection.receive_data(encode_frame(version, 0, 0x01, startup, is_response=False))
            if compressed:
                connection.negotiate_compression("lz4")
            connection.send(0, Ready(), version=version)
            if version >= 5:
                rest = _segments(rest, min(cut * 7, MAX_SEGMENT_PAYLOAD), compressed)
        _feed(connection, rest, cut)
    else:
        size = a % 65
        reader = Reader(rest[:size], "type option")
        try:
            cql_type = read_type_option(reader)
            cql_type.deserialize(rest[size:])
        except RemoteProtocolError:
            pass


def _seeds() -> List[bytes]:
    """Valid inputs for each target, for a corpus to start from."""
    params = QueryParameters(values=(b"\x00\x00\x00\x01", None), page_size=100, paging_state=b"\x01")
    requests = [
        Startup(options={"CQL_VERSION": "3.0.0"}), Options(), Query(query="SELECT * FROM t", parameters=params),
        Prepare(query="SELECT 1"), Execute(query_id=b"\x01\x02", parameters=params),
        Batch(statements=(BatchStatement(query="Q", values=(b"\x01",)), BatchStatement(query_id=b"\x01"))),
        Register(event_types=("STATUS_CHANGE",)),
    ]
    responses = [
        Error(code=ErrorCode.UNAVAILABLE, message="m", info=UnavailableInfo(consistency=1, required=2, alive=1)),
        Supported(options={"COMPRESSION": ["lz4"]}), VoidResult(), Ready(),
    ]
    seeds = []
    for version in (3, 4, 5):
        v = version - 3
        for message in requests + responses:
            is_response = isinstance(message, Response)
            seeds.append(bytes([0, v, message.opcode, is_response]) + message.encode_body(version))
        stream = b"".join(
            encode_frame(version, i, m.opcode, m.encode_body(version), is_response=False)
            for i, m in enumerate(requests)
        )
        for target in (1, 2):
            for compressed in (0, 1):
                framed = stream
                if target == 2 and compressed and version < 5:
                    framed = b"".join(
                        encode_frame(version, i, m.opcode, LZ4.compress_body(m.encode_body(version)),
                                     flags=FrameFlag.COMPRESSION, is_response=False)
                        for i, m in enumerate(requests)
                    )
                seeds.append(bytes([target, v, 15, compressed]) + framed)
    for cql_type in (NATIVE_TYPES["int"], ListType(NATIVE_TYPES["text"]), MapType(NATIVE_TYPES["int"], NATIVE_TYPES["decimal"])):
        out = Writer()
        write_type_option(out, cql_type)
        option = out.getvalue()
        value = cql_type.serialize({1: 2} if isinstance(cql_type, MapType) else ["a"] if isinstance(cql_type, ListType) else 7)
        seeds.append(bytes([3, 0, len(option), 0]) + option + value)
    return seeds


def main() -> None:
    argv = list(sys.argv)
    inputs = [a for a in argv[1:] if not a.startswith("-")]
    fuzzing = all(os.path.isdir(i) for i in inputs)  # else: files to replay, once each
    if fuzzing and not any(a.startswith("-runs=") for a in argv[1:]):
        argv.append("-runs=100000")
    if not any(a.startswith("-max_len=") for a in argv[1:]):
        argv.append("-max_len=4096")
    with tempfile.TemporaryDirectory() as seed_dir:
        # The seeds are read as one more corpus directory (libFuzzer writes
        # what it finds to the first one: CORPUS_DIR if given, else here).
        if fuzzing:
            for i, seed in enumerate(_seeds()):
                with open(os.path.join(seed_dir, f"seed{i:03d}"), "wb") as f:
                    f.write(seed)
            argv.append(seed_dir)
        atheris.Setup(argv, test_one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
