# CQL types: their [option] encoding in result metadata, their names in CQL
# text ("map<text, frozen<list<int>>>"), and the codec of their values.
#
# Strategy: a type is a small frozen object; natives are singletons looked up
# by name or option id; collections, tuples and UDTs hold their element types.
# serialize() takes a Python value and returns the cell bytes, deserialize()
# the reverse. Values are the same in protocol v3, v4 and v5 (v3 made
# collection sizes [int]), so no version is passed. fakecql writes this codec
# itself and never imports a driver's: a driver's encoding bug must show up as
# a mismatch, not be mirrored.
#
# Python values, canonical form (what deserialize returns):
#   ascii/text -> str; bigint, counter, int, smallint, tinyint, varint -> int;
#   blob, custom -> bytes; boolean -> bool; decimal -> decimal.Decimal;
#   double, float -> float; timestamp -> int (ms since the epoch);
#   date -> int (days since the epoch, signed); time -> int (ns since
#   midnight); duration -> Duration; inet -> ipaddress address;
#   uuid, timeuuid -> uuid.UUID; list, set -> list (wire order);
#   map -> dict; tuple -> tuple; UDT -> dict of field name to value.
# serialize() also accepts datetime/date/time objects and any iterable for
# list and set, so tests can write natural values.
from __future__ import annotations

import datetime
import decimal
import ipaddress
import re
import struct
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import LocalProtocolError, RemoteProtocolError
from .wire import Reader, Writer

__all__ = [
    "CqlType",
    "NativeType",
    "ListType",
    "SetType",
    "MapType",
    "TupleType",
    "UserType",
    "CustomType",
    "Duration",
    "NATIVE_TYPES",
    "parse_type",
    "read_type_option",
    "write_type_option",
]

_dataclass_opts: Dict[str, Any] = {"frozen": True}
if sys.version_info >= (3, 10):
    _dataclass_opts["slots"] = True


class CqlType:
    """Base of every CQL type. Subclasses are frozen dataclasses."""

    option_id: ClassVar[int]

    def serialize(self, value: Any) -> bytes:
        raise NotImplementedError

    def deserialize(self, data: bytes) -> Any:
        raise NotImplementedError

    @property
    def cql_name(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.cql_name


# --------------------------------------------------------------------------
# Native types
# --------------------------------------------------------------------------

@dataclass(**_dataclass_opts)
class Duration:
    """A CQL duration: months, days and nanoseconds, each signed, same sign."""

    months: int = 0
    days: int = 0
    nanoseconds: int = 0

    def __post_init__(self) -> None:
        limits = (("months", 2**31), ("days", 2**31), ("nanoseconds", 2**63))
        for name, bound in limits:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not -bound <= value < bound:
                raise LocalProtocolError(
                    f"Duration.{name} must be an integer in [{-bound}, {bound - 1}], got {value!r}",
                    field=name,
                )
        signs = {(v > 0) - (v < 0) for v in (self.months, self.days, self.nanoseconds)} - {0}
        if len(signs) > 1:
            raise LocalProtocolError(
                f"a duration's months, days and nanoseconds must share one sign, got {self!r}"
            )


_EPOCH_DATE = datetime.date(1970, 1, 1)
_EPOCH_DATETIME = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
_NANOS_PER_DAY = 86_400 * 10**9


def _bad(type_name: str, value: Any, expected: str) -> LocalProtocolError:
    return LocalProtocolError(f"cannot serialize {value!r} as {type_name}: expected {expected}")


def _garbage(type_name: str, data: bytes, expected: str) -> RemoteProtocolError:
    shown = data[:16].hex() + ("..." if len(data) > 16 else "")
    return RemoteProtocolError(
        f"garbage in a {type_name} value: {len(data)} bytes (0x{shown}); expected {expected}",
        fatal=False,
    )


def _integer(value: Any, type_name: str, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(type_name, value, f"an int of {bits} bits")
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise _bad(type_name, value, f"an int in [{-(2 ** (bits - 1))}, {2 ** (bits - 1) - 1}]")
    return value


def _fixed_int(type_name: str, st: struct.Struct) -> Tuple[Callable[[Any], bytes], Callable[[bytes], Any]]:
    bits = st.size * 8

    def ser(value: Any) -> bytes:
        return st.pack(_integer(value, type_name, bits))

    def de(data: bytes) -> Any:
        if len(data) != st.size:
            raise _garbage(type_name, data, f"exactly {st.size} bytes")
        return st.unpack(data)[0]

    return ser, de


def _varint_ser(value: int) -> bytes:
    if value == 0:
        return b"\x00"
    length = (value + (value < 0)).bit_length() // 8 + 1
    return value.to_bytes(length, "big", signed=True)


def _varint_de(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _ser_varint(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad("varint", value, "an int")
    return _varint_ser(value)


def _de_varint(data: bytes) -> int:
    if not data:
        raise _garbage("varint", data, "at least 1 byte")
    return _varint_de(data)


def _ser_text(value: Any) -> bytes:
    if not isinstance(value, str):
        raise _bad("text", value, "a str")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise _bad("text", value, f"a str encodable as UTF-8 ({exc.reason})") from None


def _de_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _garbage("text", data, "UTF-8") from None


def _ser_ascii(value: Any) -> bytes:
    if not isinstance(value, str) or not value.isascii():
        raise _bad("ascii", value, "a str of ASCII characters")
    return value.encode("ascii")


def _de_ascii(data: bytes) -> str:
    if not data.isascii():
        raise _garbage("ascii", data, "ASCII characters only")
    return data.decode("ascii")


def _ser_blob(value: Any) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise _bad("blob", value, "bytes")
    return bytes(value)


def _ser_boolean(value: Any) -> bytes:
    if not isinstance(value, bool):
        raise _bad("boolean", value, "a bool")
    return b"\x01" if value else b"\x00"


def _de_boolean(data: bytes) -> bool:
    if len(data) != 1:
        raise _garbage("boolean", data, "exactly 1 byte")
    return data != b"\x00"


_DOUBLE = struct.Struct(">d")
_FLOAT = struct.Struct(">f")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")


def _ser_double(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad("double", value, "a float")
    return _DOUBLE.pack(value)


def _de_double(data: bytes) -> float:
    if len(data) != 8:
        raise _garbage("double", data, "exactly 8 bytes")
    return _DOUBLE.unpack(data)[0]


def _ser_float(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad("float", value, "a float")
    try:
        return _FLOAT.pack(value)
    except OverflowError:
        raise _bad("float", value, "a float within single precision range") from None


def _de_float(data: bytes) -> float:
    if len(data) != 4:
        raise _garbage("float", data, "exactly 4 bytes")
    return _FLOAT.unpack(data)[0]


def _ser_decimal(value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, (decimal.Decimal, int)):
        raise _bad("decimal", value, "a decimal.Decimal")
    value = decimal.Decimal(value)
    if not value.is_finite():
        raise _bad("decimal", value, "a finite decimal")
    sign, digits, exponent = value.as_tuple()
    # Through Decimal, not str: int <-> str conversion refuses over 4300 digits.
    unscaled = int(decimal.Decimal((sign, digits, 0)))
    scale = -int(exponent)
    if not -(2**31) <= scale < 2**31:
        raise _bad("decimal", value, "a scale that fits in 32 bits")
    return _INT32.pack(scale) + _varint_ser(unscaled)


def _de_decimal(data: bytes) -> decimal.Decimal:
    if len(data) < 5:
        raise _garbage("decimal", data, "a 4-byte scale then at least 1 byte of varint")
    scale = _INT32.unpack_from(data)[0]
    # Decimal(int) is exact and, unlike str(int), takes any number of digits.
    sign, digits, _ = decimal.Decimal(_varint_de(data[4:])).as_tuple()
    return decimal.Decimal((sign, digits, -scale))


_LONG = struct.Struct(">q")


def _ser_timestamp(value: Any) -> bytes:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - _EPOCH_DATETIME
        millis = (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
        return _LONG.pack(millis)
    return _LONG.pack(_integer(value, "timestamp", 64))


def _de_timestamp(data: bytes) -> int:
    if len(data) != 8:
        raise _garbage("timestamp", data, "exactly 8 bytes")
    return _LONG.unpack(data)[0]


def _ser_date(value: Any) -> bytes:
    if isinstance(value, datetime.datetime):
        value = value.date()
    if isinstance(value, datetime.date):
        value = (value - _EPOCH_DATE).days
    days = _integer(value, "date", 32)
    return _UINT32.pack(days + 2**31)


def _de_date(data: bytes) -> int:
    if len(data) != 4:
        raise _garbage("date", data, "exactly 4 bytes")
    return _UINT32.unpack(data)[0] - 2**31


def _ser_time(value: Any) -> bytes:
    if isinstance(value, datetime.time):
        value = (
            ((value.hour * 60 + value.minute) * 60 + value.second) * 10**9
            + value.microsecond * 1000
        )
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _NANOS_PER_DAY:
        raise _bad("time", value, f"nanoseconds since midnight in [0, {_NANOS_PER_DAY - 1}]")
    return _LONG.pack(value)


def _de_time(data: bytes) -> int:
    if len(data) != 8:
        raise _garbage("time", data, "exactly 8 bytes")
    value = _LONG.unpack(data)[0]
    if not 0 <= value < _NANOS_PER_DAY:
        raise _garbage("time", data, f"nanoseconds since midnight in [0, {_NANOS_PER_DAY - 1}]")
    return value


def _ser_uuid(value: Any) -> bytes:
    if not isinstance(value, uuid.UUID):
        raise _bad("uuid", value, "a uuid.UUID")
    return value.bytes


def _de_uuid(data: bytes) -> uuid.UUID:
    if len(data) != 16:
        raise _garbage("uuid", data, "exactly 16 bytes")
    return uuid.UUID(bytes=data)


def _ser_timeuuid(value: Any) -> bytes:
    if not isinstance(value, uuid.UUID) or value.version != 1:
        raise _bad("timeuuid", value, "a version 1 uuid.UUID")
    return value.bytes


def _de_timeuuid(data: bytes) -> uuid.UUID:
    value = _de_uuid(data)
    if value.version != 1:
        raise _garbage("timeuuid", data, "a version 1 UUID")
    return value


def _ser_inet(value: Any) -> bytes:
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value)
        except ValueError:
            raise _bad("inet", value, "an IPv4 or IPv6 address") from None
    if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise _bad("inet", value, "an ipaddress.IPv4Address or IPv6Address")
    return value.packed


def _de_inet(data: bytes) -> Any:
    if len(data) not in (4, 16):
        raise _garbage("inet", data, "4 or 16 bytes")
    return ipaddress.ip_address(data)


def _vint_ser(value: int) -> bytes:
    """Cassandra's unsigned variable-length integer (the duration encoding)."""
    if value < 0x80:
        return bytes([value])
    size = (value.bit_length() - 1) // 7  # extra bytes needed
    if size >= 8:
        return b"\xff" + value.to_bytes(8, "big")
    raw = value.to_bytes(size + 1, "big")
    first = raw[0] | (0xFF << (8 - size)) & 0xFF
    return bytes([first]) + raw[1:]


def _vint_read(data: bytes, pos: int) -> Tuple[int, int]:
    if pos >= len(data):
        raise _garbage("duration", data, "three vints (months, days, nanoseconds)")
    first = data[pos]
    extra = 8 - (~first & 0xFF).bit_length()  # leading 1 bits: bytes that follow
    if pos + 1 + extra > len(data):
        raise _garbage("duration", data, "three complete vints")
    value = first & (0xFF >> extra)
    for byte in data[pos + 1 : pos + 1 + extra]:
        value = (value << 8) | byte
    return value, pos + 1 + extra


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _ser_duration(value: Any) -> bytes:
    if not isinstance(value, Duration):
        raise _bad("duration", value, "a fakecql Duration")
    return (
        _vint_ser(_zigzag(value.months) & 0xFFFFFFFFFFFFFFFF)
        + _vint_ser(_zigzag(value.days) & 0xFFFFFFFFFFFFFFFF)
        + _vint_ser(_zigzag(value.nanoseconds) & 0xFFFFFFFFFFFFFFFF)
    )


def _de_duration(data: bytes) -> Duration:
    months, pos = _vint_read(data, 0)
    days, pos = _vint_read(data, pos)
    nanos, pos = _vint_read(data, pos)
    if pos != len(data):
        raise _garbage("duration", data, "exactly three vints")
    try:
        return Duration(
            months=_unzigzag(months), days=_unzigzag(days), nanoseconds=_unzigzag(nanos)
        )
    except LocalProtocolError as exc:
        raise _garbage("duration", data, str(exc)) from None


@dataclass(**_dataclass_opts)
class NativeType(CqlType):
    """A type with a fixed option id and no parameters (int, text, ...)."""

    name: str
    option_id: int  # type: ignore[misc]
    _ser: Callable[[Any], bytes] = field(repr=False, compare=False)
    _de: Callable[[bytes], Any] = field(repr=False, compare=False)

    @property
    def cql_name(self) -> str:
        return self.name

    def serialize(self, value: Any) -> bytes:
        return self._ser(value)

    def deserialize(self, data: bytes) -> Any:
        return self._de(bytes(data))


def _native(name: str, option_id: int, ser: Callable[[Any], bytes], de: Callable[[bytes], Any]) -> NativeType:
    return NativeType(name, option_id, ser, de)


_bigint = _fixed_int("bigint", _LONG)
_int = _fixed_int("int", _INT32)
_smallint = _fixed_int("smallint", struct.Struct(">h"))
_tinyint = _fixed_int("tinyint", struct.Struct(">b"))

ASCII = _native("ascii", 0x0001, _ser_ascii, _de_ascii)
BIGINT = _native("bigint", 0x0002, *_bigint)
BLOB = _native("blob", 0x0003, _ser_blob, bytes)
BOOLEAN = _native("boolean", 0x0004, _ser_boolean, _de_boolean)
COUNTER = _native("counter", 0x0005, *_fixed_int("counter", _LONG))
DECIMAL = _native("decimal", 0x0006, _ser_decimal, _de_decimal)
DOUBLE = _native("double", 0x0007, _ser_double, _de_double)
FLOAT = _native("float", 0x0008, _ser_float, _de_float)
INT = _native("int", 0x0009, *_int)
TIMESTAMP = _native("timestamp", 0x000B, _ser_timestamp, _de_timestamp)
UUID = _native("uuid", 0x000C, _ser_uuid, _de_uuid)
TEXT = _native("text", 0x000D, _ser_text, _de_text)
VARINT = _native("varint", 0x000E, _ser_varint, _de_varint)
TIMEUUID = _native("timeuuid", 0x000F, _ser_timeuuid, _de_timeuuid)
INET = _native("inet", 0x0010, _ser_inet, _de_inet)
DATE = _native("date", 0x0011, _ser_date, _de_date)
TIME = _native("time", 0x0012, _ser_time, _de_time)
SMALLINT = _native("smallint", 0x0013, *_smallint)
TINYINT = _native("tinyint", 0x0014, *_tinyint)
DURATION = _native("duration", 0x0015, _ser_duration, _de_duration)

NATIVE_TYPES: Dict[str, NativeType] = {
    t.name: t
    for t in (
        ASCII, BIGINT, BLOB, BOOLEAN, COUNTER, DECIMAL, DOUBLE, FLOAT, INT, TIMESTAMP,
        UUID, TEXT, VARINT, TIMEUUID, INET, DATE, TIME, SMALLINT, TINYINT, DURATION,
    )
}
NATIVE_TYPES["varchar"] = TEXT
_NATIVE_BY_ID: Dict[int, NativeType] = {t.option_id: t for t in NATIVE_TYPES.values()}
# 0x000A was varchar in old protocol versions; servers still send it as text's alias.
_NATIVE_BY_ID[0x000A] = TEXT


# --------------------------------------------------------------------------
# Parameterised types
# --------------------------------------------------------------------------

def _read_elements(data: bytes, what: str) -> List[Optional[bytes]]:
    reader = Reader(data, what)
    try:
        count = reader.int32(f"{what} element count")
        if count < 0:
            raise RemoteProtocolError(f"garbage in a {what} value: negative element count {count}")
        # Each element takes at least its 4-byte length: refuse a count the
        # bytes cannot hold before building anything of that size.
        if count * 4 > reader.remaining:
            raise RemoteProtocolError(
                f"garbage in a {what} value: {count} elements declared, "
                f"only {reader.remaining} bytes follow"
            )
        items = [reader.nullable_bytes(f"{what} element {i}") for i in range(count)]
        reader.expect_end()
    except RemoteProtocolError as exc:
        raise RemoteProtocolError(str(exc), fatal=False) from None
    return items


def _write_elements(items: Sequence[bytes]) -> bytes:
    out = Writer()
    out.int32(len(items))
    for item in items:
        out.nullable_bytes(item)
    return out.getvalue()


def _hashable(value: Any) -> Any:
    """Make a decoded value usable as a dict key (maps keyed by collections)."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, tuple):
        return tuple(_hashable(v) for v in value)
    return value


def _no_null(item: Optional[bytes], what: str) -> bytes:
    if item is None:
        raise RemoteProtocolError(f"garbage in a {what} value: null element", fatal=False)
    return item


@dataclass(**_dataclass_opts)
class ListType(CqlType):
    element: CqlType
    frozen: bool = field(default=False, compare=False)
    option_id: ClassVar[int] = 0x0020

    @property
    def cql_name(self) -> str:
        inner = f"list<{self.element.cql_name}>"
        return f"frozen<{inner}>" if self.frozen else inner

    def serialize(self, value: Any) -> bytes:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise _bad(self.cql_name, value, "a list or other iterable")
        return _write_elements([self.element.serialize(v) for v in value])

    def deserialize(self, data: bytes) -> Any:
        return [
            self.element.deserialize(_no_null(item, self.cql_name))
            for item in _read_elements(bytes(data), self.cql_name)
        ]


@dataclass(**_dataclass_opts)
class SetType(CqlType):
    element: CqlType
    frozen: bool = field(default=False, compare=False)
    option_id: ClassVar[int] = 0x0022

    @property
    def cql_name(self) -> str:
        inner = f"set<{self.element.cql_name}>"
        return f"frozen<{inner}>" if self.frozen else inner

    def serialize(self, value: Any) -> bytes:
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise _bad(self.cql_name, value, "a set, list or other iterable")
        return _write_elements([self.element.serialize(v) for v in value])

    def deserialize(self, data: bytes) -> Any:
        return [
            self.element.deserialize(_no_null(item, self.cql_name))
            for item in _read_elements(bytes(data), self.cql_name)
        ]


# Python's hash of an int, a UUID or an address is no secret: a client can send
# map keys that all hash alike, and a dict of them costs quadratic time (65535
# such keys: minutes). No real client sends more than a few alike by chance.
MAX_KEYS_OF_ONE_HASH = 64


def _refuse_colliding_keys(keys: Sequence[Any], what: str) -> None:
    if len(keys) <= MAX_KEYS_OF_ONE_HASH:
        return
    alike: Dict[int, List[Any]] = {}  # hash -> its distinct keys (a key sent twice is no attack)
    for key in keys:
        same = alike.setdefault(hash(key), [])
        if key not in same:  # at most MAX_KEYS_OF_ONE_HASH comparisons
            same.append(key)
            if len(same) > MAX_KEYS_OF_ONE_HASH:
                raise RemoteProtocolError(
                    f"garbage in a {what} value: more than {MAX_KEYS_OF_ONE_HASH} of its {len(keys)} "
                    f"keys have one hash value (a dict of them takes quadratic time)"
                )


@dataclass(**_dataclass_opts)
class MapType(CqlType):
    key: CqlType
    value: CqlType
    frozen: bool = field(default=False, compare=False)
    option_id: ClassVar[int] = 0x0021

    @property
    def cql_name(self) -> str:
        inner = f"map<{self.key.cql_name}, {self.value.cql_name}>"
        return f"frozen<{inner}>" if self.frozen else inner

    def serialize(self, value: Any) -> bytes:
        if isinstance(value, Mapping):
            pairs = list(value.items())
        elif isinstance(value, (list, tuple)) and all(
            isinstance(p, tuple) and len(p) == 2 for p in value
        ):
            pairs = list(value)
        else:
            raise _bad(self.cql_name, value, "a dict or a list of (key, value) pairs")
        out = Writer()
        out.int32(len(pairs))
        for k, v in pairs:
            out.nullable_bytes(self.key.serialize(k))
            out.nullable_bytes(self.value.serialize(v))
        return out.getvalue()

    def deserialize(self, data: bytes) -> Any:
        data = bytes(data)
        reader = Reader(data, self.cql_name)
        try:
            count = reader.int32(f"{self.cql_name} entry count")
            if count < 0 or count * 8 > reader.remaining:
                raise RemoteProtocolError(
                    f"garbage in a {self.cql_name} value: {count} entries declared, "
                    f"{reader.remaining} bytes follow"
                )
            name = self.cql_name
            pairs = []
            for _ in range(count):
                k = _no_null(reader.nullable_bytes(f"{name} key"), name)
                v = _no_null(reader.nullable_bytes(f"{name} value"), name)
                pairs.append((_hashable(self.key.deserialize(k)), self.value.deserialize(v)))
            reader.expect_end()
            _refuse_colliding_keys([k for k, _ in pairs], name)
            out: Dict[Any, Any] = dict(pairs)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), fatal=False) from None
        return out


@dataclass(**_dataclass_opts)
class TupleType(CqlType):
    elements: Tuple[CqlType, ...]
    option_id: ClassVar[int] = 0x0031

    @property
    def cql_name(self) -> str:
        return f"frozen<tuple<{', '.join(e.cql_name for e in self.elements)}>>"

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, (tuple, list)) or len(value) > len(self.elements):
            raise _bad(self.cql_name, value, f"a tuple of at most {len(self.elements)} items")
        out = Writer()
        for item_type, item in zip(self.elements, value):
            out.nullable_bytes(None if item is None else item_type.serialize(item))
        return out.getvalue()

    def deserialize(self, data: bytes) -> Any:
        reader = Reader(bytes(data), self.cql_name)
        items: List[Any] = []
        try:
            for i, item_type in enumerate(self.elements):
                if not reader.remaining:
                    break  # trailing items may be left out
                raw = reader.nullable_bytes(f"{self.cql_name} item {i}")
                items.append(None if raw is None else item_type.deserialize(raw))
            reader.expect_end()
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), fatal=False) from None
        items.extend([None] * (len(self.elements) - len(items)))
        return tuple(items)


@dataclass(**_dataclass_opts)
class UserType(CqlType):
    keyspace: str
    name: str
    fields: Tuple[Tuple[str, CqlType], ...]
    frozen: bool = field(default=True, compare=False)
    option_id: ClassVar[int] = 0x0030

    @property
    def cql_name(self) -> str:
        return f"frozen<{self.name}>" if self.frozen else self.name

    def serialize(self, value: Any) -> bytes:
        if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
            value = dict(value)  # the (field, value) pairs a map key holds (_hashable)
        if not isinstance(value, Mapping):
            raise _bad(self.cql_name, value, "a dict of field name to value")
        known = {name for name, _ in self.fields}
        unknown = set(value) - known
        if unknown:
            raise _bad(
                self.cql_name, value, f"only the fields {sorted(known)}; unknown {sorted(unknown)}"
            )
        out = Writer()
        for name, field_type in self.fields:
            item = value.get(name)
            out.nullable_bytes(None if item is None else field_type.serialize(item))
        return out.getvalue()

    def deserialize(self, data: bytes) -> Any:
        reader = Reader(bytes(data), self.cql_name)
        out: Dict[str, Any] = {}
        try:
            for name, field_type in self.fields:
                if not reader.remaining:
                    out[name] = None  # trailing fields may be left out
                    continue
                raw = reader.nullable_bytes(f"{self.cql_name} field {name}")
                out[name] = None if raw is None else field_type.deserialize(raw)
            reader.expect_end()
        except RemoteProtocolError as exc:
            raise RemoteProtocolError(str(exc), fatal=False) from None
        return out


@dataclass(**_dataclass_opts)
class CustomType(CqlType):
    """A server-side Java type the protocol only names; values stay bytes."""

    class_name: str
    option_id: ClassVar[int] = 0x0000

    @property
    def cql_name(self) -> str:
        return f"'{self.class_name}'"

    def serialize(self, value: Any) -> bytes:
        return _ser_blob(value)

    def deserialize(self, data: bytes) -> Any:
        return bytes(data)


# --------------------------------------------------------------------------
# [option]: the type as it appears in result and prepared metadata
# --------------------------------------------------------------------------

_MAX_TYPE_DEPTH = 64


def read_type_option(reader: Reader, _depth: int = 0) -> CqlType:
    """Read one [option] naming a type (spec 4.2.5.2)."""
    if _depth > _MAX_TYPE_DEPTH:
        raise RemoteProtocolError(f"garbage in {reader.what}: types nested over {_MAX_TYPE_DEPTH} deep")
    option_id = reader.short("type option id")
    native = _NATIVE_BY_ID.get(option_id)
    if native is not None:
        return native
    if option_id == 0x0000:
        return CustomType(reader.string("custom type class name"))
    if option_id == 0x0020:
        return ListType(read_type_option(reader, _depth + 1))
    if option_id == 0x0022:
        return SetType(read_type_option(reader, _depth + 1))
    if option_id == 0x0021:
        return MapType(read_type_option(reader, _depth + 1), read_type_option(reader, _depth + 1))
    if option_id == 0x0030:
        keyspace = reader.string("UDT keyspace")
        name = reader.string("UDT name")
        count = reader.short("UDT field count")
        fields = tuple(
            (reader.string("UDT field name"), read_type_option(reader, _depth + 1))
            for _ in range(count)
        )
        return UserType(keyspace, name, fields)
    if option_id == 0x0031:
        count = reader.short("tuple item count")
        return TupleType(tuple(read_type_option(reader, _depth + 1) for _ in range(count)))
    raise RemoteProtocolError(
        f"garbage in {reader.what}: unknown type option id 0x{option_id:04x}", fatal=False
    )


def write_type_option(out: Writer, cql_type: CqlType) -> None:
    """Write one [option] naming `cql_type`."""
    out.short(cql_type.option_id, "type option id")
    if isinstance(cql_type, NativeType):
        return
    if isinstance(cql_type, CustomType):
        out.string(cql_type.class_name, "custom type class name")
    elif isinstance(cql_type, (ListType, SetType)):
        write_type_option(out, cql_type.element)
    elif isinstance(cql_type, MapType):
        write_type_option(out, cql_type.key)
        write_type_option(out, cql_type.value)
    elif isinstance(cql_type, UserType):
        out.string(cql_type.keyspace, "UDT keyspace")
        out.string(cql_type.name, "UDT name")
        out.short(len(cql_type.fields), "UDT field count")
        for name, field_type in cql_type.fields:
            out.string(name, "UDT field name")
            write_type_option(out, field_type)
    elif isinstance(cql_type, TupleType):
        out.short(len(cql_type.elements), "tuple item count")
        for element in cql_type.elements:
            write_type_option(out, element)
    else:
        raise LocalProtocolError(f"cannot write a type option for {cql_type!r}")


# --------------------------------------------------------------------------
# CQL type names: "map<text, frozen<list<int>>>"
# --------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(<|>|,)|'([^']*)'|([A-Za-z_][A-Za-z0-9_.]*)|\"((?:[^\"]|\"\")*)\")")


_ONLY_SPACE = re.compile(r"\s*\Z")


def parse_type(text: str, *, user_types: Optional[Mapping[str, UserType]] = None) -> CqlType:
    """Parse a CQL type name as written in CQL and in system_schema.

    `user_types` resolves UDT names (the schema's, by bare name). Raises
    ValueError (LocalProtocolError) naming the position on bad input.
    """
    tokens: List[Tuple[int, str, str]] = []
    pos = 0
    while pos < len(text):
        if _ONLY_SPACE.match(text, pos):  # not text[pos:].strip(): a copy per token
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise LocalProtocolError(f"bad CQL type {text!r}: unexpected character at {pos}")
        punct, custom, word, quoted = match.groups()
        if punct:
            tokens.append((match.start(1), "punct", punct))
        elif custom is not None:
            tokens.append((match.start(2), "custom", custom))
        elif word is not None:
            tokens.append((match.start(3), "word", word.lower()))
        else:
            tokens.append((match.start(4), "word", quoted.replace('""', '"')))
        pos = match.end()

    index = 0

    def fail(expected: str, where: Optional[int] = None) -> LocalProtocolError:
        if where is None:
            where = tokens[index][0] if index < len(tokens) else len(text)
        return LocalProtocolError(f"bad CQL type {text!r}: expected {expected} at position {where}")

    def expect(punct: str) -> None:
        nonlocal index
        if index >= len(tokens) or tokens[index][2] != punct or tokens[index][1] != "punct":
            raise fail(repr(punct))
        index += 1

    def one(depth: int) -> CqlType:
        nonlocal index
        if depth > _MAX_TYPE_DEPTH:
            raise fail("less nesting")
        if index >= len(tokens):
            raise fail("a type name")
        start, kind, word = tokens[index]
        index += 1
        if kind == "custom":
            return CustomType(word)
        if kind != "word":
            raise fail("a type name", start)
        if word == "frozen":
            expect("<")
            inner = one(depth + 1)
            expect(">")
            if isinstance(inner, (ListType, SetType, MapType, UserType)):
                return _with_frozen(inner)
            return inner
        if word in ("list", "set"):
            expect("<")
            element = one(depth + 1)
            expect(">")
            return ListType(element) if word == "list" else SetType(element)
        if word == "map":
            expect("<")
            key = one(depth + 1)
            expect(",")
            value = one(depth + 1)
            expect(">")
            return MapType(key, value)
        if word == "tuple":
            expect("<")
            items = [one(depth + 1)]
            while index < len(tokens) and tokens[index][2] == ",":
                index += 1
                items.append(one(depth + 1))
            expect(">")
            return TupleType(tuple(items))
        if word in NATIVE_TYPES:
            return NATIVE_TYPES[word]
        if user_types and word in user_types:
            return _with_frozen(user_types[word], frozen=False)
        raise fail(f"a known type name, not {word!r}", start)

    result = one(0)
    if index != len(tokens):
        raise fail("the end of the type")
    return result


def _with_frozen(cql_type: CqlType, frozen: bool = True) -> CqlType:
    if isinstance(cql_type, ListType):
        return ListType(cql_type.element, frozen)
    if isinstance(cql_type, SetType):
        return SetType(cql_type.element, frozen)
    if isinstance(cql_type, MapType):
        return MapType(cql_type.key, cql_type.value, frozen)
    if isinstance(cql_type, UserType):
        return UserType(cql_type.keyspace, cql_type.name, cql_type.fields, frozen)
    return cql_type

