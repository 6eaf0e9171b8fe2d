# Faults are data the server consults at defined points (base.py says how).
#
# One module per family: tls.py (handshakes, certificates, versions,
# tickets, records, KeyUpdate, endings), wire.py (resets, closes, reading,
# dribbling, latency, bandwidth), answers.py (CQL answers: late, never,
# errors, wrong streams, connection limits); plan.py holds them for a
# server; registry.py names them for the command line.
from __future__ import annotations

from typing import Dict, Type

from .base import ConnectionControl, ConnectionInfo, Fault, Request
from .plan import FaultPlan
from .tls import KeyUpdate, StallHandshake
from .wire import CloseConnection, DribbleOutput, ResetConnection, StopReading

__all__ = [
    "ConnectionControl",
    "ConnectionInfo",
    "Request",
    "Fault",
    "FaultPlan",
    "VERBS",
    "StallHandshake",
    "StopReading",
    "ResetConnection",
    "DribbleOutput",
    "CloseConnection",
    "KeyUpdate",
]

# Each fault's verb on server.faults (and, in kebab case, its --fault name).
VERBS: Dict[str, Type[Fault]] = {
    "stall_handshake": StallHandshake,
    "key_update": KeyUpdate,
    "stop_reading": StopReading,
    "reset": ResetConnection,
    "close": CloseConnection,
    "dribble": DribbleOutput,
}
