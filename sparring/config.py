"""Typed configuration: dataclasses are the schema, :func:`build` makes them from plain values.

Hydra composes YAML files and overrides into nested dicts; :func:`build` turns such a dict
into the frozen dataclass a component declares, checking on the way:

- every key is a field (``learner.lrr`` → "unknown field 'lrr'; did you mean 'lr'?");
- every value has the field's type (``learner.lr='abc'`` → "must be a number"), with the
  conversions YAML needs (an int where a float goes, a list where a tuple goes);
- nested dataclass fields are built from their dicts the same way.

Range checks stay in each dataclass's ``__post_init__``, which calls :func:`check` with the
problems it found. Every failure is a :class:`~sparring.errors.ConfigError` that names the
value by its dotted path.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, Union

from sparring.errors import ConfigError, did_you_mean

T = TypeVar("T")


def check(problems: Sequence[str]) -> None:
    """Raise one :class:`ConfigError` listing ``problems`` (a no-op when there are none)."""
    if problems:
        raise ConfigError("; ".join(problems))


def at_least(config: Any, minimum: float, *names: str, where: str = "") -> list[str]:
    """The problems of fields ``names`` of ``config`` that are below ``minimum`` (``None``, an
    unset optional, passes; NaN and a bool do not), for :func:`check`."""
    return [f"{_join(where, name)}={value!r} must be >= {minimum}" for name in names
            if (value := getattr(config, name)) is not None and (isinstance(value, bool) or not value >= minimum)]


def above(config: Any, bound: float, *names: str, where: str = "") -> list[str]:
    """The problems of fields ``names`` that are not greater than ``bound`` (``None`` passes;
    NaN and a bool do not)."""
    return [f"{_join(where, name)}={value!r} must be > {bound}" for name in names
            if (value := getattr(config, name)) is not None and (isinstance(value, bool) or not value > bound)]


class Config:
    """Base of the config dataclasses: :meth:`from_dict` builds one from plain values with every
    key and value checked (:func:`build`), :meth:`to_dict` gives plain values back."""

    where: typing.ClassVar[str] = ""
    """The config's dotted path in a whole recipe (``pool``, ``view``), for messages."""

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any] | None) -> T:
        return build(cls, values, cls.where)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def build(kind: type[T], values: Mapping[str, Any] | T | None, where: str) -> T:
    """``kind(**values)`` with every key and value checked against ``kind``'s fields.
    ``where`` is the dotted path of ``values`` in the whole config (for messages)."""
    if isinstance(values, kind):
        return values
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}={values!r} must be a mapping of {kind.__name__} fields")
    fields, hints = _schema(kind)
    unknown = [k for k in values if k not in fields]
    if unknown:
        key = unknown[0]
        raise ConfigError(f"{_join(where, key)}: unknown field.{did_you_mean(key, fields)} "
                          f"Known fields of {where or kind.__name__}: {', '.join(sorted(fields))}")
    converted = {name: coerce(value, hints[name], _join(where, name)) for name, value in values.items()}
    missing = [name for name, f in fields.items() if name not in converted
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where or kind.__name__} needs {', '.join(_join(where, m) for m in missing)}")
    return kind(**converted)


@functools.cache
def _schema(kind: type) -> tuple[dict[str, dataclasses.Field], dict[str, Any]]:
    """A dataclass's init fields and their resolved types (resolving the annotations is slow,
    and games build their configs by the thousand)."""
    return {f.name: f for f in dataclasses.fields(kind) if f.init}, typing.get_type_hints(kind)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint``, or a :class:`ConfigError` naming ``where``."""
    if hint is Any or hint is object:
        return value
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        candidates = [o for o in options if o is not type(None)]
        if len(candidates) == 1:  # Optional[X]: X's own message says the most
            return coerce(value, candidates[0], where)
        for option in candidates:
            try:
                return coerce(value, option, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}={value!r} must be {_describe(hint)}")
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        raise ConfigError(f"{where}={value!r} must be one of {list(choices)}.{did_you_mean(value, map(str, choices))}")
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (tuple, Sequence, list) or hint in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{where}={value!r} must be a list")
        args = typing.get_args(hint)
        item = args[0] if args and (len(args) == 1 or args[-1] is Ellipsis) else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return list(items) if origin is list or hint is list else tuple(items)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}={value!r} must be a mapping")
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(v, item, f"{where}.{k}") for k, v in value.items()}
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}={value!r} must be true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}={value!r} must be an integer")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}={value!r} must be a number")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}={value!r} must be a string")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}={value!r} must be a {hint.__name__}")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain JSON-ready values (tuples become lists)."""
    return _plain(dataclasses.asdict(config))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _describe(hint: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    options = typing.get_args(hint) if typing.get_origin(hint) in (Union, types.UnionType) else (hint,)
    return " or ".join(names.get(o, getattr(o, "__name__", str(o))) for o in options)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
