"""Typed configs from YAML: nested frozen dataclasses, ``key=value`` overrides, every problem reported at once.

Values are parsed with ``yaml.safe_load`` only; config text is never executed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nasvit.errors import NasvitError
from search_space import config_dir
from search_space.errors import did_you_mean

T = TypeVar("T")
NASVIT_PACKAGE = Path(__file__).resolve().parents[1]  # an installed wheel carries the recipe configs in it


class ConfigError(NasvitError):
    """A config file or override with unknown keys or invalid values; lists every problem."""

    def __init__(self, problems: list[str], source: str):
        lines = "\n".join(f"  - {p}" for p in problems)
        message = f"{source}: {len(problems)} problem(s):\n{lines}" if len(problems) > 1 else f"{source}: {problems[0]}"
        super().__init__(message, problems)


def load_config(cls: type[T], path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> T:
    """Read ``path`` (YAML; None = all defaults), apply ``a.b=value`` overrides, and build ``cls``.

    Raises:
        ConfigError: missing file, invalid YAML, unknown keys (with suggestions) or invalid values, all at once.
    """
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        path = config_file(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError([f"not valid YAML: {error}"], source) from None
        if not isinstance(data, dict):
            raise ConfigError([f"expected a mapping at the top level, got {type(data).__name__}"], source)
    problems: list[str] = []
    for override in overrides:
        _apply_override(data, override, problems)
    config = build(cls, data, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return config


def config_file(path: str | Path) -> Path:
    """The YAML file ``path`` names: the file itself, else the shipped config of that name.

    ``configs/train/tiny.yaml`` (or ``train/tiny.yaml``) names a shipped config from any directory, so the README's
    commands work outside a checkout too: a path that does not exist is looked up among the configs shipped with
    nasvit (``nasvit/configs/`` in a wheel, ``configs/`` in a checkout).

    Raises:
        ConfigError: neither the path nor a shipped config of that name exists (the shipped ones are listed).
    """
    path = Path(path)
    if path.is_file():
        return path
    shipped_dir = config_dir(NASVIT_PACKAGE)
    parts = path.parts[1:] if path.parts[:1] == ("configs",) else path.parts
    shipped = shipped_dir.joinpath(*parts) if parts and not path.is_absolute() else None
    if shipped is not None and shipped.is_file():
        return shipped
    names = sorted(
        f"configs/{p.relative_to(shipped_dir).as_posix()}"
        for p in shipped_dir.glob("*/*.yaml")
        if p.parent.name != "space"
    )
    raise ConfigError([f"config file {path} does not exist; shipped configs are {names}"], str(path))


def build(cls: type[T], data: Any, where: str, problems: list[str]) -> T | None:
    """Build dataclass ``cls`` from ``data``, appending problems (``where`` prefixes key paths)."""
    if not isinstance(data, dict):
        problems.append(f"{where or 'config'}: expected a mapping, got {data!r}")
        return None
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            suggestion = did_you_mean(str(key), fields)
            problems.append(f"{where}{key}: unknown key{suggestion}; allowed keys are {sorted(fields)}")
    values = {}
    count = len(problems)
    for name in fields:
        if name in data:
            values[name] = _convert(data[name], hints[name], f"{where}{name}", problems)
    if len(problems) > count:
        return None
    try:
        return cls(**values)
    except NasvitError as error:  # the dataclass's own checks (nasvit.errors.raise_problems)
        own = [f"{where}{problem}" for problem in error.problems or ()]
        problems.extend(own or [f"{where.rstrip('.') or 'config'}: {error}"])
    except (TypeError, ValueError) as error:
        problems.append(f"{where.rstrip('.') or 'config'}: {error}")
    return None


def to_dict(config: Any) -> Any:
    """A plain, YAML/JSON-ready dict of a (nested) config dataclass."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config) if f.init}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    return config


def dump_yaml(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def _apply_override(data: dict[str, Any], override: str, problems: list[str]) -> None:
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        problems.append(f"override {override!r} is not key=value (e.g. optim.lr=0.001)")
        return
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    target = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
        nested = target.setdefault(part, {})
        if not isinstance(nested, dict):
            problems.append(f"override {override!r}: {part} is not a section")
            return
        target = nested
    target[parts[-1]] = value


def _convert(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        return _convert(value, options[0], where, problems) if len(options) == 1 else value
    if dataclasses.is_dataclass(hint):
        return build(hint, value, f"{where}.", problems)
    if origin is typing.Literal:
        if value not in args:
            problems.append(f"{where}: {value!r} is not one of {list(args)}{did_you_mean(str(value), map(str, args))}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected a list, got {value!r}")
            return value
        fixed = origin is tuple and args and args[-1] is not Ellipsis
        if fixed and len(value) != len(args):
            problems.append(f"{where}: expected {len(args)} values, got {len(value)} ({value!r})")
            return value
        item = args[0] if args else Any
        converted = [_convert(v, item, f"{where}[{i}]", problems) for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    return _scalar(value, hint, where, problems)


def _scalar(value: Any, hint: Any, where: str, problems: list[str]) -> Any:
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, got {value!r}")
    elif hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, got {value!r}")
    elif hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a number, got {value!r}")
        else:
            return float(value)
    elif hint is str and not isinstance(value, str):
        problems.append(f"{where}: expected a string, got {value!r}")
    return value
