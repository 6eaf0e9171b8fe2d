# The activity log: what a node saw, for tests to assert on.
#
# Strategy: entries are small frozen records appended by the server's loop
# thread and read by the test's thread; one lock and one condition guard the
# list, so wait_for() can block the test (bounded) until an entry shows up.
# Incidents are the entries a test did not ask for (a malformed frame, an
# unexpected query, an exception inside the server): the fixture fails the
# test at teardown if any is left that the test did not take.
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Type, TypeVar

__all__ = [
    "Entry",
    "ConnectionOpened",
    "HandshakeCompleted",
    "HandshakeFailed",
    "FrameReceived",
    "ResponseSent",
    "VersionRefused",
    "ConnectionClosed",
    "Incident",
    "ProtocolIncident",
    "TLSIncident",
    "UnexpectedRequest",
    "ServerException",
    "FaultApplied",
    "ActivityLog",
]


@dataclass(frozen=True)
class Entry:
    connection: int  # the node's connection number, 0 for node-wide entries
    at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class ConnectionOpened(Entry):
    peer: Tuple[str, int] = ("", 0)
    tls: bool = False


@dataclass(frozen=True)
class HandshakeCompleted(Entry):
    protocol: str = ""
    cipher: str = ""
    session_reused: bool = False
    client_cert_subject: Optional[str] = None


@dataclass(frozen=True)
class HandshakeFailed(Entry):
    reason: str = ""


@dataclass(frozen=True)
class FrameReceived(Entry):
    version: int = 0
    stream: int = 0
    opcode: str = ""
    length: int = 0
    query: Optional[str] = None  # QUERY text; the prepared text for EXECUTE
    startup_options: Optional[Dict[str, str]] = field(default=None, compare=False)  # STARTUP's


@dataclass(frozen=True)
class ResponseSent(Entry):
    stream: int = 0
    opcode: str = ""
    summary: str = ""


@dataclass(frozen=True)
class VersionRefused(Entry):
    """A client asked for a protocol version the node does not serve: normal
    negotiation (the driver retries lower), so not an incident."""

    requested: int = 0
    answered_in: int = 0


@dataclass(frozen=True)
class ConnectionClosed(Entry):
    reason: str = ""


@dataclass(frozen=True)
class FaultApplied(Entry):
    fault: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Incident(Entry):
    """Something the node saw that a test did not ask for."""

    description: str = ""


@dataclass(frozen=True)
class ProtocolIncident(Incident):
    """A malformed frame or body; the node answered a ProtocolError."""

    stream: int = 0
    fatal: bool = False


@dataclass(frozen=True)
class TLSIncident(Incident):
    """A TLS error after the handshake (a corrupt or forged record); the node sent its alert and closed."""


@dataclass(frozen=True)
class UnexpectedRequest(Incident):
    """A query (or other request) nothing primed or built in could answer."""

    query: str = ""


@dataclass(frozen=True)
class ServerException(Incident):
    """An exception raised inside the server; the traceback is in `description`."""

    exception: Optional[BaseException] = field(default=None, compare=False)


E = TypeVar("E", bound=Entry)


class ActivityLog:
    """Thread-safe, append-only record of a node's activity."""

    def __init__(self) -> None:
        self._entries: List[Entry] = []
        self._taken = 0  # incidents before this index were taken by the test
        self._condition = threading.Condition()

    def add(self, entry: Entry) -> None:
        with self._condition:
            self._entries.append(entry)
            self._condition.notify_all()

    @property
    def entries(self) -> List[Entry]:
        with self._condition:
            return list(self._entries)

    def of_type(self, kind: Type[E]) -> List[E]:
        with self._condition:
            return [e for e in self._entries if isinstance(e, kind)]

    def queries(self) -> List[str]:
        """The text of every QUERY, EXECUTE and BATCH statement received, in order."""
        return [e.query for e in self.of_type(FrameReceived) if e.query is not None]

    def handshakes(self) -> List[HandshakeCompleted]:
        return self.of_type(HandshakeCompleted)

    def incidents(self) -> List[Incident]:
        """Incidents not yet taken by the test."""
        with self._condition:
            return [e for e in self._entries[self._taken :] if isinstance(e, Incident)]

    def take_incidents(self) -> List[Incident]:
        """Return the incidents so far and mark them handled (the test asserts on them)."""
        with self._condition:
            found = [e for e in self._entries[self._taken :] if isinstance(e, Incident)]
            self._taken = len(self._entries)
            return found

    def wait_for(self, predicate: Callable[[Entry], bool], *, timeout: float = 5.0) -> Entry:
        """Block until an entry matching `predicate` is logged; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._condition:
            while True:
                for entry in self._entries[seen:]:
                    if predicate(entry):
                        return entry
                seen = len(self._entries)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no matching activity within {timeout} s; the log holds "
                        f"{len(self._entries)} entries, the last: {self._entries[-5:]!r}"
                    )
                self._condition.wait(left)

    def clear(self) -> None:
        with self._condition:
            self._entries.clear()
            self._taken = 0
