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

import random
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
    "DribbleOutput",
    "CloseConnection",
    "KeyUpdate",
]


class ConnectionControl(Protocol):
    """What a fault may do to the connection it acts on."""

    number: int  # the node's connection number, from 1

    def hold_input(self) -> None:
        """Stop feeding received bytes to TLS/CQL (they are read and kept)."""

    def pause_reading(self) -> None:
        """Stop reading from the socket: the client's writes back up (TCP flow control)."""

    def resume_reading(self) -> None:
        """Read from the socket again."""

    def first_time(self, fault: "Fault") -> bool:
        """True the first time a fault asks on this connection (for faults that act once)."""

    def reset(self) -> None:
        """Abort with a TCP RST."""

    def close(self) -> None:
        """Close cleanly: TLS close_notify, then FIN."""

    def send_raw(self, data: bytes) -> None:
        """Put bytes on the wire now, bypassing TLS."""

    def update_keys(self, request_peer: bool) -> None:
        """Send a TLS 1.3 KeyUpdate now (update_requested if `request_peer`)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> object:
        """Run `callback` on the server's loop after `delay` seconds (cancelled at close)."""

    def log(self, fault: "Fault", detail: str) -> None:
        """Record that `fault` acted (FaultApplied in the activity log)."""

    def random(self, fault: "Fault", seed: int) -> random.Random:
        """A random generator for `fault` on this connection, seeded from
        `seed` and the connection number: the same seed gives the same
        sequence, run after run."""


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

    def input_buffered(self, ctl: ConnectionControl, pending: int) -> None:
        """`pending` bytes of a frame not yet complete are buffered after a read."""

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        """Plaintext the node is about to send: None to send it as it is, or
        the pieces to send instead, each with the delay before it (seconds).
        With TLS, each piece becomes TLS records of its own."""
        return None


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
    """Stop reading from the client: once the connection is established
    (`min_pending=0`), or once a frame of which at least `min_pending` bytes
    arrived is still incomplete (a large write in progress). With
    `resume_after`, read again after that many seconds."""

    min_pending: int = 0
    resume_after: Optional[float] = None

    def __post_init__(self) -> None:
        if self.min_pending < 0:
            raise ValueError(f"StopReading min_pending must be >= 0, got {self.min_pending}")
        if self.resume_after is not None and self.resume_after <= 0:
            raise ValueError(f"StopReading resume_after must be positive, got {self.resume_after}")

    def established(self, ctl: ConnectionControl) -> None:
        if self.min_pending == 0 and ctl.first_time(self):
            self._stop(ctl, "stopped reading from the client")

    def input_buffered(self, ctl: ConnectionControl, pending: int) -> None:
        if self.min_pending and pending >= self.min_pending and ctl.first_time(self):
            self._stop(ctl, f"stopped reading with {pending} bytes of a frame buffered")

    def _stop(self, ctl: ConnectionControl, detail: str) -> None:
        ctl.pause_reading()
        if self.resume_after is None:
            ctl.log(self, detail)
            return
        ctl.log(self, f"{detail}, for {self.resume_after} s")

        def resume() -> None:
            ctl.resume_reading()
            ctl.log(self, "reading again")

        ctl.call_later(self.resume_after, resume)


@dataclass(frozen=True)
class _EndConnection(Fault):
    """Ends the connection when the `on_request`-th request arrives (0: right
    after the handshake); the request is left unanswered."""

    on_request: int = 0
    _done = "ended"  # what the log says was done

    def _end(self, ctl: ConnectionControl) -> None:
        raise NotImplementedError

    def established(self, ctl: ConnectionControl) -> None:
        if self.on_request == 0:
            ctl.log(self, f"{self._done} after the handshake")
            self._end(ctl)

    def request_received(self, ctl: ConnectionControl, opcode: str, count: int) -> bool:
        if count == self.on_request:
            ctl.log(self, f"{self._done} on request {count} ({opcode})")
            self._end(ctl)
            return False
        return True


@dataclass(frozen=True)
class ResetConnection(_EndConnection):
    """Reset (TCP RST) when the `on_request`-th request arrives (0: right after the handshake)."""

    _done = "reset"

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.reset()


@dataclass(frozen=True)
class DribbleOutput(Fault):
    """Split and dribble what the node sends: pieces of 1 to `max_piece`
    bytes, each its own TLS record and TCP write, `max_delay` seconds apart
    at most. Frames then arrive cut anywhere, headers included. `seed`
    makes the cuts and delays the same on every run."""

    seed: int = 0
    max_piece: int = 16
    max_delay: float = 0.001

    def __post_init__(self) -> None:
        if self.max_piece < 1:
            raise ValueError(f"DribbleOutput max_piece must be >= 1, got {self.max_piece}")
        if self.max_delay < 0:
            raise ValueError(f"DribbleOutput max_delay must be >= 0, got {self.max_delay}")

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        rng = ctl.random(self, self.seed)
        pieces: List[Tuple[float, bytes]] = []
        pos = 0
        while pos < len(data):
            size = rng.randint(1, self.max_piece)
            delay = round(rng.uniform(0, self.max_delay), 6)
            pieces.append((delay, data[pos : pos + size]))
            pos += size
        ctl.log(self, "pieces " + " ".join(f"{len(p)}@{d:g}" for d, p in pieces))
        return pieces


@dataclass(frozen=True)
class CloseConnection(_EndConnection):
    """Close cleanly (close_notify, FIN) when the `on_request`-th request
    arrives (0: right after the handshake): the EOF a client must notice."""

    _done = "closed"

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.close()


@dataclass(frozen=True)
class KeyUpdate(Fault):
    """Send a TLS 1.3 KeyUpdate before answering the `on_request`-th request
    (0: right after the handshake), and then before every `every`-th request
    after it (0: once). With `request_peer` (update_requested), the client
    must update its own sending keys and say so with a KeyUpdate of its own.
    Needs TLS 1.3: on plain TCP or TLS 1.2 it fails as a server incident."""

    on_request: int = 1
    every: int = 0
    request_peer: bool = True

    def __post_init__(self) -> None:
        if self.on_request < 0:
            raise ValueError(f"KeyUpdate on_request must be >= 0, got {self.on_request}")
        if self.every < 0:
            raise ValueError(f"KeyUpdate every must be >= 0, got {self.every}")

    def established(self, ctl: ConnectionControl) -> None:
        if self.on_request == 0:
            self._update(ctl, "after the handshake")

    def request_received(self, ctl: ConnectionControl, opcode: str, count: int) -> bool:
        due = count == self.on_request or (
            self.every > 0 and count > self.on_request and (count - self.on_request) % self.every == 0)
        if due:
            self._update(ctl, f"before answering request {count} ({opcode})")
        return True

    def _update(self, ctl: ConnectionControl, when: str) -> None:
        ctl.update_keys(self.request_peer)
        ctl.log(self, f"sent KeyUpdate ({'update_requested' if self.request_peer else 'update_not_requested'}) {when}")


class FaultPlan:
    """The faults a server applies; thread-safe, changeable while it runs."""

    def __init__(self, faults: Tuple[Fault, ...] = ()) -> None:
        self._faults: List[Fault] = list(faults)
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change, so connections can cache their faults

    def add(self, fault: Fault) -> Fault:
        """Apply `fault` from now on, to open connections as well as new ones."""
        if not isinstance(fault, Fault):
            raise TypeError(f"a fault plan holds Fault objects, got {fault!r}")
        with self._lock:
            self._faults.append(fault)
            self.version += 1
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.version += 1

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

    def stop_reading(
        self, *, min_pending: int = 0, resume_after: Optional[float] = None,
        connections: Optional[Tuple[int, ...]] = None,
    ) -> Fault:
        return self.add(StopReading(min_pending=min_pending, resume_after=resume_after, connections=connections))

    def reset(self, on_request: int = 0, *, connections: Optional[Tuple[int, ...]] = None) -> Fault:
        return self.add(ResetConnection(on_request=on_request, connections=connections))

    def close(self, on_request: int = 0, *, connections: Optional[Tuple[int, ...]] = None) -> Fault:
        return self.add(CloseConnection(on_request=on_request, connections=connections))

    def key_update(
        self, on_request: int = 1, *, every: int = 0, request_peer: bool = True,
        connections: Optional[Tuple[int, ...]] = None,
    ) -> Fault:
        return self.add(KeyUpdate(on_request=on_request, every=every, request_peer=request_peer,
                                  connections=connections))

    def dribble(
        self, *, seed: int = 0, max_piece: int = 16, max_delay: float = 0.001,
        connections: Optional[Tuple[int, ...]] = None,
    ) -> Fault:
        return self.add(DribbleOutput(seed=seed, max_piece=max_piece, max_delay=max_delay, connections=connections))
