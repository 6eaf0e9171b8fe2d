# Messages: one frozen class per opcode (and per RESULT kind, per ERROR code's
# extra fields), each able to encode its body and decode it for a given
# protocol version (spec section 4).
#
# Strategy: a message validates itself when built, so a value that cannot be
# on the wire cannot be built (LocalProtocolError). decode_message() turns an
# opcode and a body into a message and raises RemoteProtocolError naming the
# field that was wrong; it refuses trailing garbage. Version differences
# (v5's [int] query flags, result_metadata_id, keyspace and now_in_seconds,
# reason maps in failure errors) live in the encode/decode of the message
# concerned, nowhere else.
from __future__ import annotations

import enum
import sys
from dataclasses import dataclass, field
from typing import (
    Any,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .frames import Opcode
from .types import CqlType, read_type_option, write_type_option
from .wire import UNSET, InetAddress, Reader, Unset, Writer

__all__ = [
    "Consistency",
    "Message",
    "Request",
    "Response",
    "Startup",
    "Options",
    "Query",
    "QueryParameters",
    "Prepare",
    "Execute",
    "Batch",
    "BatchType",
    "BatchStatement",
    "Register",
    "AuthResponse",
    "Error",
    "Ready",
    "Authenticate",
    "Supported",
    "Result",
    "VoidResult",
    "RowsResult",
    "SetKeyspaceResult",
    "PreparedResult",
    "SchemaChangeResult",
    "ColumnSpec",
    "RowsMetadata",
    "PreparedMetadata",
    "SchemaChange",
    "TopologyChange",
    "StatusChange",
    "Event",
    "ClientRoutesChange",
    "AuthChallenge",
    "AuthSuccess",
    "UnavailableInfo",
    "WriteTimeoutInfo",
    "ReadTimeoutInfo",
    "ReadFailureInfo",
    "WriteFailureInfo",
    "FunctionFailureInfo",
    "CasWriteUnknownInfo",
    "AlreadyExistsInfo",
    "UnpreparedInfo",
    "decode_message",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
]

if sys.version_info >= (3, 10):
    _FROZEN: Dict[str, Any] = {"frozen": True, "slots": True, "kw_only": True}
else:  # pragma: no cover - keyword-only and slots need 3.10
    _FROZEN = {"frozen": True}

Value = Union[bytes, None, Unset]
M = TypeVar("M", bound="Message")


class Consistency(enum.IntEnum):
    ANY = 0x0000
    ONE = 0x0001
    TWO = 0x0002
    THREE = 0x0003
    QUORUM = 0x0004
    ALL = 0x0005
    LOCAL_QUORUM = 0x0006
    EACH_QUORUM = 0x0007
    SERIAL = 0x0008
    LOCAL_SERIAL = 0x0009
    LOCAL_ONE = 0x000A


_CONSISTENCIES: Dict[int, Consistency] = {int(c): c for c in Consistency}


def _consistency(reader: Reader, what: str) -> Consistency:
    raw = reader.short(what)
    level = _CONSISTENCIES.get(raw)
    if level is None:
        raise RemoteProtocolError(
            f"garbage in {reader.what}: {what} 0x{raw:04x} is not a consistency level "
            f"(expected 0x0000-0x000a)",
            fatal=False,
        )
    return level


def _bound_value(reader: Reader, version: int, what: str) -> Value:
    """A bound value: [value] from v4 on; in v3 a [bytes], where any negative length is null."""
    if version < 4:
        return reader.nullable_bytes(what)
    return reader.value(what)


def _check(condition: bool, message: str, field_name: Optional[str] = None) -> None:
    if not condition:
        raise LocalProtocolError(message, field=field_name)


def _check_value(value: Value, what: str) -> None:
    # Checked on every bound value: the message is built only when it fails
    # (repr() of a 16 MB value costs a fifth of a second).
    if not (value is None or value is UNSET or isinstance(value, (bytes, bytearray))):
        raise LocalProtocolError(f"{what} must be bytes, None or UNSET, got {_shown(value)}")


def _shown(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class Message:
    """Base of every message. `opcode` says which frame it travels in."""

    opcode: ClassVar[Opcode]

    def encode_body(self, version: int) -> bytes:
        out = Writer()
        self._write(out, version)
        return out.getvalue()

    def _write(self, out: Writer, version: int) -> None:
        pass

    @classmethod
    def _read(cls: Type[M], reader: Reader, version: int) -> M:
        return cls()


class Request(Message):
    """A message a client sends."""


class Response(Message):
    """A message a node sends."""


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------

@dataclass(**_FROZEN)
class Startup(Request):
    options: Mapping[str, str] = field(default_factory=dict)
    opcode: ClassVar[Opcode] = Opcode.STARTUP

    def __post_init__(self) -> None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.options.items()):
            raise LocalProtocolError(f"STARTUP options must map str to str, got {_shown(self.options)}")

    def _write(self, out: Writer, version: int) -> None:
        out.string_map(self.options, "STARTUP options")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Startup":
        return cls(options=reader.string_map("STARTUP options"))


@dataclass(**_FROZEN)
class Options(Request):
    opcode: ClassVar[Opcode] = Opcode.OPTIONS


class _QueryFlag:  # plain ints: IntFlag arithmetic is slow on the hot path
    VALUES = 0x01
    SKIP_METADATA = 0x02
    PAGE_SIZE = 0x04
    PAGING_STATE = 0x08
    SERIAL_CONSISTENCY = 0x10
    DEFAULT_TIMESTAMP = 0x20
    NAMES_FOR_VALUES = 0x40
    KEYSPACE = 0x80  # v5
    NOW_IN_SECONDS = 0x100  # v5


@dataclass(**_FROZEN)
class QueryParameters:
    """The <query_parameters> shared by QUERY and EXECUTE (spec 4.1.4)."""

    consistency: Consistency = Consistency.ONE
    values: Tuple[Value, ...] = ()
    names: Optional[Tuple[str, ...]] = None
    skip_metadata: bool = False
    page_size: Optional[int] = None
    paging_state: Optional[bytes] = None
    serial_consistency: Optional[Consistency] = None
    timestamp: Optional[int] = None
    keyspace: Optional[str] = None  # v5
    now_in_seconds: Optional[int] = None  # v5

    def __post_init__(self) -> None:
        _check(isinstance(self.consistency, int), f"consistency must be a Consistency, got {self.consistency!r}")
        for i, value in enumerate(self.values):
            _check_value(value, f"bound value {i}")
        if self.names is not None:
            _check(
                len(self.names) == len(self.values),
                f"{len(self.names)} names for {len(self.values)} values",
            )
            if not self.values:  # no names without values: read() says None too
                object.__setattr__(self, "names", None)
        if self.page_size is not None:
            _check(0 < self.page_size < 2**31, f"page_size must be positive, got {self.page_size}")

    def write(self, out: Writer, version: int) -> None:
        flags = 0
        if self.values:
            flags |= _QueryFlag.VALUES
        if self.names is not None:
            flags |= _QueryFlag.NAMES_FOR_VALUES
        if self.skip_metadata:
            flags |= _QueryFlag.SKIP_METADATA
        if self.page_size is not None:
            flags |= _QueryFlag.PAGE_SIZE
        if self.paging_state is not None:
            flags |= _QueryFlag.PAGING_STATE
        if self.serial_consistency is not None:
            flags |= _QueryFlag.SERIAL_CONSISTENCY
        if self.timestamp is not None:
            flags |= _QueryFlag.DEFAULT_TIMESTAMP
        if version >= 5:
            if self.keyspace is not None:
                flags |= _QueryFlag.KEYSPACE
            if self.now_in_seconds is not None:
                flags |= _QueryFlag.NOW_IN_SECONDS
        else:
            _check(
                self.keyspace is None and self.now_in_seconds is None,
                f"keyspace and now_in_seconds need protocol v5, not v{version}",
            )
        out.short(int(self.consistency), "consistency")
        if version >= 5:
            out.uint32(int(flags), "query flags")
        else:
            out.byte(int(flags), "query flags")
        if self.values:
            out.short(len(self.values), "value count")
            for i, value in enumerate(self.values):
                if self.names is not None:
                    out.string(self.names[i], f"value name {i}")
                if value is UNSET:
                    _check(version >= 4, "UNSET values need protocol v4 or later")
                out.value(value, f"value {i}")
        if self.page_size is not None:
            out.int32(self.page_size, "page size")
        if self.paging_state is not None:
            out.nullable_bytes(self.paging_state, "paging state")
        if self.serial_consistency is not None:
            out.short(int(self.serial_consistency), "serial consistency")
        if self.timestamp is not None:
            out.long(self.timestamp, "timestamp")
        if version >= 5:
            if self.keyspace is not None:
                out.string(self.keyspace, "keyspace")
            if self.now_in_seconds is not None:
                out.int32(self.now_in_seconds, "now_in_seconds")

    @classmethod
    def read(cls, reader: Reader, version: int) -> "QueryParameters":
        consistency = _consistency(reader, "consistency")
        if version >= 5:
            flags = reader.uint32("query flags")
            known = 0x1FF
        else:
            flags = reader.byte("query flags")
            known = 0x7F
        if flags & ~known:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: unknown query flags 0x{flags & ~known:x} "
                f"for protocol v{version}",
                fatal=False,
            )
        values: List[Value] = []
        names: Optional[List[str]] = None
        if flags & _QueryFlag.VALUES:
            count = reader.short("value count")
            if flags & _QueryFlag.NAMES_FOR_VALUES:
                names = []
            for i in range(count):
                if names is not None:
                    names.append(reader.string(f"value name {i}"))
                values.append(_bound_value(reader, version, f"value {i}"))
        elif flags & _QueryFlag.NAMES_FOR_VALUES:
            names = []
        page_size = reader.int32("page size") if flags & _QueryFlag.PAGE_SIZE else None
        if page_size is not None and page_size <= 0:
            page_size = None  # drivers send -1 or 0 for "no paging"
        paging_state = reader.nullable_bytes("paging state") if flags & _QueryFlag.PAGING_STATE else None
        serial = (
            _consistency(reader, "serial consistency")
            if flags & _QueryFlag.SERIAL_CONSISTENCY
            else None
        )
        timestamp = reader.long("timestamp") if flags & _QueryFlag.DEFAULT_TIMESTAMP else None
        keyspace = reader.string("keyspace") if flags & _QueryFlag.KEYSPACE else None
        now = reader.int32("now_in_seconds") if flags & _QueryFlag.NOW_IN_SECONDS else None
        return cls(
            consistency=consistency,
            values=tuple(values),
            names=tuple(names) if names is not None and values else None,
            skip_metadata=bool(flags & _QueryFlag.SKIP_METADATA),
            page_size=page_size,
            paging_state=paging_state,
            serial_consistency=serial,
            timestamp=timestamp,
            keyspace=keyspace,
            now_in_seconds=now,
        )


@dataclass(**_FROZEN)
class Query(Request):
    query: str
    parameters: QueryParameters = field(default_factory=QueryParameters)
    opcode: ClassVar[Opcode] = Opcode.QUERY

    def __post_init__(self) -> None:
        if not isinstance(self.query, str):
            raise LocalProtocolError(f"query must be a str, got {_shown(self.query)}")

    def _write(self, out: Writer, version: int) -> None:
        out.long_string(self.query, "query string")
        self.parameters.write(out, version)

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Query":
        query = reader.long_string("query string")
        return cls(query=query, parameters=QueryParameters.read(reader, version))


@dataclass(**_FROZEN)
class Prepare(Request):
    query: str
    keyspace: Optional[str] = None  # v5
    opcode: ClassVar[Opcode] = Opcode.PREPARE

    def _write(self, out: Writer, version: int) -> None:
        out.long_string(self.query, "query string")
        if version >= 5:
            if self.keyspace is not None:
                out.uint32(0x01, "prepare flags")
                out.string(self.keyspace, "keyspace")
            else:
                out.uint32(0, "prepare flags")
        else:
            _check(self.keyspace is None, f"PREPARE with a keyspace needs protocol v5, not v{version}")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Prepare":
        query = reader.long_string("query string")
        keyspace = None
        if version >= 5:
            flags = reader.uint32("prepare flags")
            if flags & ~0x01:
                raise RemoteProtocolError(
                    f"garbage in {reader.what}: unknown PREPARE flags 0x{flags:x}", fatal=False
                )
            if flags & 0x01:
                keyspace = reader.string("keyspace")
        return cls(query=query, keyspace=keyspace)


@dataclass(**_FROZEN)
class Execute(Request):
    query_id: bytes
    parameters: QueryParameters = field(default_factory=QueryParameters)
    result_metadata_id: Optional[bytes] = None  # v5
    opcode: ClassVar[Opcode] = Opcode.EXECUTE

    def _write(self, out: Writer, version: int) -> None:
        out.short_bytes(self.query_id, "query id")
        if version >= 5:
            out.short_bytes(self.result_metadata_id or b"", "result metadata id")
        self.parameters.write(out, version)

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Execute":
        query_id = reader.short_bytes("query id")
        metadata_id = reader.short_bytes("result metadata id") if version >= 5 else None
        return cls(
            query_id=query_id,
            result_metadata_id=metadata_id,
            parameters=QueryParameters.read(reader, version),
        )


class BatchType(enum.IntEnum):
    LOGGED = 0
    UNLOGGED = 1
    COUNTER = 2


@dataclass(**_FROZEN)
class BatchStatement:
    """One statement of a BATCH: a query string or a prepared id, with values."""

    query: Optional[str] = None
    query_id: Optional[bytes] = None
    values: Tuple[Value, ...] = ()

    def __post_init__(self) -> None:
        _check(
            (self.query is None) != (self.query_id is None),
            "a batch statement has either a query string or a prepared id, not both or neither",
        )
        for i, value in enumerate(self.values):
            _check_value(value, f"batch value {i}")


@dataclass(**_FROZEN)
class Batch(Request):
    statements: Tuple[BatchStatement, ...]
    batch_type: BatchType = BatchType.LOGGED
    consistency: Consistency = Consistency.ONE
    serial_consistency: Optional[Consistency] = None
    timestamp: Optional[int] = None
    keyspace: Optional[str] = None  # v5
    now_in_seconds: Optional[int] = None  # v5
    opcode: ClassVar[Opcode] = Opcode.BATCH

    def _write(self, out: Writer, version: int) -> None:
        out.byte(int(self.batch_type), "batch type")
        out.short(len(self.statements), "statement count")
        for i, statement in enumerate(self.statements):
            if statement.query is not None:
                out.byte(0, f"statement {i} kind")
                out.long_string(statement.query, f"statement {i} query")
            else:
                out.byte(1, f"statement {i} kind")
                out.short_bytes(statement.query_id or b"", f"statement {i} id")
            out.short(len(statement.values), f"statement {i} value count")
            for j, value in enumerate(statement.values):
                if value is UNSET:
                    _check(version >= 4, "UNSET values need protocol v4 or later")
                out.value(value, f"statement {i} value {j}")
        out.short(int(self.consistency), "consistency")
        flags = 0
        if self.serial_consistency is not None:
            flags |= _QueryFlag.SERIAL_CONSISTENCY
        if self.timestamp is not None:
            flags |= _QueryFlag.DEFAULT_TIMESTAMP
        if self.keyspace is not None:
            _check(version >= 5, "BATCH with a keyspace needs protocol v5")
            flags |= _QueryFlag.KEYSPACE
        if self.now_in_seconds is not None:
            _check(version >= 5, "BATCH with now_in_seconds needs protocol v5")
            flags |= _QueryFlag.NOW_IN_SECONDS
        if version >= 5:
            out.uint32(int(flags), "batch flags")
        else:
            out.byte(int(flags), "batch flags")
        if self.serial_consistency is not None:
            out.short(int(self.serial_consistency), "serial consistency")
        if self.timestamp is not None:
            out.long(self.timestamp, "timestamp")
        if self.keyspace is not None:
            out.string(self.keyspace, "keyspace")
        if self.now_in_seconds is not None:
            out.int32(self.now_in_seconds, "now_in_seconds")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Batch":
        raw_type = reader.byte("batch type")
        try:
            batch_type = BatchType(raw_type)
        except ValueError:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: batch type {raw_type}; expected 0, 1 or 2",
                fatal=False,
            ) from None
        count = reader.short("statement count")
        statements = []
        for i in range(count):
            kind = reader.byte(f"statement {i} kind")
            if kind == 0:
                query: Optional[str] = reader.long_string(f"statement {i} query")
                query_id = None
            elif kind == 1:
                query, query_id = None, reader.short_bytes(f"statement {i} id")
            else:
                raise RemoteProtocolError(
                    f"garbage in {reader.what}: statement {i} kind {kind}; expected 0 or 1",
                    fatal=False,
                )
            n_values = reader.short(f"statement {i} value count")
            values = tuple(
                _bound_value(reader, version, f"statement {i} value {j}") for j in range(n_values)
            )
            statements.append(BatchStatement(query=query, query_id=query_id, values=values))
        consistency = _consistency(reader, "consistency")
        flags = reader.uint32("batch flags") if version >= 5 else reader.byte("batch flags")
        if flags & _QueryFlag.NAMES_FOR_VALUES:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: named values are not supported in a BATCH",
                fatal=False,
            )
        serial = _consistency(reader, "serial consistency") if flags & _QueryFlag.SERIAL_CONSISTENCY else None
        timestamp = reader.long("timestamp") if flags & _QueryFlag.DEFAULT_TIMESTAMP else None
        keyspace = reader.string("keyspace") if version >= 5 and flags & _QueryFlag.KEYSPACE else None
        now = reader.int32("now_in_seconds") if version >= 5 and flags & _QueryFlag.NOW_IN_SECONDS else None
        return cls(
            statements=tuple(statements),
            batch_type=batch_type,
            consistency=consistency,
            serial_consistency=serial,
            timestamp=timestamp,
            keyspace=keyspace,
            now_in_seconds=now,
        )


@dataclass(**_FROZEN)
class Register(Request):
    event_types: Tuple[str, ...] = ()
    opcode: ClassVar[Opcode] = Opcode.REGISTER

    def _write(self, out: Writer, version: int) -> None:
        out.string_list(self.event_types, "event types")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Register":
        return cls(event_types=tuple(reader.string_list("event types")))


@dataclass(**_FROZEN)
class AuthResponse(Request):
    token: Optional[bytes] = None
    opcode: ClassVar[Opcode] = Opcode.AUTH_RESPONSE

    def _write(self, out: Writer, version: int) -> None:
        out.nullable_bytes(self.token, "auth token")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "AuthResponse":
        return cls(token=reader.nullable_bytes("auth token"))


# --------------------------------------------------------------------------
# ERROR and the extra fields of each code
# --------------------------------------------------------------------------

class _ErrorInfo:
    """Extra fields an ERROR carries for one error code."""

    codes: ClassVar[Tuple[ErrorCode, ...]]

    def write(self, out: Writer, version: int) -> None:
        raise NotImplementedError

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "_ErrorInfo":
        raise NotImplementedError


@dataclass(**_FROZEN)
class UnavailableInfo(_ErrorInfo):
    consistency: Consistency
    required: int
    alive: int
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.UNAVAILABLE,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.required, "required")
        out.int32(self.alive, "alive")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "UnavailableInfo":
        return cls(
            consistency=_consistency(reader, "consistency"),
            required=reader.int32("required"),
            alive=reader.int32("alive"),
        )


@dataclass(**_FROZEN)
class WriteTimeoutInfo(_ErrorInfo):
    consistency: Consistency
    received: int
    block_for: int
    write_type: str
    contentions: Optional[int] = None  # v5, when write_type is CAS
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.WRITE_TIMEOUT,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.received, "received")
        out.int32(self.block_for, "blockfor")
        out.string(self.write_type, "writeType")
        if version >= 5 and self.write_type == "CAS":
            out.short(self.contentions or 0, "contentions")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "WriteTimeoutInfo":
        consistency = _consistency(reader, "consistency")
        received = reader.int32("received")
        block_for = reader.int32("blockfor")
        write_type = reader.string("writeType")
        contentions = reader.short("contentions") if version >= 5 and write_type == "CAS" else None
        return cls(
            consistency=consistency,
            received=received,
            block_for=block_for,
            write_type=write_type,
            contentions=contentions,
        )


@dataclass(**_FROZEN)
class ReadTimeoutInfo(_ErrorInfo):
    consistency: Consistency
    received: int
    block_for: int
    data_present: bool
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.READ_TIMEOUT,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.received, "received")
        out.int32(self.block_for, "blockfor")
        out.byte(1 if self.data_present else 0, "data_present")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "ReadTimeoutInfo":
        return cls(
            consistency=_consistency(reader, "consistency"),
            received=reader.int32("received"),
            block_for=reader.int32("blockfor"),
            data_present=reader.byte("data_present") != 0,
        )


def _write_failures(out: Writer, version: int, num: int, reasons: Sequence[Tuple[InetAddress, int]]) -> None:
    if version >= 5:
        out.int32(len(reasons), "reasonmap size")
        for address, reason in reasons:
            out.inetaddr(address, "reasonmap endpoint")
            out.short(reason, "reasonmap failure code")
    else:
        out.int32(num, "numfailures")


def _read_failures(reader: Reader, version: int) -> Tuple[int, Tuple[Tuple[InetAddress, int], ...]]:
    if version >= 5:
        count = reader.int32("reasonmap size")
        if count < 0 or count * 7 > reader.remaining:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: reasonmap of {count} entries in "
                f"{reader.remaining} bytes",
                fatal=False,
            )
        reasons = tuple(
            (reader.inetaddr("reasonmap endpoint"), reader.short("reasonmap failure code"))
            for _ in range(count)
        )
        return count, reasons
    return reader.int32("numfailures"), ()


@dataclass(**_FROZEN)
class ReadFailureInfo(_ErrorInfo):
    consistency: Consistency
    received: int
    block_for: int
    data_present: bool
    num_failures: int = 0  # v3/v4
    reasons: Tuple[Tuple[InetAddress, int], ...] = ()  # v5: endpoint -> failure code
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.READ_FAILURE,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.received, "received")
        out.int32(self.block_for, "blockfor")
        _write_failures(out, version, self.num_failures, self.reasons)
        out.byte(1 if self.data_present else 0, "data_present")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "ReadFailureInfo":
        consistency = _consistency(reader, "consistency")
        received = reader.int32("received")
        block_for = reader.int32("blockfor")
        num, reasons = _read_failures(reader, version)
        return cls(
            consistency=consistency,
            received=received,
            block_for=block_for,
            num_failures=num,
            reasons=reasons,
            data_present=reader.byte("data_present") != 0,
        )


@dataclass(**_FROZEN)
class WriteFailureInfo(_ErrorInfo):
    consistency: Consistency
    received: int
    block_for: int
    write_type: str
    num_failures: int = 0  # v3/v4
    reasons: Tuple[Tuple[InetAddress, int], ...] = ()  # v5
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.WRITE_FAILURE,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.received, "received")
        out.int32(self.block_for, "blockfor")
        _write_failures(out, version, self.num_failures, self.reasons)
        out.string(self.write_type, "writeType")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "WriteFailureInfo":
        consistency = _consistency(reader, "consistency")
        received = reader.int32("received")
        block_for = reader.int32("blockfor")
        num, reasons = _read_failures(reader, version)
        return cls(
            consistency=consistency,
            received=received,
            block_for=block_for,
            num_failures=num,
            reasons=reasons,
            write_type=reader.string("writeType"),
        )


@dataclass(**_FROZEN)
class FunctionFailureInfo(_ErrorInfo):
    keyspace: str
    function: str
    arg_types: Tuple[str, ...] = ()
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.FUNCTION_FAILURE,)

    def write(self, out: Writer, version: int) -> None:
        out.string(self.keyspace, "keyspace")
        out.string(self.function, "function")
        out.string_list(self.arg_types, "arg_types")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "FunctionFailureInfo":
        return cls(
            keyspace=reader.string("keyspace"),
            function=reader.string("function"),
            arg_types=tuple(reader.string_list("arg_types")),
        )


@dataclass(**_FROZEN)
class CasWriteUnknownInfo(_ErrorInfo):
    consistency: Consistency
    received: int
    block_for: int
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.CAS_WRITE_UNKNOWN,)

    def write(self, out: Writer, version: int) -> None:
        out.short(int(self.consistency), "consistency")
        out.int32(self.received, "received")
        out.int32(self.block_for, "blockfor")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "CasWriteUnknownInfo":
        return cls(
            consistency=_consistency(reader, "consistency"),
            received=reader.int32("received"),
            block_for=reader.int32("blockfor"),
        )


@dataclass(**_FROZEN)
class AlreadyExistsInfo(_ErrorInfo):
    keyspace: str
    table: str = ""  # empty when the keyspace itself exists
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.ALREADY_EXISTS,)

    def write(self, out: Writer, version: int) -> None:
        out.string(self.keyspace, "keyspace")
        out.string(self.table, "table")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "AlreadyExistsInfo":
        return cls(keyspace=reader.string("keyspace"), table=reader.string("table"))


@dataclass(**_FROZEN)
class UnpreparedInfo(_ErrorInfo):
    statement_id: bytes
    codes: ClassVar[Tuple[ErrorCode, ...]] = (ErrorCode.UNPREPARED,)

    def write(self, out: Writer, version: int) -> None:
        out.short_bytes(self.statement_id, "statement id")

    @classmethod
    def read(cls, reader: Reader, version: int, code: ErrorCode) -> "UnpreparedInfo":
        return cls(statement_id=reader.short_bytes("statement id"))


_INFO_BY_CODE: Dict[ErrorCode, Type[_ErrorInfo]] = {
    code: info
    for info in (
        UnavailableInfo, WriteTimeoutInfo, ReadTimeoutInfo, ReadFailureInfo,
        WriteFailureInfo, FunctionFailureInfo, CasWriteUnknownInfo,
        AlreadyExistsInfo, UnpreparedInfo,
    )
    for code in info.codes
}


@dataclass(**_FROZEN)
class Error(Response):
    """An ERROR response. `info` holds the extra fields its code defines."""

    code: ErrorCode
    message: str
    info: Optional[_ErrorInfo] = None
    opcode: ClassVar[Opcode] = Opcode.ERROR

    def __post_init__(self) -> None:
        try:
            code = ErrorCode(self.code)
        except ValueError:
            raise LocalProtocolError(f"unknown error code 0x{self.code:04x}") from None
        object.__setattr__(self, "code", code)
        expected = _INFO_BY_CODE.get(code)
        if expected is None:
            _check(self.info is None, f"error {code.name} carries no extra fields, got {self.info!r}")
        else:
            _check(
                isinstance(self.info, expected),
                f"error {code.name} needs info={expected.__name__}(...), got {self.info!r}",
            )

    def _write(self, out: Writer, version: int) -> None:
        out.int32(int(self.code), "error code")
        out.string(self.message, "error message")
        if self.info is not None:
            self.info.write(out, version)

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Error":
        raw = reader.int32("error code")
        try:
            code = ErrorCode(raw)
        except ValueError:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: unknown error code 0x{raw:04x}", fatal=False
            ) from None
        message = reader.string("error message")
        info_type = _INFO_BY_CODE.get(code)
        info = info_type.read(reader, version, code) if info_type else None
        return cls(code=code, message=message, info=info)


# --------------------------------------------------------------------------
# Other responses
# --------------------------------------------------------------------------

@dataclass(**_FROZEN)
class Ready(Response):
    opcode: ClassVar[Opcode] = Opcode.READY


@dataclass(**_FROZEN)
class Authenticate(Response):
    authenticator: str
    opcode: ClassVar[Opcode] = Opcode.AUTHENTICATE

    def _write(self, out: Writer, version: int) -> None:
        out.string(self.authenticator, "authenticator")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Authenticate":
        return cls(authenticator=reader.string("authenticator"))


@dataclass(**_FROZEN)
class Supported(Response):
    options: Mapping[str, Sequence[str]] = field(default_factory=dict)
    opcode: ClassVar[Opcode] = Opcode.SUPPORTED

    def _write(self, out: Writer, version: int) -> None:
        out.string_multimap(self.options, "SUPPORTED options")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Supported":
        return cls(options=reader.string_multimap("SUPPORTED options"))


@dataclass(**_FROZEN)
class AuthChallenge(Response):
    token: Optional[bytes] = None
    opcode: ClassVar[Opcode] = Opcode.AUTH_CHALLENGE

    def _write(self, out: Writer, version: int) -> None:
        out.nullable_bytes(self.token, "auth token")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "AuthChallenge":
        return cls(token=reader.nullable_bytes("auth token"))


@dataclass(**_FROZEN)
class AuthSuccess(Response):
    token: Optional[bytes] = None
    opcode: ClassVar[Opcode] = Opcode.AUTH_SUCCESS

    def _write(self, out: Writer, version: int) -> None:
        out.nullable_bytes(self.token, "auth token")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "AuthSuccess":
        return cls(token=reader.nullable_bytes("auth token"))


# --------------------------------------------------------------------------
# RESULT
# --------------------------------------------------------------------------

@dataclass(**_FROZEN)
class ColumnSpec:
    keyspace: str
    table: str
    name: str
    type: CqlType


class _MetaFlag:  # plain ints, as _QueryFlag
    GLOBAL_TABLES_SPEC = 0x01
    HAS_MORE_PAGES = 0x02
    NO_METADATA = 0x04
    METADATA_CHANGED = 0x08  # v5


def _write_columns(out: Writer, columns: Sequence[ColumnSpec], global_spec: bool) -> None:
    if global_spec:
        out.string(columns[0].keyspace, "global keyspace")
        out.string(columns[0].table, "global table")
    for i, column in enumerate(columns):
        if not global_spec:
            out.string(column.keyspace, f"column {i} keyspace")
            out.string(column.table, f"column {i} table")
        out.string(column.name, f"column {i} name")
        write_type_option(out, column.type)


def _read_columns(reader: Reader, count: int, global_spec: bool) -> Tuple[ColumnSpec, ...]:
    if count < 0 or count * 4 > reader.remaining:
        raise RemoteProtocolError(
            f"garbage in {reader.what}: {count} columns declared, {reader.remaining} bytes follow",
            fatal=False,
        )
    keyspace = table = ""
    if global_spec and count:
        keyspace = reader.string("global keyspace")
        table = reader.string("global table")
    columns = []
    for i in range(count):
        if not global_spec:
            keyspace = reader.string(f"column {i} keyspace")
            table = reader.string(f"column {i} table")
        name = reader.string(f"column {i} name")
        columns.append(ColumnSpec(keyspace=keyspace, table=table, name=name, type=read_type_option(reader)))
    return tuple(columns)


def _is_global(columns: Sequence[ColumnSpec]) -> bool:
    return bool(columns) and all(
        c.keyspace == columns[0].keyspace and c.table == columns[0].table for c in columns
    )


@dataclass(**_FROZEN)
class RowsMetadata:
    """<metadata> of a Rows result (spec 4.2.5.2).

    `no_metadata` sends only the column count (the client asked to skip it,
    or knows the columns from its prepared statement).
    """

    columns: Tuple[ColumnSpec, ...] = ()
    paging_state: Optional[bytes] = None
    no_metadata: bool = False
    column_count: Optional[int] = None  # with no_metadata: the count to send
    new_metadata_id: Optional[bytes] = None  # v5

    def __post_init__(self) -> None:
        _check(
            self.column_count is None or self.no_metadata,
            f"column_count={self.column_count} is the count sent with no_metadata=True; "
            f"without it the count is that of the columns ({len(self.columns)})",
        )

    @property
    def count(self) -> int:
        return self.column_count if self.column_count is not None else len(self.columns)

    def write(self, out: Writer, version: int) -> None:
        flags = 0
        global_spec = not self.no_metadata and _is_global(self.columns)
        if global_spec:
            flags |= _MetaFlag.GLOBAL_TABLES_SPEC
        if self.paging_state is not None:
            flags |= _MetaFlag.HAS_MORE_PAGES
        if self.no_metadata:
            flags |= _MetaFlag.NO_METADATA
        if self.new_metadata_id is not None:
            _check(version >= 5, "new_metadata_id needs protocol v5")
            flags |= _MetaFlag.METADATA_CHANGED
        out.int32(int(flags), "metadata flags")
        out.int32(self.count, "columns count")
        if self.paging_state is not None:
            out.nullable_bytes(self.paging_state, "paging state")
        if self.new_metadata_id is not None:
            out.short_bytes(self.new_metadata_id, "new metadata id")
        if not self.no_metadata:
            _write_columns(out, self.columns, global_spec)

    @classmethod
    def read(cls, reader: Reader, version: int) -> "RowsMetadata":
        flags = reader.int32("metadata flags")
        count = reader.int32("columns count")
        paging_state = reader.nullable_bytes("paging state") if flags & _MetaFlag.HAS_MORE_PAGES else None
        new_id = (
            reader.short_bytes("new metadata id")
            if version >= 5 and flags & _MetaFlag.METADATA_CHANGED
            else None
        )
        if flags & _MetaFlag.NO_METADATA:
            if count < 0:
                raise RemoteProtocolError(f"garbage in {reader.what}: columns count {count}", fatal=False)
            return cls(paging_state=paging_state, no_metadata=True, column_count=count, new_metadata_id=new_id)
        columns = _read_columns(reader, count, bool(flags & _MetaFlag.GLOBAL_TABLES_SPEC))
        return cls(columns=columns, paging_state=paging_state, new_metadata_id=new_id)


@dataclass(**_FROZEN)
class PreparedMetadata:
    """<metadata> of the bind markers of a Prepared result (spec 4.2.5.4)."""

    columns: Tuple[ColumnSpec, ...] = ()
    pk_indexes: Tuple[int, ...] = ()  # v4+

    def write(self, out: Writer, version: int) -> None:
        global_spec = _is_global(self.columns)
        out.int32(_MetaFlag.GLOBAL_TABLES_SPEC if global_spec else 0, "metadata flags")
        out.int32(len(self.columns), "columns count")
        if version >= 4:
            out.int32(len(self.pk_indexes), "pk count")
            for index in self.pk_indexes:
                out.short(index, "pk index")
        _write_columns(out, self.columns, global_spec)

    @classmethod
    def read(cls, reader: Reader, version: int) -> "PreparedMetadata":
        flags = reader.int32("metadata flags")
        count = reader.int32("columns count")
        pk_indexes: Tuple[int, ...] = ()
        if version >= 4:
            pk_count = reader.int32("pk count")
            if pk_count < 0 or pk_count * 2 > reader.remaining:
                raise RemoteProtocolError(
                    f"garbage in {reader.what}: pk count {pk_count} in {reader.remaining} bytes",
                    fatal=False,
                )
            pk_indexes = tuple(reader.short("pk index") for _ in range(pk_count))
        columns = _read_columns(reader, count, bool(flags & _MetaFlag.GLOBAL_TABLES_SPEC))
        return cls(columns=columns, pk_indexes=pk_indexes)


class Result(Response):
    """A RESULT response; subclasses are its kinds."""

    opcode: ClassVar[Opcode] = Opcode.RESULT
    kind: ClassVar[int]

    def _write(self, out: Writer, version: int) -> None:
        out.int32(self.kind, "result kind")
        self._write_result(out, version)

    def _write_result(self, out: Writer, version: int) -> None:
        pass

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Result":  # type: ignore[override]
        kind = reader.int32("result kind")
        result_type = _RESULT_KINDS.get(kind)
        if result_type is None:
            raise RemoteProtocolError(
                f"garbage in {reader.what}: unknown result kind 0x{kind:04x}", fatal=False
            )
        return result_type._read_result(reader, version)

    @classmethod
    def _read_result(cls, reader: Reader, version: int) -> "Result":
        return cls()


@dataclass(**_FROZEN)
class VoidResult(Result):
    kind: ClassVar[int] = 0x0001


@dataclass(**_FROZEN)
class RowsResult(Result):
    """Rows: metadata, then each row's cells as raw bytes (None for null)."""

    metadata: RowsMetadata = field(default_factory=RowsMetadata)
    rows: Tuple[Tuple[Optional[bytes], ...], ...] = ()
    kind: ClassVar[int] = 0x0002

    def __post_init__(self) -> None:
        width = self.metadata.count
        # A count of rows of no cells is bounded by no bytes: read() refuses it.
        _check(width > 0 or not self.rows, f"{len(self.rows)} rows of no columns: a row needs a column")
        for i, row in enumerate(self.rows):
            if len(row) != width:
                raise LocalProtocolError(f"row {i} has {len(row)} cells, the metadata declares {width} columns")

    def _write_result(self, out: Writer, version: int) -> None:
        self.metadata.write(out, version)
        out.int32(len(self.rows), "rows count")
        for i, row in enumerate(self.rows):
            for cell in row:
                out.nullable_bytes(cell, f"row {i} cell")

    @classmethod
    def _read_result(cls, reader: Reader, version: int) -> "RowsResult":
        metadata = RowsMetadata.read(reader, version)
        count = reader.int32("rows count")
        width = metadata.count
        # Each cell takes at least its 4-byte length; rows of no cells take
        # nothing, so their count could not be checked against the body.
        if count < 0 or count * width * 4 > reader.remaining or (count and not width):
            raise RemoteProtocolError(
                f"garbage in {reader.what}: {count} rows of {width} cells in "
                f"{reader.remaining} bytes",
                fatal=False,
            )
        rows = tuple(
            tuple(reader.nullable_bytes(f"row {i} cell") for _ in range(width)) for i in range(count)
        )
        return cls(metadata=metadata, rows=rows)


@dataclass(**_FROZEN)
class SetKeyspaceResult(Result):
    keyspace: str
    kind: ClassVar[int] = 0x0003

    def _write_result(self, out: Writer, version: int) -> None:
        out.string(self.keyspace, "keyspace")

    @classmethod
    def _read_result(cls, reader: Reader, version: int) -> "SetKeyspaceResult":
        return cls(keyspace=reader.string("keyspace"))


@dataclass(**_FROZEN)
class PreparedResult(Result):
    query_id: bytes
    bind_metadata: PreparedMetadata = field(default_factory=PreparedMetadata)
    result_metadata: RowsMetadata = field(default_factory=RowsMetadata)
    result_metadata_id: Optional[bytes] = None  # v5
    kind: ClassVar[int] = 0x0004

    def _write_result(self, out: Writer, version: int) -> None:
        out.short_bytes(self.query_id, "prepared id")
        if version >= 5:
            _check(self.result_metadata_id is not None, "a v5 Prepared result needs result_metadata_id")
            out.short_bytes(self.result_metadata_id or b"", "result metadata id")
        self.bind_metadata.write(out, version)
        self.result_metadata.write(out, version)

    @classmethod
    def _read_result(cls, reader: Reader, version: int) -> "PreparedResult":
        query_id = reader.short_bytes("prepared id")
        metadata_id = reader.short_bytes("result metadata id") if version >= 5 else None
        bind = PreparedMetadata.read(reader, version)
        result = RowsMetadata.read(reader, version)
        return cls(query_id=query_id, bind_metadata=bind, result_metadata=result, result_metadata_id=metadata_id)


_SCHEMA_TARGETS = ("KEYSPACE", "TABLE", "TYPE", "FUNCTION", "AGGREGATE")


@dataclass(**_FROZEN)
class SchemaChange:
    """The body of a schema change (a RESULT kind and an EVENT type)."""

    change_type: str  # CREATED, UPDATED, DROPPED
    target: str  # KEYSPACE, TABLE, TYPE, FUNCTION, AGGREGATE
    keyspace: str
    name: Optional[str] = None
    arg_types: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check(
            self.change_type in ("CREATED", "UPDATED", "DROPPED"),
            f"schema change_type must be CREATED, UPDATED or DROPPED, got {self.change_type!r}",
        )
        _check(self.target in _SCHEMA_TARGETS, f"schema change target must be one of {_SCHEMA_TARGETS}, got {self.target!r}")
        _check(
            (self.name is None) == (self.target == "KEYSPACE"),
            f"a {self.target} schema change needs a name exactly when the target is not KEYSPACE",
        )

    def write(self, out: Writer) -> None:
        out.string(self.change_type, "change type")
        out.string(self.target, "target")
        out.string(self.keyspace, "keyspace")
        if self.name is not None:
            out.string(self.name, "name")
        if self.target in ("FUNCTION", "AGGREGATE"):
            out.string_list(self.arg_types, "argument types")

    @classmethod
    def read(cls, reader: Reader) -> "SchemaChange":
        change_type = reader.string("change type")
        target = reader.string("target")
        keyspace = reader.string("keyspace")
        name = None if target == "KEYSPACE" else reader.string("name")
        arg_types: Tuple[str, ...] = ()
        if target in ("FUNCTION", "AGGREGATE"):
            arg_types = tuple(reader.string_list("argument types"))
        try:
            return cls(change_type=change_type, target=target, keyspace=keyspace, name=name, arg_types=arg_types)
        except LocalProtocolError as exc:
            raise RemoteProtocolError(f"garbage in {reader.what}: {exc}", fatal=False) from None


@dataclass(**_FROZEN)
class SchemaChangeResult(Result):
    change: SchemaChange
    kind: ClassVar[int] = 0x0005

    def _write_result(self, out: Writer, version: int) -> None:
        self.change.write(out)

    @classmethod
    def _read_result(cls, reader: Reader, version: int) -> "SchemaChangeResult":
        return cls(change=SchemaChange.read(reader))


_RESULT_KINDS: Dict[int, Type[Result]] = {
    r.kind: r for r in (VoidResult, RowsResult, SetKeyspaceResult, PreparedResult, SchemaChangeResult)
}


# --------------------------------------------------------------------------
# EVENT
# --------------------------------------------------------------------------

_TOPOLOGY_CHANGES = ("NEW_NODE", "REMOVED_NODE", "MOVED_NODE")  # MOVED_NODE: v3 spec 4.2.6


@dataclass(**_FROZEN)
class TopologyChange:
    change: str  # NEW_NODE, REMOVED_NODE, MOVED_NODE
    address: InetAddress
    port: int

    def __post_init__(self) -> None:
        _check(self.change in _TOPOLOGY_CHANGES, f"topology change must be one of {_TOPOLOGY_CHANGES}, got {self.change!r}")


@dataclass(**_FROZEN)
class StatusChange:
    change: str  # UP, DOWN
    address: InetAddress
    port: int

    def __post_init__(self) -> None:
        _check(self.change in ("UP", "DOWN"), f"status change must be UP or DOWN, got {self.change!r}")


_CLIENT_ROUTES_CHANGES = ("UPDATE_NODES",)  # what Scylla 2026.1 sends (and scylla-driver knows)


@dataclass(**_FROZEN)
class ClientRoutesChange:
    """Scylla's CLIENT_ROUTES_CHANGE: rows of system.client_routes changed for
    these (connection id, host id) pairs; the two lists run in parallel (a
    driver re-reads everything when they are empty or of unequal length)."""

    change: str = "UPDATE_NODES"
    connection_ids: Tuple[str, ...] = ()
    host_ids: Tuple[str, ...] = ()  # host ids as text, as on the wire

    def __post_init__(self) -> None:
        _check(self.change in _CLIENT_ROUTES_CHANGES,
               f"client routes change must be one of {_CLIENT_ROUTES_CHANGES}, got {self.change!r}")
        for what, values in (("connection_ids", self.connection_ids), ("host_ids", self.host_ids)):
            _check(isinstance(values, tuple) and all(isinstance(v, str) for v in values),
                   f"client routes change {what} must be a tuple of str, got {values!r}")


@dataclass(**_FROZEN)
class Event(Response):
    """An EVENT pushed on stream -1 to connections that REGISTERed for it."""

    event: Union[TopologyChange, StatusChange, SchemaChange, ClientRoutesChange]
    opcode: ClassVar[Opcode] = Opcode.EVENT

    @property
    def event_type(self) -> str:
        if isinstance(self.event, TopologyChange):
            return "TOPOLOGY_CHANGE"
        if isinstance(self.event, StatusChange):
            return "STATUS_CHANGE"
        if isinstance(self.event, ClientRoutesChange):
            return "CLIENT_ROUTES_CHANGE"
        return "SCHEMA_CHANGE"

    def _write(self, out: Writer, version: int) -> None:
        out.string(self.event_type, "event type")
        if isinstance(self.event, SchemaChange):
            self.event.write(out)
        elif isinstance(self.event, ClientRoutesChange):
            out.string(self.event.change, "change")
            out.string_list(self.event.connection_ids, "connection ids")
            out.string_list(self.event.host_ids, "host ids")
        else:
            out.string(self.event.change, "change")
            out.inet(self.event.address, self.event.port, "node address")

    @classmethod
    def _read(cls, reader: Reader, version: int) -> "Event":
        event_type = reader.string("event type")
        if event_type == "SCHEMA_CHANGE":
            return cls(event=SchemaChange.read(reader))
        if event_type == "CLIENT_ROUTES_CHANGE":
            change = reader.string("change")
            connection_ids = tuple(reader.string_list("connection ids"))
            host_ids = tuple(reader.string_list("host ids"))
            try:
                return cls(event=ClientRoutesChange(change=change, connection_ids=connection_ids, host_ids=host_ids))
            except LocalProtocolError as exc:
                raise RemoteProtocolError(f"garbage in {reader.what}: {exc}", fatal=False) from None
        if event_type in ("TOPOLOGY_CHANGE", "STATUS_CHANGE"):
            change = reader.string("change")
            address, port = reader.inet("node address")
            try:
                if event_type == "TOPOLOGY_CHANGE":
                    return cls(event=TopologyChange(change=change, address=address, port=port))
                return cls(event=StatusChange(change=change, address=address, port=port))
            except LocalProtocolError as exc:
                raise RemoteProtocolError(f"garbage in {reader.what}: {exc}", fatal=False) from None
        raise RemoteProtocolError(
            f"garbage in {reader.what}: unknown event type {event_type!r}", fatal=False
        )


# --------------------------------------------------------------------------
# Decoding by opcode
# --------------------------------------------------------------------------

REQUEST_TYPES: Dict[int, Type[Request]] = {
    m.opcode: m for m in (Startup, Options, Query, Prepare, Execute, Batch, Register, AuthResponse)
}
RESPONSE_TYPES: Dict[int, Type[Response]] = {
    m.opcode: m
    for m in (Error, Ready, Authenticate, Supported, Result, Event, AuthChallenge, AuthSuccess)
}


def decode_message(opcode: int, body: bytes, version: int, *, is_response: bool = False) -> Message:
    """Decode one message body; refuses an opcode of the wrong direction and trailing bytes."""
    table: Mapping[int, Type[Message]] = RESPONSE_TYPES if is_response else REQUEST_TYPES
    message_type = table.get(opcode)
    if message_type is None:
        name = Opcode(opcode).name if opcode in Opcode._value2member_map_ else f"0x{opcode:02x}"
        direction = "response" if is_response else "request"
        raise RemoteProtocolError(
            f"opcode {name} is not a {direction}: a client "
            f"{'receives' if is_response else 'sends'} only "
            f"{', '.join(Opcode(o).name for o in sorted(table))}",
            fatal=False,
        )
    reader = Reader(body, f"{Opcode(opcode).name} body")
    try:
        message = message_type._read(reader, version)
        reader.expect_end()
    except LocalProtocolError as exc:  # a decoded value the message refuses
        raise RemoteProtocolError(f"garbage in {reader.what}: {exc}", fatal=False) from None
    except RemoteProtocolError as exc:
        if exc.fatal:  # a bad body never breaks the framing around it
            raise RemoteProtocolError(str(exc), fatal=False) from None
        raise
    return message

