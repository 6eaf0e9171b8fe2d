# Every opcode, every RESULT kind, every EVENT type and every error code
# against bodies written by hand from the spec (v3, v4 and v5 section 4, and
# section 9 / v5 section 8 for the error codes): encode_body() gives the hex,
# decode_message() gives the message back, in each version the row names.
# Then malformed bodies: every prefix of every body, trailing garbage, bad
# UTF-8, bad consistencies, unknown flags, and the messages fakecql refuses to
# build or to encode in a version that cannot carry them.
#
# Rules: hex derived by hand from the spec text; a(...) only spells ASCII
# names, every length in front of them is written by hand.
import ipaddress

import pytest

from fakecql.protocol.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from fakecql.protocol.frames import Opcode
from fakecql.protocol.messages import (
    ClientRoutesChange,
    REQUEST_TYPES,
    RESPONSE_TYPES,
    AlreadyExistsInfo,
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
    decode_message,
)
from fakecql.protocol.types import NATIVE_TYPES, ListType, MapType
from fakecql.protocol.wire import UNSET


def h(text: str) -> bytes:
    """Hex written by hand; spaces and newlines are ignored."""
    return bytes.fromhex(text)


def a(text: str) -> str:
    """The hex of ASCII characters, to spell names inside hand-written hex."""
    return text.encode("ascii").hex()


def col(keyspace, table, name, cql_type):
    return ColumnSpec(keyspace=keyspace, table=table, name=name, type=cql_type)


INT, TEXT, BOOLEAN = NATIVE_TYPES["int"], NATIVE_TYPES["text"], NATIVE_TYPES["boolean"]
C = Consistency
IP4 = ipaddress.IPv4Address
IP6 = ipaddress.IPv6Address
Q = "00000001 51"  # the [long string] "Q"
TS = "0004000000000000"  # [long] 2^50, a default timestamp
ALL = (3, 4, 5)

# -- requests -----------------------------------------------------------------
# (id, message, versions, hand-written body)
REQUESTS = [
    ("startup", Startup(options={"CQL_VERSION": "3.0.0"}), ALL, "0001 000b" + a("CQL_VERSION") + "0005" + a("3.0.0")),
    ("startup-empty", Startup(), ALL, "0000"),
    ("options", Options(), ALL, ""),
    # QUERY: <query><consistency><flags>...; flags a [byte] up to v4, an [int] in v5
    ("query-minimal", Query(query="SELECT 1"), (3, 4), "00000008" + a("SELECT 1") + "0001 00"),
    ("query-minimal", Query(query="SELECT 1"), (5,), "00000008" + a("SELECT 1") + "0001 00000000"),
    (
        "query-values-null-unset",
        Query(query="Q", parameters=QueryParameters(consistency=C.QUORUM, values=(h("00000001"), None, UNSET))),
        (4,),
        Q + "0004 01 0003 00000004 00000001 ffffffff fffffffe",  # [value]: -1 null, -2 not set
    ),
    (
        "query-values-null",
        Query(query="Q", parameters=QueryParameters(values=(b"\x01", None))),
        (3, 4),
        Q + "0001 01 0002 00000001 01 ffffffff",
    ),
    (
        "query-names-for-values",
        Query(query="Q", parameters=QueryParameters(values=(b"\x01", None), names=("a", "b"))),
        (3, 4),
        Q + "0001 41 0002 0001 61 00000001 01 0001 62 ffffffff",  # flags 0x40 | 0x01
    ),
    (
        "query-paging-serial-timestamp",
        Query(
            query="Q",
            parameters=QueryParameters(
                consistency=C.LOCAL_QUORUM,
                skip_metadata=True,
                page_size=5000,
                paging_state=b"\xab\xcd",
                serial_consistency=C.LOCAL_SERIAL,
                timestamp=2**50,
            ),
        ),
        (3, 4),
        # flags 0x02 | 0x04 | 0x08 | 0x10 | 0x20 = 0x3e; page size 5000 = 0x1388
        Q + "0006 3e 00001388 00000002 abcd 0009" + TS,
    ),
    (
        "query-page-size",
        Query(query="Q", parameters=QueryParameters(page_size=100)),
        (5,),
        Q + "0001 00000004 00000064",
    ),
    (
        "query-every-flag",
        Query(
            query="Q",
            parameters=QueryParameters(
                consistency=C.ONE,
                values=(b"\x01",),
                names=("a",),
                skip_metadata=True,
                page_size=100,
                paging_state=b"\x01",
                serial_consistency=C.SERIAL,
                timestamp=2**50,
                keyspace="ks",
                now_in_seconds=1700000000,  # 0x6553f100
            ),
        ),
        (5,),
        # every flag: 0x001 ... 0x100 = 0x1ff, then fields in the spec's order
        Q + "0001 000001ff 0001 0001 61 00000001 01 00000064 00000001 01 0008" + TS + "0002 6b73 6553f100",
    ),
    # PREPARE: a [long string]; v5 adds [int] flags and an optional keyspace
    ("prepare", Prepare(query="Q"), (3, 4), Q),
    ("prepare", Prepare(query="Q"), (5,), Q + "00000000"),
    ("prepare-keyspace", Prepare(query="Q", keyspace="ks"), (5,), Q + "00000001 0002 6b73"),
    # EXECUTE: <id><query_parameters>; v5: <id><result_metadata_id><query_parameters>
    (
        "execute",
        Execute(query_id=b"\x12\x34", parameters=QueryParameters(values=(b"\x00",))),
        (3, 4),
        "0002 1234 0001 01 0001 00000001 00",
    ),
    (
        "execute-metadata-id-now",
        Execute(query_id=b"\x12\x34", result_metadata_id=b"\x56", parameters=QueryParameters(now_in_seconds=1)),
        (5,),
        "0002 1234 0001 56 0001 00000100 00000001",
    ),
    # BATCH: <type><n><query_1>...<query_n><consistency><flags>[<serial>][<timestamp>]...
    (
        "batch-string-and-prepared",
        Batch(
            statements=(
                BatchStatement(query="Q", values=(b"\x01",)),
                BatchStatement(query_id=b"\xab", values=(None, UNSET)),
            ),
            batch_type=BatchType.UNLOGGED,
            consistency=C.QUORUM,
            serial_consistency=C.SERIAL,
            timestamp=2**50,
        ),
        (4,),
        "01 0002"
        "00" + Q + "0001 00000001 01"  # kind 0: [long string], one value
        "01 0001 ab 0002 ffffffff fffffffe"  # kind 1: [short bytes] id, null and unset
        "0004 30 0008" + TS,  # QUORUM, flags 0x10 | 0x20
    ),
    (
        "batch-prepared",
        Batch(statements=(BatchStatement(query_id=b"\x01", values=(b"\x02",)),)),
        (3, 4),
        "00 0001 01 0001 01 0001 00000001 02 0001 00",
    ),
    (
        "batch-keyspace-now",
        Batch(statements=(BatchStatement(query="Q"),), batch_type=BatchType.COUNTER, keyspace="ks", now_in_seconds=2),
        (5,),
        "02 0001 00" + Q + "0000 0001 00000180 0002 6b73 00000002",  # flags 0x80 | 0x100
    ),
    (
        "register",
        Register(event_types=("TOPOLOGY_CHANGE", "STATUS_CHANGE", "SCHEMA_CHANGE")),
        ALL,
        "0003 000f" + a("TOPOLOGY_CHANGE") + "000d" + a("STATUS_CHANGE") + "000d" + a("SCHEMA_CHANGE"),
    ),
    (
        "auth-response",
        AuthResponse(token=b"\x00cassandra\x00cassandra"),
        ALL,
        "00000014 00" + a("cassandra") + "00" + a("cassandra"),  # 1 + 9 + 1 + 9 = 20 bytes
    ),
    ("auth-response-null", AuthResponse(), ALL, "ffffffff"),
    ("auth-response-empty", AuthResponse(token=b""), ALL, "00000000"),
]

# -- responses other than ERROR ---------------------------------------------------
KS_T = "0002 6b73 0001 74"  # [string] "ks", [string] "t"
BIND_ID = "0002 6964 0009"  # column "id", int
RESULT_NAME = "00000001 00000001" + KS_T + "0004" + a("name") + "000d"  # global spec, one text column
PREPARED_BIND = PreparedMetadata(columns=(col("ks", "t", "id", INT),), pk_indexes=(0,))
PREPARED_RESULT = RowsMetadata(columns=(col("ks", "t", "name", TEXT),))

RESPONSES = [
    ("ready", Ready(), ALL, ""),
    (
        "authenticate",
        Authenticate(authenticator="org.apache.cassandra.auth.PasswordAuthenticator"),
        ALL,
        "002f" + a("org.apache.cassandra.auth.PasswordAuthenticator"),  # 47 characters
    ),
    (
        "supported",
        Supported(options={"CQL_VERSION": ["3.4.5"], "COMPRESSION": [], "PROTOCOL_VERSIONS": ["3/v3", "4/v4", "5/v5"]}),
        ALL,
        "0003"
        "000b" + a("CQL_VERSION") + "0001 0005" + a("3.4.5")
        + "000b" + a("COMPRESSION") + "0000"
        "0011" + a("PROTOCOL_VERSIONS") + "0003 0004" + a("3/v3") + "0004" + a("4/v4") + "0004" + a("5/v5"),
    ),
    ("result-void", VoidResult(), ALL, "00000001"),
    (
        "result-rows-global-spec",
        RowsResult(
            metadata=RowsMetadata(columns=(col("ks", "t", "id", INT), col("ks", "t", "name", TEXT))),
            rows=((h("00000001"), b"a"), (h("00000002"), None)),
        ),
        ALL,
        "00000002 00000001 00000002" + KS_T + BIND_ID + "0004" + a("name") + "000d"
        "00000002 00000004 00000001 00000001 61 00000004 00000002 ffffffff",
    ),
    (
        "result-rows-per-column-spec",
        RowsResult(metadata=RowsMetadata(columns=(col("ks", "t", "a", INT), col("ks", "u", "b", BOOLEAN)))),
        ALL,
        "00000002 00000000 00000002"
        "0002 6b73 0001 74 0001 61 0009"
        "0002 6b73 0001 75 0001 62 0004"
        "00000000",
    ),
    (
        "result-rows-has-more-pages",
        RowsResult(metadata=RowsMetadata(columns=(col("ks", "t", "a", INT),), paging_state=b"\x01\x02")),
        ALL,
        "00000002 00000003 00000001 00000002 0102" + KS_T + "0001 61 0009 00000000",
    ),
    (
        "result-rows-nested-type",
        RowsResult(
            metadata=RowsMetadata(columns=(col("ks", "t", "m", MapType(TEXT, ListType(INT, frozen=True))),)),
            rows=((None,),),
        ),
        ALL,
        "00000002 00000001 00000001" + KS_T + "0001 6d 0021 000d 0020 0009 00000001 ffffffff",
    ),
    (
        "result-rows-no-metadata",
        RowsResult(metadata=RowsMetadata(no_metadata=True, column_count=2), rows=((b"\x01", b"\x02"),)),
        ALL,
        "00000002 00000004 00000002 00000001 00000001 01 00000001 02",
    ),
    (
        "result-rows-no-metadata-more-pages",
        RowsResult(metadata=RowsMetadata(no_metadata=True, column_count=1, paging_state=b"\x05")),
        ALL,
        "00000002 00000006 00000001 00000001 05 00000000",
    ),
    (
        "result-rows-metadata-changed",
        RowsResult(metadata=RowsMetadata(columns=(col("ks", "t", "a", INT),), new_metadata_id=b"\xbe\xef")),
        (5,),
        # flags 0x08 | 0x01; <new_metadata_id> before the table spec
        "00000002 00000009 00000001 0002 beef" + KS_T + "0001 61 0009 00000000",
    ),
    ("result-rows-empty", RowsResult(), ALL, "00000002 00000000 00000000 00000000"),
    ("result-set-keyspace", SetKeyspaceResult(keyspace="ks"), ALL, "00000003 0002 6b73"),
    (
        "result-prepared-no-pk-indexes",
        PreparedResult(
            query_id=b"\x01\x02",
            bind_metadata=PreparedMetadata(columns=(col("ks", "t", "id", INT),)),
            result_metadata=PREPARED_RESULT,
        ),
        (3,),
        "00000004 0002 0102 00000001 00000001" + KS_T + BIND_ID + RESULT_NAME,
    ),
    (
        "result-prepared-pk-indexes",
        PreparedResult(query_id=b"\x01\x02", bind_metadata=PREPARED_BIND, result_metadata=PREPARED_RESULT),
        (4,),
        # <flags><columns_count><pk_count><pk_index_1>
        "00000004 0002 0102 00000001 00000001 00000001 0000" + KS_T + BIND_ID + RESULT_NAME,
    ),
    (
        "result-prepared-metadata-id",
        PreparedResult(
            query_id=b"\x01\x02", result_metadata_id=b"\xaa", bind_metadata=PREPARED_BIND, result_metadata=PREPARED_RESULT
        ),
        (5,),
        "00000004 0002 0102 0001 aa 00000001 00000001 00000001 0000" + KS_T + BIND_ID + RESULT_NAME,
    ),
    (
        "result-prepared-insert",
        PreparedResult(
            query_id=b"\x01",
            bind_metadata=PreparedMetadata(
                columns=(col("ks", "t", "a", INT), col("ks", "u", "b", INT)), pk_indexes=(1, 0)
            ),
            result_metadata=RowsMetadata(no_metadata=True, column_count=0),
        ),
        (4,),
        "00000004 0001 01 00000000 00000002 00000002 0001 0000"
        "0002 6b73 0001 74 0001 61 0009 0002 6b73 0001 75 0001 62 0009"
        "00000004 00000000",
    ),
    (
        "result-schema-change-keyspace",
        SchemaChangeResult(change=SchemaChange(change_type="CREATED", target="KEYSPACE", keyspace="ks")),
        ALL,
        "00000005 0007" + a("CREATED") + "0008" + a("KEYSPACE") + "0002 6b73",
    ),
    (
        "result-schema-change-table",
        SchemaChangeResult(change=SchemaChange(change_type="UPDATED", target="TABLE", keyspace="ks", name="t")),
        ALL,
        "00000005 0007" + a("UPDATED") + "0005" + a("TABLE") + KS_T,
    ),
    (
        "result-schema-change-type",
        SchemaChangeResult(change=SchemaChange(change_type="CREATED", target="TYPE", keyspace="ks", name="address")),
        ALL,
        "00000005 0007" + a("CREATED") + "0004" + a("TYPE") + "0002 6b73 0007" + a("address"),
    ),
    (
        "result-schema-change-function",
        SchemaChangeResult(
            change=SchemaChange(change_type="DROPPED", target="FUNCTION", keyspace="ks", name="f", arg_types=("int", "text"))
        ),
        (4, 5),
        "00000005 0007" + a("DROPPED") + "0008" + a("FUNCTION") + "0002 6b73 0001 66 0002 0003 696e74 0004 74657874",
    ),
    (
        "result-schema-change-aggregate",
        SchemaChangeResult(
            change=SchemaChange(change_type="CREATED", target="AGGREGATE", keyspace="ks", name="g", arg_types=())
        ),
        (4, 5),
        "00000005 0007" + a("CREATED") + "0009" + a("AGGREGATE") + "0002 6b73 0001 67 0000",
    ),
    (
        "event-topology-new-node",
        Event(event=TopologyChange(change="NEW_NODE", address=IP4("10.0.0.2"), port=9042)),
        ALL,
        "000f" + a("TOPOLOGY_CHANGE") + "0008" + a("NEW_NODE") + "04 0a000002 00002352",  # 9042 = 0x2352
    ),
    (
        "event-topology-removed-node-ipv6",
        Event(event=TopologyChange(change="REMOVED_NODE", address=IP6("2001:db8::1"), port=9042)),
        ALL,
        "000f" + a("TOPOLOGY_CHANGE") + "000c" + a("REMOVED_NODE") + "10 20010db8000000000000000000000001 00002352",
    ),
    (
        "event-topology-moved-node",
        Event(event=TopologyChange(change="MOVED_NODE", address=IP4("10.0.0.3"), port=9042)),
        (3,),  # v3 spec 4.2.6: "NEW_NODE", "REMOVED_NODE", or "MOVED_NODE"
        "000f" + a("TOPOLOGY_CHANGE") + "000a" + a("MOVED_NODE") + "04 0a000003 00002352",
    ),
    (
        "event-status-up-ipv4",
        Event(event=StatusChange(change="UP", address=IP4("127.0.0.1"), port=9042)),
        ALL,
        "000d" + a("STATUS_CHANGE") + "0002" + a("UP") + "04 7f000001 00002352",
    ),
    (
        "event-status-down-ipv6",
        Event(event=StatusChange(change="DOWN", address=IP6("::1"), port=19042)),
        ALL,
        "000d" + a("STATUS_CHANGE") + "0004" + a("DOWN") + "10 00000000000000000000000000000001 00004a62",  # 19042
    ),
    (
        "event-client-routes-change",
        Event(event=ClientRoutesChange(connection_ids=("c1", "c1"), host_ids=("h1", "h2"))),
        ALL,  # scylla-driver's EventMessage.recv_client_routes_change: [string] [string list] [string list]
        "0014" + a("CLIENT_ROUTES_CHANGE") + "000c" + a("UPDATE_NODES")
        + "0002 0002" + a("c1") + "0002" + a("c1") + "0002 0002" + a("h1") + "0002" + a("h2"),
    ),
    (
        "event-client-routes-change-empty",
        Event(event=ClientRoutesChange()),
        ALL,  # empty lists: the driver re-reads every route of its connection ids
        "0014" + a("CLIENT_ROUTES_CHANGE") + "000c" + a("UPDATE_NODES") + "0000 0000",
    ),
    (
        "event-schema-change",
        Event(event=SchemaChange(change_type="CREATED", target="TABLE", keyspace="ks", name="t")),
        ALL,
        "000d" + a("SCHEMA_CHANGE") + "0007" + a("CREATED") + "0005" + a("TABLE") + KS_T,
    ),
    ("auth-challenge", AuthChallenge(token=b"\x01\x02"), ALL, "00000002 0102"),
    ("auth-challenge-null", AuthChallenge(), ALL, "ffffffff"),
    ("auth-success-null", AuthSuccess(), ALL, "ffffffff"),
    ("auth-success-empty", AuthSuccess(token=b""), ALL, "00000000"),
]

# -- ERROR: <code><message>[extra fields of the code] ------------------------------
M = "0001 6d"  # the [string] message "m"
E = ErrorCode
ERRORS = [
    ("server-error", E.SERVER_ERROR, None, ALL, "00000000" + M),
    ("protocol-error", E.PROTOCOL_ERROR, None, ALL, "0000000a" + M),
    ("bad-credentials", E.BAD_CREDENTIALS, None, ALL, "00000100" + M),
    (
        "unavailable",
        E.UNAVAILABLE,
        UnavailableInfo(consistency=C.QUORUM, required=3, alive=1),
        ALL,
        "00001000" + M + "0004 00000003 00000001",  # <cl><required><alive>
    ),
    ("overloaded", E.OVERLOADED, None, ALL, "00001001" + M),
    ("is-bootstrapping", E.IS_BOOTSTRAPPING, None, ALL, "00001002" + M),
    ("truncate-error", E.TRUNCATE_ERROR, None, ALL, "00001003" + M),
    (
        "write-timeout",
        E.WRITE_TIMEOUT,
        WriteTimeoutInfo(consistency=C.ONE, received=0, block_for=1, write_type="SIMPLE"),
        ALL,
        "00001100" + M + "0001 00000000 00000001 0006" + a("SIMPLE"),  # <cl><received><blockfor><writeType>
    ),
    (
        "write-timeout-cas",
        E.WRITE_TIMEOUT,
        WriteTimeoutInfo(consistency=C.SERIAL, received=0, block_for=2, write_type="CAS"),
        (3, 4),  # no <contentions> before v5
        "00001100" + M + "0008 00000000 00000002 0003" + a("CAS"),
    ),
    (
        "write-timeout-cas-contentions",
        E.WRITE_TIMEOUT,
        WriteTimeoutInfo(consistency=C.SERIAL, received=0, block_for=2, write_type="CAS", contentions=3),
        (5,),  # v5: <contentions> [short], only when <writeType> is "CAS"
        "00001100" + M + "0008 00000000 00000002 0003" + a("CAS") + "0003",
    ),
    (
        "read-timeout",
        E.READ_TIMEOUT,
        ReadTimeoutInfo(consistency=C.LOCAL_QUORUM, received=1, block_for=2, data_present=False),
        ALL,
        "00001200" + M + "0006 00000001 00000002 00",  # <cl><received><blockfor><data_present>
    ),
    (
        "read-failure-numfailures",
        E.READ_FAILURE,
        ReadFailureInfo(consistency=C.ALL, received=1, block_for=3, num_failures=2, data_present=True),
        (4,),  # <cl><received><blockfor><numfailures><data_present>
        "00001300" + M + "0005 00000001 00000003 00000002 01",
    ),
    (
        "read-failure-reasonmap",
        E.READ_FAILURE,
        ReadFailureInfo(
            consistency=C.ALL,
            received=1,
            block_for=3,
            num_failures=2,
            reasons=((IP4("10.0.0.1"), 1), (IP6("::1"), 2)),
            data_present=True,
        ),
        (5,),  # <reasonmap>: [int] n, then n <endpoint:[inetaddr]><failurecode:[short]>
        "00001300" + M + "0005 00000001 00000003"
        "00000002 04 0a000001 0001 10 00000000000000000000000000000001 0002"
        "01",
    ),
    (
        "function-failure",
        E.FUNCTION_FAILURE,
        FunctionFailureInfo(keyspace="ks", function="f", arg_types=("int",)),
        (4, 5),  # <keyspace><function><arg_types>
        "00001400" + M + "0002 6b73 0001 66 0001 0003 696e74",
    ),
    (
        "write-failure-numfailures",
        E.WRITE_FAILURE,
        WriteFailureInfo(consistency=C.ONE, received=0, block_for=1, num_failures=1, write_type="BATCH_LOG"),
        (4,),  # <cl><received><blockfor><numfailures><write_type>
        "00001500" + M + "0001 00000000 00000001 00000001 0009" + a("BATCH_LOG"),
    ),
    (
        "write-failure-reasonmap",
        E.WRITE_FAILURE,
        WriteFailureInfo(
            consistency=C.ONE, received=0, block_for=1, num_failures=1, reasons=((IP4("10.0.0.1"), 1),), write_type="BATCH_LOG"
        ),
        (5,),
        "00001500" + M + "0001 00000000 00000001 00000001 04 0a000001 0001 0009" + a("BATCH_LOG"),
    ),
    ("cdc-write-failure", E.CDC_WRITE_FAILURE, None, (4, 5), "00001600" + M),
    (
        "cas-write-unknown",
        E.CAS_WRITE_UNKNOWN,
        CasWriteUnknownInfo(consistency=C.SERIAL, received=1, block_for=2),
        (5,),
        "00001700" + M + "0008 00000001 00000002",  # <cl><received><blockfor>
    ),
    ("syntax-error", E.SYNTAX_ERROR, None, ALL, "00002000" + M),
    ("unauthorized", E.UNAUTHORIZED, None, ALL, "00002100" + M),
    ("invalid", E.INVALID, None, ALL, "00002200" + M),
    ("config-error", E.CONFIG_ERROR, None, ALL, "00002300" + M),
    (
        "already-exists-table",
        E.ALREADY_EXISTS,
        AlreadyExistsInfo(keyspace="ks", table="t"),
        ALL,
        "00002400" + M + KS_T,  # <ks><table>
    ),
    (
        "already-exists-keyspace",
        E.ALREADY_EXISTS,
        AlreadyExistsInfo(keyspace="ks"),
        ALL,
        "00002400" + M + "0002 6b73 0000",  # "<table> will be present but will be the empty string"
    ),
    ("unprepared", E.UNPREPARED, UnpreparedInfo(statement_id=b"\xde\xad"), ALL, "00002500" + M + "0002 dead"),
]
ERROR_ROWS = [
    (name, Error(code=code, message="m", info=info), versions, body) for name, code, info, versions, body in ERRORS
]


def _by_version(table):
    rows, ids = [], []
    for name, message, versions, body in table:
        for version in versions:
            rows.append((message, version, body))
            ids.append(f"{name}-v{version}")
    return rows, ids


REQUEST_CASES, REQUEST_IDS = _by_version(REQUESTS)
RESPONSE_CASES, RESPONSE_IDS = _by_version(RESPONSES + ERROR_ROWS)


def test_every_request_opcode_is_covered():
    assert {type(m).opcode for _, m, _, _ in REQUESTS} == set(REQUEST_TYPES)


def test_every_response_opcode_and_kind_is_covered():
    covered = {type(m) for _, m, _, _ in RESPONSES + ERROR_ROWS}
    assert {t.opcode for t in covered} == set(RESPONSE_TYPES)
    assert {VoidResult, RowsResult, SetKeyspaceResult, PreparedResult, SchemaChangeResult} <= covered
    assert {type(m.event) for _, m, _, _ in RESPONSES if isinstance(m, Event)} == {
        TopologyChange, StatusChange, SchemaChange, ClientRoutesChange,
    }


def test_every_error_code_is_covered():
    assert {code for _, code, _, _, _ in ERRORS} == set(ErrorCode)


@pytest.mark.parametrize("message, version, body", REQUEST_CASES, ids=REQUEST_IDS)
def test_encode_request(message, version, body):
    assert message.encode_body(version) == h(body)


@pytest.mark.parametrize("message, version, body", REQUEST_CASES, ids=REQUEST_IDS)
def test_decode_request(message, version, body):
    assert decode_message(message.opcode, h(body), version) == message


@pytest.mark.parametrize("message, version, body", RESPONSE_CASES, ids=RESPONSE_IDS)
def test_encode_response(message, version, body):
    assert message.encode_body(version) == h(body)


@pytest.mark.parametrize("message, version, body", RESPONSE_CASES, ids=RESPONSE_IDS)
def test_decode_response(message, version, body):
    assert decode_message(message.opcode, h(body), version, is_response=True) == message


@pytest.mark.parametrize("message, version, body", REQUEST_CASES + RESPONSE_CASES, ids=REQUEST_IDS + RESPONSE_IDS)
def test_round_trip(message, version, body):
    is_response = message.opcode not in REQUEST_TYPES
    again = decode_message(message.opcode, message.encode_body(version), version, is_response=is_response)
    assert again == message
    assert again.encode_body(version) == h(body)


def test_decoded_error_code_is_an_error_code():
    error = decode_message(Opcode.ERROR, h("00001001" + M), 4, is_response=True)
    assert error.code is ErrorCode.OVERLOADED


# -- malformed bodies ---------------------------------------------------------------
@pytest.mark.parametrize("message, version, body", REQUEST_CASES, ids=REQUEST_IDS)
def test_every_prefix_of_a_request_is_refused(message, version, body):
    data = h(body)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError) as info:
            decode_message(message.opcode, data[:cut], version)
        assert str(info.value).startswith(f"truncated {message.opcode.name} body: "), (cut, str(info.value))
        assert info.value.fatal is False  # a bad body never breaks the framing


@pytest.mark.parametrize("message, version, body", RESPONSE_CASES, ids=RESPONSE_IDS)
def test_every_prefix_of_a_response_is_refused(message, version, body):
    data = h(body)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError) as info:
            decode_message(message.opcode, data[:cut], version, is_response=True)
        # a count that the bytes left cannot hold is refused before reading on
        name = message.opcode.name
        assert str(info.value).startswith((f"truncated {name} body: ", f"garbage in {name} body: ")), (cut, str(info.value))
        assert info.value.fatal is False


@pytest.mark.parametrize("message, version, body", REQUEST_CASES, ids=REQUEST_IDS)
def test_trailing_garbage_is_refused(message, version, body):
    data = h(body) + b"\xff"
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(message.opcode, data, version)
    assert str(info.value) == (
        f"garbage in {message.opcode.name} body: 1 unexpected trailing bytes after offset {len(data) - 1}"
    )


# (id, opcode, version, is_response, hand-written bad body, exact complaint)
MALFORMED = [
    ("query-bad-utf8", Opcode.QUERY, 4, False, "00000002 c328 0001 00",
     "garbage in QUERY body: query string is not valid UTF-8 (invalid continuation byte at byte 0)"),
    ("startup-bad-utf8-key", Opcode.STARTUP, 4, False, "0001 0002 c328 0000",
     "garbage in STARTUP body: STARTUP options key 0 is not valid UTF-8 (invalid continuation byte at byte 0)"),
    ("startup-bad-utf8-value", Opcode.STARTUP, 4, False, "0001 0001 61 0001 ff",
     "garbage in STARTUP body: STARTUP options['a'] is not valid UTF-8 (invalid start byte at byte 0)"),
    ("register-bad-utf8", Opcode.REGISTER, 4, False, "0001 0001 80",
     "garbage in REGISTER body: event types[0] is not valid UTF-8 (invalid start byte at byte 0)"),
    ("query-bad-consistency", Opcode.QUERY, 4, False, Q + "000b 00",
     "garbage in QUERY body: consistency 0x000b is not a consistency level (expected 0x0000-0x000a)"),
    ("query-bad-serial-consistency", Opcode.QUERY, 4, False, Q + "0001 10 00ff",
     "garbage in QUERY body: serial consistency 0x00ff is not a consistency level (expected 0x0000-0x000a)"),
    ("query-unknown-flag-v4", Opcode.QUERY, 4, False, Q + "0001 80",
     "garbage in QUERY body: unknown query flags 0x80 for protocol v4"),
    ("query-v5-flag-in-v4", Opcode.QUERY, 4, False, Q + "0001 ff",
     "garbage in QUERY body: unknown query flags 0x80 for protocol v4"),
    ("query-unknown-flag-v5", Opcode.QUERY, 5, False, Q + "0001 00000200",
     "garbage in QUERY body: unknown query flags 0x200 for protocol v5"),
    ("execute-unknown-flag-v3", Opcode.EXECUTE, 3, False, "0001 01 0001 80",
     "garbage in EXECUTE body: unknown query flags 0x80 for protocol v3"),
    ("query-value-length-minus-3", Opcode.QUERY, 4, False, Q + "0001 01 0001 fffffffd",
     "garbage in QUERY body: value 0 has length -3; expected >= -2"),
    ("prepare-unknown-flags", Opcode.PREPARE, 5, False, Q + "00000002",
     "garbage in PREPARE body: unknown PREPARE flags 0x2"),
    ("batch-bad-type", Opcode.BATCH, 4, False, "03 0000 0001 00",
     "garbage in BATCH body: batch type 3; expected 0, 1 or 2"),
    ("batch-bad-kind", Opcode.BATCH, 4, False, "00 0001 02",
     "garbage in BATCH body: statement 0 kind 2; expected 0 or 1"),
    ("batch-named-values", Opcode.BATCH, 4, False, "00 0000 0001 40",
     "garbage in BATCH body: named values are not supported in a BATCH"),
    ("batch-bad-consistency", Opcode.BATCH, 4, False, "00 0000 00ff 00",
     "garbage in BATCH body: consistency 0x00ff is not a consistency level (expected 0x0000-0x000a)"),
    ("result-unknown-kind", Opcode.RESULT, 4, True, "00000009",
     "garbage in RESULT body: unknown result kind 0x0009"),
    ("result-rows-count-lies", Opcode.RESULT, 4, True, "00000002 00000004 00000001 00000005",
     "garbage in RESULT body: 5 rows of 1 cells in 0 bytes"),
    ("result-columns-count-lies", Opcode.RESULT, 4, True, "00000002 00000000 00007fff",
     "garbage in RESULT body: 32767 columns declared, 0 bytes follow"),
    ("result-unknown-type-option", Opcode.RESULT, 4, True, "00000002 00000001 00000001" + KS_T + "0001 61 00ff",
     "garbage in RESULT body: unknown type option id 0x00ff"),
    ("schema-change-bad-target", Opcode.RESULT, 4, True, "00000005 0007" + a("CREATED") + "0005" + a("INDEX") + "0002 6b73 0001 69",
     "garbage in RESULT body: schema change target must be one of"),
    ("event-unknown-type", Opcode.EVENT, 4, True, "0004" + a("NOPE"),
     "garbage in EVENT body: unknown event type 'NOPE'"),
    ("event-bad-status", Opcode.EVENT, 4, True, "000d" + a("STATUS_CHANGE") + "0008" + a("SIDEWAYS") + "04 7f000001 00002352",
     "garbage in EVENT body: status change must be UP or DOWN, got 'SIDEWAYS'"),
    ("event-bad-inet-size", Opcode.EVENT, 4, True, "000d" + a("STATUS_CHANGE") + "0002" + a("UP") + "05 7f00000100 00002352",
     "garbage in EVENT body: node address address size is 5; expected 4 or 16"),
    ("error-unknown-code", Opcode.ERROR, 4, True, "00009999" + M,
     "garbage in ERROR body: unknown error code 0x9999"),
    ("error-reasonmap-lies", Opcode.ERROR, 5, True, "00001300" + M + "0005 00000001 00000003 00000009 01",
     "garbage in ERROR body: reasonmap of 9 entries in 1 bytes"),
]


@pytest.mark.parametrize(
    "opcode, version, is_response, body, words", [r[1:] for r in MALFORMED], ids=[r[0] for r in MALFORMED]
)
def test_malformed_body(opcode, version, is_response, body, words):
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(opcode, h(body), version, is_response=is_response)
    assert str(info.value).startswith(words)
    assert info.value.fatal is False


def test_a_response_opcode_is_not_a_request():
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(Opcode.READY, b"", 4)
    assert str(info.value) == (
        "opcode READY is not a request: a client sends only "
        "STARTUP, OPTIONS, QUERY, PREPARE, EXECUTE, REGISTER, BATCH, AUTH_RESPONSE"
    )


def test_a_request_opcode_is_not_a_response():
    with pytest.raises(RemoteProtocolError) as info:
        decode_message(Opcode.QUERY, h(Q + "0001 00"), 4, is_response=True)
    assert str(info.value).startswith("opcode QUERY is not a response: a client receives only ERROR, READY")


# v3 bound values are [bytes]: "If n < 0, no byte should follow and the value
# represented is null" (v3 spec section 3); UNSET (-2) arrived with v4.
@pytest.mark.parametrize("length", ["ffffffff", "fffffffe", "80000000"], ids=["-1", "-2", "min-int"])
def test_v3_negative_value_lengths_are_null(length):
    query = decode_message(Opcode.QUERY, h(Q + "0001 01 0001" + length), 3)
    assert query.parameters.values == (None,)
    batch = decode_message(Opcode.BATCH, h("00 0001 01 0001 ab 0001" + length + "0001 00"), 3)
    assert batch.statements[0].values == (None,)


def test_v4_unset_is_decoded_as_unset():
    batch = decode_message(Opcode.BATCH, h("00 0001 01 0001 ab 0001 fffffffe 0001 00"), 4)
    assert batch.statements[0].values[0] is UNSET


# -- what cannot be encoded in a version, or built at all ----------------------------
def _unset_batch():
    return Batch(statements=(BatchStatement(query="Q", values=(UNSET,)),))


ENCODE_REFUSALS = [
    ("query-keyspace-v4", lambda: Query(query="Q", parameters=QueryParameters(keyspace="ks")), 4,
     "keyspace and now_in_seconds need protocol v5, not v4"),
    ("query-now-v4", lambda: Query(query="Q", parameters=QueryParameters(now_in_seconds=1)), 4,
     "keyspace and now_in_seconds need protocol v5, not v4"),
    ("query-unset-v3", lambda: Query(query="Q", parameters=QueryParameters(values=(UNSET,))), 3,
     "UNSET values need protocol v4 or later"),
    ("batch-unset-v3", _unset_batch, 3, "UNSET values need protocol v4 or later"),
    ("prepare-keyspace-v4", lambda: Prepare(query="Q", keyspace="ks"), 4,
     "PREPARE with a keyspace needs protocol v5, not v4"),
    ("batch-keyspace-v4", lambda: Batch(statements=(), keyspace="ks"), 4, "BATCH with a keyspace needs protocol v5"),
    ("batch-now-v3", lambda: Batch(statements=(), now_in_seconds=1), 3, "BATCH with now_in_seconds needs protocol v5"),
    ("rows-new-metadata-id-v4", lambda: RowsResult(metadata=RowsMetadata(new_metadata_id=b"\x01")), 4,
     "new_metadata_id needs protocol v5"),
    ("prepared-without-metadata-id-v5", lambda: PreparedResult(query_id=b"\x01"), 5,
     "a v5 Prepared result needs result_metadata_id"),
    ("startup-long-key", lambda: Startup(options={"k" * 65536: "v"}), 4,
     "STARTUP options key length must be an integer in [0, 65535]"),
]


@pytest.mark.parametrize("build, version, words", [r[1:] for r in ENCODE_REFUSALS], ids=[r[0] for r in ENCODE_REFUSALS])
def test_encode_refuses(build, version, words):
    message = build()
    with pytest.raises(LocalProtocolError) as info:
        message.encode_body(version)
    assert words in str(info.value)


BUILD_REFUSALS = [
    ("page-size-0", lambda: QueryParameters(page_size=0), "page_size must be positive, got 0"),
    ("names-count", lambda: QueryParameters(names=("a",)), "1 names for 0 values"),
    ("value-str", lambda: QueryParameters(values=("x",)), "bound value 0 must be bytes, None or UNSET, got 'x'"),
    ("batch-statement-neither", lambda: BatchStatement(), "either a query string or a prepared id"),
    ("batch-statement-both", lambda: BatchStatement(query="Q", query_id=b"\x01"), "not both or neither"),
    ("batch-value-int", lambda: BatchStatement(query="Q", values=(1,)), "batch value 0 must be bytes, None or UNSET"),
    ("startup-not-str", lambda: Startup(options={"a": 1}), "STARTUP options must map str to str"),
    ("topology-change", lambda: TopologyChange(change="MOVED", address=IP4("10.0.0.1"), port=1),
     "topology change must be one of ('NEW_NODE', 'REMOVED_NODE', 'MOVED_NODE'), got 'MOVED'"),
    ("client-routes-change", lambda: ClientRoutesChange(change="DELETE_NODES"),
     "client routes change must be one of ('UPDATE_NODES',), got 'DELETE_NODES'"),
    ("client-routes-host-ids", lambda: ClientRoutesChange(host_ids=["h1"]),  # type: ignore[arg-type]
     "client routes change host_ids must be a tuple of str"),
    ("status-change", lambda: StatusChange(change="SIDEWAYS", address=IP4("10.0.0.1"), port=1),
     "status change must be UP or DOWN, got 'SIDEWAYS'"),
    ("schema-change-type", lambda: SchemaChange(change_type="ALTERED", target="KEYSPACE", keyspace="ks"),
     "schema change_type must be CREATED, UPDATED or DROPPED, got 'ALTERED'"),
    ("schema-change-target", lambda: SchemaChange(change_type="CREATED", target="INDEX", keyspace="ks", name="i"),
     "schema change target must be one of"),
    ("schema-change-table-without-name", lambda: SchemaChange(change_type="CREATED", target="TABLE", keyspace="ks"),
     "a TABLE schema change needs a name exactly when the target is not KEYSPACE"),
    ("rows-width", lambda: RowsResult(metadata=RowsMetadata(no_metadata=True, column_count=2), rows=((None,),)),
     "row 0 has 1 cells, the metadata declares 2 columns"),
]


@pytest.mark.parametrize("build, words", [r[1:] for r in BUILD_REFUSALS], ids=[r[0] for r in BUILD_REFUSALS])
def test_build_refuses(build, words):
    with pytest.raises(LocalProtocolError) as info:
        build()
    assert words in str(info.value)


WRONG_INFO = [
    ("unavailable-without-info", E.UNAVAILABLE, None,
     "error UNAVAILABLE needs info=UnavailableInfo(...), got None"),
    ("server-error-with-info", E.SERVER_ERROR, UnavailableInfo(consistency=C.ONE, required=1, alive=0),
     "error SERVER_ERROR carries no extra fields, got UnavailableInfo("),
    ("read-timeout-with-write-info", E.READ_TIMEOUT,
     WriteTimeoutInfo(consistency=C.ONE, received=0, block_for=1, write_type="SIMPLE"),
     "error READ_TIMEOUT needs info=ReadTimeoutInfo(...), got WriteTimeoutInfo("),
    ("write-failure-with-read-info", E.WRITE_FAILURE,
     ReadFailureInfo(consistency=C.ONE, received=0, block_for=1, data_present=False),
     "error WRITE_FAILURE needs info=WriteFailureInfo(...)"),
    ("unprepared-with-already-exists", E.UNPREPARED, AlreadyExistsInfo(keyspace="ks"),
     "error UNPREPARED needs info=UnpreparedInfo(...)"),
    ("cas-unknown-without-info", E.CAS_WRITE_UNKNOWN, None, "error CAS_WRITE_UNKNOWN needs info=CasWriteUnknownInfo(...)"),
    ("unknown-code", 0x9999, None, "unknown error code 0x9999"),
]


@pytest.mark.parametrize("code, info, words", [r[1:] for r in WRONG_INFO], ids=[r[0] for r in WRONG_INFO])
def test_error_with_the_wrong_info_is_refused(code, info, words):
    with pytest.raises(LocalProtocolError) as raised:
        Error(code=code, message="m", info=info)
    assert words in str(raised.value)


def test_error_accepts_a_plain_int_code():
    error = Error(code=0x1001, message="m")
    assert error.code is ErrorCode.OVERLOADED
    assert error.encode_body(4) == h("00001001" + M)
