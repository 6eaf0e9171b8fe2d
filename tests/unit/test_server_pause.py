# CQLServer.pause()/resume() and stop(reset=True), the hooks a cluster's
# pause and kill use: a paused node accepts connections and reads nothing,
# not even a ClientHello, and times nothing out; resume answers what waited;
# a reset stop sends RST where a plain stop sends close_notify and FIN.
from __future__ import annotations

import socket
import ssl
import threading
from typing import List, Optional

import pytest

from fakecql import CQLServer, TLSConfig, client_context
from fakecql.activity import HandshakeCompleted, HandshakeFailed
from fakecql.protocol.messages import Query, Ready, RowsResult

from ..rawcql import RawClient


def test_paused_tls_node_holds_the_handshake_and_times_nothing_out(cql_ca) -> None:
    server = CQLServer(tls=TLSConfig.create(cql_ca), handshake_timeout=0.3).start()
    try:
        server.pause()
        assert server.paused
        outcome: List[object] = []
        sock = socket.create_connection(server.address, timeout=5)

        def handshake() -> None:
            try:
                outcome.append(RawClient(server.address, ssl_context=client_context(cql_ca), sock=sock))
            except Exception as exc:  # pragma: no cover - reported by the assertion below
                outcome.append(exc)

        thread = threading.Thread(target=handshake)
        thread.start()
        thread.join(1.0)  # three handshake timeouts pass
        assert thread.is_alive() and outcome == []
        assert server.activity.of_type(HandshakeCompleted) == []
        assert server.activity.of_type(HandshakeFailed) == []
        server.resume()
        thread.join(5)
        (client,) = outcome
        assert isinstance(client, RawClient)
        with client:
            assert isinstance(client.start(), Ready)
            assert isinstance(client.request(Query(query="SELECT key FROM system.local")), RowsResult)
    finally:
        server.stop()
    assert server.leftovers() == []


def test_paused_node_answers_after_resume_in_order() -> None:
    with CQLServer() as server, RawClient(server.address, timeout=3) as client:
        assert isinstance(client.start(), Ready)
        server.pause()
        for stream in (1, 2, 3):
            client.send(Query(query="SELECT key FROM system.local"), stream=stream)
        client.timeout = 0.4
        with pytest.raises(TimeoutError):
            client.read()
        server.resume()
        client.timeout = 3
        assert [client.read()[0].header.stream for _ in range(3)] == [1, 2, 3]


@pytest.mark.parametrize("reset", [False, True])
def test_stop_closes_or_resets(reset: bool) -> None:
    server = CQLServer().start()
    client = RawClient(server.address, timeout=3)
    assert isinstance(client.start(), Ready)
    server.stop(reset=reset)
    error: Optional[BaseException] = None
    data = b"?"
    try:
        data = client.sock.recv(10)
    except OSError as exc:
        error = exc
    client.close()
    if reset:
        assert isinstance(error, ConnectionResetError)
    else:
        assert error is None and data == b""  # FIN
    server.start()  # and it starts again, on the same port
    try:
        with RawClient(server.address, timeout=3) as again:
            assert isinstance(again.start(), Ready)
    finally:
        server.stop()
    assert server.leftovers() == []


def test_pause_needs_a_running_server() -> None:
    server = CQLServer()
    with pytest.raises(RuntimeError, match="not running"):
        server.pause()
    assert not server.paused
    with pytest.raises(RuntimeError, match="not running"):
        server.resume()
