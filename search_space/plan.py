"""Concrete block-by-block layout of a subnet: channel counts, kernel sizes and feature-map sides.

The one place where a :class:`SubnetConfig` turns into layer shapes, and the one walk over a subnet's parts
(:func:`walk_parts`: the stem, each stage, the head, threading width and map side from one to the next). The cost
model and the latency table sum per-part values over that walk, and the torch modules are built from its plans,
so none of them can disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from search_space.arithmetic import conv_out_size, spatial_channels, squeeze_channels, window_grid
from search_space.spec import (
    FUSED_BLOCK,
    BlockKind,
    ScaleLayout,
    SpaceDefinition,
    StageSpec,
    block_code,
    block_group_size,
)
from search_space.subnet import StageChoice, SubnetConfig

PartValue = TypeVar("PartValue")


@dataclass(frozen=True)
class StemPlan:
    """Conv-BN-act on the image: (B, in_channels, in_size, in_size) -> (B, out_channels, out_size, out_size)."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    in_size: int
    out_size: int


@dataclass(frozen=True)
class MBConvPlan:
    """Inverted-residual block: (B, in_channels, in_size, in_size) -> (B, out_channels, out_size, out_size).

    ``mid_channels == in_channels`` and no expand conv when ``expand`` is False (expand ratio 1);
    ``se_channels == 0`` means no squeeze-excite; the k x k conv has ``group_size`` channels per group (1:
    depthwise), ``mid_channels / group_size`` groups.
    """

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand: bool
    se_channels: int
    in_size: int
    out_size: int
    group_size: int = 1

    @property
    def shortcut_conv(self) -> bool:
        return self.in_channels != self.out_channels

    @property
    def block(self) -> str:
        """Its block code (``g1``, ``g8``, ...)."""
        return block_code(BlockKind.MBCONV, self.group_size)


@dataclass(frozen=True)
class FusedMBConvPlan:
    """Fused-MBConv block (EfficientNetV2): a k x k conv (stride ``stride``) from ``in_channels`` to ``mid_channels``
    - BN - act, [SE], 1x1 project to ``out_channels`` - BN, plus the shortcut:
    (B, in_channels, in_size, in_size) -> (B, out_channels, out_size, out_size).

    Unlike EfficientNetV2, expand ratio 1 keeps the projection (``mid_channels == in_channels``), so every choice of a
    supernet's fused block slices one set of weights.
    """

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    se_channels: int
    in_size: int
    out_size: int

    @property
    def shortcut_conv(self) -> bool:
        return self.in_channels != self.out_channels

    @property
    def block(self) -> str:
        """Its block code, ``fused``."""
        return block_code(BlockKind.FUSED)


@dataclass(frozen=True)
class TransformerPlan:
    """NASViT transformer block on a (B, channels, size, size) map; shape-preserving.

    Attributes:
        heads: number of heads, ``channels // head_dim``.
        value_channels: width of V, ``v_expansion * channels``.
        mlp_hidden: hidden width of each of the two MLPs.
        windows, window_rows, window_cols: window count and the token-grid shape of one window.
        position_bias_size: side R of the relative-position table, (2R-1)^2 rows.
        scale_key: which switchable-scale vector this configuration uses.
    """

    channels: int
    heads: int
    head_dim: int
    value_channels: int
    value_kernel: int
    mlp_hidden: int
    mlp_dwconv: bool
    size: int
    windows: int
    window_rows: int
    window_cols: int
    position_bias_size: int
    scale_key: str

    @property
    def tokens(self) -> int:
        return self.size * self.size

    @property
    def window_tokens(self) -> int:
        return self.window_rows * self.window_cols


@dataclass(frozen=True)
class HeadPlan:
    """MBPool head: (B, in_channels, size, size) -> (B, num_classes)."""

    in_channels: int
    expand_channels: int
    width: int
    num_classes: int
    size: int


ConvBlockPlan = MBConvPlan | FusedMBConvPlan
BlockPlan = MBConvPlan | FusedMBConvPlan | TransformerPlan
PartPlan = StemPlan | BlockPlan | HeadPlan  # anything one module of a network is built from


@dataclass(frozen=True)
class SubnetPlan:
    """Every layer shape of one subnet, in execution order."""

    resolution: int
    stem: StemPlan
    stages: tuple[tuple[BlockPlan, ...], ...]
    head: HeadPlan


def plan_subnet(cfg: SubnetConfig, num_classes: int | None = None) -> SubnetPlan:
    """Lay out ``cfg`` block by block (``num_classes`` defaults to the space's)."""
    stem, *stages, head = walk_parts(cfg, lambda blocks: blocks, {}, num_classes)
    return SubnetPlan(cfg.resolution, stem[0], tuple(stages), head[0])


def walk_parts(
    cfg: SubnetConfig,
    part_value: Callable[[tuple[PartPlan, ...]], PartValue],
    memo: dict,
    num_classes: int | None = None,
) -> list[PartValue]:
    """``part_value`` of the stem's plan, of each stage's block plans and of the head's plan, in that order.

    Each part is laid out and valued once per signature (the part, its input width and map side, its choice and
    for the head the class count) and kept in ``memo``, so walking many subnets of one space with one memo is
    fast. A memo must serve one space and one ``part_value``.
    """
    space, lookup = cfg.space, memo.get
    width, resolution = cfg.stem_width, cfg.resolution
    key = ("stem", width, resolution)
    value, channels, size = lookup(key) or _part(memo, key, part_value, stem_plan, space, width, resolution)
    values = [value]
    for index, choice in enumerate(cfg.stages):
        key = (index, choice, channels, size)
        value, channels, size = lookup(key) or _part(
            memo, key, part_value, plan_stage, space, index, choice, channels, size
        )
        values.append(value)
    classes = space.num_classes if num_classes is None else num_classes
    key = ("head", channels, cfg.head_width, size, classes)
    entry = lookup(key) or _part(memo, key, part_value, head_plan, space, channels, cfg.head_width, size, classes)
    values.append(entry[0])
    return values


def _part(memo: dict, key: tuple, part_value: Callable, layout: Callable, *args) -> tuple:
    """Lay out the part ``layout(*args)`` and keep ``(part_value(blocks), output width, output side)`` in ``memo``."""
    blocks = layout(*args)
    blocks = blocks if isinstance(blocks, tuple) else (blocks,)
    entry = memo[key] = (part_value(blocks), *part_output(blocks[-1]))
    return entry


def stem_plan(space: SpaceDefinition, width: int, resolution: int) -> StemPlan:
    """The stem of output width ``width`` on ``resolution`` px images."""
    out_size = conv_out_size(resolution, space.stem.kernel, space.stem.stride)
    return StemPlan(space.in_channels, width, space.stem.kernel, space.stem.stride, resolution, out_size)


def head_plan(space: SpaceDefinition, in_channels: int, width: int, size: int, num_classes: int) -> HeadPlan:
    """The head of width ``width`` on a (in_channels, size, size) map."""
    return HeadPlan(in_channels, in_channels * space.head.expand_ratio, width, num_classes, size)


def plan_stage(
    space: SpaceDefinition, index: int, choice: StageChoice, in_channels: int, in_size: int
) -> tuple[BlockPlan, ...]:
    """Blocks of stage ``index`` for ``choice`` on a (in_channels, in_size, in_size) input."""
    spec: StageSpec = space.stages[index]
    blocks: list[BlockPlan] = []
    channels, size = in_channels, in_size
    for position in range(choice.depth):
        if spec.is_transformer and position > 0:
            blocks.append(_transformer_plan(space, index, choice, size))
            continue
        stride = spec.stride if position == 0 else 1
        blocks.append(conv_block_plan(space, spec, choice, channels, size, stride))
        channels, size = choice.width, blocks[-1].out_size
    return tuple(blocks)


def conv_block_plan(
    space: SpaceDefinition, spec: StageSpec, choice: StageChoice, in_channels: int, size: int, stride: int
) -> ConvBlockPlan:
    """The MBConv or Fused-MBConv block ``choice.block`` names, of stage ``spec``, on a (in_channels, size, size)
    input."""
    group_size = block_group_size(choice.block)
    mid = spatial_channels(in_channels, choice.expand_ratio, space.channel_divisor, group_size)
    se = squeeze_channels(mid, space.se_reduction, space.channel_divisor) if spec.se else 0
    out_size = conv_out_size(size, choice.kernel, stride)
    if choice.block == FUSED_BLOCK:
        return FusedMBConvPlan(in_channels, mid, choice.width, choice.kernel, stride, se, size, out_size)
    return MBConvPlan(
        in_channels=in_channels,
        mid_channels=mid,
        out_channels=choice.width,
        kernel=choice.kernel,
        stride=stride,
        expand=choice.expand_ratio != 1,
        se_channels=se,
        in_size=size,
        out_size=out_size,
        group_size=group_size,
    )


def _transformer_plan(space: SpaceDefinition, index: int, choice: StageChoice, size: int) -> TransformerPlan:
    options = space.transformer
    rows, cols = window_grid(choice.windows)
    return TransformerPlan(
        channels=choice.width,
        heads=choice.width // options.head_dim,
        head_dim=options.head_dim,
        value_channels=choice.width * options.v_expansion,
        value_kernel=options.v_dwconv_kernel,
        mlp_hidden=choice.width * choice.mlp_ratio,
        mlp_dwconv=options.mlp_dwconv,
        size=size,
        windows=choice.windows,
        window_rows=size // rows,
        window_cols=size // cols,
        position_bias_size=space.position_bias_size(index),
        scale_key=scale_key(space, index, choice, size),
    )


def scale_key(space: SpaceDefinition, index: int, choice: StageChoice, size: int) -> str:
    """Name of the switchable-scale vector used by a transformer block of stage ``index``.

    ``per_choice``: one per (stage depth, width), ``d{depth}_w{width}``. ``reference``: the reference
    code's (stage depth, tokens mod 8), ``d{depth}_n{N % 8}``. ``shared``: one for every subnet, ``shared``.
    """
    if space.transformer.scale_layout is ScaleLayout.SHARED:
        return "shared"
    if space.transformer.scale_layout is ScaleLayout.REFERENCE:
        return f"d{choice.depth}_n{(size * size) % 8}"
    return f"d{choice.depth}_w{choice.width}"


def part_output(plan: PartPlan) -> tuple[int, int]:
    """Width and side of the feature map a stem, block or head plan outputs (a head: its width, side 1)."""
    if isinstance(plan, (StemPlan, MBConvPlan, FusedMBConvPlan)):
        return plan.out_channels, plan.out_size
    if isinstance(plan, HeadPlan):
        return plan.width, 1
    return plan.channels, plan.size
