# Client routes: what Scylla keeps in system.client_routes, sans I/O.
#
# Strategy: a ClientRoutes book holds ClientRoute rows keyed by
# (connection_id, host_id), the table's primary key (partition key
# connection_id, clustering key host_id: scylla-driver reads it with
# `WHERE connection_id IN (...)` and `... AND host_id IN (...)`). post() and
# delete() stand in for Scylla's REST API (POST / DELETE /v2/client-routes):
# they change the rows, then build the CLIENT_ROUTES_CHANGE event Scylla
# sends (UPDATE_NODES, one (connection id, host id) pair per changed row, in
# two parallel lists) and hand it to every listener; the I/O shell (a
# cluster) pushes it to the connections that REGISTERed. install() makes a
# Node serve the rows through Node.row_sources. post_json()/delete_json()
# take the REST API's JSON shapes, so a test written against a real node's
# REST payloads runs unchanged.
#
# Rules: Scylla keeps the table per node and propagates it; here every node
# serves the same book, as once propagated. A route that cannot be a row
# (an empty connection id, a port outside 1..65535) is refused at once with
# a ValueError naming it. Listeners run in the caller's thread, after the
# rows changed; an exception in one propagates to the caller of post().
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ..protocol.messages import ClientRoutesChange, Event

__all__ = ["ClientRoute", "ClientRoutes", "TABLE"]

TABLE = ("system", "client_routes")
_PORTS = ("port", "tls_port", "alternator_port", "alternator_https_port")
_JSON_KEYS = ("connection_id", "host_id", "address") + _PORTS

Listener = Callable[[Event], None]


def _check_port(name: str, value: Optional[int], required: bool) -> None:
    if value is None and not required:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"client route {name} must be an integer in 1..65535, got {value!r}")


@dataclass(frozen=True)
class ClientRoute:
    """One row of system.client_routes: how clients of `connection_id` reach host `host_id`."""

    connection_id: str
    host_id: uuid.UUID
    address: str  # an IP address or a DNS name, as Scylla stores it (text)
    port: int
    tls_port: Optional[int] = None
    alternator_port: Optional[int] = None
    alternator_https_port: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.connection_id, str) or not self.connection_id:
            raise ValueError(f"client route connection_id must be a non-empty str, got {self.connection_id!r}")
        if not isinstance(self.host_id, uuid.UUID):
            raise ValueError(f"client route host_id must be a uuid.UUID, got {self.host_id!r}")
        if not isinstance(self.address, str) or not self.address:
            raise ValueError(f"client route address must be a non-empty str, got {self.address!r}")
        for name in _PORTS:
            _check_port(name, getattr(self, name), required=name == "port")

    @property
    def key(self) -> Tuple[str, uuid.UUID]:
        return self.connection_id, self.host_id

    def row(self) -> Dict[str, Any]:
        """The row as Node.row_sources gives it (column name -> value)."""
        return {"connection_id": self.connection_id, "host_id": self.host_id, "address": self.address,
                **{name: getattr(self, name) for name in _PORTS}}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> "ClientRoute":
        """A route from one entry of the REST API's POST body (host_id as text)."""
        if not isinstance(entry, Mapping):
            raise ValueError(f"a client route must be a JSON object, got {entry!r}")
        unknown = sorted(set(entry) - set(_JSON_KEYS))
        if unknown:
            raise ValueError(f"client route has unknown fields {unknown}; expected some of {list(_JSON_KEYS)}")
        missing = [k for k in ("connection_id", "host_id", "address", "port") if k not in entry]
        if missing:
            raise ValueError(f"client route {dict(entry)!r} lacks {missing}")
        return cls(connection_id=entry["connection_id"], host_id=_host_id(entry["host_id"]),
                   address=entry["address"], port=entry["port"], tls_port=entry.get("tls_port"),
                   alternator_port=entry.get("alternator_port"),
                   alternator_https_port=entry.get("alternator_https_port"))


def _host_id(value: Union[str, uuid.UUID]) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValueError(f"client route host_id must be a UUID, got {value!r}") from None


class ClientRoutes:
    """The rows of system.client_routes a cluster's nodes serve, and the events their changes fire."""

    def __init__(self) -> None:
        self._rows: Dict[Tuple[str, uuid.UUID], ClientRoute] = {}
        self._listeners: List[Listener] = []
        self._lock = threading.Lock()

    # -- wiring ----------------------------------------------------------------------
    def install(self, node: Any) -> None:
        """Make a fakecql Node serve these rows as system.client_routes."""
        node.row_sources[TABLE] = self.rows

    def on_change(self, listener: Listener) -> None:
        """Call `listener(event)` with the CLIENT_ROUTES_CHANGE event of every change."""
        if not callable(listener):
            raise TypeError(f"a client routes listener must be callable, got {listener!r}")
        with self._lock:
            self._listeners.append(listener)

    # -- reading -----------------------------------------------------------------------
    def routes(self, connection_id: Optional[str] = None) -> List[ClientRoute]:
        """The routes (of one connection id, if given), in the table's key order."""
        with self._lock:
            chosen = [r for r in self._rows.values() if connection_id is None or r.connection_id == connection_id]
        return sorted(chosen, key=lambda r: (r.connection_id, str(r.host_id)))

    def rows(self) -> List[Dict[str, Any]]:
        return [r.row() for r in self.routes()]

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    # -- the REST API's verbs ---------------------------------------------------------------
    def post(self, routes: Iterable[ClientRoute]) -> Event:
        """Write (insert or replace) routes, then fire and return the CLIENT_ROUTES_CHANGE event."""
        posted = list(routes)
        for route in posted:
            if not isinstance(route, ClientRoute):
                raise TypeError(f"post() takes ClientRoute objects (or use post_json), got {route!r}")
        with self._lock:
            for route in posted:
                self._rows[route.key] = route
        return self._fire([r.key for r in posted])

    def delete(self, keys: Iterable[Tuple[str, Union[str, uuid.UUID]]]) -> Event:
        """Delete the routes of these (connection_id, host_id) pairs (absent ones are no error,
        as in Scylla), then fire and return the event."""
        wanted = [(str(cid), _host_id(hid)) for cid, hid in keys]
        with self._lock:
            for key in wanted:
                self._rows.pop(key, None)
        return self._fire(wanted)

    def post_json(self, payload: Sequence[Mapping[str, Any]]) -> Event:
        """POST /v2/client-routes: a JSON list of {connection_id, host_id, address, port[, tls_port, ...]}."""
        if isinstance(payload, (str, bytes)) or not isinstance(payload, Sequence):
            raise ValueError(f"the client routes payload must be a JSON list of routes, got {payload!r}")
        return self.post([ClientRoute.from_json(entry) for entry in payload])

    def delete_json(self, payload: Sequence[Mapping[str, Any]]) -> Event:
        """DELETE /v2/client-routes: a JSON list of {connection_id, host_id}."""
        if isinstance(payload, (str, bytes)) or not isinstance(payload, Sequence):
            raise ValueError(f"the client routes payload must be a JSON list, got {payload!r}")
        keys = []
        for entry in payload:
            if not isinstance(entry, Mapping) or set(entry) != {"connection_id", "host_id"}:
                raise ValueError(f"a client route to delete must be {{connection_id, host_id}}, got {entry!r}")
            keys.append((entry["connection_id"], entry["host_id"]))
        return self.delete(keys)

    def _fire(self, keys: Sequence[Tuple[str, uuid.UUID]]) -> Event:
        event = Event(event=ClientRoutesChange(
            change="UPDATE_NODES",
            connection_ids=tuple(cid for cid, _ in keys),
            host_ids=tuple(str(hid) for _, hid in keys),
        ))
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(event)
        return event

    def __repr__(self) -> str:
        return f"<ClientRoutes {len(self)} routes>"
