# Hypothesis strategies for the protocol core, shared by the CI-sized
# property tests (test_properties.py) and the long run (fuzz/long_run.py):
# every CQL type and a value of it, every message of every version, frames,
# v5 segments (plain and LZ4, frames cut anywhere across them), whole client
# sessions for ServerConnection, and mutations of valid encodings for the
# fuzz properties. Also the settings profiles both runs use.
#
# Rules: a value or message strategy draws only the canonical form, i.e. what
# fakecql's decoder itself returns for that version (types.py's header lists
# the value forms), so that encode -> decode must give an equal object.
# Values are compared through canonical(), which is NaN-safe: floats compare
# by their bits on the wire, decimals by their digits and exponent. Segments
# are built here from the spec's layout with fakecql's public crc24/crc32
# (test_frames.py checks those against an independent implementation), so
# that a frame can be cut at any byte across segments.
from __future__ import annotations

import collections
import decimal
import functools
import os
import struct
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from fakecql.protocol import types as T
from fakecql.protocol.compression import Lz4
from fakecql.protocol.connection import ProtocolViolation, RequestReceived
from fakecql.protocol.errors import ErrorCode, LocalProtocolError
from fakecql.protocol.frames import (
    MAX_SEGMENT_PAYLOAD,
    FrameFlag,
    Opcode,
    crc24,
    crc32,
    encode_frame,
)
from fakecql.protocol.messages import (
    AlreadyExistsInfo,
    ClientRoutesChange,
    AuthChallenge,
    Authenticate,
    AuthResponse,
    AuthSuccess,
    Batch,
    BatchStatement,
    BatchType,
    CasWriteUnknownInfo,
    ColumnSpec,
    Consistency,
    Error,
    Event,
    Execute,
    FunctionFailureInfo,
    Message,
    Options,
    Prepare,
    PreparedMetadata,
    PreparedResult,
    Query,
    QueryParameters,
    ReadFailureInfo,
    ReadTimeoutInfo,
    Ready,
    Register,
    RowsMetadata,
    RowsResult,
    SchemaChange,
    SchemaChangeResult,
    SetKeyspaceResult,
    Startup,
    StatusChange,
    Supported,
    TopologyChange,
    UnavailableInfo,
    UnpreparedInfo,
    VoidResult,
    WriteFailureInfo,
    WriteTimeoutInfo,
)
from fakecql.protocol.wire import UNSET, Writer

VERSIONS = (3, 4, 5)
LZ4 = Lz4()

# -- settings profiles ---------------------------------------------------------
# "fakecql-ci": the suite's run, sized so that test_properties.py takes well
# under a minute on two cores; derandomized (the same cases every run, so CI
# is stable) and database-less (no .hypothesis directory in the checkout).
# test_properties.py loads it unless FAKECQL_HYPOTHESIS_PROFILE names another.
CI_PROFILE = "fakecql-ci"
COMMON_SETTINGS: Dict[str, Any] = dict(
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(CI_PROFILE, max_examples=60, derandomize=True, **COMMON_SETTINGS)
# "fakecql-long": fresh random cases each run, FAKECQL_LONG_EXAMPLES of them
# per property (fuzz/long_run.py sets it; its workers read it here too).
LONG_PROFILE = "fakecql-long"
settings.register_profile(
    LONG_PROFILE,
    max_examples=int(os.environ.get("FAKECQL_LONG_EXAMPLES", "1000")),
    derandomize=False,
    **COMMON_SETTINGS,
)
# Whatever the database, Hypothesis caches constants and Unicode tables in
# ./.hypothesis: keep that out of the checkout too, unless the user says where.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "fakecql-hypothesis"))

# Cases run so far, by every property (test_properties.counted adds to it).
CASES: collections.Counter = collections.Counter()


# -- small pieces ------------------------------------------------------------
def ints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


SHORT = st.integers(0, 0xFFFF)
INT32 = ints(32)
LONG = ints(64)
names = st.text(max_size=8)  # [string]s: keyspaces, tables, columns, options
short_bytes = st.binary(max_size=16)
consistencies = st.sampled_from(list(Consistency))
addresses = st.ip_addresses()


# Strategy factories are cached (@_once): Hypothesis validates each new
# strategy object it draws from, which is slow for the recursive ones.
_once = functools.lru_cache(maxsize=None)


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


# -- CQL types -----------------------------------------------------------------
NATIVES: Tuple[T.NativeType, ...] = tuple(
    sorted(set(T.NATIVE_TYPES.values()), key=lambda t: t.option_id)
)


def _udt(keyspace: str, name: str, fields: List[Tuple[str, T.CqlType]]) -> T.UserType:
    unique: Dict[str, T.CqlType] = {}
    for field_name, field_type in fields:
        unique.setdefault(field_name, field_type)  # field names are unique in a UDT
    return T.UserType(keyspace, name, tuple(unique.items()))


# Strategies here keep their repr short (names, not NativeType objects, and no
# filters): Hypothesis builds reprs for its notes, and warns past 30 kB.
_native_types = st.sampled_from([t.name for t in NATIVES]).map(T.NATIVE_TYPES.__getitem__)


@_once
def cql_types(max_leaves: int = 6) -> st.SearchStrategy[T.CqlType]:
    """Every CQL type: natives, custom, and collections, tuples and UDTs nested."""

    def extend(children: st.SearchStrategy[T.CqlType]) -> st.SearchStrategy[T.CqlType]:
        return st.one_of(
            st.builds(T.ListType, children),
            st.builds(T.SetType, children),
            st.builds(T.MapType, children, children),
            st.lists(children, max_size=4).map(lambda items: T.TupleType(tuple(items))),
            st.builds(_udt, names, names, st.lists(st.tuples(names, children), max_size=4)),
        )

    leaves = _native_types | st.builds(T.CustomType, st.text(max_size=20))
    return st.recursive(leaves, extend, max_leaves=max_leaves)


@st.composite
def durations(draw: Any) -> T.Duration:
    sign = draw(st.sampled_from((1, -1)))
    spare = 0 if sign > 0 else 1  # -2**31 is in range, 2**31 is not
    months = draw(st.integers(0, 2**31 - 1 + spare))
    days = draw(st.integers(0, 2**31 - 1 + spare))
    nanoseconds = draw(st.integers(0, 2**63 - 1 + spare))
    return T.Duration(months=sign * months, days=sign * days, nanoseconds=sign * nanoseconds)


def decimal_from(unscaled: int, scale: int) -> decimal.Decimal:
    # Built from its digits, not from a string: exact, whatever the context.
    digits = decimal.Decimal(abs(unscaled)).as_tuple().digits
    return decimal.Decimal((1 if unscaled < 0 else 0, digits, -scale))


_NATIVE_VALUES: Dict[str, st.SearchStrategy[Any]] = {
    "ascii": st.text(st.characters(max_codepoint=0x7F), max_size=20),
    "bigint": LONG,
    "blob": st.binary(max_size=20),
    "boolean": st.booleans(),
    "counter": LONG,
    # -0 has no varint: a decimal's sign lives in its unscaled integer.
    "decimal": st.builds(decimal_from, st.integers() | ints(1024), INT32),
    "double": st.floats(),
    "float": st.floats(width=32),
    "int": INT32,
    "timestamp": LONG,
    "uuid": st.uuids(),
    "text": st.text(max_size=20),
    "varint": st.integers() | ints(1024),
    "timeuuid": st.uuids(version=1),
    "inet": addresses,
    "date": INT32,
    "time": st.integers(0, 86_400 * 10**9 - 1),
    "smallint": ints(16),
    "tinyint": ints(8),
    "duration": durations(),
}


def _pairs_to_dict(pairs: Sequence[Tuple[Any, Any]]) -> Dict[Any, Any]:
    out: Dict[Any, Any] = {}
    for key, item in pairs:
        out[key] = item  # as the decoder builds it: a repeated key keeps its first object
    return out


def values_of(cql_type: T.CqlType, key: bool = False) -> st.SearchStrategy[Any]:
    """A value of `cql_type` in the form deserialize() returns it.

    `key`: the value is (inside) a map key, where the decoder makes
    collections hashable: lists become tuples, maps and UDTs tuples of pairs.
    """
    if isinstance(cql_type, T.NativeType):
        return _NATIVE_VALUES[cql_type.name]
    if isinstance(cql_type, T.CustomType):
        return st.binary(max_size=20)
    if isinstance(cql_type, (T.ListType, T.SetType)):
        items = st.lists(values_of(cql_type.element, key), max_size=4)
        return items.map(tuple) if key else items
    if isinstance(cql_type, T.MapType):
        pairs = st.lists(
            st.tuples(values_of(cql_type.key, True), values_of(cql_type.value, key)), max_size=4
        )
        mapping = pairs.map(_pairs_to_dict)
        return mapping.map(lambda d: tuple(d.items())) if key else mapping
    if isinstance(cql_type, T.TupleType):
        return st.tuples(*(optional(values_of(e, key)) for e in cql_type.elements))
    if isinstance(cql_type, T.UserType):
        order = [name for name, _ in cql_type.fields]
        fields = st.fixed_dictionaries(
            {name: optional(values_of(field_type, key)) for name, field_type in cql_type.fields}
        ).map(lambda d: {name: d[name] for name in order})  # the type's order, as decoded
        return fields.map(lambda d: tuple(d.items())) if key else fields
    raise AssertionError(f"no value strategy for {cql_type!r}")


@_once
def typed_values(max_leaves: int = 6) -> st.SearchStrategy[Tuple[T.CqlType, Any]]:
    return cql_types(max_leaves).flatmap(lambda t: st.tuples(st.just(t), values_of(t)))


def canonical(cql_type: T.CqlType, value: Any) -> Any:
    """A form of `value` that compares equal exactly when the values are the same.

    Floats compare by their bits as `cql_type` puts them on the wire (NaN is
    equal to the same NaN), decimals by sign, digits and exponent (1.0 is
    not 1.00), maps and UDTs in wire order, everything with its Python type.
    """
    if value is None:
        return None
    if isinstance(cql_type, T.NativeType):
        if cql_type.name == "double":
            return ("double", struct.pack(">d", value))
        if cql_type.name == "float":
            return ("float", struct.pack(">f", value))
        if cql_type.name == "decimal":
            return ("decimal", value.as_tuple())
        return (type(value).__name__, value)
    if isinstance(cql_type, T.CustomType):
        return ("bytes", value)
    if isinstance(cql_type, (T.ListType, T.SetType)):
        return ("list", [canonical(cql_type.element, v) for v in value])
    if isinstance(cql_type, T.MapType):
        pairs = value.items() if isinstance(value, dict) else value
        return ("map", [(canonical(cql_type.key, k), canonical(cql_type.value, v)) for k, v in pairs])
    if isinstance(cql_type, T.TupleType):
        return ("tuple", [canonical(t, v) for t, v in zip(cql_type.elements, value)], len(value))
    if isinstance(cql_type, T.UserType):
        if isinstance(value, dict):  # a dict compares whatever its order
            return ("udt", [(name, canonical(t, value.get(name))) for name, t in cql_type.fields])
        types = dict(cql_type.fields)  # (name, value) pairs, as a map key: their order counts
        return ("udt-key", [(name, canonical(types[name], v)) for name, v in value])
    raise AssertionError(f"no canonical form for {cql_type!r}")


def type_option_bytes(cql_type: T.CqlType) -> bytes:
    out = Writer()
    T.write_type_option(out, cql_type)
    return out.getvalue()


# -- messages ----------------------------------------------------------------
# Each builder takes the protocol version and draws a message in the form
# decode_message() returns in that version. The encoders leave out what a
# version cannot carry rather than refuse it, so these fields follow the
# version: Execute.result_metadata_id and PreparedResult.result_metadata_id
# (v5 only; b"" in v5 when not given), PreparedMetadata.pk_indexes (v4+),
# WriteTimeoutInfo.contentions (v5 and CAS only), the failure errors'
# num_failures (v3/v4) and reasons (v5; num_failures is then their count).
# SchemaChange.arg_types go with FUNCTION and AGGREGATE only, and a
# no_metadata RowsMetadata has a column_count and no columns.
# free_messages() below draws the other combinations.
@_once
def bound_values(version: int) -> st.SearchStrategy[Any]:
    value = st.none() | st.binary(max_size=8)
    return value | st.just(UNSET) if version >= 4 else value


def v5_only(version: int, strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return optional(strategy) if version >= 5 else st.none()


@_once
@st.composite
def query_parameters(draw: Any, version: int) -> QueryParameters:
    values = tuple(draw(st.lists(bound_values(version), max_size=4)))
    # NAMES_FOR_VALUES without values decodes to names=None: names only with values.
    with_names = bool(values) and draw(st.booleans())
    value_names = tuple(draw(st.lists(names, min_size=len(values), max_size=len(values)))) if with_names else None
    return QueryParameters(
        consistency=draw(consistencies),
        values=values,
        names=value_names,
        skip_metadata=draw(st.booleans()),
        page_size=draw(optional(st.integers(1, 2**31 - 1))),
        paging_state=draw(optional(short_bytes)),
        serial_consistency=draw(optional(consistencies)),
        timestamp=draw(optional(LONG)),
        keyspace=draw(v5_only(version, names)),
        now_in_seconds=draw(v5_only(version, INT32)),
    )


@_once
def _startup(version: int) -> st.SearchStrategy[Startup]:
    return st.builds(Startup, options=st.dictionaries(names, names, max_size=4))


@_once
def _query(version: int) -> st.SearchStrategy[Query]:
    return st.builds(Query, query=st.text(max_size=40), parameters=query_parameters(version))


@_once
def _prepare(version: int) -> st.SearchStrategy[Prepare]:
    return st.builds(Prepare, query=st.text(max_size=40), keyspace=v5_only(version, names))


@_once
def _execute(version: int) -> st.SearchStrategy[Execute]:
    return st.builds(
        Execute,
        query_id=short_bytes,
        parameters=query_parameters(version),
        result_metadata_id=short_bytes if version >= 5 else st.none(),
    )


@_once
@st.composite
def batch_statements(draw: Any, version: int) -> BatchStatement:
    values = tuple(draw(st.lists(bound_values(version), max_size=3)))
    if draw(st.booleans()):
        return BatchStatement(query=draw(st.text(max_size=20)), values=values)
    return BatchStatement(query_id=draw(short_bytes), values=values)


@_once
def _batch(version: int) -> st.SearchStrategy[Batch]:
    return st.builds(
        Batch,
        statements=st.lists(batch_statements(version), max_size=4).map(tuple),
        batch_type=st.sampled_from(list(BatchType)),
        consistency=consistencies,
        serial_consistency=optional(consistencies),
        timestamp=optional(LONG),
        keyspace=v5_only(version, names),
        now_in_seconds=v5_only(version, INT32),
    )


@_once
def _register(version: int) -> st.SearchStrategy[Register]:
    return st.builds(Register, event_types=st.lists(names, max_size=3).map(tuple))


def _tokens(cls: Callable[..., Message]) -> Callable[[int], st.SearchStrategy[Message]]:
    return lambda version: st.builds(cls, token=optional(st.binary(max_size=20)))


REQUEST_BUILDERS: Dict[type, Callable[[int], st.SearchStrategy[Any]]] = {
    Startup: _startup,
    Options: lambda version: st.just(Options()),
    Query: _query,
    Prepare: _prepare,
    Execute: _execute,
    Batch: _batch,
    Register: _register,
    AuthResponse: _tokens(AuthResponse),
}


# ERROR: the extra fields of each code
@_once
def _reasons(version: int) -> st.SearchStrategy[Any]:
    return st.lists(st.tuples(addresses, SHORT), max_size=3).map(tuple)


@_once
@st.composite
def _failure_fields(draw: Any, version: int) -> Dict[str, Any]:
    if version >= 5:
        reasons = draw(_reasons(version))
        return dict(num_failures=len(reasons), reasons=reasons)
    return dict(num_failures=draw(INT32), reasons=())


@_once
@st.composite
def _write_timeout(draw: Any, version: int) -> WriteTimeoutInfo:
    write_type = draw(st.sampled_from(["SIMPLE", "BATCH", "CAS", "COUNTER"]) | names)
    contentions = draw(SHORT) if version >= 5 and write_type == "CAS" else None
    return WriteTimeoutInfo(
        consistency=draw(consistencies), received=draw(INT32), block_for=draw(INT32),
        write_type=write_type, contentions=contentions,
    )


@_once
@st.composite
def _read_failure(draw: Any, version: int) -> ReadFailureInfo:
    return ReadFailureInfo(
        consistency=draw(consistencies), received=draw(INT32), block_for=draw(INT32),
        data_present=draw(st.booleans()), **draw(_failure_fields(version)),
    )


@_once
@st.composite
def _write_failure(draw: Any, version: int) -> WriteFailureInfo:
    return WriteFailureInfo(
        consistency=draw(consistencies), received=draw(INT32), block_for=draw(INT32),
        write_type=draw(names), **draw(_failure_fields(version)),
    )


ERROR_INFO_BUILDERS: Dict[ErrorCode, Callable[[int], st.SearchStrategy[Any]]] = {
    ErrorCode.UNAVAILABLE: lambda v: st.builds(
        UnavailableInfo, consistency=consistencies, required=INT32, alive=INT32
    ),
    ErrorCode.WRITE_TIMEOUT: _write_timeout,
    ErrorCode.READ_TIMEOUT: lambda v: st.builds(
        ReadTimeoutInfo, consistency=consistencies, received=INT32, block_for=INT32,
        data_present=st.booleans(),
    ),
    ErrorCode.READ_FAILURE: _read_failure,
    ErrorCode.WRITE_FAILURE: _write_failure,
    ErrorCode.FUNCTION_FAILURE: lambda v: st.builds(
        FunctionFailureInfo, keyspace=names, function=names,
        arg_types=st.lists(names, max_size=3).map(tuple),
    ),
    ErrorCode.CAS_WRITE_UNKNOWN: lambda v: st.builds(
        CasWriteUnknownInfo, consistency=consistencies, received=INT32, block_for=INT32
    ),
    ErrorCode.ALREADY_EXISTS: lambda v: st.builds(AlreadyExistsInfo, keyspace=names, table=names),
    ErrorCode.UNPREPARED: lambda v: st.builds(UnpreparedInfo, statement_id=short_bytes),
}


@_once
def errors(version: int, code: Optional[ErrorCode] = None) -> st.SearchStrategy[Error]:
    codes = st.just(code) if code is not None else st.sampled_from(list(ErrorCode))

    def with_info(c: ErrorCode) -> st.SearchStrategy[Error]:
        builder = ERROR_INFO_BUILDERS.get(c)
        info = builder(version) if builder is not None else st.none()
        return st.builds(Error, code=st.just(c), message=st.text(max_size=30), info=info)

    return codes.flatmap(with_info)


# RESULT
@_once
def column_specs(max_size: int = 4) -> st.SearchStrategy[Tuple[ColumnSpec, ...]]:
    one = st.builds(ColumnSpec, keyspace=names, table=names, name=names, type=cql_types(4))
    spread = st.lists(one, max_size=max_size)
    # One table for all (the global spec flag) is the common case: draw it often.
    shared = st.tuples(names, names, st.lists(st.tuples(names, cql_types(4)), max_size=max_size)).map(
        lambda t: [ColumnSpec(keyspace=t[0], table=t[1], name=n, type=ty) for n, ty in t[2]]
    )
    return (spread | shared).map(tuple)


@_once
@st.composite
def rows_metadata(draw: Any, version: int) -> RowsMetadata:
    paging_state = draw(optional(short_bytes))
    new_metadata_id = draw(v5_only(version, short_bytes))
    if draw(st.booleans()):
        return RowsMetadata(
            no_metadata=True, column_count=draw(st.integers(0, 5)),
            paging_state=paging_state, new_metadata_id=new_metadata_id,
        )
    return RowsMetadata(
        columns=draw(column_specs()), paging_state=paging_state, new_metadata_id=new_metadata_id
    )


@_once
@st.composite
def _rows(draw: Any, version: int) -> RowsResult:
    metadata = draw(rows_metadata(version))
    width = metadata.count
    cell = optional(st.binary(max_size=8))
    if width:
        rows = draw(st.lists(st.lists(cell, min_size=width, max_size=width).map(tuple), max_size=4))
    else:
        rows = []  # rows of no cells: see RowsResult
    return RowsResult(metadata=metadata, rows=tuple(rows))


@_once
@st.composite
def _prepared(draw: Any, version: int) -> PreparedResult:
    columns = draw(column_specs())
    pk_indexes = draw(st.lists(SHORT, max_size=3).map(tuple)) if version >= 4 else ()
    return PreparedResult(
        query_id=draw(short_bytes),
        bind_metadata=PreparedMetadata(columns=columns, pk_indexes=pk_indexes),
        result_metadata=draw(rows_metadata(version)),
        result_metadata_id=draw(short_bytes) if version >= 5 else None,
    )


@st.composite
def schema_changes(draw: Any) -> SchemaChange:
    target = draw(st.sampled_from(["KEYSPACE", "TABLE", "TYPE", "FUNCTION", "AGGREGATE"]))
    return SchemaChange(
        change_type=draw(st.sampled_from(["CREATED", "UPDATED", "DROPPED"])),
        target=target,
        keyspace=draw(names),
        name=None if target == "KEYSPACE" else draw(names),
        arg_types=(
            tuple(draw(st.lists(names, max_size=3))) if target in ("FUNCTION", "AGGREGATE") else ()
        ),
    )


RESULT_BUILDERS: Dict[type, Callable[[int], st.SearchStrategy[Any]]] = {
    VoidResult: lambda version: st.just(VoidResult()),
    RowsResult: _rows,
    SetKeyspaceResult: lambda version: st.builds(SetKeyspaceResult, keyspace=names),
    PreparedResult: _prepared,
    SchemaChangeResult: lambda version: st.builds(SchemaChangeResult, change=schema_changes()),
}


@_once
def _event(version: int) -> st.SearchStrategy[Event]:
    node = dict(address=addresses, port=INT32)
    return st.builds(
        Event,
        event=st.one_of(
            st.builds(TopologyChange, change=st.sampled_from(["NEW_NODE", "REMOVED_NODE", "MOVED_NODE"]), **node),
            st.builds(StatusChange, change=st.sampled_from(["UP", "DOWN"]), **node),
            schema_changes(),
            st.builds(ClientRoutesChange, connection_ids=st.lists(names, max_size=3).map(tuple),
                      host_ids=st.lists(names, max_size=3).map(tuple)),
        ),
    )


RESPONSE_BUILDERS: Dict[type, Callable[[int], st.SearchStrategy[Any]]] = {
    Error: errors,
    Ready: lambda version: st.just(Ready()),
    Authenticate: lambda version: st.builds(Authenticate, authenticator=names),
    Supported: lambda version: st.builds(
        Supported, options=st.dictionaries(names, st.lists(names, max_size=3), max_size=3)
    ),
    **RESULT_BUILDERS,
    Event: _event,
    AuthChallenge: _tokens(AuthChallenge),
    AuthSuccess: _tokens(AuthSuccess),
}

MESSAGE_BUILDERS: Dict[type, Callable[[int], st.SearchStrategy[Any]]] = {
    **REQUEST_BUILDERS,
    **RESPONSE_BUILDERS,
}


@_once
def requests(version: int) -> st.SearchStrategy[Any]:
    return st.one_of([builder(version) for builder in REQUEST_BUILDERS.values()])


@_once
def responses(version: int) -> st.SearchStrategy[Any]:
    return st.one_of([builder(version) for builder in RESPONSE_BUILDERS.values()])


@_once
def versioned(builder: Callable[[int], st.SearchStrategy[Any]]) -> st.SearchStrategy[Tuple[int, Any]]:
    """(version, message) for every version the message exists in (all of 3-5)."""
    return st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), builder(v)))


@_once
def versioned_errors(code: ErrorCode) -> st.SearchStrategy[Tuple[int, Error]]:
    """(version, ERROR of `code`) for every version."""
    return st.sampled_from(VERSIONS).flatmap(lambda v: st.tuples(st.just(v), errors(v, code)))


@_once
def any_message() -> st.SearchStrategy[Tuple[int, Any, bool]]:
    """(version, message, is_response) over every message class."""
    def pick(version: int) -> st.SearchStrategy[Tuple[int, Any, bool]]:
        return st.one_of(
            requests(version).map(lambda m: (version, m, False)),
            responses(version).map(lambda m: (version, m, True)),
        )
    return st.sampled_from(VERSIONS).flatmap(pick)


# -- frames and segments -----------------------------------------------------
OPCODES = [int(o) for o in Opcode]


@st.composite
def frames(draw: Any, version: Optional[int] = None, is_response: Optional[bool] = None) -> Tuple[int, bool, int, int, int, bytes]:
    """(version, is_response, flags, stream, opcode, body) of one frame."""
    version = draw(st.sampled_from(VERSIONS)) if version is None else version
    is_response = draw(st.booleans()) if is_response is None else is_response
    return (
        version, is_response, draw(st.integers(0, 0xFF)), draw(ints(16)),
        draw(st.sampled_from(OPCODES)), draw(st.binary(max_size=64)),
    )


def big_payloads(min_size: int = MAX_SEGMENT_PAYLOAD - 8, max_size: int = 2 * MAX_SEGMENT_PAYLOAD + 8) -> st.SearchStrategy[bytes]:
    """Payloads around and over a segment's limit, cheap to draw: random or repetitive."""
    random_bytes = st.builds(
        lambda r, n: r.getrandbits(8 * n).to_bytes(n, "little"),
        st.randoms(use_true_random=False), st.integers(min_size, max_size),
    )
    repeated = st.builds(
        lambda seed, n: (seed * (n // len(seed) + 1))[:n],
        st.binary(min_size=1, max_size=32), st.integers(min_size, max_size),
    )
    return random_bytes | repeated


def segment(payload: bytes, *, self_contained: bool = True, compressor: Optional[Lz4] = None) -> bytes:
    """One v5 segment around `payload` (v5 spec 2.1 and 2.2), compressed if that helps."""
    if compressor is None:
        header, size = len(payload) | (int(self_contained) << 17), 3
    else:
        compressed = compressor.compress_raw(payload)
        if len(compressed) < len(payload):
            header = len(compressed) | (len(payload) << 17) | (int(self_contained) << 34)
            payload = compressed
        else:  # uncompressed length 0: sent as it is
            header = len(payload) | (int(self_contained) << 34)
        size = 5
    return (
        header.to_bytes(size, "little")
        + crc24(header, size).to_bytes(3, "little")
        + payload
        + crc32(payload).to_bytes(4, "little")
    )


def split(data: bytes, cuts: Sequence[int]) -> List[bytes]:
    """`data` cut at the given offsets (taken modulo its length, sorted)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])] or [b""]


def segments(data: bytes, cuts: Sequence[int], compressor: Optional[Lz4] = None) -> bytes:
    """`data` in segments cut at `cuts` and wherever a segment would be too long."""
    out = []
    for piece in split(data, cuts):
        for i in range(0, max(len(piece), 1), MAX_SEGMENT_PAYLOAD):
            chunk = piece[i : i + MAX_SEGMENT_PAYLOAD]
            out.append(segment(chunk, self_contained=False, compressor=compressor))
    return b"".join(out)


cut_lists = st.lists(st.integers(0, 2**20), max_size=8)


# -- client sessions for ServerConnection --------------------------------------
def request_frame(
    version: int, stream: int, message: Any, *, compressor: Optional[Lz4] = None, tracing: bool = False,
    custom_payload: Optional[Dict[str, Optional[bytes]]] = None,
) -> bytes:
    """A request frame as a client sends it (v3/v4 bodies compressed when `compressor`)."""
    flags = FrameFlag.TRACING if tracing else 0
    body = message.encode_body(version)
    if custom_payload is not None:
        flags |= FrameFlag.CUSTOM_PAYLOAD
        body = Writer().bytes_map(custom_payload).getvalue() + body
    if compressor is not None and version < 5:
        flags |= FrameFlag.COMPRESSION
        body = compressor.compress_body(body)
    return encode_frame(version, stream, message.opcode, body, flags=int(flags), is_response=False)


@st.composite
def sessions(draw: Any, mutate: bool = False) -> Dict[str, Any]:
    """A client's bytes: STARTUP (the node then sends READY), then requests.

    Returns the version, whether LZ4 was negotiated, the bytes before READY
    and after it (in v5: segments, LZ4 ones when negotiated, frames cut at
    any byte), the requests expected, and two cut lists for each part. With
    `mutate`, the frames or the segments (or both) are damaged.
    """
    version = draw(st.sampled_from(VERSIONS))
    compressed = draw(st.booleans())
    options = {"CQL_VERSION": "3.0.0", **({"COMPRESSION": "lz4"} if compressed else {})}
    startup = (draw(ints(16)), Startup(options=options), False, None)
    before = request_frame(version, startup[0], startup[1])
    compressor = LZ4 if compressed else None
    expected = [startup]
    frames_after = []
    for _ in range(draw(st.integers(0, 4))):
        stream, message = draw(ints(16)), draw(requests(version))
        tracing = draw(st.booleans())
        custom = draw(optional(st.dictionaries(names, optional(short_bytes), max_size=2))) if version >= 4 else None
        frame = request_frame(version, stream, message, compressor=compressor, tracing=tracing, custom_payload=custom)
        frames_after.append(frame)
        expected.append((stream, message, tracing, custom))
    if draw(st.booleans()):  # one frame longer than a segment's payload
        stream = draw(ints(16))
        message = AuthResponse(token=draw(big_payloads()))
        frames_after.append(request_frame(version, stream, message, compressor=compressor))
        expected.append((stream, message, False, None))
    after = b"".join(frames_after)
    where = draw(st.sampled_from(["before", "frames", "segments", "frames+segments"])) if mutate else ""
    if where == "before":
        before = draw(mutations(before))
    if "frames" in where:
        after = draw(mutations(after))
    if version >= 5:
        after = segments(after, draw(cut_lists), compressor)
        if "segments" in where:
            after = draw(mutations(after))
    return dict(
        version=version, compressed=compressed, before=before, after=after, expected=expected,
        cuts=((draw(cut_lists), draw(cut_lists)), (draw(cut_lists), draw(cut_lists))),
    )


def expected_events(session: Dict[str, Any]) -> List[Any]:
    """The events an undamaged session gives: STARTUP, then each request."""
    version = session["version"]
    return [
        RequestReceived(
            stream=stream, version=version, message=message, tracing=tracing,
            custom_payload=custom, length=0,
        )
        for stream, message, tracing, custom in session["expected"]
    ]


def event_key(event: Any) -> Any:
    """An event in a form that compares by value (errors compare by identity)."""
    if isinstance(event, ProtocolViolation):
        return (
            "violation", type(event.error).__name__, event.message, event.stream,
            event.version, event.fatal, event.opcode,
        )
    assert isinstance(event, RequestReceived), event
    return ("request", event.stream, event.version, event.message, event.tracing, event.custom_payload)


# -- mutations ---------------------------------------------------------------
# Values that lengths and counts are made of when they lie: huge, negative
# (-1 null, -2 unset, -3), the sign bit, one past a short, zero.
INTERESTING_INTS = [
    0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000,
    0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0x10000000, 0x12C00000,  # 0x12c00000: 300 MiB
]


@st.composite
def mutations(draw: Any, data: bytes) -> bytes:
    """`data` damaged 1 to 4 times: bit flips, cuts, insertions, lying lengths."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length", "byte"]))
        at = draw(st.integers(0, len(buf)))
        if kind == "flip" and buf:
            at = min(at, len(buf) - 1)
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buf[at:]
        elif kind == "insert":
            buf[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del buf[at : at + draw(st.integers(1, 8))]
        elif kind == "length":
            width = draw(st.sampled_from([1, 2, 4]))
            value = draw(st.sampled_from(INTERESTING_INTS)) & ((1 << (8 * width)) - 1)
            buf[at : at + width] = value.to_bytes(width, "big")
        elif kind == "byte" and buf:
            at = min(at, len(buf) - 1)
            buf[at] = draw(st.integers(0, 0xFF))
    return bytes(buf)


def mutated(data: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return data.flatmap(mutations)


def fuzz_bytes(valid: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or (more often) a valid encoding damaged."""
    return st.one_of(st.binary(max_size=64), mutated(valid), mutated(valid))


# -- messages built freely -------------------------------------------------------
# Any combination of fields, whatever the version: the versions' optional
# fields, counts that disagree with what they count. The message refuses to
# be built or encoded (LocalProtocolError: None here) or it must decode.
def _built(factory: Callable[[], Any]) -> Any:
    try:
        return factory()
    except LocalProtocolError:
        return None


@st.composite
def _free_rows(draw: Any) -> Any:
    metadata = _built(lambda: RowsMetadata(
        columns=draw(column_specs(3)), paging_state=draw(optional(short_bytes)),
        no_metadata=draw(st.booleans()), column_count=draw(optional(st.integers(0, 3))),
        new_metadata_id=draw(optional(short_bytes)),
    ))
    width = draw(st.integers(0, 3))
    rows = draw(st.lists(st.lists(optional(short_bytes), min_size=width, max_size=width).map(tuple), max_size=3))
    return _built(lambda: RowsResult(metadata=metadata, rows=tuple(rows))) if metadata else None


@st.composite
def _free_parameters(draw: Any) -> Any:
    values = tuple(draw(st.lists(bound_values(5), max_size=3)))
    return _built(lambda: Query(query="Q", parameters=QueryParameters(
        values=values, names=draw(optional(st.lists(names, max_size=3).map(tuple))),
        page_size=draw(optional(st.integers(1, 2**31 - 1))), keyspace=draw(optional(names)),
        now_in_seconds=draw(optional(INT32)),
    )))


@st.composite
def _free_failures(draw: Any) -> Any:
    common = dict(consistency=draw(consistencies), received=draw(INT32), block_for=draw(INT32))
    free = dict(num_failures=draw(INT32), reasons=draw(_reasons(5)))
    info = draw(st.sampled_from([
        lambda: WriteTimeoutInfo(**common, write_type=draw(st.sampled_from(["CAS", "SIMPLE"])), contentions=draw(optional(SHORT))),
        lambda: ReadFailureInfo(**common, data_present=draw(st.booleans()), **free),
        lambda: WriteFailureInfo(**common, write_type=draw(names), **free),
    ]))()
    return Error(code=info.codes[0], message="", info=info)


@st.composite
def _free_prepared(draw: Any) -> Any:
    return _built(lambda: PreparedResult(
        query_id=draw(short_bytes),
        bind_metadata=PreparedMetadata(columns=draw(column_specs(3)), pk_indexes=tuple(draw(st.lists(SHORT, max_size=3)))),
        result_metadata=draw(rows_metadata(5)),
        result_metadata_id=draw(optional(short_bytes)),
    ))


@st.composite
def _free_schema_change(draw: Any) -> Any:
    return _built(lambda: SchemaChangeResult(change=SchemaChange(
        change_type=draw(st.sampled_from(["CREATED", "UPDATED", "DROPPED"])),
        target=draw(st.sampled_from(["KEYSPACE", "TABLE", "TYPE", "FUNCTION", "AGGREGATE"])),
        keyspace=draw(names), name=draw(optional(names)),
        arg_types=tuple(draw(st.lists(names, max_size=2))),
    )))


def free_messages() -> st.SearchStrategy[Tuple[int, Any, bool]]:
    """(version, message, is_response): messages of one version, or built freely, in any version."""
    other_version = any_message().map(lambda vmr: (vmr[1], vmr[2]))
    free = st.one_of(
        _free_rows().map(lambda m: (m, True)),
        _free_parameters().map(lambda m: (m, False)),
        _free_failures().map(lambda m: (m, True)),
        _free_prepared().map(lambda m: (m, True)),
        _free_schema_change().map(lambda m: (m, True)),
        st.builds(Execute, query_id=short_bytes, result_metadata_id=optional(short_bytes)).map(lambda m: (m, False)),
    ).filter(lambda mr: mr[0] is not None)
    return st.tuples(st.sampled_from(VERSIONS), other_version | free).map(lambda t: (t[0], *t[1]))
