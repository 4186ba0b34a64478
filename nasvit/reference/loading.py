"""Read a NASViT reference checkpoint safely: ``torch.load(weights_only=True)``, no code executed.

The reference code saves ``{"model", "model_ema", "optimizer", "lr_scheduler", "max_accuracy", "epoch",
"config"}`` with ``config`` a pickled yacs ``CfgNode`` (a dict subclass); its other loaders read
``{"state_dict": ...}`` with a ``module.`` prefix. The one global allowed beyond torch's weights-only set is
``yacs.config.CfgNode``, rebuilt as a plain ``dict`` without importing yacs (installed or not).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasvit.errors import NasvitError
from nasvit.runtime.safe_load import load_failure, refused_global

WEIGHT_ENTRIES = ("model_ema", "model", "state_dict")  # in order of preference: the reference evaluates its EMA
CFG_NODE = "yacs.config.CfgNode"


class ReferenceCheckpointError(NasvitError):
    """A file that is not a usable NASViT reference checkpoint."""


class _CfgNodeStandIn(dict):
    """Stands in for ``yacs.config.CfgNode`` while unpickling: yields an ``OrderedDict`` (which the weights-only
    unpickler may fill and ``BUILD``), turned into plain dicts by :func:`_plain`."""

    def __new__(cls, *args: Any, **kwargs: Any) -> OrderedDict:  # type: ignore[misc]
        return OrderedDict()


@dataclass(frozen=True)
class ReferenceCheckpoint:
    """The parts of a reference checkpoint nasvit uses.

    Attributes:
        weights: state dicts by entry name (``model_ema``, ``model``, ``state_dict``), ``module.`` prefixes
            removed; each maps reference tensor names to tensors.
        epoch: the last finished epoch (None when the file does not say).
        max_accuracy: the best top-1 the run recorded (None when absent).
        config: the run's yacs config as plain data (None when absent).
    """

    weights: dict[str, dict[str, torch.Tensor]]
    epoch: int | None
    max_accuracy: float | None
    config: dict[str, Any] | None


def load_reference(path: str | Path) -> ReferenceCheckpoint:
    """Read ``path`` on the CPU without running any code from it.

    Raises:
        ReferenceCheckpointError: the file is missing, truncated, needs a global other than a yacs ``CfgNode``
            (named), or holds none of the weight entries ``model_ema``, ``model``, ``state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceCheckpointError(f"reference checkpoint {path} does not exist; pass the downloaded .pth file")
    payload = _unpickle(path)
    if not isinstance(payload, dict):
        raise ReferenceCheckpointError(
            f"{path} holds a {type(payload).__name__}, not a checkpoint dict with {' / '.join(WEIGHT_ENTRIES)}; "
            "pass the NASViT reference checkpoint"
        )
    if payload.get("format"):
        raise ReferenceCheckpointError(
            f"{path} is already a nasvit checkpoint ({payload['format']!r}); use it directly, without conversion"
        )
    weights = {name: _strip_module(payload[name]) for name in WEIGHT_ENTRIES if _is_state_dict(payload.get(name))}
    if not weights:
        raise ReferenceCheckpointError(
            f"{path} has no weights under {' / '.join(WEIGHT_ENTRIES)} (its keys: {sorted(map(str, payload))[:8]}); "
            "it is not a NASViT reference checkpoint"
        )
    config = payload.get("config")
    return ReferenceCheckpoint(
        weights=weights,
        epoch=_number(payload.get("epoch"), int),
        max_accuracy=_number(payload.get("max_accuracy"), float),
        config=_plain(config) if isinstance(config, dict) else None,
    )


def _unpickle(path: Path) -> Any:
    """``torch.load`` with weights only plus the ``CfgNode`` stand-in; every failure as one line."""
    try:
        with torch.serialization.safe_globals([(_CfgNodeStandIn, CFG_NODE)]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated, foreign or unsafe files
        unsafe = refused_global(error)
        if unsafe is not None:
            raise ReferenceCheckpointError(
                f"{path} needs the Python global {unsafe}, which a NASViT reference checkpoint does not "
                f"use; refused without running it (only {CFG_NODE} is allowed beyond tensors and plain data)"
            ) from None
        raise ReferenceCheckpointError(
            f"{path} is truncated or not a PyTorch checkpoint ({load_failure(error)}); download it again"
        ) from None


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())


def _strip_module(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix DistributedDataParallel adds, when every key has it."""
    if all(key.startswith("module.") for key in state):
        return {key.removeprefix("module."): value for key, value in state.items()}
    return dict(state)


def _plain(value: Any) -> Any:
    """Nested dicts (``CfgNode`` stand-ins included), lists, tuples and sets as plain dicts and lists."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(item) for item in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    return value


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
