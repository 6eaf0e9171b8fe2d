# Every parser of client input, held to linear time: the CQL text reader
# (fakecql/cql.py), the message decoder, the frame and segment readers, LZ4
# and the value codec of collections, each on the worst inputs found for it
# (long runs of suffixes, unterminated quotes, huge IN lists, thousands of
# values or statements, bytes trickled one at a time, map keys of equal
# hash, ...).
#
# Strategy: each case builds its input at 1 KiB, 16 KiB, 128 KiB and 1 MiB
# and compares the cost per byte at each size with the cost per byte at
# 1 KiB, measured in the same test. A linear parser's per-byte cost stays
# within a small factor (allocation, caches); a quadratic one's grows 16x
# by 16 KiB and 1024x by 1 MiB. SLACK sits far from both. Sizes go up in
# order and a case stops at the first size over the bound, so a quadratic
# parser fails in seconds instead of running for hours.
#
# Rules: ratios, never absolute times. The time is this process's CPU time
# (time.process_time: other pytest-xdist workers on the same cores do not
# count), garbage collection is off while timing, each figure is the
# minimum of several runs, and small inputs are repeated until one run is
# long enough to measure. Every parser here is fakecql's own: one found
# super-linear is fixed, never marked xfail.
from __future__ import annotations

import dataclasses
import functools
import gc
import ipaddress
import math
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import pytest

from fakecql import cql
from fakecql.node import Node, NodeSession
from fakecql.protocol.compression import Lz4
from fakecql.protocol.errors import RemoteProtocolError
from fakecql.protocol.frames import FrameReader, SegmentReader, encode_frame, encode_segments
from fakecql.protocol.messages import (
    AuthResponse,
    Batch,
    BatchStatement,
    Error,
    Execute,
    Prepare,
    Query,
    QueryParameters,
    Register,
    Startup,
    decode_message,
)
from fakecql.protocol.types import NATIVE_TYPES, CqlType, ListType, UserType, parse_type

KiB = 1024
SIZES = (KiB, 16 * KiB, 128 * KiB, 1024 * KiB)
# The bound on (per-byte cost at a size) / (per-byte cost at 1 KiB). Linear
# parsers measure 0.01 to 2 here, on a loaded two-core machine too;
# quadratic ones over 10 by 16 KiB.
SLACK = 8.0
_RUN_AT_LEAST = 0.01  # CPU seconds of one timed run: small inputs are parsed many times a run
_ROUNDS = 3  # timed runs per size; 1 more than the first when one parse takes over _LONG
_LONG = 0.05


@dataclass(frozen=True)
class Case:
    """One parser on one shape: `make(n)` builds an input standing for n
    bytes, `parse(input)` is what is timed.

    The cost is divided by the input's length (a str, bytes, or the body of
    an (opcode, version, body) triple), or by n where `by_nominal_size`: a
    compressed input stands for what it decompresses to.
    """

    name: str
    parse: Callable[[Any], Any]
    make: Callable[[int], Any]
    sizes: Sequence[int] = SIZES
    by_nominal_size: bool = False


def _cost(parse: Callable[[Any], Any], data: Any) -> float:
    """CPU seconds of one parse(data): the least, over a few timed runs, of
    enough calls to last _RUN_AT_LEAST; a first untimed call warms up and
    says how many calls that is (it counts itself when one call is enough)."""
    clock = time.process_time
    gc.collect()
    gc.disable()
    try:
        start = clock()
        parse(data)
        first = clock() - start
        calls = max(1, min(10_000, math.ceil(_RUN_AT_LEAST / max(first, 1e-7))))
        best = first if calls == 1 else math.inf
        for _ in range(_ROUNDS if first < _LONG else 1):
            start = clock()
            for _ in range(calls):
                parse(data)
            best = min(best, (clock() - start) / calls)
        return best
    finally:
        gc.enable()


def _length(data: Any) -> int:
    if isinstance(data, tuple):  # (opcode, version, body)
        data = data[-1]
    return len(data)


def per_byte_growth(case: Case, slack: float = SLACK) -> List[Tuple[int, float]]:
    """(size, per-byte cost there / per-byte cost at the first size), size
    by size in order, stopping after the first one over `slack`."""
    base: Optional[float] = None
    growth: List[Tuple[int, float]] = []
    for n in case.sizes:
        data = case.make(n)
        per_byte = _cost(case.parse, data) / (n if case.by_nominal_size else _length(data))
        if base is None:
            base = per_byte
        growth.append((n, per_byte / base))
        if per_byte / base > slack:
            break
    return growth


def assert_linear(case: Case) -> None:
    growth = per_byte_growth(case)
    shown = ", ".join(f"{n // KiB} KiB: x{ratio:.2f}" for n, ratio in growth)
    assert all(ratio <= SLACK for _, ratio in growth), (
        f"{case.name} is not linear: its cost per byte grows past x{SLACK:g} "
        f"its cost per byte at {case.sizes[0] // KiB} KiB ({shown})"
    )


def _params(cases: Sequence[Case]) -> List[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


# ---- the CQL text reader (fakecql/cql.py) ---------------------------------------


def _rep(unit: str, n: int, head: str = "SELECT * FROM t", tail: str = "") -> str:
    """`head`, `unit` repeated, `tail`: about n characters."""
    return head + unit * max(1, (n - len(head) - len(tail)) // len(unit)) + tail


def _listed(item: Callable[[int], str], n: int, head: str, tail: str, sep: str = ", ") -> str:
    """`head`, item(0), item(1), ... joined by `sep`, `tail`: about n characters."""
    items: List[str] = []
    size = len(head) + len(tail)
    while size < n:
        items.append(item(len(items)))
        size += len(items[-1]) + len(sep)
    return head + sep.join(items) + tail


def _insert(n: int) -> str:
    count = n // 4
    return "INSERT INTO t (" + ",".join(["c"] * count) + ") VALUES (" + ",".join(["?"] * count) + ")"


_IN = "SELECT * FROM t WHERE k IN ("
TEXT_SHAPES = {
    # suffixes normalize_query strips, many, then something that is none
    "semicolons-then-word": lambda n: _rep(" ;", n, tail=" x"),
    "semicolons": lambda n: _rep(" ;", n),
    "timeouts": lambda n: _rep(" USING TIMEOUT 1", n),
    "timeouts-then-word": lambda n: _rep(" USING TIMEOUT 1", n, tail=" x"),
    "all-suffixes": lambda n: _rep(" ALLOW FILTERING BYPASS CACHE USING TIMEOUT 1h30m ;", n),
    "timeout-digits-then-letter": lambda n: _rep("1", n, head="SELECT * FROM t USING TIMEOUT ", tail="x"),
    "timeout-units-then-letter": lambda n: _rep("1h", n, head="SELECT * FROM t USING TIMEOUT ", tail="5x"),
    "bypass-then-word": lambda n: _rep(" BYPASS CACHE", n, tail=" x"),
    "quoted-semicolons": lambda n: _rep(" 'x' ;", n),
    # quotes: unterminated, escaped, many
    "quote-letter-pairs": lambda n: _rep("'a", n, head=""),
    "unterminated-after-escapes": lambda n: _rep("''", n, head="SELECT * FROM t WHERE k = '"),
    "unterminated-string": lambda n: _rep("a ", n, head="SELECT * FROM t WHERE k = 'x"),
    "unterminated-name": lambda n: _rep("a ", n, head='SELECT "x'),
    "strings-with-spaces": lambda n: _listed(lambda i: "'a  b'", n, _IN, ")"),
    "strings-and-nul": lambda n: _listed(lambda i: "'a\0  b'", n, _IN, ")"),
    "whitespace-runs": lambda n: _rep(" \t\n ", n, head="SELECT", tail="* FROM t"),
    # long lists and long tokens
    "in-literals": lambda n: _listed(lambda i: "1", n, _IN, ")"),
    "in-distinct-literals": lambda n: _listed(str, n, _IN, ")"),
    "in-markers": lambda n: _listed(lambda i: "?", n, _IN, ")", sep=","),
    "in-named-markers": lambda n: _listed(lambda i: f":m{i}", n, _IN, ")"),
    "columns": lambda n: _listed(lambda i: "c", n, "SELECT ", " FROM t"),
    "distinct-aliased-columns": lambda n: _listed(lambda i: f"c{i} AS a{i}", n, "SELECT ", " FROM t"),
    "insert-columns-and-values": _insert,
    "where-conditions": lambda n: _listed(lambda i: f"c{i} = ?", n, "SELECT * FROM t WHERE ", "", " AND "),
    "deep-parentheses": lambda n: "SELECT * FROM t WHERE k = " + "(" * (n // 2) + ")" * (n // 2),
    "long-name": lambda n: "SELECT " + "a" * n + " FROM t",
    "long-number": lambda n: "SELECT * FROM t WHERE k = " + "1" * n,
    "long-float-then-e": lambda n: "SELECT * FROM t WHERE k = 1." + "1" * n + "e",
    "long-blob": lambda n: "SELECT * FROM t WHERE k = 0x" + "a" * n,
    "dashes": lambda n: "SELECT * FROM t WHERE k = " + "-" * n,
    "dashes-then-nan": lambda n: "SELECT * FROM t WHERE k = " + "-" * n + "NaN",
    "uuid-prefixes": lambda n: _rep("aaaaaaaa-", n, head="SELECT * FROM t WHERE k = "),
    "colons": lambda n: _rep(":", n, head="UPDATE t SET a = "),
    "update-markers": lambda n: _listed(lambda i: "a = ?", n, "UPDATE t SET ", " WHERE k = ?"),
    "spaces-then-bad-character": lambda n: _rep(" ", n, tail="@"),
    "bad-characters": lambda n: _rep("@?", n),
    "dollar-strings": lambda n: _rep("$$ ? $ $$ ? ", n, head="UPDATE t SET a = "),
    "unterminated-dollars": lambda n: _rep("? $", n, head="UPDATE t SET a = $$"),
}


def _parse_query_uncached(text: str) -> Any:
    """parse_query with its cache emptied first: every call parses."""
    cql.parse_cache.clear()
    return cql.parse_query(text)


# Each parser on the shapes that reach its loops (parse_statement, which
# normalizes, tokenizes, parses and counts markers, on all of them).
_NORMALIZE_SHAPES = (
    "semicolons-then-word", "semicolons", "timeouts", "timeouts-then-word", "all-suffixes",
    "timeout-digits-then-letter", "timeout-units-then-letter", "bypass-then-word", "quoted-semicolons",
    "quote-letter-pairs", "unterminated-after-escapes", "unterminated-string", "unterminated-name",
    "strings-with-spaces", "strings-and-nul", "whitespace-runs",
)
_MARKER_SHAPES = (
    "in-markers", "in-named-markers", "update-markers", "colons", "quote-letter-pairs",
    "unterminated-after-escapes", "unterminated-string", "unterminated-name", "strings-with-spaces",
    "spaces-then-bad-character", "bad-characters", "dollar-strings", "unterminated-dollars",
)
_QUERY_SHAPES = ("semicolons-then-word", "in-markers", "unterminated-string")  # parse_statement's, and a cache
TEXT_PARSERS = {
    "normalize_query": (cql.normalize_query, _NORMALIZE_SHAPES),
    "parse_statement": (cql.parse_statement, tuple(TEXT_SHAPES)),
    "parse_query": (_parse_query_uncached, _QUERY_SHAPES),
    "count_markers": (cql.count_markers, _MARKER_SHAPES),
}


def _text_cases() -> Iterator[Case]:
    for parser_name, (parse, shape_names) in TEXT_PARSERS.items():
        for shape_name in shape_names:
            yield Case(f"{parser_name}-{shape_name}", parse, TEXT_SHAPES[shape_name])


@pytest.mark.parametrize("case", _params(list(_text_cases())))
def test_cql_text_is_read_in_linear_time(case: Case) -> None:
    assert_linear(case)


@pytest.mark.parametrize("shape_name", TEXT_SHAPES)
def test_each_text_shape_is_the_size_asked(shape_name: str) -> None:
    """A shape that ignored n would make its case linear for nothing."""
    for n in (KiB, 128 * KiB):
        assert 0.75 * n <= len(TEXT_SHAPES[shape_name](n)) <= 1.25 * n


# ---- message bodies (fakecql/protocol/messages.py over wire.py) ------------------

_MAX_COUNT = 0xFFFF  # a [short] count


def _count(n: int, each: int) -> int:
    """How many items of `each` bytes make n bytes, within a [short] count."""
    return max(1, min(_MAX_COUNT, n // each))


def _body(message: Any, version: int = 4) -> Tuple[int, int, bytes]:
    return int(message.opcode), version, message.encode_body(version)


def _decode(data: Tuple[int, int, bytes]) -> Any:
    opcode, version, body = data
    return decode_message(opcode, body, version)


def _values(count: int, size: int = 4) -> Tuple[bytes, ...]:
    return (b"v" * size,) * count


def _named(count: int) -> QueryParameters:
    return QueryParameters(values=_values(count), names=tuple(f"n{i:05}" for i in range(count)))


_ID = b"\x01" * 16
MESSAGE_CASES = [
    Case("query-long-text", _decode, lambda n: _body(Query(query="SELECT '" + "a" * n + "'"))),
    Case("query-many-values", _decode,
         lambda n: _body(Query(query="?", parameters=QueryParameters(values=_values(_count(n, 8)))))),
    Case("query-many-nulls", _decode,
         lambda n: _body(Query(query="?", parameters=QueryParameters(values=(None,) * _count(n, 4))))),
    Case("query-many-named-values", _decode, lambda n: _body(Query(query="?", parameters=_named(_count(n, 16))))),
    Case("query-v5-long-keyspace", _decode,
         lambda n: _body(Query(query="?", parameters=QueryParameters(keyspace="k" * min(n, _MAX_COUNT))), 5)),
    Case("prepare-long-text", _decode, lambda n: _body(Prepare(query="SELECT '" + "a" * n + "'"))),
    Case("prepare-v5-with-keyspace", _decode, lambda n: _body(Prepare(query="?" * n, keyspace="ks"), 5)),
    Case("execute-many-values", _decode,
         lambda n: _body(Execute(query_id=_ID, parameters=QueryParameters(values=_values(_count(n, 8)))))),
    Case("execute-v5-big-values", _decode,
         lambda n: _body(Execute(query_id=_ID, parameters=QueryParameters(values=_values(4, n // 4))), 5)),
    Case("batch-many-queries", _decode,
         lambda n: _body(Batch(statements=(BatchStatement(query="INSERT"),) * _count(n, 13)))),
    Case("batch-many-prepared", _decode,
         lambda n: _body(Batch(statements=(BatchStatement(query_id=_ID, values=(b"v",)),) * _count(n, 28)))),
    Case("batch-many-values", _decode,
         lambda n: _body(Batch(statements=(BatchStatement(query="INSERT", values=_values(_count(n, 8))),)))),
    Case("startup-many-options", _decode,
         lambda n: _body(Startup(options={f"OPTION_{i:06}": "v" for i in range(_count(n, 20))}))),
    Case("startup-long-value", _decode,
         lambda n: _body(Startup(options={"CQL_VERSION": "3" * min(n, _MAX_COUNT)}))),
    Case("register-many-events", _decode,
         lambda n: _body(Register(event_types=("SCHEMA_CHANGE",) * _count(n, 15)))),
    Case("auth-response-long-token", _decode, lambda n: _body(AuthResponse(token=b"\0user\0" + b"p" * n))),
]


@pytest.mark.parametrize("case", _params(MESSAGE_CASES))
def test_message_bodies_are_decoded_in_linear_time(case: Case) -> None:
    assert_linear(case)


# ---- frames and segments (fakecql/protocol/frames.py), LZ4 (compression.py) -------


def _frames(n: int, body_size: int) -> bytes:
    """OPTIONS frames (any body) of `body_size` bytes each, about n bytes of them."""
    frame = encode_frame(4, 1, 0x05, b"\0" * body_size, is_response=False)
    return frame * max(1, n // len(frame))


def _read_frames(stream: bytes, piece: int) -> int:
    reader = FrameReader(max_body=len(stream))
    count = 0
    for start in range(0, len(stream), piece):
        reader.feed(stream[start:start + piece])
        while reader.next_frame() is not None:
            count += 1
    return count


def _read_segments(stream: bytes, piece: int, compressor: Optional[Lz4] = None) -> int:
    reader = SegmentReader(compressor)
    count = 0
    for start in range(0, len(stream), piece):
        reader.feed(stream[start:start + piece])
        count += len(reader.payloads())
    return count


def _noise(n: int) -> bytes:
    """Bytes LZ4 finds nothing to match in (a fixed pseudo-random sequence)."""
    state, out = 0x9E3779B9, bytearray()
    while len(out) < n:
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        out += state.to_bytes(8, "big")
    return bytes(out[:n])


def _whole(stream: bytes) -> int:
    return _read_frames(stream, len(stream))


def _trickled(stream: bytes) -> int:
    return _read_frames(stream, 1)


def _whole_segments(stream: bytes) -> int:
    return _read_segments(stream, len(stream))


def _trickled_segments(stream: bytes) -> int:
    return _read_segments(stream, 1)


def _whole_lz4_segments(stream: bytes) -> int:
    return _read_segments(stream, len(stream), Lz4())


_LZ4 = Lz4()
_LIMIT = 2 * SIZES[-1]
_BYTE_BY_BYTE = SIZES[:3]  # a Python call per byte: 1 MiB would only measure that loop longer
FRAMING_CASES = [
    Case("frames-one-big-whole", _whole, lambda n: _frames(n, n)),
    Case("frames-many-empty-whole", _whole, lambda n: _frames(n, 0)),
    Case("frames-one-big-byte-by-byte", _trickled, lambda n: _frames(n, n), _BYTE_BY_BYTE),
    Case("frames-many-empty-byte-by-byte", _trickled, lambda n: _frames(n, 0), _BYTE_BY_BYTE),
    Case("segments-whole", _whole_segments, lambda n: encode_segments(b"\0" * n)),
    Case("segments-many-small-whole", _whole_segments, lambda n: encode_segments(b"\0" * 9) * (n // 19)),
    Case("segments-byte-by-byte", _trickled_segments, lambda n: encode_segments(b"\0" * n), _BYTE_BY_BYTE),
    Case("segments-lz4-zeros", _whole_lz4_segments, lambda n: encode_segments(b"\0" * n, _LZ4),
         by_nominal_size=True),
    Case("segments-lz4-noise", _whole_lz4_segments, lambda n: encode_segments(_noise(n), _LZ4)),
    Case("lz4-body-zeros", lambda body: _LZ4.decompress_body(body, _LIMIT),
         lambda n: _LZ4.compress_body(b"\0" * n), by_nominal_size=True),
    Case("lz4-body-text", lambda body: _LZ4.decompress_body(body, _LIMIT),
         lambda n: _LZ4.compress_body((b"SELECT * FROM t WHERE k = ? " * (n // 28 + 1))[:n]),
         by_nominal_size=True),
    Case("lz4-body-noise", lambda body: _LZ4.decompress_body(body, _LIMIT), lambda n: _LZ4.compress_body(_noise(n))),
]


@pytest.mark.parametrize("case", _params(FRAMING_CASES))
def test_frames_segments_and_lz4_are_read_in_linear_time(case: Case) -> None:
    assert_linear(case)


# ---- collection values (fakecql/protocol/types.py) ------------------------------


def _elements(items: Sequence[Optional[bytes]]) -> bytes:
    """A list or set value: [int] count, then each [bytes] item."""
    out = [struct.pack(">i", len(items))]
    for item in items:
        out.append(struct.pack(">i", -1) if item is None else struct.pack(">i", len(item)) + item)
    return b"".join(out)


def _pairs(pairs: Sequence[Tuple[bytes, bytes]]) -> bytes:
    """A map value: [int] count, then each key and value as [bytes]."""
    return struct.pack(">i", len(pairs)) + b"".join(_fields(key, value) for key, value in pairs)


def _fields(*items: bytes) -> bytes:
    """A tuple or UDT value: each item as [bytes], no count."""
    return b"".join(struct.pack(">i", len(item)) + item for item in items)


def _int(i: int) -> bytes:
    return struct.pack(">i", i)


_SEVEN = _int(7)
_UDT = UserType("ks", "address", (("street", NATIVE_TYPES["text"]), ("zips", ListType(NATIVE_TYPES["int"]))))


def _collection(type_text: str, make: Callable[[int], bytes], cql_type: Optional[CqlType] = None) -> Case:
    cql_type = cql_type or parse_type(type_text)
    return Case(type_text, cql_type.deserialize, make)


COLLECTION_CASES = [
    _collection("list<int>", lambda n: _elements([_int(i) for i in range(n // 8)])),
    _collection("set<int>", lambda n: _elements([_int(i) for i in range(n // 8)])),
    _collection("list<text>", lambda n: _elements([b"x" * 8] * (n // 12))),
    _collection("list<blob> of two halves", lambda n: _elements([b"x" * (n // 2)] * 2), parse_type("list<blob>")),
    _collection("map<int, int>", lambda n: _pairs([(_int(i), _SEVEN) for i in range(n // 16)])),
    _collection("map<text, int>", lambda n: _pairs([(b"k%d" % i, _SEVEN) for i in range(n // 20)])),
    _collection("map<int, int> one key", lambda n: _pairs([(_SEVEN, _SEVEN)] * (n // 16)), parse_type("map<int, int>")),
    _collection("list<frozen<list<int>>>", lambda n: _elements([_elements([_SEVEN] * 8)] * (n // 72))),
    _collection("list<frozen<list<frozen<list<int>>>>>",
                lambda n: _elements([_elements([_elements([_SEVEN] * 4)] * 4)] * (n // 156))),
    _collection("map<frozen<list<int>>, int>",
                lambda n: _pairs([(_elements([_SEVEN, _int(i)]), _SEVEN) for i in range(n // 28)])),
    _collection("frozen<tuple<int, text, list<int>>>",
                lambda n: _fields(_SEVEN, b"t", _elements([_SEVEN] * (n // 8)))),
    _collection("list<frozen<tuple<int, text>>>", lambda n: _elements([_fields(_SEVEN, b"ab")] * (n // 18))),
    _collection("list<frozen<address>> (a UDT)",
                lambda n: _elements([_fields(b"main", _elements([_SEVEN] * 4))] * (n // 44)), ListType(_UDT)),
]


@pytest.mark.parametrize("case", _params(COLLECTION_CASES))
def test_collections_are_decoded_in_linear_time(case: Case) -> None:
    assert_linear(case)


# Python hashes an int, and with it a uuid.UUID or an ipaddress, as its
# value modulo 2**61 - 1 (64-bit builds): keys that are multiples of it all
# hash alike, and each one put in a dict is compared with all the others.
_MODULUS = (1 << 61) - 1
_KEY_BYTES = {
    "uuid": lambda i: uuid.UUID(int=i).bytes,
    "inet": lambda i: ipaddress.IPv6Address(i).packed,
    "varint": lambda i: i.to_bytes(16, "big", signed=True),
}


def _map_case(key_type: str, spread: int, sizes: Sequence[int] = SIZES) -> Case:
    key = _KEY_BYTES[key_type]
    return Case(
        f"map<{key_type}, int> keys {'of one hash' if spread == _MODULUS else 'of distinct hashes'}",
        parse_type(f"map<{key_type}, int>").deserialize,
        lambda n: _pairs([(key(i * spread), _SEVEN) for i in range(1, n // 32)]),
        sizes,
    )


@pytest.mark.parametrize("case", _params([_map_case(t, 7919) for t in _KEY_BYTES]))
def test_maps_of_distinct_keys_are_decoded_in_linear_time(case: Case) -> None:
    assert_linear(case)


def _refused(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """`deserialize`, expecting the refusal of keys that all hash alike."""
    def refuse(data: bytes) -> Any:
        with pytest.raises(RemoteProtocolError, match="keys have one hash value"):
            deserialize(data)

    return refuse


def test_maps_of_keys_of_one_hash_are_refused_in_linear_time() -> None:
    # Python hashes these keys as their value mod 2**61 - 1: a dict of them
    # is quadratic (65535 uuid keys: minutes), so the decoder counts the keys
    # of each hash first and refuses a map where too many share one.
    for key_type in _KEY_BYTES:
        case = _map_case(key_type, _MODULUS, (4 * KiB, 16 * KiB, 64 * KiB))  # 128 keys and more
        assert_linear(dataclasses.replace(case, parse=_refused(case.parse)))


def test_a_few_keys_of_one_hash_are_decoded() -> None:
    keys = [uuid.UUID(int=i * _MODULUS) for i in range(1, 40)]
    data = _pairs([(k.bytes, _SEVEN) for k in keys])
    assert list(parse_type("map<uuid, int>").deserialize(data)) == keys


# ---- what the node reads of a statement beyond cql.py (fakecql/node.py) ---------
# (the target table of a conditional write, for its [applied] row)


def _answer(text: str) -> Any:
    """The node's answer to a QUERY of `text`, on one session past STARTUP
    (a new node per call would time the node's making). The parse cache is
    emptied first: a small text would be parsed once and then found in it."""
    cql.parse_cache.clear()
    return _session().handle(Query(query=text), 4, 1)


@functools.lru_cache(maxsize=None)
def _session() -> NodeSession:
    session = Node().session(1)
    session.handle(Startup(options={"CQL_VERSION": "3.0.0"}), 4, 0)
    return session


NODE_CASES = [
    Case("conditional-update", _answer,
         lambda n: _rep(" AND a = 1", n, head="UPDATE t SET a = 1 WHERE k = 1 IF a = 1")),
    Case("conditional-insert-long-string", _answer,
         lambda n: "INSERT INTO t (k) VALUES ('" + "a" * (n - 64) + "') IF NOT EXISTS"),
    Case("conditional-update-long-dollar-string", _answer,
         lambda n: "UPDATE t SET a = $$" + "a" * (n - 64) + "$$ WHERE k = 1 IF a = 1"),
    # Once rescanned the rest of the text from each DELETE, looking for FROM.
    Case("deletes-then-if", _answer, lambda n: _rep(" DELETE", n, head="DELETE", tail=" IF")),
]


@pytest.mark.parametrize("case", _params(NODE_CASES))
def test_conditional_writes_are_answered_in_linear_time(case: Case) -> None:
    assert_linear(case)


@pytest.mark.parametrize("case", _params(NODE_CASES))
def test_the_node_cases_time_an_answer(case: Case) -> None:
    """What is timed is the [applied] row, not an error (a text over the
    node's limit, say) at the smallest or the largest size."""
    for n in (case.sizes[0], case.sizes[-1]):
        answer = _answer(case.make(n))
        assert not isinstance(answer, Error), answer
