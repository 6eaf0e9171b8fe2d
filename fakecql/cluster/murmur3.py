# Cassandra's Murmur3Partitioner token: the first 64 bits of MurmurHash3
# x64_128 (seed 0) of a partition key's bytes, as a signed 64-bit integer.
#
# Cassandra's variant differs from the reference hash in one place: the tail
# bytes (the last len % 16) are read as *signed* Java bytes, so a tail byte
# >= 0x80 is sign-extended before it is shifted in. The token
# Long.MIN_VALUE is reserved (it is the ring's minimum), so a hash equal to
# it becomes Long.MAX_VALUE. Pure Python, no I/O; written from the algorithm,
# checked against known vectors and the drivers' own implementation in
# tests/unit/cluster/test_murmur3.py.
from __future__ import annotations

__all__ = ["murmur3_token", "MIN_TOKEN", "MAX_TOKEN"]

MIN_TOKEN = -(1 << 63)
MAX_TOKEN = (1 << 63) - 1

_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def _signed(value: int) -> int:
    return value - (1 << 64) if value & (1 << 63) else value


def murmur3_token(key: bytes) -> int:
    """The Murmur3Partitioner token of a routing key (a partition key's serialized bytes)."""
    data = bytes(key)
    length = len(data)
    blocks = length // 16
    h1 = h2 = 0
    for i in range(blocks):
        k1 = int.from_bytes(data[i * 16 : i * 16 + 8], "little")
        k2 = int.from_bytes(data[i * 16 + 8 : i * 16 + 16], "little")
        k1 = (k1 * _C1) & _MASK
        k1 = _rotl(k1, 31)
        k1 = (k1 * _C2) & _MASK
        h1 ^= k1
        h1 = _rotl(h1, 27)
        h1 = (h1 + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        k2 = (k2 * _C2) & _MASK
        k2 = _rotl(k2, 33)
        k2 = (k2 * _C1) & _MASK
        h2 ^= k2
        h2 = _rotl(h2, 31)
        h2 = (h2 + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[blocks * 16 :]
    k1 = k2 = 0
    # Each tail byte as a signed Java byte, sign-extended to 64 bits, then shifted.
    for i in range(len(tail) - 1, -1, -1):
        byte = tail[i] - 256 if tail[i] >= 0x80 else tail[i]
        part = (byte << ((i % 8) * 8)) & _MASK
        if i >= 8:
            k2 ^= part
        else:
            k1 ^= part
    if len(tail) > 8:
        k2 = (k2 * _C2) & _MASK
        k2 = _rotl(k2, 33)
        k2 = (k2 * _C1) & _MASK
        h2 ^= k2
    if tail:
        k1 = (k1 * _C1) & _MASK
        k1 = _rotl(k1, 31)
        k1 = (k1 * _C2) & _MASK
        h1 ^= k1
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    token = _signed(h1)
    return MAX_TOKEN if token == MIN_TOKEN else token
