# The pytest plugin, seen from another project's suite (pytester): the
# fixtures start and stop nodes, teardown fails a test whose node saw
# something unexpected and says what, the marker opts out, configuration
# fixtures can be overridden, and it all works under pytest-xdist.
from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# Inner tests speak CQL with bare sockets: OPTIONS, STARTUP, then whatever.
HELPERS = r'''
import socket, ssl, struct

def frame(opcode, body=b"", stream=1, version=4):
    return struct.pack(">BBhBi", version, 0, stream, opcode, len(body)) + body

def startup_body():
    key, value = b"CQL_VERSION", b"3.0.0"
    return struct.pack(">H", 1) + struct.pack(">H", len(key)) + key + struct.pack(">H", len(value)) + value

def query_body(text):
    raw = text.encode()
    return struct.pack(">i", len(raw)) + raw + b"\x00\x01\x00"

def read_frame(sock):
    sock.settimeout(5)
    data = b""
    while len(data) < 9:
        chunk = sock.recv(9 - len(data))
        assert chunk, "closed"
        data += chunk
    length = struct.unpack(">i", data[5:9])[0]
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "closed"
        body += chunk
    return data[4], body

def connect(server, context=None):
    sock = socket.create_connection(server.address, timeout=5)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname=server.host)
    sock.sendall(frame(0x01, startup_body()))
    opcode, _ = read_frame(sock)
    assert opcode == 0x02, opcode  # READY
    return sock
'''


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(cqlhelpers=HELPERS)
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_unexpected_query_fails_the_test_at_teardown_and_says_what(suite):
    suite.makepyfile(test_inner='''
        from cqlhelpers import connect, frame, query_body, read_frame

        def test_sends_an_unknown_update(cql_server, cql_ssl_context):
            sock = connect(cql_server, cql_ssl_context)
            sock.sendall(frame(0x07, query_body("UPDATE ks.t SET v = 1 WHERE k = 0"), stream=2))
            assert read_frame(sock)[0] == 0x08  # answered (empty rows)
            sock.close()
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_sends_an_unknown_update*",
        "*saw 1 unexpected thing(s):*",
        "*UnexpectedRequest*",
        "*query: UPDATE ks.t SET v = 1 WHERE k = 0*",
        "*it was primed with nothing*",
    ])


def test_malformed_frame_is_reported_at_teardown(suite):
    suite.makepyfile(test_inner='''
        import struct
        from cqlhelpers import connect, read_frame

        def test_sends_a_huge_length(cql_server, cql_ssl_context):
            sock = connect(cql_server, cql_ssl_context)
            sock.sendall(struct.pack(">BBhBi", 4, 0, 5, 0x07, 2**30))
            opcode, body = read_frame(sock)
            assert opcode == 0x00  # ERROR
            sock.close()
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ProtocolIncident: frame body length 1073741824 exceeds the limit*"])


def test_server_exception_is_reported_at_teardown(suite):
    suite.makepyfile(test_inner='''
        from cqlhelpers import connect, frame, query_body

        def test_matcher_raises(cql_plain_server):
            def matcher(query):
                raise ZeroDivisionError("broken matcher")
            cql_plain_server.when_query(matcher).then_void()
            sock = connect(cql_plain_server)
            sock.sendall(frame(0x07, query_body("SELECT key FROM system.local"), stream=2))
            sock.settimeout(5)
            assert sock.recv(100) == b""  # the node ended the connection
            sock.close()
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ServerException*", "*ZeroDivisionError: broken matcher*"])


def test_marker_and_taking_incidents_opt_out(suite):
    suite.makepyfile(test_inner='''
        import pytest
        from cqlhelpers import connect, frame, query_body, read_frame

        def send_update(server, context):
            sock = connect(server, context)
            sock.sendall(frame(0x07, query_body("UPDATE t SET v = 1"), stream=2))
            read_frame(sock)
            sock.close()

        @pytest.mark.fakecql_allow_unexpected
        def test_marked(cql_server, cql_ssl_context):
            send_update(cql_server, cql_ssl_context)

        def test_takes_them(cql_server, cql_ssl_context):
            send_update(cql_server, cql_ssl_context)
            assert [i.query for i in cql_server.activity.take_incidents()] == ["UPDATE t SET v = 1"]
    ''')
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_factory_builds_any_node_and_stops_them_all(suite):
    suite.makepyfile(test_inner='''
        import socket
        import pytest
        from fakecql import PasswordAuth
        from cqlhelpers import connect

        ADDRESSES = []

        def test_builds(cql_server_factory, cql_ssl_context, cql_client_cert):
            plain = cql_server_factory(tls=False)
            mtls = cql_server_factory(mtls=True)
            auth = cql_server_factory(auth=PasswordAuth("u", "p"), protocol_versions=(3, 4))
            v6 = cql_server_factory(host="::1")
            ADDRESSES.extend(s.address for s in (plain, mtls, auth, v6))
            connect(plain).close()
            cql_client_cert.configure_cert(cql_ssl_context)
            connect(mtls, cql_ssl_context).close()
            assert v6.host == "::1" and not plain.is_tls and mtls.is_tls

        def test_all_stopped():
            assert len(ADDRESSES) == 4
            for address in ADDRESSES:
                with pytest.raises(OSError):
                    socket.create_connection(address, timeout=1).close()
    ''')
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_configuration_fixtures_can_be_overridden(suite):
    suite.makeconftest('''
        import pytest

        @pytest.fixture(scope="session")
        def cql_server_options():
            return {"protocol_versions": (3, 4), "tls_options": {"max_version": "1.2"}}
    ''')
    suite.makepyfile(test_inner='''
        import socket
        from cqlhelpers import connect, frame, read_frame
        from fakecql import HandshakeCompleted

        def test_uses_them(cql_server, cql_ssl_context):
            sock = connect(cql_server, cql_ssl_context)
            assert sock.version() == "TLSv1.2"
            sock.close()
            # Negotiation is the first frame of a connection: a fresh one asks for v5.
            sock = cql_ssl_context.wrap_socket(socket.create_connection(cql_server.address, timeout=5),
                                               server_hostname=cql_server.host)
            sock.sendall(frame(0x05, version=5, stream=3))
            opcode, body = read_frame(sock)
            assert opcode == 0x00 and b"supported versions are (3/v3, 4/v4)" in body
            sock.close()
            assert cql_server.activity.of_type(HandshakeCompleted)[0].protocol == "TLSv1.2"
    ''')
    suite.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_safe_under_xdist(suite):
    suite.makepyfile(test_inner='''
        import pytest
        from cqlhelpers import connect, frame, query_body, read_frame

        @pytest.mark.parametrize("n", range(8))
        def test_each_has_its_own_node(n, cql_server, cql_ssl_context):
            cql_server.when_query("SELECT n FROM t").then_rows([{"n": n}], columns={"n": "int"})
            sock = connect(cql_server, cql_ssl_context)
            sock.sendall(frame(0x07, query_body("SELECT n FROM t"), stream=2))
            opcode, body = read_frame(sock)
            assert opcode == 0x08 and body.endswith(b"\\x00\\x00\\x00\\x04" + n.to_bytes(4, "big"))
            sock.close()
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=8)
