# Byte-level faults: what the network or a node's socket can do to a
# connection (resets, closes, stalls, dribbles, latency, bandwidth,
# half-closes, blackholes, slow closes).
#
# Strategy: each fault acts through the ConnectionControl only. Delays on the
# wire go through the connection's two WireLines ("in", "out"; sans-IO, the
# server pumps them), set when the connection is accepted so that the TLS
# handshake is delayed too; FIN, half-close and RST travel those lines behind
# the bytes queued before them. Faults aimed at requests act once per
# connection (they end or cripple it).
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Type

from .base import ConnectionControl, Fault, Request, check_choice, check_int, check_number

__all__ = ["StopReading", "ResetConnection", "CloseConnection", "DribbleOutput", "ResetAtByte", "HalfClose",
           "Latency", "Bandwidth", "Blackhole", "SlowClose", "WireVerbs"]

_ON_REQUESTS = frozenset({"connections", "on_request", "opcode", "query", "probability"})
_DIRECTIONS = ("both", "in", "out")


def _lines(direction: str) -> Tuple[str, ...]:
    """The wire lines a direction names: "both" is "in" then "out"."""
    return ("in", "out") if direction == "both" else (direction,)


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


@dataclass(frozen=True)
class ResetAtByte(Fault):
    """A connection reset in the middle of an answer (a node process killed
    while writing, a load balancer or firewall dropping the flow mid-stream):
    the client gets the first `offset` bytes of the answer to the aimed
    request, then a TCP RST. Aimed by default at the first QUERY of each
    connection (a driver's first real question: the control connection's
    system.local, an application's first query on a pool connection);
    on_request, opcode and query aim it elsewhere. It acts once per connection.

    The answer's bytes are what the node writes for it: the frame (v3, v4; a
    9-byte header, so offset < 9 cuts the header), or the segment carrying it
    (v5 after STARTUP: a 6-byte header, 8 compressed). Answers the node wrote
    before it in the same turn go whole. Over TLS, `layer` says which bytes
    count: "cql" (default) sends the first `offset` bytes of the answer in a
    TLS record of their own, so the client decrypts exactly those bytes before
    the RST; "tls" encrypts the whole answer in records of its own and sends
    only their first `offset` bytes, a record cut mid-way (the client decrypts
    nothing of it). Without TLS both are the same. An offset past the end of
    the answer sends it whole, then the RST. An answer primed with then_delay()
    is not cut: the connection closes cleanly instead; so does an answer an
    output-shaping fault added before it (dribble, ...) took first."""

    offset: int = 4
    layer: str = "cql"

    TRIGGERS = _ON_REQUESTS

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("ResetAtByte", "offset", self.offset, 0)
        check_choice("ResetAtByte", "layer", self.layer, ("cql", "tls"))

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        state = ctl.state(self)
        if "aimed" in state:
            return
        if self.on_request is None and self.opcode is None and self.query is None and request.opcode != "QUERY":
            return  # the default: the first QUERY
        if not self.hits_request(ctl, request):
            return
        state["aimed"] = request
        request.close_after()  # its answer ends the turn: it is the tail of the next write

    def shape_output(self, ctl: ConnectionControl, data: bytes) -> Optional[List[Tuple[float, bytes]]]:
        state = ctl.state(self)
        aimed: Optional[Request] = state.get("aimed")
        if aimed is None or aimed.answer_size is None or "done" in state or aimed.answer_size > len(data):
            return None
        state["done"] = True
        size = aimed.answer_size
        before, answer = data[: len(data) - size], data[len(data) - size:]
        if before:
            ctl.send_plaintext(before)
        if self.layer == "tls":
            records = ctl.encrypt(answer)
            sent = records[: self.offset]
            ctl.send_raw(sent)
            what = f"{len(sent)} of the {len(records)} bytes of the records carrying the {size}-byte answer"
        else:
            sent = answer[: self.offset]
            if sent:
                ctl.send_plaintext(sent)
            what = f"{len(sent)} of the {size} bytes of the answer"
        ctl.log(self, f"reset after {what} to request {aimed.count} ({aimed.opcode})")
        ctl.reset()
        return []


@dataclass(frozen=True)
class _OnceAtRequestOrHandshake(Fault):
    """Acts once per connection: right after the handshake (on_request=0, or no
    request trigger at all), or when the first request it is aimed at arrives."""

    TRIGGERS = _ON_REQUESTS
    ON_REQUEST_ZERO = True

    @property
    def after_handshake(self) -> bool:
        return self.on_request == 0 or (self.on_request is None and self.opcode is None and self.query is None)

    def _act(self, ctl: ConnectionControl, request: Optional[Request]) -> None:
        raise NotImplementedError

    def established(self, ctl: ConnectionControl) -> None:
        if self.after_handshake and self.hits_connection(ctl) and ctl.first_time(self):
            self._act(ctl, None)

    def request_received(self, ctl: ConnectionControl, request: Request) -> None:
        if not self.after_handshake and "acted" not in ctl.state(self) and self.hits_request(ctl, request):
            ctl.state(self)["acted"] = True
            self._act(ctl, request)


@dataclass(frozen=True)
class HalfClose(_OnceAtRequestOrHandshake):
    """One direction of a connection shut (a node or proxy calling shutdown()
    on its socket, an idle-timeout in a middlebox that closed one way).

    "write": the node sends its FIN (after the bytes a delay line still holds)
    and keeps reading: the client reads EOF, its writes still succeed, and the
    node goes on receiving and logging its requests; answers are dropped, as a
    socket sends nothing after shutdown(SHUT_WR). Over TLS there is no
    close_notify: the client sees a TCP EOF. The aimed request is not answered.

    "read": the node keeps reading the socket but throws every byte away, so
    the client's writes succeed and go unanswered, and it is told nothing:
    that is what Linux does after shutdown(SHUT_RD) (no FIN or RST goes to the
    peer; only asyncio would take a real SHUT_RD for an EOF). The aimed
    request, and the ones already read with it, are answered.

    Either stays so until the client closes (the node then closes too). By
    default it acts right after the handshake; on_request, opcode and query
    aim it at a request."""

    direction: str = "write"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("HalfClose", "direction", self.direction, ("write", "read"))

    def _act(self, ctl: ConnectionControl, request: Optional[Request]) -> None:
        when = "after the handshake" if request is None else f"on request {request.count} ({request.opcode})"
        if self.direction == "write":
            if request is not None:
                request.drop()
            ctl.log(self, f"shut the node's sending side (FIN, reading on) {when}")
            ctl.shutdown_write()
        else:
            ctl.log(self, f"stopped taking input (read and discarded, peer not told) {when}")
            ctl.discard_input()


@dataclass(frozen=True)
class Latency(Fault):
    """A slow network path (another region, a VPN, a congested link): every
    byte is delayed `seconds`, plus a jitter drawn from [-jitter, +jitter]
    (never below zero; seeded with `seed` and the connection number). Bytes
    keep their order (jitter never lets a chunk overtake an earlier one) and
    none is lost; FINs travel behind them. `direction` is "in" (client to
    node), "out" (node to client) or "both": a request's round trip grows by
    about 2 x seconds with "both". Applies from the TCP accept, so the TLS
    handshake is delayed too; for connections accepted after it is added."""

    seconds: float = 0.1
    jitter: float = 0.0
    direction: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("Latency", "seconds", self.seconds)
        check_number("Latency", "jitter", self.jitter)
        check_choice("Latency", "direction", self.direction, _DIRECTIONS)
        if self.seconds + self.jitter <= 0:
            raise ValueError("Latency seconds or jitter must be > 0 (with both 0 it would delay nothing)")

    def accepted(self, ctl: ConnectionControl) -> None:
        if not self.hits_connection(ctl):
            return
        rng = ctl.random(self, self.seed)
        for way in _lines(self.direction):  # one generator per direction, drawn in a fixed order
            ctl.wire(way).set_latency(self.seconds, self.jitter, random.Random(rng.getrandbits(64)))
        ctl.log(self, f"{self.seconds:g} s latency, jitter {self.jitter:g} s, {self.direction}")


@dataclass(frozen=True)
class Bandwidth(Fault):
    """A thin pipe (a saturated uplink, a throttled cloud instance): at most
    `bytes_per_second` go through, in slices of a hundredth of a second's
    worth, per direction ("in", "out" or "both": each way its own cap). A
    large answer takes about its size / bytes_per_second to arrive. Bytes
    keep their order, none is lost. Applies from the TCP accept (the TLS
    handshake too); for connections accepted after it is added. The default,
    125000 (1 Mbit/s), costs a driver's connection setup (about 20 KB read)
    some 0.2 s."""

    bytes_per_second: float = 125_000
    direction: str = "both"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("Bandwidth", "bytes_per_second", self.bytes_per_second, 1)
        check_choice("Bandwidth", "direction", self.direction, _DIRECTIONS)

    def accepted(self, ctl: ConnectionControl) -> None:
        if not self.hits_connection(ctl):
            return
        for way in _lines(self.direction):
            ctl.wire(way).set_rate(self.bytes_per_second)
        ctl.log(self, f"capped at {self.bytes_per_second:g} bytes/s, {self.direction}")


@dataclass(frozen=True)
class Blackhole(Fault):
    """A node that is up but hung (a stuck process, a full disk, a long GC
    pause that never ends): it accepts the connection, completes the TLS
    handshake, then reads and discards everything and never answers; the
    connection stays open until the client closes it (the node then closes
    too). Only a client's own timeouts get it out."""

    def established(self, ctl: ConnectionControl) -> None:
        if self.hits_connection(ctl) and ctl.first_time(self):
            ctl.discard_input()
            ctl.log(self, "accepted, answering nothing: every byte read is discarded")


@dataclass(frozen=True)
class SlowClose(Fault):
    """A node slow to finish a close (busy, lingering sockets, a proxy
    draining): whenever either side asks to close (the client's FIN or
    close_notify, the node's own close), the node answers nothing more and its
    close_notify and FIN leave only `delay` seconds later. For connections
    accepted after it is added."""

    delay: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("SlowClose", "delay", self.delay, positive=True)

    def accepted(self, ctl: ConnectionControl) -> None:
        if self.hits_connection(ctl):
            ctl.set_close_delay(self.delay)
            ctl.state(self)["slow"] = True

    def closing(self, ctl: ConnectionControl) -> None:
        if ctl.state(self).get("slow"):  # not on connections accepted before it was added
            ctl.log(self, f"closing: the node's FIN comes in {self.delay:g} s")


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

    def reset_at_byte(self, offset: int = 4, *, layer: str = "cql", **triggers: Any) -> Fault:
        """TCP RST after `offset` bytes of the answer to the aimed request (default: the first QUERY)."""
        return self.add(ResetAtByte(offset=offset, layer=layer, **triggers))

    def half_close(self, direction: str = "write", **triggers: Any) -> Fault:
        """Shut the node's "write" side (FIN, keep reading) or "read" side (discard input) after the handshake."""
        return self.add(HalfClose(direction=direction, **triggers))

    def latency(self, seconds: float = 0.1, *, jitter: float = 0.0, direction: str = "both",
                **triggers: Any) -> Fault:
        """Delay every byte `seconds` (plus or minus `jitter`) "in", "out" or "both" ways."""
        return self.add(Latency(seconds=seconds, jitter=jitter, direction=direction, **triggers))

    def bandwidth(self, bytes_per_second: float = 125_000, *, direction: str = "both", **triggers: Any) -> Fault:
        """Cap the bytes per second "in", "out" or "both" ways."""
        return self.add(Bandwidth(bytes_per_second=bytes_per_second, direction=direction, **triggers))

    def blackhole(self, **triggers: Any) -> Fault:
        """Accept, complete the TLS handshake, then read and discard everything: never answer."""
        return self.add(Blackhole(**triggers))

    def slow_close(self, delay: float = 1.0, **triggers: Any) -> Fault:
        """Send the node's FIN `delay` seconds after either side asked to close."""
        return self.add(SlowClose(delay=delay, **triggers))


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {
    "stop_reading": StopReading,
    "reset": ResetConnection,
    "close": CloseConnection,
    "dribble": DribbleOutput,
    "reset_at_byte": ResetAtByte,
    "half_close": HalfClose,
    "latency": Latency,
    "bandwidth": Bandwidth,
    "blackhole": Blackhole,
    "slow_close": SlowClose,
}
