# The CQL errors a test primes a node to answer with, as typed values.
#
# Strategy: a thin layer over protocol.messages.Error and its info classes:
# one small frozen class per error code, with the fields that code carries on
# the wire (named as the spec names them) and a default message worded as
# Cassandra words it. `to_error(statement_id)` builds the ERROR message; the
# statement id is needed only by Unprepared, whose id defaults to the one of
# the statement being executed (what the driver checks before re-preparing).
#
# Rules: a field that cannot be on the wire raises at once (LocalProtocolError
# from the message, or ValueError for a consistency name), naming it; the
# classes import nothing from the drivers.
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple, Union

from .protocol.errors import ErrorCode
from .protocol.messages import (
    AlreadyExistsInfo,
    CasWriteUnknownInfo,
    Consistency,
    Error,
    FunctionFailureInfo,
    ReadFailureInfo,
    ReadTimeoutInfo,
    UnavailableInfo,
    UnpreparedInfo,
    WriteFailureInfo,
    WriteTimeoutInfo,
    _ErrorInfo,
)
from .protocol.wire import InetAddress

__all__ = [
    "ConsistencyLike",
    "as_consistency",
    "CQLError",
    "ServerError",
    "ProtocolError",
    "BadCredentials",
    "Unavailable",
    "Overloaded",
    "IsBootstrapping",
    "Truncate",
    "WriteTimeout",
    "ReadTimeout",
    "ReadFailure",
    "FunctionFailure",
    "WriteFailure",
    "CDCWriteFailure",
    "CASWriteUnknown",
    "CQLSyntaxError",
    "Unauthorized",
    "Invalid",
    "ConfigError",
    "AlreadyExists",
    "Unprepared",
]

ConsistencyLike = Union[str, int, Consistency]


def as_consistency(level: ConsistencyLike, what: str = "consistency") -> Consistency:
    """A Consistency from its name ("QUORUM", "local_one") or the enum/int itself."""
    if isinstance(level, Consistency):
        return level
    if isinstance(level, str):
        try:
            return Consistency[level.upper()]
        except KeyError:
            pass
    elif isinstance(level, int) and not isinstance(level, bool):
        try:
            return Consistency(level)
        except ValueError:
            pass
    names = ", ".join(c.name for c in Consistency)
    raise ValueError(f"{what} must be a consistency level ({names}) or fakecql's Consistency, got {level!r}")


class CQLError:
    """An ERROR a node answers with; subclasses are its codes."""

    code: ClassVar[ErrorCode]
    message: Optional[str]

    def default_message(self) -> str:
        raise NotImplementedError

    def text(self) -> str:
        return self.message if self.message is not None else self.default_message()

    def info(self, statement_id: Optional[bytes]) -> Optional[_ErrorInfo]:
        return None

    def to_error(self, statement_id: Optional[bytes] = None) -> Error:
        """The ERROR message; `statement_id` is the executed statement's (for Unprepared)."""
        return Error(code=self.code, message=self.text(), info=self.info(statement_id))

    def __post_init__(self) -> None:
        if hasattr(self, "consistency"):
            object.__setattr__(self, "consistency", as_consistency(getattr(self, "consistency")))
        self.to_error(b"\x00" * 16)  # every field checked now, not at query time


@dataclass(frozen=True)
class _MessageOnly(CQLError):
    message: Optional[str] = None
    _default: ClassVar[str] = ""

    def default_message(self) -> str:
        return self._default


@dataclass(frozen=True)
class ServerError(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.SERVER_ERROR
    _default: ClassVar[str] = "java.lang.RuntimeException: fakecql primed a server error"


@dataclass(frozen=True)
class ProtocolError(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.PROTOCOL_ERROR
    _default: ClassVar[str] = "Invalid or unsupported request (primed by fakecql)"


@dataclass(frozen=True)
class BadCredentials(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.BAD_CREDENTIALS
    _default: ClassVar[str] = "Provided username and/or password are incorrect"


@dataclass(frozen=True)
class Overloaded(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.OVERLOADED
    _default: ClassVar[str] = "Server is in overloaded state. Cannot accept more requests at this point"


@dataclass(frozen=True)
class IsBootstrapping(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.IS_BOOTSTRAPPING
    _default: ClassVar[str] = "Cannot read from a bootstrapping node"


@dataclass(frozen=True)
class Truncate(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.TRUNCATE_ERROR
    _default: ClassVar[str] = "Error during truncate: primed by fakecql"


@dataclass(frozen=True)
class CDCWriteFailure(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.CDC_WRITE_FAILURE
    _default: ClassVar[str] = "Rejecting mutation to table with CDC enabled: CDC space is full"


@dataclass(frozen=True)
class CQLSyntaxError(_MessageOnly):
    """SyntaxError (code 0x2000); named apart from Python's built-in SyntaxError."""

    code: ClassVar[ErrorCode] = ErrorCode.SYNTAX_ERROR
    _default: ClassVar[str] = "line 1:0 no viable alternative at input (primed by fakecql)"


@dataclass(frozen=True)
class Unauthorized(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.UNAUTHORIZED
    _default: ClassVar[str] = "User has no permission for this request (primed by fakecql)"


@dataclass(frozen=True)
class Invalid(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.INVALID
    _default: ClassVar[str] = "Invalid request (primed by fakecql)"


@dataclass(frozen=True)
class ConfigError(_MessageOnly):
    code: ClassVar[ErrorCode] = ErrorCode.CONFIG_ERROR
    _default: ClassVar[str] = "Configuration error (primed by fakecql)"


@dataclass(frozen=True)
class Unavailable(CQLError):
    consistency: ConsistencyLike = Consistency.ONE
    required: int = 1
    alive: int = 0
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.UNAVAILABLE

    def default_message(self) -> str:
        return f"Cannot achieve consistency level {as_consistency(self.consistency).name}"

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return UnavailableInfo(consistency=as_consistency(self.consistency), required=self.required, alive=self.alive)


@dataclass(frozen=True)
class WriteTimeout(CQLError):
    consistency: ConsistencyLike = Consistency.ONE
    received: int = 0
    block_for: int = 1
    write_type: str = "SIMPLE"
    contentions: Optional[int] = None  # v5, when write_type is CAS
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.WRITE_TIMEOUT

    def default_message(self) -> str:
        return f"Operation timed out - received only {self.received} responses."

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return WriteTimeoutInfo(consistency=as_consistency(self.consistency), received=self.received,
                                block_for=self.block_for, write_type=self.write_type, contentions=self.contentions)


@dataclass(frozen=True)
class ReadTimeout(CQLError):
    consistency: ConsistencyLike = Consistency.ONE
    received: int = 0
    block_for: int = 1
    data_present: bool = False
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.READ_TIMEOUT

    def default_message(self) -> str:
        return f"Operation timed out - received only {self.received} responses."

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return ReadTimeoutInfo(consistency=as_consistency(self.consistency), received=self.received,
                               block_for=self.block_for, data_present=self.data_present)


@dataclass(frozen=True)
class ReadFailure(CQLError):
    consistency: ConsistencyLike = Consistency.ONE
    received: int = 0
    block_for: int = 1
    data_present: bool = False
    num_failures: int = 1  # v3/v4
    reasons: Tuple[Tuple[InetAddress, int], ...] = ()  # v5: endpoint -> failure code
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.READ_FAILURE

    def default_message(self) -> str:
        return f"Operation failed - received {self.received} responses and {self.num_failures} failures"

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return ReadFailureInfo(consistency=as_consistency(self.consistency), received=self.received,
                               block_for=self.block_for, data_present=self.data_present,
                               num_failures=self.num_failures, reasons=self.reasons)


@dataclass(frozen=True)
class WriteFailure(CQLError):
    consistency: ConsistencyLike = Consistency.ONE
    received: int = 0
    block_for: int = 1
    write_type: str = "SIMPLE"
    num_failures: int = 1  # v3/v4
    reasons: Tuple[Tuple[InetAddress, int], ...] = ()  # v5
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.WRITE_FAILURE

    def default_message(self) -> str:
        return f"Operation failed - received {self.received} responses and {self.num_failures} failures"

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return WriteFailureInfo(consistency=as_consistency(self.consistency), received=self.received,
                                block_for=self.block_for, write_type=self.write_type,
                                num_failures=self.num_failures, reasons=self.reasons)


@dataclass(frozen=True)
class CASWriteUnknown(CQLError):
    consistency: ConsistencyLike = Consistency.SERIAL
    received: int = 0
    block_for: int = 1
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.CAS_WRITE_UNKNOWN

    def default_message(self) -> str:
        return f"CAS operation result is unknown - proposal accepted by {self.received} but not a quorum."

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return CasWriteUnknownInfo(consistency=as_consistency(self.consistency), received=self.received,
                                   block_for=self.block_for)


@dataclass(frozen=True)
class FunctionFailure(CQLError):
    keyspace: str = "ks"
    function: str = "f"
    arg_types: Tuple[str, ...] = ()
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.FUNCTION_FAILURE

    def default_message(self) -> str:
        return f"execution of '{self.keyspace}.{self.function}[{', '.join(self.arg_types)}]' failed"

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return FunctionFailureInfo(keyspace=self.keyspace, function=self.function, arg_types=tuple(self.arg_types))


@dataclass(frozen=True)
class AlreadyExists(CQLError):
    keyspace: str = "ks"
    table: str = ""  # empty: the keyspace itself exists
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.ALREADY_EXISTS

    def default_message(self) -> str:
        if self.table:
            return f"Cannot add already existing table \"{self.table}\" to keyspace \"{self.keyspace}\""
        return f"Cannot add existing keyspace \"{self.keyspace}\""

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        return AlreadyExistsInfo(keyspace=self.keyspace, table=self.table)


@dataclass(frozen=True)
class Unprepared(CQLError):
    """UNPREPARED; `statement_id` None means the id of the statement being executed
    (the driver re-prepares only when the id is the one it sent)."""

    statement_id: Optional[bytes] = None
    message: Optional[str] = None
    code: ClassVar[ErrorCode] = ErrorCode.UNPREPARED

    def default_message(self) -> str:
        return "Prepared query with ID not found (either the query was not prepared on this host "\
               "(maybe the host has been restarted?) or you have prepared too many queries and it has "\
               "been evicted from the internal cache)"

    def info(self, statement_id: Optional[bytes]) -> _ErrorInfo:
        chosen = self.statement_id if self.statement_id is not None else statement_id
        return UnpreparedInfo(statement_id=chosen if chosen is not None else b"")
