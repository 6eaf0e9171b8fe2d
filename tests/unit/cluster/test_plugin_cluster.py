# The cql_cluster / cql_cluster_factory fixtures, seen from another project's
# suite (pytester): a TLS cluster whose every node a name-checking client
# reaches, stopped at teardown even after a kill; any node's incident fails
# the test and names the node; the marker opts out.
from __future__ import annotations

import pytest

from ..test_plugin import HELPERS

pytest_plugins = ["pytester"]


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(cqlhelpers=HELPERS)
    pytester.makeini("[pytest]\nfilterwarnings = error\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_clusters_start_answer_and_stop(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_inner='''
        from cqlhelpers import connect

        def test_three_tls_nodes(cql_cluster, cql_ssl_context):
            assert cql_cluster.contact_points == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            assert {n.data_center for n in cql_cluster.nodes} == {"dc1"}
            for node in cql_cluster.nodes:
                connect(node, cql_ssl_context).close()  # the certificate names each node's address
            cql_cluster.kill(2)

        def test_two_data_centers_plain(cql_cluster_factory):
            cluster = cql_cluster_factory([1, 2], tls=False, racks=2)
            assert [(n.data_center, n.rack) for n in cluster.nodes] == [
                ("dc1", "rack1"), ("dc2", "rack1"), ("dc2", "rack2")]
            for node in cluster.nodes:
                connect(node).close()
            cluster.pause(0)
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_any_nodes_incident_fails_the_test_and_names_the_node(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_inner='''
        import pytest
        from cqlhelpers import connect, frame, query_body, read_frame

        def test_unknown_update_on_node_1(cql_cluster_factory):
            cluster = cql_cluster_factory(2, tls=False)
            sock = connect(cluster.node(1))
            sock.sendall(frame(0x07, query_body("UPDATE ks.t SET v = 1 WHERE k = 0"), stream=2))
            read_frame(sock)
            sock.close()

        @pytest.mark.fakecql_allow_unexpected
        def test_allowed(cql_cluster_factory):
            cluster = cql_cluster_factory(2, tls=False)
            sock = connect(cluster.node(0))
            sock.sendall(frame(0x07, query_body("UPDATE ks.t SET v = 1 WHERE k = 0"), stream=2))
            read_frame(sock)
            sock.close()
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_unknown_update_on_node_1*",
        "*node 1 (dc1/rack1): fakecql node 127.0.0.2:* saw 1 unexpected thing(s):*",
        "*query: UPDATE ks.t SET v = 1 WHERE k = 0*",
    ])


def test_an_unmet_cluster_wide_expectation_fails_its_test_with_the_listing(suite: pytest.Pytester) -> None:
    suite.makepyfile(test_inner='''
        import pytest

        def test_never_queried(cql_cluster_factory):
            cluster = cql_cluster_factory([2, 1], tls=False)
            cluster.when_query("SELECT v FROM app.kv").then_void().expect(times=1)
            cluster.data_center("dc2").when_query("SELECT w FROM app.kv").then_void().expect()

        @pytest.mark.fakecql_allow_unexpected
        def test_marker_does_not_hide_it(cql_cluster_factory):
            cluster = cql_cluster_factory(2, tls=False)
            cluster.when_query("SELECT z FROM app.kv").then_void().expect()

        def test_met(cql_cluster_factory):
            cluster = cql_cluster_factory(2, tls=False)
            cluster.when_query("SELECT v FROM app.kv").then_void().expect(times=0)
    ''')
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines([
        "*ERROR at teardown of test_never_queried*",
        "*fakecql cluster fakecql: 2 priming expectation(s) not met:*",
        "*'SELECT w FROM app.kv' -> Void [[]always[]] (matched 0x) (in dc2 primings): expected at least 1 time(s), seen 0*",
        "*'SELECT v FROM app.kv' -> Void [[]always[]] (matched 0x) (in cluster primings): expected exactly 1 time(s), seen 0*",
        "*ERROR at teardown of test_marker_does_not_hide_it*",
        "*'SELECT z FROM app.kv'*(in cluster primings): expected at least 1 time(s), seen 0*",
    ])
    assert result.stdout.str().count("'SELECT v FROM app.kv' -> Void") == 1  # shared by 3 nodes: listed once
