# A delay line for bytes on the wire: latency with jitter, and a bandwidth cap.
#
# Strategy: sans-IO, like the codec. The connection push()es bytes with the
# time they arrived; take(now) returns what may go on (or in) now and when to
# ask again. Latency delays each chunk by `latency` plus a jitter drawn from
# [-jitter, +jitter] (never below zero), but never overtakes an earlier chunk:
# TCP keeps the order, so a delay line does too. A rate cap lets out at most
# `rate` bytes per second, in slices of a hundredth of a second's worth.
#
# Rules: no clock and no timer here; the caller gives `now` and schedules the
# next take(). An idle line (no latency, no cap, nothing queued) is a no-op the
# caller can skip.
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
        self.bytes_through = 0

    def set_latency(self, latency: float, jitter: float = 0.0, rng: Optional[random.Random] = None) -> None:
        self.latency, self.jitter = latency, jitter
        if rng is not None:
            self._rng = rng

    def set_rate(self, bytes_per_second: Optional[float]) -> None:
        self.rate = bytes_per_second

    @property
    def idle(self) -> bool:
        """Nothing to delay: bytes may go straight through."""
        return not self._queue and self.latency <= 0 and self.jitter <= 0 and self.rate is None

    @property
    def queued(self) -> int:
        return sum(len(chunk) for _, chunk in self._queue)

    def push(self, now: float, data: bytes) -> None:
        if not data:
            return
        delay = self.latency
        if self.jitter > 0:
            delay = max(0.0, delay + self._rng.uniform(-self.jitter, self.jitter))
        due = now + delay
        if self._queue and self._queue[-1][0] > due:
            due = self._queue[-1][0]  # never overtake an earlier chunk
        self._queue.append((due, data))

    def take(self, now: float) -> Tuple[bytes, Optional[float]]:
        """(bytes to send now, the time to call again or None when empty)."""
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
        if not self._queue:
            return sent, None
        due = self._queue[0][0]
        if self.rate is not None:
            due = max(due, self._free_at)
        return sent, due
