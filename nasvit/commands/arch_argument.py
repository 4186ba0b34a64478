"""Resolve a user's ARCH argument into a :class:`SubnetConfig` (and the metrics a search recorded for it)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from evolve import BudgetError, parse_budget
from nasvit.errors import NasvitError
from nasvit.reference.subnet import from_reference, is_reference_subnet
from search_space import SearchSpace, SubnetConfig

EXPORT_DESCRIPTION = "subnet.json"  # an export directory's description (supernet.timm_models.SUBNET_FILE, not
# imported: that module imports torch, and ARCH is resolved by light commands too)


def resolve_arch(space: SearchSpace, arch: str, seed: int = 0) -> SubnetConfig:
    """The subnet ``arch`` names (see :func:`resolve_arch_entry`)."""
    return resolve_arch_entry(space, arch, seed)[0]


def resolve_arch_entry(space: SearchSpace, arch: str, seed: int = 0) -> tuple[SubnetConfig, dict[str, Any]]:
    """Turn ARCH into a config of ``space`` plus whatever metrics its source recorded (empty if none).

    Args:
        space: the space the subnet must belong to.
        arch: ``min`` | ``max`` | ``random`` | a subnet string (``str(cfg)``) | a subnet dict (``cfg.to_dict()``),
            ``{"subnet": ...}`` or a NASViT reference-code subnet dict (``{"resolution", "width", "depth",
            "kernel_size", "expand_ratio"}``), inline (``{...}``) or in a JSON file | a search's ``best.json`` or
            ``pareto.json``, with ``#SELECTOR`` choosing an entry: a budget label (``best.json#macs<=300M``) or an
            index (``pareto.json#0``); without it the file must hold exactly one entry | an export directory (its
            ``subnet.json``).
        seed: seed of ``random``.

    Raises:
        NasvitError: the file does not exist, holds no subnet, or the selector matches no entry.
        SpaceError: the subnet is malformed or not in ``space``.
    """
    if arch in ("min", "max"):
        return (space.min_subnet() if arch == "min" else space.max_subnet()), {}
    if arch == "random":
        return space.sample(random.Random(seed)), {}
    if arch.lstrip().startswith("{"):
        data, source = read_json_argument(arch)
        return subnet_from_json(data, space, source), {}
    path_text, _, selector = arch.partition("#")
    if path_text.endswith(".json"):
        return _from_json_file(space, Path(path_text), selector or None)
    if Path(path_text).is_dir():  # an export directory: its subnet.json names the subnet
        return _from_json_file(space, Path(path_text) / EXPORT_DESCRIPTION, None)
    if ":" not in arch:
        raise NasvitError(
            f"ARCH {arch!r} is not min, max, random, a subnet string (SPACE:r...:head...), inline JSON or a .json file"
        )
    return SubnetConfig.from_string(arch, space), {}


def _from_json_file(space: SearchSpace, path: Path, selector: str | None) -> tuple[SubnetConfig, dict[str, Any]]:
    if not path.is_file():
        raise NasvitError(f"subnet file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise NasvitError(f"{path} is not valid JSON: {error}") from None
    entries = _entries(data)
    if entries is None:
        return subnet_from_json(data, space, source=str(path)), {}
    entry = _select(entries, selector, path)
    metrics = dict(entry.get("metrics", {}))
    return SubnetConfig.from_string(entry["subnet"], space), metrics


def _entries(data: Any) -> list[dict[str, Any]] | None:
    """Labelled entries of a best.json (``budgets``) or pareto.json (``front``); None for a single subnet."""
    if (
        isinstance(data, dict)
        and isinstance(data.get("budgets"), list)
        and data["budgets"]
        and isinstance(data["budgets"][0], dict)
    ):
        return [{**e, "label": e.get("budget")} for e in data["budgets"] if e.get("subnet")]
    if isinstance(data, dict) and isinstance(data.get("front"), list):
        return [{**e, "label": str(i)} for i, e in enumerate(data["front"])]
    return None


def _select(entries: list[dict[str, Any]], selector: str | None, path: Path) -> dict[str, Any]:
    labels = [e["label"] for e in entries]
    if selector is None:
        if len(entries) == 1:
            return entries[0]
        raise NasvitError(f"{path} holds {len(entries)} subnets; choose one with {path}#LABEL, LABEL one of {labels}")
    for index, entry in enumerate(entries):
        if selector in (entry["label"], str(index)) or _same_budget(selector, entry["label"]):
            return entry  # a budget matches as written in the config (macs<=0.8M) or as labelled (macs<=800K)
    raise NasvitError(f"{path} has no entry {selector!r}; choose one of {labels} (or an index)")


def read_json_argument(text: str) -> tuple[Any, str]:
    """A command-line argument that is inline JSON (``{...}``) or a JSON file's path, parsed, and how to name it.

    Raises:
        NasvitError: invalid JSON, or a path that does not exist.
    """
    inline = text.lstrip().startswith("{")
    source = "inline JSON" if inline else text
    if not inline and not Path(text).is_file():
        raise NasvitError(f"{text} is neither inline JSON ({{...}}) nor an existing JSON file; check the path")
    try:
        return json.loads(text if inline else Path(text).read_text()), source
    except json.JSONDecodeError as error:
        raise NasvitError(f"{source} is not valid JSON ({error}); quote inline JSON for the shell: '{{...}}'") from None


def subnet_from_json(data: object, space: SearchSpace, source: str) -> SubnetConfig:
    """A subnet from a parsed JSON value: a subnet dict, a reference-code subnet dict, a subnet string, or
    ``{"subnet": ...}``."""
    if isinstance(data, dict) and "subnet" in data:
        data = data["subnet"]
    if isinstance(data, str):
        return SubnetConfig.from_string(data, space)
    if is_reference_subnet(data):
        return from_reference(data, space, source)
    if isinstance(data, dict):
        return SubnetConfig.from_dict(data, space)
    raise NasvitError(
        f"{source} holds no subnet: expected a subnet dict, a reference subnet dict, a subnet string or "
        "{'subnet': ...}"
    )


def _same_budget(selector: str, label: str | None) -> bool:
    """Whether two texts spell the same budget (``macs<=0.8M`` and ``macs<=800K``); False when either is not one."""
    try:
        first, second = parse_budget(selector), parse_budget(label or "")
    except BudgetError:
        return False
    return first.metric == second.metric and math.isclose(first.limit, second.limit, rel_tol=1e-9)
