"""Dataclasses ↔ TOML tables, generically: a key is the field's name, a value is checked against the field's
annotation and every mistake names its full path. ``to_table`` writes only what differs from the defaults,
so a table read back with ``from_table`` gives an equal object."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SpecError

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def convert(value: Any, tp: Any, where: str) -> Any:
    """Check and convert one TOML value to the annotated type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return convert(value, inner[0], where)
    if tp is Path:
        return Path(convert(value, str, where))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, typing.cast(type, tp)):  # already built (a structural form read by the caller)
            return value
        if hasattr(tp, "from_toml"):
            return tp.from_toml(value, where)
        if not isinstance(value, Mapping):
            raise SpecError(where, value, f"a table of {typing.cast(type, tp).__name__} fields")
        return from_table(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise SpecError(where, value, "a list")
        return tuple(convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict, typing.Mapping):
        if not isinstance(value, Mapping):
            raise SpecError(where, value, "a table")
        key_type, value_type = args
        out = {}
        for k, v in value.items():
            if key_type is int and not str(k).isdigit():
                raise SpecError(f"{where}.{k}", k, "an integer key")
            out[key_type(k)] = convert(v, value_type, f"{where}.{k}")
        return out
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and (type(value) is not tp):
        raise SpecError(where, value, _TYPE_NAMES[tp])
    return value


def from_table(cls: Any, table: Mapping[str, Any], where: str, known: list[str] | None = None) -> Any:
    """Build dataclass ``cls`` from a TOML table; unknown keys and wrong types name their path."""
    hints = typing.get_type_hints(cls)
    known = known or [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in table.items():
        if key not in known:
            raise SpecError(f"{where}.{key}", value, f"one of the keys {', '.join(known)}")
        kwargs[key] = convert(value, hints[key], f"{where}.{key}")
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise exc.within(where) from None
    except TypeError as exc:
        raise SpecError(where, dict(table), f"the required keys of {cls.__name__} ({exc})") from None


def to_value(value: Any, *, full: bool = False) -> Any:
    """The TOML form of a field value: dataclasses as tables of their non-default fields (``full``: of every
    field — list items, so that ``instance_group = [{ kind = "KIND_GPU", count = 1 }]`` reads as it means)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_toml() if hasattr(value, "to_toml") else to_table(value, keep_defaults=full)
    if isinstance(value, Mapping):
        return {str(k): to_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_value(v, full=True) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def to_table(obj: Any, skip: tuple[str, ...] = (), keep_defaults: bool = False) -> dict[str, Any]:
    """The fields of dataclass ``obj`` that differ from their defaults (or all), as TOML values (None is left out)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in skip or value is None or not f.init:
            continue
        if not keep_defaults and f.default is not dataclasses.MISSING and value == f.default:
            continue
        if not keep_defaults and f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = to_value(value)
    return out
