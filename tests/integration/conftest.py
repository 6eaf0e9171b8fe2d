# Fixtures for driving the installed Python driver against fakecql nodes.
#
# Every Cluster built here is shut down at teardown, and every connect is
# bounded by a short connect timeout, so a reactor that cannot connect fails
# in seconds with the driver's own error instead of hanging.
from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any, Callable, Iterator, List, Optional

import pytest

from fakecql import CQLServer
from fakecql.reactors import load_reactor

CONNECT_TIMEOUT = 5.0


@pytest.fixture(autouse=True)
def _drivers_asyncio_loop_is_current() -> Iterator[None]:
    """Each test starts with the event loop state a fresh process has (Python 3.9).

    On 3.9, cassandra-driver's asyncio reactor builds its asyncio.Queue in
    the thread that opens the connection, which binds it to that thread's
    current event loop; initialize_reactor makes the reactor's loop current
    in the thread that made the first Cluster. An earlier test's
    asyncio.run() resets that to None, and the reactor then fails with
    "There is no current event loop" instead of the failure the test is
    about, leaking its connected socket (docs/upstream-bugs.md).
    """
    if sys.version_info < (3, 10):
        try:
            from cassandra.io.asyncioreactor import AsyncioConnection
        except ImportError:  # pragma: no cover - the driver always ships it
            pass
        else:
            loop = AsyncioConnection._loop
            if loop is not None and not loop.is_closed():
                asyncio.set_event_loop(loop)
    yield


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., Any]]:
    """Build a driver Cluster pointing at a fakecql node: factory(server, **Cluster options)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    clusters: List[Any] = []

    def factory(server: CQLServer, *, reactor: Optional[str] = None, **options: Any) -> Any:
        options.setdefault("connect_timeout", CONNECT_TIMEOUT)
        options.setdefault("control_connection_timeout", CONNECT_TIMEOUT)
        options.setdefault(
            "execution_profiles",
            {EXEC_PROFILE_DEFAULT: ExecutionProfile(load_balancing_policy=RoundRobinPolicy())},
        )
        if reactor is not None:
            options["connection_class"] = load_reactor(reactor)
        cluster = Cluster(contact_points=[server.host], port=server.port, **options)
        clusters.append(cluster)
        return cluster

    yield factory
    for cluster in clusters:
        cluster.shutdown()
    # A connection a driver drops without closing (its pending tasks, an
    # unclosed transport) is reported when it is collected: collect now, so
    # the report lands in the test that leaked it, not in a later one.
    gc.collect()


@pytest.fixture
def driver_clusters() -> Iterator[List[Any]]:
    """A list to put driver Clusters in: each is shut down at teardown."""
    clusters: List[Any] = []
    yield clusters
    for cluster in clusters:
        cluster.shutdown()
    gc.collect()  # as cluster_factory does: a leaked connection is reported here
