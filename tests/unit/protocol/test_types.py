# CQL types against the spec (v5 section 5 "Data Type Serialization Formats",
# section 6 UDTs, 4.2.5.2 for the [option] ids): every type serializes to
# hand-written bytes, deserializes back, and round-trips; every [option]
# encoding likewise; parse_type on CQL text, good and bad.
#
# Rules: the hex is derived by hand from the spec, with the derivation in a
# comment when it is not obvious; nothing here is produced by fakecql or by a
# driver.
import datetime
import decimal
import ipaddress
import uuid

import pytest

from fakecql.protocol.errors import LocalProtocolError, RemoteProtocolError
from fakecql.protocol.types import (
    NATIVE_TYPES,
    CustomType,
    Duration,
    ListType,
    MapType,
    SetType,
    TupleType,
    UserType,
    parse_type,
    read_type_option,
    write_type_option,
)
from fakecql.protocol.wire import Reader, Writer


def h(text: str) -> bytes:
    """Hex written by hand; spaces and newlines are ignored."""
    return bytes.fromhex(text)


def a(text: str) -> str:
    """The hex of ASCII characters, to spell names inside hand-written hex."""
    return text.encode("ascii").hex()


T = NATIVE_TYPES
ASCII, BIGINT, BLOB, BOOLEAN, COUNTER = T["ascii"], T["bigint"], T["blob"], T["boolean"], T["counter"]
DATE, DECIMAL, DOUBLE, DURATION, FLOAT = T["date"], T["decimal"], T["double"], T["duration"], T["float"]
INET, INT, SMALLINT, TEXT, TIME = T["inet"], T["int"], T["smallint"], T["text"], T["time"]
TIMESTAMP, TIMEUUID, TINYINT, UUID, VARINT = T["timestamp"], T["timeuuid"], T["tinyint"], T["uuid"], T["varint"]

ADDRESS = UserType(
    keyspace="ks", name="address", fields=(("street", TEXT), ("zip", INT), ("extra", TEXT))
)
BYTES_TYPE = CustomType("org.apache.cassandra.db.marshal.BytesType")
D = decimal.Decimal

# (id, type, canonical value, hand-written hex). Canonical: what deserialize
# returns, so each row is checked both ways and round-tripped.
VALUES = [
    # ascii: bytes in [0, 127]
    ("ascii", ASCII, "abc", "616263"),
    ("ascii-empty", ASCII, "", ""),
    # bigint: 8-byte two's complement
    ("bigint-1", BIGINT, 1, "0000000000000001"),
    ("bigint-minus-1", BIGINT, -1, "ffffffffffffffff"),
    ("bigint-max", BIGINT, 2**63 - 1, "7fffffffffffffff"),
    ("bigint-min", BIGINT, -(2**63), "8000000000000000"),
    ("blob", BLOB, b"\x00\xff", "00ff"),
    ("blob-empty", BLOB, b"", ""),
    ("boolean-true", BOOLEAN, True, "01"),
    ("boolean-false", BOOLEAN, False, "00"),
    ("counter", COUNTER, 42, "000000000000002a"),
    # date: unsigned days with the epoch centred at 2^31 (spec: 2^31 is 1970-1-1)
    ("date-epoch", DATE, 0, "80000000"),
    ("date-day-before-epoch", DATE, -1, "7fffffff"),
    ("date-2000-01-01", DATE, 10957, "80002acd"),  # 30*365 + 7 leap days = 10957 = 0x2acd
    ("date-min", DATE, -(2**31), "00000000"),  # spec: 0 is -5877641-06-23
    ("date-max", DATE, 2**31 - 1, "ffffffff"),  # spec: 2^32 - 1 is the last day
    # decimal: [int] scale then varint unscaled; value = unscaled * 10^-scale
    ("decimal-1.25", DECIMAL, D("1.25"), "00000002 7d"),  # 125 = 0x7d, scale 2
    ("decimal-minus-0.5", DECIMAL, D("-0.5"), "00000001 fb"),  # -5 = 0xfb, scale 1
    ("decimal-1E+3", DECIMAL, D("1E+3"), "fffffffd 01"),  # unscaled 1, scale -3
    ("decimal-128", DECIMAL, D("128"), "00000000 0080"),  # 128 needs a 0x00 pad
    ("decimal-0.00", DECIMAL, D("0.00"), "00000002 00"),
    # double: IEEE 754 binary64, big-endian
    ("double-1.5", DOUBLE, 1.5, "3ff8000000000000"),  # exponent 1023 = 0x3ff, mantissa .1b
    ("double-minus-2", DOUBLE, -2.0, "c000000000000000"),  # sign 1, exponent 1024 = 0x400
    ("double-inf", DOUBLE, float("inf"), "7ff0000000000000"),
    # duration: three zig-zag [vint]s: months, days, nanoseconds
    ("duration-1-2-3", DURATION, Duration(months=1, days=2, nanoseconds=3), "02 04 06"),
    ("duration-minus-1-month", DURATION, Duration(months=-1), "01 00 00"),  # zigzag(-1) = 1
    ("duration-64-days", DURATION, Duration(days=64), "00 8080 00"),
    # zigzag(64) = 128 = 0b1000_0000: 8 bits need 2 bytes, '10' prefix then 14 bits
    ("duration-spec-example", DURATION, Duration(months=128000), "c3e800 00 00"),
    # zigzag(128000) = 256000, the spec's example: [110]00011 11101000 00000000
    ("duration-1s", DURATION, Duration(nanoseconds=10**9), "00 00 f077359400"),
    # zigzag(1e9) = 2e9 = 0x77359400, 31 bits: 5 bytes, '11110' prefix then 35 bits
    ("duration-9-byte-vint", DURATION, Duration(nanoseconds=2**62), "00 00 ff8000000000000000"),
    # zigzag(2^62) = 2^63 needs 64 bits: first byte 0xff, then 8 bytes
    ("duration-min-nanos", DURATION, Duration(nanoseconds=-(2**63)), "00 00 ffffffffffffffffff"),
    # zigzag(-2^63) = 2^64 - 1
    # float: IEEE 754 binary32
    ("float-1.5", FLOAT, 1.5, "3fc00000"),  # exponent 127 = 0x7f
    ("float-minus-2", FLOAT, -2.0, "c0000000"),
    # inet: 4 or 16 bytes
    ("inet-v4", INET, ipaddress.IPv4Address("127.0.0.1"), "7f000001"),
    ("inet-v6", INET, ipaddress.IPv6Address("2001:db8::1"), "20010db8000000000000000000000001"),
    ("int-0", INT, 0, "00000000"),
    ("int-minus-2", INT, -2, "fffffffe"),
    ("int-max", INT, 2**31 - 1, "7fffffff"),
    ("smallint-minus-1", SMALLINT, -1, "ffff"),
    ("smallint-max", SMALLINT, 32767, "7fff"),
    ("smallint-min", SMALLINT, -32768, "8000"),
    # text/varchar: UTF-8
    ("text", TEXT, "h\u00e9llo", "68 c3a9 6c6c6f"),
    ("text-cjk", TEXT, "\u65e5\u672c", "e697a5 e69cac"),  # U+65E5, U+672C: 3 bytes each
    ("text-empty", TEXT, "", ""),
    # time: nanoseconds since midnight, [0, 86399999999999]
    ("time-midnight", TIME, 0, "0000000000000000"),
    ("time-1h", TIME, 3600 * 10**9, "0000034630b8a000"),
    ("time-max", TIME, 86399999999999, "00004e94914effff"),  # 86400e9 = 0x4e94914f0000
    # timestamp: ms since the epoch, signed
    ("timestamp-epoch", TIMESTAMP, 0, "0000000000000000"),
    ("timestamp-minus-1ms", TIMESTAMP, -1, "ffffffffffffffff"),
    ("timestamp-2000", TIMESTAMP, 946684800000, "000000dc6acfac00"),
    ("timeuuid", TIMEUUID, uuid.UUID("e3b1a0a0-3c7e-11ee-be56-0242ac120002"), "e3b1a0a03c7e11eebe560242ac120002"),
    ("tinyint-min", TINYINT, -128, "80"),
    ("tinyint-max", TINYINT, 127, "7f"),
    ("tinyint-minus-1", TINYINT, -1, "ff"),
    ("uuid", UUID, uuid.UUID("123e4567-e89b-42d3-a456-556642440000"), "123e4567e89b42d3a456556642440000"),
    # varint: the spec's table, then a few more
    ("varint-0", VARINT, 0, "00"),
    ("varint-1", VARINT, 1, "01"),
    ("varint-127", VARINT, 127, "7f"),
    ("varint-128", VARINT, 128, "0080"),
    ("varint-129", VARINT, 129, "0081"),
    ("varint-minus-1", VARINT, -1, "ff"),
    ("varint-minus-128", VARINT, -128, "80"),
    ("varint-minus-129", VARINT, -129, "ff7f"),
    ("varint-256", VARINT, 256, "0100"),
    ("varint-32768", VARINT, 32768, "008000"),
    ("varint-2^63", VARINT, 2**63, "00 8000000000000000"),  # MSB >= 0x80: pad with 00
    ("varint-2^64", VARINT, 2**64, "01 0000000000000000"),
    ("varint-minus-2^64", VARINT, -(2**64), "ff 0000000000000000"),
    # list/set: [int] n then n [bytes]
    ("list-int", ListType(INT), [1, 2], "00000002 00000004 00000001 00000004 00000002"),
    ("list-empty", ListType(TEXT), [], "00000000"),
    ("set-text", SetType(TEXT), ["a", "b"], "00000002 00000001 61 00000001 62"),
    # map: [int] n then n pairs of [bytes]
    (
        "map-text-int",
        MapType(TEXT, INT),
        {"a": 1, "b": -1},
        "00000002 00000001 61 00000004 00000001 00000001 62 00000004 ffffffff",
    ),
    (
        "map-text-frozen-list-int",
        MapType(TEXT, ListType(INT, frozen=True)),
        {"k": [7]},
        # the value is a list of 12 bytes: 00000001 00000004 00000007
        "00000001 00000001 6b 0000000c 00000001 00000004 00000007",
    ),
    # tuple: a sequence of [bytes], null as length -1
    (
        "tuple-with-null",
        TupleType((INT, TEXT, BOOLEAN)),
        (1, None, True),
        "00000004 00000001 ffffffff 00000001 01",
    ),
    # UDT: a [bytes] per field, in the type's order
    (
        "udt-with-null-field",
        ADDRESS,
        {"street": "a", "zip": None, "extra": "b"},
        "00000001 61 ffffffff 00000001 62",
    ),
    ("custom", BYTES_TYPE, b"\x01\x02", "0102"),
]


def _rows(table):
    return pytest.mark.parametrize(
        "cql_type, value, hexstr", [r[1:] for r in table], ids=[r[0] for r in table]
    )


@_rows(VALUES)
def test_serialize(cql_type, value, hexstr):
    assert cql_type.serialize(value) == h(hexstr)


@_rows(VALUES)
def test_deserialize(cql_type, value, hexstr):
    got = cql_type.deserialize(h(hexstr))
    assert got == value
    assert type(got) is type(value)


@_rows(VALUES)
def test_round_trip(cql_type, value, hexstr):
    assert cql_type.deserialize(cql_type.serialize(value)) == value


def test_decimal_keeps_its_exponent():
    # 0.00 == 0 as numbers; the scale (2) must survive the round trip
    assert DECIMAL.deserialize(h("00000002 00")).as_tuple() == (0, (0,), -2)


def test_every_native_type_has_a_value_row():
    covered = {row[1].cql_name for row in VALUES}
    assert set(NATIVE_TYPES) - {"varchar"} <= covered


# Bytes the spec allows that are not the canonical encoding, and natural
# Python values serialize() accepts: (id, type, input, hex, decoded)
DECODE_ONLY = [
    # a UDT value may have fewer values than the type has fields (spec section 6)
    ("udt-trailing-fields-left-out", ADDRESS, None, "00000001 61", {"street": "a", "zip": None, "extra": None}),
    ("udt-no-fields", ADDRESS, None, "", {"street": None, "zip": None, "extra": None}),
    # boolean: "any other value denotes true"
    ("boolean-2-is-true", BOOLEAN, None, "02", True),
]
SERIALIZE_ONLY = [
    ("date-from-date", DATE, datetime.date(2000, 1, 1), "80002acd"),
    ("timestamp-from-aware", TIMESTAMP, datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc), "000000dc6acfac00"),
    ("timestamp-naive-is-utc", TIMESTAMP, datetime.datetime(1969, 12, 31, 23, 59, 59, 999000), "ffffffffffffffff"),
    # 01:02:03.004 = 3723.004 s = 3723004000000 ns = 0x362d454b700
    ("time-from-time", TIME, datetime.time(1, 2, 3, 4000), "00000362d454b700"),
    ("inet-from-str", INET, "10.0.0.2", "0a000002"),
    ("set-from-set", SetType(INT), {5}, "00000001 00000004 00000005"),
    ("udt-missing-field-is-null", ADDRESS, {"street": "a"}, "00000001 61 ffffffff ffffffff"),
    ("map-from-pairs", MapType(INT, BOOLEAN), [(1, False)], "00000001 00000004 00000001 00000001 00"),
    ("decimal-from-int", DECIMAL, 5, "00000000 05"),
]


@pytest.mark.parametrize(
    "cql_type, hexstr, decoded", [(r[1], r[3], r[4]) for r in DECODE_ONLY], ids=[r[0] for r in DECODE_ONLY]
)
def test_deserialize_lenient_bytes(cql_type, hexstr, decoded):
    assert cql_type.deserialize(h(hexstr)) == decoded


@pytest.mark.parametrize(
    "cql_type, value, hexstr", [r[1:] for r in SERIALIZE_ONLY], ids=[r[0] for r in SERIALIZE_ONLY]
)
def test_serialize_natural_values(cql_type, value, hexstr):
    assert cql_type.serialize(value) == h(hexstr)


# serialize() must refuse what the type cannot hold: (id, type, value, words)
BAD_VALUES = [
    ("int-overflow", INT, 2**31, "cannot serialize 2147483648 as int: expected an int in [-2147483648, 2147483647]"),
    ("int-bool", INT, True, "cannot serialize True as int"),
    ("tinyint-overflow", TINYINT, 128, "as tinyint"),
    ("text-bytes", TEXT, b"x", "cannot serialize b'x' as text: expected a str"),
    ("ascii-non-ascii", ASCII, "\u00e9", "as ascii: expected a str of ASCII characters"),
    ("boolean-int", BOOLEAN, 1, "as boolean: expected a bool"),
    ("time-a-day", TIME, 86400 * 10**9, "as time: expected nanoseconds since midnight"),
    ("time-negative", TIME, -1, "as time"),
    ("timeuuid-v4", TIMEUUID, uuid.UUID("123e4567-e89b-42d3-a456-556642440000"), "expected a version 1 uuid.UUID"),
    ("float-too-big", FLOAT, 1e40, "within single precision range"),
    ("decimal-nan", DECIMAL, D("NaN"), "expected a finite decimal"),
    ("inet-bad-str", INET, "not-an-ip", "as inet: expected an IPv4 or IPv6 address"),
    ("list-str", ListType(INT), "12", "as list<int>: expected a list or other iterable"),
    ("map-list", MapType(INT, INT), [1, 2], "expected a dict or a list of (key, value) pairs"),
    ("tuple-too-long", TupleType((INT,)), (1, 2), "expected a tuple of at most 1 items"),
    ("udt-unknown-field", ADDRESS, {"street": "a", "city": "b"}, "unknown ['city']"),
    ("duration-int", DURATION, 5, "expected a fakecql Duration"),
]


@pytest.mark.parametrize("cql_type, value, words", [r[1:] for r in BAD_VALUES], ids=[r[0] for r in BAD_VALUES])
def test_serialize_refuses(cql_type, value, words):
    with pytest.raises(LocalProtocolError) as info:
        cql_type.serialize(value)
    assert words in str(info.value)


def test_duration_refuses_mixed_signs():
    # spec 5.8: all positive or zero, or all negative or zero
    with pytest.raises(LocalProtocolError) as info:
        Duration(months=1, days=-1)
    assert "must share one sign" in str(info.value)


def test_duration_refuses_months_beyond_32_bits():
    with pytest.raises(LocalProtocolError) as info:
        Duration(months=2**31)
    assert "Duration.months must be an integer in [-2147483648, 2147483647]" in str(info.value)


# deserialize() must refuse bytes that are not a value of the type, naming it
BAD_BYTES = [
    ("int-3-bytes", INT, "000000", "garbage in a int value: 3 bytes (0x000000); expected exactly 4 bytes"),
    ("bigint-4-bytes", BIGINT, "00000000", "expected exactly 8 bytes"),
    ("boolean-2-bytes", BOOLEAN, "0101", "expected exactly 1 byte"),
    ("text-bad-utf8", TEXT, "c328", "garbage in a text value: 2 bytes (0xc328); expected UTF-8"),
    ("ascii-high-byte", ASCII, "80", "expected ASCII characters only"),
    ("varint-empty", VARINT, "", "expected at least 1 byte"),
    ("inet-5-bytes", INET, "0102030405", "expected 4 or 16 bytes"),
    ("uuid-15-bytes", UUID, "00" * 15, "expected exactly 16 bytes"),
    ("timeuuid-v4", TIMEUUID, "123e4567e89b42d3a456556642440000", "expected a version 1 UUID"),
    ("time-a-day", TIME, "00004e94914f0000", "nanoseconds since midnight"),
    ("decimal-no-varint", DECIMAL, "00000001", "a 4-byte scale then at least 1 byte of varint"),
    ("duration-two-vints", DURATION, "0204", "three vints"),
    ("duration-cut-vint", DURATION, "02 04 f0", "three complete vints"),
    ("duration-trailing", DURATION, "020406 00", "exactly three vints"),
    ("duration-mixed-signs", DURATION, "02 01 00", "must share one sign"),  # +1 month, -1 day
    ("list-null-element", ListType(INT), "00000001 ffffffff", "garbage in a list<int> value: null element"),
    # 3 elements need at least 3 * 4 bytes of lengths: refused before reading any
    ("list-count-too-big", ListType(INT), "00000003 00000004 00000001", "3 elements declared, only 8 bytes follow"),
    ("list-cut-element", ListType(INT), "00000002 00000004 00000001", "element 1 length needs 4 bytes at offset 12"),
    ("list-negative-count", ListType(INT), "ffffffff", "negative element count -1"),
    ("list-trailing", ListType(INT), "00000000 00", "1 unexpected trailing bytes"),
    ("map-count-too-big", MapType(INT, INT), "00000005 00000000", "5 entries declared, 4 bytes follow"),
    ("tuple-trailing", TupleType((INT,)), "00000004 00000001 00", "1 unexpected trailing bytes"),
    ("udt-cut-field", ADDRESS, "00000005 61", "needs 5 bytes"),
]


@pytest.mark.parametrize("cql_type, hexstr, words", [r[1:] for r in BAD_BYTES], ids=[r[0] for r in BAD_BYTES])
def test_deserialize_refuses(cql_type, hexstr, words):
    with pytest.raises(RemoteProtocolError) as info:
        cql_type.deserialize(h(hexstr))
    assert words in str(info.value)
    assert info.value.fatal is False  # a bad cell never breaks the framing


# [option] (spec 4.2.5.2): a [short] id, then the type's parameters
OPTIONS = [
    ("custom", BYTES_TYPE, "0000 0029" + a("org.apache.cassandra.db.marshal.BytesType")),  # 41 chars
    ("ascii", ASCII, "0001"),
    ("bigint", BIGINT, "0002"),
    ("blob", BLOB, "0003"),
    ("boolean", BOOLEAN, "0004"),
    ("counter", COUNTER, "0005"),
    ("decimal", DECIMAL, "0006"),
    ("double", DOUBLE, "0007"),
    ("float", FLOAT, "0008"),
    ("int", INT, "0009"),
    ("timestamp", TIMESTAMP, "000b"),
    ("uuid", UUID, "000c"),
    ("varchar", TEXT, "000d"),
    ("varint", VARINT, "000e"),
    ("timeuuid", TIMEUUID, "000f"),
    ("inet", INET, "0010"),
    ("date", DATE, "0011"),
    ("time", TIME, "0012"),
    ("smallint", SMALLINT, "0013"),
    ("tinyint", TINYINT, "0014"),
    ("duration", DURATION, "0015"),
    ("list-int", ListType(INT), "0020 0009"),
    ("set-text", SetType(TEXT), "0022 000d"),
    ("map-text-int", MapType(TEXT, INT), "0021 000d 0009"),
    ("map-text-frozen-list-int", MapType(TEXT, ListType(INT, frozen=True)), "0021 000d 0020 0009"),
    ("list-of-map-of-set", ListType(MapType(UUID, SetType(TINYINT))), "0020 0021 000c 0022 0014"),
    ("tuple-int-text", TupleType((INT, TEXT)), "0031 0002 0009 000d"),
    ("tuple-nested", TupleType((TupleType((BOOLEAN,)), BLOB)), "0031 0002 0031 0001 0004 0003"),
    (
        "udt",
        ADDRESS,
        # <ks><udt_name><n>(<name_i><type_i>)*
        "0030 0002 6b73 0007" + a("address") + "0003"
        "0006" + a("street") + "000d"
        "0003" + a("zip") + "0009"
        "0005" + a("extra") + "000d",
    ),
    ("list-of-udt", ListType(UserType(keyspace="k", name="u", fields=())), "0020 0030 0001 6b 0001 75 0000"),
]


@pytest.mark.parametrize("cql_type, hexstr", [r[1:] for r in OPTIONS], ids=[r[0] for r in OPTIONS])
def test_write_type_option(cql_type, hexstr):
    out = Writer()
    write_type_option(out, cql_type)
    assert out.getvalue() == h(hexstr)


@pytest.mark.parametrize("cql_type, hexstr", [r[1:] for r in OPTIONS], ids=[r[0] for r in OPTIONS])
def test_read_type_option(cql_type, hexstr):
    reader = Reader(h(hexstr))
    assert read_type_option(reader) == cql_type
    reader.expect_end()


def test_every_native_type_has_an_option_row():
    assert {t.name for t in NATIVE_TYPES.values()} <= {row[1].cql_name for row in OPTIONS}


def test_legacy_varchar_option_id_reads_as_text():
    # 0x000A was varchar before v3; servers may still send it
    assert read_type_option(Reader(h("000a"))) == TEXT


def test_unknown_type_option_id_is_refused():
    with pytest.raises(RemoteProtocolError) as info:
        read_type_option(Reader(h("0040"), "RESULT body"))
    assert str(info.value) == "garbage in RESULT body: unknown type option id 0x0040"


def test_truncated_udt_option_names_the_field():
    with pytest.raises(RemoteProtocolError) as info:
        read_type_option(Reader(h("0030 0002 6b73"), "RESULT body"))
    assert "UDT name length needs 2 bytes" in str(info.value)


# parse_type: CQL text -> type, and the canonical name back
PARSES = [
    ("int", INT, "int"),
    ("  INT  ", INT, "int"),
    ("varchar", TEXT, "text"),
    ("Text", TEXT, "text"),
    ("list<int>", ListType(INT), "list<int>"),
    ("frozen<list<int>>", ListType(INT), "frozen<list<int>>"),
    ("set<frozen<tuple<int, text>>>", SetType(TupleType((INT, TEXT))), "set<frozen<tuple<int, text>>>"),
    ("tuple<int,text,boolean>", TupleType((INT, TEXT, BOOLEAN)), "frozen<tuple<int, text, boolean>>"),
    ("map<text, frozen<list<int>>>", MapType(TEXT, ListType(INT)), "map<text, frozen<list<int>>>"),
    ("map < text ,frozen< list <int> > >", MapType(TEXT, ListType(INT)), "map<text, frozen<list<int>>>"),
    ("map<text,\n\tint>", MapType(TEXT, INT), "map<text, int>"),
    ("frozen<int>", INT, "int"),
    ("'org.apache.cassandra.db.marshal.BytesType'", BYTES_TYPE, "'org.apache.cassandra.db.marshal.BytesType'"),
    (
        "'org.apache.cassandra.db.marshal.DynamicCompositeType(s=>UTF8Type,i=>Int32Type)'",
        CustomType("org.apache.cassandra.db.marshal.DynamicCompositeType(s=>UTF8Type,i=>Int32Type)"),
        "'org.apache.cassandra.db.marshal.DynamicCompositeType(s=>UTF8Type,i=>Int32Type)'",
    ),
    ("list<'org.apache.cassandra.db.marshal.BytesType'>", ListType(BYTES_TYPE), "list<'org.apache.cassandra.db.marshal.BytesType'>"),
]


@pytest.mark.parametrize("text, expected, name", PARSES, ids=[r[0] for r in PARSES])
def test_parse_type(text, expected, name):
    parsed = parse_type(text)
    assert parsed == expected
    assert parsed.cql_name == name


@pytest.mark.parametrize("name", sorted(NATIVE_TYPES))
def test_parse_every_native_name(name):
    assert parse_type(name) is NATIVE_TYPES[name]


def test_parse_type_marks_frozen_collections():
    assert parse_type("frozen<set<int>>").frozen is True
    assert parse_type("set<int>").frozen is False
    assert parse_type("map<int, frozen<list<int>>>").value.frozen is True


def test_parse_type_resolves_user_types():
    user_types = {"address": ADDRESS, "Mixed": UserType(keyspace="ks", name="Mixed", fields=())}
    frozen = parse_type("frozen<address>", user_types=user_types)
    assert frozen == ADDRESS and frozen.frozen is True
    assert frozen.cql_name == "frozen<address>"
    bare = parse_type("Address", user_types=user_types)  # unquoted names are case-insensitive
    assert bare == ADDRESS and bare.frozen is False
    assert parse_type('list<frozen<"Mixed">>', user_types=user_types) == ListType(user_types["Mixed"])


# Bad CQL type names: (text, the exact complaint); positions are 0-based
BAD_NAMES = [
    ("", "expected a type name at position 0"),
    ("   ", "expected a type name at position 3"),
    ("list<int", "expected '>' at position 8"),
    ("map<int>", "expected ',' at position 7"),
    ("map<int, text, int>", "expected '>' at position 13"),
    ("lsit<int>", "expected a known type name, not 'lsit' at position 0"),
    ("list<foo>", "expected a known type name, not 'foo' at position 5"),
    ("list<,>", "expected a type name at position 5"),
    ("<int>", "expected a type name at position 0"),
    ("tuple<>", "expected a type name at position 6"),
    ("int int", "expected the end of the type at position 4"),
    ("list<int>>", "expected the end of the type at position 9"),
    ("a$b", "unexpected character at 1"),
    ("'unterminated", "unexpected character at 0"),
    ("frozen", "expected '<' at position 6"),
    ("list<" * 70 + "int" + ">" * 70, "expected less nesting"),
]


@pytest.mark.parametrize("text, words", BAD_NAMES, ids=[r[0][:20] or "empty" for r in BAD_NAMES])
def test_parse_type_refuses(text, words):
    with pytest.raises(LocalProtocolError) as info:
        parse_type(text)
    assert str(info.value).startswith(f"bad CQL type {text!r}: ")
    assert words in str(info.value)
