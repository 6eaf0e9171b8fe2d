# Priming and the request log, seen through the installed driver (run under
# both scylla-driver and cassandra-driver): primed rows of every CQL type
# come back equal; primed errors reach the caller as the driver's exceptions
# with their fields; a prepared statement survives an UNPREPARED; delays
# delay, a withheld answer times out on the client while the connection
# serves other queries; answers in order drive a retry; consistency,
# keyspace and values narrow the match; the log shows the bound values.
#
# Rules: the driver is imported inside the tests; every Cluster is shut down
# by cluster_factory; every wait is bounded (the driver's own timeouts).
from __future__ import annotations

import datetime
import decimal
import ipaddress
import time
import uuid
from typing import Any

import pytest

from fakecql import Overloaded, ReadTimeout, Unavailable, Unprepared
from fakecql.protocol.types import TEXT, INT, Duration, UserType

DAY = datetime.date(2024, 2, 29)
STAMP = datetime.datetime(2024, 2, 29, 12, 30, 15, 250000)
TIMEUUID = uuid.UUID("e3b6f7a0-d6f4-11ee-8c90-0242ac120002")
ADDRESS = UserType("ks", "address", (("street", TEXT), ("number", INT)))

# (column, CQL type, value primed, value the driver gives, made comparable by canon())
EVERY_TYPE = [
    ("c_ascii", "ascii", "plain", "plain"),
    ("c_bigint", "bigint", -(2**62), -(2**62)),
    ("c_blob", "blob", b"\x00\xffbytes", b"\x00\xffbytes"),
    ("c_boolean", "boolean", True, True),
    ("c_counter", "counter", 42, 42),
    ("c_date", "date", DAY, DAY),
    ("c_decimal", "decimal", decimal.Decimal("-12345.678900"), decimal.Decimal("-12345.678900")),
    ("c_double", "double", 2.5e-300, 2.5e-300),
    ("c_duration", "duration", Duration(months=1, days=2, nanoseconds=3_000_000_004), (1, 2, 3_000_000_004)),
    ("c_float", "float", 1.5, 1.5),
    ("c_inet4", "inet", ipaddress.ip_address("10.1.2.3"), "10.1.2.3"),
    ("c_inet6", "inet", ipaddress.ip_address("::1"), "::1"),
    ("c_int", "int", -(2**31), -(2**31)),
    ("c_smallint", "smallint", -32768, -32768),
    ("c_text", "text", "çà et là ✓", "çà et là ✓"),
    ("c_time", "time", datetime.time(23, 59, 58, 999999), (23 * 3600 + 59 * 60 + 58) * 10**9 + 999999000),
    ("c_timestamp", "timestamp", STAMP, STAMP),
    ("c_timeuuid", "timeuuid", TIMEUUID, TIMEUUID),
    ("c_tinyint", "tinyint", -128, -128),
    ("c_uuid", "uuid", uuid.UUID(int=12345), uuid.UUID(int=12345)),
    ("c_varchar", "varchar", "varchar", "varchar"),
    ("c_varint", "varint", 2**100 + 1, 2**100 + 1),
    ("c_list", "list<int>", [3, 1, 2], [3, 1, 2]),
    ("c_set", "set<text>", ["b", "a"], ["a", "b"]),
    ("c_map", "map<text, bigint>", {"x": 1, "y": 2}, {"x": 1, "y": 2}),
    ("c_tuple", "tuple<int, text, boolean>", (1, "one", False), (1, "one", False)),
    ("c_udt", ADDRESS, {"street": "Main", "number": 7}, {"street": "Main", "number": 7}),
    ("c_frozen", "frozen<map<text, frozen<list<frozen<set<int>>>>>>", {"k": [[2, 1], [3]]}, {"k": [[1, 2], [3]]}),
    ("c_nested_tuple", "list<frozen<tuple<int, frozen<map<int, text>>>>>", [(1, {2: "two"})], [(1, {2: "two"})]),
    ("c_null", "text", None, None),
]


def canon(value: Any) -> Any:
    """A driver's value in plain Python terms (its Date, Time, Duration, SortedSet, maps, UDTs)."""
    from cassandra.util import Date, Duration as DriverDuration, OrderedMapSerializedKey, SortedSet, Time

    if isinstance(value, Date):
        return value.date()
    if isinstance(value, Time):
        return value.nanosecond_time
    if isinstance(value, DriverDuration):
        return (value.months, value.days, value.nanoseconds)
    if isinstance(value, SortedSet):
        return [canon(v) for v in value]
    if isinstance(value, (dict, OrderedMapSerializedKey)):
        return {canon(k): canon(v) for k, v in value.items()}
    if hasattr(value, "_asdict"):  # a UDT the driver made a namedtuple of
        return {k: canon(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return type(value)(canon(v) for v in value)
    return value


def expected(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(expected(v) for v in value)
    if isinstance(value, list):
        return [expected(v) for v in value]
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    return value


def no_retry_profile() -> Any:
    from cassandra.cluster import ExecutionProfile
    from cassandra.policies import FallthroughRetryPolicy, RoundRobinPolicy

    return ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), retry_policy=FallthroughRetryPolicy())


def connect(cluster_factory, server, **options: Any) -> Any:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT

    options.setdefault("execution_profiles", {EXEC_PROFILE_DEFAULT: no_retry_profile()})
    return cluster_factory(server, **options).connect()


def with_table(server) -> None:
    server.node.schema.add_keyspace("ks")
    server.node.schema.add_table("ks", "t", {"k": "int", "v": "int"}, partition_key="k")


def test_primed_rows_of_every_cql_type_come_back_equal(cql_server_factory, cluster_factory):
    server = cql_server_factory(tls=False)
    columns = {name: cql_type for name, cql_type, _, _ in EVERY_TYPE}
    server.when_query("SELECT * FROM ks.everything").then_rows(
        [tuple(value for _, _, value, _ in EVERY_TYPE)], columns=columns)
    session = connect(cluster_factory, server)
    row = session.execute("SELECT * FROM ks.everything").one()
    got = {name: canon(getattr(row, name)) for name, _, _, _ in EVERY_TYPE}
    assert got == {name: expected(want) for name, _, _, want in EVERY_TYPE}
    assert len(got) == len(EVERY_TYPE) >= 30


def test_primed_read_timeout_reaches_the_caller_with_its_fields(cql_server_factory, cluster_factory):
    from cassandra import ConsistencyLevel, ReadTimeout as DriverReadTimeout

    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.t").then_error(ReadTimeout("LOCAL_QUORUM", 1, 2, True))
    session = connect(cluster_factory, server)
    with pytest.raises(DriverReadTimeout) as caught:
        session.execute("SELECT * FROM ks.t")
    error = caught.value
    assert (error.consistency, error.received_responses, error.required_responses, error.data_retrieved) == (
        ConsistencyLevel.LOCAL_QUORUM, 1, 2, True)
    assert "Operation timed out - received only 1 responses." in str(error)


def test_primed_unavailable_reaches_the_caller_with_its_fields(cql_server_factory, cluster_factory):
    from cassandra import ConsistencyLevel, Unavailable as DriverUnavailable

    server = cql_server_factory(tls=False)
    server.when_query("INSERT INTO ks.t (k, v) VALUES (1, 2)").then_error(Unavailable("QUORUM", 2, 1))
    session = connect(cluster_factory, server)
    with pytest.raises(DriverUnavailable) as caught:
        session.execute("INSERT INTO ks.t (k, v) VALUES (1, 2)")
    error = caught.value
    assert (error.consistency, error.required_replicas, error.alive_replicas) == (ConsistencyLevel.QUORUM, 2, 1)
    assert "Cannot achieve consistency level QUORUM" in str(error)


def test_primed_overloaded_reaches_the_caller(cql_server_factory, cluster_factory):
    from cassandra.protocol import OverloadedErrorMessage

    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.t").then_error(Overloaded())
    session = connect(cluster_factory, server)
    with pytest.raises(OverloadedErrorMessage) as caught:
        session.execute("SELECT * FROM ks.t")
    assert caught.value.code == 0x1001
    assert "Server is in overloaded state" in str(caught.value)


def test_a_prepared_statement_survives_an_unprepared_round_trip(cql_server_factory, cluster_factory):
    server = cql_server_factory(tls=False)
    with_table(server)
    text = "SELECT v FROM ks.t WHERE k = ?"
    server.when_query(text).then_rows([(7,)], columns={"v": "int"})
    session = connect(cluster_factory, server)
    prepared = session.prepare(text)
    unprepared = server.when_query(text).once().then_error(Unprepared()).expect(times=1)
    server.activity.clear()
    assert session.execute(prepared, (1,)).one().v == 7
    assert unprepared.matched == 1
    opcodes = [e.opcode for e in server.activity.requests(text)]
    assert opcodes == ["EXECUTE", "PREPARE", "EXECUTE"]  # told UNPREPARED, the driver prepared again


def test_the_log_shows_bound_values_decoded(cql_server_factory, cluster_factory):
    from cassandra import ConsistencyLevel

    server = cql_server_factory(tls=False)
    server.node.schema.add_keyspace("ks")
    server.node.schema.add_table(
        "ks", "people",
        {"id": "uuid", "name": "text", "age": "int", "born": "timestamp", "tags": "set<text>", "score": "double"},
        partition_key="id",
    )
    session = connect(cluster_factory, server)
    text = "INSERT INTO ks.people (id, name, age, born, tags, score) VALUES (?, ?, ?, ?, ?, ?)"
    statement = session.prepare(text)
    statement.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    person = uuid.UUID(int=7)
    session.execute(statement, (person, "ada", 36, STAMP, {"x", "y"}, 9.5))
    [entry] = server.activity.requests(text, opcode="EXECUTE")
    logged = [(v.name, v.type, set(v.value) if v.type == "set<text>" else v.value) for v in entry.values]
    assert logged == [  # the set as the driver sent it, in its (hash) order
        ("id", "uuid", person), ("name", "text", "ada"), ("age", "int", 36),
        ("born", "timestamp", int(STAMP.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)),
        ("tags", "set<text>", {"x", "y"}), ("score", "double", 9.5),
    ]
    assert entry.consistency == "LOCAL_QUORUM" and entry.node == f"{server.host}:{server.port}"
    assert entry.timestamp is not None  # the driver's client-side timestamp (v3+)


def test_then_delay_delays_the_answer(cql_server_factory, cluster_factory):
    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.slow").then_delay(0.5).then_rows([(1,)], columns={"v": "int"})
    session = connect(cluster_factory, server)
    began = time.monotonic()
    assert session.execute("SELECT * FROM ks.slow", timeout=10).one().v == 1
    assert 0.45 <= time.monotonic() - began < 10


def test_no_answer_times_out_on_the_client_while_the_connection_serves_others(cql_server_factory, cluster_factory):
    from cassandra import OperationTimedOut

    server = cql_server_factory(tls=False)
    server.when_query("SELECT * FROM ks.never").then_no_answer().expect(times=1)
    server.when_query("SELECT * FROM ks.fast").then_rows([(2,)], columns={"v": "int"})
    session = connect(cluster_factory, server)
    with pytest.raises(OperationTimedOut):
        session.execute("SELECT * FROM ks.never", timeout=0.5)
    assert session.execute("SELECT * FROM ks.fast", timeout=5).one().v == 2
    [never] = server.activity.requests("SELECT * FROM ks.never")
    [fast] = server.activity.requests("SELECT * FROM ks.fast")
    assert never.connection == fast.connection  # the same connection, still working


def test_answers_in_order_drive_a_retry(cql_server_factory, cluster_factory):
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
    from cassandra.policies import RetryPolicy, RoundRobinPolicy

    server = cql_server_factory(tls=False)
    # received >= block_for and no data: the default policy retries once on the same host
    priming = server.when_query("SELECT * FROM ks.t").in_order() \
        .then_error(ReadTimeout("ONE", 1, 1, False)).then_rows([(3,)], columns={"v": "int"}).expect(times=2)
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), retry_policy=RetryPolicy())
    session = connect(cluster_factory, server, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    assert session.execute("SELECT * FROM ks.t").one().v == 3
    assert priming.matched == 2 and len(server.activity.requests("SELECT * FROM ks.t")) == 2


def test_consistency_keyspace_and_values_narrow_the_match(cql_server_factory, cluster_factory):
    from cassandra import ConsistencyLevel, InvalidRequest
    from cassandra.query import SimpleStatement

    server = cql_server_factory(tls=False)
    with_table(server)
    server.when_query("SELECT v FROM ks.t WHERE k = ?", consistency="QUORUM", values=[1]) \
        .then_rows([(100,)], columns={"v": "int"})
    server.when_query("SELECT v FROM t WHERE k = 1", keyspace="ks").then_rows([(200,)], columns={"v": "int"})
    session = connect(cluster_factory, server)
    prepared = session.prepare("SELECT v FROM ks.t WHERE k = ?")
    prepared.consistency_level = ConsistencyLevel.QUORUM
    assert session.execute(prepared, (1,)).one().v == 100
    assert session.execute(prepared, (2,)).one() is None  # other values: the node's (empty) table
    prepared.consistency_level = ConsistencyLevel.ONE
    assert session.execute(prepared, (1,)).one() is None  # another consistency
    with pytest.raises(InvalidRequest, match="No keyspace has been specified"):  # no keyspace: not primed
        session.execute(SimpleStatement("SELECT v FROM t WHERE k = 1"))
    session.set_keyspace("ks")
    assert session.execute("SELECT v FROM t WHERE k = 1").one().v == 200
