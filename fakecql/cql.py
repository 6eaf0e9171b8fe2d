# A small reader of the CQL statements drivers send: enough to answer
# SELECTs over the node's in-memory tables, USE, and INSERTs, and to count
# bind markers for PREPARE. It is not a CQL parser and does not try to be.
#
# Strategy: tokenize, strip the suffixes a real node accepts but that change
# nothing here (`USING TIMEOUT <n>ms`, `BYPASS CACHE`, `ALLOW FILTERING`, a
# trailing `;`), then recognise a few statement shapes. Anything else comes
# back as Unrecognized, which the node answers from priming or records as
# unexpected. Unquoted identifiers are lowercased, quoted ones kept, as CQL
# does.
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

__all__ = [
    "Literal",
    "Marker",
    "Selector",
    "Condition",
    "Select",
    "Insert",
    "Use",
    "Unrecognized",
    "Statement",
    "parse_statement",
    "normalize_query",
    "parse_query",
    "count_markers",
]


@dataclass(frozen=True)
class Literal:
    """A constant in the statement text; `kind` is string, number, uuid, blob, bool, null."""

    kind: str
    text: str


@dataclass(frozen=True)
class Marker:
    """A bind marker: `?` (name None) or `:name`. `index` counts markers in order."""

    index: int
    name: Optional[str] = None


Term = Union[Literal, Marker]


@dataclass(frozen=True)
class Selector:
    column: str  # a column name, "*", or "count(*)"
    alias: Optional[str] = None

    @property
    def output_name(self) -> str:
        if self.alias:
            return self.alias
        return "count" if self.column == "count(*)" else self.column


@dataclass(frozen=True)
class Condition:
    column: str
    operator: str  # "=" or "IN"
    terms: Tuple[Term, ...]


@dataclass(frozen=True)
class Select:
    keyspace: Optional[str]
    table: str
    selectors: Tuple[Selector, ...]
    where: Tuple[Condition, ...] = ()
    limit: Optional[Term] = None
    markers: int = 0


@dataclass(frozen=True)
class Insert:
    keyspace: Optional[str]
    table: str
    columns: Tuple[str, ...]
    values: Tuple[Term, ...]
    markers: int = 0


@dataclass(frozen=True)
class Use:
    keyspace: str


@dataclass(frozen=True)
class Unrecognized:
    verb: str  # the first word, upper-cased ("UPDATE", "CREATE", ...)
    markers: int = 0
    reason: str = ""


Statement = Union[Select, Insert, Use, Unrecognized]

_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")*")
    | (?P<uuid>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})
    | (?P<blob>0[xX][0-9a-fA-F]*)
    | (?P<number>-?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(?i:-?NaN|-?Infinity)(?![A-Za-z0-9_]))
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<marker>\?|:[A-Za-z_][A-Za-z0-9_]*)
    | (?P<punct><=|>=|!=|[(),.;*=<>\[\]{}+\-:])
    )
    """,
    re.VERBOSE,
)

# A duration as USING TIMEOUT takes it: "2000ms", "5s", "1h30m" (CQL's units).
_DURATION = r"\d+\s*(?:{unit})?(?:\d+(?:{unit}))*".format(unit="mo|ms|us|\u00b5s|ns|y|w|d|h|m|s")
_SUFFIXES = re.compile(
    rf"(?:\s+USING\s+TIMEOUT\s+{_DURATION}|\s+BYPASS\s+CACHE|\s+ALLOW\s+FILTERING|\s*;)+\s*$",
    re.IGNORECASE,
)
# Whitespace is collapsed outside string constants and quoted names only.
_QUOTED_OR_SPACE = re.compile(r"""'(?:[^']|'')*'|"(?:[^"]|"")*"|\s+""")


def normalize_query(text: str) -> str:
    """The statement with whitespace collapsed and ignorable suffixes removed.

    Used both to parse and to match primed queries, so `... USING TIMEOUT
    2000ms` matches the query primed without it. Whitespace inside 'string
    constants' and "quoted names" is kept as it is.
    """
    text = _QUOTED_OR_SPACE.sub(lambda m: " " if m.group().isspace() else m.group(), text).strip()
    return _SUFFIXES.sub("", text)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str  # identifiers lowercased unless quoted
    raw: str


def _tokenize(text: str) -> List[_Tok]:
    tokens = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            at = len(text) - len(text[pos:].lstrip())  # the character, not the spaces before it
            raise _NotRecognized(f"unexpected character {text[at:at + 10]!r} at {at}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "name":
            value = raw.lower()
        elif kind == "quoted":
            kind, value = "name", raw[1:-1].replace('""', '"')
        else:
            value = raw
        tokens.append(_Tok(kind, value, raw))
        pos = match.end()
    return tokens


class _NotRecognized(Exception):
    pass


class _Parser:
    def __init__(self, tokens: Sequence[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.markers = 0

    def peek(self, offset: int = 0) -> Optional[_Tok]:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise _NotRecognized("statement ends too early")
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "name" and tok.raw.lower() in words and not tok.raw.startswith('"'):
            self.pos += 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise _NotRecognized(f"expected {word.upper()}")

    def punct(self, symbol: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == symbol:
            self.pos += 1
            return True
        return False

    def expect_punct(self, symbol: str) -> None:
        if not self.punct(symbol):
            raise _NotRecognized(f"expected {symbol!r}")

    def name(self) -> str:
        tok = self.next()
        if tok.kind != "name":
            raise _NotRecognized(f"expected a name, got {tok.raw!r}")
        return tok.text

    def table_name(self) -> Tuple[Optional[str], str]:
        first = self.name()
        if self.punct("."):
            return first, self.name()
        return None, first

    def term(self) -> Term:
        tok = self.next()
        if tok.kind == "marker":
            marker = Marker(self.markers, None if tok.text == "?" else tok.text[1:].lower())
            self.markers += 1
            return marker
        if tok.kind == "string":
            return Literal("string", tok.text[1:-1].replace("''", "'"))
        if tok.kind in ("number", "uuid", "blob"):
            return Literal(tok.kind, tok.text)
        if tok.kind == "name" and tok.text in ("true", "false"):
            return Literal("bool", tok.text)
        if tok.kind == "name" and tok.text == "null":
            return Literal("null", "null")
        raise _NotRecognized(f"expected a value, got {tok.raw!r}")

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)


def _select(p: _Parser) -> Select:
    selectors: List[Selector] = []
    if p.keyword("json", "distinct"):
        raise _NotRecognized("SELECT JSON / DISTINCT")
    while True:
        if p.punct("*"):
            selectors.append(Selector("*"))
        else:
            column = p.name()
            if column == "count" and p.punct("("):
                if not (p.punct("*") or (p.peek() is not None and p.next().text == "1")):
                    raise _NotRecognized("count() of something else than * or 1")
                p.expect_punct(")")
                column = "count(*)"
            elif p.peek() is not None and p.peek().text == "(":  # type: ignore[union-attr]
                raise _NotRecognized(f"function call {column}(...) in the selection")
            alias = p.name() if p.keyword("as") else None
            selectors.append(Selector(column, alias))
        if not p.punct(","):
            break
    p.expect_keyword("from")
    keyspace, table = p.table_name()
    where: List[Condition] = []
    if p.keyword("where"):
        while True:
            column = p.name()
            if p.punct("="):
                where.append(Condition(column, "=", (p.term(),)))
            elif p.keyword("in"):
                if p.peek() is not None and p.peek().kind == "marker":  # type: ignore[union-attr]
                    raise _NotRecognized("IN with a single bind marker")
                p.expect_punct("(")
                terms = [p.term()]
                while p.punct(","):
                    terms.append(p.term())
                p.expect_punct(")")
                where.append(Condition(column, "IN", tuple(terms)))
            else:
                raise _NotRecognized(f"a WHERE condition on {column} other than = or IN")
            if not p.keyword("and"):
                break
    limit = p.term() if p.keyword("limit") else None
    if not p.at_end():
        raise _NotRecognized(f"unexpected {p.peek().raw!r} after the statement")  # type: ignore[union-attr]
    return Select(keyspace, table, tuple(selectors), tuple(where), limit, p.markers)


def _insert(p: _Parser) -> Insert:
    p.expect_keyword("into")
    keyspace, table = p.table_name()
    p.expect_punct("(")
    columns = [p.name()]
    while p.punct(","):
        columns.append(p.name())
    p.expect_punct(")")
    p.expect_keyword("values")
    p.expect_punct("(")
    values = [p.term()]
    while p.punct(","):
        values.append(p.term())
    p.expect_punct(")")
    if p.keyword("if"):
        raise _NotRecognized("INSERT ... IF NOT EXISTS")
    if p.keyword("using"):
        raise _NotRecognized("INSERT ... USING")
    if not p.at_end() or len(columns) != len(values):
        raise _NotRecognized("INSERT with a column list and values that do not match")
    return Insert(keyspace, table, tuple(columns), tuple(values), p.markers)


def count_markers(text: str) -> int:
    """How many bind markers a statement has (for PREPARE of any statement)."""
    try:
        return sum(1 for tok in _tokenize(text) if tok.kind == "marker")
    except _NotRecognized:
        return 0


@functools.lru_cache(maxsize=4096)
def parse_query(text: str) -> Tuple[str, Statement]:
    """(normalized text, statement) of a query as received; cached, since
    drivers and tests send the same few queries over and over. Statements are
    frozen, so sharing them is safe."""
    normalized = normalize_query(text)
    return normalized, parse_statement(normalized)


def parse_statement(text: str) -> Statement:
    normalized = normalize_query(text)
    verb = normalized.split(" ", 1)[0].upper() if normalized else ""
    try:
        tokens = _tokenize(normalized)
        p = _Parser(tokens)
        if p.keyword("select"):
            return _select(p)
        if p.keyword("insert"):
            return _insert(p)
        if p.keyword("use"):
            keyspace = p.name()
            if not p.at_end():
                raise _NotRecognized("USE takes one keyspace name")
            return Use(keyspace)
        raise _NotRecognized(f"{verb or 'an empty statement'} is not interpreted by fakecql")
    except _NotRecognized as exc:
        return Unrecognized(verb, count_markers(normalized), str(exc))
