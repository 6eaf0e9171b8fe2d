# Body primitives (native protocol spec, section 3 "Notations") against bytes
# written by hand from the spec: every primitive is written, read back and
# compared with the hex below; then the ways a body can lie (truncated,
# negative lengths, bad UTF-8, trailing bytes) and the values a Writer must
# refuse.
#
# Rules: hex literals are derived from the spec text, never from fakecql's
# output; big-endian everywhere ("The protocol is big-endian").
import ipaddress
import uuid

import pytest

from fakecql.protocol.errors import LocalProtocolError, RemoteProtocolError
from fakecql.protocol.wire import UNSET, Reader, Writer


def h(text: str) -> bytes:
    """Hex written by hand; spaces and newlines are ignored."""
    return bytes.fromhex(text)


def a(text: str) -> str:
    """The hex of ASCII characters, to spell names inside hand-written hex."""
    return text.encode("ascii").hex()


V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address

# (primitive, value, hand-written hex)
PRIMITIVES = [
    ("byte", 0xAB, "ab"),
    ("byte", 0, "00"),
    ("short", 0x0102, "0102"),
    ("short", 65535, "ffff"),  # [short] is unsigned
    ("signed_short", -2, "fffe"),
    ("int32", 1, "00000001"),
    ("int32", -1, "ffffffff"),
    ("int32", 2**31 - 1, "7fffffff"),
    ("int32", -(2**31), "80000000"),
    ("uint32", 0xDEADBEEF, "deadbeef"),
    ("long", -2, "ffff ffff ffff fffe"),
    ("long", 2**40, "0000 0100 0000 0000"),
    ("uuid_value", uuid.UUID("00112233-4455-6677-8899-aabbccddeeff"), "00112233445566778899aabbccddeeff"),
    # [string]: [short] n then n bytes of UTF-8
    ("string", "", "0000"),
    ("string", "CQL_VERSION", "000b" + a("CQL_VERSION")),
    ("string", "h\u00e9llo", "0006 68 c3a9 6c6c6f"),  # e-acute is 2 bytes in UTF-8: 6 bytes
    # [long string]: [int] n then n bytes
    ("long_string", "SELECT 1", "00000008" + a("SELECT 1")),
    ("long_string", "", "00000000"),
    # [bytes]: [int] n then n bytes; n < 0 is null
    ("nullable_bytes", None, "ffffffff"),
    ("nullable_bytes", b"", "00000000"),
    ("nullable_bytes", b"\xca\xfe", "00000002 cafe"),
    # [value]: like [bytes], plus n == -2 for 'not set'
    ("value", None, "ffffffff"),
    ("value", UNSET, "fffffffe"),
    ("value", b"\x01", "00000001 01"),
    # [short bytes]
    ("short_bytes", b"\x01\x02\x03", "0003 010203"),
    ("short_bytes", b"", "0000"),
    # [string list]: [short] n then n [string]
    ("string_list", [], "0000"),
    ("string_list", ["a", "bc"], "0002 0001 61 0002 6263"),
    # [string map]: [short] n then n <k><v> [string]s
    ("string_map", {"CQL_VERSION": "3.0.0"}, "0001 000b" + a("CQL_VERSION") + "0005" + a("3.0.0")),
    # [string multimap]: [short] n then n <k:[string]><v:[string list]>
    (
        "string_multimap",
        {"COMPRESSION": ["lz4", "snappy"], "X": []},
        "0002"
        "000b" + a("COMPRESSION") + "0002 0003" + a("lz4") + "0006" + a("snappy")
        + "0001 58 0000",
    ),
    # [bytes map]: [short] n then n <k:[string]><v:[bytes]>
    ("bytes_map", {"k": b"\x01", "n": None}, "0002 0001 6b 00000001 01 0001 6e ffffffff"),
    # [inetaddr]: [byte] size then the address
    ("inetaddr", V4("127.0.0.1"), "04 7f000001"),
    ("inetaddr", V6("::1"), "10 00000000000000000000000000000001"),
]


def _id(row):
    return f"{row[0]}-{row[2][:24].replace(' ', '')}"


@pytest.mark.parametrize("primitive, value, hexstr", PRIMITIVES, ids=[_id(r) for r in PRIMITIVES])
def test_write_primitive(primitive, value, hexstr):
    out = Writer()
    getattr(out, primitive)(value)
    assert out.getvalue() == h(hexstr)


@pytest.mark.parametrize("primitive, value, hexstr", PRIMITIVES, ids=[_id(r) for r in PRIMITIVES])
def test_read_primitive(primitive, value, hexstr):
    reader = Reader(h(hexstr))
    got = getattr(reader, primitive)()
    if value is UNSET:
        assert got is UNSET
    else:
        assert got == value
        assert type(got) is type(value)
    reader.expect_end()


# [inet]: [byte] size, the address, then an [int] port (9042 = 0x2352)
INETS = [
    ("ipv4", V4("10.0.0.2"), 9042, "04 0a000002 00002352"),
    ("ipv6", V6("2001:db8::1"), 9042, "10 20010db8000000000000000000000001 00002352"),
]


@pytest.mark.parametrize("address, port, hexstr", [r[1:] for r in INETS], ids=[r[0] for r in INETS])
def test_inet_round_trip(address, port, hexstr):
    assert Writer().inet(address, port).getvalue() == h(hexstr)
    assert Reader(h(hexstr)).inet() == (address, port)


def test_reader_reads_fields_in_sequence():
    # [short] 1, [string] "a", [int] -1, then nothing left
    reader = Reader(h("0001 0001 61 ffffffff"))
    assert reader.short() == 1
    assert reader.string() == "a"
    assert reader.remaining == 4
    assert reader.int32() == -1
    assert reader.remaining == 0
    reader.expect_end()


# What a Reader must refuse: (name, primitive, hex, words the message must hold)
BAD_READS = [
    ("value-length-minus-3", "value", "fffffffd", "[value] has length -3; expected >= -2"),
    ("inetaddr-size-5", "inetaddr", "05 0102030405", "address size is 5; expected 4 or 16"),
    ("string-truncated", "string", "0005 6162", "[string] needs 5 bytes at offset 2, only 2 left"),
    ("int-truncated", "int32", "000000", "[int] needs 4 bytes at offset 0, only 3 left"),
    ("short-empty", "short", "", "[short] needs 2 bytes at offset 0, only 0 left"),
    ("long-string-negative", "long_string", "ffffffff", "[long string] has negative length -1"),
    ("string-bad-utf8", "string", "0002 c328", "[string] is not valid UTF-8"),
    ("uuid-truncated", "uuid_value", "0011", "[uuid] needs 16 bytes"),
    ("string-list-truncated", "string_list", "0002 0001 61", "[string list][1] length needs 2 bytes"),
    ("bytes-map-truncated-value", "bytes_map", "0001 0001 6b 00000004 01", "[bytes map]['k'] needs 4 bytes"),
]


@pytest.mark.parametrize("primitive, hexstr, words", [r[1:] for r in BAD_READS], ids=[r[0] for r in BAD_READS])
def test_reader_refuses(primitive, hexstr, words):
    with pytest.raises(RemoteProtocolError) as info:
        getattr(Reader(h(hexstr)), primitive)()
    assert words in str(info.value)


def test_reader_names_the_body_and_field():
    with pytest.raises(RemoteProtocolError) as info:
        Reader(h("0005 61"), "QUERY body").string("keyspace")
    assert str(info.value) == "truncated QUERY body: keyspace needs 5 bytes at offset 2, only 1 left"


def test_expect_end_refuses_trailing_bytes():
    reader = Reader(h("0001 ff"), "STARTUP body")
    assert reader.short() == 1
    with pytest.raises(RemoteProtocolError) as info:
        reader.expect_end()
    assert str(info.value) == "garbage in STARTUP body: 1 unexpected trailing bytes after offset 2"


def test_rest_takes_what_is_left():
    reader = Reader(h("0001 aabb"))
    reader.short()
    assert reader.rest() == h("aabb")
    reader.expect_end()


# What a Writer must refuse: (name, primitive, value, words)
BAD_WRITES = [
    ("byte-256", "byte", 256, "[byte] must be an integer in [0, 255], got 256"),
    ("byte-negative", "byte", -1, "[byte] must be an integer in [0, 255], got -1"),
    ("short-65536", "short", 65536, "[short] must be an integer in [0, 65535]"),
    ("int-overflow", "int32", 2**31, "[int] must be an integer in [-2147483648, 2147483647]"),
    ("int-bool", "int32", True, "[int] must be an integer"),
    ("long-overflow", "long", 2**63, "[long] must be an integer"),
    ("string-not-str", "string", b"x", "[string] must be a str"),
    ("string-too-long", "string", "x" * 65536, "[string] length must be an integer in [0, 65535], got 65536"),
    ("bytes-not-bytes", "nullable_bytes", "x", "[bytes] must be bytes or None"),
    ("uuid-not-uuid", "uuid_value", "00112233-4455-6677-8899-aabbccddeeff", "[uuid] must be a uuid.UUID"),
    ("inetaddr-str", "inetaddr", "127.0.0.1", "[inetaddr] must be an ipaddress.IPv4Address or IPv6Address"),
]


@pytest.mark.parametrize("primitive, value, words", [r[1:] for r in BAD_WRITES], ids=[r[0] for r in BAD_WRITES])
def test_writer_refuses(primitive, value, words):
    with pytest.raises(LocalProtocolError) as info:
        getattr(Writer(), primitive)(value)
    assert words in str(info.value)


def test_unset_is_a_singleton():
    from fakecql.protocol.wire import Unset

    assert Unset() is UNSET
    assert repr(UNSET) == "UNSET"
