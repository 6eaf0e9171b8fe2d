# CQL-level faults: what a node's answers can do to a client (late, never,
# errors, wrong streams, connection limits).
from __future__ import annotations

from typing import Dict, Type

from .base import Fault

__all__ = ["AnswerVerbs"]


class AnswerVerbs:
    """server.faults verbs for the CQL-level faults (mixed into FaultPlan)."""

    def add(self, fault: Fault) -> Fault:  # provided by FaultPlan
        raise NotImplementedError


# verb on server.faults -> class (the --fault name is the verb in kebab case)
VERBS: Dict[str, Type[Fault]] = {}
