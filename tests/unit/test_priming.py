# Priming that reads as sentences, sans I/O: what a node answers for each
# priming (matching on text, keyspace, consistency and bound values; typed CQL
# errors; delays and withheld answers as markers; counts and answers in
# order), shared books, and the listing of unmet expectations.
from __future__ import annotations

import re
import threading
from typing import Any, List

import pytest

import fakecql
from fakecql import (
    AlreadyExists,
    Consistency,
    CQLSyntaxError,
    FunctionFailure,
    Node,
    Overloaded,
    PrimingBook,
    ReadFailure,
    ReadTimeout,
    ServerError,
    Unavailable,
    UnexpectedRequest,
    UnmetExpectationsError,
    Unprepared,
    WriteFailure,
    WriteTimeout,
)
from fakecql.priming import DeferredAnswer, Priming
from fakecql.protocol.errors import ErrorCode
from fakecql.protocol.messages import (
    AlreadyExistsInfo,
    Batch,
    BatchStatement,
    Error,
    ReadTimeoutInfo,
    RowsResult,
    UnavailableInfo,
    UnpreparedInfo,
    VoidResult,
    WriteTimeoutInfo,
)
from fakecql.protocol.types import INT, TEXT

from .test_node import decoded, execute, prepare, query, startup

SELECT = "SELECT v FROM ks.t WHERE k = ?"
ROWS = {"columns": {"v": "int"}}


@pytest.fixture
def node() -> Node:
    node = Node()
    node.schema.add_keyspace("ks")
    node.schema.add_table("ks", "t", {"k": "int", "v": "int"}, partition_key="k")
    return node


@pytest.fixture
def session(node):
    session = node.session(1)
    startup(session)
    return session


def value_of(result) -> Any:
    return decoded(result)[0][0]


# -- the move: fakecql.Priming is the priming module's ----------------------------------------

def test_priming_lives_in_its_own_module_and_keeps_its_names(node):
    assert fakecql.Priming is Priming
    from fakecql.node import Priming as FromNode
    assert FromNode is Priming
    assert isinstance(node.when_query("SELECT 1"), Priming)


# -- matching --------------------------------------------------------------------------------

def test_consistency_narrows_the_match_by_name_or_enum(node, session):
    node.when_query(SELECT, consistency="QUORUM").then_rows([(1,)], **ROWS)
    node.when_query(SELECT, consistency=[Consistency.LOCAL_ONE, "two"]).then_rows([(2,)], **ROWS)
    one = INT.serialize(7)
    assert value_of(query(session, SELECT, one, consistency=Consistency.QUORUM)) == 1
    assert value_of(query(session, SELECT, one, consistency=Consistency.LOCAL_ONE)) == 2
    assert value_of(query(session, SELECT, one, consistency=Consistency.TWO)) == 2
    # no priming for ONE: the node reads its (empty) table itself
    assert decoded(query(session, SELECT, one, consistency=Consistency.ONE)) == []


def test_a_bad_consistency_name_is_refused_at_once(node):
    with pytest.raises(ValueError, match=r"consistency must be a consistency level \(ANY, ONE.*got 'QUOROM'"):
        node.when_query(SELECT, consistency="QUOROM")


def test_keyspace_narrows_the_match(node, session):
    node.schema.add_keyspace("other")
    node.when_query("SELECT * FROM t", keyspace="ks").then_rows([(1,)], **ROWS)
    node.when_query("SELECT * FROM t", keyspace="other").then_rows([(2,)], **ROWS)
    query(session, "USE ks")
    assert value_of(query(session, "SELECT * FROM t")) == 1
    assert value_of(query(session, "SELECT * FROM t", version=5, keyspace="other")) == 2
    query(session, "USE other")
    assert value_of(query(session, "SELECT * FROM t")) == 2
    # a qualified name is the statement's keyspace
    node.when_query("SELECT * FROM ks.u", keyspace="ks").then_void()
    assert query(session, "SELECT * FROM ks.u") == VoidResult()


def test_values_match_decoded_executes(node, session):
    node.when_query(SELECT, values=(1,)).then_rows([(10,)], **ROWS)
    node.when_query(SELECT, values=lambda v: v[0] > 100).then_rows([(20,)], **ROWS)
    query_id = prepare(session, SELECT).query_id
    assert value_of(execute(session, query_id, INT.serialize(1))) == 10
    assert value_of(execute(session, query_id, INT.serialize(500))) == 20
    assert decoded(execute(session, query_id, INT.serialize(2))) == []


def test_values_of_a_query_are_typed_by_the_primings_params(node, session):
    text = "UPDATE ks.t SET v = ? WHERE k = ?"
    node.when_query(text, params={"v": "text", "k": "int"}, values=["x", 3]).then_void()
    assert query(session, text, TEXT.serialize("x"), INT.serialize(3)) == VoidResult()
    assert node.activity.take_incidents() == []
    query(session, text, TEXT.serialize("y"), INT.serialize(3))  # not primed: uninterpreted, an incident
    assert [type(i) for i in node.activity.take_incidents()] == [UnexpectedRequest]
    # without params, a QUERY's values are compared as their bytes
    node.when_query("SELECT * FROM ks.t WHERE k = ?", values=[INT.serialize(9)]).then_rows([(9,)], **ROWS)
    assert value_of(query(session, "SELECT * FROM ks.t WHERE k = ?", INT.serialize(9))) == 9


def test_collections_compare_as_python_values(node, session):
    node.schema.add_table("ks", "c", {"k": "int", "l": "list<int>", "m": "map<text, int>"}, partition_key="k")
    text = "SELECT * FROM ks.c WHERE k = ? AND l = ? AND m = ?"
    node.when_query(text, values=(1, (1, 2), {"a": 1})).then_void()
    from fakecql.protocol.types import parse_type
    query_id = prepare(session, "SELECT * FROM ks.c WHERE k = ? AND l = ? AND m = ?").query_id
    raw = (INT.serialize(1), parse_type("list<int>").serialize([1, 2]), parse_type("map<text, int>").serialize({"a": 1}))
    assert execute(session, query_id, *raw) == VoidResult()


# -- typed errors --------------------------------------------------------------------------

ERRORS = [
    (ReadTimeout("QUORUM", 1, 2, False), ErrorCode.READ_TIMEOUT,
     ReadTimeoutInfo(consistency=Consistency.QUORUM, received=1, block_for=2, data_present=False),
     "Operation timed out - received only 1 responses."),
    (WriteTimeout("LOCAL_QUORUM", 0, 2, "BATCH"), ErrorCode.WRITE_TIMEOUT,
     WriteTimeoutInfo(consistency=Consistency.LOCAL_QUORUM, received=0, block_for=2, write_type="BATCH"),
     "Operation timed out - received only 0 responses."),
    (Unavailable(Consistency.ALL, 3, 1), ErrorCode.UNAVAILABLE,
     UnavailableInfo(consistency=Consistency.ALL, required=3, alive=1), "Cannot achieve consistency level ALL"),
    (AlreadyExists("ks", "t"), ErrorCode.ALREADY_EXISTS, AlreadyExistsInfo(keyspace="ks", table="t"),
     'Cannot add already existing table "t" to keyspace "ks"'),
    (Overloaded(), ErrorCode.OVERLOADED, None,
     "Server is in overloaded state. Cannot accept more requests at this point"),
    (CQLSyntaxError("line 1:7 bad input"), ErrorCode.SYNTAX_ERROR, None, "line 1:7 bad input"),
    (ServerError(message="boom"), ErrorCode.SERVER_ERROR, None, "boom"),
]


@pytest.mark.parametrize("error, code, info, message", ERRORS, ids=[type(e[0]).__name__ for e in ERRORS])
def test_typed_errors_answer_with_their_fields_and_default_message(node, session, error, code, info, message):
    node.when_query("SELECT * FROM ks.t").then_error(error)
    assert query(session, "SELECT * FROM ks.t") == Error(code=code, message=message, info=info)


def test_every_error_code_has_a_typed_class_importable_from_fakecql():
    classes = [getattr(fakecql, name) for name in fakecql.__all__]
    typed = {c.code for c in classes if isinstance(c, type) and issubclass(c, fakecql.CQLError) and c is not fakecql.CQLError}
    assert typed == set(ErrorCode)
    for cls in classes:
        if isinstance(cls, type) and issubclass(cls, fakecql.CQLError) and cls is not fakecql.CQLError:
            assert cls().to_error(b"id").message  # each builds with defaults, with a message


def test_failure_errors_carry_their_counts(node, session):
    node.when_query("SELECT * FROM ks.t").then_error(ReadFailure("ONE", 0, 1, False, num_failures=2))
    answer = query(session, "SELECT * FROM ks.t")
    assert answer.code == ErrorCode.READ_FAILURE and answer.info.num_failures == 2
    assert WriteFailure("ONE", 0, 1, "SIMPLE").to_error().info.write_type == "SIMPLE"
    assert FunctionFailure("ks", "f", ("int",)).to_error().message == "execution of 'ks.f[int]' failed"


def test_errors_refuse_bad_fields_at_once():
    with pytest.raises(ValueError, match="got 'MOST'"):
        ReadTimeout("MOST")
    with pytest.raises(TypeError, match="takes no message or info"):
        Node().when_query("q").then_error(Overloaded(), "x")
    with pytest.raises(TypeError, match=r"then_error\(\) takes a fakecql CQL error"):
        Node().when_query("q").then_error("Overloaded")


def test_unprepared_names_the_statement_being_executed(node, session):
    query_id = prepare(session, SELECT).query_id
    node.when_query(SELECT).once().then_error(Unprepared())
    answer = execute(session, query_id, INT.serialize(1))
    assert answer.code == ErrorCode.UNPREPARED and answer.info == UnpreparedInfo(statement_id=query_id)
    assert isinstance(execute(session, query_id, INT.serialize(1)), RowsResult)  # once: then the node answers


def test_the_older_then_error_signature_still_works(node, session):
    info = UnavailableInfo(consistency=Consistency.QUORUM, required=2, alive=1)
    node.when_query("SELECT * FROM ks.t").then_error(ErrorCode.UNAVAILABLE, "nope", info)
    assert query(session, "SELECT * FROM ks.t") == Error(code=ErrorCode.UNAVAILABLE, message="nope", info=info)


# -- delays and withheld answers ------------------------------------------------------------

def test_then_delay_then_rows_is_a_deferred_answer(node, session):
    node.when_query("SELECT * FROM ks.t").then_delay(2).then_rows([(1,)], **ROWS)
    answer = query(session, "SELECT * FROM ks.t")
    assert isinstance(answer, DeferredAnswer) and answer.delay == 2.0
    assert decoded(answer.response) == [(1,)]


def test_then_delay_alone_delays_what_comes_next(node, session):
    node.when_query("SELECT * FROM ks.t").then_rows([(5,)], **ROWS)
    node.when_query("SELECT * FROM ks.t").once().then_delay(0.5)
    first = query(session, "SELECT * FROM ks.t")
    assert isinstance(first, DeferredAnswer) and first.delay == 0.5 and decoded(first.response) == [(5,)]
    assert decoded(query(session, "SELECT * FROM ks.t")) == [(5,)]  # once: the rows, now
    node.clear_primings()
    node.when_query(re.compile("ks.nope")).then_delay(0.25)  # the node's own answer: an error, later
    late = query(session, "SELECT * FROM ks.nope")
    assert late.delay == 0.25 and late.response.code == ErrorCode.INVALID
    assert "unconfigured table nope" in late.response.message
    assert len(node.activity.take_incidents()) == 1


def test_then_no_answer(node, session):
    node.when_query("SELECT * FROM ks.t").then_no_answer()
    answer = query(session, "SELECT * FROM ks.t")
    assert answer == DeferredAnswer(None, None) and answer.withheld


def test_a_batch_answers_as_late_as_its_latest_statement(node, session):
    node.when_query("UPDATE ks.t SET v = 1 WHERE k = 1").then_delay(0.3).then_void()
    node.when_query("UPDATE ks.t SET v = 2 WHERE k = 2").then_void()
    batch = Batch(statements=(BatchStatement(query="UPDATE ks.t SET v = 1 WHERE k = 1"),
                              BatchStatement(query="UPDATE ks.t SET v = 2 WHERE k = 2")))
    assert session.handle(batch, 4, 1) == DeferredAnswer(0.3, VoidResult())


@pytest.mark.parametrize("seconds", [-1, "1", True, 4000])
def test_bad_delays_are_refused(node, seconds):
    with pytest.raises(ValueError, match=r"then_delay\(\) takes seconds in \[0, 3600\]"):
        node.when_query("q").then_delay(seconds)


# -- counts and order -----------------------------------------------------------------------

def test_in_order_answers_one_after_another_then_falls_through(node, session):
    node.when_query("SELECT * FROM ks.t").then_rows([(0,)], **ROWS)
    node.when_query("SELECT * FROM ks.t").in_order().then_error(Overloaded()).then_rows([(1,)], **ROWS)
    answers = [query(session, "SELECT * FROM ks.t") for _ in range(3)]
    assert answers[0].code == ErrorCode.OVERLOADED
    assert decoded(answers[1]) == [(1,)] and decoded(answers[2]) == [(0,)]


def test_in_order_always_repeats_the_last(node, session):
    node.when_query("SELECT * FROM ks.t").in_order().always().then_error(Overloaded()).then_rows([(1,)], **ROWS)
    answers = [query(session, "SELECT * FROM ks.t") for _ in range(4)]
    assert isinstance(answers[0], Error) and [decoded(a) for a in answers[1:]] == [[(1,)]] * 3


def test_times_and_once(node, session):
    node.when_query("SELECT * FROM ks.t").then_rows([(0,)], **ROWS)
    node.when_query("SELECT * FROM ks.t").times(2).then_rows([(2,)], **ROWS)
    node.when_query("SELECT * FROM ks.t").once().then_rows([(1,)], **ROWS)
    assert [value_of(query(session, "SELECT * FROM ks.t")) for _ in range(5)] == [1, 2, 2, 0, 0]
    with pytest.raises(ValueError, match="times must be a positive integer or None, got 0"):
        node.when_query("q").times(0)


def test_clear_forgets_the_nodes_primings(node, session):
    node.when_query("SELECT * FROM ks.t").then_rows([(1,)], **ROWS)
    node.clear_primings()
    assert node.primings() == [] and decoded(query(session, "SELECT * FROM ks.t")) == []


# -- expectations ------------------------------------------------------------------------------

def test_unmet_expectations_are_listed_with_expected_and_seen(node, session):
    node.when_query("SELECT * FROM ks.t", consistency="QUORUM").then_void().expect(times=2)
    node.when_query("SELECT v FROM ks.t").then_void().expect()
    node.when_query("SELECT k FROM ks.t").then_void().expect(at_least=1)
    query(session, "SELECT * FROM ks.t", consistency=Consistency.QUORUM)
    query(session, "SELECT k FROM ks.t")
    unmet = node.unmet_expectations()
    assert [(u.expected, u.seen) for u in unmet] == [("exactly 2", 1), ("at least 1", 0)]
    assert str(unmet[0]) == (
        "'SELECT * FROM ks.t' consistency=QUORUM -> Void [always] (matched 1x) (in node primings): "
        "expected exactly 2 time(s), seen 1"
    )
    with pytest.raises(UnmetExpectationsError) as caught:
        node.priming_book.check()
    assert "2 priming expectation(s) not met" in str(caught.value)
    query(session, "SELECT * FROM ks.t", consistency=Consistency.QUORUM)
    query(session, "SELECT v FROM ks.t")
    assert node.unmet_expectations() == []
    query(session, "SELECT * FROM ks.t", consistency=Consistency.QUORUM)  # a third time: exactly 2 is unmet
    assert [u.seen for u in node.unmet_expectations()] == [3]


def test_expect_refuses_nonsense(node):
    with pytest.raises(ValueError, match="not both"):
        node.when_query("q").expect(times=1, at_least=1)
    with pytest.raises(ValueError, match="non-negative integer"):
        node.when_query("q").expect(times=-1)


# -- shared books ----------------------------------------------------------------------------

def test_nodes_consult_their_own_primings_then_shared_books_in_order():
    dc, everywhere = PrimingBook("dc1"), PrimingBook("cluster")
    nodes = [Node(), Node()]
    for n in nodes:
        n.add_priming_source(dc)
        n.add_priming_source(everywhere)
    everywhere.when_query("SELECT * FROM x").then_rows([(3,)], **ROWS)
    dc.when_query("SELECT * FROM x").then_rows([(2,)], **ROWS)
    nodes[0].when_query("SELECT * FROM x").then_rows([(1,)], **ROWS)
    sessions = [n.session(1) for n in nodes]
    for s in sessions:
        startup(s)
    assert [value_of(query(s, "SELECT * FROM x")) for s in sessions] == [1, 2]
    dc.clear()
    assert value_of(query(sessions[1], "SELECT * FROM x")) == 3
    with pytest.raises(ValueError, match="already a priming source"):
        nodes[0].add_priming_source(dc)
    nodes[0].remove_priming_source(dc)
    assert nodes[0].priming_sources() == (everywhere,)
    with pytest.raises(TypeError, match="takes a fakecql.PrimingBook"):
        nodes[0].add_priming_source([])  # type: ignore[arg-type]


def test_a_shared_book_counts_exactly_across_threads():
    book = PrimingBook("shared")
    priming = book.when_query("SELECT * FROM x").times(50).then_void()
    nodes = [Node() for _ in range(4)]
    for n in nodes:
        n.add_priming_source(book)
    answers: List[Any] = []
    lock = threading.Lock()

    def ask(node: Node) -> None:
        session = node.session(1)
        startup(session)
        for _ in range(40):
            answer = query(session, "SELECT * FROM x")
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=ask, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    assert priming.matched == 50
    assert sum(1 for a in answers if a == VoidResult()) == 50  # the other 110: the node's own answer
    assert len(answers) == 160


def test_shared_book_expectations_are_checked_by_the_book():
    book = PrimingBook("dc2")
    node = Node()
    node.add_priming_source(book)
    book.when_query("SELECT 1").then_void().expect()
    assert node.unmet_expectations() == []  # the node's own primings only
    assert [u.book for u in node.unmet_expectations(sources=True)] == ["dc2"]
    with pytest.raises(UnmetExpectationsError, match=r"fakecql dc2: 1 priming expectation\(s\) not met"):
        book.check()


def test_prepare_is_matched_on_text_and_keyspace_only(node, session):
    text = "UPDATE ks.t SET v = ? WHERE k = ?"
    node.when_query(text, params={"v": "text", "k": "int"}, consistency="QUORUM", values=["a", 1]).then_void()
    prepared = prepare(session, text)
    assert [s.type for s in prepared.bind_metadata.columns] == [TEXT, INT]
    raw = (TEXT.serialize("a"), INT.serialize(1))
    assert execute(session, prepared.query_id, *raw, consistency=Consistency.QUORUM) == VoidResult()
