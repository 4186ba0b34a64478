"""Batch-level mixup / cutmix from timm, built from a ``DataConfig``."""

from __future__ import annotations

from timm.data import Mixup

from nasvit.data.config import DataConfig
from nasvit.errors import NasvitError


def build_mixup(cfg: DataConfig, num_classes: int) -> Mixup | None:
    """timm's ``Mixup`` for ``cfg.mixup`` / ``cfg.cutmix``, or ``None`` when both are 0 (the paper's default).

    The returned callable maps ``(images, labels)`` of shapes (B, 3, S, S) and (B,) int64 to mixed images and
    soft targets (B, num_classes) that already include ``cfg.label_smoothing``. B must be even: use
    ``drop_last=True`` with an even batch size. It draws from NumPy's global random state (timm's design).

    Raises:
        NasvitError: mixing is enabled with an odd ``cfg.batch_size``.
    """
    if cfg.mixup == 0 and cfg.cutmix == 0:
        return None
    if cfg.batch_size % 2:
        raise NasvitError(f"mixup/cutmix pair images within a batch: batch_size={cfg.batch_size} must be even")
    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        label_smoothing=cfg.label_smoothing,
        num_classes=num_classes,
    )
