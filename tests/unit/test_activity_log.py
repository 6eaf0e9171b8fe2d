# The activity log as a bounded ring: it keeps the newest entries within a
# count and a budget of query text, keeps every incident until the test
# takes it (counting any a flood drops), keeps exact counters through
# eviction, and delivers entries to subscribers, whose exceptions become
# incidents instead of vanishing.
#
# Rules: no server; entries are added directly (count_request too, as the
# node's request path does); every wait is bounded; threads are joined.
from __future__ import annotations

import threading
from typing import List

import pytest

from fakecql.activity import (
    ActivityCounters,
    ActivityLog,
    ConnectionClosed,
    ConnectionOpened,
    Entry,
    FrameReceived,
    HandshakeCompleted,
    ProtocolIncident,
    ServerException,
    UnexpectedRequest,
)
from fakecql.limits import Limits

TIMEOUT = 5.0


def frame(connection: int, query: str = "", stream: int = 0) -> FrameReceived:
    return FrameReceived(connection, opcode="QUERY", stream=stream, query=query or None)


# --------------------------------------------------------------------------
# The ring: bounded by entries and by query text, oldest dropped first
# --------------------------------------------------------------------------

def test_bounded_by_entries_keeps_the_newest():
    log = ActivityLog(max_entries=3)
    for n in range(10):
        log.add(frame(n))

    assert [e.connection for e in log.entries] == [7, 8, 9]
    counters = log.counters()
    assert (counters.entries, counters.entries_dropped) == (10, 7)


def test_bounded_by_text_counts_query_characters():
    log = ActivityLog(max_entries=None, max_text_bytes=10)
    log.add(frame(1, "abcd"))
    log.add(frame(2, "efgh"))
    log.add(ConnectionOpened(3))  # holds no text: does not count
    assert len(log.entries) == 3
    log.add(frame(4, "ijk"))  # 11 characters: the oldest goes

    assert [e.connection for e in log.entries] == [2, 3, 4]
    assert log.queries() == ["efgh", "ijk"]
    counters = log.counters()
    assert (counters.entries_dropped, counters.text_bytes_dropped) == (1, 4)


def test_unexpected_request_text_counts_too():
    log = ActivityLog(max_entries=None, max_text_bytes=8)
    log.add(UnexpectedRequest(1, query="UPDATE a"))
    log.add(UnexpectedRequest(2, query="UPDATE b"))

    assert [e.connection for e in log.entries] == [2]
    assert log.counters().text_bytes_dropped == 8


def test_the_newest_entry_is_kept_even_when_its_text_alone_is_over():
    log = ActivityLog(max_text_bytes=4)
    log.add(frame(1, "ab"))
    log.add(frame(2, "x" * 100))

    assert [e.connection for e in log.entries] == [2]  # for wait_for and the test to see
    log.add(ConnectionClosed(2))
    assert [type(e) for e in log.entries] == [ConnectionClosed]
    assert log.counters().text_bytes_dropped == 102


def test_defaults_are_the_limits_defaults():
    log = ActivityLog()
    assert (log.max_entries, log.max_text_bytes) == (Limits().log_entries, Limits().log_text_bytes)
    assert log.max_incidents == 10_000
    limited = ActivityLog.from_limits(Limits(log_entries=5, log_text_bytes=7))
    assert (limited.max_entries, limited.max_text_bytes) == (5, 7)
    unbounded = ActivityLog.from_limits(Limits.unbounded_log())
    assert (unbounded.max_entries, unbounded.max_text_bytes) == (None, None)


def test_unbounded_keeps_everything():
    log = ActivityLog.unbounded()
    for n in range(1000):
        log.add(frame(n, "q" * 1000))
        log.add(ProtocolIncident(n, description="bad"))

    assert len(log.entries) == 2000
    assert len(log.incidents()) == 1000
    counters = log.counters()
    assert (counters.entries_dropped, counters.text_bytes_dropped, counters.incidents_dropped) == (0, 0, 0)


@pytest.mark.parametrize("kwargs", [
    {"max_entries": 0}, {"max_entries": -1}, {"max_text_bytes": 0}, {"max_entries": 1.5},
    {"max_entries": True}, {"max_incidents": 0},
])
def test_bounds_must_be_positive_integers_or_none(kwargs):
    [(name, value)] = kwargs.items()
    with pytest.raises(ValueError, match=f"ActivityLog {name} must be a positive integer or None"):
        ActivityLog(**kwargs)


# --------------------------------------------------------------------------
# Incidents: never lost to eviction; a flood over their own bound is counted
# --------------------------------------------------------------------------

def test_incidents_survive_eviction_from_the_ring():
    log = ActivityLog(max_entries=2)
    first = ProtocolIncident(1, description="bad frame")
    log.add(first)
    for n in range(5):
        log.add(frame(n))

    assert first not in log.entries
    assert log.incidents() == [first]
    assert log.take_incidents() == [first]
    assert log.incidents() == [] and log.take_incidents() == []


def test_take_incidents_after_eviction_takes_only_the_new_ones():
    log = ActivityLog(max_entries=2)
    log.add(ProtocolIncident(1, description="one"))
    assert [i.description for i in log.take_incidents()] == ["one"]
    for n in range(5):
        log.add(frame(n))
    log.add(UnexpectedRequest(2, description="two", query="UPDATE t SET a = 1"))
    for n in range(5):
        log.add(frame(n))

    assert [i.description for i in log.incidents()] == ["two"]
    assert [i.description for i in log.take_incidents()] == ["two"]
    assert log.incidents() == []


def test_an_incident_flood_is_bounded_and_counted():
    log = ActivityLog(max_entries=10, max_incidents=3)
    for n in range(8):
        log.add(ProtocolIncident(n, description=f"bad {n}"))

    assert [i.connection for i in log.incidents()] == [5, 6, 7]
    assert log.incidents_dropped == 5
    assert log.counters().incidents_dropped == 5
    assert log.counters().incidents == {"ProtocolIncident": 8}

    assert len(log.take_incidents()) == 3
    assert log.incidents_dropped == 0  # acknowledged with the take
    assert log.counters().incidents_dropped == 5  # the total stays


def test_incidents_have_a_text_budget_of_their_own():
    log = ActivityLog(max_entries=None, max_text_bytes=10)
    for n in range(3):
        log.add(UnexpectedRequest(n, query="x" * 6))

    assert [i.connection for i in log.incidents()] == [2]
    assert log.incidents_dropped == 2


# --------------------------------------------------------------------------
# Counters: exact after eviction, a frozen snapshot
# --------------------------------------------------------------------------

def test_counters_are_exact_after_eviction():
    log = ActivityLog(max_entries=2, max_text_bytes=50)
    for n in range(1, 4):
        log.add(ConnectionOpened(n, peer=("127.0.0.1", 5000 + n)))
        log.add(HandshakeCompleted(n))
        log.count_request("OPTIONS")
        log.count_request("STARTUP")
        log.add(frame(n, "SELECT * FROM t"))
        log.count_request("QUERY")
        log.count_request("QUERY")
    log.add(UnexpectedRequest(2, query="UPDATE t SET a = 1"))
    log.add(ProtocolIncident(3, description="bad"))
    log.add(ProtocolIncident(3, description="worse"))

    counters = log.counters()
    assert counters == ActivityCounters(
        entries=12, connections=3,
        requests={"OPTIONS": 3, "STARTUP": 3, "QUERY": 6},
        incidents={"UnexpectedRequest": 1, "ProtocolIncident": 2},
        entries_dropped=10, text_bytes_dropped=3 * len("SELECT * FROM t") + len("UPDATE t SET a = 1"),
        incidents_dropped=0,
    )
    assert (counters.total_requests, counters.total_incidents) == (12, 3)


def test_counters_are_a_snapshot():
    log = ActivityLog()
    log.count_request("QUERY")
    before = log.counters()
    log.count_request("QUERY")
    log.add(ConnectionOpened(1))

    assert before.requests == {"QUERY": 1} and before.connections == 0
    with pytest.raises(TypeError):
        before.requests["QUERY"] = 5  # type: ignore[index]
    with pytest.raises(AttributeError):
        before.connections = 5  # type: ignore[misc]
    assert log.counters().requests == {"QUERY": 2}


def test_counting_from_many_threads_is_exact():
    log = ActivityLog(max_entries=100)

    def work() -> None:
        for n in range(2000):
            log.count_request("QUERY")
            log.add(frame(n, "SELECT 1"))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads)

    counters = log.counters()
    assert counters.requests == {"QUERY": 8000}
    assert (counters.entries, counters.entries_dropped) == (8000, 7900)
    assert counters.text_bytes_dropped == 7900 * len("SELECT 1")


def test_clear_forgets_entries_incidents_and_counters():
    log = ActivityLog(max_entries=1)
    log.add(ConnectionOpened(1))
    log.add(ProtocolIncident(1, description="bad"))
    log.count_request("QUERY")
    log.clear()

    assert log.entries == [] and log.incidents() == []
    assert log.counters() == ActivityCounters()


def test_an_empty_log_is_true():
    # Node(activity=None) picks its own log with `activity or ActivityLog()`: a given empty log must be kept.
    assert ActivityLog()


# --------------------------------------------------------------------------
# wait_for: bounded, and sees entries added after the call across eviction
# --------------------------------------------------------------------------

def test_wait_for_finds_an_entry_already_held():
    log = ActivityLog()
    log.add(frame(1, "SELECT 1"))
    assert log.wait_for(lambda e: isinstance(e, FrameReceived), timeout=0.1).connection == 1


def test_wait_for_sees_an_entry_evicted_before_it_looked():
    log = ActivityLog(max_entries=2)
    log.add(ConnectionOpened(1))
    looking, flooded = threading.Event(), threading.Event()

    def predicate(entry: Entry) -> bool:
        if isinstance(entry, ConnectionOpened):  # the entry held at the call: hold the waiter here
            looking.set()
            flooded.wait(TIMEOUT)
        return isinstance(entry, ProtocolIncident)

    found: List[Entry] = []
    thread = threading.Thread(target=lambda: found.append(log.wait_for(predicate, timeout=TIMEOUT)))
    thread.start()
    try:
        assert looking.wait(TIMEOUT)
        log.add(ProtocolIncident(7, description="the one"))
        for n in range(50):
            log.add(frame(n))
        assert all(not isinstance(e, ProtocolIncident) for e in log.entries)  # evicted before the waiter looked
    finally:
        flooded.set()
        thread.join(TIMEOUT)

    assert not thread.is_alive()
    assert [e.connection for e in found] == [7]
    assert log._waiters == []


def test_wait_for_times_out_in_time_and_says_what_the_log_holds():
    log = ActivityLog(max_entries=2)
    for n in range(4):
        log.add(frame(n))
    with pytest.raises(TimeoutError, match=r"within 0.05 s; the log holds 2 entries \(2 dropped\)"):
        log.wait_for(lambda e: False, timeout=0.05)
    assert log._waiters == []


def test_wait_for_sees_entries_added_from_another_thread():
    log = ActivityLog(max_entries=5)

    def adder() -> None:
        for n in range(200):
            log.add(frame(n))
        log.add(ConnectionClosed(99, reason="done"))

    thread = threading.Thread(target=adder)
    thread.start()
    try:
        entry = log.wait_for(lambda e: isinstance(e, ConnectionClosed), timeout=TIMEOUT)
    finally:
        thread.join(TIMEOUT)
    assert entry.connection == 99


# --------------------------------------------------------------------------
# Subscribers: every entry, outside the lock; an exception becomes an incident
# --------------------------------------------------------------------------

def test_subscribers_get_every_entry_until_unsubscribed():
    log = ActivityLog(max_entries=1)
    seen: List[Entry] = []
    log.subscribe(seen.append)
    entries = [ConnectionOpened(1), frame(1, "SELECT 1"), ProtocolIncident(1, description="bad")]
    for entry in entries:
        log.add(entry)
    log.unsubscribe(seen.append)
    log.add(ConnectionClosed(1))

    assert seen == entries
    with pytest.raises(ValueError, match="is not subscribed"):
        log.unsubscribe(seen.append)


def test_a_subscriber_may_read_the_log():
    # Called outside the lock: reading the log from the callback does not deadlock.
    log = ActivityLog()
    counts: List[int] = []
    log.subscribe(lambda entry: counts.append(len(log.entries)))
    log.add(ConnectionOpened(1))
    log.add(ConnectionClosed(1))
    assert counts == [1, 2]


def test_a_subscriber_exception_becomes_an_incident_and_add_carries_on():
    log = ActivityLog()
    seen: List[Entry] = []

    def broken(entry: Entry) -> None:
        if isinstance(entry, ConnectionOpened):
            raise RuntimeError("the printer broke")

    log.subscribe(broken)
    log.subscribe(seen.append)  # a later subscriber still gets the entry
    log.add(ConnectionOpened(4))

    [incident] = log.take_incidents()
    assert isinstance(incident, ServerException)
    assert incident.connection == 4
    assert isinstance(incident.exception, RuntimeError)
    assert "raised on ConnectionOpened" in incident.description
    assert "RuntimeError: the printer broke" in incident.description
    assert [type(e) for e in seen] == [ConnectionOpened, ServerException]  # the report is delivered too


def test_a_subscriber_that_always_raises_does_not_recurse():
    log = ActivityLog()

    def always(entry: Entry) -> None:
        raise ValueError(f"no {type(entry).__name__}")

    log.subscribe(always)
    log.add(ConnectionOpened(1))
    log.add(ConnectionClosed(1))

    descriptions = [i.description for i in log.take_incidents()]
    # Each entry's failure, then the failure on that report (logged, not delivered again).
    assert len(descriptions) == 4
    assert "ValueError: no ConnectionOpened" in descriptions[0]
    assert "ValueError: no ServerException" in descriptions[1]
    assert "ValueError: no ConnectionClosed" in descriptions[2]
    assert log.counters().incidents == {"ServerException": 4}
