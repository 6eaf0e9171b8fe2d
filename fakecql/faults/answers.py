# CQL-level faults: what a node's answers can do to a client (late, never,
# errors, wrong streams, connection limits).
from __future__ import annotations

from typing import Any

from .base import Fault

__all__ = ["AnswerVerbs"]


class AnswerVerbs:
    """server.faults verbs for the CQL-level faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError

    def _unused(self, **triggers: Any) -> None:  # placeholder until the first CQL fault
        pass
