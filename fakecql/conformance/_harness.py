# What every behaviour of the conformance suite stands on: one deadline for
# the whole run, and failures that say what was expected and what happened.
#
# Strategy: a run gets a single Deadline; every wait in the suite (peer
# socket timeouts, events, polling) asks it for what is left, so a run can
# never outlive its timeout, whatever the reactor does. A failed check is a
# ConformanceFailure (an AssertionError, so pytest shows it as one), raised by
# expect() or wait_until(), never by `assert` (which `python -O` drops).
#
# Rules: no pytest here; nothing waits without a bound; messages name the
# expected thing first, then what was seen instead.
from __future__ import annotations

import time
from typing import Callable, Optional

__all__ = ["ConformanceFailure", "Deadline", "expect", "wait_until"]

POLL_INTERVAL = 0.005


class ConformanceFailure(AssertionError):
    """A reactor did not do what a behaviour of the conformance suite expects."""


class Deadline:
    """The end of one behaviour's run: every wait asks it how long it may last."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"a run needs a positive timeout, got {seconds!r}")
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self, cap: Optional[float] = None) -> float:
        """Seconds left (never negative), at most `cap`."""
        remaining = max(self.end - time.monotonic(), 0.0)
        return remaining if cap is None else min(remaining, cap)

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.end

    def check(self, what: str) -> None:
        """ConformanceFailure naming `what` if the run's time is up."""
        if self.expired:
            raise ConformanceFailure(f"expected {what} within the run's {self.seconds:g} s timeout; it did not happen")


def expect(condition: object, message: str) -> None:
    """Fail with `message` ("expected X; got Y") unless `condition` holds."""
    if not condition:
        raise ConformanceFailure(message)


def wait_until(
    predicate: Callable[[], object],
    deadline: Deadline,
    what: str,
    *,
    cap: Optional[float] = None,
    seen: Optional[Callable[[], str]] = None,
) -> None:
    """Poll `predicate` until it holds; ConformanceFailure naming `what` if the
    deadline (or `cap` seconds) passes first, with `seen()` describing the state."""
    started = time.monotonic()
    limit = started + deadline.left(cap)
    while not predicate():
        if time.monotonic() >= limit:
            if predicate():
                return
            state = f"; {seen()}" if seen is not None else ""
            waited = time.monotonic() - started
            raise ConformanceFailure(f"expected {what} within {waited:.3g} s; it did not happen{state}")
        time.sleep(POLL_INTERVAL)
