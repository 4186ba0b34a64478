"""Supernet checkpoints: written atomically, loaded with ``weights_only=True``, checked before use.

A checkpoint file is a dict: :class:`TrainingState` (the one definition of its entries) plus ``format``, so it
names what made it.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nasvit.errors import NasvitError
from nasvit.runtime.run_directory import user_umask
from nasvit.runtime.safe_load import load_failure, refused_global

FORMAT = "nasvit-supernet-checkpoint/1"
REQUIRED_KEYS = ("model", "space", "num_classes", "config")
_NAME = re.compile(r"^step(\d{8})\.pt$")


class CheckpointError(NasvitError):
    """A checkpoint that cannot be used: missing, corrupted, foreign, or of another search space."""


@dataclass
class TrainingState:
    """Every entry of a nasvit checkpoint, by name; the file holds them as one dict (see :meth:`to_payload`).

    Attributes:
        model, ema: the weights (``ema`` None without an EMA).
        optimizer, scheduler, scaler: their state dicts (None where the run has none: a grad scaler only with fp16,
            and none of the three in a converted reference checkpoint, which cannot be resumed).
        epoch, step: where the run was (``step`` None in a converted checkpoint).
        nan_skips: non-finite steps skipped in a row at ``step``.
        evaluated_step: the step of the last completed evaluation (older files lack it; resuming reads ``step``).
        rng: the python, numpy, torch and cuda generator states.
        config: the resolved run config; ``num_classes`` the classifier size; ``world_size`` the run's processes.
        extras: top-level entries the recipe adds: ``space`` (the search space's YAML mapping, always),
            ``parent_export`` (fine-tuning), ``provenance`` (a converted reference checkpoint), ``scaled_from`` (the
            starting weights of a scaled model, by ``nasvit scale --checkpoint``).
    """

    model: dict[str, Any]
    config: dict[str, Any]
    num_classes: int
    extras: dict[str, Any]
    ema: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    epoch: int | None = None
    step: int | None = None
    nan_skips: int = 0
    evaluated_step: int | None = None
    rng: dict[str, Any] | None = None
    world_size: int | None = None

    def to_payload(self, format: str = FORMAT) -> dict[str, Any]:
        """The dict a checkpoint file holds: ``format``, every field but ``extras``, and the entries of ``extras``."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extras"}
        return {"format": format, **fields, **self.extras}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> TrainingState:
        """Inverse of :meth:`to_payload` (a missing optional entry reads as its default)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extras"}
        values = {name: payload[name] for name in names if name in payload}
        extras = {key: value for key, value in payload.items() if key not in names and key != "format"}
        return cls(**values, extras=extras)


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step{step:08d}.pt"


def save_atomic(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` to ``path`` through a temporary file in the same folder and a rename: a reader
    sees the old file or the complete new one, never a partial write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~user_umask())  # mkstemp makes 0600; a checkpoint gets the usual mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, expected_format: str = FORMAT) -> dict[str, Any]:
    """Read a checkpoint on the CPU with ``weights_only=True``: a supernet's, or with ``expected_format`` that of
    another nasvit run (``nasvit finetune`` writes ``nasvit-finetune-checkpoint/1``).

    Raises:
        CheckpointError: the file is missing, unreadable or corrupted, or not a nasvit supernet checkpoint.
            The file is left untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass a .pt file in it (e.g. {path}/checkpoints/)")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes); pass another checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for truncated, foreign or unsafe files
        if refused_global(error) is not None:
            raise CheckpointError(f"checkpoint {path} was refused: {load_failure(error)}") from None
        raise CheckpointError(
            f"checkpoint {path} is corrupted or not a PyTorch checkpoint ({load_failure(error)}); it was left "
            f"untouched. Resume from an older file in {path.parent} with --resume PATH, or start a new run"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        found = payload.get("format") if isinstance(payload, dict) else None
        keys = sorted(map(str, payload))[:8] if isinstance(payload, dict) else type(payload).__name__
        found = repr(found) if found else keys
        maker = "nasvit train" if expected_format == FORMAT else "nasvit finetune"
        kind = "supernet" if expected_format == FORMAT else "fine-tuning"
        raise CheckpointError(
            f"checkpoint {path} is not a nasvit {kind} checkpoint (expected format {expected_format!r}, found "
            f"{found}); pass a file written by '{maker}'"
        )
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it is incomplete, pass another checkpoint file")
    return payload


def latest(run_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``run_dir``, or None."""
    folder = checkpoint_dir(run_dir)
    found = sorted(p for p in folder.glob("step*.pt") if _NAME.match(p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def prune(run_dir: str | Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints of ``run_dir``."""
    folder = checkpoint_dir(run_dir)
    found = sorted(p for p in folder.glob("step*.pt") if _NAME.match(p.name))
    for old in found[:-keep]:
        old.unlink(missing_ok=True)


def supernet_from_state(state: dict[str, Any], use_ema: bool = True, device: str | torch.device = "cpu"):
    """The trained supernet held by a loaded checkpoint (EMA weights when present and ``use_ema``)."""
    from search_space import parse_space
    from supernet import Supernet

    net = Supernet(parse_space(state["space"], source="checkpoint space"), state["num_classes"])
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        raise CheckpointError(
            f"the checkpoint's weights do not fit its own search space '{net.space.name}' "
            f"({' '.join(lines)[:300]}); the file is damaged or was edited, pass another checkpoint"
        ) from None
    return net.to(device)


def data_config_of(state: dict[str, Any]):
    """The ``DataConfig`` the checkpoint was trained with.

    Raises:
        CheckpointError: the checkpoint has no data settings (``nasvit convert-reference`` writes none) or they
            cannot be rebuilt here (then give the data explicitly).
    """
    from nasvit.config.loading import build
    from nasvit.data import DataConfig

    if "data" not in state["config"]:
        origin = "converted by nasvit convert-reference" if state.get("provenance") else "written without them"
        raise CheckpointError(
            f"the checkpoint records no data settings ({origin}); name the data: nasvit export --data FOLDER, "
            "nasvit search --set data.dataset=FOLDER (an image folder with train/ and, optionally, validation/)"
        )
    problems: list[str] = []
    data = build(DataConfig, state["config"]["data"], "data.", problems)
    if problems:
        raise CheckpointError(f"the checkpoint's data config is not usable here ({problems}); give the data explicitly")
    return data
