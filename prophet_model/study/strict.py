"""Strict, frozen records validated from parsed YAML: the part of pydantic's behaviour the schema uses,
in plain Python (it imports in a millisecond; pydantic and its classes took 0.2 s of every command).

A `Record` subclass declares its fields as annotations, with an optional default or `Field(...)` bound:

    class HybridSplit(Record):
        ep: int = Field(gt=0)

`HybridSplit.model_validate({"ep": 2})` returns a frozen instance or raises `ValidationError`, whose
`errors()` lists each problem as pydantic does (`type`, `loc`, `msg`, `input`), so that
`config._format_validation_error` words it for the user. The rules are strict:
- no unknown keys; every key a string;
- `int`: a whole number given as one (not true, 2.0 or "2"); `float`: a finite int or float (not true);
  `str`, `bool`: themselves only; a `Literal`: one of its values, of the same type (not true for 1);
- `list[X]`, `dict[str, X]`, `X | Y` (each member tried in turn), `X | None`, and nested records;
- bounds `gt`, `ge`, `lt`, `le` on numbers and `min_length` on lists;
- `@field_validator(name)` (a classmethod, after the field's type check) and `@model_validator(mode="after")`
  (after all fields are valid), each raising ValueError with the message the user reads.
"""

from __future__ import annotations

import math
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

_MISSING: Any = object()


class FieldInfo:
    """A field's default (absent: the field is required) and bounds; its type is the class's annotation."""

    __slots__ = ("default", "ge", "gt", "le", "lt", "min_length")

    def __init__(
        self,
        default: Any = _MISSING,
        *,
        gt: float | None = None,
        ge: float | None = None,
        lt: float | None = None,
        le: float | None = None,
        min_length: int | None = None,
    ) -> None:
        self.default, self.gt, self.ge, self.lt, self.le, self.min_length = default, gt, ge, lt, le, min_length

    @property
    def required(self) -> bool:
        return self.default is _MISSING

    def __repr__(self) -> str:
        bounds = ", ".join(f"{k}={getattr(self, k)}" for k in self.__slots__[1:] if getattr(self, k) is not None)
        return f"FieldInfo(required={self.required}{', ' if bounds else ''}{bounds})"


def Field(default: Any = _MISSING, **bounds: Any) -> Any:
    """A field's default and bounds: Field(gt=0), Field(default=None, gt=0), Field(min_length=1)."""
    return FieldInfo(default, **bounds)


class ValidationError(ValueError):
    """Every problem found in one input, each a dict with `type`, `loc`, `msg` and `input`."""

    def __init__(self, title: str, errors: list[dict[str, Any]]) -> None:
        self.title, self._errors = title, errors
        lines = [f"{len(errors)} validation error{'s' if len(errors) != 1 else ''} for {title}"]
        for e in errors:
            lines += [".".join(str(p) for p in e["loc"]) or "(top level)", f"  {e['msg']} [type={e['type']}]"]
        super().__init__("\n".join(lines))

    def errors(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self._errors]


class _FieldCheck:
    def __init__(self, names: tuple[str, ...], method: Any) -> None:
        self.names, self.func = names, method.__func__ if isinstance(method, classmethod) else method


class _ModelCheck:
    def __init__(self, func: Callable[[Any], Any]) -> None:
        self.func = func


def field_validator(*names: str) -> Callable[[Any], Any]:
    """Mark a classmethod `check(cls, value) -> value` that runs after the named fields' type checks."""
    return lambda method: _FieldCheck(names, method)


def model_validator(*, mode: Literal["after"]) -> Callable[[Any], Any]:
    """Mark a method `check(self) -> self` that runs once every field is valid."""
    return lambda func: _ModelCheck(func)


def _err(errors: list, kind: str, loc: tuple, msg: str, value: Any) -> Any:
    errors.append({"type": kind, "loc": loc, "msg": msg, "input": value})
    return _MISSING


def _one_of(values: tuple) -> str:
    """'a', 'b' or 'c' (pydantic's wording of a Literal's values)."""
    shown = [repr(v) for v in values]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def _bounded(v: Any, f: FieldInfo, loc: tuple, errors: list) -> Any:
    for bound, kind, ok, words in (
        (f.gt, "greater_than", lambda a, b: a > b, "greater than"),
        (f.ge, "greater_than_equal", lambda a, b: a >= b, "greater than or equal to"),
        (f.lt, "less_than", lambda a, b: a < b, "less than"),
        (f.le, "less_than_equal", lambda a, b: a <= b, "less than or equal to"),
    ):
        if bound is not None and not ok(v, bound):
            return _err(errors, kind, loc, f"Input should be {words} {bound}", v)
    return v


def _resolve(annotation: Any, namespace: dict[str, Any]) -> Any:
    """An annotation as a type: under `from __future__ import annotations` it is the source text, evaluated
    in its module (typing.get_type_hints does the same, more slowly)."""
    return eval(annotation, namespace) if isinstance(annotation, str) else annotation


def _union_tag(t: Any) -> str:
    if typing.get_origin(t) is Literal:
        return "literal[" + ",".join(repr(a) for a in typing.get_args(t)) + "]"
    return getattr(t, "__name__", str(t))


def _check(t: Any, v: Any, loc: tuple, errors: list) -> Any:
    """`v` as a value of type `t`, or _MISSING with the problems appended to `errors`."""
    if t is str:
        return v if isinstance(v, str) else _err(errors, "string_type", loc, "Input should be a valid string", v)
    if t is bool:
        return v if type(v) is bool else _err(errors, "bool_type", loc, "Input should be a valid boolean", v)
    if t is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        return _err(errors, "int_type", loc, "Input should be a valid integer", v)
    if t is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            try:
                x = float(v)
            except OverflowError:
                return _err(errors, "float_type", loc, "Input should be a valid number", v)
            if not math.isfinite(x):
                return _err(errors, "finite_number", loc, "Input should be a finite number", v)
            return x
        return _err(errors, "float_type", loc, "Input should be a valid number", v)
    if isinstance(t, type) and issubclass(t, Record):
        if isinstance(v, t):
            return v
        if not isinstance(v, dict):
            msg = f"Input should be a valid dictionary or instance of {t.__name__}"
            return _err(errors, "model_type", loc, msg, v)
        return t._from_dict(v, loc, errors)
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Literal:
        if any(v == a and type(v) is type(a) for a in args):
            return v
        return _err(errors, "literal_error", loc, f"Input should be {_one_of(args)}", v)
    if origin is list:
        if not isinstance(v, list):
            return _err(errors, "list_type", loc, "Input should be a valid list", v)
        n = len(errors)
        out = [_check(args[0], item, (*loc, i), errors) for i, item in enumerate(v)]
        return out if len(errors) == n else _MISSING
    if origin is dict:
        if not isinstance(v, dict):
            return _err(errors, "dict_type", loc, "Input should be a valid dictionary", v)
        n = len(errors)
        out = {
            _check(args[0], k, (*loc, k, "[key]"), errors): _check(args[1], x, (*loc, k), errors) for k, x in v.items()
        }
        return out if len(errors) == n else _MISSING
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if v is None and len(members) < len(args):
            return None
        if len(members) == 1:
            return _check(members[0], v, loc, errors)
        tried: list[tuple[Any, list]] = []
        for m in members:
            own: list = []
            out = _check(m, v, loc, own)
            if not own:
                return out
            tried.append((m, own))
        for m, own in tried:  # every member failed: each one's problems, tagged with the member (as pydantic)
            for e in own:
                errors.append({**e, "loc": (*loc, _union_tag(m), *e["loc"][len(loc) :])})
        return _MISSING
    raise TypeError(f"strict.Record cannot check a field of type {t!r}")  # a schema mistake, not the user's


class Record:
    """A frozen record whose fields are its annotations (see the module's docstring)."""

    __slots__ = ("__dict__", "_fields_set")  # the field values, and which of them the input gave

    model_fields: typing.ClassVar[dict[str, FieldInfo]] = {}
    _field_checks: typing.ClassVar[dict[str, list[Callable]]] = {}
    _model_checks: typing.ClassVar[list[Callable]] = []
    _model_check_map: typing.ClassVar[dict[str, Callable]] = {}
    _types: typing.ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The class's fields and checks: its parent's (single inheritance), then its own, in order."""
        super().__init_subclass__(**kwargs)
        parent = next((b for b in cls.__bases__ if issubclass(b, Record)), Record)
        fields = dict(parent.model_fields)
        field_checks = {name: list(checks) for name, checks in parent._field_checks.items()}
        model_checks = dict(parent._model_check_map)  # by name: a method of the subclass replaces its parent's
        own = vars(cls)
        for name in own.get("__annotations__", {}):
            if name.startswith("_") or name in ("model_fields", "model_config"):
                continue
            given = own.get(name, _MISSING)
            fields[name] = given if isinstance(given, FieldInfo) else FieldInfo(given)
            if isinstance(given, FieldInfo):  # the class attribute is the default (absent: required)
                delattr(cls, name)
                if not given.required:
                    setattr(cls, name, given.default)
        for attr in list(own.values()):
            if isinstance(attr, _FieldCheck):
                for name in attr.names:
                    field_checks.setdefault(name, []).append(attr.func)
            elif isinstance(attr, _ModelCheck):
                model_checks[attr.func.__name__] = attr.func
        cls.model_fields, cls._field_checks, cls._model_check_map, cls._types = fields, field_checks, model_checks, None
        cls._model_checks = list(model_checks.values())

    @classmethod
    def _field_types(cls) -> dict[str, Any]:
        """The fields' annotations as types (resolved once, on first use: they may name later classes)."""
        if cls._types is None:
            written = {}  # name -> (annotation as written, the namespace of the class that wrote it)
            for base in reversed(cls.__mro__[:-1]):
                for name, text in vars(base).get("__annotations__", {}).items():
                    written[name] = (text, vars(sys.modules[base.__module__]))
            cls._types = {name: _resolve(*written[name]) for name in cls.model_fields}
        return cls._types

    @classmethod
    def _from_dict(cls, data: dict, loc: tuple, errors: list) -> Any:
        n, values, given = len(errors), {}, set()
        for name, info in cls.model_fields.items():
            if name not in data:
                if info.required:
                    _err(errors, "missing", (*loc, name), "Field required", data)
                else:
                    values[name] = info.default
                continue
            given.add(name)
            where, m = (*loc, name), len(errors)
            v = _check(cls._field_types()[name], data[name], where, errors)
            if len(errors) == m and isinstance(v, (int, float)) and not isinstance(v, bool):
                v = _bounded(v, info, where, errors)
            if len(errors) == m and info.min_length is not None and len(v) < info.min_length:
                s = "" if info.min_length == 1 else "s"
                _err(
                    errors,
                    "too_short",
                    where,
                    f"List should have at least {info.min_length} item{s} after validation, not {len(v)}",
                    v,
                )
            for check in cls._field_checks.get(name, ()) if len(errors) == m else ():
                try:
                    v = check(cls, v)
                except ValueError as exc:
                    _err(errors, "value_error", where, f"Value error, {exc}", data[name])
                    break
            values[name] = v
        for key in data:
            if not isinstance(key, str):
                _err(errors, "invalid_key", (*loc, key), "Keys should be strings", key)
            elif key not in cls.model_fields:
                _err(errors, "extra_forbidden", (*loc, key), "Extra inputs are not permitted", data[key])
        if len(errors) > n:
            return _MISSING
        obj = object.__new__(cls)
        object.__setattr__(obj, "__dict__", values)
        object.__setattr__(obj, "_fields_set", frozenset(given))
        for check in cls._model_checks:
            try:
                check(obj)
            except ValueError as exc:
                return _err(errors, "value_error", loc, f"Value error, {exc}", data)
        return obj

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        """A valid instance from a parsed mapping, or ValidationError listing every problem."""
        errors: list = []
        obj = _check(cls, data, (), errors)
        if errors:
            raise ValidationError(cls.__name__, errors)
        return obj

    def __init__(self, **data: Any) -> None:
        valid = type(self).model_validate(data)
        object.__setattr__(self, "__dict__", valid.__dict__)
        object.__setattr__(self, "_fields_set", valid._fields_set)

    @property
    def model_fields_set(self) -> frozenset[str]:
        """The fields the input gave (the others took their defaults)."""
        return self._fields_set

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be set")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: {name} cannot be deleted")

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter([(name, self.__dict__[name]) for name in type(self).model_fields])

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *(_hashable(v) for _, v in self)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self)})"

    def __reduce__(self) -> tuple:
        return (_rebuild, (type(self), dict(self.__dict__), self._fields_set))

    def model_dump(self, *, mode: Literal["python", "json"] = "python", exclude: set[str] | None = None) -> dict:
        """The fields as plain data, nested records as dicts (mode json: the same, as JSON writes them)."""
        return {k: _dump(v) for k, v in self if not exclude or k not in exclude}


def _rebuild(cls: type, values: dict, given: frozenset) -> Any:
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "_fields_set", given)
    return obj


def _dump(v: Any) -> Any:
    if isinstance(v, Record):
        return v.model_dump()
    if isinstance(v, dict):
        return {k: _dump(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_dump(x) for x in v]
    return v


def _hashable(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple((k, _hashable(x)) for k, x in v.items())
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v
