# Body primitives of the native protocol (spec section 3: [int], [short],
# [string], [bytes], [string multimap], [inet], ...).
#
# Strategy: a Reader walks one frame body that is already whole in memory and
# checks every length against what is left before it slices, so a truncated
# or lying body raises RemoteProtocolError naming the field, never IndexError
# or struct.error, and a declared length can never make us allocate more than
# the body we already hold. A Writer appends to one bytearray. Neither knows
# anything of frames, sockets or asyncio.
from __future__ import annotations

import ipaddress
import struct
import uuid
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import LocalProtocolError, RemoteProtocolError

__all__ = ["Reader", "Writer", "UNSET", "Unset", "InetAddress"]

_BYTE = struct.Struct(">B")
_SHORT = struct.Struct(">H")
_SSHORT = struct.Struct(">h")
_INT = struct.Struct(">i")
_UINT = struct.Struct(">I")
_LONG = struct.Struct(">q")

InetAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class Unset:
    """The 'unset' bound value of protocol v4+ ([value] with length -2)."""

    _instance: Optional["Unset"] = None

    def __new__(cls) -> "Unset":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


UNSET = Unset()


class Reader:
    """Reads primitives from one frame body, bounds-checked."""

    __slots__ = ("_buf", "pos", "what")

    def __init__(self, buf: Union[bytes, bytearray, memoryview], what: str = "body") -> None:
        self._buf = bytes(buf)
        self.pos = 0
        self.what = what

    # -- raw access ---------------------------------------------------------
    @property
    def remaining(self) -> int:
        return len(self._buf) - self.pos

    def _take(self, n: int, field: str) -> bytes:
        if n < 0:
            raise RemoteProtocolError(
                f"truncated {self.what}: {field} has negative length {n}"
            )
        end = self.pos + n
        if end > len(self._buf):
            raise RemoteProtocolError(
                f"truncated {self.what}: {field} needs {n} bytes at offset "
                f"{self.pos}, only {len(self._buf) - self.pos} left"
            )
        chunk = self._buf[self.pos : end]
        self.pos = end
        return chunk

    def _unpack(self, st: struct.Struct, field: str) -> int:
        end = self.pos + st.size
        if end > len(self._buf):
            raise RemoteProtocolError(
                f"truncated {self.what}: {field} needs {st.size} bytes at offset "
                f"{self.pos}, only {len(self._buf) - self.pos} left"
            )
        (value,) = st.unpack_from(self._buf, self.pos)
        self.pos = end
        return value

    def raw(self, n: int, field: str = "bytes") -> bytes:
        return self._take(n, field)

    def rest(self) -> bytes:
        chunk = self._buf[self.pos :]
        self.pos = len(self._buf)
        return chunk

    def expect_end(self) -> None:
        """Refuse trailing bytes: a body longer than its message is garbage."""
        if self.pos != len(self._buf):
            raise RemoteProtocolError(
                f"garbage in {self.what}: {len(self._buf) - self.pos} unexpected "
                f"trailing bytes after offset {self.pos}"
            )

    # -- fixed-size primitives ------------------------------------------------
    def byte(self, field: str = "[byte]") -> int:
        return self._unpack(_BYTE, field)

    def short(self, field: str = "[short]") -> int:
        return self._unpack(_SHORT, field)

    def signed_short(self, field: str = "[short]") -> int:
        return self._unpack(_SSHORT, field)

    def int32(self, field: str = "[int]") -> int:
        return self._unpack(_INT, field)

    def uint32(self, field: str = "[int]") -> int:
        return self._unpack(_UINT, field)

    def long(self, field: str = "[long]") -> int:
        return self._unpack(_LONG, field)

    def uuid_value(self, field: str = "[uuid]") -> uuid.UUID:
        return uuid.UUID(bytes=self._take(16, field))

    # -- length-prefixed primitives -------------------------------------------
    def _decode_utf8(self, raw: bytes, field: str) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(
                f"garbage in {self.what}: {field} is not valid UTF-8 ({exc.reason} "
                f"at byte {exc.start})"
            ) from None

    def string(self, field: str = "[string]") -> str:
        n = self.short(field + " length")
        return self._decode_utf8(self._take(n, field), field)

    def long_string(self, field: str = "[long string]") -> str:
        n = self.int32(field + " length")
        return self._decode_utf8(self._take(n, field), field)

    def nullable_bytes(self, field: str = "[bytes]") -> Optional[bytes]:
        n = self.int32(field + " length")
        if n < 0:
            return None
        return self._take(n, field)

    def value(self, field: str = "[value]") -> Union[bytes, None, Unset]:
        n = self.int32(field + " length")
        if n == -1:
            return None
        if n == -2:
            return UNSET
        if n < 0:
            raise RemoteProtocolError(
                f"garbage in {self.what}: {field} has length {n}; expected >= -2"
            )
        return self._take(n, field)

    def short_bytes(self, field: str = "[short bytes]") -> bytes:
        n = self.short(field + " length")
        return self._take(n, field)

    def string_list(self, field: str = "[string list]") -> List[str]:
        n = self.short(field + " count")
        return [self.string(f"{field}[{i}]") for i in range(n)]

    def string_map(self, field: str = "[string map]") -> Dict[str, str]:
        n = self.short(field + " count")
        out: Dict[str, str] = {}
        for i in range(n):
            key = self.string(f"{field} key {i}")
            out[key] = self.string(f"{field}[{key!r}]")
        return out

    def string_multimap(self, field: str = "[string multimap]") -> Dict[str, List[str]]:
        n = self.short(field + " count")
        out: Dict[str, List[str]] = {}
        for i in range(n):
            key = self.string(f"{field} key {i}")
            out[key] = self.string_list(f"{field}[{key!r}]")
        return out

    def bytes_map(self, field: str = "[bytes map]") -> Dict[str, Optional[bytes]]:
        n = self.short(field + " count")
        out: Dict[str, Optional[bytes]] = {}
        for i in range(n):
            key = self.string(f"{field} key {i}")
            out[key] = self.nullable_bytes(f"{field}[{key!r}]")
        return out

    def inetaddr(self, field: str = "[inetaddr]") -> InetAddress:
        size = self.byte(field + " size")
        if size not in (4, 16):
            raise RemoteProtocolError(
                f"garbage in {self.what}: {field} address size is {size}; expected 4 or 16"
            )
        return ipaddress.ip_address(self._take(size, field))

    def inet(self, field: str = "[inet]") -> Tuple[InetAddress, int]:
        address = self.inetaddr(field)
        return address, self.int32(field + " port")


class Writer:
    """Appends primitives to one bytearray; refuses values the wire cannot hold."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def getvalue(self) -> bytes:
        return bytes(self.buf)

    def raw(self, data: Union[bytes, bytearray, memoryview]) -> "Writer":
        self.buf += data
        return self

    @staticmethod
    def _range(value: int, lo: int, hi: int, field: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise LocalProtocolError(
                f"{field} must be an integer in [{lo}, {hi}], got {value!r}", field=field
            )

    def byte(self, value: int, field: str = "[byte]") -> "Writer":
        self._range(value, 0, 0xFF, field)
        self.buf += _BYTE.pack(value)
        return self

    def short(self, value: int, field: str = "[short]") -> "Writer":
        self._range(value, 0, 0xFFFF, field)
        self.buf += _SHORT.pack(value)
        return self

    def signed_short(self, value: int, field: str = "[short]") -> "Writer":
        self._range(value, -0x8000, 0x7FFF, field)
        self.buf += _SSHORT.pack(value)
        return self

    def int32(self, value: int, field: str = "[int]") -> "Writer":
        self._range(value, -(2**31), 2**31 - 1, field)
        self.buf += _INT.pack(value)
        return self

    def uint32(self, value: int, field: str = "[int]") -> "Writer":
        self._range(value, 0, 2**32 - 1, field)
        self.buf += _UINT.pack(value)
        return self

    def long(self, value: int, field: str = "[long]") -> "Writer":
        self._range(value, -(2**63), 2**63 - 1, field)
        self.buf += _LONG.pack(value)
        return self

    def uuid_value(self, value: uuid.UUID, field: str = "[uuid]") -> "Writer":
        if not isinstance(value, uuid.UUID):
            raise LocalProtocolError(f"{field} must be a uuid.UUID, got {value!r}", field=field)
        self.buf += value.bytes
        return self

    def _encoded(self, value: str, field: str) -> bytes:
        if not isinstance(value, str):
            raise LocalProtocolError(f"{field} must be a str, got {value!r}", field=field)
        return value.encode("utf-8")

    def string(self, value: str, field: str = "[string]") -> "Writer":
        raw = self._encoded(value, field)
        self.short(len(raw), field + " length")
        self.buf += raw
        return self

    def long_string(self, value: str, field: str = "[long string]") -> "Writer":
        raw = self._encoded(value, field)
        self.int32(len(raw), field + " length")
        self.buf += raw
        return self

    def nullable_bytes(self, value: Optional[Union[bytes, bytearray, memoryview]], field: str = "[bytes]") -> "Writer":
        if value is None:
            self.buf += _INT.pack(-1)
            return self
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"{field} must be bytes or None, got {value!r}", field=field)
        self.int32(len(value), field + " length")
        self.buf += value
        return self

    def value(self, value: Union[bytes, None, Unset], field: str = "[value]") -> "Writer":
        if value is UNSET:
            self.buf += _INT.pack(-2)
            return self
        return self.nullable_bytes(value, field)  # type: ignore[arg-type]

    def short_bytes(self, value: Union[bytes, bytearray], field: str = "[short bytes]") -> "Writer":
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"{field} must be bytes, got {value!r}", field=field)
        self.short(len(value), field + " length")
        self.buf += value
        return self

    def string_list(self, values: Sequence[str], field: str = "[string list]") -> "Writer":
        self.short(len(values), field + " count")
        for i, item in enumerate(values):
            self.string(item, f"{field}[{i}]")
        return self

    def string_map(self, values: Mapping[str, str], field: str = "[string map]") -> "Writer":
        self.short(len(values), field + " count")
        for key, item in values.items():
            self.string(key, f"{field} key")
            self.string(item, f"{field}[{key!r}]")
        return self

    def string_multimap(
        self, values: Mapping[str, Sequence[str]], field: str = "[string multimap]"
    ) -> "Writer":
        self.short(len(values), field + " count")
        for key, items in values.items():
            self.string(key, f"{field} key")
            self.string_list(items, f"{field}[{key!r}]")
        return self

    def bytes_map(
        self, values: Mapping[str, Optional[bytes]], field: str = "[bytes map]"
    ) -> "Writer":
        self.short(len(values), field + " count")
        for key, item in values.items():
            self.string(key, f"{field} key")
            self.nullable_bytes(item, f"{field}[{key!r}]")
        return self

    def inetaddr(self, address: InetAddress, field: str = "[inetaddr]") -> "Writer":
        if not isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise LocalProtocolError(
                f"{field} must be an ipaddress.IPv4Address or IPv6Address, got {address!r}",
                field=field,
            )
        packed = address.packed
        self.buf += _BYTE.pack(len(packed))
        self.buf += packed
        return self

    def inet(self, address: InetAddress, port: int, field: str = "[inet]") -> "Writer":
        self.inetaddr(address, field)
        return self.int32(port, field + " port")

