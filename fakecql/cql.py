# A small reader of the CQL statements drivers send: enough to answer
# SELECTs over the node's in-memory tables, USE, and INSERTs, and to count
# bind markers for PREPARE. It is not a CQL parser and does not try to be.
#
# Strategy: collapse whitespace outside string constants and quoted names,
# strip the suffixes a real node accepts but that change nothing here
# (`USING TIMEOUT <n>ms`, `BYPASS CACHE`, `ALLOW FILTERING`, a trailing `;`),
# tokenize, then recognise a few statement shapes. Anything else comes back
# as Unrecognized, which the node answers from priming or records as
# unexpected. Unquoted identifiers are lowercased, quoted ones kept, as CQL
# does.
#
# Rules: the text comes from clients, so every step is linear in it and runs
# mostly in C (tests/unit/test_linear_parsers.py holds it to that). No regex
# here may backtrack more than a bounded distance: quoted strings are
# unrolled ('[^']*(?:''[^']*)*'), an unterminated quote runs to the end of
# the text instead of being retried at every position, and the suffixes
# are peeled from the end of the reversed text, one anchored match at a
# time. Tokens are the raw strings of one re.split; their kind is read from
# their text when the parser needs it. Parsed queries are cached in a
# SizedCache bounded by bytes (set_parse_cache_bytes).
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Dict, List, NoReturn, Optional, Tuple, Union, cast

from .caches import SizedCache, text_bytes

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
    "parse_cache",
    "set_parse_cache_bytes",
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

# ---- normalizing: whitespace and suffixes ------------------------------------

# Loops that must not give back what they matched: possessive where the re
# module has them (3.11+), so that a long run of '' escapes keeps no
# backtracking state; plain before, linear in time all the same.
_STAR = "*+" if sys.version_info >= (3, 11) else "*"
_PLUS = "++" if sys.version_info >= (3, 11) else "+"

# A string constant, a quoted name and a $$ constant, '' and "" doubled
# inside the first two; unrolled so that a scan never backtracks, and
# closed by an optional quote so that an unterminated one runs to the end
# of the text (the match never fails, so it is never retried further on).
_STRING_OPEN = rf"'[^']*(?:''[^']*){_STAR}'?"
_QUOTED_OPEN = rf'"[^"]*(?:""[^"]*){_STAR}"?'
_DOLLARS_OPEN = rf"\$\$[^$]*(?:\$(?!\$)[^$]*){_STAR}(?:\$\$)?"
_QUOTED_TO_END = re.compile(f"({_STRING_OPEN}|{_QUOTED_OPEN})")
_SPACES = re.compile(r"[^\S ]\s*|\s{2,}")  # whitespace runs but a lone space

# The suffixes, reversed, each with the whitespace before it: peeled one at
# a time from the start of the reversed text (see _strip_suffixes). A
# duration as USING TIMEOUT takes it is `\d+\s*U?(\d+U)*` ("2000ms", "5 s",
# "1h30m", "5 1h30m"; U one of CQL's units); its reversed forms are spelled
# out below so that digits and units can be split in one way only.
_UNIT_REVERSED = "om|sm|su|s\u00b5|sn|y|w|d|h|m|s"
_DURATION_REVERSED = (
    r"(?:(?:{u})\d+){plus}(?:\s+\d+)?"  # 1h30m, 5 30m
    r"|(?:(?:{u})\d+){star}(?:{u})\s+\d+"  # 5 ms, 5 1h30m
    r"|\d+"  # 2000
).format(u=_UNIT_REVERSED, plus=_PLUS, star=_STAR)
_SUFFIX_REVERSED = re.compile(
    rf";[\s;]*|(?:EHCAC\s+SSAPYB|GNIRETLIF\s+WOLLA|(?:{_DURATION_REVERSED})\s+TUOEMIT\s+GNISU)\s+",
    re.IGNORECASE,
)


def normalize_query(text: str) -> str:
    """The statement with whitespace collapsed and ignorable suffixes removed.

    Used both to parse and to match primed queries, so `... USING TIMEOUT
    2000ms` matches the query primed without it. Whitespace inside 'string
    constants' and "quoted names" is kept as it is, and so is everything
    after an unterminated quote (a syntax error for a real node).
    """
    return _strip_suffixes(_collapse_spaces(text).strip())


def _collapse_spaces(text: str) -> str:
    """Whitespace runs outside quotes made one space, in a few C calls:
    the unquoted pieces are joined with a separator, collapsed at once, and
    split back between the quoted ones."""
    if "'" not in text and '"' not in text:
        return _SPACES.sub(" ", text)
    pieces = _QUOTED_TO_END.split(text)  # unquoted, quoted, unquoted, ...
    unquoted = pieces[0::2]
    separator = "\0"
    if separator in text:  # rare: fall back to one call per piece, still linear
        pieces[0::2] = [_SPACES.sub(" ", piece) for piece in unquoted]
    else:
        pieces[0::2] = _SPACES.sub(" ", separator.join(unquoted)).split(separator)
    return "".join(pieces)


def _strip_suffixes(text: str) -> str:
    """`text` without its trailing suffixes, in any order and number. Only
    the suffixes are read: each anchored match starts where the last ended."""
    if not text:
        return text
    reversed_text = text[::-1]
    end = 0
    match = _SUFFIX_REVERSED.match(reversed_text)
    while match is not None:
        end = match.end()
        match = _SUFFIX_REVERSED.match(reversed_text, end)
    return text[: len(text) - end] if end else text


# ---- tokens ------------------------------------------------------------------

# One capturing group around the alternatives, so that re.split returns the
# tokens at odd indexes and what lies between them (whitespace, or a
# character no token starts with) at even ones. A token's kind is read from
# its text (_name, _term_kind), so only where tokens end matters here; the
# alternatives are ordered for speed, most common first, wherever that
# cannot move an end: names that cannot be a uuid (g-z) before everything,
# uuid before blob, number and names starting a-f, NaN and Infinity end
# where the name spelled the same would.
_TOKEN = re.compile(
    rf"""(
      [g-zG-Z_][A-Za-z0-9_]*
    | [(),;*=\[\]{{}}+?]
    | {_STRING_OPEN}
    | {_QUOTED_OPEN}
    | [0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}
    | [A-Za-z_][A-Za-z0-9_]*
    | 0[xX][0-9a-fA-F]*
    | -?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(?i:-?NaN|-?Infinity)(?![A-Za-z0-9_])
    | :[A-Za-z_][A-Za-z0-9_]*
    | <=|>=|!=|[<>.:\-]
    )""",
    re.VERBOSE,
)
_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_NUMBER_WORDS = frozenset({"nan", "infinity"})


class _NotRecognized(Exception):
    pass


def _tokenize(text: str) -> List[str]:
    """The raw tokens of `text`; _NotRecognized names the first character
    that starts none, or the quote that opens an unterminated string or
    name (only the last token can be one: it runs to the end)."""
    text = text.rstrip()
    pieces = _TOKEN.split(text)
    between = "".join(pieces[0::2])
    if between and not between.isspace():
        at = 0
        for index, piece in enumerate(pieces):  # only on the way to an error
            if index % 2 == 0:
                spaces = len(piece) - len(piece.lstrip())
                if spaces < len(piece):
                    _unexpected(text, at + spaces)  # the character, not the spaces before it
            at += len(piece)
    tokens = pieces[1::2]
    if tokens and tokens[-1][0] in "'\"" and not _terminated(tokens[-1]):
        _unexpected(text, len(text) - len(tokens[-1]))
    return tokens


def _unexpected(text: str, at: int) -> NoReturn:
    raise _NotRecognized(f"unexpected character {text[at:at + 10]!r} at {at}")


def _terminated(quoted: str) -> bool:
    """Whether a string or name token has its closing quote: after the
    opening one, it ends in doubled quotes (escapes) then one more."""
    body = quoted[1:]
    return (len(body) - len(body.rstrip(quoted[0]))) % 2 == 1


def _name(token: str) -> Optional[str]:
    """The name a token spells (lowercased unless quoted), or None if it is
    no name (a keyword is a name here; the parser asks for keywords first)."""
    first = token[0]
    if first == '"':
        return token[1:-1].replace('""', '"')
    if first in _NAME_START and "-" not in token:  # a uuid has dashes
        lowered = token.lower()
        if lowered not in _NUMBER_WORDS:
            return lowered
    return None


def _is_marker(token: str) -> bool:
    """`?` or `:name` (a lone `:` is punctuation)."""
    return token == "?" or (token[0] == ":" and len(token) > 1)


def _term_kind(token: str) -> Optional[str]:
    """The Literal kind of a constant token (string, number, uuid, blob), or
    None for anything else (names, markers, punctuation)."""
    first = token[0]
    if first == "'":
        return "string"
    if first == '"':  # a quoted name, whatever it holds
        return None
    if len(token) == 36 and token.count("-") == 4:
        return "uuid"
    if first == "0" and token[1:2] in ("x", "X"):
        return "blob"
    if first.isdecimal() or (len(token) > 1 and first in "-.") or token.lower() in _NUMBER_WORDS:
        return "number"
    return None


# ---- the parser ----------------------------------------------------------------


class _Parser:
    """A cursor over the tokens, and what the statement has made so far:
    equal constants and plain selectors share one object (they are frozen),
    which keeps long lists of repeated ones cheap."""

    def __init__(self, tokens: List[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.markers = 0
        self.literals: Dict[str, Term] = {}
        self.selectors: Dict[str, Selector] = {}

    def peek(self) -> Optional[str]:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def next(self) -> str:
        pos = self.pos
        if pos >= len(self.tokens):
            raise _NotRecognized("statement ends too early")
        self.pos = pos + 1
        return self.tokens[pos]

    def keyword(self, *words: str) -> bool:
        """Consume the next token if it is one of `words` (lowercase), unquoted."""
        pos = self.pos
        if pos < len(self.tokens) and self.tokens[pos].lower() in words:
            self.pos = pos + 1
            return True
        return False

    def expect_keyword(self, word: str) -> None:
        if not self.keyword(word):
            raise _NotRecognized(f"expected {word.upper()}")

    def punct(self, symbol: str) -> bool:
        pos = self.pos
        if pos < len(self.tokens) and self.tokens[pos] == symbol:
            self.pos = pos + 1
            return True
        return False

    def expect_punct(self, symbol: str) -> None:
        if not self.punct(symbol):
            raise _NotRecognized(f"expected {symbol!r}")

    def name(self) -> str:
        token = self.next()
        name = _name(token)
        if name is None:
            raise _NotRecognized(f"expected a name, got {token!r}")
        return name

    def table_name(self) -> Tuple[Optional[str], str]:
        first = self.name()
        if self.punct("."):
            return first, self.name()
        return None, first

    def term(self) -> Term:
        return self.term_of(self.next())

    def term_of(self, token: str) -> Term:
        """The constant or marker one token spells; a constant seen before
        in the statement is the same object."""
        literal = self.literals.get(token)
        if literal is not None:
            return literal
        if _is_marker(token):
            marker = Marker(self.markers, None if token == "?" else token[1:].lower())
            self.markers += 1
            return marker
        kind = _term_kind(token)
        if kind == "string":
            literal = Literal("string", token[1:-1].replace("''", "'"))
        elif kind is not None:
            literal = Literal(kind, token)
        else:
            name = _name(token)
            if name in ("true", "false"):
                literal = Literal("bool", name)
            elif name == "null":
                literal = Literal("null", "null")
            else:
                raise _NotRecognized(f"expected a value, got {token!r}")
        self.literals[token] = literal
        return literal

    def listed(self) -> Optional[List[str]]:
        """The items of a well-formed `( item , item ... )` list at the
        cursor, which is moved past it; None (cursor unmoved) if the list is
        not one, for the token-by-token path to say why. Slices and counts
        in C, however long the list."""
        tokens, start = self.tokens, self.pos
        if start >= len(tokens) or tokens[start] != "(":
            return None
        try:
            end = tokens.index(")", start)
        except ValueError:
            return None
        items = tokens[start + 1:end:2]
        commas = tokens[start + 2:end:2]
        if len(items) != len(commas) + 1 or commas.count(",") != len(commas):
            return None
        self.pos = end + 1
        return items

    def terms(self) -> List[Term]:
        """A parenthesized, comma-separated list of terms."""
        items = self.listed()
        if items is not None and items.count("?") == len(items):  # IN (?, ?, ...): markers made in C's loop
            first, self.markers = self.markers, self.markers + len(items)
            return list(map(Marker, range(first, self.markers)))
        if items is not None:
            literals, terms = self.literals, []
            for item in items:  # term_of, with its two commonest cases inlined
                term: Optional[Term] = literals.get(item)
                if term is None:
                    if item == "?":
                        term = Marker(self.markers)
                        self.markers += 1
                    else:
                        term = self.term_of(item)
                terms.append(term)
            return terms
        self.expect_punct("(")
        terms = [self.term()]
        while self.punct(","):
            terms.append(self.term())
        self.expect_punct(")")
        return terms

    def names(self) -> List[str]:
        """A parenthesized, comma-separated list of names."""
        items = self.listed()
        if items is not None:
            found = [_name(item) for item in items]
            if None not in found:
                return cast(List[str], found)
            self.pos -= 2 * len(items) + 1  # back, for the error below
        self.expect_punct("(")
        names = [self.name()]
        while self.punct(","):
            names.append(self.name())
        self.expect_punct(")")
        return names

    def selector(self) -> Selector:
        """One item of a SELECT's selection."""
        tokens, pos = self.tokens, self.pos
        if pos + 1 < len(tokens) and tokens[pos + 1] == ",":  # a plain `column,` or `*,`
            selector = self.selectors.get(tokens[pos])
            if selector is not None:
                self.pos = pos + 1
                return selector
        if self.punct("*"):
            selector = Selector("*")
        else:
            column = self.name()
            if column == "count" and self.punct("("):
                if not (self.punct("*") or (self.peek() is not None and self.next() == "1")):
                    raise _NotRecognized("count() of something else than * or 1")
                self.expect_punct(")")
                column = "count(*)"
            elif self.peek() == "(":
                raise _NotRecognized(f"function call {column}(...) in the selection")
            if self.keyword("as"):
                return Selector(column, self.name())
            selector = Selector(column)
        if self.pos == pos + 1:  # one token: the same token is the same selector
            self.selectors[tokens[pos]] = selector
        return selector

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)


def _select(p: _Parser) -> Select:
    if p.keyword("json", "distinct"):
        raise _NotRecognized("SELECT JSON / DISTINCT")
    selectors = [p.selector()]
    while p.punct(","):
        selectors.append(p.selector())
    p.expect_keyword("from")
    keyspace, table = p.table_name()
    where: List[Condition] = []
    if p.keyword("where"):
        while True:
            column = p.name()
            if p.punct("="):
                where.append(Condition(column, "=", (p.term(),)))
            elif p.keyword("in"):
                following = p.peek()
                if following is not None and _is_marker(following):
                    raise _NotRecognized("IN with a single bind marker")
                where.append(Condition(column, "IN", tuple(p.terms())))
            else:
                raise _NotRecognized(f"a WHERE condition on {column} other than = or IN")
            if not p.keyword("and"):
                break
    limit = p.term() if p.keyword("limit") else None
    if not p.at_end():
        raise _NotRecognized(f"unexpected {p.peek()!r} after the statement")
    return Select(keyspace, table, tuple(selectors), tuple(where), limit, p.markers)


def _insert(p: _Parser) -> Insert:
    p.expect_keyword("into")
    keyspace, table = p.table_name()
    columns = p.names()
    p.expect_keyword("values")
    values = p.terms()
    if p.keyword("if"):
        raise _NotRecognized("INSERT ... IF NOT EXISTS")
    if p.keyword("using"):
        raise _NotRecognized("INSERT ... USING")
    if not p.at_end() or len(columns) != len(values):
        raise _NotRecognized("INSERT with a column list and values that do not match")
    return Insert(keyspace, table, tuple(columns), tuple(values), p.markers)


# ---- markers ---------------------------------------------------------------------

# What may hide a `?` or a `:name` (constants, quoted names, $$pg-style$$
# constants), each running to the end of the text if unterminated, else a
# marker, captured. A `:` followed by a name is a marker wherever it stands,
# as it is for the tokenizer.
_MARKER_OR_QUOTED = re.compile(
    rf"{_STRING_OPEN}|{_QUOTED_OPEN}|{_DOLLARS_OPEN}|(\?|:[A-Za-z_])"
)


def count_markers(text: str) -> int:
    """How many bind markers a statement has (for PREPARE of any statement).

    Markers inside string constants, quoted names and $$ constants do not
    count. A statement that does not tokenize still has its markers counted;
    one with an unterminated quote (a syntax error for a real node) counts
    those before the quote. One C scan, whatever the text.
    """
    if "?" not in text and ":" not in text:
        return 0
    found = _MARKER_OR_QUOTED.findall(text)
    return len(found) - found.count("")


# ---- parsing, cached ---------------------------------------------------------------

# Parsed queries, keyed by the text as received: drivers and tests send the
# same few queries over and over. Statements are frozen, so sharing them is
# safe. Bounded in bytes: the text, the normalized text and a rough cost of
# the objects parsed from it; texts over _UNCACHED_OVER are not kept (their
# parse costs little next to their transfer).
parse_cache: SizedCache[str, Tuple[str, Statement]] = SizedCache(16 * 1024 * 1024)
_UNCACHED_OVER = 64 * 1024
_BYTES_PER_PART = 64  # a Literal, Marker, Selector or Condition and its strings


def set_parse_cache_bytes(max_bytes: int) -> None:
    """Bound parse_query's cache (16 MiB unless set; 0 caches nothing).
    Entries past the new bound are evicted at once."""
    parse_cache.resize(max_bytes)


def parse_query(text: str) -> Tuple[str, Statement]:
    """(normalized text, statement) of a query as received, from parse_cache
    when the same text was parsed before."""
    cached = parse_cache.get(text)
    if cached is not None:
        return cached
    normalized = normalize_query(text)
    parsed = (normalized, _parse_normalized(normalized))
    if len(text) <= _UNCACHED_OVER:
        parse_cache.put(text, parsed, size=text_bytes(text) + text_bytes(normalized) + _parts_cost(parsed[1]))
    return parsed


def _parts_cost(statement: Statement) -> int:
    """Bytes the objects of a statement hold beside its text, roughly: a
    long IN list costs more as objects than as text."""
    if isinstance(statement, Select):
        parts = len(statement.selectors) + sum(len(c.terms) + 1 for c in statement.where)
    elif isinstance(statement, Insert):
        parts = 2 * len(statement.columns)
    else:
        parts = 1
    return parts * _BYTES_PER_PART


def parse_statement(text: str) -> Statement:
    """The statement `text` spells, after normalize_query."""
    return _parse_normalized(normalize_query(text))


def _parse_normalized(normalized: str) -> Statement:
    space = normalized.find(" ")
    verb = (normalized if space < 0 else normalized[:space]).upper()
    try:
        p = _Parser(_tokenize(normalized))
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
