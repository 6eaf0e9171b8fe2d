# A delay line for bytes on the wire: latency with jitter, and a bandwidth cap.
#
# Strategy: sans-IO, like the codec. The connection push()es bytes with the
# time they arrived; take(now) returns what may go on (or in) now and when to
# ask again. Latency delays each chunk by `latency` plus a jitter drawn from
# [-jitter, +jitter] (never below zero), but never overtakes an earlier chunk:
# TCP keeps the order, so a delay line does too. A rate cap lets out at most
# `rate` bytes per second, in slices of a hundredth of a second's worth.
# end(now) is the sender's FIN: it travels the line like a chunk (after every
# byte pushed before it), and `ended` turns True when it comes out.
#
# Rules: no clock and no timer here; the caller gives `now` and schedules the
# next take(). An idle line (no latency, no cap, nothing queued) is a no-op the
# caller can skip. Nothing may be pushed after end().
from __future__ import annotations

import random
from collections import deque
from typing import Deque, List, Optional, Tuple

__all__ = ["WireLine"]


class WireLine:
    """Bytes going one way on one connection, delayed and rate-capped."""

    def __init__(self) -> None:
        self.latency = 0.0
        self.jitter = 0.0
        self.rate: Optional[float] = None  # bytes per second
        self._rng = random.Random(0)
        self._queue: Deque[Tuple[float, bytes]] = deque()  # (due time, bytes), due times non-decreasing
        self._free_at = 0.0  # when the capped line may send again
        self._end_due: Optional[float] = None  # when the sender's FIN comes out (end() was called)
        self.ended = False  # the FIN came out: everything pushed has gone through
        self.bytes_through = 0

    def set_latency(self, latency: float, jitter: float = 0.0, rng: Optional[random.Random] = None) -> None:
        if latency < 0 or jitter < 0:
            raise ValueError(f"a wire line's latency and jitter must be >= 0, got {latency!r} and {jitter!r}")
        self.latency, self.jitter = latency, jitter
        if rng is not None:
            self._rng = rng

    def set_rate(self, bytes_per_second: Optional[float]) -> None:
        if bytes_per_second is not None and not bytes_per_second > 0:
            raise ValueError(f"a wire line's rate must be > 0 bytes per second (or None), got {bytes_per_second!r}")
        self.rate = bytes_per_second

    @property
    def idle(self) -> bool:
        """Nothing to delay: bytes may go straight through."""
        return (not self._queue and self._end_due is None and self.latency <= 0 and self.jitter <= 0
                and self.rate is None)

    @property
    def empty(self) -> bool:
        """Nothing queued (the line may still delay what comes next)."""
        return not self._queue

    @property
    def ending(self) -> bool:
        """end() was called: nothing more may be pushed."""
        return self._end_due is not None

    @property
    def queued(self) -> int:
        return sum(len(chunk) for _, chunk in self._queue)

    def _due(self, now: float) -> float:
        delay = self.latency
        if self.jitter > 0:
            delay = max(0.0, delay + self._rng.uniform(-self.jitter, self.jitter))
        due = now + delay
        if self._queue and self._queue[-1][0] > due:
            due = self._queue[-1][0]  # never overtake an earlier chunk
        return due

    def push(self, now: float, data: bytes) -> None:
        if self._end_due is not None:
            raise ValueError("bytes pushed into a wire line after its end (the sender's FIN)")
        if not data:
            return
        self._queue.append((self._due(now), data))

    def end(self, now: float) -> None:
        """The sender is done (its FIN): `ended` turns True once it has come out of the line."""
        if self._end_due is None:
            self._end_due = self._due(now)

    def take(self, now: float) -> Tuple[bytes, Optional[float]]:
        """(bytes to send now, the time to call again or None when nothing is left to come)."""
        out: List[bytes] = []
        while self._queue:
            due, chunk = self._queue[0]
            if due > now:
                break
            if self.rate is None:
                self._queue.popleft()
                out.append(chunk)
                continue
            if self._free_at > now:
                break
            slice_size = max(1, int(self.rate / 100))
            piece, rest = chunk[:slice_size], chunk[slice_size:]
            if rest:
                self._queue[0] = (due, rest)
            else:
                self._queue.popleft()
            out.append(piece)
            self._free_at = max(self._free_at, now) + len(piece) / self.rate
        sent = b"".join(out)
        self.bytes_through += len(sent)
        if self._queue:
            due = self._queue[0][0]
            if self.rate is not None:
                due = max(due, self._free_at)
            return sent, due
        if self._end_due is None or self.ended:
            return sent, None
        fin_at = self._end_due if self.rate is None else max(self._end_due, self._free_at)
        if fin_at <= now:
            self.ended = True
            return sent, None
        return sent, fin_at
