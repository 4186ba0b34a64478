"""``Supernet``: one set of weights that runs any subnet of a search space, and exports it as a static model."""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from search_space import SearchSpace, SpaceError, StageChoice, SubnetConfig, plan_subnet
from search_space.arithmetic import expanded_channels, squeeze_channels, window_grid
from search_space.plan import MBConvPlan, SubnetPlan, TransformerPlan, scale_key
from search_space.spec import StageSpec
from supernet.blocks import MBConv, TransformerBlock
from supernet.builders import MBConvSizes, TransformerSizes, build_head, build_mbconv, build_stem, build_transformer
from supernet.elastic import ElasticRelativePositionBias, SwitchableScale
from supernet.init import init_weights
from supernet.layers import resize_input
from supernet.ops import ElasticOps
from supernet.static_model import NASViT

logger = logging.getLogger(__name__)


class Supernet(nn.Module):
    """Weight-sharing network over ``space``: stem, stages of MBConv / transformer blocks, MBPool head.

    Every layer holds the largest weights any subnet needs; a subnet runs the leading slices. Select the
    subnet with :meth:`set_active_subnet` (the only way active state changes); ``forward`` maps
    (B, 3, H, W) images to (B, num_classes) logits in train and eval mode alike, resizing inputs whose side
    differs from the active resolution with the space's ``resize_mode``.

    Args:
        space: the search space.
        num_classes: classifier size (default: the space's ``num_classes``).
    """

    def __init__(self, space: SearchSpace, num_classes: int | None = None):
        super().__init__()
        self.space = space
        self.num_classes = space.num_classes if num_classes is None else num_classes
        self.stem = build_stem(ElasticOps, space, max(space.stem.widths))
        stages, in_widths = [], space.stem.widths
        for index, spec in enumerate(space.stages):
            blocks = []
            for position in range(max(spec.depths)):
                if spec.is_transformer and position > 0:
                    blocks.append(build_transformer(ElasticOps, space, _transformer_sizes(space, index, position)))
                else:
                    widths = in_widths if position == 0 else spec.widths
                    blocks.append(build_mbconv(ElasticOps, space, _mbconv_sizes(space, spec, widths, position)))
            stages.append(nn.ModuleList(blocks))
            in_widths = spec.widths
        self.stages = nn.ModuleList(stages)
        self.head = build_head(ElasticOps, space, max(in_widths), max(space.head.widths), self.num_classes)
        init_weights(self)
        self.set_active_subnet(space.max_subnet())

    def set_active_subnet(self, cfg: SubnetConfig) -> None:
        """Select the subnet ``forward`` runs.

        Raises:
            SpaceError: ``cfg`` belongs to another search space.
        """
        if cfg.space != self.space:
            raise SpaceError(
                f"subnet of space '{cfg.space_name}' does not fit this supernet of space '{self.space.name}'; "
                f"build the subnet with this supernet's space (Supernet.space)"
            )
        plan = plan_subnet(cfg, self.num_classes)
        self.stem.conv.active_out_channels = plan.stem.out_channels
        for blocks, block_plans in zip(self.stages, plan.stages):
            for block, block_plan in zip(blocks, block_plans):
                if isinstance(block_plan, MBConvPlan):
                    _activate_mbconv(block, block_plan)
                else:
                    _activate_transformer(block, block_plan)
        self.head.expand.conv.active_out_channels = plan.head.expand_channels
        self.head.mix.active_out_channels = plan.head.width
        self.active_subnet: SubnetConfig = cfg
        self.active_plan: SubnetPlan = plan
        self.active_depths: tuple[int, ...] = tuple(len(blocks) for blocks in plan.stages)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(resize_input(x, self.active_subnet.resolution, self.space.resize_mode))
        for blocks, depth in zip(self.stages, self.active_depths):
            for block in blocks[:depth]:
                x = block(x)
        return self.head(x)

    @torch.no_grad()
    def export(self, cfg: SubnetConfig | None = None) -> NASViT:
        """A standalone :class:`NASViT` with the weights of ``cfg`` (default: the active subnet) copied in.

        The supernet's active subnet is left as it was. The copy is on the supernet's device and dtype, in
        the supernet's train/eval mode, and computes the same function as the supernet running ``cfg``.
        """
        previous = self.active_subnet
        cfg = previous if cfg is None else cfg
        self.set_active_subnet(cfg)
        try:
            reference = next(self.parameters())
            static = NASViT(cfg, self.num_classes).to(device=reference.device, dtype=reference.dtype)
            static.load_state_dict(exported_state(self, static))
        finally:
            self.set_active_subnet(previous)
        return static.train(self.training)

    def stage_of_parameter(self) -> dict[str, str]:
        """Map each parameter name to its stage name (``stem``, a stage name, or ``head``), for per-stage stats."""
        names = {"stem": "stem", "head": "head"}
        names.update({str(i): spec.name for i, spec in enumerate(self.space.stages)})
        mapping = {}
        for name, _ in self.named_parameters():
            parts = name.split(".")
            mapping[name] = names[parts[1]] if parts[0] == "stages" else names[parts[0]]
        return mapping


def _mbconv_sizes(space: SearchSpace, spec: StageSpec, in_widths: tuple[int, ...], position: int) -> MBConvSizes:
    mids = [
        expanded_channels(w, t, space.channel_divisor) if t != 1 else w for w in in_widths for t in spec.expand_ratios
    ]
    return MBConvSizes(
        in_channels=max(in_widths),
        mid_channels=max(mids),
        out_channels=max(spec.widths),
        kernel=max(spec.kernels),
        stride=spec.stride if position == 0 else 1,
        expand=any(t != 1 for t in spec.expand_ratios),
        se_channels=max(squeeze_channels(m, space.se_reduction, space.channel_divisor) for m in mids) if spec.se else 0,
        shortcut_conv=position == 0 and any(a != b for a in in_widths for b in spec.widths),
    )


def _transformer_sizes(space: SearchSpace, index: int, position: int) -> TransformerSizes:
    spec = space.stages[index]
    sizes = {space.stage_sizes(r)[index] for r in space.resolutions}
    keys = {
        scale_key(space, index, StageChoice(width, depth, spec.kernels[0], spec.expand_ratios[0]), size)
        for width in spec.widths
        for depth in spec.depths
        if depth > position
        for size in sizes
    }
    table_size = space.position_bias_size(index)
    return TransformerSizes(
        channels=max(spec.widths),
        value_channels=max(spec.widths) * space.transformer.v_expansion,
        mlp_hidden=max(w * r for w in spec.widths for r in spec.mlp_ratios),
        window=(table_size, table_size),
        grid=(1, 1),
        table_size=table_size,
        scale_keys=tuple(sorted(keys)),
    )


def _activate_mbconv(block: MBConv, plan: MBConvPlan) -> None:
    if not isinstance(block.expand, nn.Identity):
        block.expand.active = plan.expand
        block.expand.conv.active_out_channels = plan.mid_channels
    block.depthwise.conv.active_kernel = plan.kernel
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


def exported_state(supernet: Supernet, static: NASViT, keep_vars: bool = False) -> dict[str, Tensor]:
    """The static model's state dict filled from the supernet's active subnet: leading slices, centre-cropped
    kernels, the selected switchable scale and the position table cropped to the window.

    With ``keep_vars`` the values stay attached to the supernet's parameters (autograd can trace which
    entries of each supernet tensor a subnet uses); otherwise they are detached copies.
    """
    modules = dict(supernet.named_modules())
    source = supernet.state_dict(keep_vars=keep_vars)
    state = {}
    for key, target in static.state_dict().items():
        module_name, _, _ = key.rpartition(".")
        module = modules[module_name]
        if isinstance(module, SwitchableScale):
            value = module.active_vector(target.shape[0])
        elif isinstance(module, ElasticRelativePositionBias):
            value = module.cropped_table()
        else:
            value = _slice_to(source[key], target.shape)
        state[key] = value if keep_vars else value.detach().clone()
    return state


def _slice_to(tensor: Tensor, shape: torch.Size) -> Tensor:
    """Leading slice of ``tensor`` to ``shape``; the two kernel dims of a conv weight are centre-cropped."""
    index = []
    for dim, (have, want) in enumerate(zip(tensor.shape, shape)):
        start = (have - want) // 2 if tensor.dim() == 4 and dim >= 2 else 0
        index.append(slice(start, start + want))
    return tensor[tuple(index)]
