# Faults, observed on the wire by the client's own TLS stack rather than
# by fakecql's bookkeeping: dribbled output arrives as the TLS records the
# fault announced, the same seed gives the same cuts run after run, and the
# CQL frames still decode; a KeyUpdate is read (and answered) by the
# client's OpenSSL. Bad fault settings are refused by name.
from __future__ import annotations

import ssl
from typing import List, Tuple

import pytest

from fakecql import FaultApplied, ServerException, client_context
from fakecql.faults import DribbleOutput, KeyUpdate, StallHandshake, StopReading
from fakecql.protocol.messages import Query, Ready, RowsResult

from ..rawcql import RawClient
from ..tls_wire import key_updates, record_handshake_messages


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
    (lambda: StallHandshake(stage="finished"), "stage must be one of 'client_hello', 'server_hello'"),
    (lambda: StopReading(min_pending=-1), "min_pending must be >= 0"),
    (lambda: StopReading(resume_after=0), "resume_after must be > 0"),
    (lambda: KeyUpdate(on_request=-1), "on_request must be >= 0"),
    (lambda: KeyUpdate(every=-2), "every must be >= 0"),
])
def test_bad_fault_settings_are_refused(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_a_fault_plan_holds_only_faults(cql_plain_server):
    with pytest.raises(TypeError, match="a fault plan holds Fault objects"):
        cql_plain_server.faults.add("reset")  # type: ignore[arg-type]


@pytest.mark.parametrize("request_peer", [True, False])
def test_key_update_is_read_and_answered_by_the_client(request_peer, cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.key_update(on_request=2, every=3, request_peer=request_peer)
    context = client_context(cql_ca)
    seen = record_handshake_messages(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)  # requests 1 (OPTIONS) and 2 (STARTUP): one KeyUpdate
        # Requests 3..9: KeyUpdates before 5 and 8. The client answers an
        # update_requested with its next write, so request 9 carries the last answer.
        for stream in range(1, 8):
            rows = client.request(Query(query="SELECT release_version FROM system.local"), stream=stream)
            assert isinstance(rows, RowsResult) and rows.rows[0][0] == b"4.0.11"
    # The message body is one byte: request_update (RFC 8446, 4.6.3).
    read = key_updates(seen, "read")
    written = key_updates(seen, "write")
    assert read == [b"\x18\x00\x00\x01" + bytes([int(request_peer)])] * 3
    # update_requested obliges the client to update its own keys and say so.
    assert written == ([b"\x18\x00\x00\x01\x00"] * 3 if request_peer else [])
    assert [e.detail.split(" before")[0] for e in server.activity.of_type(FaultApplied)] == [
        f"sent KeyUpdate ({'update_requested' if request_peer else 'update_not_requested'})"] * 3


@pytest.mark.parametrize("tls", ["1.2", "plain"])
def test_key_update_without_tls13_is_a_server_incident(tls, cql_server_factory, cql_ca):
    if tls == "plain":
        server = cql_server_factory(tls=False)
        context = None
    else:
        server = cql_server_factory(tls_options={"max_version": "1.2"})
        context = client_context(cql_ca)
    server.faults.add(KeyUpdate(on_request=1))
    with RawClient(server.address, ssl_context=context, timeout=3) as client:
        client.send(Query(query="SELECT release_version FROM system.local"), stream=1)
        with pytest.raises((EOFError, ConnectionError, ssl.SSLError)):
            client.read_frame()  # the connection ends; it does not hang
    problems = [i for i in server.activity.take_incidents() if isinstance(i, ServerException)]
    assert len(problems) == 1 and "KeyUpdateUnavailable" in problems[0].description
    expected = "this connection uses TLSv1.2" if tls == "1.2" else "is plain TCP"
    assert expected in problems[0].description, problems[0].description


def test_key_update_refuses_an_ssl_object_it_cannot_prove(cql_ca):
    # The SSL* is used only when OpenSSL confirms that its read BIO is the
    # SSLObject's own incoming MemoryBIO: any other BIO, and nothing is called.
    from fakecql._openssl import KeyUpdateUnavailable, request_key_update

    context = client_context(cql_ca)
    incoming = ssl.MemoryBIO()
    sslobj = context.wrap_bio(incoming, ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(KeyUpdateUnavailable, match="could not locate the SSL object"):
        request_key_update(sslobj, ssl.MemoryBIO(), request_peer=True)
    # With its own BIO the pointer is proven; before any handshake there is no TLS 1.3 yet.
    with pytest.raises(KeyUpdateUnavailable, match="only in TLS 1.3"):
        request_key_update(sslobj, incoming, request_peer=True)
