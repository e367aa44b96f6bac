"""Fill typed, frozen config dataclasses from plain dicts (parsed YAML), and turn them back into dicts.

The filler is strict: an unknown key, a missing required key, a value of the wrong type or an impossible
value (raised by a dataclass's ``__post_init__`` as :class:`~sportpose.errors.SpecError`) is an error that
names the dotted key. Supported field types: ``bool``, ``int``, ``float`` (an int is accepted), ``str``,
``Literal[...]``, ``X | None``, ``tuple[X, ...]``, fixed ``tuple[X, Y]``, ``dict[str, X]``, nested
dataclasses, and unions of dataclasses told apart by their ``kind: Literal[...]`` field (the model section).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

from sportpose.errors import SpecError


def fill(cls: type, data: Any, key: str = "") -> Any:
    """Build ``cls`` (a type annotation) from ``data``, checking every key and value.

    Args:
        cls: a dataclass type or any supported annotation.
        data: the parsed YAML value.
        key: dotted path of ``data`` within the spec, for error messages.

    Raises:
        SpecError: naming the key.
    """
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if cls is Any:
        return data
    if dataclasses.is_dataclass(cls):
        return _fill_dataclass(cls, data, key)
    if origin in (Union, types.UnionType):
        return _fill_union(args, data, key)
    if origin is Literal:
        if data not in args:
            raise SpecError(key, f"expected one of {list(args)}, got {data!r}")
        return data
    if origin is tuple:
        if not isinstance(data, (list, tuple)):
            raise SpecError(key, f"expected a list, got {_describe(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(fill(args[0], v, f"{key}.{i}") for i, v in enumerate(data))
        if len(data) != len(args):
            raise SpecError(key, f"expected a list of {len(args)} values, got {len(data)}")
        return tuple(fill(a, v, f"{key}.{i}") for i, (a, v) in enumerate(zip(args, data)))
    if origin is dict:
        if not isinstance(data, dict):
            raise SpecError(key, f"expected a mapping, got {_describe(data)}")
        out = {}
        for k, v in data.items():
            if not isinstance(k, str):
                raise SpecError(key, f"keys must be strings, got {k!r}")
            out[k] = fill(args[1], v, f"{key}.{k}" if key else k)
        return out
    if cls is bool:
        if not isinstance(data, bool):
            raise SpecError(key, f"expected true or false, got {_describe(data)}")
        return data
    if cls is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise SpecError(key, f"expected an integer, got {_describe(data)}")
        return data
    if cls is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise SpecError(key, f"expected a number, got {_describe(data)}")
        if not math.isfinite(data):  # .nan / .inf in YAML: never a setting (a learning rate, a weight, a size)
            raise SpecError(key, f"expected a finite number, got {data!r}")
        return float(data)
    if cls is str:
        if not isinstance(data, str):
            raise SpecError(key, f"expected a string, got {_describe(data)}")
        return data
    if cls is type(None):
        if data is not None:
            raise SpecError(key, f"expected null, got {_describe(data)}")
        return None
    raise TypeError(f"unsupported spec field type {cls!r} at {key}")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _fill_union(args: tuple, data: Any, key: str) -> Any:
    if data is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if all(dataclasses.is_dataclass(a) for a in options) and len(options) > 1:
        return _fill_tagged(options, data, key)
    errors = []
    for option in options:
        try:
            return fill(option, data, key)
        except SpecError as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise SpecError(key, f"expected {' or '.join(_name(a) for a in options)}, got {_describe(data)}")


def _fill_tagged(options: list[type], data: Any, key: str) -> Any:
    kinds = {_kind_of(o): o for o in options}
    if not isinstance(data, dict):
        raise SpecError(key, f"expected a mapping with a 'kind' of {sorted(kinds)}, got {_describe(data)}")
    kind = data.get("kind")
    if kind not in kinds:
        raise SpecError(f"{key}.kind" if key else "kind", f"expected one of {sorted(kinds)}, got {kind!r}")
    return _fill_dataclass(kinds[kind], data, key)


def _kind_of(cls: type) -> str:
    hints = typing.get_type_hints(cls)
    kind = hints.get("kind")
    if typing.get_origin(kind) is not Literal:
        raise TypeError(f"{cls.__name__} needs a `kind: Literal[...]` field to be part of a tagged union")
    return typing.get_args(kind)[0]


def _name(cls: Any) -> str:
    return getattr(cls, "__name__", str(cls))


def _fill_dataclass(cls: type, data: Any, key: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(key or "<root>", f"expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise SpecError(_join(key, str(k)), f"unknown key; expected one of {sorted(fields)}")
    values = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in data:
            values[name] = fill(hints[name], data[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(sub, "required key is missing")
    try:
        return cls(**values)
    except SpecError as e:
        raise e.within(key or None) from None


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def to_dict(obj: Any) -> Any:
    """A dataclass (or nested value) as plain YAML/JSON-ready data: tuples become lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as ``{"a.b.c": value}``; lists are kept as values."""
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(v, _join(prefix, str(k))))
        return out
    return {prefix: data}


_MISSING = object()


def get_key(data: Any, key: str, default: Any = None) -> Any:
    """The value at dotted ``key`` (``a.b.c``) in nested plain data, or ``default`` where a part is absent."""
    node = data
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def has_key(data: Any, key: str) -> bool:
    """Whether dotted ``key`` names a value in nested plain data."""
    return get_key(data, key, _MISSING) is not _MISSING


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted ``key`` in nested plain data, creating sections (or replacing non-dict values) on the way."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value
