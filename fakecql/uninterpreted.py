# What a real node answers a statement fakecql does not interpret, by the
# statement's shape: the node records it as unexpected, and still answers
# something every driver decodes and a real node would send.
#
# Rules: reads only the normalized text, with patterns linear on any client
# text (tests/unit/test_linear_parsers.py times them).
from __future__ import annotations

import re
from typing import Mapping, Optional, Tuple

from .protocol.errors import ErrorCode
from .protocol.messages import ColumnSpec, Error, Response, RowsMetadata, RowsResult, VoidResult
from .protocol.types import BOOLEAN

__all__ = ["answer"]

# What a real node answers a statement, by its first word: writes, batches,
# access control and schema changes succeed (VOID); reads return rows fakecql
# cannot make up (an InvalidRequest saying so); anything else does not parse
# (a SyntaxError). Schema changes get VOID, not the SCHEMA_CHANGE a real node
# sends: fakecql's schema did not change, and a SCHEMA_CHANGE makes drivers
# refresh their metadata from system_schema (which would not show the change)
# and wait for schema agreement; VOID is an answer every driver takes for any
# statement. A test that needs the real one primes it:
# when_query(...).then(SchemaChangeResult(...)).
_SHAPES: Mapping[str, str] = {
    "INSERT": "write", "UPDATE": "write", "DELETE": "write", "TRUNCATE": "write", "BEGIN": "batch",
    "CREATE": "schema", "ALTER": "schema", "DROP": "schema",
    "GRANT": "access", "REVOKE": "access",
    "SELECT": "read", "LIST": "read", "DESCRIBE": "read", "DESC": "read",
}
# A lightweight transaction (INSERT ... IF NOT EXISTS, UPDATE/DELETE ... IF ...):
# a real node answers a row whose first column is [applied].
_CONDITIONAL = re.compile(r"\bIF\b", re.IGNORECASE)
# Linear on any client text: the loops are unrolled (no alternation inside a
# repetition), and a constant left open runs to the end of the text instead
# of being retried from every later quote.
_STRINGS = r"""'[^']*(?:''[^']*)*'?|\$\$[^$]*(?:\$(?!\$)[^$]*)*(?:\$\$)?"""
_QUOTED = re.compile(_STRINGS + r'|"[^"]*(?:""[^"]*)*"?')
_STRING = re.compile(_STRINGS)
_NAME_PART = r"""("[^"]+(?:""[^"]*)*"|\w+)"""
# Anchored at the statement's start (match(), not search()), past a BEGIN BATCH.
_TARGET = re.compile(
    r"(?:BEGIN\s+(?:UNLOGGED\s+|COUNTER\s+)?BATCH\s+(?:USING\s+TIMESTAMP\s+-?\d+\s+)?)?"
    rf"(?:INSERT\s+INTO|UPDATE|DELETE\b[^;]*?\bFROM)\s+{_NAME_PART}(?:\s*\.\s*{_NAME_PART})?",
    re.IGNORECASE,
)


def _without_quoted(text: str, names: bool = True) -> str:
    """The text with its string constants (and quoted names, unless names=False) emptied."""
    return (_QUOTED if names else _STRING).sub("''", text)


def _unquoted(token: str) -> str:
    return token[1:-1].replace('""', '"') if token.startswith('"') else token.lower()


def _applied(normalized: str, keyspace: Optional[str]) -> RowsResult:
    """A conditional write's answer when its condition held: [applied] = true,
    in the columns of the table it writes (the first one, in a batch)."""
    table = "unknown"
    match = _TARGET.match(_without_quoted(normalized, names=False))
    if match:
        if match.group(2):
            keyspace, table = _unquoted(match.group(1)), _unquoted(match.group(2))
        else:
            table = _unquoted(match.group(1))
    spec = ColumnSpec(keyspace=keyspace or "fakecql", table=table, name="[applied]", type=BOOLEAN)
    return RowsResult(metadata=RowsMetadata(columns=(spec,)), rows=((BOOLEAN.serialize(True),),))


def answer(verb: str, reason: str, normalized: str, keyspace: Optional[str]) -> Tuple[str, Response]:
    """(what was answered, in words; the response) for a statement starting with `verb`."""
    shape = _SHAPES.get(verb)
    if shape in ("write", "batch") and _CONDITIONAL.search(_without_quoted(normalized)):
        return "[applied] = true", _applied(normalized, keyspace)
    if shape in ("write", "batch", "schema", "access"):
        return "VOID", VoidResult()
    if shape == "read":
        message = (
            f"fakecql does not interpret this {verb} ({reason}); "
            f"prime its answer with when_query(...).then_rows(...)"
        )
        return "InvalidRequest", Error(code=ErrorCode.INVALID, message=message)
    shown = normalized.split(" ", 1)[0][:40] if normalized else "<EOF>"
    message = (
        f"line 1:0 no viable alternative at input '{shown}': fakecql does not interpret it "
        f"({reason}); if a real node accepts it, prime its answer with when_query(...)"
    )
    return "SyntaxError", Error(code=ErrorCode.SYNTAX_ERROR, message=message)
