# The test suite's own settings (fakecql's fixtures come from its pytest11
# entry point, as another project's suite gets them).
#
# FAKECQL_UVLOOP=1 (tox's uvloop environment) runs the transport reactor on
# uvloop as well as the nodes (the plugin does those): every
# AsyncioTransportConnection, and each test's subclass of it, makes its loop
# with cqltransport's uvloop factory, so the reactor's tests and the
# conformance suite's "transport" cells run on uvloop unchanged.
from __future__ import annotations

from typing import Iterator

import pytest

from fakecql.pytest_plugin import uvloop_requested


@pytest.fixture(scope="session", autouse=True)
def _transport_reactor_on_uvloop() -> Iterator[None]:
    if not uvloop_requested():
        yield
        return
    from cqltransport import AsyncioTransportConnection
    from cqltransport.loops import uvloop_loop

    saved = AsyncioTransportConnection.__dict__["loop_factory"]
    loop = AsyncioTransportConnection._loop
    assert loop is None or loop.is_closed(), "the transport reactor's loop was made before the session began"
    AsyncioTransportConnection.loop_factory = staticmethod(uvloop_loop)  # type: ignore[assignment]
    try:
        yield
    finally:
        AsyncioTransportConnection.loop_factory = saved
