"""An optional external teacher: any timm model with weights from a local file (no hub download)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from nasvit.errors import NasvitError
from nasvit.train_config import TeacherConfig


def build_teacher(config: TeacherConfig, num_classes: int, device: torch.device) -> nn.Module | None:
    """The frozen teacher in eval mode, or None when none is configured.

    Raises:
        NasvitError: unknown timm model, missing weights file, or weights that do not fit the model.
    """
    if config.model is None:
        return None
    path = Path(config.checkpoint)
    if not path.is_file():
        raise NasvitError(
            f"teacher.checkpoint {path} does not exist; point it at a local weights file for {config.model}"
        )
    try:
        teacher = timm.create_model(config.model, pretrained=False, num_classes=num_classes)
    except RuntimeError as error:
        raise NasvitError(f"teacher.model {config.model!r}: {error}") from None
    state = _read_state(path)
    try:
        teacher.load_state_dict(state)
    except RuntimeError as error:
        raise NasvitError(f"teacher.checkpoint {path} does not fit {config.model}: {str(error)[:300]}") from None
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise NasvitError(
            f"teacher.checkpoint {path} cannot be read ({type(error).__name__}); is it a weights file?"
        ) from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items()}
