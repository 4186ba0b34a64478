"""An optional external teacher: any timm model (or an ensemble of them) with weights from local files (no hub
download)."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

from nasvit.config.train import TeacherConfig
from nasvit.errors import NasvitError
from nasvit.runtime.safe_load import load_failure


class TeacherEnsemble(nn.Module):
    """Teachers whose probabilities softmax(logit_scale * logits) are averaged; returns their log.

    (B, 3, H, W) -> (B, classes) log-probabilities, so that a softmax of the output gives the averaged
    probabilities (as a single teacher's softmax gives its own).
    """

    def __init__(self, teachers: list[nn.Module], logit_scale: float):
        super().__init__()
        self.teachers = nn.ModuleList(teachers)
        self.logit_scale = logit_scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        probabilities = [(self.logit_scale * t(images).float()).softmax(-1) for t in self.teachers]  # each (B, K)
        return torch.stack(probabilities).mean(0).log()


def build_teacher(config: TeacherConfig, num_classes: int, device: torch.device) -> nn.Module | None:
    """The frozen teacher in eval mode (a :class:`TeacherEnsemble` with ``extra`` teachers or a logit scale other
    than 1), or None when none is configured.

    Raises:
        NasvitError: unknown timm model, missing weights file, or weights that do not fit the model.
    """
    if config.model is None:
        return None
    members = [(config.model, config.checkpoint, "teacher")]
    members += [(m.model, m.checkpoint, f"teacher.extra[{i}]") for i, m in enumerate(config.extra)]
    teachers = [_build_one(model, checkpoint, where, num_classes) for model, checkpoint, where in members]
    if len(teachers) > 1 or config.logit_scale != 1.0:
        teacher = TeacherEnsemble(teachers, config.logit_scale)
    else:
        teacher = teachers[0]
    teacher.requires_grad_(False)
    return teacher.eval().to(device)


def _build_one(model: str, checkpoint: str, where: str, num_classes: int) -> nn.Module:
    path = Path(checkpoint)
    if not path.is_file():
        raise NasvitError(f"{where}.checkpoint {path} does not exist; point it at a local weights file for {model}")
    try:
        teacher = timm.create_model(model, pretrained=False, num_classes=num_classes)
    except RuntimeError as error:
        raise NasvitError(f"{where}.model {model!r}: {error}") from None
    state = _read_state(path, where)
    try:
        teacher.load_state_dict(state)
    except RuntimeError as error:
        raise NasvitError(f"{where}.checkpoint {path} does not fit {model}: {str(error)[:300]}") from None
    return teacher


def _read_state(path: Path, where: str) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise NasvitError(
            f"{where}.checkpoint {path} cannot be read ({load_failure(error)}); is it a weights file?"
        ) from None
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    return {k.removeprefix("module."): v for k, v in state.items()}
