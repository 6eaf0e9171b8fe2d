# The Murmur3 token of a partition key, as Cassandra's and Scylla's
# Murmur3Partitioner compute it: the first 64 bits of MurmurHash3_x64_128
# (seed 0) of the serialized routing key, as a signed 64-bit integer.
#
# Strategy: a plain transcription of the published algorithm in Python's
# unbounded integers, masked to 64 bits after every step that could carry.
# Two details are Cassandra's and not the reference C code's: the bytes of
# the tail (the last len % 16) are read as SIGNED bytes (Java's byte,
# sign-extended before the shift), and the one token no range may end on,
# -2**63, is turned into 2**63 - 1.
#
# Rules: pure functions, no I/O, no dependency (the drivers' own murmur3 is
# used only by the tests, to check this one).
from __future__ import annotations

__all__ = ["MIN_TOKEN", "MAX_TOKEN", "murmur3_token"]

MIN_TOKEN = -(1 << 63)
MAX_TOKEN = (1 << 63) - 1

_MASK = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _fmix(k: int) -> int:
    """The finalization mix: every input bit affects every output bit."""
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _MASK
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _MASK
    k ^= k >> 33
    return k


def _mix_k1(k1: int) -> int:
    return (_rotl((k1 * _C1) & _MASK, 31) * _C2) & _MASK


def _mix_k2(k2: int) -> int:
    return (_rotl((k2 * _C2) & _MASK, 33) * _C1) & _MASK


def _tail_word(tail: bytes) -> int:
    """Up to 8 tail bytes, little-endian, each sign-extended (Cassandra's reading)."""
    word = 0
    for i, byte in enumerate(tail):
        signed = byte - 256 if byte >= 128 else byte
        word ^= (signed << (8 * i)) & _MASK
    return word


def murmur3_token(key: bytes) -> int:
    """The Murmur3Partitioner token of a serialized partition key (a signed 64-bit int)."""
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError(f"murmur3_token takes the serialized routing key as bytes, got {type(key).__name__}")
    data = bytes(key)
    length = len(data)
    h1 = h2 = 0
    blocks = length // 16
    for i in range(blocks):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        h1 ^= _mix_k1(k1)
        h1 = (_rotl(h1, 27) + h2) & _MASK
        h1 = (h1 * 5 + 0x52DCE729) & _MASK
        h2 ^= _mix_k2(k2)
        h2 = (_rotl(h2, 31) + h1) & _MASK
        h2 = (h2 * 5 + 0x38495AB5) & _MASK
    tail = data[16 * blocks:]
    if len(tail) > 8:
        h2 ^= _mix_k2(_tail_word(tail[8:]))
    if tail:
        h1 ^= _mix_k1(_tail_word(tail[:8]))
    h1 ^= length
    h2 ^= length
    h1 = (h1 + h2) & _MASK
    h2 = (h2 + h1) & _MASK
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _MASK
    token = h1 - (1 << 64) if h1 >= (1 << 63) else h1
    return MAX_TOKEN if token == MIN_TOKEN else token
