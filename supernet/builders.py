"""The elastic block: which layer of a stem, block or head holds which size, in the supernet and in its static twin.

Read in this order:

1. ``build_*``: the module tree of a plan. With :class:`~supernet.ops.StaticOps` it is an exported model's layer at
   one subnet's sizes; with :class:`~supernet.ops.ElasticOps` it is the supernet's layer.
2. :func:`build_largest_layers`: the supernet's layers hold the largest weight of every choice (the widest expansion
   any input width gives, a shortcut conv whenever widths can differ, a scale vector per setting that occurs).
3. ``activate_*``: a subnet sets each elastic op's active sizes; the op then runs the leading slice of its weight
   (:mod:`supernet.elastic`; its :func:`~supernet.elastic.exported_state` gives the static twin those slices).

The options only a static model sets (``drop_path`` of a block, ``dropout`` of the head) default to no stochastic
depth and the space's dropout, which is what the supernet builds.
"""

from __future__ import annotations

import dataclasses

from timm.layers import DropPath
from torch import nn

from search_space import SearchSpace, StageChoice, plan_subnet
from search_space.arithmetic import spatial_channels, squeeze_channels, window_grid
from search_space.plan import (
    BlockPlan,
    ConvBlockPlan,
    FusedMBConvPlan,
    HeadPlan,
    MBConvPlan,
    StemPlan,
    TransformerPlan,
    conv_block_plan,
    scale_key,
)
from search_space.spec import NormKind, ScaleLayout
from supernet.blocks import FusedMBConv, MBConv, TalkingHeadAttention, TransformerBlock
from supernet.elastic import ElasticBlockChoice
from supernet.layers import ConvBnAct, MBPoolHead, Mlp, Shortcut, SqueezeExcite, make_activation
from supernet.ops import ElasticOps, LayerOps


# ---------------------------------------------------------------------------------------------------- build
def build_stem(ops: LayerOps, space: SearchSpace, plan: StemPlan) -> ConvBnAct:
    """Conv-BN-act on the images: (B, plan.in_channels, S, S) -> (B, plan.out_channels, S', S')."""
    conv = ops.conv(plan.in_channels, plan.out_channels, plan.kernel, plan.stride)
    return ops.conv_bn_act(conv, ops.batch_norm(plan.out_channels), make_activation(space.activation))


def make_drop_path(rate: float) -> nn.Module:
    """Stochastic depth of a residual branch with drop probability ``rate``; ``nn.Identity`` when it is 0."""
    return DropPath(rate) if rate > 0 else nn.Identity()


def build_block(
    ops: LayerOps, space: SearchSpace, plan: BlockPlan, drop_path: float = 0.0
) -> MBConv | FusedMBConv | TransformerBlock:
    """The MBConv, Fused-MBConv or transformer block of ``plan``, as a static model holds it."""
    if isinstance(plan, MBConvPlan):
        return build_mbconv(ops, space, plan, drop_path)
    if isinstance(plan, FusedMBConvPlan):
        return build_fused_mbconv(ops, space, plan, drop_path)
    return build_transformer(ops, space, plan, drop_path)


def build_mbconv(
    ops, space: SearchSpace, plan: MBConvPlan, drop_path: float = 0.0, shortcut_conv: bool | None = None
) -> MBConv:
    """MBConv block; ``drop_path`` applies only when the shortcut is the identity (stride 1, equal widths).

    ``shortcut_conv`` (default: ``plan.shortcut_conv``) says whether the shortcut holds a 1x1 conv; a supernet's
    first block of a stage holds one whenever any of its width choices differ.
    """
    act = space.activation
    mid = plan.mid_channels
    expand = nn.Identity()
    if plan.expand:
        conv = ops.conv(plan.in_channels, mid, 1)
        expand = ops.optional_conv_bn_act(conv, ops.batch_norm(mid), make_activation(act))
    spatial = ops.conv(mid, mid, plan.kernel, plan.stride, group_size=plan.group_size)
    depthwise = ops.conv_bn_act(spatial, ops.batch_norm(mid), make_activation(act))
    shortcut, drop = _shortcut(ops, plan, drop_path, shortcut_conv)
    return MBConv(expand, depthwise, _squeeze_excite(ops, plan), _project(ops, plan), shortcut, drop)


def build_fused_mbconv(
    ops, space: SearchSpace, plan: FusedMBConvPlan, drop_path: float = 0.0, shortcut_conv: bool | None = None
) -> FusedMBConv:
    """Fused-MBConv block; ``drop_path`` and ``shortcut_conv`` as in :func:`build_mbconv`."""
    conv = ops.conv(plan.in_channels, plan.mid_channels, plan.kernel, plan.stride)
    fused = ops.conv_bn_act(conv, ops.batch_norm(plan.mid_channels), make_activation(space.activation))
    shortcut, drop = _shortcut(ops, plan, drop_path, shortcut_conv)
    return FusedMBConv(fused, _squeeze_excite(ops, plan), _project(ops, plan), shortcut, drop)


def _squeeze_excite(ops, plan: ConvBlockPlan) -> nn.Module:
    """Squeeze-excite on the block's (B, mid, H, W) map; ``nn.Identity`` without one."""
    mid, se = plan.mid_channels, plan.se_channels
    return SqueezeExcite(ops.conv(mid, se, 1, bias=True), ops.conv(se, mid, 1, bias=True)) if se else nn.Identity()


def _project(ops, plan: ConvBlockPlan) -> nn.Module:
    """1x1 conv - BN from the block's mid width to its output width."""
    return ops.conv_bn_act(
        ops.conv(plan.mid_channels, plan.out_channels, 1), ops.batch_norm(plan.out_channels), nn.Identity()
    )


def _shortcut(ops, plan: ConvBlockPlan, drop_path: float, shortcut_conv: bool | None) -> tuple[Shortcut, nn.Module]:
    """The block's shortcut (a 1x1 conv when ``shortcut_conv``, default ``plan.shortcut_conv``) and the drop-path of
    its branch, stochastic only when the shortcut is the identity."""
    with_conv = plan.shortcut_conv if shortcut_conv is None else shortcut_conv
    conv = ops.shortcut_conv(plan.in_channels, plan.out_channels) if with_conv else None
    return Shortcut(plan.stride, conv), make_drop_path(drop_path if plan.stride == 1 and conv is None else 0.0)


def build_transformer(
    ops, space: SearchSpace, plan: TransformerPlan, drop_path: float = 0.0, scale_keys: tuple[str, ...] = ()
) -> TransformerBlock:
    """NASViT transformer block; ``drop_path`` applies to its attention and both MLP branches.

    ``scale_keys`` (default: ``plan.scale_key`` alone) are the settings its switchable scaling layers hold a vector
    for; a supernet's block holds one per setting any subnet gives it.
    """
    options = space.transformer
    c, heads = plan.channels, plan.heads
    attn = TalkingHeadAttention(
        q=ops.linear(c, c),
        k=ops.linear(c, c),
        v=ops.linear(c, plan.value_channels),
        v_conv=ops.conv(plan.value_channels, plan.value_channels, plan.value_kernel, group_size=1),
        position_bias=ops.position_bias((plan.window_rows, plan.window_cols), plan.position_bias_size, heads),
        talk_pre=ops.head_mix(heads, heads),
        talk_post=ops.head_mix(heads, heads),
        act=make_activation(space.activation),
        proj=ops.linear(plan.value_channels, c),
        head_dim=plan.head_dim,
        grid=window_grid(plan.windows),
    )
    keys = list(scale_keys or (plan.scale_key,))
    reference_factor = options.scale_layout is ScaleLayout.REFERENCE

    def mlp() -> Mlp:
        hidden = plan.mlp_hidden
        dwconv = ops.conv(hidden, hidden, 3, group_size=1) if plan.mlp_dwconv else None
        return Mlp(ops.linear(c, hidden), make_activation(space.activation), dwconv, ops.linear(hidden, c))

    def norm() -> nn.Module:
        return ops.layer_norm(c, options.norm_eps, options.norm is NormKind.TOKEN_CHANNEL)

    def scale() -> nn.Module:
        return ops.scale(c, keys, options.scale_init, reference_factor)

    return TransformerBlock(norm(), attn, norm(), mlp(), norm(), mlp(), scale(), scale(), make_drop_path(drop_path))


def build_head(
    ops: LayerOps, space: SearchSpace, plan: HeadPlan, dropout: float | None = None, pool: bool = True
) -> MBPoolHead:
    """MBPool head, (B, plan.in_channels, s, s) -> (B, plan.num_classes); ``num_classes=0`` gives an identity
    classifier (pooled features), ``dropout`` defaults to the space's; ``pool`` False keeps the maps (timm's
    ``global_pool=''``)."""
    act = space.activation
    expand = ops.conv_bn_act(
        ops.conv(plan.in_channels, plan.expand_channels, 1),
        ops.batch_norm(plan.expand_channels),
        make_activation(act),
    )
    mix = ops.conv(plan.expand_channels, plan.width, 1)
    dropout = space.head.dropout if dropout is None else dropout
    classifier = make_classifier(ops, plan.width, plan.num_classes)
    return MBPoolHead(expand, mix, make_activation(act), dropout, classifier, pool)


def make_classifier(ops: LayerOps, width: int, num_classes: int) -> nn.Module:
    """The head's last linear, (B, width) -> (B, num_classes); ``nn.Identity`` for ``num_classes=0``."""
    return ops.linear(width, num_classes) if num_classes > 0 else nn.Identity()


# -------------------------------------------------------------------------------------------------- largest
def build_largest_layers(space: SearchSpace, num_classes: int) -> tuple[ConvBnAct, nn.ModuleList, MBPoolHead]:
    """The stem, stages (a ``ModuleList`` of block ``ModuleList``s) and head of a supernet over ``space``: elastic ops
    holding the largest weight of every choice, sized from the largest subnet's plans."""
    largest = plan_subnet(space.max_subnet(), num_classes)
    in_widths = space.stem.widths
    stages = []
    for index, block_plans in enumerate(largest.stages):
        stages.append(nn.ModuleList(_largest_block(space, index, in_widths, p, i) for i, p in enumerate(block_plans)))
        in_widths = space.stages[index].widths
    stem, head = build_stem(ElasticOps, space, largest.stem), build_head(ElasticOps, space, largest.head)
    return stem, nn.ModuleList(stages), head


def _largest_block(space: SearchSpace, index: int, in_widths: tuple[int, ...], plan: BlockPlan, position: int):
    """Block ``position`` of stage ``index`` with elastic ops, holding the largest weights of every choice.

    ``plan`` is the block in the largest subnet; the widths its input can have (``in_widths`` for the stage's first
    block) decide the widest expansion and squeeze-excite, whether a shortcut conv is needed, and for a transformer
    block which switchable-scale settings occur. A position that may hold several blocks (MBConv with several group
    sizes, Fused-MBConv) holds each, with its own weights, in an :class:`~supernet.elastic.ElasticBlockChoice`.
    """
    spec = space.stages[index]
    if isinstance(plan, TransformerPlan):
        return build_transformer(ElasticOps, space, plan, scale_keys=_scale_keys(space, index, position))
    widths = in_widths if position == 0 else spec.widths
    shortcut_conv = position == 0 and any(a != b for a in widths for b in spec.widths)
    largest = space.max_subnet().stages[index]
    blocks = {}
    for code in spec.block_codes:
        choice = dataclasses.replace(largest, block=code)
        block_plan = conv_block_plan(space, spec, choice, plan.in_channels, plan.in_size, plan.stride)
        widest = _widest(space, spec, block_plan, widths)
        build = build_mbconv if isinstance(widest, MBConvPlan) else build_fused_mbconv
        blocks[code] = build(ElasticOps, space, widest, shortcut_conv=shortcut_conv)
    return ElasticBlockChoice(blocks) if len(blocks) > 1 else blocks[spec.block_codes[0]]


def _widest(space: SearchSpace, spec, plan: ConvBlockPlan, widths: tuple[int, ...]) -> ConvBlockPlan:
    """``plan`` with the widest mid and squeeze-excite widths any input width and expand ratio of ``spec`` give it."""
    group_size = plan.group_size if isinstance(plan, MBConvPlan) else 1
    ratios = spec.expand_ratios
    mids = [spatial_channels(w, t, space.channel_divisor, group_size) for w in widths for t in ratios]
    se = max(squeeze_channels(m, space.se_reduction, space.channel_divisor) for m in mids) if spec.se else 0
    if isinstance(plan, FusedMBConvPlan):
        return dataclasses.replace(plan, mid_channels=max(mids), se_channels=se)
    return dataclasses.replace(plan, mid_channels=max(mids), expand=any(t != 1 for t in ratios), se_channels=se)


def _scale_keys(space: SearchSpace, index: int, position: int) -> tuple[str, ...]:
    """Every switchable-scale setting block ``position`` of transformer stage ``index`` runs in some subnet."""
    spec = space.stages[index]
    sizes = {space.stage_sizes(r)[index] for r in space.resolutions}
    keys = {
        scale_key(space, index, StageChoice(width, depth, spec.kernels[0], spec.expand_ratios[0]), size)
        for width in spec.widths
        for depth in spec.depths
        if depth > position
        for size in sizes
    }
    return tuple(sorted(keys))


# ------------------------------------------------------------------------------------------------- activate
def activate_stem(stem: ConvBnAct, plan: StemPlan) -> None:
    """Set an elastic stem to ``plan``."""
    stem.conv.active_out_channels = plan.out_channels


def activate_block(block: nn.Module, plan: BlockPlan) -> None:
    """Set an elastic block to ``plan``: an MBConv, Fused-MBConv or transformer block to a plan of its kind, an
    :class:`~supernet.elastic.ElasticBlockChoice` to the block ``plan`` names."""
    if isinstance(block, ElasticBlockChoice):
        block.active = plan.block
        block = block.choices[block.active]
    if isinstance(plan, MBConvPlan):
        _activate_mbconv(block, plan)
    elif isinstance(plan, FusedMBConvPlan):
        _activate_fused_mbconv(block, plan)
    else:
        _activate_transformer(block, plan)


def activate_head(head: MBPoolHead, plan: HeadPlan) -> None:
    """Set an elastic head to ``plan``."""
    head.expand.conv.active_out_channels = plan.expand_channels
    head.mix.active_out_channels = plan.width


def _activate_mbconv(block: MBConv, plan: MBConvPlan) -> None:
    if not isinstance(block.expand, nn.Identity):
        block.expand.active = plan.expand
        block.expand.conv.active_out_channels = plan.mid_channels
    block.depthwise.conv.active_kernel = plan.kernel
    _activate_tail(block, plan)


def _activate_fused_mbconv(block: FusedMBConv, plan: FusedMBConvPlan) -> None:
    block.fused.conv.active_out_channels = plan.mid_channels
    block.fused.conv.active_kernel = plan.kernel
    _activate_tail(block, plan)


def _activate_tail(block: MBConv | FusedMBConv, plan: ConvBlockPlan) -> None:
    """Squeeze-excite, projection and shortcut, which MBConv and Fused-MBConv blocks share."""
    if not isinstance(block.se, nn.Identity):
        block.se.reduce.active_out_channels = plan.se_channels
        block.se.expand.active_out_channels = plan.mid_channels
    block.project.conv.active_out_channels = plan.out_channels
    if block.shortcut.conv is not None:
        block.shortcut.conv.active_out_channels = plan.out_channels


def _activate_transformer(block: TransformerBlock, plan: TransformerPlan) -> None:
    attn = block.attn
    attn.q.active_out_features = attn.k.active_out_features = plan.channels
    attn.v.active_out_features = plan.value_channels
    attn.talk_pre.active_out_features = attn.talk_post.active_out_features = plan.heads
    attn.proj.active_out_features = plan.channels
    attn.position_bias.set_window(plan.window_rows, plan.window_cols, plan.heads)
    attn.grid_rows, attn.grid_cols = window_grid(plan.windows)
    for mlp in (block.mlp1, block.mlp2):
        mlp.fc1.active_out_features = plan.mlp_hidden
        mlp.fc2.active_out_features = plan.channels
    block.scale_attn.active_key = block.scale_mlp.active_key = plan.scale_key
