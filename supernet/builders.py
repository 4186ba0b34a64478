"""Build stems, blocks and heads from sizes; called with elastic ops at maximum sizes by the supernet and
with standard layers at one subnet's sizes by the static model.

The options only a static model sets (``in_channels`` of the stem, ``drop_path`` of a block, ``dropout`` of the
head) default to the space's values and to no stochastic depth, which is what the supernet builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.layers import DropPath
from torch import nn

from search_space import SearchSpace
from supernet.blocks import MBConv, TalkingHeadAttention, TransformerBlock
from supernet.layers import ConvBnAct, MBPoolHead, Mlp, Shortcut, SqueezeExcite, make_activation


@dataclass(frozen=True)
class MBConvSizes:
    """Sizes an MBConv block is built with (the largest of all choices, for a supernet)."""

    in_channels: int
    mid_channels: int
    out_channels: int
    kernel: int
    stride: int
    expand: bool
    se_channels: int
    shortcut_conv: bool


@dataclass(frozen=True)
class TransformerSizes:
    """Sizes a transformer block is built with (the largest of all choices, for a supernet).

    ``window`` is the window token grid of a static block; ``grid`` the window layout (rows x cols of windows).
    """

    channels: int
    value_channels: int
    mlp_hidden: int
    window: tuple[int, int]
    grid: tuple[int, int]
    table_size: int
    scale_keys: tuple[str, ...]


def build_stem(ops, space: SearchSpace, out_channels: int, in_channels: int | None = None) -> ConvBnAct:
    """Conv-BN-act on the images; ``in_channels`` defaults to the space's."""
    in_channels = space.in_channels if in_channels is None else in_channels
    conv = ops.conv(in_channels, out_channels, space.stem.kernel, space.stem.stride)
    return ops.conv_bn_act(conv, ops.batch_norm(out_channels), make_activation(space.activation))


def make_drop_path(rate: float) -> nn.Module:
    """Stochastic depth of a residual branch with drop probability ``rate``; ``nn.Identity`` when it is 0."""
    return DropPath(rate) if rate > 0 else nn.Identity()


def build_mbconv(ops, space: SearchSpace, sizes: MBConvSizes, drop_path: float = 0.0) -> MBConv:
    """MBConv block; ``drop_path`` applies only when the shortcut is the identity (stride 1, equal widths)."""
    act = space.activation
    mid = sizes.mid_channels
    expand = nn.Identity()
    if sizes.expand:
        conv = ops.conv(sizes.in_channels, mid, 1)
        expand = ops.optional_conv_bn_act(conv, ops.batch_norm(mid), make_activation(act))
    depthwise = ops.conv_bn_act(
        ops.conv(mid, mid, sizes.kernel, sizes.stride, depthwise=True), ops.batch_norm(mid), make_activation(act)
    )
    se = nn.Identity()
    if sizes.se_channels:
        se = SqueezeExcite(
            ops.conv(mid, sizes.se_channels, 1, bias=True), ops.conv(sizes.se_channels, mid, 1, bias=True)
        )
    project = ops.conv_bn_act(ops.conv(mid, sizes.out_channels, 1), ops.batch_norm(sizes.out_channels), nn.Identity())
    shortcut_conv = ops.shortcut_conv(sizes.in_channels, sizes.out_channels) if sizes.shortcut_conv else None
    identity_shortcut = sizes.stride == 1 and shortcut_conv is None
    drop = make_drop_path(drop_path if identity_shortcut else 0.0)
    return MBConv(expand, depthwise, se, project, Shortcut(sizes.stride, shortcut_conv), drop)


def build_transformer(ops, space: SearchSpace, sizes: TransformerSizes, drop_path: float = 0.0) -> TransformerBlock:
    """NASViT transformer block; ``drop_path`` applies to its attention and both MLP branches."""
    options = space.transformer
    c, heads = sizes.channels, sizes.channels // options.head_dim
    over_tokens = options.norm.value == "token_channel"
    reference_factor = options.scale_layout.value == "reference"
    attn = TalkingHeadAttention(
        q=ops.linear(c, c),
        k=ops.linear(c, c),
        v=ops.linear(c, sizes.value_channels),
        v_conv=ops.conv(sizes.value_channels, sizes.value_channels, options.v_dwconv_kernel, depthwise=True),
        position_bias=ops.position_bias(sizes.window, sizes.table_size, heads),
        talk_pre=ops.head_mix(heads, heads),
        talk_post=ops.head_mix(heads, heads),
        act=make_activation(space.activation),
        proj=ops.linear(sizes.value_channels, c),
        head_dim=options.head_dim,
        grid=sizes.grid,
    )

    def mlp() -> Mlp:
        hidden = sizes.mlp_hidden
        dwconv = ops.conv(hidden, hidden, 3, depthwise=True) if options.mlp_dwconv else None
        return Mlp(ops.linear(c, hidden), make_activation(space.activation), dwconv, ops.linear(hidden, c))

    def norm() -> nn.Module:
        return ops.layer_norm(c, options.norm_eps, over_tokens)

    def scale() -> nn.Module:
        return ops.scale(c, list(sizes.scale_keys), options.scale_init, reference_factor)

    return TransformerBlock(norm(), attn, norm(), mlp(), norm(), mlp(), scale(), scale(), make_drop_path(drop_path))


def build_head(
    ops, space: SearchSpace, in_channels: int, width: int, num_classes: int, dropout: float | None = None
) -> MBPoolHead:
    """MBPool head; ``num_classes=0`` gives an identity classifier (pooled features), ``dropout`` defaults to the
    space's."""
    expand_channels = in_channels * space.head.expand_ratio
    act = space.activation
    expand = ops.conv_bn_act(
        ops.conv(in_channels, expand_channels, 1), ops.batch_norm(expand_channels), make_activation(act)
    )
    mix = ops.conv(expand_channels, width, 1)
    dropout = space.head.dropout if dropout is None else dropout
    return MBPoolHead(expand, mix, make_activation(act), dropout, make_classifier(ops, width, num_classes))


def make_classifier(ops, width: int, num_classes: int) -> nn.Module:
    """The head's last linear, (B, width) -> (B, num_classes); ``nn.Identity`` for ``num_classes=0``."""
    return ops.linear(width, num_classes) if num_classes > 0 else nn.Identity()
