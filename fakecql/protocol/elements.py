# How many elements a serialized value's collections hold, read from the
# counts on the wire before anything is decoded: a node bounds collections
# (Limits.max_collection_elements) without first turning 16 MB of list<int>
# into four million Python ints.
#
# Rules: only counts and lengths are read. The walk stops where the bytes are
# malformed: deserialize() then refuses them there or before, so it never
# decodes a collection the walk did not count.
from __future__ import annotations

import itertools
from typing import Iterable, Optional, Tuple

from .types import CqlType, ListType, MapType, SetType, TupleType, UserType

__all__ = ["collection_over"]


def _holds_collection(cql_type: CqlType) -> bool:
    if isinstance(cql_type, (ListType, SetType, MapType)):
        return True
    if isinstance(cql_type, TupleType):
        return any(_holds_collection(t) for t in cql_type.elements)
    if isinstance(cql_type, UserType):
        return any(_holds_collection(t) for _, t in cql_type.fields)
    return False


def collection_over(cql_type: CqlType, raw: bytes, limit: int) -> Optional[Tuple[str, int]]:
    """(type name, count) of the first collection in the serialized value
    `raw` (at any depth) with more than `limit` elements; None if there is none."""
    if not _holds_collection(cql_type):
        return None
    try:
        _walk_value(cql_type, memoryview(raw), 0, len(raw), limit)
    except _Over as over:
        return over.name, over.count
    return None


class _Over(Exception):
    def __init__(self, name: str, count: int) -> None:
        super().__init__(name, count)
        self.name, self.count = name, count


def _walk_value(cql_type: CqlType, data: memoryview, pos: int, end: int, limit: int) -> bool:
    """Check the value in data[pos:end]; False where its bytes are malformed."""
    items: Iterable[CqlType]
    if isinstance(cql_type, (ListType, SetType, MapType)):
        if end - pos < 4:
            return False
        count = int.from_bytes(data[pos : pos + 4], "big", signed=True)
        if count > limit:
            raise _Over(cql_type.cql_name, count)
        each = (cql_type.key, cql_type.value) if isinstance(cql_type, MapType) else (cql_type.element,)
        if count < 0 or not any(_holds_collection(t) for t in each):
            return True
        items = itertools.chain.from_iterable(itertools.repeat(each, count))  # count <= limit
        pos += 4
    elif isinstance(cql_type, (TupleType, UserType)):
        items = cql_type.elements if isinstance(cql_type, TupleType) else tuple(t for _, t in cql_type.fields)
    else:
        return True
    for item_type in items:
        if pos == end and isinstance(cql_type, (TupleType, UserType)):
            return True  # trailing fields may be left out
        if end - pos < 4:
            return False
        size = int.from_bytes(data[pos : pos + 4], "big", signed=True)
        pos += 4
        if size < 0:
            continue  # null
        if size > end - pos or not _walk_value(item_type, data, pos, pos + size, limit):
            return False
        pos += size
    return True
