"""Progressive learning (EfficientNetV2, Tan & Le 2021) for a supernet: small images and weak regularisation first.

Training is cut into ``stages`` equal runs of epochs. In stage i of M the sampled resolutions are capped at the
largest resolution of the space not above ``share + (1 - share) * i / (M - 1)`` times its largest (at least its
smallest), and the RandAugment magnitude and mixup alpha move linearly from their first to their last value. The
last stage trains the whole space. Everything is a function of the epoch, so resumed and distributed runs agree.

Every subnet slot is capped, the largest included: the largest slot trains at the cap, and a random slot whose
resolution lies above the cap draws it again uniformly from the resolutions at or below it, which keeps the draw
uniform over those.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from search_space import SubnetConfig


@dataclass(frozen=True)
class ProgressiveStage:
    """One stage of progressive learning.

    Attributes:
        index: the stage, counted from 0.
        count: the number of stages.
        first_epoch: its first epoch, counted from 0.
        resolution_cap: the largest resolution its subnets sample (one of the space's).
        magnitude: RandAugment magnitude in this stage, or None when the schedule leaves it alone.
        mixup: mixup alpha in this stage, or None when the schedule leaves it alone.
    """

    index: int
    count: int
    first_epoch: int
    resolution_cap: int
    magnitude: float | None
    mixup: float | None

    def describe(self) -> str:
        """One log line's worth: ``stage 2/4 from epoch 13: resolutions <= 16 px, mixup 0.07``."""
        parts = [f"resolutions <= {self.resolution_cap} px"]
        if self.magnitude is not None:
            parts.append(f"RandAugment magnitude {self.magnitude:.3g}")
        if self.mixup is not None:
            parts.append(f"mixup {self.mixup:.3g}")
        return f"stage {self.index + 1}/{self.count} from epoch {self.first_epoch + 1}: {', '.join(parts)}"


def progressive_stages(
    resolutions: Sequence[int],
    epochs: int,
    stages: int,
    min_resolution: float,
    magnitude: tuple[float, float] | None = None,
    mixup: tuple[float, float] | None = None,
) -> list[ProgressiveStage]:
    """The ``stages`` stages of a run of ``epochs`` epochs over a space with ``resolutions``.

    Args:
        resolutions: the space's resolution choices.
        epochs: the schedule's length; stage i starts at epoch ceil(i * epochs / stages).
        stages: how many stages (1: one stage of the whole space).
        min_resolution: the first stage's cap as a share of the largest resolution.
        magnitude, mixup: (first stage, last stage) values, or None.
    """
    largest = max(resolutions)
    stage_list = []
    for index in range(stages):
        progress = index / (stages - 1) if stages > 1 else 1.0
        target = largest * (min_resolution + (1 - min_resolution) * progress)
        allowed = [r for r in resolutions if r <= target + 1e-9]
        stage_list.append(
            ProgressiveStage(
                index=index,
                count=stages,
                first_epoch=-(-index * epochs // stages),
                resolution_cap=max(allowed) if allowed else min(resolutions),
                magnitude=_interpolate(magnitude, progress),
                mixup=_interpolate(mixup, progress),
            )
        )
    return stage_list


def stage_at(stages: Sequence[ProgressiveStage], epoch: int) -> ProgressiveStage:
    """The stage that trains ``epoch`` (counted from 0)."""
    return next(stage for stage in reversed(stages) if stage.first_epoch <= epoch)


def cap_resolution(cfg: SubnetConfig, cap: int, rng: random.Random | None = None) -> SubnetConfig:
    """``cfg`` with its resolution at most ``cap``: unchanged when it already is; else, with ``rng``, a resolution
    drawn uniformly from the space's choices up to ``cap``, and without one, the largest of them."""
    if cfg.resolution <= cap:
        return cfg
    allowed = [r for r in cfg.space.resolutions if r <= cap] or [min(cfg.space.resolutions)]
    return cfg.replace(resolution=rng.choice(allowed) if rng is not None else max(allowed))


def _interpolate(values: tuple[float, float] | None, progress: float) -> float | None:
    if values is None:
        return None
    first, last = values
    return first + (last - first) * progress
