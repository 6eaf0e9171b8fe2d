# Faults are data the server consults at defined points (base.py says how).
#
# One module per family: tls.py (handshakes, certificates, versions,
# tickets, records, KeyUpdate, endings), wire.py (resets, closes, reading,
# dribbling, latency, bandwidth), answers.py (CQL answers: late, never,
# errors, wrong streams, connection limits); plan.py holds them for a
# server; registry.py names them for the command line.
from __future__ import annotations

from typing import Dict, Type

from . import answers, tls, wire
from .answers import *  # noqa: F401,F403
from .base import ConnectionControl, ConnectionInfo, Fault, Request
from .plan import FaultPlan
from .tls import *  # noqa: F401,F403
from .wire import *  # noqa: F401,F403

# Each fault's verb on server.faults (and, in kebab case, its --fault name), family by family.
VERBS: Dict[str, Type[Fault]] = {**tls.VERBS, **wire.VERBS, **answers.VERBS}

__all__ = ["ConnectionControl", "ConnectionInfo", "Request", "Fault", "FaultPlan", "VERBS"] + [
    cls.__name__ for cls in VERBS.values()]
