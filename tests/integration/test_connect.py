# The installed driver connects to fakecql over TLS 1.3, TLS 1.2 and plain
# TCP, negotiates its protocol version down by itself, authenticates, and is
# refused where it must be (wrong name, wrong CA, wrong password, no client
# certificate). Run in one environment per driver (tox), on the reactors
# that connect over TLS today; the asyncio reactor has its own suite.
from __future__ import annotations


import pytest
import trustme

from fakecql import HandshakeCompleted, HandshakeFailed, PasswordAuth, VersionRefused, client_context

from .helpers import error_chain, is_certificate_error

REACTORS = ["libev", "asyncore"]


@pytest.fixture(params=REACTORS)
def reactor(request: pytest.FixtureRequest) -> str:
    return request.param


def _driver_first_version() -> int:
    from cassandra import ProtocolVersion

    return ProtocolVersion.MAX_SUPPORTED


@pytest.mark.parametrize("served", [(3, 4, 5), (3, 4)], ids=["node-v3-v5", "node-v3-v4"])
@pytest.mark.parametrize("transport", ["tls1.3", "tls1.2", "plain"])
def test_connect_and_query(reactor, transport, served, cql_server_factory, cql_ca, cluster_factory):
    if transport == "plain":
        server = cql_server_factory(tls=False, protocol_versions=served)
        ctx = None
    else:
        version = transport[3:]
        server = cql_server_factory(protocol_versions=served, tls_options={"max_version": version, "min_version": version})
        ctx = client_context(cql_ca, check_hostname=True)
    cluster = cluster_factory(server, reactor=reactor, ssl_context=ctx)  # no protocol_version: negotiate

    session = cluster.connect()
    row = session.execute("SELECT release_version FROM system.local").one()

    assert row.release_version == server.node.identity.release_version
    assert cluster.protocol_version == max(served)
    refused = {e.requested for e in server.activity.of_type(VersionRefused)}
    if _driver_first_version() > max(served):
        # The driver started above what the node serves and came down by itself.
        assert refused and max(refused) == _driver_first_version()
        assert all(v > max(served) for v in refused)
    else:
        assert refused == set()
    handshakes = server.activity.of_type(HandshakeCompleted)
    if transport == "plain":
        assert handshakes == []
    else:
        assert handshakes and {h.protocol for h in handshakes} == {"TLSv1." + transport[-1]}
    assert "SELECT release_version FROM system.local" in server.activity.queries()


def test_check_hostname_against_localhost(reactor, cql_server, cql_ca, cluster_factory):
    ctx = client_context(cql_ca, check_hostname=True)
    cluster = cluster_factory(cql_server, reactor=reactor, ssl_context=ctx,
                              ssl_options={"server_hostname": "localhost"})
    session = cluster.connect()
    assert session.execute("SELECT cluster_name FROM system.local").one().cluster_name == "fakecql"


def test_wrong_host_name_is_refused(reactor, cql_server, cql_ca, cluster_factory):
    from cassandra.cluster import NoHostAvailable

    ctx = client_context(cql_ca, check_hostname=True)
    cluster = cluster_factory(cql_server, reactor=reactor, ssl_context=ctx,
                              ssl_options={"server_hostname": "not-the-node.example"})
    with pytest.raises(NoHostAvailable) as caught:
        cluster.connect()
    assert is_certificate_error(caught.value), error_chain(caught.value)
    assert "not-the-node.example" in " ".join(str(e) for e in error_chain(caught.value))


def test_unknown_ca_is_refused(reactor, cql_server, cluster_factory):
    from cassandra.cluster import NoHostAvailable

    other_ca = trustme.CA()  # did not sign the node's certificate
    cluster = cluster_factory(cql_server, reactor=reactor, ssl_context=client_context(other_ca, check_hostname=True))
    with pytest.raises(NoHostAvailable) as caught:
        cluster.connect()
    assert is_certificate_error(caught.value), error_chain(caught.value)
    assert server_saw_alert(cql_server)


def server_saw_alert(server) -> bool:
    """The node saw the handshake fail (the client's 'unknown CA' alert)."""
    failures = server.activity.wait_for(lambda e: isinstance(e, HandshakeFailed), timeout=5)
    return "UNKNOWN_CA" in failures.reason.upper() or "ALERT" in failures.reason.upper()


def test_password_authenticator(reactor, cql_server_factory, cql_ca, cluster_factory):
    from cassandra.auth import PlainTextAuthProvider

    server = cql_server_factory(auth=PasswordAuth("cassandra", "s3cret"))
    ctx = client_context(cql_ca, check_hostname=True)
    cluster = cluster_factory(server, reactor=reactor, ssl_context=ctx,
                              auth_provider=PlainTextAuthProvider("cassandra", "s3cret"))
    session = cluster.connect()
    assert session.execute("SELECT release_version FROM system.local").one()


def test_wrong_password_is_refused(reactor, cql_server_factory, cql_ca, cluster_factory):
    from cassandra import AuthenticationFailed
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import NoHostAvailable

    server = cql_server_factory(auth=PasswordAuth("cassandra", "s3cret"))
    ctx = client_context(cql_ca, check_hostname=True)
    cluster = cluster_factory(server, reactor=reactor, ssl_context=ctx,
                              auth_provider=PlainTextAuthProvider("cassandra", "wrong"))
    with pytest.raises(NoHostAvailable) as caught:
        cluster.connect()
    failures = [e for e in error_chain(caught.value) if isinstance(e, AuthenticationFailed)]
    assert failures, error_chain(caught.value)
    assert "Provided username cassandra and/or password are incorrect" in str(failures[0])


def test_no_credentials_against_authenticator_is_refused(reactor, cql_server_factory, cql_ca, cluster_factory):
    from cassandra.cluster import NoHostAvailable

    server = cql_server_factory(auth=PasswordAuth("cassandra", "s3cret"))
    cluster = cluster_factory(server, reactor=reactor, ssl_context=client_context(cql_ca, check_hostname=True))
    with pytest.raises(NoHostAvailable) as caught:
        cluster.connect()
    assert "authenticat" in str(caught.value).lower()


@pytest.mark.parametrize("tls_version", ["1.3", "1.2"])
def test_mtls_with_client_certificate(reactor, tls_version, cql_server_factory, cql_ca, cql_client_cert, cluster_factory):
    server = cql_server_factory(mtls=True, tls_options={"max_version": tls_version})
    ctx = client_context(cql_ca, check_hostname=True, cert=cql_client_cert)
    session = cluster_factory(server, reactor=reactor, ssl_context=ctx).connect()
    assert session.execute("SELECT release_version FROM system.local").one()
    subjects = {h.client_cert_subject for h in server.activity.of_type(HandshakeCompleted)}
    assert subjects and all(s and "fakecql-client" in s for s in subjects)


@pytest.mark.parametrize("tls_version", ["1.3", "1.2"])
def test_mtls_without_client_certificate_is_refused(reactor, tls_version, cql_server_factory, cql_ca, cluster_factory):
    from cassandra.cluster import NoHostAvailable

    server = cql_server_factory(mtls=True, tls_options={"max_version": tls_version})
    cluster = cluster_factory(server, reactor=reactor, ssl_context=client_context(cql_ca, check_hostname=True))
    with pytest.raises(NoHostAvailable) as caught:
        cluster.connect()
    failure = server.activity.wait_for(lambda e: isinstance(e, HandshakeFailed), timeout=5)
    assert "CERTIFICATE" in failure.reason.upper()
    # With TLS 1.3 the client learns it at its first read: the node must have
    # sent its alert before closing, so the driver's error is not a bare EOF.
    text = " ".join(repr(e) for e in error_chain(caught.value))
    assert "CERTIFICATE" in text.upper() or "ALERT" in text.upper(), text


@pytest.mark.parametrize("served", [(3, 4, 5), (3, 4)], ids=["node-v3-v5", "node-v3-v4"])
@pytest.mark.parametrize("offered", [("lz4",), ()], ids=["lz4", "no-compression"])
def test_compression_negotiated(reactor, served, offered, cql_server_factory, cql_ca, cluster_factory):
    from fakecql import FrameReceived

    server = cql_server_factory(protocol_versions=served, compression=offered)
    cluster = cluster_factory(server, reactor=reactor, ssl_context=client_context(cql_ca, check_hostname=True))
    session = cluster.connect()
    # Enough rows to make compression matter: every column of every table.
    rows = list(session.execute("SELECT * FROM system_schema.columns"))
    assert len(rows) > 50
    startups = [e.startup_options for e in server.activity.of_type(FrameReceived) if e.opcode == "STARTUP"]
    assert startups
    asked = {options.get("COMPRESSION") for options in startups}
    assert asked == ({"lz4"} if offered else {None})
