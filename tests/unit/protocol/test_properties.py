# Properties of the protocol core, checked with Hypothesis (strategies.py):
#
# 1. Round trips: every CQL type's [option] and every value of it, every
#    message class in every version it exists in (every ERROR code's info,
#    every RESULT kind), frames, v5 segments (plain and LZ4, frames cut at any
#    byte across them): encode -> decode gives an equal object, and decode ->
#    encode gives the same bytes. ServerConnection fed a client's bytes in any
#    chunking gives the same events, and exactly the requests that were sent.
# 2. Refusals: arbitrary bytes and damaged valid encodings (bit flips, cuts,
#    insertions, lying lengths) fed to every decoder raise nothing but
#    RemoteProtocolError; ServerConnection.receive_data raises nothing at all,
#    and gives the same events however the bytes are cut. What a decoder
#    accepts it can write back, and reads back the same.
#
# Rules: no @settings here but budget(): the profile in force decides the
# number of cases ("fakecql-ci" in the suite; FAKECQL_HYPOTHESIS_PROFILE picks
# another, as fuzz/long_run.py does). Every case is counted (CASES) so the
# long run can say how many ran. A bug found here keeps its input as an
# @example on the property that found it, or as a plain test in section 3.
import functools
import os
from typing import Any, Callable, List

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakecql.protocol import types as T
from fakecql.protocol.compression import Lz4
from fakecql.protocol.connection import ServerConnection
from fakecql.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from fakecql.protocol.frames import (
    MAX_SEGMENT_PAYLOAD,
    Frame,
    FrameHeader,
    FrameReader,
    SegmentReader,
    encode_frame,
    encode_segments,
)
from fakecql.protocol.messages import (
    Query,
    QueryParameters,
    Ready,
    Response,
    RowsMetadata,
    RowsResult,
    Startup,
    decode_message,
)
from fakecql.protocol.wire import Reader

from . import strategies as S

settings.load_profile(os.environ.get("FAKECQL_HYPOTHESIS_PROFILE", S.CI_PROFILE))

CASES = S.CASES


@pytest.fixture(autouse=True)
def _record_cases(record_property: Callable[[str, object], None]) -> Any:
    """Each test's number of cases, in its report (the long run adds them up)."""
    before = CASES["cases"]
    yield
    record_property("cases", CASES["cases"] - before)


def budget(share: float) -> settings:
    """This property's cases: `share` times the profile's max_examples.

    Parametrized properties take a share per parameter; the fuzz properties,
    whose inputs are the widest, take more.
    """
    return settings(max_examples=max(1, round(settings.default.max_examples * share)))


def counted(test: Callable[..., Any]) -> Callable[..., Any]:
    """Count each case a property runs (fuzz/long_run.py prints the counts)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> Any:
        CASES["cases"] += 1
        return test(*args, **kwargs)

    return run


def refused_or(decode: Callable[[], Any]) -> Any:
    """What `decode` returns, or None when it raises RemoteProtocolError.

    Any other exception (IndexError, struct.error, UnicodeDecodeError,
    MemoryError, LocalProtocolError...) escapes and fails the property.
    """
    try:
        return decode()
    except RemoteProtocolError:
        return None


# ==========================================================================
# 1. Round trips
# ==========================================================================

@budget(1)
@given(S.cql_types())
@counted
def test_type_option_round_trip(cql_type: T.CqlType) -> None:
    data = S.type_option_bytes(cql_type)
    reader = Reader(data, "type option")
    back = T.read_type_option(reader)
    assert reader.remaining == 0
    assert back == cql_type
    assert S.type_option_bytes(back) == data


_UDT_AB = T.UserType("ks", "u", (("a", T.NATIVE_TYPES["int"]), ("b", T.NATIVE_TYPES["text"])))


@budget(2)
@given(S.typed_values())
# A decimal of more digits than int <-> str conversion allows (4300 by
# default since 3.11 and in the 3.9/3.10 security releases): ValueError.
@example((T.NATIVE_TYPES["decimal"], S.decimal_from(10**5000 - 1, 7)))
@example((T.NATIVE_TYPES["decimal"], S.decimal_from(-(10**4400), -(2**31))))
# A map keyed by a UDT: deserialize() makes the key a tuple of (field, value)
# pairs, which serialize() refused.
@example((T.MapType(_UDT_AB, T.NATIVE_TYPES["int"]), {(("a", 1), ("b", None)): 2}))
@example((T.MapType(T.ListType(_UDT_AB), T.NATIVE_TYPES["int"]), {((("a", None), ("b", "x")),): 2}))
@counted
def test_value_round_trip(typed_value: Any) -> None:
    cql_type, value = typed_value
    data = cql_type.serialize(value)
    back = cql_type.deserialize(data)
    assert S.canonical(cql_type, back) == S.canonical(cql_type, value)
    assert cql_type.serialize(back) == data


def _message_round_trip(version: int, message: Any) -> None:
    body = message.encode_body(version)
    back = decode_message(message.opcode, body, version, is_response=isinstance(message, Response))
    assert back == message
    assert back.encode_body(version) == body


@budget(0.5)
@pytest.mark.parametrize("message_type", list(S.MESSAGE_BUILDERS), ids=lambda t: t.__name__)
@given(data=st.data())
@counted
def test_message_round_trip(message_type: type, data: st.DataObject) -> None:
    version, message = data.draw(S.versioned(S.MESSAGE_BUILDERS[message_type]))
    assert type(message) is message_type
    _message_round_trip(version, message)


@budget(0.25)
@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda c: c.name)
@given(data=st.data())
@counted
def test_error_round_trip(code: ErrorCode, data: st.DataObject) -> None:
    version, message = data.draw(S.versioned_errors(code))
    _message_round_trip(version, message)


@budget(2)
@given(S.free_messages())
@counted
def test_what_encodes_decodes(case: Any) -> None:
    """A message built freely and encoded in any version: refused, or decoded.

    The encoder never writes a body its decoder refuses, and what it decodes
    encodes to the same body (fields a version cannot carry are left out).
    """
    version, message, is_response = case
    try:
        body = message.encode_body(version)
    except LocalProtocolError:
        return
    back = decode_message(message.opcode, body, version, is_response=is_response)
    assert back.encode_body(version) == body


@budget(1)
@given(
    st.booleans().flatmap(lambda response: st.lists(S.frames(is_response=response), min_size=1, max_size=4)),
    S.cut_lists,
)
@counted
def test_frames_round_trip(frames: List[Any], cuts: List[int]) -> None:
    is_response = frames[0][1]
    wire = b"".join(
        encode_frame(version, stream, opcode, body, flags=flags, is_response=is_response)
        for version, is_response, flags, stream, opcode, body in frames
    )
    reader = FrameReader(expect_response=is_response)
    got: List[Frame] = []
    for chunk in S.split(wire, cuts):
        reader.feed(chunk)
        while True:
            frame = reader.next_frame()
            if frame is None:
                break
            got.append(frame)
    assert got == [
        Frame(FrameHeader(version, flags, stream, opcode, len(body), is_response), body)
        for version, is_response, flags, stream, opcode, body in frames
    ]
    assert reader.buffered == 0
    assert b"".join(f.header.encode() + f.body for f in got) == wire


@budget(1)
@given(
    st.binary(max_size=300) | S.big_payloads(),
    S.cut_lists,
    st.booleans(),
    S.cut_lists,
)
@counted
def test_segments_round_trip(payload: bytes, cuts: List[int], compressed: bool, chunks: List[int]) -> None:
    compressor = S.LZ4 if compressed else None
    for wire in (S.segments(payload, cuts, compressor), encode_segments(payload, compressor)):
        reader = SegmentReader(compressor)
        got = []
        for chunk in S.split(wire, chunks):
            reader.feed(chunk)
            got.extend(reader.payloads())
        assert b"".join(got) == payload
        assert reader.buffered == 0


def chunkings(session: dict) -> List[Any]:
    """The session's cut lists, then: all at once, and byte by byte (the first 4 KiB)."""
    whole = ([], [])
    one_by_one = tuple(list(range(min(len(session[part]), 4096))) for part in ("before", "after"))
    return [*session["cuts"], whole, one_by_one]


def run_session(session: dict, cuts: Any) -> List[Any]:
    """A ServerConnection fed the session's bytes cut at `cuts`, READY sent in between."""
    connection = ServerConnection()
    events: List[Any] = []
    for chunk in S.split(session["before"], cuts[0]):
        events += connection.receive_data(chunk)
    if session["compressed"]:
        connection.negotiate_compression("lz4")
    connection.send(0, Ready(), version=session["version"])
    for chunk in S.split(session["after"], cuts[1]):
        events += connection.receive_data(chunk)
    return [S.event_key(e) for e in events]


@budget(1.5)
@given(S.sessions())
@counted
def test_connection_events_in_any_chunking(session: dict) -> None:
    want = [S.event_key(e) for e in S.expected_events(session)]
    for cuts in chunkings(session):
        assert run_session(session, cuts) == want


# ==========================================================================
# 2. Refusals
# ==========================================================================

@budget(4)
@given(
    S.any_message().flatmap(
        lambda vmr: st.tuples(
            st.just(vmr[0]),
            st.sampled_from(range(0x11)) | st.just(vmr[1].opcode) | st.integers(0, 0xFF),
            st.just(vmr[2]) | st.booleans(),
            S.fuzz_bytes(st.just(vmr[1].encode_body(vmr[0]))),
        )
    )
)
@counted
def test_decode_message_refuses_garbage(case: Any) -> None:
    version, opcode, is_response, body = case
    message = refused_or(lambda: decode_message(opcode, body, version, is_response=is_response))
    if message is not None:
        # What was accepted can be written back, and reads back the same.
        again = message.encode_body(version)
        assert decode_message(opcode, again, version, is_response=is_response) == message


@budget(3)
@given(S.typed_values(8).flatmap(lambda tv: st.tuples(st.just(tv[0]), S.fuzz_bytes(st.just(tv[0].serialize(tv[1]))))))
@counted
def test_deserialize_refuses_garbage(case: Any) -> None:
    cql_type, data = case
    value = refused_or(lambda: cql_type.deserialize(data))
    if value is not None:
        again = cql_type.serialize(value)
        assert S.canonical(cql_type, cql_type.deserialize(again)) == S.canonical(cql_type, value)


@budget(1.5)
@given(S.fuzz_bytes(S.cql_types(10).map(S.type_option_bytes)))
@counted
def test_read_type_option_refuses_garbage(data: bytes) -> None:
    reader = Reader(data, "type option")
    cql_type = refused_or(lambda: T.read_type_option(reader))
    if cql_type is not None:
        assert T.read_type_option(Reader(S.type_option_bytes(cql_type))) == cql_type


def _wire_frames(frames: List[Any]) -> bytes:
    return b"".join(
        encode_frame(v, stream, opcode, body, flags=flags, is_response=resp)
        for v, resp, flags, stream, opcode, body in frames
    )


@budget(1.5)
@given(
    S.fuzz_bytes(st.lists(S.frames(), min_size=1, max_size=3).map(_wire_frames)),
    st.sets(st.sampled_from(S.VERSIONS), min_size=1),
    st.booleans(),
    st.sampled_from([16, 1024, 2**28]),
    S.cut_lists,
)
@counted
def test_frame_reader_refuses_garbage(data: bytes, versions: set, expect_response: bool, max_body: int, cuts: List[int]) -> None:
    reader = FrameReader(versions=sorted(versions), expect_response=expect_response, max_body=max_body)
    for chunk in S.split(data, cuts):
        reader.feed(chunk)
        for _ in range(len(data) + 1):  # each frame or refusal consumes bytes
            try:
                if reader.next_frame() is None:
                    break
            except RemoteProtocolError as exc:
                if exc.fatal:
                    return
        else:
            raise AssertionError("FrameReader did not stop on its bytes")


def _segments_for_fuzz(compressed: bool) -> st.SearchStrategy[bytes]:
    compressor = S.LZ4 if compressed else None
    # Damage the payload under good CRCs as well as the segments themselves.
    payload = st.binary(max_size=200) | S.mutated(st.binary(max_size=200))
    return st.tuples(payload, S.cut_lists).map(lambda pc: S.segments(pc[0], pc[1], compressor))


def _lz4_segment_garbage() -> st.SearchStrategy[bytes]:
    """A compressed segment whose LZ4 block is damaged under good CRCs."""
    def build(payload: bytes, block: bytes) -> bytes:
        header = len(block) | (len(payload) << 17) | (1 << 34)
        return (
            header.to_bytes(5, "little") + S.crc24(header, 5).to_bytes(3, "little")
            + block + S.crc32(block).to_bytes(4, "little")
        )

    return st.binary(min_size=1, max_size=200).flatmap(
        lambda p: S.mutated(st.just(S.LZ4.compress_raw(p))).map(lambda block: build(p, block))
    )


@budget(1.5)
@given(
    st.booleans().flatmap(
        lambda compressed: st.tuples(
            st.just(compressed),
            S.fuzz_bytes(_segments_for_fuzz(compressed))
            | (_lz4_segment_garbage() if compressed else st.nothing()),
        )
    ),
    S.cut_lists,
)
@counted
def test_segment_reader_refuses_garbage(case: Any, cuts: List[int]) -> None:
    compressed, data = case
    reader = SegmentReader(S.LZ4 if compressed else None)
    for chunk in S.split(data, cuts):
        reader.feed(chunk)
        if refused_or(reader.payloads) is None:
            return


@budget(1)
@given(
    S.fuzz_bytes(st.binary(max_size=300).map(Lz4().compress_body)),
    st.sampled_from([0, 1, 100, 2**20, 2**28]),
    st.integers(0, MAX_SEGMENT_PAYLOAD),
)
@counted
def test_lz4_refuses_garbage(data: bytes, limit: int, size: int) -> None:
    lz4 = Lz4()
    body = refused_or(lambda: lz4.decompress_body(data, limit))
    assert body is None or len(body) <= limit
    raw = refused_or(lambda: lz4.decompress_raw(data[4:], size))
    assert raw is None or len(raw) == size


def _garbage_session() -> st.SearchStrategy[dict]:
    """A session damaged anywhere, or plain garbage before and after READY."""
    garbage = st.fixed_dictionaries({
        "version": st.sampled_from(S.VERSIONS), "compressed": st.booleans(),
        "before": st.binary(max_size=64), "after": st.binary(max_size=64), "expected": st.just([]),
        "cuts": st.tuples(*[st.tuples(S.cut_lists, S.cut_lists)] * 2),
    })
    return S.sessions(mutate=True) | garbage


@budget(3)
@given(_garbage_session())
@counted
def test_receive_data_never_raises(session: dict) -> None:
    results = [run_session(session, cuts) for cuts in chunkings(session)]
    for other in results[1:]:
        assert other == results[0]


# ==========================================================================
# 3. Regressions: what the properties above found, as plain tests
# ==========================================================================

def _v5_connection() -> ServerConnection:
    connection = ServerConnection()
    startup = S.request_frame(5, 0, Startup(options={"CQL_VERSION": "3.0.0"}))
    assert [S.event_key(e)[0] for e in connection.receive_data(startup)] == ["request"]
    connection.send(0, Ready())
    assert connection.segments
    return connection


def test_good_segments_before_a_bad_one_in_the_same_data_are_read() -> None:
    # Found by test_receive_data_never_raises: with a good segment and a bad
    # one (header CRC broken) in one receive_data(), the good segment's
    # request was lost and only the violation came out; fed in two pieces,
    # the request came out first. Now both ways give the request, then the
    # fatal violation.
    good = S.segment(S.request_frame(5, 1, Query(query="Q")))
    bad = bytearray(S.segment(S.request_frame(5, 2, Query(query="R"))))
    bad[3] ^= 0xFF  # the header's CRC24
    at_once = [S.event_key(e) for e in _v5_connection().receive_data(good + bytes(bad))]
    connection = _v5_connection()
    in_two = [S.event_key(e) for e in connection.receive_data(good) + connection.receive_data(bytes(bad))]
    assert at_once == in_two
    assert [e[0] for e in at_once] == ["request", "violation"]
    assert at_once[0][3] == Query(query="Q")
    assert "CRC24 mismatch" in at_once[1][2] and at_once[1][5] is True


def test_direction_bit_violation_reads_the_same_however_the_header_is_cut() -> None:
    # Found by test_receive_data_never_raises: the message quoted the header
    # bytes received so far ("[84]" or "[84 00 00 01 ...]"), so the ERROR a
    # client got depended on how its bytes were cut.
    frame = S.request_frame(4, 1, Startup()).replace(b"\x04", b"\x84", 1)
    whole = ServerConnection().receive_data(frame)
    connection = ServerConnection()
    one_byte_first = connection.receive_data(frame[:1]) + connection.receive_data(frame[1:])
    assert [S.event_key(e) for e in whole] == [S.event_key(e) for e in one_byte_first]
    assert whole[0].message == (
        "bad version byte 0x84 in frame header: its direction bit says response, expected a request"
    )


def test_names_without_values_are_no_names() -> None:
    # Found by test_what_encodes_decodes: QueryParameters(names=())
    # encoded the NAMES_FOR_VALUES flag with no values, which decodes to
    # names=None: the message did not round-trip.
    built = Query(query="Q", parameters=QueryParameters(names=()))
    assert built.parameters == QueryParameters()
    assert decode_message(built.opcode, built.encode_body(4), 4) == built


def test_column_count_needs_no_metadata() -> None:
    # Found by test_what_encodes_decodes: RowsMetadata(column_count=2) with
    # no columns and no_metadata=False encoded a columns count of 2 and no
    # column specs, a body its own decoder refused.
    with pytest.raises(LocalProtocolError, match="column_count=2 is the count sent with no_metadata=True"):
        RowsMetadata(column_count=2)


def test_rows_of_no_columns_cannot_be_built() -> None:
    # The encoder's side of test_limits' zero-width rows: what read() refuses
    # (a count of rows of no cells) cannot be built.
    with pytest.raises(LocalProtocolError, match="2 rows of no columns"):
        RowsResult(rows=((), ()))
    assert RowsResult(metadata=RowsMetadata(no_metadata=True, column_count=0)).rows == ()
