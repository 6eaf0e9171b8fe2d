# The in-memory schema of the fake node: keyspaces, tables, columns, user
# types, and the system tables a driver reads while it connects.
#
# Strategy: the model is a few small definition objects (KeyspaceDef,
# TableDef, ColumnDef, and the protocol's UserType) held by one Schema. A
# fresh Schema already holds the system keyspaces of a real node of its
# flavor ("cassandra": Cassandra 4.0; "scylla": a recent ScyllaDB), built
# through the same validating path as user tables from CREATE-like column
# lists. The rows of system_schema.* (and, for Cassandra, of
# system_virtual_schema.*) are never stored: each read of `TableDef.rows`
# derives fresh dicts from the model, so they cannot drift from it. Every
# other table keeps the list of dict rows the node puts in it (system.local
# and system.peers start empty: the node fills them from its own identity).
# `Schema.version` is a digest of the derived schema rows, as a real node's
# schema_version is a digest of its schema tables: it changes with every
# schema change, and two schemas built alike agree.
#
# Rules: names are case-sensitive and already normalised by the caller; a
# definition is validated as Cassandra would (identifiers, key columns,
# frozen nesting, counters, replication) and every refusal is a SchemaError,
# a ValueError that names what was wrong and what was expected and carries
# the CQL error code a node would answer with. System keyspaces change only
# with allow_system=True (a test may drop system.peers_v2 to play an older
# node). No query parsing and no networking here. Mutations and derivations
# hold one lock, so a test thread may change the schema while the server's
# loop reads it; a table's stored row list belongs to its caller.
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import re
import sys
import threading
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from .protocol.errors import ErrorCode, FakeCQLError, LocalProtocolError
from .protocol.messages import SchemaChange
from .protocol.types import (
    NATIVE_TYPES,
    CqlType,
    CustomType,
    ListType,
    MapType,
    NativeType,
    SetType,
    TupleType,
    UserType,
    parse_type,
)

__all__ = [
    "FLAVORS",
    "Schema",
    "KeyspaceDef",
    "TableDef",
    "ColumnDef",
    "ColumnKind",
    "Row",
    "cql_type_text",
    "SchemaError",
    "InvalidDefinitionError",
    "ReplicationError",
    "UnknownKeyspaceError",
    "UnknownTableError",
    "UnknownTypeError",
    "AlreadyExistsError",
    "SystemKeyspaceError",
]

_FROZEN: Dict[str, Any] = {"frozen": True}
if sys.version_info >= (3, 10):
    _FROZEN["slots"] = True

FLAVORS = ("cassandra", "scylla")

Row = Dict[str, Any]
TypeSpec = Union[str, CqlType]


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

class SchemaError(FakeCQLError, ValueError):
    """A schema change or lookup was refused; `code` is the CQL error to answer with."""

    code: ErrorCode = ErrorCode.INVALID


class InvalidDefinitionError(SchemaError):
    """A name, type, key, option or row of a definition is not valid CQL."""


class ReplicationError(InvalidDefinitionError):
    """A keyspace's replication map names no known strategy or bad options."""

    code = ErrorCode.CONFIG_ERROR


class UnknownKeyspaceError(SchemaError):
    def __init__(self, message: str, *, keyspace: str) -> None:
        super().__init__(message)
        self.keyspace = keyspace


class UnknownTableError(SchemaError):
    def __init__(self, message: str, *, keyspace: str, table: str) -> None:
        super().__init__(message)
        self.keyspace = keyspace
        self.table = table


class UnknownTypeError(SchemaError):
    def __init__(self, message: str, *, keyspace: str, type_name: str) -> None:
        super().__init__(message)
        self.keyspace = keyspace
        self.type_name = type_name


class AlreadyExistsError(SchemaError):
    """ALREADY_EXISTS: `table` is "" when the keyspace itself exists (spec 9)."""

    code = ErrorCode.ALREADY_EXISTS

    def __init__(self, message: str, *, keyspace: str, table: str = "") -> None:
        super().__init__(message)
        self.keyspace = keyspace
        self.table = table


class SystemKeyspaceError(SchemaError):
    """A system keyspace was to change without allow_system=True."""

    code = ErrorCode.UNAUTHORIZED


# --------------------------------------------------------------------------
# Names and type texts
# --------------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_]+")
_MAX_NAME = 48  # Cassandra's limit for keyspace and table names
_UNQUOTED = re.compile(r"[a-z][a-z0-9_]*")
# CQL's reserved keywords (Cassandra's reserved_keywords.txt): a UDT named so
# is quoted in type texts.
_RESERVED = frozenset(
    """add allow alter and apply asc authorize batch begin by columnfamily create
    delete desc describe drop entries execute from full grant if in index infinity
    insert into is keyspace limit materialized modify nan norecursive not null of
    on or order primary rename revoke schema select set table to token truncate
    unlogged update use using view where with""".split()
)
# Names a user type may not take (CQL type keywords and reserved type names).
_TYPE_KEYWORDS = frozenset(NATIVE_TYPES) | {
    "frozen", "list", "set", "map", "tuple", "byte", "complex", "enum", "interval",
    "macaddr", "bitstring",
}

_COUNTER = NATIVE_TYPES["counter"]
_DURATION = NATIVE_TYPES["duration"]


def _check_name(what: str, name: Any, *, limit: Optional[int] = None) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or (limit and len(name) > limit):
        bound = f"1 to {limit}" if limit else "1 or more"
        raise InvalidDefinitionError(
            f"bad {what} name {name!r}: expected {bound} ASCII letters, digits or underscores"
        )
    return name


def _quote(name: str) -> str:
    if _UNQUOTED.fullmatch(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def cql_type_text(cql_type: CqlType) -> str:
    """The type as system_schema writes it: "frozen<list<int>>", "map<text, int>".

    Unlike `CqlType.cql_name`, user type names that need it are quoted, so
    the text parses back to the same type.
    """
    if isinstance(cql_type, NativeType):
        return cql_type.name
    if isinstance(cql_type, CustomType):
        return "'" + cql_type.class_name + "'"
    if isinstance(cql_type, TupleType):
        return f"frozen<tuple<{', '.join(cql_type_text(e) for e in cql_type.elements)}>>"
    if isinstance(cql_type, ListType):
        inner = f"list<{cql_type_text(cql_type.element)}>"
    elif isinstance(cql_type, SetType):
        inner = f"set<{cql_type_text(cql_type.element)}>"
    elif isinstance(cql_type, MapType):
        inner = f"map<{cql_type_text(cql_type.key)}, {cql_type_text(cql_type.value)}>"
    elif isinstance(cql_type, UserType):
        inner = _quote(cql_type.name)
    else:
        raise InvalidDefinitionError(f"cannot write {cql_type!r} as a CQL type: unknown kind of type")
    return f"frozen<{inner}>" if cql_type.frozen else inner


def _is_collection(cql_type: CqlType) -> bool:
    return isinstance(cql_type, (ListType, SetType, MapType))


def _is_complex(cql_type: CqlType) -> bool:
    """Multi-cell: a non-frozen collection or user type."""
    return isinstance(cql_type, (ListType, SetType, MapType, UserType)) and not cql_type.frozen


def _inner_types(cql_type: CqlType) -> Tuple[CqlType, ...]:
    if isinstance(cql_type, (ListType, SetType)):
        return (cql_type.element,)
    if isinstance(cql_type, MapType):
        return (cql_type.key, cql_type.value)
    if isinstance(cql_type, TupleType):
        return cql_type.elements
    if isinstance(cql_type, UserType):
        return tuple(t for _, t in cql_type.fields)
    return ()


def _mentions(cql_type: CqlType, wanted: Callable[[CqlType], bool]) -> bool:
    return wanted(cql_type) or any(_mentions(t, wanted) for t in _inner_types(cql_type))


def _freeze_all(cql_type: CqlType) -> CqlType:
    """Everything inside a frozen type is frozen too (Cassandra's freeze())."""
    if isinstance(cql_type, ListType):
        return ListType(_freeze_all(cql_type.element), True)
    if isinstance(cql_type, SetType):
        return SetType(_freeze_all(cql_type.element), True)
    if isinstance(cql_type, MapType):
        return MapType(_freeze_all(cql_type.key), _freeze_all(cql_type.value), True)
    if isinstance(cql_type, TupleType):
        return TupleType(tuple(_freeze_all(e) for e in cql_type.elements))
    if isinstance(cql_type, UserType):
        return UserType(cql_type.keyspace, cql_type.name, cql_type.fields, True)
    return cql_type


def _normalise_type(cql_type: CqlType, what: str) -> CqlType:
    """Apply Cassandra's nesting rules to a column or field type.

    A non-frozen collection may not hold a non-frozen collection or user
    type; sets and map keys may not hold durations; nothing may hold a
    counter; what a frozen type or tuple holds is frozen.
    """
    text = cql_type_text(cql_type)
    for inner in _inner_types(cql_type):
        if _mentions(inner, lambda t: t is _COUNTER):
            raise InvalidDefinitionError(
                f"{what}: counters are not allowed inside collections, tuples or user types: {text}"
            )
    if isinstance(cql_type, SetType) and _mentions(cql_type.element, lambda t: t is _DURATION):
        raise InvalidDefinitionError(f"{what}: durations are not allowed inside sets: {text}")
    if isinstance(cql_type, MapType) and _mentions(cql_type.key, lambda t: t is _DURATION):
        raise InvalidDefinitionError(f"{what}: durations are not allowed as map keys: {text}")
    if isinstance(cql_type, TupleType) or (_is_collection(cql_type) and getattr(cql_type, "frozen", False)):
        return _freeze_all(cql_type)
    if _is_collection(cql_type):
        for inner in _inner_types(cql_type):
            if _is_complex(inner):
                kind = "user types" if isinstance(inner, UserType) else "collections"
                raise InvalidDefinitionError(
                    f"{what}: non-frozen {kind} are not allowed inside collections: {text} "
                    f"(expected frozen<{cql_type_text(inner)}>)"
                )
        if isinstance(cql_type, ListType):
            return ListType(_freeze_all(cql_type.element), False)
        if isinstance(cql_type, SetType):
            return SetType(_freeze_all(cql_type.element), False)
        assert isinstance(cql_type, MapType)
        return MapType(_freeze_all(cql_type.key), _freeze_all(cql_type.value), False)
    return cql_type


# --------------------------------------------------------------------------
# Definitions
# --------------------------------------------------------------------------

class ColumnKind(str, enum.Enum):
    """A column's kind, spelled as system_schema.columns spells it."""

    PARTITION_KEY = "partition_key"
    CLUSTERING = "clustering"
    REGULAR = "regular"
    STATIC = "static"


@dataclass(**_FROZEN)
class ColumnDef:
    """One column. `position` is its index in its key, -1 outside the key;
    `clustering_order` is "asc" or "desc" for clustering columns, else "none"."""

    name: str
    type: CqlType
    kind: ColumnKind
    position: int = -1
    clustering_order: str = "none"

    @property
    def type_text(self) -> str:
        return cql_type_text(self.type)

    @property
    def is_primary_key(self) -> bool:
        return self.kind in (ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING)


class _DerivedRows(list):  # type: ignore[type-arg]
    """A fresh list of derived rows that refuses to be written to.

    Appending to it could only be a mistake: the rows come from the schema
    model and a copy would be lost. Reading, sorting and slicing work.
    """

    __slots__ = ("_source",)

    def __init__(self, rows: Iterable[Row], source: str) -> None:
        super().__init__(rows)
        self._source = source

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidDefinitionError(
            f"the rows of {self._source} are derived from the schema model and read-only; "
            f"change the schema with Schema.add_keyspace/add_table/add_type/drop_* instead"
        )

    append = extend = insert = remove = pop = clear = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (list, (list(self),))  # copies and pickles are plain lists


@dataclass(eq=False, **_FROZEN)
class TableDef:
    """A table: its columns in `SELECT *` order, its options and its rows.

    `rows` is the list the node serves for an ordinary table (append to it).
    For a derived table (`derived` is True: system_schema.*,
    system_virtual_schema.*) each read of `rows` builds fresh dicts from the
    schema model, with every column present (None where a real node has
    null), in a list that refuses writes.
    """

    keyspace: str
    name: str
    columns: Tuple[ColumnDef, ...]
    id: uuid.UUID
    options: Mapping[str, Any]
    virtual: bool = False
    _stored_rows: List[Row] = field(default_factory=list, repr=False)
    _derive: Optional[Callable[[], List[Row]]] = field(default=None, repr=False)

    @property
    def derived(self) -> bool:
        return self._derive is not None

    @property
    def rows(self) -> List[Row]:
        if self._derive is None:
            return self._stored_rows
        names = [c.name for c in self.columns]
        out = []
        for partial in self._derive():
            unknown = set(partial) - set(names)
            if unknown:  # a bug in a deriver, not in the caller
                raise AssertionError(f"derived row of {self.qualified_name} has unknown columns {sorted(unknown)}")
            out.append({name: partial.get(name) for name in names})
        return _DerivedRows(out, self.qualified_name)

    @property
    def qualified_name(self) -> str:
        return f"{self.keyspace}.{self.name}"

    @property
    def column_names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def partition_key(self) -> Tuple[ColumnDef, ...]:
        return tuple(c for c in self.columns if c.kind is ColumnKind.PARTITION_KEY)

    @property
    def clustering(self) -> Tuple[ColumnDef, ...]:
        return tuple(c for c in self.columns if c.kind is ColumnKind.CLUSTERING)

    @property
    def primary_key(self) -> Tuple[ColumnDef, ...]:
        return self.partition_key + self.clustering

    def column(self, name: str) -> Optional[ColumnDef]:
        for column in self.columns:
            if column.name == name:
                return column
        return None

    @property
    def flags(self) -> List[str]:
        """system_schema.tables flags: a CQL table is 'compound'; counters add 'counter'."""
        flags = ["compound"]
        if any(c.type is _COUNTER for c in self.columns):
            flags.append("counter")
        return flags


@dataclass(eq=False, **_FROZEN)
class KeyspaceDef:
    """A keyspace. `replication` holds the full strategy class under "class"
    and string options, as system_schema.keyspaces does. `virtual`
    keyspaces are listed in system_virtual_schema, not system_schema."""

    name: str
    replication: Mapping[str, str]
    durable_writes: bool = True
    virtual: bool = False
    system: bool = False
    _tables: Dict[str, TableDef] = field(default_factory=dict, repr=False)
    _user_types: Dict[str, UserType] = field(default_factory=dict, repr=False)

    @property
    def tables(self) -> Mapping[str, TableDef]:
        return MappingProxyType(self._tables)

    @property
    def user_types(self) -> Mapping[str, UserType]:
        return MappingProxyType(self._user_types)

    def table(self, name: str) -> Optional[TableDef]:
        return self._tables.get(name)


# --------------------------------------------------------------------------
# Replication
# --------------------------------------------------------------------------

_STRATEGY_PREFIX = "org.apache.cassandra.locator."
_STRATEGIES = ("SimpleStrategy", "NetworkTopologyStrategy", "LocalStrategy", "EverywhereStrategy")
_RF = re.compile(r"\d+(/\d+)?")


def _replication(keyspace: str, replication: Any) -> Mapping[str, str]:
    where = f"replication of keyspace {keyspace}"
    if not isinstance(replication, Mapping):
        raise ReplicationError(f"{where}: expected a mapping with a 'class', got {replication!r}")
    options: Dict[str, str] = {}
    for key, value in replication.items():
        if not isinstance(key, str):
            raise ReplicationError(f"{where}: option names must be str, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ReplicationError(f"{where}: option {key!r} must be a str or int, got {value!r}")
        options[key] = str(value)
    strategy = options.pop("class", None)
    if not strategy:
        raise ReplicationError(f"{where}: missing 'class' (expected e.g. 'SimpleStrategy')")
    short = strategy[len(_STRATEGY_PREFIX):] if strategy.startswith(_STRATEGY_PREFIX) else strategy
    if short in _STRATEGIES:
        strategy = _STRATEGY_PREFIX + short
    elif "." not in short:
        raise ReplicationError(
            f"{where}: unknown strategy {strategy!r}; expected one of {', '.join(_STRATEGIES)} "
            f"or a fully qualified class name"
        )
    if short == "SimpleStrategy":
        unknown = set(options) - {"replication_factor"}
        if "replication_factor" not in options or unknown:
            raise ReplicationError(
                f"{where}: SimpleStrategy takes exactly a 'replication_factor', got {sorted(options)}"
            )
    if short in ("SimpleStrategy", "NetworkTopologyStrategy"):
        for key, value in options.items():
            if not _RF.fullmatch(value):
                raise ReplicationError(
                    f"{where}: {key} must be a replication factor like '3' or '3/1', got {value!r}"
                )
    return MappingProxyType({"class": strategy, **options})


# --------------------------------------------------------------------------
# The system keyspaces of each flavor, as CREATE-like column lists
# --------------------------------------------------------------------------

@dataclass(**_FROZEN)
class _TableSpec:
    name: str
    comment: str
    columns: str  # "name type, name type, ..." in CQL
    partition_key: Tuple[str, ...]
    clustering: Tuple[str, ...] = ()


@dataclass(**_FROZEN)
class _KeyspaceSpec:
    name: str
    replication: Optional[Mapping[str, str]]  # None: virtual
    tables: Tuple[_TableSpec, ...]
    table_options: Mapping[str, Any] = field(default_factory=dict)


def _split_columns(text: str) -> List[Tuple[str, str]]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    out = []
    for part in parts:
        name, type_text = part.split(None, 1)
        out.append((name, type_text.strip()))
    return out


# system_schema.tables option columns (and their defaults on a user table).
_CASSANDRA_OPTIONS = (
    "additional_write_policy text, bloom_filter_fp_chance double, "
    "caching frozen<map<text, text>>, cdc boolean, comment text, "
    "compaction frozen<map<text, text>>, compression frozen<map<text, text>>, "
    "crc_check_chance double, dclocal_read_repair_chance double, default_time_to_live int, "
    "extensions frozen<map<text, blob>>, gc_grace_seconds int, max_index_interval int, "
    "memtable_flush_period_in_ms int, min_index_interval int, read_repair text, "
    "read_repair_chance double, speculative_retry text"
)
_SCYLLA_OPTIONS = (
    "bloom_filter_fp_chance double, caching frozen<map<text, text>>, comment text, "
    "compaction frozen<map<text, text>>, compression frozen<map<text, text>>, "
    "crc_check_chance double, dclocal_read_repair_chance double, default_time_to_live int, "
    "extensions frozen<map<text, blob>>, gc_grace_seconds int, max_index_interval int, "
    "memtable_flush_period_in_ms int, min_index_interval int, read_repair_chance double, "
    "speculative_retry text"
)
_COMMON_DEFAULTS: Dict[str, Any] = {
    "bloom_filter_fp_chance": 0.01,
    "comment": "",
    "crc_check_chance": 1.0,
    "dclocal_read_repair_chance": 0.0,
    "default_time_to_live": 0,
    "extensions": {},
    "gc_grace_seconds": 864000,
    "max_index_interval": 2048,
    "memtable_flush_period_in_ms": 0,
    "min_index_interval": 128,
    "read_repair_chance": 0.0,
}
_CASSANDRA_DEFAULTS: Dict[str, Any] = {
    **_COMMON_DEFAULTS,
    "additional_write_policy": "99p",
    "caching": {"keys": "ALL", "rows_per_partition": "NONE"},
    "cdc": None,  # written only where CDC is enabled
    "compaction": {
        "class": "org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy",
        "max_threshold": "32",
        "min_threshold": "4",
    },
    "compression": {
        "chunk_length_in_kb": "16",
        "class": "org.apache.cassandra.io.compress.LZ4Compressor",
    },
    "read_repair": "BLOCKING",
    "speculative_retry": "99p",
}
_SCYLLA_DEFAULTS: Dict[str, Any] = {
    **_COMMON_DEFAULTS,
    "caching": {"keys": "ALL", "rows_per_partition": "ALL"},
    "compaction": {"class": "SizeTieredCompactionStrategy"},
    "compression": {"sstable_compression": "org.apache.cassandra.io.compress.LZ4Compressor"},
    "speculative_retry": "99.0PERCENTILE",
}

_T = _TableSpec
_COLUMNS_COLUMNS = (
    "keyspace_name text, table_name text, column_name text, clustering_order text, "
    "column_name_bytes blob, kind text, position int, type text"
)


def _schema_tables(flavor: str, options: str) -> Tuple[_TableSpec, ...]:
    ks_pk = ("keyspace_name",)
    dropped_kind = "kind text, " if flavor == "cassandra" else ""
    tables = [
        _T("keyspaces", "keyspace definitions",
           "keyspace_name text, durable_writes boolean, replication frozen<map<text, text>>", ks_pk),
        _T("tables", "table definitions",
           f"keyspace_name text, table_name text, {options}, flags frozen<set<text>>, id uuid",
           ks_pk, ("table_name",)),
        _T("columns", "column definitions", _COLUMNS_COLUMNS, ks_pk, ("table_name", "column_name")),
        _T("dropped_columns", "dropped column registry",
           f"keyspace_name text, table_name text, column_name text, dropped_time timestamp, "
           f"{dropped_kind}type text", ks_pk, ("table_name", "column_name")),
        _T("triggers", "trigger definitions",
           "keyspace_name text, table_name text, trigger_name text, options frozen<map<text, text>>",
           ks_pk, ("table_name", "trigger_name")),
        _T("views", "view definitions",
           f"keyspace_name text, view_name text, base_table_id uuid, base_table_name text, "
           f"where_clause text, include_all_columns boolean, {options}, id uuid",
           ks_pk, ("view_name",)),
        _T("types", "user defined type definitions",
           "keyspace_name text, type_name text, field_names frozen<list<text>>, "
           "field_types frozen<list<text>>", ks_pk, ("type_name",)),
        _T("functions", "user defined function definitions",
           "keyspace_name text, function_name text, argument_types frozen<list<text>>, "
           "argument_names frozen<list<text>>, body text, language text, return_type text, "
           "called_on_null_input boolean", ks_pk, ("function_name", "argument_types")),
        _T("aggregates", "user defined aggregate definitions",
           "keyspace_name text, aggregate_name text, argument_types frozen<list<text>>, "
           "final_func text, initcond text, return_type text, state_func text, state_type text",
           ks_pk, ("aggregate_name", "argument_types")),
        _T("indexes", "secondary index definitions",
           "keyspace_name text, table_name text, index_name text, kind text, "
           "options frozen<map<text, text>>", ks_pk, ("table_name", "index_name")),
    ]
    if flavor == "scylla":
        tables.append(
            _T("scylla_keyspaces", "scylla-specific information for keyspaces",
               "keyspace_name text, storage_type text, storage_options frozen<map<text, text>>, "
               "initial_tablets int, consistency text", ks_pk)
        )
    return tuple(tables)


_AUTH_TABLES = (
    _T("roles", "role definitions",
       "role text, can_login boolean, is_superuser boolean, member_of set<text>, salted_hash text",
       ("role",)),
    _T("role_members", "role memberships lookup table", "role text, member text", ("role",), ("member",)),
    _T("role_permissions", "permissions granted to db roles",
       "role text, resource text, permissions set<text>", ("role",), ("resource",)),
)
_VIEW_BUILD_STATUS = _T(
    "view_build_status", "Materialized View build status",
    "keyspace_name text, view_name text, host_id uuid, status text",
    ("keyspace_name", "view_name"), ("host_id",),
)


def _simple(rf: int) -> Mapping[str, str]:
    return {"class": "SimpleStrategy", "replication_factor": str(rf)}


_LOCAL = {"class": "LocalStrategy"}
# Names a user keyspace may not take (both flavors' system keyspaces).
_SYSTEM_KEYSPACE_NAMES = frozenset({
    "system", "system_schema", "system_auth", "system_distributed",
    "system_distributed_everywhere", "system_traces", "system_virtual_schema", "system_views",
})
_SYSTEM_OPTIONS = {"gc_grace_seconds": 0, "memtable_flush_period_in_ms": 3600000}
_SCHEMA_OPTIONS = {"gc_grace_seconds": 604800, "memtable_flush_period_in_ms": 3600000}


def _cassandra_keyspaces() -> Tuple[_KeyspaceSpec, ...]:
    return (
        _KeyspaceSpec("system", _LOCAL, (
            _T("local", "information about the local node",
               "key text, bootstrapped text, broadcast_address inet, broadcast_port int, "
               "cluster_name text, cql_version text, data_center text, gossip_generation int, "
               "host_id uuid, listen_address inet, listen_port int, native_protocol_version text, "
               "partitioner text, rack text, release_version text, rpc_address inet, rpc_port int, "
               "schema_version uuid, tokens set<text>, truncated_at map<uuid, blob>", ("key",)),
            _T("peers", "information about known peers in the cluster",
               "peer inet, data_center text, host_id uuid, preferred_ip inet, rack text, "
               "release_version text, rpc_address inet, schema_version uuid, tokens set<text>",
               ("peer",)),
            _T("peers_v2", "information about known peers in the cluster",
               "peer inet, peer_port int, data_center text, host_id uuid, preferred_ip inet, "
               "preferred_port int, rack text, release_version text, native_address inet, "
               "native_port int, schema_version uuid, tokens set<text>", ("peer",), ("peer_port",)),
        ), _SYSTEM_OPTIONS),
        _KeyspaceSpec("system_schema", _LOCAL, _schema_tables("cassandra", _CASSANDRA_OPTIONS), _SCHEMA_OPTIONS),
        _KeyspaceSpec("system_auth", _simple(1), _AUTH_TABLES,
                      {"gc_grace_seconds": 7776000, "memtable_flush_period_in_ms": 3600000}),
        _KeyspaceSpec("system_distributed", _simple(3), (
            _T("repair_history", "Repair history",
               "keyspace_name text, columnfamily_name text, id timeuuid, parent_id timeuuid, "
               "range_begin text, range_end text, coordinator inet, coordinator_port int, "
               "participants set<inet>, participants_v2 set<text>, exception_message text, "
               "exception_stacktrace text, status text, started_at timestamp, finished_at timestamp",
               ("keyspace_name", "columnfamily_name"), ("id",)),
            _T("parent_repair_history", "Repair history",
               "parent_id timeuuid, keyspace_name text, columnfamily_names set<text>, "
               "started_at timestamp, finished_at timestamp, exception_message text, "
               "exception_stacktrace text, requested_ranges set<text>, successful_ranges set<text>, "
               "options map<text, text>", ("parent_id",)),
            _VIEW_BUILD_STATUS,
        )),
        _KeyspaceSpec("system_traces", _simple(2), (
            _T("sessions", "tracing sessions",
               "session_id uuid, client inet, command text, coordinator inet, coordinator_port int, "
               "duration int, parameters map<text, text>, request text, started_at timestamp",
               ("session_id",)),
            _T("events", "tracing events",
               "session_id uuid, event_id timeuuid, activity text, source inet, source_elapsed int, "
               "source_port int, thread text", ("session_id",), ("event_id",)),
        ), {"gc_grace_seconds": 0}),
        _KeyspaceSpec("system_virtual_schema", None, (
            _T("keyspaces", "virtual keyspace definitions", "keyspace_name text", ("keyspace_name",)),
            _T("tables", "virtual table definitions",
               "keyspace_name text, table_name text, comment text", ("keyspace_name",), ("table_name",)),
            _T("columns", "virtual column definitions", _COLUMNS_COLUMNS,
               ("keyspace_name",), ("table_name", "column_name")),
        )),
        _KeyspaceSpec("system_views", None, (
            _T("settings", "current settings", "name text, value text", ("name",)),
            _T("clients", "currently connected clients",
               "address inet, port int, connection_stage text, driver_name text, driver_version text, "
               "hostname text, protocol_version int, request_count bigint, ssl_cipher_suite text, "
               "ssl_enabled boolean, ssl_protocol text, username text", ("address",), ("port",)),
        )),
    )


def _scylla_keyspaces() -> Tuple[_KeyspaceSpec, ...]:
    return (
        _KeyspaceSpec("system", _LOCAL, (
            _T("local", "information about the local node",
               "key text, bootstrapped text, broadcast_address inet, cluster_name text, "
               "cql_version text, data_center text, gossip_generation int, host_id uuid, "
               "listen_address inet, native_protocol_version text, partitioner text, rack text, "
               "release_version text, rpc_address inet, schema_version uuid, supported_features text, "
               "tokens set<text>, truncated_at map<uuid, blob>", ("key",)),
            _T("peers", "information about known peers in the cluster",
               "peer inet, data_center text, host_id uuid, preferred_ip inet, rack text, "
               "release_version text, rpc_address inet, schema_version uuid, "
               "supported_features text, tokens set<text>", ("peer",)),
            _T("client_routes", "",
               "connection_id text, host_id uuid, address text, port int, tls_port int, "
               "alternator_port int, alternator_https_port int", ("connection_id",), ("host_id",)),
        ), {"gc_grace_seconds": 0}),
        _KeyspaceSpec("system_schema", _LOCAL, _schema_tables("scylla", _SCYLLA_OPTIONS),
                      {"gc_grace_seconds": 604800}),
        _KeyspaceSpec("system_auth", _simple(1), _AUTH_TABLES, {"gc_grace_seconds": 7776000}),
        _KeyspaceSpec("system_distributed", _simple(3), (
            _VIEW_BUILD_STATUS,
            _T("service_levels", "", "service_level text, timeout duration, workload_type text, shares int",
               ("service_level",)),
        )),
        _KeyspaceSpec("system_traces", _simple(2), (
            _T("sessions", "tracing sessions",
               "session_id uuid, client inet, command text, coordinator inet, duration int, "
               "parameters map<text, text>, request text, request_size int, response_size int, "
               "started_at timestamp, username text", ("session_id",)),
            _T("events", "tracing events",
               "session_id uuid, event_id timeuuid, activity text, scylla_parent_id bigint, "
               "scylla_span_id bigint, source inet, source_elapsed int, thread text",
               ("session_id",), ("event_id",)),
        ), {"gc_grace_seconds": 0}),
    )


@dataclass(**_FROZEN)
class _Flavor:
    name: str
    keyspaces: Tuple[_KeyspaceSpec, ...]
    option_types: Mapping[str, CqlType]
    default_options: Mapping[str, Any]
    complex_columns_last: bool  # Cassandra lists multi-cell columns after the others


@functools.lru_cache(maxsize=None)
def _flavor(name: str) -> _Flavor:
    """A flavor's definitions (immutable, so built once per process)."""
    if name == "cassandra":
        keyspaces, options, defaults, complex_last = (
            _cassandra_keyspaces(), _CASSANDRA_OPTIONS, _CASSANDRA_DEFAULTS, True
        )
    elif name == "scylla":
        keyspaces, options, defaults, complex_last = (
            _scylla_keyspaces(), _SCYLLA_OPTIONS, _SCYLLA_DEFAULTS, False
        )
    else:
        raise InvalidDefinitionError(f"unknown schema flavor {name!r}: expected one of {', '.join(FLAVORS)}")
    option_types = {n: parse_type(t) for n, t in _split_columns(options)}
    return _Flavor(name, keyspaces, MappingProxyType(option_types), MappingProxyType(defaults), complex_last)


# --------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------

def _name_uuid(*parts: str) -> uuid.UUID:
    """Java's UUID.nameUUIDFromBytes, as Cassandra names system tables."""
    return uuid.UUID(bytes=hashlib.md5("".join(parts).encode("utf-8")).digest(), version=3)


def _fresh(value: Any) -> Any:
    """A copy the caller may change without changing the model."""
    if isinstance(value, Mapping):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_fresh(v) for v in value]
    return value


def _name_key(name: str) -> bytes:
    return name.encode("utf-8")  # CQL text sorts by its UTF-8 bytes


# The tables whose rows are derived from the model, and what derives them.
_DERIVED = {
    ("system_schema", "keyspaces"): "_derive_keyspaces",
    ("system_schema", "tables"): "_derive_tables",
    ("system_schema", "columns"): "_derive_columns",
    ("system_schema", "types"): "_derive_types",
    ("system_schema", "dropped_columns"): "_derive_nothing",
    ("system_schema", "triggers"): "_derive_nothing",
    ("system_schema", "views"): "_derive_nothing",
    ("system_schema", "functions"): "_derive_nothing",
    ("system_schema", "aggregates"): "_derive_nothing",
    ("system_schema", "indexes"): "_derive_nothing",
    # A Scylla node lists only keyspaces with storage or tablets options here;
    # the model has none, so every keyspace is plain (eventually consistent).
    ("system_schema", "scylla_keyspaces"): "_derive_nothing",
    ("system_virtual_schema", "keyspaces"): "_derive_virtual_keyspaces",
    ("system_virtual_schema", "tables"): "_derive_virtual_tables",
    ("system_virtual_schema", "columns"): "_derive_virtual_columns",
}


# (flavor, keyspace) -> its system tables, built once per process (see _install_system_keyspace)
_SYSTEM_TABLES: Dict[Tuple[str, str], List["TableDef"]] = {}


class Schema:
    """Keyspaces, tables and user types of one fake node (or cluster).

    `Schema()` holds the system keyspaces of a Cassandra 4.0 node;
    `Schema(flavor="scylla")` those of a ScyllaDB node (no peers_v2 nor
    system_virtual_schema; system.client_routes and
    system_schema.scylla_keyspaces instead).
    """

    def __init__(self, *, flavor: str = "cassandra") -> None:
        self._flavor = _flavor(flavor)
        self._lock = threading.RLock()
        self._keyspaces: Dict[str, KeyspaceDef] = {}
        self._version: Optional[uuid.UUID] = None
        self.changes = 0  # schema changes so far: what a node's cached answers are checked against
        self._listeners: List[Callable[[SchemaChange], None]] = []
        for spec in self._flavor.keyspaces:
            self._install_system_keyspace(spec)

    def __repr__(self) -> str:
        return f"<Schema flavor={self.flavor} keyspaces={list(self._keyspaces)} version={self.version}>"

    # ---- reading ---------------------------------------------------------

    @property
    def flavor(self) -> str:
        return self._flavor.name

    @property
    def keyspaces(self) -> Mapping[str, KeyspaceDef]:
        return MappingProxyType(self._keyspaces)

    @property
    def version(self) -> uuid.UUID:
        """The schema_version a node reports; a digest of the derived schema rows."""
        with self._lock:
            if self._version is None:
                digest = hashlib.md5()
                for derive in (self._derive_keyspaces, self._derive_tables, self._derive_columns,
                               self._derive_types, self._derive_virtual_columns):
                    for row in derive():
                        digest.update(repr(sorted(row.items())).encode("utf-8"))
                        digest.update(b"\n")
                self._version = uuid.UUID(bytes=digest.digest(), version=3)
            return self._version

    def keyspace(self, name: str) -> Optional[KeyspaceDef]:
        return self._keyspaces.get(name)

    def table(self, keyspace: str, name: str) -> Optional[TableDef]:
        """The table, or None if it or its keyspace does not exist."""
        ks = self._keyspaces.get(keyspace)
        return ks.table(name) if ks is not None else None

    def lookup(self, keyspace: str, name: str) -> TableDef:
        """The table, or UnknownKeyspaceError / UnknownTableError (code INVALID)."""
        ks = self._existing_keyspace(keyspace)
        table = ks.table(name)
        if table is None:
            listed = ", ".join(sorted(ks.tables)) or "none"
            raise UnknownTableError(
                f"unconfigured table {keyspace}.{name}: keyspace {keyspace} has tables {listed}",
                keyspace=keyspace, table=name,
            )
        return table

    def tables(self, keyspace: Optional[str] = None) -> List[TableDef]:
        """Every table (of one keyspace if named), keyspaces in creation order."""
        with self._lock:
            if keyspace is not None:
                return list(self._existing_keyspace(keyspace).tables.values())
            return [t for ks in self._keyspaces.values() for t in ks.tables.values()]

    def user_type(self, keyspace: str, name: str) -> Optional[UserType]:
        ks = self._keyspaces.get(keyspace)
        return ks.user_types.get(name) if ks is not None else None

    def resolve_type(self, keyspace: str, type_spec: TypeSpec) -> CqlType:
        """Parse a column type ("frozen<address>") against a keyspace's user types."""
        ks = self._existing_keyspace(keyspace)
        return self._resolve(ks, type_spec, f"type {type_spec!r}")

    # ---- changing --------------------------------------------------------

    def add_keyspace(
        self,
        name: str,
        replication: Optional[Mapping[str, Any]] = None,
        *,
        durable_writes: bool = True,
        allow_system: bool = False,
    ) -> KeyspaceDef:
        """Create a keyspace; replication defaults to SimpleStrategy with RF 1.

        Short strategy names are stored fully qualified, values as str.
        """
        _check_name("keyspace", name, limit=_MAX_NAME)
        if not isinstance(durable_writes, bool):
            raise InvalidDefinitionError(f"durable_writes of keyspace {name} must be a bool, got {durable_writes!r}")
        with self._lock:
            if name in self._keyspaces:
                raise AlreadyExistsError(f"keyspace {name} already exists", keyspace=name)
            system = name in _SYSTEM_KEYSPACE_NAMES
            if system and not allow_system:
                raise SystemKeyspaceError(
                    f"cannot create keyspace {name}: the name is a system keyspace's "
                    f"(pass allow_system=True to play a node that has it)"
                )
            ks = KeyspaceDef(
                name=name,
                replication=_replication(name, _simple(1) if replication is None else replication),
                durable_writes=durable_writes,
                system=system,
            )
            self._keyspaces[name] = ks
            self._changed("CREATED", "KEYSPACE", name, None)
            return ks

    def drop_keyspace(self, name: str, *, allow_system: bool = False) -> None:
        with self._lock:
            ks = self._existing_keyspace(name)
            self._check_modifiable(ks, allow_system, f"drop keyspace {name}")
            del self._keyspaces[name]
            self._changed("DROPPED", "KEYSPACE", name, None)

    def add_table(
        self,
        keyspace: str,
        name: str,
        columns: Mapping[str, TypeSpec],
        partition_key: Union[str, Sequence[str]],
        clustering: Union[str, Sequence[Union[str, Tuple[str, str]]]] = (),
        *,
        static: Union[str, Sequence[str]] = (),
        options: Optional[Mapping[str, Any]] = None,
        table_id: Optional[uuid.UUID] = None,
        allow_system: bool = False,
    ) -> TableDef:
        """Create a table and return it.

        `columns` maps each column name to its CQL type (text such as
        "frozen<list<int>>", user types of the keyspace by name, or a
        CqlType). `clustering` lists names or (name, "asc"|"desc") pairs.
        `options` overrides system_schema.tables options (comment,
        default_time_to_live, ...). `table_id` defaults to a UUID derived
        from the names, so schemas built alike share a version.
        """
        with self._lock:
            ks = self._existing_keyspace(keyspace)
            self._check_modifiable(ks, allow_system, f"create table {keyspace}.{name}")
            table = self._build_table(ks, name, columns, partition_key, clustering, static, options, table_id)
            ks._tables[name] = table
            self._changed("CREATED", "TABLE", keyspace, name)
            return table

    def drop_table(self, keyspace: str, name: str, *, allow_system: bool = False) -> None:
        with self._lock:
            self.lookup(keyspace, name)
            ks = self._keyspaces[keyspace]
            self._check_modifiable(ks, allow_system, f"drop table {keyspace}.{name}")
            del ks._tables[name]
            self._changed("DROPPED", "TABLE", keyspace, name)

    def add_type(
        self,
        keyspace: str,
        name: str,
        fields: Mapping[str, TypeSpec],
        *,
        allow_system: bool = False,
    ) -> UserType:
        """Create a user type; columns then name it ("frozen<address>")."""
        with self._lock:
            ks = self._existing_keyspace(keyspace)
            self._check_modifiable(ks, allow_system, f"create type {keyspace}.{name}")
            _check_name("type", name, limit=_MAX_NAME)
            if name.lower() in _TYPE_KEYWORDS:
                raise InvalidDefinitionError(
                    f"bad type name {name!r} in keyspace {keyspace}: it is a CQL type keyword"
                )
            if name in ks._user_types:
                raise AlreadyExistsError(f"type {keyspace}.{name} already exists", keyspace=keyspace, table=name)
            if not isinstance(fields, Mapping) or not fields:
                raise InvalidDefinitionError(
                    f"type {keyspace}.{name}: expected a non-empty mapping of field name to type, got {fields!r}"
                )
            resolved: List[Tuple[str, CqlType]] = []
            for field_name, spec in fields.items():
                _check_name(f"field (of type {keyspace}.{name})", field_name)
                what = f"field {field_name!r} of type {keyspace}.{name}"
                field_type = self._resolve(ks, spec, what)
                if field_type is _COUNTER:
                    raise InvalidDefinitionError(f"{what}: a user type cannot contain counters")
                if isinstance(field_type, UserType) and not field_type.frozen:
                    raise InvalidDefinitionError(
                        f"{what}: a user type cannot contain non-frozen user types "
                        f"(expected frozen<{_quote(field_type.name)}>)"
                    )
                resolved.append((field_name, field_type))
            user_type = UserType(keyspace, name, tuple(resolved))
            ks._user_types[name] = user_type
            self._changed("CREATED", "TYPE", keyspace, name)
            return user_type

    def drop_type(self, keyspace: str, name: str, *, allow_system: bool = False) -> None:
        with self._lock:
            ks = self._existing_keyspace(keyspace)
            self._check_modifiable(ks, allow_system, f"drop type {keyspace}.{name}")
            if name not in ks._user_types:
                raise UnknownTypeError(
                    f"no user type {keyspace}.{name}: keyspace {keyspace} has types "
                    f"{', '.join(sorted(ks._user_types)) or 'none'}",
                    keyspace=keyspace, type_name=name,
                )

            def uses(cql_type: CqlType) -> bool:
                return _mentions(
                    cql_type, lambda t: isinstance(t, UserType) and t.keyspace == keyspace and t.name == name
                )

            users = [f"table {keyspace}.{t.name}" for t in ks._tables.values() if any(uses(c.type) for c in t.columns)]
            users += [f"type {keyspace}.{t.name}" for t in ks._user_types.values()
                      if t.name != name and any(uses(f) for _, f in t.fields)]
            if users:
                raise InvalidDefinitionError(
                    f"cannot drop user type {keyspace}.{name}: it is still used by {', '.join(users)}"
                )
            del ks._user_types[name]
            self._changed("DROPPED", "TYPE", keyspace, name)

    # ---- internals -------------------------------------------------------

    def _changed(self, change_type: str, target: str, keyspace: str, name: Optional[str]) -> None:
        self._version = None
        self.changes += 1
        change = SchemaChange(change_type=change_type, target=target, keyspace=keyspace, name=name)
        for listener in list(self._listeners):
            listener(change)

    def add_listener(self, listener: Callable[[SchemaChange], None]) -> None:
        """Call `listener` with a SchemaChange after each change (a cluster pushes
        it as a SCHEMA_CHANGE event). It runs under the schema's lock: it must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[SchemaChange], None]) -> None:
        self._listeners = [known for known in self._listeners if known != listener]

    def _existing_keyspace(self, name: str) -> KeyspaceDef:
        ks = self._keyspaces.get(name)
        if ks is None:
            raise UnknownKeyspaceError(
                f"keyspace {name} does not exist (keyspaces: {', '.join(self._keyspaces)})", keyspace=name
            )
        return ks

    @staticmethod
    def _check_modifiable(ks: KeyspaceDef, allow_system: bool, action: str) -> None:
        if ks.system and not allow_system:
            raise SystemKeyspaceError(
                f"cannot {action}: {ks.name} is a system keyspace "
                f"(pass allow_system=True to change what the fake node has)"
            )

    def _resolve(self, ks: KeyspaceDef, spec: TypeSpec, what: str) -> CqlType:
        if isinstance(spec, CqlType):
            text = cql_type_text(spec)  # resolve user types by name in this keyspace
        elif isinstance(spec, str):
            text = spec
        else:
            raise InvalidDefinitionError(f"{what}: expected a CQL type as str or CqlType, got {spec!r}")
        known: Dict[str, UserType] = {}
        for type_name, user_type in ks._user_types.items():
            known[type_name] = user_type
            known[f"{ks.name}.{type_name}"] = user_type
        try:
            parsed = parse_type(text, user_types=known)
        except LocalProtocolError as exc:
            listed = ", ".join(sorted(ks._user_types)) or "none"
            raise InvalidDefinitionError(f"{what}: {exc} (user types of keyspace {ks.name}: {listed})") from None
        return _normalise_type(parsed, what)

    def _build_table(
        self,
        ks: KeyspaceDef,
        name: str,
        columns: Mapping[str, TypeSpec],
        partition_key: Union[str, Sequence[str]],
        clustering: Union[str, Sequence[Union[str, Tuple[str, str]]]],
        static: Union[str, Sequence[str]],
        options: Optional[Mapping[str, Any]],
        table_id: Optional[uuid.UUID],
    ) -> TableDef:
        qualified = f"{ks.name}.{name}"
        _check_name("table", name, limit=_MAX_NAME)
        if name in ks._tables:
            raise AlreadyExistsError(f"table {qualified} already exists", keyspace=ks.name, table=name)
        if not isinstance(columns, Mapping) or not columns:
            raise InvalidDefinitionError(
                f"table {qualified}: expected a non-empty mapping of column name to type, got {columns!r}"
            )
        types: Dict[str, CqlType] = {}
        for column_name, spec in columns.items():
            _check_name(f"column (of table {qualified})", column_name)
            types[column_name] = self._resolve(ks, spec, f"column {column_name!r} of table {qualified}")

        def names(value: Any, what: str) -> List[Any]:
            if isinstance(value, str):
                return [value]  # one column
            if not isinstance(value, Sequence):
                raise InvalidDefinitionError(
                    f"table {qualified}: {what} must be a list of column names, got {value!r}"
                )
            return list(value)

        key_seen: Dict[str, str] = {}

        def key_column(column_name: Any, what: str) -> str:
            if column_name not in types:
                raise InvalidDefinitionError(
                    f"table {qualified}: {what} column {column_name!r} is not among the columns "
                    f"({', '.join(types)})"
                )
            if column_name in key_seen:
                raise InvalidDefinitionError(
                    f"table {qualified}: column {column_name!r} is named twice in the primary key "
                    f"({key_seen[column_name]} and {what})"
                )
            key_seen[column_name] = what
            column_type = types[column_name]
            if _is_complex(column_type):
                kind = "user type" if isinstance(column_type, UserType) else "collection"
                raise InvalidDefinitionError(
                    f"table {qualified}: invalid non-frozen {kind} type {cql_type_text(column_type)} "
                    f"for PRIMARY KEY component {column_name} (expected frozen<...>)"
                )
            if _mentions(column_type, lambda t: t is _COUNTER or t is _DURATION):
                raise InvalidDefinitionError(
                    f"table {qualified}: counter and duration types are not allowed in the "
                    f"primary key, got {cql_type_text(column_type)} for {column_name}"
                )
            return column_name

        built: List[ColumnDef] = []
        pk_names = names(partition_key, "partition key")
        if not pk_names:
            raise InvalidDefinitionError(f"table {qualified}: expected at least one partition key column")
        for position, column_name in enumerate(pk_names):
            key_column(column_name, "partition key")
            built.append(ColumnDef(column_name, types[column_name], ColumnKind.PARTITION_KEY, position))
        for position, item in enumerate(names(clustering, "clustering")):
            if isinstance(item, str):
                column_name, order = item, "asc"
            elif isinstance(item, (tuple, list)) and len(item) == 2:
                column_name, order = item
            else:
                raise InvalidDefinitionError(
                    f"table {qualified}: clustering items must be a column name or a "
                    f"(name, 'asc'|'desc') pair, got {item!r}"
                )
            if not isinstance(order, str) or order.lower() not in ("asc", "desc"):
                raise InvalidDefinitionError(
                    f"table {qualified}: clustering order of {column_name!r} must be 'asc' or 'desc', got {order!r}"
                )
            key_column(column_name, "clustering")
            built.append(
                ColumnDef(column_name, types[column_name], ColumnKind.CLUSTERING, position, order.lower())
            )
        static_names = set(names(static, "static"))
        for column_name in static_names:
            if column_name not in types or column_name in key_seen:
                raise InvalidDefinitionError(
                    f"table {qualified}: static column {column_name!r} must be a non-key column "
                    f"among ({', '.join(types)})"
                )
        if static_names and not any(c.kind is ColumnKind.CLUSTERING for c in built):
            raise InvalidDefinitionError(
                f"table {qualified}: static columns ({', '.join(sorted(static_names))}) need a clustering column"
            )
        others = [n for n in types if n not in key_seen]
        counters = [n for n in others if types[n] is _COUNTER]
        if counters and len(counters) != len(others):
            raise InvalidDefinitionError(
                f"table {qualified}: cannot mix counter and non-counter columns (counters: "
                f"{', '.join(counters)}; others: {', '.join(n for n in others if n not in counters)})"
            )
        for column_name in others:
            kind = ColumnKind.STATIC if column_name in static_names else ColumnKind.REGULAR
            built.append(ColumnDef(column_name, types[column_name], kind))
        if table_id is not None and not isinstance(table_id, uuid.UUID):
            raise InvalidDefinitionError(f"table {qualified}: table_id must be a uuid.UUID, got {table_id!r}")
        derive = None
        if (ks.name, name) in _DERIVED and ks.system:
            derive = getattr(self, _DERIVED[(ks.name, name)])
        return TableDef(
            keyspace=ks.name,
            name=name,
            columns=self._select_order(built),
            id=table_id or _name_uuid(ks.name, name),
            options=self._options(ks, qualified, options),
            virtual=ks.virtual,
            _derive=derive,
        )

    def _select_order(self, columns: List[ColumnDef]) -> Tuple[ColumnDef, ...]:
        """Key columns by position, then static, then regular columns by name
        (on Cassandra, simple columns before multi-cell ones)."""

        def by_name(c: ColumnDef) -> Tuple[bool, bytes]:
            return (self._flavor.complex_columns_last and _is_complex(c.type), _name_key(c.name))

        ordered = [c for c in columns if c.kind is ColumnKind.PARTITION_KEY]
        ordered += [c for c in columns if c.kind is ColumnKind.CLUSTERING]
        ordered += sorted((c for c in columns if c.kind is ColumnKind.STATIC), key=by_name)
        ordered += sorted((c for c in columns if c.kind is ColumnKind.REGULAR), key=by_name)
        return tuple(ordered)

    def _options(self, ks: KeyspaceDef, qualified: str, given: Optional[Mapping[str, Any]]) -> Mapping[str, Any]:
        if given is not None and not isinstance(given, Mapping):
            raise InvalidDefinitionError(f"table {qualified}: options must be a mapping, got {given!r}")
        given = dict(given or {})
        if ks.virtual:  # a virtual table has a comment and nothing else
            option_types: Mapping[str, CqlType] = {"comment": NATIVE_TYPES["text"]}
            merged: Dict[str, Any] = {"comment": ""}
        else:
            option_types = self._flavor.option_types
            merged = _fresh(dict(self._flavor.default_options))
        unknown = sorted(set(given) - set(option_types))
        if unknown:
            raise InvalidDefinitionError(
                f"table {qualified}: unknown table options {unknown}; a {self.flavor} table has "
                f"{', '.join(option_types)}"
            )
        for option, value in given.items():
            if value is not None:
                try:
                    option_types[option].serialize(value)
                except LocalProtocolError as exc:
                    raise InvalidDefinitionError(f"table {qualified}: option {option}: {exc}") from None
            merged[option] = _fresh(value)
        return MappingProxyType(merged)

    def _install_system_keyspace(self, spec: _KeyspaceSpec) -> None:
        virtual = spec.replication is None
        ks = KeyspaceDef(
            name=spec.name,
            replication=MappingProxyType({}) if virtual else _replication(spec.name, spec.replication),
            durable_writes=True,
            virtual=virtual,
            system=True,
        )
        self._keyspaces[spec.name] = ks
        # The definitions are the same for every schema of a flavor: built
        # (parsed and validated) once, then given to each schema with rows,
        # and derivations, of its own. A node starts in well under a millisecond.
        key = (self._flavor.name, spec.name)
        built = _SYSTEM_TABLES.get(key)
        if built is None:
            built = []
            for table in spec.tables:
                columns = dict(_split_columns(table.columns))
                options = {"comment": table.comment} if virtual else {**spec.table_options, "comment": table.comment}
                built.append(self._build_table(
                    ks, table.name, columns, table.partition_key, table.clustering, (), options, None
                ))
            _SYSTEM_TABLES[key] = built
        for template in built:
            derive = None
            if (ks.name, template.name) in _DERIVED:
                derive = getattr(self, _DERIVED[(ks.name, template.name)])
            ks._tables[template.name] = dataclasses.replace(template, _stored_rows=[], _derive=derive)

    # ---- derived rows (partial dicts; TableDef.rows completes them) ------

    def _schema_keyspaces(self, virtual: bool) -> List[KeyspaceDef]:
        return [ks for ks in self._keyspaces.values() if ks.virtual == virtual]

    @staticmethod
    def _sorted_tables(ks: KeyspaceDef) -> List[TableDef]:
        return sorted(ks._tables.values(), key=lambda t: _name_key(t.name))

    def _derive_nothing(self) -> List[Row]:
        return []

    def _derive_keyspaces(self) -> List[Row]:
        with self._lock:
            return [
                {"keyspace_name": ks.name, "durable_writes": ks.durable_writes, "replication": dict(ks.replication)}
                for ks in self._schema_keyspaces(virtual=False)
            ]

    def _derive_tables(self) -> List[Row]:
        with self._lock:
            return [
                {
                    "keyspace_name": ks.name,
                    "table_name": table.name,
                    **_fresh(dict(table.options)),
                    "flags": table.flags,
                    "id": table.id,
                }
                for ks in self._schema_keyspaces(virtual=False)
                for table in self._sorted_tables(ks)
            ]

    def _column_rows(self, virtual: bool) -> List[Row]:
        with self._lock:
            return [
                {
                    "keyspace_name": ks.name,
                    "table_name": table.name,
                    "column_name": column.name,
                    "clustering_order": column.clustering_order,
                    "column_name_bytes": column.name.encode("utf-8"),
                    "kind": column.kind.value,
                    "position": column.position,
                    "type": column.type_text,
                }
                for ks in self._schema_keyspaces(virtual)
                for table in self._sorted_tables(ks)
                for column in sorted(table.columns, key=lambda c: _name_key(c.name))
            ]

    def _derive_columns(self) -> List[Row]:
        return self._column_rows(virtual=False)

    def _derive_types(self) -> List[Row]:
        with self._lock:
            return [
                {
                    "keyspace_name": ks.name,
                    "type_name": user_type.name,
                    "field_names": [n for n, _ in user_type.fields],
                    "field_types": [cql_type_text(t) for _, t in user_type.fields],
                }
                for ks in self._schema_keyspaces(virtual=False)
                for user_type in sorted(ks._user_types.values(), key=lambda t: _name_key(t.name))
            ]

    def _derive_virtual_keyspaces(self) -> List[Row]:
        with self._lock:
            return [{"keyspace_name": ks.name} for ks in self._schema_keyspaces(virtual=True)]

    def _derive_virtual_tables(self) -> List[Row]:
        with self._lock:
            return [
                {"keyspace_name": ks.name, "table_name": table.name, "comment": table.options.get("comment")}
                for ks in self._schema_keyspaces(virtual=True)
                for table in self._sorted_tables(ks)
            ]

    def _derive_virtual_columns(self) -> List[Row]:
        return self._column_rows(virtual=True)
