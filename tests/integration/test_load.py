# Load: 1,000 TLS connections held open on one node (handshake and STARTUP
# done) while another client's queries are still answered. No driver: bare
# asyncio streams, so the figure is the node's, not a reactor's. How fast
# the answers come under that load is printed by benchmarks/load.py, not
# asserted here.
#
# Rules: loopback only; the file-descriptor soft limit is raised only if it
# is too low for both ends of every connection, and restored after; every
# connection is closed and every wait bounded.
from __future__ import annotations

import asyncio
import resource
import ssl
import struct
import time
from typing import Any, Iterator, List, Tuple

import pytest

from fakecql import HandshakeCompleted, client_context
from fakecql.protocol.messages import Options, Query, Ready, RowsResult, Startup, Supported, decode_message

from ..rawcql import request_frame
from ..waiting import eventually

HELD = 1000
AT_ONCE = 100  # handshakes in flight at a time
FDS_NEEDED = 2 * HELD + 500  # both ends live in this process, plus pytest's own
HEADER = struct.Struct(">BBhBi")
STARTUP = request_frame(Startup(options={"CQL_VERSION": "3.0.0"}))


@pytest.fixture
def enough_file_descriptors() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < FDS_NEEDED:
        if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
            pytest.fail(f"{HELD} connections need {FDS_NEEDED} file descriptors; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (FDS_NEEDED, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def _response(reader: asyncio.StreamReader, timeout: float = 10) -> Tuple[int, Any]:
    header = await asyncio.wait_for(reader.readexactly(9), timeout)
    version, _, stream, opcode, length = HEADER.unpack(header)
    body = await asyncio.wait_for(reader.readexactly(length), timeout)
    return stream, decode_message(opcode, body, version & 0x7F, is_response=True)


async def _open(address: Tuple[str, int], ctx: ssl.SSLContext) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection that has done STARTUP."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(*address, ssl=ctx, server_hostname="127.0.0.1"), 30)
    try:
        writer.write(STARTUP)
        assert isinstance((await _response(reader, 30))[1], Ready)
    except BaseException:
        writer.transport.abort()
        raise
    return reader, writer


def test_thousand_tls_connections_held_while_another_client_is_served(
    enough_file_descriptors, cql_server_factory, cql_ca
):
    server = cql_server_factory(record_frames=False)
    ctx = client_context(cql_ca, check_hostname=True)

    async def scenario() -> None:
        gate = asyncio.Semaphore(AT_ONCE)
        held: List[Tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

        async def hold() -> None:
            async with gate:
                held.append(await _open(server.address, ctx))

        try:
            results = await asyncio.gather(*(hold() for _ in range(HELD)), return_exceptions=True)
            failures = [r for r in results if isinstance(r, BaseException)]
            assert not failures, f"{len(failures)} of {HELD} connections failed, e.g. {failures[0]!r}"
            assert server.connection_count() == HELD

            reader, writer = await _open(server.address, ctx)
            try:
                for stream in range(50):
                    writer.write(request_frame(Query(query="SELECT release_version FROM system.local"),
                                               stream=stream))
                    answer_stream, answer = await _response(reader, 5)
                    assert answer_stream == stream and isinstance(answer, RowsResult) and answer.rows
            finally:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)

            # Every held connection is still open and usable.
            for number, (_, held_writer) in enumerate(held):
                held_writer.write(request_frame(Options(), stream=number % 32768))
            answers = await asyncio.gather(*(_response(r) for r, _ in held))
            assert all(isinstance(a, Supported) for _, a in answers)
        finally:
            for _, held_writer in held:
                held_writer.transport.abort()

    started = time.monotonic()
    asyncio.run(scenario())
    eventually(lambda: server.connection_count() == 0, 15, interval=0.05)
    assert server.connection_count() == 0
    assert len(server.activity.of_type(HandshakeCompleted)) == HELD + 1
    assert time.monotonic() - started < 60
