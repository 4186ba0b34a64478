"""Resolve a user's ARCH argument into a :class:`SubnetConfig`."""

from __future__ import annotations

import json
import random
from pathlib import Path

from nasvit.errors import NasvitError
from search_space import SearchSpace, SubnetConfig


def resolve_arch(space: SearchSpace, arch: str, seed: int = 0) -> SubnetConfig:
    """Turn ``min``, ``max``, ``random``, a subnet string or a subnet JSON file into a config of ``space``.

    Args:
        space: the space the subnet must belong to.
        arch: ``min`` | ``max`` | ``random`` | a subnet string (``str(cfg)``) | a path to a JSON file
            holding a subnet dict (``cfg.to_dict()``) or an object with a ``"subnet"`` entry.
        seed: seed of ``random``.

    Raises:
        NasvitError: the file does not exist or holds no subnet.
        SpaceError: the subnet is malformed or not in ``space``.
    """
    if arch == "min":
        return space.min_subnet()
    if arch == "max":
        return space.max_subnet()
    if arch == "random":
        return space.sample(random.Random(seed))
    if arch.endswith(".json"):
        path = Path(arch)
        if not path.is_file():
            raise NasvitError(f"subnet file {arch} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise NasvitError(f"{arch} is not valid JSON: {error}") from None
        return subnet_from_json(data, space, source=arch)
    if ":" not in arch:
        raise NasvitError(
            f"ARCH {arch!r} is not min, max, random, a subnet string (SPACE:r...:head...) or a .json file"
        )
    return SubnetConfig.from_string(arch, space)


def subnet_from_json(data: object, space: SearchSpace, source: str) -> SubnetConfig:
    """A subnet from a parsed JSON value: a subnet dict, a subnet string, or ``{"subnet": ...}``."""
    if isinstance(data, dict) and "subnet" in data:
        data = data["subnet"]
    if isinstance(data, str):
        return SubnetConfig.from_string(data, space)
    if isinstance(data, dict):
        return SubnetConfig.from_dict(data, space)
    raise NasvitError(f"{source} holds no subnet: expected a subnet dict, a subnet string or {{'subnet': ...}}")
