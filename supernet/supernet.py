"""``Supernet``: one set of weights that runs any subnet of a search space, and exports it as a static model."""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import Tensor, nn

from search_space import SearchSpace, SpaceError, StageChoice, SubnetConfig, plan_subnet
from search_space.arithmetic import expanded_channels, squeeze_channels
from search_space.plan import BlockPlan, MBConvPlan, SubnetPlan, scale_key
from supernet.builders import (
    activate_block,
    activate_head,
    activate_stem,
    build_head,
    build_mbconv,
    build_stem,
    build_transformer,
)
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
        largest = plan_subnet(space.max_subnet(), self.num_classes)  # elastic layers hold its sizes
        self.stem = build_stem(ElasticOps, space, largest.stem)
        in_widths = space.stem.widths
        stages = []
        for index, block_plans in enumerate(largest.stages):
            stages.append(
                nn.ModuleList(_largest_block(space, index, in_widths, p, i) for i, p in enumerate(block_plans))
            )
            in_widths = space.stages[index].widths
        self.stages = nn.ModuleList(stages)
        self.head = build_head(ElasticOps, space, largest.head)
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
        activate_stem(self.stem, plan.stem)
        for blocks, block_plans in zip(self.stages, plan.stages):
            for block, block_plan in zip(blocks, block_plans):
                activate_block(block, block_plan)
        activate_head(self.head, plan.head)
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


def _largest_block(space: SearchSpace, index: int, in_widths: tuple[int, ...], plan: BlockPlan, position: int):
    """Block ``position`` of stage ``index`` with elastic ops, holding the largest weights of every choice.

    ``plan`` is the block in the largest subnet; the widths its input can have (``in_widths`` for the stage's first
    block) decide the widest expansion and squeeze-excite, whether a shortcut conv is needed, and for a transformer
    block which switchable-scale settings occur.
    """
    spec = space.stages[index]
    if not isinstance(plan, MBConvPlan):
        return build_transformer(ElasticOps, space, plan, scale_keys=_scale_keys(space, index, position))
    widths = in_widths if position == 0 else spec.widths
    ratios = spec.expand_ratios
    mids = [expanded_channels(w, t, space.channel_divisor) if t != 1 else w for w in widths for t in ratios]
    se = max(squeeze_channels(m, space.se_reduction, space.channel_divisor) for m in mids) if spec.se else 0
    widest = dataclasses.replace(plan, mid_channels=max(mids), expand=any(t != 1 for t in ratios), se_channels=se)
    shortcut_conv = position == 0 and any(a != b for a in widths for b in spec.widths)
    return build_mbconv(ElasticOps, space, widest, shortcut_conv=shortcut_conv)


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
