# The fault plan: the faults a server applies, changeable while it runs.
from __future__ import annotations

import threading
from typing import List, Tuple, Union

from .answers import AnswerVerbs
from .base import ConnectionInfo, Fault
from .tls import TLSVerbs
from .wire import WireVerbs

__all__ = ["FaultPlan"]


class FaultPlan(TLSVerbs, WireVerbs, AnswerVerbs):
    """The faults a server applies; thread-safe, changeable while it runs.
    Its verbs read as sentences: server.faults.key_update(every=4)."""

    def __init__(self, faults: Tuple[Fault, ...] = ()) -> None:
        self._faults: List[Fault] = []
        self._lock = threading.Lock()
        self.version = 0  # bumped on every change, so connections can cache their faults
        for fault in faults:
            self.add(fault)

    def add(self, fault: Fault) -> Fault:
        """Apply `fault` from now on, to open connections as well as new ones."""
        if not isinstance(fault, Fault):
            raise TypeError(f"a fault plan holds Fault objects, got {fault!r}")
        with self._lock:
            self._faults.append(fault)
            self.version += 1
        return fault

    def remove(self, fault: Fault) -> None:
        """Stop applying `fault` (ValueError if the plan does not hold it)."""
        with self._lock:
            for index, held in enumerate(self._faults):
                if held is fault:
                    del self._faults[index]
                    self.version += 1
                    return
        raise ValueError(f"the fault plan does not hold {fault!r}")

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
            self.version += 1

    def for_connection(self, info: Union[ConnectionInfo, int]) -> List[Fault]:
        with self._lock:
            faults = list(self._faults)
        return [f for f in faults if f.applies_to(info)]

    def __iter__(self):  # type: ignore[no-untyped-def]
        with self._lock:
            return iter(list(self._faults))

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        with self._lock:
            return f"FaultPlan({self._faults!r})"
