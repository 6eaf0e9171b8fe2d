# Bounded waiting for states that no event announces (a socket another
# thread closes, a line in a log, what a client's OpenSSL has read). Where
# fakecql logs the thing, tests use server.activity.wait_for instead.
from __future__ import annotations

import time
from typing import Callable


def eventually(predicate: Callable[[], object], timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until it is true or `timeout` seconds have passed; whether it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(interval)
    return True


def wait_until(what: str, predicate: Callable[[], object], timeout: float) -> None:
    """eventually(), failing the test with `what` did not happen in time."""
    if not eventually(predicate, timeout, interval=0.05):
        raise AssertionError(f"not within {timeout} s: {what}")
