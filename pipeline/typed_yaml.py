"""YAML-shaped settings into frozen dataclasses, checked: an unknown or missing key and a value of the
wrong type fail at start-up, naming the key; `--set key=value` overrides read their value as YAML."""
from __future__ import annotations

import dataclasses
import re
import types
import typing

import yaml


def plain(value):
    """A dataclass's asdict() with its tuples as lists: what YAML and JSON write."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def build(cls, data: dict, where: str):
    """`cls` from `data`, every key known and present, every value of its field's type."""
    if not isinstance(data, dict):
        raise ValueError(f"config {where or 'root'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"config {where or 'root'}: unknown key(s) {sorted(unknown)}")
    missing = names - set(data)
    if missing:
        raise ValueError(f"config {where or 'root'}: missing key(s) {sorted(missing)}")
    return cls(**{name: _coerce(hints[name], data[name], f"{where}.{name}".lstrip(".")) for name in names})


def _coerce(hint, value, where: str):
    if dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):  # `float | None`: null switches a bound off
        if value is None:
            return None
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(hint, value, where)
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config {where}: expected a list, got {value!r}")
        return tuple(_coerce(item, v, where) for v in value)
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config {where}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config {where}: expected true/false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config {where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config {where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        return "" if value is None else str(value)
    raise TypeError(f"config {where}: unsupported type {hint!r}")


def merge(base: dict, overlay: dict) -> dict:
    """`overlay` on `base`, mappings merged key by key (but a `conf` mapping, Spark's, replaced whole)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "conf":
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def parse_override(text: str) -> dict:
    """`a.b.c=value` → {"a": {"b": {"c": value}}}; the value is read as YAML (`[x,y]`, `0.5`, `true`),
    and `3e-4`, which YAML 1.1 leaves a string, as the number it means."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    node: dict = {}
    root = node
    keys = dotted.strip().split(".")
    for key in keys[:-1]:
        node[key] = {}
        node = node[key]
    node[keys[-1]] = value
    return root


def with_overrides(settings, overrides: typing.Iterable[str], where: str):
    """A settings dataclass with `--set key=value` overrides applied by the grammar every command of the
    project shares: values read as YAML, checked against the field's type, unknown keys refused."""
    data = dataclasses.asdict(settings)
    for text in overrides:
        data = merge(data, parse_override(text))
    return build(type(settings), data, where)
