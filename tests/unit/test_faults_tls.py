# The TLS faults, each observed on the wire by the client's own TLS stack:
# the verification error its ssl module raises and the alert its OpenSSL
# writes (certificates), the alert it reads (mTLS, versions), the
# NewSessionTickets it reads, the sizes of the records it decrypts and when
# they arrive (record shaping), and how its ssl module ends a connection
# (truncation, close_notify then data, close_notify with the TCP connection
# kept open). fakecql's own log is checked too, never alone.
from __future__ import annotations

import datetime
import socket
import ssl
import time
from typing import Callable, List, Tuple

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fakecql import FaultApplied, HandshakeFailed, TLSConfig, client_context
from fakecql.faults import (
    VERBS,
    CloseNotifyKeepReading,
    CoalesceRecords,
    DataAfterCloseNotify,
    ExpiredCertificate,
    FaultPlan,
    OnlyTLSVersion,
    PaceRecords,
    SessionTickets,
    SplitRecords,
    Truncate,
    WrongHostCertificate,
    tls,
)
from fakecql.protocol.frames import FrameReader
from fakecql.protocol.messages import Options, Query, Ready, RowsResult, Supported, decode_message

from ..rawcql import RawClient, request_frame
from ..tls_wire import NEW_SESSION_TICKET, record_handshake_messages
from ..waiting import wait_until
from .test_faults import _record_sizes

ALERT = 21  # TLS content type (RFC 8446, 5.1)
CLOSE_NOTIFY = 0  # alert descriptions (RFC 8446, 6)
CERTIFICATE_EXPIRED = 45
BAD_CERTIFICATE = 42
UNKNOWN_CA = 48
PROTOCOL_VERSION = 70
CERTIFICATE_REQUIRED = 116
LOCAL = "SELECT release_version FROM system.local"


def _alerts(context: ssl.SSLContext) -> List[Tuple[str, int]]:
    """A list that fills with (direction, description) of every TLS alert
    connections from `context` read or write (a message callback set before
    is still called)."""
    seen: List[Tuple[str, int]] = []
    before = getattr(context, "_msg_callback", None)

    def callback(conn, direction, version, content_type, msg_type, data):  # type: ignore[no-untyped-def]
        if before is not None:
            before(conn, direction, version, content_type, msg_type, data)
        if int(content_type) == ALERT:
            seen.append((direction, bytes(data)[1]))

    context._msg_callback = callback  # type: ignore[attr-defined]
    return seen


def _connect(server, context: ssl.SSLContext, hostname: str = "127.0.0.1") -> ssl.SSLSocket:  # type: ignore[no-untyped-def]
    sock = socket.create_connection(server.address, timeout=5)
    try:
        return context.wrap_socket(sock, server_hostname=hostname)
    except BaseException:
        sock.close()
        raise


def _peer_certificate(server) -> x509.Certificate:  # type: ignore[no-untyped-def]
    """The certificate the node presents, read by a client that verifies nothing."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with _connect(server, context) as tls_sock:
        der = tls_sock.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _handshake_failures(server, count: int) -> List[str]:  # type: ignore[no-untyped-def]
    wait_until(f"{count} HandshakeFailed entries", lambda: len(server.activity.of_type(HandshakeFailed)) >= count, 5)
    return [entry.reason for entry in server.activity.of_type(HandshakeFailed)]


def _frames(data: bytes) -> List[object]:
    """The CQL messages in `data` (answers), every byte accounted for."""
    reader = FrameReader(versions=(3, 4, 5), expect_response=True)
    reader.feed(data)
    messages = []
    while True:
        frame = reader.next_frame()
        if frame is None:
            break
        messages.append(decode_message(frame.header.opcode, frame.body, frame.header.version, is_response=True))
    assert reader.buffered == 0, f"{reader.buffered} bytes left over after {len(messages)} frames"
    return messages


# -- certificates ------------------------------------------------------------------------

CERTIFICATE_FAULTS = [
    # verb, what the client dials, OpenSSL's verify code, the alert the client sends, the node's reason
    ("expired_certificate", "127.0.0.1", 10, CERTIFICATE_EXPIRED, "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
    ("not_yet_valid_certificate", "127.0.0.1", 9, BAD_CERTIFICATE, "SSLV3_ALERT_BAD_CERTIFICATE"),
    ("wrong_host_certificate", "localhost", 62, BAD_CERTIFICATE, "SSLV3_ALERT_BAD_CERTIFICATE"),
    ("wrong_host_certificate", "127.0.0.1", 64, BAD_CERTIFICATE, "SSLV3_ALERT_BAD_CERTIFICATE"),
    ("untrusted_certificate", "127.0.0.1", 20, UNKNOWN_CA, "TLSV1_ALERT_UNKNOWN_CA"),
    ("self_signed_certificate", "127.0.0.1", 18, UNKNOWN_CA, "TLSV1_ALERT_UNKNOWN_CA"),
]


@pytest.mark.parametrize("verb, hostname, code, alert, reason", CERTIFICATE_FAULTS)
def test_a_certificate_fault_fails_the_clients_verification(verb, hostname, code, alert, reason, cql_server, cql_ca):
    context = client_context(cql_ca, check_hostname=True)
    alerts = _alerts(context)
    _connect(cql_server, context, hostname).close()  # the negative control: the node's own certificate passes

    fault = getattr(cql_server.faults, verb)()
    with pytest.raises(ssl.SSLCertVerificationError) as failure:
        _connect(cql_server, context, hostname)
    assert failure.value.verify_code == code, failure.value.verify_message
    assert alerts == [("write", alert)]  # what the client's OpenSSL told the node
    assert reason in _handshake_failures(cql_server, 1)[0]
    assert [e.fault for e in cql_server.activity.of_type(FaultApplied)] == [type(fault).__name__]

    cql_server.faults.remove(fault)  # switched off: new connections verify again
    with _connect(cql_server, context, hostname) as tls_sock:
        assert tls_sock.version() is not None
    assert len(cql_server.activity.of_type(HandshakeFailed)) == 1


def test_a_certificate_fault_leaves_open_connections_alone(cql_server, cql_ca):
    context = client_context(cql_ca, check_hostname=True)
    with RawClient(cql_server.address, ssl_context=context) as before:
        assert isinstance(before.start(), Ready)
        cql_server.faults.expired_certificate()
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
            _connect(cql_server, context)
        rows = before.request(Query(query=LOCAL), stream=2)  # the open connection goes on
        assert isinstance(rows, RowsResult) and rows.rows[0][0] == b"4.0.11"
    cql_server.faults.clear()
    with RawClient(cql_server.address, ssl_context=context) as after:
        assert isinstance(after.start(), Ready)


@pytest.mark.parametrize("key_type", ["ecdsa", "rsa"])
def test_fault_certificates_match_the_node_and_are_made_once(key_type, cql_server_factory):
    ca = trustme.CA(key_type=trustme.KeyType.RSA if key_type == "rsa" else trustme.KeyType.ECDSA)
    server = cql_server_factory(tls=TLSConfig.create(ca, key_type=key_type))
    own = _peer_certificate(server)
    key_class = rsa.RSAPublicKey if key_type == "rsa" else ec.EllipticCurvePublicKey
    names = own.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_subject = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject

    seen = {}
    for verb in ("expired_certificate", "not_yet_valid_certificate", "untrusted_certificate",
                 "self_signed_certificate", "wrong_host_certificate"):
        fault = getattr(server.faults, verb)()
        first, again = _peer_certificate(server), _peer_certificate(server)
        server.faults.remove(fault)
        assert first == again, f"{verb}: a new certificate per connection"
        assert isinstance(first.public_key(), key_class), verb
        seen[verb] = first
    for verb in ("expired_certificate", "not_yet_valid_certificate", "untrusted_certificate",
                 "self_signed_certificate"):
        alt = seen[verb].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert set(alt) == set(names), f"{verb} names other hosts than the node"
    assert seen["expired_certificate"].not_valid_after_utc < now
    assert seen["expired_certificate"].issuer == ca_subject
    assert seen["not_yet_valid_certificate"].not_valid_before_utc > now
    assert seen["self_signed_certificate"].issuer == seen["self_signed_certificate"].subject
    assert seen["untrusted_certificate"].issuer != ca_subject
    wrong = seen["wrong_host_certificate"].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert wrong.get_values_for_type(x509.DNSName) == ["wrong.invalid"]
    assert _peer_certificate(server) == own  # all off: the node's own certificate again
    again = server.faults.add(ExpiredCertificate(connections=lambda info: True))  # another fault object
    assert _peer_certificate(server) == seen["expired_certificate"]  # made once per node CA
    server.faults.remove(again)


def test_a_certificate_fault_can_be_aimed_at_some_connections(cql_server, cql_ca):
    context = client_context(cql_ca)
    cql_server.faults.add(ExpiredCertificate(connections=(2,)))
    _connect(cql_server, context).close()  # connection 1
    with pytest.raises(ssl.SSLCertVerificationError):
        _connect(cql_server, context)  # connection 2
    _connect(cql_server, context).close()  # connection 3


def test_an_mtls_node_refuses_a_client_certificate_from_another_ca(cql_server_factory, cql_ca):
    server = cql_server_factory(mtls=True)
    stranger = trustme.CA().issue_cert("fakecql-client")
    context = client_context(cql_ca, cert=stranger)
    alerts = _alerts(context)
    # TLS 1.3: the client's handshake is done when it sends Finished; the
    # node's verdict on its certificate arrives with the first read.
    with _connect(server, context) as tls_sock:
        tls_sock.settimeout(5)
        with pytest.raises(ssl.SSLError, match="ALERT_UNKNOWN_CA"):
            tls_sock.sendall(request_frame(Options()))
            tls_sock.recv(100)
    assert ("read", UNKNOWN_CA) in alerts
    assert "CERTIFICATE_VERIFY_FAILED" in _handshake_failures(server, 1)[0]

    # Without a certificate the node says certificate_required; with its own CA's, it answers.
    bare = client_context(cql_ca)
    bare_alerts = _alerts(bare)
    with _connect(server, bare) as tls_sock:
        tls_sock.settimeout(5)
        with pytest.raises(ssl.SSLError, match="CERTIFICATE_REQUIRED"):
            tls_sock.sendall(request_frame(Options()))
            tls_sock.recv(100)
    assert ("read", CERTIFICATE_REQUIRED) in bare_alerts
    trusted = client_context(cql_ca, cert=cql_ca.issue_cert("fakecql-client"))
    with RawClient(server.address, ssl_context=trusted) as client:
        assert isinstance(client.start(), Ready)


# -- versions and tickets ----------------------------------------------------------------

@pytest.mark.parametrize("count", [None, 0, 1, 5])
def test_session_tickets_are_counted_by_the_client(count, cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    if count is not None:
        server.faults.session_tickets(count)
    context = client_context(cql_ca)
    seen = record_handshake_messages(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)  # the tickets come before the first answer
    tickets = [m for m in seen if m.msg_type == NEW_SESSION_TICKET and m.direction == "read"]
    assert len(tickets) == (2 if count is None else count)  # 2: OpenSSL's default, the node's


def test_session_tickets_off_means_no_tls12_ticket_either(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"max_version": "1.2"})
    context = client_context(cql_ca)
    seen = record_handshake_messages(context)
    _connect(server, context).close()
    assert [m for m in seen if m.msg_type == NEW_SESSION_TICKET]  # the control: TLS 1.2 sends one
    seen.clear()
    server.faults.session_tickets(0)
    _connect(server, context).close()
    assert [m for m in seen if m.msg_type == NEW_SESSION_TICKET] == []


@pytest.mark.parametrize("pinned, client_side, client_error", [
    ("1.3", {"max_version": "1.2"}, "TLSV1_ALERT_PROTOCOL_VERSION"),
    ("1.2", {"min_version": "1.3"}, "TLSV1_ALERT_PROTOCOL_VERSION"),
])
def test_a_pinned_version_refuses_a_client_capped_at_the_other(pinned, client_side, client_error, cql_server,
                                                               cql_ca):
    other = "1.2" if pinned == "1.3" else "1.3"
    fault = cql_server.faults.only_tls_version(pinned)
    with _connect(cql_server, client_context(cql_ca)) as tls_sock:
        assert tls_sock.version() == f"TLSv{pinned}"  # a client allowing both gets the pinned one
    capped = client_context(cql_ca, **client_side)
    alerts = _alerts(capped)
    with pytest.raises(ssl.SSLError, match=client_error):
        _connect(cql_server, capped)
    assert alerts == [("read", PROTOCOL_VERSION)]
    assert "UNSUPPORTED_PROTOCOL" in _handshake_failures(cql_server, 1)[0]
    cql_server.faults.remove(fault)
    with _connect(cql_server, capped) as tls_sock:
        assert tls_sock.version() == f"TLSv{other}"


# -- records ---------------------------------------------------------------------------

def _answers_read(client: RawClient, count: int) -> List[object]:
    return [client.read()[1] for _ in range(count)]


def test_split_records_cuts_each_write_into_records_of_size(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.split_records(size=10)
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    with RawClient(server.address, ssl_context=context) as client:
        client.send(Options(), stream=1)
        supported = client.read_frame()
        assert isinstance(decode_message(supported.header.opcode, supported.body, 4, is_response=True), Supported)
    length = 9 + len(supported.body)
    assert sizes == [10] * (length // 10) + ([length % 10] if length % 10 else [])


def test_split_records_default_still_decodes(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.split_records()
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    server.when_query("SELECT big FROM ks.t").then_rows([("x" * 3000,)], columns={"big": "text"})
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)
        rows = client.request(Query(query="SELECT big FROM ks.t"), stream=2)
    assert isinstance(rows, RowsResult) and rows.rows[0][0] == b"x" * 3000
    rows_records = sizes[2:]  # after SUPPORTED and READY, each shorter than 512 bytes
    assert sizes[:2] == [92, 9] and len(rows_records) >= 6  # over 3000 bytes
    assert rows_records[:-1] == [512] * (len(rows_records) - 1) and 0 < rows_records[-1] <= 512


def test_coalesce_records_sends_held_answers_as_one_record(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    context = client_context(cql_ca)
    sizes = _record_sizes(context)

    def three_queries_apart(coalesce: bool) -> List[object]:
        with RawClient(server.address, ssl_context=context) as client:
            assert isinstance(client.start(), Ready)
            if coalesce:
                server.faults.coalesce_records(frames=3, window=5.0)
            sizes.clear()
            for stream in (1, 2, 3):  # three writes, each answered in a turn of its own
                client.send(Query(query=LOCAL), stream=stream)
                time.sleep(0.05)
            return _answers_read(client, 3)

    plain = three_queries_apart(coalesce=False)
    assert len(sizes) == 3  # the control: one record per answer
    one_answer = sizes[0]
    coalesced = three_queries_apart(coalesce=True)
    assert sizes == [3 * one_answer]  # the three answers in one record
    assert [type(m) for m in coalesced] == [type(m) for m in plain] == [RowsResult] * 3
    assert any("3 answers" in e.detail and "one TLS record" in e.detail
               for e in server.activity.of_type(FaultApplied))


def test_coalesce_records_flushes_after_its_window(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)
        server.faults.coalesce_records(frames=100, window=0.4)
        sizes.clear()
        started = time.monotonic()
        rows = client.request(Query(query=LOCAL), stream=1)
        waited = time.monotonic() - started
    assert isinstance(rows, RowsResult)
    # Tolerance: the window is a timer on the node's loop; it may fire a
    # little early by the clocks' granularity, and late on a loaded machine.
    assert 0.35 <= waited < 4.0, waited
    assert len(sizes) == 1


def test_coalesce_records_above_16_kib_goes_out_as_full_records(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.when_query("SELECT big FROM ks.t").then_rows([("y" * 40000,)], columns={"big": "text"})
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)
        server.faults.coalesce_records(frames=100, window=5.0)
        sizes.clear()
        rows = client.request(Query(query="SELECT big FROM ks.t"), stream=1)
    assert isinstance(rows, RowsResult) and rows.rows[0][0] == b"y" * 40000
    # held bytes over 16 KiB flush at once (no 5 s wait): full records, then the rest
    assert sizes[:2] == [16384, 16384] and len(sizes) == 3 and 0 < sizes[2] <= 16384


def test_coalesce_records_flushes_what_it_holds_when_the_connection_closes(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.coalesce_records(frames=100, window=30.0)
    server.faults.close(opcode="QUERY", on_request=None)
    with RawClient(server.address, ssl_context=client_context(cql_ca), timeout=5) as client:
        client.send(Options(), stream=1)
        time.sleep(0.2)  # answered in a turn of its own, and held
        client.send(Query(query=LOCAL), stream=2)  # closes the connection: what is held goes first
        assert isinstance(client.read()[1], Supported)
        assert client.closed_by_peer()


def test_pace_records_spaces_its_records(cql_server_factory, cql_ca):
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    with RawClient(server.address, ssl_context=context) as client:
        assert isinstance(client.start(), Ready)
        server.faults.pace_records(size=100, interval=0.05)
        sizes.clear()
        started = time.monotonic()
        client.send(Query(query=LOCAL), stream=1)
        frame = client.read_frame()
        waited = time.monotonic() - started
    length = 9 + len(frame.body)
    records = -(-length // 100)
    assert sizes == [100] * (length // 100) + ([length % 100] if length % 100 else [])
    # Each record waits 0.05 s: at least records x 0.05 s, less 20 % for timer
    # granularity; the upper bound only says it did not hang.
    assert waited >= records * 0.05 * 0.8, (waited, records)
    assert waited < records * 0.05 + 5.0


def test_paced_output_goes_out_before_the_node_closes(cql_server_factory, cql_ca):
    # A refused protocol version is answered, then the node closes: the
    # paced answer still arrives, then the close_notify (as cassandra-driver
    # needs to negotiate its version down).
    server = cql_server_factory(tls_options={"min_version": "1.3"})
    server.faults.pace_records(size=10, interval=0.02)
    context = client_context(cql_ca)
    sizes = _record_sizes(context)
    alerts = _alerts(context)
    with RawClient(server.address, ssl_context=context) as client:
        client.send(Options(), version=6, stream=1)
        frame, error = client.read()
        assert "protocol version" in str(error).lower(), error
        assert client.closed_by_peer()
    length = 9 + len(frame.body)
    assert sizes == [10] * (length // 10) + ([length % 10] if length % 10 else [])
    assert alerts == [("read", CLOSE_NOTIFY)]


def test_pace_records_defaults_let_a_driver_connect_within_its_default_timeouts(cql_server, cql_ca):
    from cassandra.cluster import Cluster

    fault = cql_server.faults.pace_records()
    assert isinstance(fault, PaceRecords) and (fault.size, fault.interval) == (512, 0.02)
    # The driver's own defaults: connect_timeout 5 s, control_connection_timeout 2 s.
    cluster = Cluster([cql_server.host], port=cql_server.port, ssl_context=client_context(cql_ca))
    try:
        started = time.monotonic()
        session = cluster.connect()
        took = time.monotonic() - started
        rows = list(session.execute(LOCAL))
    finally:
        cluster.shutdown()
    assert rows[0].release_version == "4.0.11"
    paced = [e for e in cql_server.activity.of_type(FaultApplied) if e.fault == "PaceRecords"]
    largest = max(int(e.detail.split(" as ")[1].split()[0]) for e in paced)
    # connect() waits for the schema answers, the largest write (about 8.5 KB):
    # its records, 0.02 s each, did pass (less 20 % for timer granularity).
    assert largest >= 10 and took >= largest * 0.02 * 0.8, (largest, took)


# -- endings -------------------------------------------------------------------------

class _ObjectClient:
    """A TLS client over a plain socket through ssl.SSLObject: the test sees
    every byte on the wire and decides when its TLS layer reads them."""

    def __init__(self, server, context: ssl.SSLContext) -> None:  # type: ignore[no-untyped-def]
        self.sock = socket.create_connection(server.address, timeout=5)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="127.0.0.1")
        deadline = time.monotonic() + 5
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                assert time.monotonic() < deadline, "no TLS handshake within 5 s"
                data = self.sock.recv(65536)
                assert data, "the node closed during the handshake"
                self.incoming.write(data)
        self.flush()

    def flush(self) -> None:
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def send(self, plaintext: bytes) -> None:
        self.tls.write(plaintext)
        self.flush()

    def read_until_fin(self, timeout: float = 5.0) -> bytes:
        """Every byte the node sends until its FIN (bounded)."""
        self.sock.settimeout(timeout)
        received = b""
        while True:
            data = self.sock.recv(65536)
            if not data:
                return received
            received += data

    def read_until_close_notify(self, timeout: float) -> bytes:
        """The plaintext read until the node's close_notify (bounded; AssertionError on a FIN before it)."""
        deadline = time.monotonic() + timeout
        plaintext = b""
        while True:
            try:
                data = self.tls.read(65536)
                if not data:
                    return plaintext
                plaintext += data
                continue
            except ssl.SSLWantReadError:
                pass
            left = deadline - time.monotonic()
            assert left > 0, f"no close_notify within {timeout} s"
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            assert data, "the node closed (FIN) without a close_notify"
            self.incoming.write(data)

    def fin_within(self, timeout: float) -> bool:
        """True if the node sent FIN within `timeout` s, False if the connection stayed open."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except socket.timeout:
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def object_client(request):  # type: ignore[no-untyped-def]
    made: List[_ObjectClient] = []

    def make(server, context: ssl.SSLContext) -> _ObjectClient:  # type: ignore[no-untyped-def]
        made.append(_ObjectClient(server, context))
        return made[-1]

    yield make
    for client in made:
        client.close()


def test_truncate_ends_without_close_notify(cql_server, cql_ca, object_client):
    cql_server.faults.truncate()
    context = client_context(cql_ca)
    alerts = _alerts(context)
    client = object_client(cql_server, context)
    client.incoming.write(client.read_until_fin())  # the node's FIN came, right after the handshake
    client.incoming.write_eof()
    ignores_eof = bool(context.options & getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0))
    if ignores_eof:
        # Python 3.9 sets OP_IGNORE_UNEXPECTED_EOF on every context it makes
        # (for OpenSSL 3): a truncation then reads as a clean EOF.
        assert client.tls.read(100) == b""
    else:
        with pytest.raises(ssl.SSLEOFError, match="EOF occurred in violation of protocol"):
            client.tls.read(100)
    # No close_notify was read (OpenSSL 3 may write a decode_error alert of its own).
    assert [alert for alert in alerts if alert[0] == "read"] == []
    assert "sent FIN without close_notify after the handshake" in [
        e.detail for e in cql_server.activity.of_type(FaultApplied)]


@pytest.mark.parametrize("suppress_ragged_eofs", [True, False])
def test_truncate_aimed_at_a_query_as_an_sslsocket_sees_it(suppress_ragged_eofs, cql_server, cql_ca):
    cql_server.faults.truncate(opcode="QUERY")
    context = client_context(cql_ca)
    alerts = _alerts(context)
    sock = socket.create_connection(cql_server.address, timeout=5)
    tls_sock = context.wrap_socket(sock, server_hostname="127.0.0.1", suppress_ragged_eofs=suppress_ragged_eofs)
    with RawClient(cql_server.address, sock=tls_sock) as client:
        assert isinstance(client.start(), Ready)
        client.send(Query(query=LOCAL), stream=2)
        if suppress_ragged_eofs or context.options & getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0):
            # SSLSocket's default suppresses the ragged EOF: recv() returns b"". So does
            # Python 3.9, whose contexts all carry OP_IGNORE_UNEXPECTED_EOF (for OpenSSL 3).
            with pytest.raises(EOFError):
                client.read_frame()
        else:
            with pytest.raises(ssl.SSLEOFError, match="EOF occurred in violation of protocol"):
                client.read_frame()
    assert [alert for alert in alerts if alert[0] == "read"] == []  # no close_notify


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_data_after_close_notify_follows_it_on_the_wire(version, cql_server_factory, cql_ca, object_client):
    from fakecql._openssl import _library, _ssl_pointer

    server = cql_server_factory(tls_options={"min_version": version, "max_version": version})
    server.faults.data_after_close_notify()  # the answer to request 1, OPTIONS
    context = client_context(cql_ca)
    alerts = _alerts(context)
    client = object_client(server, context)
    client.send(request_frame(Options(), stream=7))
    client.incoming.write(client.read_until_fin())
    assert client.tls.read(65536) == b""  # the close_notify ends the reading: the answer is not delivered
    assert client.tls.read(65536) == b""
    assert alerts == [("read", CLOSE_NOTIFY)]
    left = client.incoming.read()  # what followed the close_notify, never decrypted
    assert left[:3] == b"\x17\x03\x03"  # an application-data record (TLS 1.3's outer type too)
    # It is a genuine record, in sequence: a reader that went on past the
    # close_notify (OpenSSL's "received shutdown" flag cleared) decrypts the SUPPORTED.
    pointer = _ssl_pointer(client.tls, client.incoming)
    _library().SSL_set_shutdown(pointer, 0)
    client.incoming.write(left)
    assert [type(m) for m in _frames(client.tls.read(65536))] == [Supported]


def test_data_after_close_notify_as_an_sslsocket_sees_it(cql_server, cql_ca):
    cql_server.faults.add(DataAfterCloseNotify(opcode="QUERY", on_request=None))
    with RawClient(cql_server.address, ssl_context=client_context(cql_ca)) as client:
        assert isinstance(client.start(), Ready)
        client.send(Query(query=LOCAL), stream=2)
        with pytest.raises(EOFError):  # recv() returned b"" at the close_notify
            client.read_frame()


def test_close_notify_keep_reading_leaves_the_connection_open(cql_server, cql_ca, object_client):
    cql_server.faults.close_notify_keep_reading()
    context = client_context(cql_ca)
    alerts = _alerts(context)
    client = object_client(cql_server, context)
    assert client.read_until_close_notify(5) == b""  # nothing before it
    assert alerts == [("read", CLOSE_NOTIFY)]
    assert client.fin_within(0.3) is False  # no FIN: the TCP connection stays open
    client.send(request_frame(Query(query=LOCAL), stream=5))  # the client can still write
    cql_server.activity.wait_for(lambda e: isinstance(e, FaultApplied) and "read request 1 (QUERY" in e.detail,
                                 timeout=5)
    assert client.fin_within(0.3) is False
    client.tls.unwrap()  # the client's own close_notify ...
    client.flush()
    assert client.read_until_fin(5) == b""  # ... and the node closes, saying nothing more


def test_close_notify_keep_reading_closes_after_close_after(cql_server, cql_ca, object_client):
    cql_server.faults.close_notify_keep_reading(close_after=0.5)
    started = time.monotonic()
    client = object_client(cql_server, client_context(cql_ca))
    assert client.read_until_close_notify(5) == b""
    assert client.fin_within(5) is True  # the client said nothing: the node closes on its own
    # The FIN comes 0.5 s after the close_notify, sent after `started`
    # (less 0.05 s for timer granularity).
    assert time.monotonic() - started >= 0.45
    assert any("closing (FIN) 0.5 s after the close_notify" in e.detail
               for e in cql_server.activity.of_type(FaultApplied))


# -- arguments and verbs --------------------------------------------------------------

@pytest.mark.parametrize("build, error, message", [
    (lambda: SessionTickets(count=-1), ValueError, "SessionTickets count must be from 0 to 100"),
    (lambda: SessionTickets(count=1.5), TypeError, "SessionTickets count must be an integer"),
    (lambda: OnlyTLSVersion(version="1.1"), ValueError, "version must be one of '1.2', '1.3'"),
    (lambda: WrongHostCertificate(host=""), ValueError, "host must be a host name"),
    (lambda: CoalesceRecords(frames=0), ValueError, "frames must be >= 1"),
    (lambda: CoalesceRecords(window=0), ValueError, "window must be > 0"),
    (lambda: SplitRecords(size=0), ValueError, "size must be from 1 to 16384"),
    (lambda: SplitRecords(size=16385), ValueError, "size must be from 1 to 16384"),
    (lambda: PaceRecords(interval=-1), ValueError, "interval must be > 0"),
    (lambda: PaceRecords(size=0), ValueError, "size must be from 1 to 16384"),
    (lambda: DataAfterCloseNotify(on_request=0), ValueError, "on_request must be >= 1"),
    (lambda: CloseNotifyKeepReading(close_after=0), ValueError, "close_after must be > 0"),
    (lambda: Truncate(on_request=-1), ValueError, "on_request must be >= 0"),
    (lambda: ExpiredCertificate(opcode="QUERY"), ValueError, "cannot be aimed with opcode="),
])
def test_bad_tls_fault_settings_are_refused(build: Callable[[], object], error, message):
    with pytest.raises(error, match=message):
        build()


def test_every_tls_verb_works_without_arguments():
    plan = FaultPlan()
    for verb, fault_class in tls.VERBS.items():
        fault = getattr(plan, verb)()
        assert type(fault) is fault_class, verb
        assert fault.cli_name == verb.replace("_", "-")
        assert fault_class.__doc__ and len(fault_class.__doc__) > 80, f"{fault_class.__name__} needs a docstring"
        assert fault_class.__name__ in tls.__all__ and VERBS[verb] is fault_class
    assert len(plan) == len(tls.VERBS)
