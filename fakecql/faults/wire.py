# Byte-level faults: what the network or a node's socket can do to a
# connection (resets, closes, stalls, dribbles, latency, bandwidth).
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Type

from .base import ConnectionControl, Fault, Request, check_int, check_number

__all__ = ["StopReading", "ResetConnection", "CloseConnection", "DribbleOutput", "WireVerbs"]

_ON_REQUESTS = frozenset({"connections", "on_request", "opcode", "query", "probability"})


@dataclass(frozen=True)
class StopReading(Fault):
    """A node that stops reading its socket (GC pause, overloaded): once the
    connection is established (`min_pending=0`), or once a frame of which at
    least `min_pending` bytes arrived is still incomplete (a large write in
    progress). With `resume_after`, read again after that many seconds."""

    min_pending: int = 0
    resume_after: Optional[float] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("StopReading", "min_pending", self.min_pending, 0)
        if self.resume_after is not None:
            check_number("StopReading", "resume_after", self.resume_after, positive=True)

    def established(self, ctl: ConnectionControl) -> None:
        if self.min_pending == 0 and self.hits_connection(ctl) and ctl.first_time(self):
            self._stop(ctl, "stopped reading from the client")

    def input_buffered(self, ctl: ConnectionControl, pending: int) -> None:
        if self.min_pending and pending >= self.min_pending and self.hits_connection(ctl) and ctl.first_time(self):
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
    """Ends the connection when a request it is aimed at arrives (on_request,
    opcode, query), or right after the handshake (on_request=0, or no request
    trigger at all); the request is left unanswered."""

    TRIGGERS = _ON_REQUESTS
    ON_REQUEST_ZERO = True
    _done = "ended"  # what the log says was done

    def _end(self, ctl: ConnectionControl) -> None:
        raise NotImplementedError

    @property
    def after_handshake(self) -> bool:
        return self.on_request == 0 or (self.on_request is None and self.opcode is None and self.query is None)

    def established(self, ctl: ConnectionControl) -> None:
        if self.after_handshake and self.hits_connection(ctl):
            ctl.log(self, f"{self._done} after the handshake")
            self._end(ctl)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if not self.after_handshake and self.hits_request(ctl, request):
            ctl.log(self, f"{self._done} on request {request.count} ({request.opcode})")
            request.drop()
            self._end(ctl)


@dataclass(frozen=True)
class ResetConnection(_EndConnection):
    """A node process killed, or a firewall dropping state: a TCP RST when
    the request it is aimed at arrives (default: right after the handshake)."""

    _done = "reset"

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.reset()


@dataclass(frozen=True)
class CloseConnection(_EndConnection):
    """A node shutting a connection down cleanly (drain, restart): close_notify
    and FIN when the request it is aimed at arrives (default: right after the
    handshake), the EOF a client must notice."""

    _done = "closed"

    def _end(self, ctl: ConnectionControl) -> None:
        ctl.close()


@dataclass(frozen=True)
class DribbleOutput(Fault):
    """A congested or lossy path delivering a node's answers a few bytes at a
    time: pieces of 1 to `max_piece` bytes, each its own TLS record and TCP
    write, `max_delay` seconds apart at most. Frames then arrive cut anywhere,
    headers included. `seed` makes the cuts and delays the same on every run.
    Pauses cost: the answers a driver reads while it connects are about
    20 KB, so max_piece=7 with max_delay=0.001 takes seconds to connect."""

    max_piece: int = 16
    max_delay: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("DribbleOutput", "max_piece", self.max_piece, 1)
        check_number("DribbleOutput", "max_delay", self.max_delay)

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        if not self.hits_connection(ctl):
            return None
        rng = ctl.random(self, self.seed)
        pieces: List[Tuple[float, bytes]] = []
        pos = 0
        while pos < len(data):
            size = rng.randint(1, self.max_piece)
            delay = round(rng.uniform(0, self.max_delay), 6) if self.max_delay else 0.0
            pieces.append((delay, data[pos : pos + size]))
            pos += size
        ctl.log(self, "pieces " + " ".join(f"{len(p)}@{d:g}" for d, p in pieces))
        return pieces


class WireVerbs:
    """server.faults verbs for the byte-level faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError

    def stop_reading(self, *, min_pending: int = 0, resume_after: Optional[float] = None, **triggers: Any) -> Fault:
        """Stop reading from the client (once `min_pending` bytes of a frame are buffered)."""
        return self.add(StopReading(min_pending=min_pending, resume_after=resume_after, **triggers))

    def reset(self, on_request: Optional[int] = None, **triggers: Any) -> Fault:
        """TCP RST when the request it is aimed at arrives (default: right after the handshake)."""
        return self.add(ResetConnection(on_request=on_request, **triggers))

    def close(self, on_request: Optional[int] = None, **triggers: Any) -> Fault:
        """close_notify and FIN when the request it is aimed at arrives (default: after the handshake)."""
        return self.add(CloseConnection(on_request=on_request, **triggers))

    def dribble(self, *, seed: int = 0, max_piece: int = 16, max_delay: float = 0.0, **triggers: Any) -> Fault:
        """Cut the node's answers into TLS records of 1 to `max_piece` bytes, `max_delay` s apart at most."""
        return self.add(DribbleOutput(seed=seed, max_piece=max_piece, max_delay=max_delay, **triggers))


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {
    "stop_reading": StopReading,
    "reset": ResetConnection,
    "close": CloseConnection,
    "dribble": DribbleOutput,
}
