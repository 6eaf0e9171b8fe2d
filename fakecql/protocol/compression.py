# LZ4 compression as the native protocol uses it: v3/v4 compress each frame
# body ([int] uncompressed length, big-endian, then an LZ4 block); v5
# compresses segment payloads (raw LZ4 blocks, lengths in the segment header).
#
# Strategy: one small object per algorithm with bytes-in/bytes-out methods;
# the declared uncompressed length is checked against the caller's limit
# before anything is allocated, and a block that does not decompress to what
# it declared is the peer's fault (RemoteProtocolError), never lz4's
# exception. Real nodes offer lz4 and drivers pick it when it is offered, so
# fakecql offers it by default.
from __future__ import annotations

import struct
from typing import Dict

import lz4.block

from .errors import RemoteProtocolError

__all__ = ["Lz4", "COMPRESSORS"]

_LENGTH = struct.Struct(">i")


class Lz4:
    name = "lz4"

    def compress_body(self, body: bytes) -> bytes:
        """A v3/v4 frame body: uncompressed length (big-endian [int]), then the block."""
        return _LENGTH.pack(len(body)) + lz4.block.compress(body, store_size=False)

    def decompress_body(self, data: bytes, limit: int) -> bytes:
        if len(data) < 4:
            raise RemoteProtocolError(
                f"compressed frame body of {len(data)} bytes is shorter than its 4-byte length prefix",
                fatal=False,
            )
        (size,) = _LENGTH.unpack_from(data)
        if not 0 <= size <= limit:
            raise RemoteProtocolError(
                f"compressed frame body declares {size} uncompressed bytes; expected 0 to {limit}",
                fatal=False,
            )
        return self.decompress_raw(data[4:], size, "frame body")

    def compress_raw(self, payload: bytes) -> bytes:
        return lz4.block.compress(payload, store_size=False)

    def decompress_raw(self, data: bytes, size: int, what: str = "segment payload") -> bytes:
        if size == 0:
            return b""
        try:
            out = lz4.block.decompress(data, uncompressed_size=size)
        except lz4.block.LZ4BlockError as exc:
            raise RemoteProtocolError(f"LZ4 {what} of {len(data)} bytes does not decompress: {exc}") from None
        if len(out) != size:
            raise RemoteProtocolError(
                f"LZ4 {what} decompressed to {len(out)} bytes, its header declared {size}"
            )
        return out


COMPRESSORS: Dict[str, Lz4] = {"lz4": Lz4()}
