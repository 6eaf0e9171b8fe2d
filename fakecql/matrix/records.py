# What a matrix run produced: one small record per cell, and the run around them.
#
# Strategy: every report (terminal, JSON, Markdown, JUnit, HTML) is a
# function of a MatrixRun and nothing else, so a new format is a new
# function. A Cell is plain data: it knows whether it deviates from its
# expectation, and nothing about how it was run.
#
# Rules: `outcome` is what happened, `expected` what the expectations table
# says should happen. outcome "xfail" means the cell failed as a known
# third-party bug says it must (`bug` names it); a cell expected to fail
# that passes has outcome "pass" and deviates.
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["OUTCOMES", "Cell", "DriverInfo", "MatrixRun", "slow_cells"]

OUTCOMES = ("pass", "fail", "xfail", "unavailable")

# A scenario run under a fault is flagged when its query rate falls below
# this share of the same reactor's rate in the scenario it names as baseline.
SLOW_SHARE = 0.1


@dataclass(frozen=True)
class Cell:
    """One (driver, reactor, scenario) result."""

    driver: str  # "cassandra-driver 3.30.1"
    reactor: str  # "asyncio", "libev", ..., "transport"
    scenario: str  # "test_can_connect_with_ssl_ca"
    outcome: str  # pass | fail | xfail | unavailable
    expected: str  # pass | xfail | unavailable
    seconds: float  # wall time of the cell
    budget: float  # seconds the scenario allows
    cause: str = ""  # why it failed (or is unavailable): what the node saw, what the reactor left unread
    rate: Optional[float] = None  # queries/s, for scenarios that run queries
    bug: str = ""  # the known bug an xfail expectation names (docs/upstream-bugs.md anchor)
    baseline: str = ""  # the scenario whose rate this one's is compared with
    did: str = ""  # what the aimed queries of a query-phase scenario did, in a few words

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Cell outcome must be one of {OUTCOMES}, got {self.outcome!r}")
        if self.expected not in ("pass", "xfail", "unavailable"):
            raise ValueError(f"Cell expected must be pass, xfail or unavailable, got {self.expected!r}")

    @property
    def deviates(self) -> bool:
        """True when the outcome is not what the expectations table says."""
        if self.expected == "xfail":
            return self.outcome != "xfail"
        return self.outcome != self.expected

    @property
    def column(self) -> Tuple[str, str]:
        return self.driver, self.reactor

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["deviates"] = self.deviates
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Cell":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class DriverInfo:
    """A driver environment the matrix ran in."""

    spec: str  # what was asked for: "cassandra-driver==3.30.1"
    name: str  # "cassandra-driver"
    version: str  # "3.30.1"
    python: str  # "3.11.7"
    reactors: Tuple[str, ...] = ()  # the reactors it has

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class MatrixRun:
    """A whole run: when, where, with what, and its cells."""

    generated: str  # ISO 8601, UTC
    python: str
    drivers: List[DriverInfo] = field(default_factory=list)
    cells: List[Cell] = field(default_factory=list)
    wall_seconds: float = 0.0
    machine: str = ""

    @property
    def deviations(self) -> List[Cell]:
        return [c for c in self.cells if c.deviates]

    def columns(self) -> List[Tuple[str, str]]:
        """(driver, reactor) pairs in the order cells were planned."""
        seen: Dict[Tuple[str, str], None] = {}
        for cell in self.cells:
            seen.setdefault(cell.column, None)
        return list(seen)

    def scenarios(self) -> List[str]:
        seen: Dict[str, None] = {}
        for cell in self.cells:
            seen.setdefault(cell.scenario, None)
        return list(seen)

    def cell(self, driver: str, reactor: str, scenario: str) -> Optional[Cell]:
        for c in self.cells:
            if (c.driver, c.reactor, c.scenario) == (driver, reactor, scenario):
                return c
        return None

    def to_json(self) -> Dict[str, Any]:
        return {
            "generated": self.generated,
            "python": self.python,
            "machine": self.machine,
            "wall_seconds": round(self.wall_seconds, 1),
            "drivers": [
                {"spec": d.spec, "driver": d.label, "name": d.name, "version": d.version,
                 "python": d.python, "reactors": list(d.reactors)}
                for d in self.drivers
            ],
            "cells": [c.to_json() for c in self.cells],
            "deviations": len(self.deviations),
            "slow": [f"{c.driver} / {c.reactor} / {c.scenario}" for c in slow_cells(self)],
        }

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "MatrixRun":
        return cls(
            generated=data["generated"],
            python=data["python"],
            machine=data.get("machine", ""),
            wall_seconds=data.get("wall_seconds", 0.0),
            drivers=[DriverInfo(spec=d["spec"], name=d["name"], version=d["version"], python=d["python"],
                                reactors=tuple(d.get("reactors", ()))) for d in data["drivers"]],
            cells=[Cell.from_json(c) for c in data["cells"]],
        )


def slow_cells(run: MatrixRun) -> List[Cell]:
    """Cells whose query rate under a fault fell below SLOW_SHARE of the same
    reactor's rate in their baseline scenario (both must have passed)."""
    slow = []
    for cell in run.cells:
        if not cell.baseline or cell.rate is None or cell.outcome != "pass":
            continue
        base = run.cell(cell.driver, cell.reactor, cell.baseline)
        if base is None or base.rate is None or base.outcome != "pass" or base.rate <= 0:
            continue
        if cell.rate < SLOW_SHARE * base.rate:
            slow.append(cell)
    return slow
