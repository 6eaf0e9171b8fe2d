# TLS faults: what a node's TLS layer can do to a client (handshakes,
# certificates, versions, tickets, records, KeyUpdate, endings).
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Type

from .base import ConnectionControl, Fault, Request, check_choice, check_int

__all__ = ["StallHandshake", "KeyUpdate", "TLSVerbs"]

_ON_REQUESTS = frozenset({"connections", "on_request", "opcode", "query", "probability"})


@dataclass(frozen=True)
class StallHandshake(Fault):
    """A node that accepts but never finishes the TLS handshake (overloaded,
    or a middlebox eating packets): never answer the ClientHello
    ("client_hello"), or send the ServerHello record alone and hold the rest
    of the flight ("server_hello")."""

    stage: str = "client_hello"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("StallHandshake", "stage", self.stage, ("client_hello", "server_hello"))

    def accepted(self, ctl: ConnectionControl) -> None:
        if self.stage == "client_hello" and self.hits_connection(ctl):
            ctl.hold_input()
            ctl.log(self, "holding the ClientHello unanswered")

    def handshake_output(self, ctl: ConnectionControl, data: bytes) -> bytes:
        if self.stage != "server_hello" or not data or not self.hits_connection(ctl):
            return data
        from ..tls import split_records

        records, _ = split_records(data)
        ctl.hold_input()
        ctl.log(self, f"sent the first of {len(records)} handshake records, holding the rest")
        return records[0] if records else b""


@dataclass(frozen=True)
class KeyUpdate(Fault):
    """A long-lived TLS 1.3 session rekeying (OpenSSL does it after a volume
    of data; so do some proxies): send a KeyUpdate before answering the
    `on_request`-th request (0: right after the handshake), and then before
    every `every`-th request after it (0: once); with `opcode` or `query`,
    before every request that matches. With `request_peer`
    (update_requested), the client must update its own sending keys and say
    so with a KeyUpdate of its own. Needs TLS 1.3: on plain TCP or TLS 1.2 it
    fails as a server incident."""

    on_request: int = 1  # type: ignore[assignment]
    every: int = 0
    request_peer: bool = True

    TRIGGERS = _ON_REQUESTS
    ON_REQUEST_ZERO = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("KeyUpdate", "every", self.every, 0)
        if not isinstance(self.request_peer, bool):
            raise TypeError(f"KeyUpdate request_peer must be True or False, got {self.request_peer!r}")

    def established(self, ctl: ConnectionControl) -> None:
        if self.on_request == 0 and self.hits_connection(ctl):
            self._update(ctl, "after the handshake")

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        count = request.count
        if self.opcode is not None or self.query is not None:
            due = count >= self.on_request
        else:
            due = count == self.on_request or (
                self.every > 0 and count > self.on_request and (count - self.on_request) % self.every == 0)
        if not due:
            return
        if self.opcode is not None and request.opcode not in self.opcode:
            return
        if self.query is not None and not self._query_matches(request.query):
            return
        if self.probability < 1.0 and ctl.random(self, self.seed).random() >= self.probability:
            return
        self._update(ctl, f"before answering request {count} ({request.opcode})")

    def _update(self, ctl: ConnectionControl, when: str) -> None:
        ctl.update_keys(self.request_peer)
        ctl.log(self, f"sent KeyUpdate ({'update_requested' if self.request_peer else 'update_not_requested'}) {when}")


class TLSVerbs:
    """server.faults verbs for the TLS faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError

    def stall_handshake(self, stage: str = "client_hello", **triggers: Any) -> Fault:
        """Hold the TLS handshake at `stage` ("client_hello" or "server_hello")."""
        return self.add(StallHandshake(stage=stage, **triggers))

    def key_update(self, on_request: int = 1, *, every: int = 0, request_peer: bool = True,
                   **triggers: Any) -> Fault:
        """Send a TLS 1.3 KeyUpdate before the `on_request`-th request (and every `every`-th after)."""
        return self.add(KeyUpdate(on_request=on_request, every=every, request_peer=request_peer, **triggers))


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {
    "stall_handshake": StallHandshake,
    "key_update": KeyUpdate,
}
