"""``NASViT``: a standalone network for one subnet, built from standard PyTorch layers.

Made by :meth:`supernet.Supernet.export` (weights copied from the supernet) or directly from a
``SubnetConfig`` (random init, to train the subnet from scratch). It holds no reference to a supernet and
no slicing code; it is TorchScript-able and ONNX-exportable.
"""

from __future__ import annotations

from torch import Tensor, nn

from search_space import SubnetConfig, plan_subnet
from search_space.arithmetic import window_grid
from search_space.plan import MBConvPlan, TransformerPlan
from supernet.builders import MBConvSizes, TransformerSizes, build_head, build_mbconv, build_stem, build_transformer
from supernet.init import init_weights
from supernet.layers import resize_input
from supernet.ops import StaticOps


class NASViT(nn.Module):
    """A NASViT subnet as a plain network: (B, 3, R, R) images -> (B, num_classes) logits.

    Inputs of another size are resized to ``resolution`` with the space's ``resize_mode``, as the supernet does.

    Attributes:
        subnet: the subnet string (``SubnetConfig.from_string(model.subnet)`` rebuilds the config).
        cost: analytical MACs, params and activations of this subnet.
        resolution, resize_mode, num_classes, num_features: as named.
    """

    __jit_unused_properties__ = ["subnet_config"]  # noqa: RUF012 (TorchScript reads this class attribute)

    def __init__(self, cfg: SubnetConfig, num_classes: int | None = None):
        super().__init__()
        space = cfg.space
        plan = plan_subnet(cfg, num_classes)
        self.stem = build_stem(StaticOps, space, plan.stem.out_channels)
        self.stages = nn.ModuleList(nn.Sequential(*(_build_block(space, b) for b in blocks)) for blocks in plan.stages)
        self.head = build_head(StaticOps, space, plan.head.in_channels, plan.head.width, plan.head.num_classes)
        self.subnet: str = str(cfg)
        self.resolution: int = cfg.resolution
        self.resize_mode: str = space.resize_mode
        self.num_classes: int = plan.head.num_classes
        self.num_features: int = plan.head.width
        cost = space.cost(cfg, self.num_classes)
        self.cost: dict[str, int] = {"macs": cost.macs, "params": cost.params, "activations": cost.activations}
        init_weights(self)

    @property
    def subnet_config(self) -> SubnetConfig:
        """The subnet this model implements."""
        return SubnetConfig.from_string(self.subnet)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) -> last feature map (B, C, h, w)."""
        x = self.stem(resize_input(x, self.resolution, self.resize_mode))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> logits (B, num_classes), or pooled features (B, num_features) with ``pre_logits``."""
        return self.head.forward_features(x) if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def _build_block(space, plan: MBConvPlan | TransformerPlan) -> nn.Module:
    if isinstance(plan, MBConvPlan):
        sizes = MBConvSizes(
            in_channels=plan.in_channels,
            mid_channels=plan.mid_channels,
            out_channels=plan.out_channels,
            kernel=plan.kernel,
            stride=plan.stride,
            expand=plan.expand,
            se_channels=plan.se_channels,
            shortcut_conv=plan.shortcut_conv,
        )
        return build_mbconv(StaticOps, space, sizes)
    sizes = TransformerSizes(
        channels=plan.channels,
        value_channels=plan.value_channels,
        mlp_hidden=plan.mlp_hidden,
        window=(plan.window_rows, plan.window_cols),
        grid=window_grid(plan.windows),
        table_size=plan.position_bias_size,
        scale_keys=(plan.scale_key,),
    )
    return build_transformer(StaticOps, space, sizes)
