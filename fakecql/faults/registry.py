# Every fault by name: the class, its verb, its command-line name, and the
# `NAME[:key=value,...]` text `serve --fault` takes.
#
# Strategy: nothing here names a fault. The faults are VERBS (verb -> class,
# filled by each family module); a fault's command-line name is its verb in
# kebab case, its arguments are its verb's named parameters plus, when the
# verb takes **triggers, the dataclass fields of its class (the triggers only
# those its TRIGGERS allow). Each argument's type comes from its annotation,
# so a text value becomes an int, a float, a bool, a tuple, ... by that type,
# and a new fault appears here with no change to this module. The Fault is
# built by calling the verb on a FaultPlan of its own, so the command line
# and `server.faults.<verb>(...)` build the same thing.
#
# Rules: every error is one FaultSpecError (a ValueError) whose text names
# the fault, the argument, the value and what was expected; a fault's own
# ValueError/TypeError text passes through after the fault's name.
# Arguments are separated by ",", a tuple's items by ";" (quote the whole
# --fault in a shell); a backslash escapes either in a value ("\,").
from __future__ import annotations

import dataclasses
import difflib
import enum
import inspect
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple, Type

from .base import REQUEST_OPCODES, Fault

__all__ = [
    "Argument",
    "FaultSpecError",
    "arguments",
    "cli_name",
    "describe",
    "fault_names",
    "fault_spec",
    "parse_fault",
    "what_it_models",
]

ITEM_SEPARATOR = ";"  # between a tuple's items (as AnswerError's fields take theirs)
_TRUE = ("true", "yes", "1")
_FALSE = ("false", "no", "0")
_NONE = "none"
REGEX_ARGUMENT = "query_regex"  # query=TEXT is a substring; query-regex=REGEX a regular expression


class FaultSpecError(ValueError):
    """A `--fault` text that names no fault, an argument the fault does not
    take, or a value that does not fit; the text says which and what fits."""


def cli_name(cls: Type[object]) -> str:
    """A fault class's verb in kebab case (KeyUpdate -> key-update)."""
    for verb, fault_class in _verbs().items():
        if fault_class is cls:
            return _kebab(verb)
    return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()


def _verbs() -> Dict[str, Type[Fault]]:
    from . import VERBS

    return VERBS


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def _snake(name: str) -> str:
    return name.strip().lower().replace("-", "_")


# -- types: what a value's text becomes ----------------------------------------------

_NoneType = type(None)


def _is_union(kind: Any) -> bool:
    return typing.get_origin(kind) is typing.Union


def _members(kind: Any) -> Tuple[Any, ...]:
    """The types a value of `kind` may have (a Union's members; NoneType included)."""
    return typing.get_args(kind) if _is_union(kind) else (kind,)


def _is_tuple(kind: Any) -> bool:
    return typing.get_origin(kind) in (tuple, Tuple)


def _tuple_item(kind: Any) -> Any:
    args = typing.get_args(kind)
    return args[0] if args else str


def _is_literal(kind: Any) -> bool:
    return typing.get_origin(kind) is typing.Literal


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, enum.Enum)


def _scalar_ok(kind: Any) -> bool:
    return kind in (bool, int, float, str) or _is_literal(kind) or _is_enum(kind)


def _settable(kind: Any) -> bool:
    """Whether a value of `kind` can be written on the command line."""
    for member in _members(kind):
        if member is _NoneType:
            continue
        if _scalar_ok(member) or (_is_tuple(member) and _scalar_ok(_tuple_item(member))):
            return True
    return False


def _scalar_name(kind: Any) -> str:
    if kind is bool:
        return "true|false"
    if kind is int:
        return "INT"
    if kind is float:
        return "NUMBER"
    if _is_literal(kind):
        return "|".join(str(v) for v in typing.get_args(kind))
    if _is_enum(kind):
        return "|".join(m.name.lower() for m in kind)
    return "TEXT"


def type_name(kind: Any) -> str:
    """How `--fault list` shows a type: INT, NUMBER, true|false, TEXT, INT+INT+..., or none."""
    names = []
    for member in _members(kind):
        if member is _NoneType:
            continue
        if _is_tuple(member) and _scalar_ok(_tuple_item(member)):
            item = _scalar_name(_tuple_item(member))
            names.append(f"{item}[;{item}...]")
        elif _scalar_ok(member):
            names.append(_scalar_name(member))
    if _NoneType in _members(kind):
        names.append(_NONE)
    # str beside a tuple of str says the same thing twice
    return " or ".join(n for i, n in enumerate(names) if n not in names[:i] and not
                       (n == "TEXT" and "TEXT[;TEXT...]" in names))


def _expected(kind: Any) -> str:
    """What a value of `kind` must be, for error texts."""
    parts = []
    for member in _members(kind):
        if member is _NoneType:
            parts.append(f"{_NONE!r}")
        elif member is bool:
            parts.append("true or false (yes/no, 1/0)")
        elif member is int:
            parts.append("an integer")
        elif member is float:
            parts.append("a number")
        elif member is str:
            parts.append("text")
        elif _is_literal(member):
            parts.append("one of " + ", ".join(repr(v) for v in typing.get_args(member)))
        elif _is_enum(member):
            parts.append("one of " + ", ".join(repr(m.name.lower()) for m in member))
        elif _is_tuple(member) and _scalar_ok(_tuple_item(member)):
            parts.append(f"{_expected(_tuple_item(member))}, several separated by ';'")
    return " or ".join(dict.fromkeys(parts))


class _BadValue(Exception):
    pass


def _convert_scalar(text: str, kind: Any) -> Any:
    word = text.strip()
    if kind is bool:
        if word.lower() in _TRUE:
            return True
        if word.lower() in _FALSE:
            return False
        raise _BadValue
    if kind is int:
        try:
            return int(word)
        except ValueError:
            raise _BadValue from None
    if kind is float:
        try:
            return float(word)
        except ValueError:
            raise _BadValue from None
    if _is_literal(kind):
        for value in typing.get_args(kind):
            if str(value) == word or (isinstance(value, str) and value.lower() == word.lower()):
                return value
        raise _BadValue
    if _is_enum(kind):
        for member in kind:
            if word.lower() in (member.name.lower(), str(member.value).lower()):
                return member
        raise _BadValue
    return text  # str: as given (spaces kept: a query's text is matched spacing ignored anyway)


def convert(text: str, kind: Any) -> Any:
    """`text` as a value of `kind` (_BadValue if it is none of its members)."""
    members = [m for m in _members(kind) if m is _NoneType or _scalar_ok(m) or
               (_is_tuple(m) and _scalar_ok(_tuple_item(m)))]
    if _NoneType in members and text.strip().lower() == _NONE:
        return None
    tuples = [m for m in members if _is_tuple(m)]
    scalars = [m for m in members if m is not _NoneType and not _is_tuple(m)]
    items = _split(text, (ITEM_SEPARATOR,))
    if tuples and (len(items) > 1 or not scalars):
        return tuple(_convert_scalar(_unescape(item), _tuple_item(tuples[0])) for item in items)
    # the narrowest type first: "1" is an int where an int may be, a number where not
    for member in sorted(scalars, key=lambda m: {bool: 0, int: 1, float: 2, str: 9}.get(m, 5)):
        try:
            return _convert_scalar(_unescape(text), member)
        except _BadValue:
            continue
    raise _BadValue


# -- arguments -------------------------------------------------------------------------

_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class Argument:
    """One argument a fault takes on the command line."""

    name: str  # the Python name (snake case); on the command line in kebab case
    kind: Any  # its type (a typing annotation)
    default: Any = _REQUIRED  # inspect.Parameter.empty when it must be given
    trigger: bool = False  # one of the triggers every fault shares

    @property
    def cli(self) -> str:
        return _kebab(self.name)

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def shown_type(self) -> str:
        if self.name == "opcode":
            return "OPCODE[;OPCODE...]"
        if self.name == "connections":
            return "N[;N...]"
        if self.name == REGEX_ARGUMENT:
            return "REGEX"
        if self.name == "query":
            return "TEXT"
        return type_name(self.kind)

    def shown_default(self) -> str:
        if self.required:
            return "required"
        if self.default is None:
            return {"connections": "every connection", "opcode": "any", "query": "any",
                    REGEX_ARGUMENT: "any"}.get(self.name, _NONE)
        return format_value(self.default)


_TRIGGER_HELP = {
    "connections": "the connection numbers it applies to, from 1",
    "on_request": "the Nth request of a connection, from 1",
    "opcode": "requests of these opcodes: " + ", ".join(REQUEST_OPCODES),
    "query": "requests whose text contains this (case and spacing ignored; EXECUTE: its prepared text)",
    REGEX_ARGUMENT: "requests whose text matches this regular expression (re.search)",
    "probability": "the chance it acts, 0 < p <= 1, drawn from `seed`",
    "seed": "seeds the probability draws (and any randomness of the fault)",
}
_TRIGGERS = ("connections", "on_request", "opcode", "query", "probability", "seed")
_TRIGGER_ORDER = ("connections", "on_request", "opcode", "query", REGEX_ARGUMENT, "probability", "seed")


def _annotation(owner: Any, name: str, raw: Any) -> Any:
    """A resolved annotation (those written as text under `from __future__ import annotations`)."""
    if not isinstance(raw, str):
        return raw
    module = sys.modules.get(getattr(owner, "__module__", ""), None)
    namespace: Dict[str, Any] = dict(vars(typing))
    namespace.update(vars(module) if module is not None else {})
    try:
        return eval(raw, namespace)  # noqa: S307 - the package's own annotations
    except Exception:
        pass
    try:  # "int | None" on a Python that has no X | Y at run time
        parts = tuple(eval(p.strip(), namespace) for p in raw.split("|"))  # noqa: S307
        return typing.Union[parts]  # type: ignore[return-value]
    except Exception:
        return Any


def _field_types(cls: Type[Fault]) -> Dict[str, Any]:
    types: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, raw in vars(klass).get("__annotations__", {}).items():
            types[name] = (klass, raw)
    return {name: _annotation(klass, name, raw) for name, (klass, raw) in types.items()}


def _verb_function(verb: str) -> Callable[..., Fault]:
    from .plan import FaultPlan

    return getattr(FaultPlan, verb)  # type: ignore[no-any-return]


def takes_more(cls: Type[Fault]) -> bool:
    """Whether the class's own __init__ takes **keywords beyond its fields
    (AnswerError: the error's fields): the command line passes those on as
    text, for the class to convert and to refuse by name."""
    init = cls.__init__
    try:
        parameters = inspect.signature(init).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def arguments(name: str) -> List[Argument]:
    """The arguments the fault `name` (kebab or snake case) takes: its own, then its triggers."""
    verb, cls = _lookup(name)
    return _arguments(verb, cls)


def _arguments(verb: str, cls: Type[Fault]) -> List[Argument]:
    function = _verb_function(verb)
    signature = inspect.signature(function)
    own: Dict[str, Argument] = {}
    takes_more = False
    field_types = _field_types(cls)
    for parameter in list(signature.parameters.values())[1:]:  # after self
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            takes_more = True
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        kind = field_types.get(parameter.name, Any)  # the field's type: the verb passes it on
        if kind is Any or not _settable(kind):
            kind = _annotation(function, parameter.name, parameter.annotation)
        if kind is Any or kind is _REQUIRED:
            kind = field_types.get(parameter.name, str)
        own[parameter.name] = Argument(parameter.name, kind, parameter.default, parameter.name in _TRIGGERS)
    if takes_more:
        for field in dataclasses.fields(cls):
            if field.name in own or not field.init:
                continue
            if field.name in _TRIGGERS and field.name != "seed" and field.name not in cls.TRIGGERS:
                continue
            default = field.default if field.default is not dataclasses.MISSING else _REQUIRED
            own[field.name] = Argument(field.name, field_types.get(field.name, Any), default, field.name in _TRIGGERS)
    if "query" in own:
        own[REGEX_ARGUMENT] = Argument(REGEX_ARGUMENT, str, None, trigger=True)
    settable = [a for a in own.values() if a.name == REGEX_ARGUMENT or _settable(a.kind)
                or a.name in ("connections", "opcode", "query")]
    return sorted(settable, key=lambda a: (a.trigger, _TRIGGER_ORDER.index(a.name) if a.trigger else 0))


def _trigger_kind(argument: Argument) -> Any:
    """The type a trigger's text becomes (its field also takes predicates and regexes)."""
    if argument.name == "connections":
        return Tuple[int, ...]
    if argument.name == "opcode":
        return Tuple[str, ...]
    if argument.name in ("query", REGEX_ARGUMENT):
        return str
    return argument.kind


# -- names -------------------------------------------------------------------------------

def fault_names() -> List[str]:
    """Every fault's command-line name, in the order of VERBS."""
    return [_kebab(verb) for verb in _verbs()]


def _lookup(name: str) -> Tuple[str, Type[Fault]]:
    verbs = _verbs()
    verb = _snake(name)
    if verb in verbs:
        return verb, verbs[verb]
    names = fault_names()
    close = difflib.get_close_matches(_kebab(verb), names, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else ""
    raise FaultSpecError(f"{name}: no such fault{hint} (--fault list shows them all)")


def what_it_models(cls: Type[Fault]) -> str:
    """The first sentence of the class docstring: the real-world condition the fault models."""
    text = " ".join((inspect.getdoc(cls) or "").split())
    match = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)\.(?=\s+[A-Z(`\"]|$)", text)
    return text[: match.end()] if match else text


# -- parsing -----------------------------------------------------------------------------

_ESCAPED = ",;"  # the separators a backslash escapes; any other backslash stays (a regex's \. or \b)


def _split(text: str, separators: Sequence[str]) -> List[str]:
    """`text` cut at every separator not escaped by a backslash (the escapes
    are kept, for the next cut)."""
    pieces, current, index = [], "", 0
    while index < len(text):
        char = text[index]
        if char == "\\" and text[index + 1: index + 2] in tuple(_ESCAPED):
            current += text[index: index + 2]
            index += 2
            continue
        if char in separators:
            pieces.append(current)
            current = ""
        else:
            current += char
        index += 1
    pieces.append(current)
    return pieces


def _unescape(text: str) -> str:
    return re.sub(r"\\([,;])", r"\1", text)


def parse_fault(spec: str) -> Fault:
    """The Fault `NAME[:key=value,...]` describes (FaultSpecError naming what is wrong).

    `key-update:on-request=0,every=4`, `reset:opcode=QUERY;EXECUTE`,
    `delay-answer:seconds=2,query=FROM app.users`: keys in kebab or snake
    case; bools true/false/yes/no/1/0; `none` for an optional value; ";"
    between a tuple's items; "\\," for a comma in a value."""
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise FaultSpecError(f"{spec!r}: expected NAME[:key=value,...] (--fault list shows the names)")
    verb, cls = _lookup(name)
    shown = _kebab(verb)
    allowed = {a.name: a for a in _arguments(verb, cls)}
    given: Dict[str, Any] = {}
    for item in _split(rest, (",",)) if rest.strip() else []:
        if not item.strip():
            continue
        key, equals, text = item.partition("=")
        if not equals or not key.strip():
            raise FaultSpecError(f"{shown}: expected key=value, got {_unescape(item)!r} "
                                 f"(it takes {_listing(allowed.values())})")
        argument = allowed.get(_snake(key))
        if argument is None and takes_more(cls) and _snake(key).isidentifier():
            if _snake(key) in given:
                raise FaultSpecError(f"{shown}: {_kebab(_snake(key))} is given twice")
            given[_snake(key)] = _unescape(text)  # the class converts it, or names it in its error
            continue
        if argument is None:
            close = difflib.get_close_matches(_kebab(_snake(key)), [a.cli for a in allowed.values()], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise FaultSpecError(f"{shown}: unknown argument {key.strip()!r}{hint}; "
                                 f"it takes {_listing(allowed.values())}")
        if argument.name in given:
            raise FaultSpecError(f"{shown}: {argument.cli} is given twice")
        given[argument.name] = _value(shown, argument, text)
    missing = [a.cli for a in allowed.values() if a.required and a.name not in given]
    if missing:
        raise FaultSpecError(f"{shown}: needs {', '.join(m + '=' + allowed[_snake(m)].shown_type for m in missing)}")
    if REGEX_ARGUMENT in given:
        if "query" in given:
            raise FaultSpecError(f"{shown}: give query (text) or query-regex, not both")
        given["query"] = given.pop(REGEX_ARGUMENT)
    plan = _plan()
    try:
        built = getattr(plan, verb)(**given)
    except (ValueError, TypeError) as exc:
        raise FaultSpecError(f"{shown}: {exc}") from None
    return built if isinstance(built, Fault) else list(plan)[-1]


def _plan() -> Any:
    from .plan import FaultPlan

    return FaultPlan()


def _value(shown: str, argument: Argument, text: str) -> Any:
    if argument.name == REGEX_ARGUMENT:
        try:
            return re.compile(_unescape(text))
        except re.error as exc:
            raise FaultSpecError(f"{shown}: query-regex {_unescape(text)!r} is not a regular expression: "
                                 f"{exc}") from None
    kind = _trigger_kind(argument) if argument.trigger else argument.kind
    try:
        return convert(text, kind)
    except _BadValue:
        if argument.name == "opcode":
            expected = "opcodes among " + ", ".join(REQUEST_OPCODES) + ", several separated by ';'"
        elif argument.name == "connections":
            expected = "connection numbers (from 1), several separated by ';'"
        else:
            expected = _expected(kind)
        raise FaultSpecError(f"{shown}: {argument.cli} must be {expected}; got {_unescape(text)!r}") from None


def _listing(args: Any) -> str:
    return ", ".join(a.cli for a in args) or "no arguments"


# -- showing -------------------------------------------------------------------------------

def format_value(value: Any) -> str:
    """A value as `--fault` takes it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return _NONE
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, (tuple, list, frozenset, set)):
        return ITEM_SEPARATOR.join(format_value(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    text = str(value)
    return re.sub(r"([,;])", r"\\\1", text)


def fault_spec(fault: Fault) -> str:
    """`fault` as `--fault` text: its own arguments, and the triggers it was given.

    A predicate (connections or query) cannot be written; it shows as <predicate>."""
    verb = next((v for v, c in _verbs().items() if c is type(fault)), None)
    if verb is None:
        return type(fault).__name__
    parts = []
    defaults = {f.name: f.default for f in dataclasses.fields(fault)}
    for argument in _arguments(verb, type(fault)):
        if argument.name == REGEX_ARGUMENT or not hasattr(fault, argument.name):
            continue
        value = getattr(fault, argument.name)
        if argument.trigger and value == defaults.get(argument.name):
            continue  # a trigger not given
        if value is None and argument.default is None:
            continue
        if argument.name == "query" and hasattr(value, "pattern"):
            parts.append(f"query-regex={format_value(value.pattern)}")
        elif callable(value) and not isinstance(value, (str, enum.Enum)):
            parts.append(f"{argument.cli}=<predicate>")
        else:
            parts.append(f"{argument.cli}={format_value(value)}")
    named = {a.name for a in _arguments(verb, type(fault))}
    for field in dataclasses.fields(fault):  # keyword pairs a class keeps for its **keywords (AnswerError's fields)
        value = getattr(fault, field.name)
        if field.name not in named and field.init and isinstance(value, tuple) and all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
            parts.extend(f"{_kebab(key)}={format_value(item)}" for key, item in value)
    return _kebab(verb) + (":" + ",".join(parts) if parts else "")


def describe() -> str:
    """Every fault: its name, what it models, and its arguments (type, default)."""
    blocks = []
    for verb, cls in _verbs().items():
        lines = [f"{_kebab(verb)}  ({cls.__name__}) {what_it_models(cls)}"]
        args = _arguments(verb, cls)
        width = max((len(a.cli) + 1 + len(a.shown_type) for a in args), default=0)
        for argument in args:
            head = f"{argument.cli}={argument.shown_type}"
            note = f"default {argument.shown_default()}" if not argument.required else "required"
            if argument.trigger:
                note += f"; {_TRIGGER_HELP.get(argument.name, 'a trigger')}"
            lines.append(f"    {head:<{width}}  {note}")
        if takes_more(cls):
            lines.append(f"    {'KEY=VALUE':<{width}}  other arguments go to {cls.__name__} as text "
                         f"(its docstring says which)")
        blocks.append("\n".join(lines))
    usage = ("--fault NAME[:key=value,...] (quote it in a shell); keys in kebab case; bools true/false; "
             "';' between a list's items; '\\,' for a comma in a value.")
    return "\n\n".join([usage] + blocks)
