# Schema.add_listener: every change is told as the SchemaChange a node pushes
# (what a cluster turns into SCHEMA_CHANGE events); refused changes tell nothing.
from __future__ import annotations

from typing import List

import pytest

from fakecql.protocol.messages import SchemaChange
from fakecql.schema import Schema, SchemaError


def test_each_change_is_told_once_and_in_order() -> None:
    schema = Schema()
    heard: List[SchemaChange] = []
    schema.add_listener(heard.append)
    schema.add_keyspace("ks")
    schema.add_type("ks", "addr", {"street": "text"})
    schema.add_table("ks", "t", {"k": "int"}, partition_key="k")
    schema.drop_table("ks", "t")
    schema.drop_type("ks", "addr")
    schema.drop_keyspace("ks")
    assert [(c.change_type, c.target, c.keyspace, c.name) for c in heard] == [
        ("CREATED", "KEYSPACE", "ks", None),
        ("CREATED", "TYPE", "ks", "addr"),
        ("CREATED", "TABLE", "ks", "t"),
        ("DROPPED", "TABLE", "ks", "t"),
        ("DROPPED", "TYPE", "ks", "addr"),
        ("DROPPED", "KEYSPACE", "ks", None),
    ]


def test_refused_changes_and_removed_listeners_tell_nothing() -> None:
    schema = Schema()
    heard: List[SchemaChange] = []
    schema.add_listener(heard.append)
    with pytest.raises(SchemaError):
        schema.add_table("nowhere", "t", {"k": "int"}, partition_key="k")
    assert heard == []
    schema.remove_listener(heard.append)
    schema.add_keyspace("ks")
    assert heard == []
