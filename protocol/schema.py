"""Turning message dataclasses into wire dictionaries and back, with strict validation.

Each message class is compiled once, at import, into a list of field converters derived from
its type hints. Decoding is then a loop of ``isinstance`` checks: no reflection per message,
which matters on the hot path (every chat message is decoded once by the server).

Supported field types: ``str`` (optionally ``Annotated`` with a :class:`Limit`), ``int`` (not
``bool``), ``bool``, ``X | None``, ``tuple[T, ...]`` (a list on the wire), ``dict[str, int]``,
:data:`JsonValue` (any JSON value within size bounds: a question, a form answer, a summary)
and nested dataclasses (an object on the wire). ``None`` values are left out on the wire, and a
field with a default may be missing.

Every string that is decoded (a field, an item, a JSON value or key, at any depth) loses its
bidirectional-text control characters (:data:`BIDI_CONTROLS`) before its length is checked:
they can make a text read otherwise than it is written (a right-to-left override turns a
phone number or a dose round), and no chat needs them. A text that was nothing else is then
empty, and refused as too short where text is required.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from .errors import ErrorCode, ProtocolError

__all__ = [
    "BIDI_CONTROLS",
    "JsonValue",
    "Limit",
    "Schema",
    "compile_schema",
    "without_bidi_controls",
]

T = TypeVar("T")
Convert = Callable[[Any, str], Any]


# The embeddings and overrides (U+202A-U+202E), the isolates (U+2066-U+2069) and the marks
# (U+200E, U+200F and the Arabic letter mark U+061C).
BIDI_CONTROLS = frozenset(
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
)
_BIDI = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def without_bidi_controls(text: str) -> str:
    """``text`` without bidirectional-text control characters."""
    return text if text.isascii() else _BIDI.sub("", text)


@dataclass(frozen=True, slots=True)
class Limit:
    """Length bounds of a string field, and the error code for one that is too long."""

    max_len: int
    min_len: int = 0
    too_long: ErrorCode = ErrorCode.INVALID_FIELD


class _Json:
    """Marker: the field holds a JSON value (see :data:`JsonValue`)."""


# Any JSON value: null, bool, int, float, str, list or object with string keys. Bounded: at
# most 8 levels deep, 2,000 values in all and strings of 4,000 characters.
JsonValue = Annotated[object, _Json]
_JSON_MAX_DEPTH = 8
_JSON_MAX_ITEMS = 2_000
_JSON_MAX_STR = 4_000


def _json(value: Any, path: str) -> Any:
    budget = [_JSON_MAX_ITEMS]

    def check(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > _JSON_MAX_DEPTH:
            raise _invalid(
                path,
                f"a JSON value of at most {_JSON_MAX_ITEMS} items, {_JSON_MAX_DEPTH} levels deep",
            )
        kind = type(v)
        if v is None or kind is bool or kind is int:
            return v
        if kind is float:
            if v != v or v in (float("inf"), float("-inf")):
                raise _invalid(path, "a finite number")
            return v
        if kind is str:
            v = without_bidi_controls(v)
            if len(v) > _JSON_MAX_STR:
                raise _invalid(path, f"made of strings of at most {_JSON_MAX_STR} characters")
            return v
        if kind is list or kind is tuple:
            return [check(x, depth + 1) for x in v]
        if kind is dict:
            out = {}
            for k, x in v.items():
                if type(k) is not str or len(k) > 100:
                    raise _invalid(path, "an object with short string keys")
                out[without_bidi_controls(k)] = check(x, depth + 1)
            return out
        raise _invalid(path, "a JSON value")

    return check(value, 0)


def _invalid(path: str, expected: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID_FIELD, f"field '{path}' must be {expected}")


def _str_converter(limit: Limit | None) -> Convert:
    if limit is None:

        def convert_str(value: Any, path: str) -> Any:
            if type(value) is not str:
                raise _invalid(path, "a string")
            return without_bidi_controls(value)

        return convert_str

    max_len, min_len, too_long = limit.max_len, limit.min_len, limit.too_long

    def convert_limited(value: Any, path: str) -> Any:
        if type(value) is not str:
            raise _invalid(path, "a string")
        value = without_bidi_controls(value)
        n = len(value)
        if n > max_len:
            raise ProtocolError(too_long, f"field '{path}' is longer than {max_len} characters")
        if n < min_len:
            raise ProtocolError(
                ErrorCode.INVALID_FIELD, f"field '{path}' is shorter than {min_len} characters"
            )
        return value

    return convert_limited


def _int(value: Any, path: str) -> Any:
    if type(value) is not int:
        raise _invalid(path, "an integer")
    if value < 0 or value > 2**53:
        raise _invalid(path, "an integer from 0 to 2**53")
    return value


def _bool(value: Any, path: str) -> Any:
    if type(value) is not bool:
        raise _invalid(path, "true or false")
    return value


def _dict_str_int(value: Any, path: str) -> Any:
    if type(value) is not dict or len(value) > 1000:
        raise _invalid(path, "an object of at most 1000 integers")
    for key, item in value.items():
        if type(key) is not str or len(key) > 64:
            raise _invalid(path, "an object keyed by ids")
        _int(item, f"{path}.{key}")
    return dict(value)


class Schema:
    """The compiled wire form of one dataclass."""

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        hints = get_type_hints(cls, include_extras=True)
        self.fields: list[tuple[str, bool, Convert, Callable[[Any], Any]]] = []
        for f in dataclasses.fields(cls):
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            convert, dump = _compile(hints[f.name])
            self.fields.append((f.name, required, convert, dump))
        self.names = frozenset(name for name, *_ in self.fields)

    def from_wire(self, data: dict[str, Any], prefix: str = "") -> Any:
        kwargs: dict[str, Any] = {}
        for name, required, convert, _ in self.fields:
            value = data.get(name)
            if value is None:
                if required:
                    raise ProtocolError(
                        ErrorCode.MISSING_FIELD, f"field '{prefix}{name}' is required"
                    )
                continue
            kwargs[name] = convert(value, prefix + name)
        return self.cls(**kwargs)

    def to_wire(self, obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, _, _, dump in self.fields:
            value = getattr(obj, name)
            if value is not None:
                out[name] = dump(value)
        return out


def _identity(value: Any) -> Any:
    return value


def _compile(hint: Any) -> tuple[Convert, Callable[[Any], Any]]:
    limit: Limit | None = None
    if get_origin(hint) is Annotated:
        base, *extras = get_args(hint)
        if _Json in extras:
            return _json, _identity
        limit = next((e for e in extras if isinstance(e, Limit)), None)
        hint = base
    origin = get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported union {hint!r}")
        # None is handled by Schema (absent on the wire); only the inner type is converted.
        return _compile(args[0])
    if hint is str:
        return _str_converter(limit), _identity
    if hint is bool:
        return _bool, _identity
    if hint is int:
        return _int, _identity
    if origin is dict and get_args(hint) == (str, int):
        return _dict_str_int, dict
    if origin is tuple:
        item_type, ellipsis = get_args(hint)
        if ellipsis is not Ellipsis:
            raise TypeError(f"only tuple[T, ...] is supported, not {hint!r}")
        item_convert, item_dump = _compile(item_type)

        def convert_list(value: Any, path: str) -> Any:
            if type(value) is not list:
                raise _invalid(path, "a list")
            if len(value) > 10_000:
                raise _invalid(path, "a list of at most 10000 items")
            return tuple(item_convert(v, f"{path}[{i}]") for i, v in enumerate(value))

        def dump_list(value: Any) -> Any:
            return [item_dump(v) for v in value]

        return convert_list, dump_list
    if dataclasses.is_dataclass(hint):
        schema = compile_schema(typing.cast(type[Any], hint))

        def convert_object(value: Any, path: str) -> Any:
            if type(value) is not dict:
                raise _invalid(path, "an object")
            return schema.from_wire(value, path + ".")

        return convert_object, schema.to_wire
    raise TypeError(f"unsupported field type {hint!r}")


_SCHEMAS: dict[type[Any], Schema] = {}


def compile_schema(cls: type[Any]) -> Schema:
    """The (cached) schema of a dataclass."""
    schema = _SCHEMAS.get(cls)
    if schema is None:
        schema = _SCHEMAS[cls] = Schema(cls)
    return schema
