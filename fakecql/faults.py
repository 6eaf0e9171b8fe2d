# The fault plan: faults are data the server consults at defined points.
#
# Strategy: a Fault is a small frozen object with hook methods that default
# to "do nothing". The server calls the plan at each point of a connection's
# life (accepted, handshake output, established, request received, bytes
# out); the plan asks every fault that applies to that connection. A fault
# acts only through the ConnectionControl it is handed (hold input, pause
# reading, send now, reset, log), so the server has no `if fault == ...`
# anywhere and a new fault is a new class here, nothing else.
#
# Rules: every fault that acts logs a FaultApplied entry, so tests can see
# that it fired; faults never sleep, they schedule.
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Protocol, Tuple

__all__ = [
    "ConnectionControl",
    "Fault",
    "FaultPlan",
    "StallHandshake",
    "StopReading",
    "ResetConnection",
]


class ConnectionControl(Protocol):
    """What a fault may do to the connection it acts on."""

    number: int  # the node's connection number, from 1

    def hold_input(self) -> None:
        """Stop feeding received bytes to TLS/CQL (they are read and kept)."""

    def pause_reading(self) -> None:
        """Stop reading from the socket: the client's writes back up (TCP flow control)."""

    def reset(self) -> None:
        """Abort with a TCP RST."""

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the wire now, bypassing TLS."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the server's loop after `delay` seconds (cancelled at close)."""

    def log(self, fault: "Fault", detail: str) -> None:
        """Record that `fault` acted (FaultApplied in the activity log)."""


@dataclass(frozen=True)
class Fault:
    """Base of every fault. `connections`: the connection numbers it applies to (None: all)."""

    connections: Optional[Tuple[int, ...]] = None

    def applies_to(self, number: int) -> bool:
        return self.connections is None or number in self.connections

    # Hook points, in the order a connection meets them.
    def accepted(self, ctl: ConnectionControl) -> None:
        pass

    def handshake_output(self, ctl: ConnectionControl, data: bytes) -> bytes:
        """TLS handshake bytes about to be sent; return what to send instead."""
        return data

    def established(self, ctl: ConnectionControl) -> None:
        """TLS handshake done (or the TCP connection accepted, without TLS)."""

    def request_received(self, ctl: ConnectionControl, opcode: str, count: int) -> bool:
        """A request arrived (`count`: requests so far on this connection, from 1).
        Return False to drop it unanswered."""
        return True


@dataclass(frozen=True)
class StallHandshake(Fault):
    """Hold the TLS handshake: never answer the ClientHello ("client_hello"), or
    send the ServerHello record alone and hold the rest of the flight ("server_hello")."""

    stage: str = "client_hello"

    def __post_init__(self) -> None:
        if self.stage not in ("client_hello", "server_hello"):
            raise ValueError(f"StallHandshake stage must be 'client_hello' or 'server_hello', got {self.stage!r}")

    def accepted(self, ctl: ConnectionControl) -> None:
        if self.stage == "client_hello":
            ctl.hold_input()
            ctl.log(self, "holding the ClientHello unanswered")

    def handshake_output(self, ctl: ConnectionControl, data: bytes) -> bytes:
        if self.stage != "server_hello" or not data:
            return data
        from .tls import split_records

        records, _ = split_records(data)
        ctl.hold_input()
        ctl.log(self, f"sent the first of {len(records)} handshake records, holding the rest")
        return records[0] if records else b""


@dataclass(frozen=True)
class StopReading(Fault):
    """Stop reading from the client once the connection is established."""

    def established(self, ctl: ConnectionControl) -> None:
        ctl.pause_reading()
        ctl.log(self, "stopped reading from the client")


@dataclass(frozen=True)
class ResetConnection(Fault):
    """Reset (TCP RST) when the `on_request`-th request arrives (0: right after the handshake)."""

    on_request: int = 0

    def established(self, ctl: ConnectionControl) -> None:
        if self.on_request == 0:
            ctl.log(self, "reset after the handshake")
            ctl.reset()

    def request_received(self, ctl: ConnectionControl, opcode: str, count: int) -> bool:
        if count == self.on_request:
            ctl.log(self, f"reset on request {count} ({opcode})")
            ctl.reset()
            return False
        return True


class FaultPlan:
    """The faults a server applies; thread-safe, changeable while it runs."""

    def __init__(self, faults: Tuple[Fault, ...] = ()) -> None:
        self._faults: List[Fault] = list(faults)
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        if not isinstance(fault, Fault):
            raise TypeError(f"a fault plan holds Fault objects, got {fault!r}")
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def for_connection(self, number: int) -> List[Fault]:
        with self._lock:
            return [f for f in self._faults if f.applies_to(number)]

    def __bool__(self) -> bool:
        with self._lock:
            return bool(self._faults)

    def __repr__(self) -> str:
        with self._lock:
            return f"FaultPlan({self._faults!r})"

    # Verbs, so tests read as sentences: server.faults.stall_handshake()
    def stall_handshake(self, stage: str = "client_hello", *, connections: Optional[Tuple[int, ...]] = None) -> Fault:
        return self.add(StallHandshake(stage=stage, connections=connections))

    def stop_reading(self, *, connections: Optional[Tuple[int, ...]] = None) -> Fault:
        return self.add(StopReading(connections=connections))

    def reset(self, on_request: int = 0, *, connections: Optional[Tuple[int, ...]] = None) -> Fault:
        return self.add(ResetConnection(on_request=on_request, connections=connections))
