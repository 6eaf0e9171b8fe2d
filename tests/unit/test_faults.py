# Faults, observed on the wire by the client's own TLS stack rather than
# by fakecql's bookkeeping: dribbled output arrives as the TLS records the
# fault announced, the same seed gives the same cuts run after run, and the
# CQL frames still decode. Bad fault settings are refused by name.
from __future__ import annotations

import ssl
from typing import List, Tuple

import pytest

from fakecql import FaultApplied, client_context
from fakecql.faults import DribbleOutput, StallHandshake, StopReading
from fakecql.protocol.messages import Query, Ready, RowsResult

from ..rawcql import RawClient


def _record_sizes(context: ssl.SSLContext) -> List[int]:
    """Plaintext lengths of the TLS 1.3 application-data records the client reads."""
    sizes: List[int] = []
    last_header = [b""]

    def callback(conn, direction, version, content_type, msg_type, data):  # type: ignore[no-untyped-def]
        if direction != "read":
            return
        if content_type == 256:  # a record header: type, version, length
            last_header[0] = bytes(data)
        elif content_type == 257 and msg_type == 23:  # that record's inner type: application data
            length = int.from_bytes(last_header[0][3:5], "big")
            sizes.append(length - 1 - 16)  # minus the inner type byte and the AEAD tag

    context._msg_callback = callback  # type: ignore[attr-defined]
    return sizes


def _dribbled_run(cql_server_factory, cql_ca, seed: int) -> Tuple[List[int], List[int], RowsResult]:  # type: ignore[no-untyped-def]
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.dribble(seed=seed, max_piece=7, max_delay=0.0005)
    context = client_context(cql_ca)
    records = _record_sizes(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)
        rows = client.request(Query(query="SELECT release_version FROM system.local"), stream=3)
    logged: List[int] = []
    for entry in server.activity.of_type(FaultApplied):
        logged.extend(int(piece.split("@")[0]) for piece in entry.detail.split()[1:])
    assert isinstance(rows, RowsResult)
    return records, logged, rows


def test_dribbled_output_arrives_in_the_announced_records(cql_server_factory, cql_ca):
    records, logged, rows = _dribbled_run(cql_server_factory, cql_ca, seed=7)
    # What the client's OpenSSL saw is what the fault said it would send
    # (the NewSessionTicket records are not application data).
    assert records == logged
    assert max(records) <= 7 and len(records) > 20
    assert rows.rows[0][0] == b"4.0.11"


def test_the_same_seed_cuts_the_same_way(cql_server_factory, cql_ca):
    first, _, _ = _dribbled_run(cql_server_factory, cql_ca, seed=42)
    again, _, _ = _dribbled_run(cql_server_factory, cql_ca, seed=42)
    other, _, _ = _dribbled_run(cql_server_factory, cql_ca, seed=43)
    assert first == again
    assert first != other


@pytest.mark.parametrize("build, message", [
    (lambda: DribbleOutput(max_piece=0), "max_piece must be >= 1"),
    (lambda: DribbleOutput(max_delay=-1), "max_delay must be >= 0"),
    (lambda: StallHandshake(stage="finished"), "stage must be 'client_hello' or 'server_hello'"),
    (lambda: StopReading(min_pending=-1), "min_pending must be >= 0"),
    (lambda: StopReading(resume_after=0), "resume_after must be positive"),
])
def test_bad_fault_settings_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_fault_plan_holds_only_faults(cql_plain_server):
    with pytest.raises(TypeError, match="a fault plan holds Fault objects"):
        cql_plain_server.faults.add("reset")  # type: ignore[arg-type]
