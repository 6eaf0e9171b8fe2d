# Errors of the protocol core.
#
# Strategy: one root (FakeCQLError) for everything fakecql raises, split by who
# is at fault, as h11 does: RemoteProtocolError when bytes from a peer break
# the native protocol (the node answers them with a CQL ProtocolError and logs
# an incident), LocalProtocolError when fakecql itself is asked to put
# something on the wire that cannot be there (a bug in a test or in fakecql).
# Rules: every message names the thing that was wrong and what was expected;
# CQL-level errors carry their wire code (ErrorCode).
from __future__ import annotations

import enum
from typing import Optional, Sequence

__all__ = [
    "ErrorCode",
    "FakeCQLError",
    "ProtocolError",
    "RemoteProtocolError",
    "LocalProtocolError",
    "UnsupportedVersionError",
    "FrameTooLargeError",
]


class ErrorCode(enum.IntEnum):
    """The error codes of an ERROR message (native protocol spec, section 9)."""

    SERVER_ERROR = 0x0000
    PROTOCOL_ERROR = 0x000A
    BAD_CREDENTIALS = 0x0100
    UNAVAILABLE = 0x1000
    OVERLOADED = 0x1001
    IS_BOOTSTRAPPING = 0x1002
    TRUNCATE_ERROR = 0x1003
    WRITE_TIMEOUT = 0x1100
    READ_TIMEOUT = 0x1200
    READ_FAILURE = 0x1300
    FUNCTION_FAILURE = 0x1400
    WRITE_FAILURE = 0x1500
    CDC_WRITE_FAILURE = 0x1600
    CAS_WRITE_UNKNOWN = 0x1700
    SYNTAX_ERROR = 0x2000
    UNAUTHORIZED = 0x2100
    INVALID = 0x2200
    CONFIG_ERROR = 0x2300
    ALREADY_EXISTS = 0x2400
    UNPREPARED = 0x2500


class FakeCQLError(Exception):
    """Root of every exception fakecql raises on purpose."""


class ProtocolError(FakeCQLError):
    """The native protocol was broken; `code` is the CQL error code to answer with."""

    code: ErrorCode = ErrorCode.PROTOCOL_ERROR


class RemoteProtocolError(ProtocolError):
    """A peer sent bytes that break the native protocol.

    `stream` is the stream id of the offending frame when it is known, so the
    node can answer on it; `fatal` says the connection cannot go on (the
    framing itself is lost), as opposed to one bad message in a good frame.
    """

    def __init__(self, message: str, *, stream: int = 0, fatal: bool = True) -> None:
        super().__init__(message)
        self.stream = stream
        self.fatal = fatal


class UnsupportedVersionError(RemoteProtocolError):
    """A frame came in a protocol version the node does not serve.

    The message follows the wording Cassandra uses, which is what drivers look
    for ("unsupported protocol version") before they downgrade.
    `answer_version` is the frame version the error must be sent in: one the
    client can read.
    """

    def __init__(
        self, requested: int, served: Sequence[int], *, stream: int = 0
    ) -> None:
        served = sorted(served)
        listed = ", ".join(f"{v}/v{v}" for v in served)
        super().__init__(
            f"Invalid or unsupported protocol version ({requested}); "
            f"supported versions are ({listed})",
            stream=stream,
        )
        self.requested = requested
        self.served = tuple(served)
        if requested in (1, 2):
            # A v1/v2 client reads only the 8-byte header of its own version;
            # Cassandra answers it in that version.
            self.answer_version: int = requested
        elif requested > served[-1]:
            self.answer_version = served[-1]
        else:
            self.answer_version = served[0]


class FrameTooLargeError(RemoteProtocolError):
    """A frame header declared a body longer than the node accepts."""

    def __init__(self, declared: int, limit: int, *, stream: int = 0) -> None:
        super().__init__(
            f"frame body length {declared} exceeds the limit of {limit} bytes",
            stream=stream,
        )
        self.declared = declared
        self.limit = limit


class LocalProtocolError(ProtocolError, ValueError):
    """fakecql was asked to encode something that cannot be on the wire."""

    def __init__(self, message: str, *, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field
