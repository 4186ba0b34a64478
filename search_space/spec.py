"""Typed description of a search space: the stem, the stages with their choice lists, the head.

Everything that shapes a network lives here and comes from a YAML file in ``configs/space/``
(see :mod:`search_space.loader`); constructors of torch modules read it from these objects.
:class:`SpaceDefinition` is the whole file as values and the geometry it implies;
:class:`~search_space.space.SearchSpace` adds what is done with it (genes, sampling, costs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from search_space.arithmetic import conv_out_size


class StageKind(str, Enum):
    """What a stage is made of."""

    CONV = "conv"  # MBConv blocks
    TRANSFORMER = "transformer"  # one strided MBConv block, then NASViT transformer blocks


class BlockKind(str, Enum):
    """What the MBConv blocks of a stage are made of."""

    MBCONV = "mbconv"  # 1x1 expand - k x k spatial conv, depthwise or grouped - [SE] - 1x1 project
    FUSED = "fused"  # k x k conv to the expanded width - [SE] - 1x1 project (Fused-MBConv, EfficientNetV2)


DEPTHWISE_BLOCK = "g1"  # the block every stage had before block kinds: MBConv with a depthwise spatial conv
FUSED_BLOCK = "fused"


def block_code(kind: BlockKind, group_size: int = 1) -> str:
    """Name of a block choice in genes, subnet strings and dicts: ``g{G}`` for MBConv whose spatial conv has G
    channels per group (``g1``: depthwise), ``fused`` for Fused-MBConv."""
    return FUSED_BLOCK if kind is BlockKind.FUSED else f"g{group_size}"


def block_group_size(code: str) -> int:
    """Channels per group of the spatial conv of block choice ``code``: the multiple its widths are rounded to (1 for
    ``fused``, whose k x k conv is dense and needs no rounding beyond the channel divisor)."""
    return 1 if code == FUSED_BLOCK else int(code[1:])


class NormKind(str, Enum):
    """Normalisation in transformer blocks."""

    CHANNEL = "channel"  # LayerNorm over channels, per token (the paper)
    TOKEN_CHANNEL = "token_channel"  # LayerNorm over tokens and channels jointly (the reference code)


class ScaleLayout(str, Enum):
    """How the switchable scaling layers are indexed."""

    PER_CHOICE = "per_choice"  # one scale vector per (stage depth, width choice) (the paper)
    REFERENCE = "reference"  # one per (stage depth, tokens mod 8), times 8 / C (the reference code)
    SHARED = "shared"  # one per block whatever the subnet: plain layer scale (the ablation without switching)


@dataclass(frozen=True)
class StemSpec:
    """First conv-BN-activation layer.

    Attributes:
        kernel: square kernel size.
        stride: stride of the conv.
        widths: output-channel choices, ascending.
    """

    kernel: int
    stride: int
    widths: tuple[int, ...]


@dataclass(frozen=True)
class StageSpec:
    """One stage and its choice lists (each ascending).

    A ``conv`` stage of depth d is d MBConv blocks, the first with ``stride``. A ``transformer`` stage
    of depth d is one MBConv block with ``stride`` (kernel and expand ratio searched) followed by d-1
    transformer blocks at the stage width. Every MBConv block of a stage is one of :attr:`block_codes`.

    Attributes:
        name: identifier used in subnet strings and logs (``s1`` ...).
        kind: conv or transformer.
        stride: stride of the first block.
        se: whether MBConv blocks of this stage use squeeze-excite.
        widths, depths, kernels, expand_ratios: MBConv choices.
        mlp_ratios, windows: transformer-block choices (``(1,)`` and ``(1,)`` for conv stages).
        block_kinds: the kinds its MBConv blocks may be (:class:`BlockKind`).
        group_sizes: channels per group of the spatial conv of ``mbconv`` blocks (1: depthwise).
    """

    name: str
    kind: StageKind
    stride: int
    se: bool
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expand_ratios: tuple[int, ...]
    mlp_ratios: tuple[int, ...] = (1,)
    windows: tuple[int, ...] = (1,)
    block_kinds: tuple[BlockKind, ...] = (BlockKind.MBCONV,)
    group_sizes: tuple[int, ...] = (1,)

    @property
    def is_transformer(self) -> bool:
        return self.kind is StageKind.TRANSFORMER

    @property
    def block_codes(self) -> tuple[str, ...]:
        """The block choices of the stage (see :func:`block_code`), cheapest first at equal widths: MBConv by
        ascending group size, then Fused-MBConv."""
        codes = (
            [block_code(BlockKind.MBCONV, g) for g in self.group_sizes] if BlockKind.MBCONV in self.block_kinds else []
        )
        return tuple(codes + ([FUSED_BLOCK] if BlockKind.FUSED in self.block_kinds else []))

    @property
    def has_block_choice(self) -> bool:
        """Whether subnets of this stage name their block (anything but the depthwise MBConv alone)."""
        return self.block_codes != (DEPTHWISE_BLOCK,)


@dataclass(frozen=True)
class HeadSpec:
    """MBPool head: 1x1 conv to ``expand_ratio * c_in`` - BN - act - pool - 1x1 conv to width - act - linear.

    Attributes:
        expand_ratio: fixed expansion of the last feature map.
        widths: choices of the feature width before the classifier.
        dropout: dropout before the classifier (training only).
    """

    expand_ratio: int
    widths: tuple[int, ...]
    dropout: float


@dataclass(frozen=True)
class TransformerSpec:
    """Switches of the NASViT transformer block, shared by all transformer stages.

    Attributes:
        head_dim: query/key dims per head; the number of heads is width / head_dim.
        v_expansion: value width is ``v_expansion * C`` (each head gets ``head_dim * v_expansion`` value dims).
        v_dwconv_kernel: kernel of the depthwise conv on the value map.
        mlp_dwconv: depthwise 3x3 conv between the two linears of each MLP (the paper variant).
        norm: layer-norm layout.
        scale_layout: indexing of the switchable scaling layers.
        scale_init: initial value of every switchable scale.
        position_bias_size: side R of the largest token map the relative-position table covers;
            ``None`` sizes it per stage from the largest resolution.
        norm_eps: epsilon of the layer norms.
    """

    head_dim: int
    v_expansion: int
    v_dwconv_kernel: int
    mlp_dwconv: bool
    norm: NormKind
    scale_layout: ScaleLayout
    scale_init: float
    position_bias_size: int | None
    norm_eps: float


@dataclass(frozen=True)
class SpaceDefinition:
    """What one search-space file defines: the input, the stem, the stages with their choice lists, the head and
    the transformer switches, plus the feature-map geometry that follows from them.

    Attributes:
        name: the space's name (``nasvit``, ``tiny``, ...).
        description: prose; two spaces that differ only here are the same space.
        in_channels, num_classes: image channels and classifier size.
        resolutions: input resolution choices, ascending.
        resize_mode: how inputs of another size are resized (``nearest``, ``bilinear``, ``bicubic``).
        activation: activation of every block (``swish``, ``relu``, ``hswish``, ``gelu``).
        channel_divisor, se_reduction: rounding of expanded widths and the squeeze-excite reduction.
        stem, stages, head, transformer: the parts, as typed specs.
        source: the file it was read from (not part of its identity).
    """

    name: str
    description: str = field(compare=False)
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    resize_mode: str
    activation: str
    channel_divisor: int
    se_reduction: int
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    transformer: TransformerSpec
    source: str = field(default="", compare=False)

    def stage_sizes(self, resolution: int) -> tuple[int, ...]:
        """Output side of each stage at ``resolution`` (independent of the kernel choice)."""
        size = conv_out_size(resolution, self.stem.kernel, self.stem.stride)
        sizes = []
        for stage in self.stages:
            size = conv_out_size(size, stage.kernels[0], stage.stride)
            sizes.append(size)
        return tuple(sizes)

    def position_bias_size(self, index: int) -> int:
        """Side R of the relative-position table of stage ``index``: fixed by the file or the largest map."""
        fixed = self.transformer.position_bias_size
        return fixed if fixed is not None else max(self.stage_sizes(r)[index] for r in self.resolutions)
