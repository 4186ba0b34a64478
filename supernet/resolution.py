"""A static subnet at another input resolution ("train small, test large", FixRes): which resolutions it runs at,
its config there, and its weights there.

Of a static :class:`~supernet.NASViT`'s tensors only the relative-position tables depend on the resolution R: the
convs, norms, linears and residual scales have the same shapes at any input side. R sets the side of every stage's
feature map (``space.stage_sizes(R)``), so the attention windows of the transformer stages (a map split into 1,
2 (2x1) or 4 (2x2) windows) and with them each block's table, ((2 rows - 1) (2 cols - 1), heads) for a rows x cols
window.

- **Allowed resolutions**: R >= 1 on which each transformer stage's windows tile its token map (a stage of 2 or 4
  windows needs an even map); :func:`check_resolution` names the nearest ones that fit.
- **The config at R**: the same subnet of the same space where the space lists R; otherwise the subnet alone in a
  one-subnet space ``<space>_r<R>`` (:func:`~search_space.scaling.one_subnet_space`, as ``nasvit scale`` makes),
  which an export records in ``subnet.json`` like any space.
- **The weights at R**: every tensor as it is, each table resized to its window at R by
  :func:`~supernet.layers.resize_position_table` (its centre for a smaller window, timm's BEiT/Swin interpolation
  for a larger one).
- **Phase**: the stride-2 layers sample the input at a phase set by R modulo the network's total stride (the product
  of the stem's and the stages' strides). :func:`subnet_at_resolution` logs a warning when R's differs from the
  subnet's own: the network then sees its input shifted against how it was trained, beyond the change of scale.

The batch-norm statistics and everything else stay those learnt at the old resolution; as in FixRes, a short
fine-tune at R (``nasvit finetune --resolution R``) adapts them.
"""

from __future__ import annotations

import logging
import math

from torch import Tensor

from search_space import SubnetConfig, plan_subnet
from search_space.arithmetic import window_grid
from search_space.plan import TransformerPlan
from search_space.scaling import one_subnet_space
from search_space.spec import SpaceDefinition
from supernet.layers import resize_position_table

logger = logging.getLogger(__name__)


def total_stride(space: SpaceDefinition) -> int:
    """The product of the stem's and every stage's stride: input pixels per step of the last feature map."""
    return math.prod([space.stem.stride, *(stage.stride for stage in space.stages)])


def check_resolution(cfg: SubnetConfig, resolution: int) -> None:
    """Refuse a resolution the subnet ``cfg`` cannot run at.

    Raises:
        ValueError: ``resolution`` is not a whole number of at least 1, or a transformer stage's windows do not tile
            its token map there; the message names the nearest resolutions that fit.
    """
    if type(resolution) is not int or resolution < 1:
        raise ValueError(f"resolution {resolution!r} is not a whole number of pixels of at least 1; pass e.g. 224")
    misfit = _misfit(cfg, resolution)
    if misfit is not None:
        nearest = " or ".join(str(r) for r in _nearest_fitting(cfg, resolution))
        raise ValueError(f"resolution {resolution} does not fit {cfg}: {misfit}; use {nearest}")


def subnet_at_resolution(cfg: SubnetConfig, resolution: int) -> SubnetConfig:
    """``cfg`` at ``resolution``: of ``cfg``'s space where it lists the resolution, else of a one-subnet space
    ``<space>_r<resolution>``. Logs a warning when the resolution changes the sampling phase (module docstring).

    Raises:
        ValueError: see :func:`check_resolution`.
    """
    check_resolution(cfg, resolution)
    _warn_on_phase_change(cfg, resolution)
    space = cfg.space
    if resolution in space.resolutions:
        return cfg.replace(resolution=resolution)
    alone = one_subnet_space(
        space,
        name=f"{space.name}_r{resolution}",
        description=f"{cfg} at {resolution} px",
        resolution=resolution,
        stem_width=cfg.stem_width,
        stages=cfg.stages,
        head_width=cfg.head_width,
    )
    return alone.max_subnet()


def position_windows(cfg: SubnetConfig) -> dict[str, tuple[int, int]]:
    """The attention window (rows, cols) of every relative-position table of ``NASViT(cfg)``, by state-dict key."""
    return {
        f"stages.{index}.{position}.attn.position_bias.table": (block.window_rows, block.window_cols)
        for index, blocks in enumerate(plan_subnet(cfg).stages)
        for position, block in enumerate(blocks)
        if isinstance(block, TransformerPlan)
    }


def state_at_resolution(state: dict[str, Tensor], source: SubnetConfig, target: SubnetConfig) -> dict[str, Tensor]:
    """The state dict of ``NASViT(source)`` made into one of ``NASViT(target)``, the same subnet at another
    resolution: every relative-position table resized to its window at the target's resolution, the rest as is."""
    before, after = position_windows(source), position_windows(target)
    return {
        key: resize_position_table(value, before[key], after[key]) if key in after else value
        for key, value in state.items()
    }


def _misfit(cfg: SubnetConfig, resolution: int) -> str | None:
    """Why the windows of a transformer stage of ``cfg`` do not tile its map at ``resolution``, or None."""
    for spec, choice, size in zip(cfg.space.stages, cfg.stages, cfg.space.stage_sizes(resolution)):
        rows, cols = window_grid(choice.windows)
        if spec.is_transformer and (size % rows or size % cols):
            return (
                f"stage {spec.name}'s {choice.windows} attention windows ({rows}x{cols}) need a token map divisible by "
                f"{rows}x{cols}, and {resolution} px gives {size}x{size}"
            )
    return None


def _nearest_fitting(cfg: SubnetConfig, resolution: int) -> list[int]:
    """The nearest resolution below ``resolution`` that fits ``cfg`` (if any) and the nearest above."""
    span = 2 * total_stride(cfg.space)  # a multiple of this fits every window: one lies within this span above
    below = (r for r in range(resolution - 1, max(resolution - span, 0), -1) if _misfit(cfg, r) is None)
    above = (r for r in range(resolution + 1, resolution + span + 1) if _misfit(cfg, r) is None)
    return [r for r in (next(below, None), next(above, None)) if r is not None]


def _warn_on_phase_change(cfg: SubnetConfig, resolution: int) -> None:
    stride = total_stride(cfg.space)
    before, after = cfg.resolution % stride, resolution % stride
    if before != after:
        logger.warning(
            "resolution %d samples the strided layers at another phase than the subnet's own %d (%d and %d modulo "
            "the total stride %d), so accuracy may suffer beyond the change of scale; %d + a multiple of %d keeps it",
            resolution,
            cfg.resolution,
            after,
            before,
            stride,
            cfg.resolution,
            stride,
        )
