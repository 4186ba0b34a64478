"""``Supernet``: one set of weights that runs any subnet of a search space, and exports it as a static model."""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

from search_space import SearchSpace, SpaceError, SubnetConfig, plan_subnet
from search_space.plan import SubnetPlan
from supernet.builders import activate_block, activate_head, activate_stem, build_largest_layers
from supernet.elastic import exported_state
from supernet.init import init_weights
from supernet.layers import resize_input
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
        self.stem, self.stages, self.head = build_largest_layers(space, self.num_classes)
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
