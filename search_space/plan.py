"""Concrete block-by-block layout of a subnet: channel counts, kernel sizes and feature-map sides.

The one place where a :class:`SubnetConfig` turns into layer shapes. The cost model sums over it and
the torch static models are built from it, so the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from search_space.arithmetic import conv_out_size, expanded_channels, squeeze_channels, window_grid
from search_space.spec import ScaleLayout, StageSpec
from search_space.subnet import StageChoice

if TYPE_CHECKING:
    from search_space.space import SearchSpace
    from search_space.subnet import SubnetConfig


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
    ``se_channels == 0`` means no squeeze-excite.
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

    @property
    def shortcut_conv(self) -> bool:
        return self.in_channels != self.out_channels


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


BlockPlan = MBConvPlan | TransformerPlan


@dataclass(frozen=True)
class SubnetPlan:
    """Every layer shape of one subnet, in execution order."""

    resolution: int
    stem: StemPlan
    stages: tuple[tuple[BlockPlan, ...], ...]
    head: HeadPlan


def plan_subnet(cfg: SubnetConfig, num_classes: int | None = None) -> SubnetPlan:
    """Lay out ``cfg`` block by block (``num_classes`` defaults to the space's)."""
    space = cfg.space
    stem_size = conv_out_size(cfg.resolution, space.stem.kernel, space.stem.stride)
    stem = StemPlan(space.in_channels, cfg.stem_width, space.stem.kernel, space.stem.stride, cfg.resolution, stem_size)
    stages = []
    channels, size = cfg.stem_width, stem_size
    for index, choice in enumerate(cfg.stages):
        blocks = plan_stage(space, index, choice, channels, size)
        stages.append(blocks)
        channels, size = choice.width, block_out_size(blocks[-1])
    head = HeadPlan(
        in_channels=channels,
        expand_channels=channels * space.head.expand_ratio,
        width=cfg.head_width,
        num_classes=space.num_classes if num_classes is None else num_classes,
        size=size,
    )
    return SubnetPlan(cfg.resolution, stem, tuple(stages), head)


def plan_stage(space: SearchSpace, index: int, choice: StageChoice, in_channels: int, in_size: int) -> tuple:
    """Blocks of stage ``index`` for ``choice`` on a (in_channels, in_size, in_size) input."""
    spec: StageSpec = space.stages[index]
    blocks: list[BlockPlan] = []
    channels, size = in_channels, in_size
    for position in range(choice.depth):
        if spec.is_transformer and position > 0:
            blocks.append(_transformer_plan(space, index, choice, size))
            continue
        stride = spec.stride if position == 0 else 1
        blocks.append(_mbconv_plan(space, spec, choice, channels, size, stride))
        channels, size = choice.width, blocks[-1].out_size
    return tuple(blocks)


def _mbconv_plan(space: SearchSpace, spec: StageSpec, choice: StageChoice, in_channels: int, size: int, stride: int):
    expand = choice.expand_ratio != 1
    mid = expanded_channels(in_channels, choice.expand_ratio, space.channel_divisor) if expand else in_channels
    se = squeeze_channels(mid, space.se_reduction, space.channel_divisor) if spec.se else 0
    return MBConvPlan(
        in_channels=in_channels,
        mid_channels=mid,
        out_channels=choice.width,
        kernel=choice.kernel,
        stride=stride,
        expand=expand,
        se_channels=se,
        in_size=size,
        out_size=conv_out_size(size, choice.kernel, stride),
    )


def _transformer_plan(space: SearchSpace, index: int, choice: StageChoice, size: int) -> TransformerPlan:
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


def scale_key(space: SearchSpace, index: int, choice: StageChoice, size: int) -> str:
    """Name of the switchable-scale vector used by a transformer block of stage ``index``.

    ``per_choice``: one per (stage depth, width), ``d{depth}_w{width}``. ``reference``: the reference
    code's (stage depth, tokens mod 8), ``d{depth}_n{N % 8}``.
    """
    if space.transformer.scale_layout is ScaleLayout.REFERENCE:
        return f"d{choice.depth}_n{(size * size) % 8}"
    return f"d{choice.depth}_w{choice.width}"


def block_out_size(block: BlockPlan) -> int:
    """Side of the feature map a block outputs."""
    return block.out_size if isinstance(block, MBConvPlan) else block.size
