# Which bind markers of a prepared statement carry its partition key: the
# pk_indexes of a PREPARED result (protocol v4+), from which a token-aware
# driver builds a request's routing key and picks a replica.
#
# Rules: as Cassandra, the indexes are given only when every partition key
# column is bound by its own marker (`pk = ?` in a SELECT's WHERE, a marker
# in an INSERT's VALUES); otherwise none, and the driver routes without a
# token. Sans-IO: a parsed statement and a table definition in, ints out.
from __future__ import annotations

from typing import Dict, Optional, Tuple

from . import cql
from .schema import TableDef

__all__ = ["partition_key_indexes"]


def partition_key_indexes(statement: Optional[cql.Statement], table: Optional[TableDef]) -> Tuple[int, ...]:
    """The marker index bound to each partition key column, in key order; () if any is not bound by one."""
    if table is None or not table.partition_key:
        return ()
    bound: Dict[str, int] = {}
    if isinstance(statement, cql.Select):
        for condition in statement.where:
            if condition.operator == "=" and len(condition.terms) == 1 and isinstance(condition.terms[0], cql.Marker):
                bound[condition.column] = condition.terms[0].index
    elif isinstance(statement, cql.Insert):
        for column, term in zip(statement.columns, statement.values):
            if isinstance(term, cql.Marker):
                bound[column] = term.index
    else:
        return ()
    indexes = []
    for key_column in sorted(table.partition_key, key=lambda c: c.position):
        if key_column.name not in bound:
            return ()
        indexes.append(bound[key_column.name])
    return tuple(indexes)
