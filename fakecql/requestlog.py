# What the activity log keeps of a request, for tests to assert on: its
# keyspace, consistency, serial consistency, page size, client timestamp and
# bound values decoded with their types.
#
# Strategy: describe() is sans-IO: it reads a decoded request and what the
# node knows (the prepared statement's parameter types for EXECUTE, a
# priming's params for a QUERY with values) and returns the fields the
# server adds to its FrameReceived entry. A value whose type is unknown (a
# QUERY with values nothing primed, a prepared statement evicted since) is
# kept as its raw bytes, marked untyped (type None), never guessed.
#
# Rules: every value's size on the wire is recorded, so the log's text budget
# counts it (ActivityLog evicts by query text plus value bytes); a value that
# does not decode as its type, or a collection over the node's element
# bound, stays raw; nothing here raises on a client's bytes.
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from . import cql
from .protocol.elements import collection_over
from .protocol.messages import Batch, Execute, Query, QueryParameters, Request
from .protocol.types import CqlType
from .protocol.wire import UNSET

if TYPE_CHECKING:  # pragma: no cover
    from .node import Node

__all__ = ["BoundValue", "LoggedStatement", "describe"]


@dataclass(frozen=True)
class BoundValue:
    """One bound value of a logged request.

    `value` is the decoded Python value when `type` (a CQL type name) is
    known, else the raw bytes (`typed` False); None is null, fakecql's UNSET
    an unset value."""

    value: Any
    type: Optional[str] = None
    name: Optional[str] = None
    size: int = 0  # bytes on the wire

    @property
    def typed(self) -> bool:
        return self.type is not None


@dataclass(frozen=True)
class LoggedStatement:
    """One statement of a logged BATCH: its text (the prepared text for an id) and values."""

    query: str
    values: Tuple[BoundValue, ...] = ()

    @property
    def budget(self) -> int:
        return len(self.query) + sum(v.size for v in self.values)


def _value(raw: Any, cql_type: Optional[CqlType], name: Optional[str], max_elements: int) -> BoundValue:
    size = len(raw) if isinstance(raw, (bytes, bytearray)) else 0
    if raw is None or raw is UNSET or cql_type is None:
        return BoundValue(value=raw if not isinstance(raw, bytearray) else bytes(raw), type=None, name=name, size=size)
    type_name = cql_type.cql_name
    try:
        if collection_over(cql_type, bytes(raw), max_elements) is not None:
            return BoundValue(value=bytes(raw), type=None, name=name, size=size)
        return BoundValue(value=cql_type.deserialize(bytes(raw)), type=type_name, name=name, size=size)
    except Exception:  # not a value of its type: the node answers that; the log keeps the bytes
        return BoundValue(value=bytes(raw), type=None, name=name, size=size)


def _values(
    raw_values: Sequence[Any],
    types: Optional[Sequence[Tuple[str, CqlType]]],
    names: Optional[Sequence[str]],
    max_elements: int,
) -> Tuple[BoundValue, ...]:
    if names is not None and types is not None:  # values sent by name: typed by the marker of that name
        by_name = dict(types)
        return tuple(_value(raw, by_name.get(n), n, max_elements) for n, raw in zip(names, raw_values))
    if types is not None and len(types) == len(raw_values):
        return tuple(_value(raw, t, n, max_elements) for raw, (n, t) in zip(raw_values, types))
    return tuple(
        _value(raw, None, names[i] if names is not None else None, max_elements) for i, raw in enumerate(raw_values)
    )


def _primed_types(node: "Node", text: str, keyspace: Optional[str]) -> Optional[Sequence[Tuple[str, CqlType]]]:
    """The params of the first priming with params that matches this text (the
    types of a QUERY's values); matchers of primings without params are not run."""
    from .priming import PrimedRequest

    request = PrimedRequest(cql.normalize_query(text), keyspace=keyspace)
    for book in (node.priming_book,) + node.priming_sources():
        for priming in book.primings():
            if priming.params and priming.matches(request):
                return priming.params
    return None


def describe(message: Request, node: "Node", session_keyspace: Optional[str]) -> Dict[str, Any]:
    """The FrameReceived fields of a QUERY, EXECUTE or BATCH (empty for other requests)."""
    limit = node.limits.max_collection_elements
    params: Optional[QueryParameters] = None
    fields: Dict[str, Any] = {}
    if isinstance(message, Query):
        params = message.parameters
        types = _primed_types(node, message.query, params.keyspace or session_keyspace) if params.values else None
        fields["values"] = _values(params.values, types, params.names, limit)
        fields["keyspace"] = params.keyspace or session_keyspace
    elif isinstance(message, Execute):
        params = message.parameters
        prepared = node.prepared(message.query_id)
        prepared_types = [(s.name, s.type) for s in prepared.params] if prepared is not None else None
        fields["values"] = _values(params.values, prepared_types, params.names, limit)
        fields["keyspace"] = (prepared.keyspace if prepared is not None else None) or session_keyspace
    elif isinstance(message, Batch):
        statements: List[LoggedStatement] = []
        for statement in message.statements:
            if statement.query_id is not None:
                prepared = node.prepared(statement.query_id)
                if prepared is None:
                    statements.append(LoggedStatement(
                        f"<unknown prepared id {statement.query_id.hex()}>", _values(statement.values, None, None, limit),
                    ))
                    continue
                types = [(s.name, s.type) for s in prepared.params]
                statements.append(LoggedStatement(prepared.query, _values(statement.values, types, None, limit)))
            else:
                text = statement.query or ""
                types_q = _primed_types(node, text, message.keyspace or session_keyspace) if statement.values else None
                statements.append(LoggedStatement(text, _values(statement.values, types_q, None, limit)))
        fields.update(
            statements=tuple(statements),
            keyspace=message.keyspace or session_keyspace,
            consistency=message.consistency.name,
            serial_consistency=message.serial_consistency.name if message.serial_consistency is not None else None,
            timestamp=message.timestamp,
        )
        return fields
    else:
        return fields
    fields.update(
        consistency=params.consistency.name,
        serial_consistency=params.serial_consistency.name if params.serial_consistency is not None else None,
        page_size=params.page_size,
        timestamp=params.timestamp,
    )
    return fields
