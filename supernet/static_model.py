"""``NASViT``: a standalone network for one subnet, built from standard PyTorch layers.

Made by :meth:`supernet.Supernet.export` (weights copied from the supernet) or directly from a
``SubnetConfig`` (random init, to train the subnet from scratch). It holds no reference to a supernet and
no slicing code; it is TorchScript-able and ONNX-exportable.

It has timm's model interface (``timm.create_model("nasvit_subnet", ...)`` builds it, see
:mod:`supernet.timm_models`): ``forward_features`` / ``forward_head``, ``get_classifier`` / ``reset_classifier``,
``feature_info`` with ``forward_intermediates`` / ``prune_intermediate_layers``, ``group_matcher``,
``no_weight_decay`` and ``set_grad_checkpointing``.

Feature maps: feature 0 is the stem's output, feature ``i`` the output of stage ``i - 1``. The model first resizes
every input to ``resolution``, so ``reduction`` is relative to ``resolution``, not to the input: feature ``i`` is
(B, ``feature_info[i]["num_chs"]``, s, s) with s = ceil(resolution / ``feature_info[i]["reduction"]``), whatever
the input's size.
"""

# Annotations stay objects (no ``from __future__ import annotations``): torch.fx copies forward's into its graph,
# which TorchScript then compiles.
import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from timm.layers import calculate_drop_path_rates
from timm.models import checkpoint_seq
from torch import Tensor, nn

from search_space import SubnetConfig, SubnetPlan, plan_subnet
from supernet.builders import build_block, build_head, build_stem, make_classifier
from supernet.init import init_weights
from supernet.layers import LayerScale, RelativePositionBias, resize_input
from supernet.ops import StaticOps

_NO_WEIGHT_DECAY_MODULES = (RelativePositionBias, LayerScale)


class NASViT(nn.Module):
    """A NASViT subnet as a plain network: (B, in_chans, R, R) images -> (B, num_classes) logits.

    Inputs of another size are resized to ``resolution`` with the space's ``resize_mode``, as the supernet does.

    Args:
        cfg: the subnet.
        num_classes: classifier size (default: the space's); 0 for no classifier, so ``forward`` returns the
            pooled features (B, num_features).
        in_chans: image channels (default: the space's).
        drop_rate: dropout before the classifier (default: the space's head dropout).
        drop_path_rate: stochastic depth of the last block; it rises linearly from 0 over all blocks. It acts on
            the branch of MBConv blocks with an identity shortcut and on the three branches of transformer blocks,
            in training only. 0 (the default) builds no drop-path layer at all.
        global_pool: ``"avg"`` (the default; the head's average pool) or ``""`` (timm's no pooling: the head acts
            at every position, so ``forward`` returns maps, (B, num_classes, h, w), or (B, head_hidden_size, h, w)
            with ``num_classes=0``).

    Attributes:
        subnet: the subnet string (``search_space.load_subnet(model.subnet)`` rebuilds the config, which
            ``subnet_config`` holds).
        cost: analytical MACs, params and activations of this subnet with this classifier.
        feature_info: one dict per feature map (stem, then each stage): ``num_chs``, ``reduction``, ``module``.
        num_features: channels of the last feature map (``forward_features``' output), as in timm.
        head_hidden_size: width of the pooled features the classifier reads (``forward_head(pre_logits=True)``).
        resolution, resize_mode, num_classes, in_chans, drop_rate: as named.

    Raises:
        ValueError: ``drop_rate`` or ``drop_path_rate`` outside [0, 1), a negative ``num_classes``, or a
            ``global_pool`` other than ``"avg"`` and ``""``.
    """

    __jit_unused_properties__ = ["subnet_config"]  # noqa: RUF012 (TorchScript reads this class attribute)

    def __init__(
        self,
        cfg: SubnetConfig,
        num_classes: int | None = None,
        in_chans: int | None = None,
        drop_rate: float | None = None,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
    ):
        super().__init__()
        space = cfg.space
        _check_num_classes(num_classes)
        _check_pool(global_pool)
        _check_rate("drop_rate", drop_rate)
        _check_rate("drop_path_rate", drop_path_rate)
        plan = plan_subnet(cfg, num_classes)
        self.in_chans: int = space.in_channels if in_chans is None else in_chans
        self.stem = build_stem(StaticOps, space, dataclasses.replace(plan.stem, in_channels=self.in_chans))
        rates = iter(calculate_drop_path_rates(drop_path_rate, sum(len(blocks) for blocks in plan.stages)))  # per block
        self.stages = nn.ModuleList(
            nn.Sequential(*(build_block(StaticOps, space, block, next(rates)) for block in blocks))
            for blocks in plan.stages
        )
        self.drop_rate: float = space.head.dropout if drop_rate is None else drop_rate
        head = plan.head
        self.head = build_head(StaticOps, space, head, self.drop_rate, pool=global_pool == "avg")
        self._cfg = cfg  # TorchScript skips this attribute: scripted models keep the string form only
        self.subnet: str = str(cfg)
        self.resolution: int = cfg.resolution
        self.resize_mode: str = space.resize_mode
        self.num_classes: int = head.num_classes
        self.feature_info: list[dict[str, Any]] = _feature_info(cfg, plan)
        self.num_features: int = self.feature_info[-1]["num_chs"]
        self.head_hidden_size: int = head.width
        self.grad_checkpointing: bool = False
        self.cost: dict[str, int] = _cost(cfg, self.num_classes)
        init_weights(self)

    @property
    def subnet_config(self) -> SubnetConfig:
        """The subnet this model implements."""
        return self._cfg

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, in_chans, H, W) -> last feature map (B, C, h, w)."""
        x = self.stem(resize_input(x, self.resolution, self.resize_mode))
        for stage in self.stages:
            if not torch.jit.is_scripting() and self.grad_checkpointing and self.training:
                x = checkpoint_seq(stage, x)
            else:
                x = stage(x)
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Feature map -> logits (B, num_classes), or pooled features (B, head_hidden_size) with ``pre_logits``."""
        return self.head.forward_features(x) if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        """The last linear (B, head_hidden_size) -> (B, num_classes); ``nn.Identity`` when ``num_classes`` is 0."""
        return self.head.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier by a new, randomly initialised one of ``num_classes`` outputs (0: none); a
        ``global_pool`` of ``"avg"`` or ``""`` also sets the head's pooling (None keeps it; see the class).

        Raises:
            ValueError: a ``global_pool`` other than None, ``"avg"`` and ``""``, or a negative ``num_classes``.
        """
        _check_num_classes(num_classes)
        if global_pool is not None:
            _check_pool(global_pool)
            self.head.pool = global_pool == "avg"
        reference = self.stem.conv.weight
        classifier = make_classifier(StaticOps, self.head_hidden_size, num_classes)
        init_weights(classifier)
        self.head.classifier = classifier.to(device=reference.device, dtype=reference.dtype).train(self.training)
        self.num_classes = num_classes
        self.cost = _cost(self._cfg, num_classes)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block in the backward pass instead of keeping its activations (training only)."""
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Parameter names to train without weight decay: relative-position tables and residual-branch scales.

        timm's optimizer factory adds every 1-d parameter (biases, norm affines) on its own.
        """
        modules = dict(self.named_modules())
        return {
            name
            for name, _ in self.named_parameters()
            if isinstance(modules[name.rpartition(".")[0]], _NO_WEIGHT_DECAY_MODULES)
        }

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, str]:
        """Regexes grouping parameter names for layer-wise learning rates: the stem, one group per block (per stage
        when ``coarse``), the head."""
        return {
            "stem": r"^stem\.",
            "blocks": r"^stages\.(\d+)\." if coarse else r"^stages\.(\d+)\.(\d+)\.",
            "head": r"^head\.",
        }

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """Feature maps of the stem and the stages, as timm models return them.

        Args:
            x: (B, in_chans, H, W) images.
            indices: feature indices (0: stem, i: stage i - 1; negative from the end), an int n for the last n, or
                None for all.
            norm: accepted for timm's interface; NASViT has no final norm.
            stop_early: skip the stages after the last requested feature.
            output_fmt: ``"NCHW"`` only.
            intermediates_only: return the list alone.

        Returns:
            The requested maps in index order, each (B, ``num_chs``, s, s) (see the module docstring), and unless
            ``intermediates_only`` first the last map computed (B, C, h, w), the input of ``forward_head``.

        Raises:
            ValueError: an index out of range or an ``output_fmt`` other than NCHW.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"NASViT returns NCHW feature maps only; got output_fmt={output_fmt!r}, pass 'NCHW'")
        take = _take_indices(len(self.stages) + 1, indices)
        stages = self.stages[: max(take)] if stop_early else self.stages
        x = self.stem(resize_input(x, self.resolution, self.resize_mode))
        intermediates = [x] if 0 in take else []
        for index, stage in enumerate(stages, start=1):
            x = checkpoint_seq(stage, x) if self.grad_checkpointing and self.training else stage(x)
            if index in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the stages after the last of ``indices`` and, when stages go or ``prune_head``, the head's layers:
        ``forward`` then returns the last kept map average-pooled, (B, num_features).

        Args:
            indices: as in :meth:`forward_intermediates`.
            prune_norm: accepted for timm's interface; NASViT has no final norm.
            prune_head: also drop the head when every stage stays.

        Returns:
            The absolute feature indices kept. ``cost`` still describes the whole subnet.
        """
        take = _take_indices(len(self.stages) + 1, indices)
        last = max(take)
        if prune_head or last < len(self.stages):
            head = self.head
            head.expand, head.mix, head.act = nn.Identity(), nn.Identity(), nn.Identity()
            self.num_features = self.head_hidden_size = self.feature_info[last]["num_chs"]
            self.reset_classifier(0)
        self.stages = self.stages[:last]
        return take


def _check_num_classes(num_classes: int | None) -> None:
    if num_classes is not None and num_classes < 0:
        raise ValueError(f"num_classes={num_classes} is negative; pass 0 for pooled features or a class count")


def _check_pool(global_pool: str) -> None:
    if global_pool not in ("avg", ""):
        raise ValueError(
            f"NASViT's head average-pools or keeps the maps; got global_pool={global_pool!r}, pass 'avg' or ''"
        )


def _check_rate(name: str, rate: float | None) -> None:
    if rate is not None and not 0.0 <= rate < 1.0:
        raise ValueError(f"{name}={rate} is not a probability in [0, 1); pass for example 0.1")


def _cost(cfg: SubnetConfig, num_classes: int) -> dict[str, int]:
    cost = cfg.space.cost(cfg, num_classes)
    return {"macs": cost.macs, "params": cost.params, "activations": cost.activations}


def _feature_info(cfg: SubnetConfig, plan: SubnetPlan) -> list[dict[str, Any]]:
    """timm's feature_info: the stem then each stage, with channels and stride relative to ``cfg.resolution``."""
    reduction = plan.stem.stride
    info = [{"num_chs": plan.stem.out_channels, "reduction": reduction, "module": "stem"}]
    for index, (spec, choice) in enumerate(zip(cfg.space.stages, cfg.stages)):
        reduction *= spec.stride
        info.append({"num_chs": choice.width, "reduction": reduction, "module": f"stages.{index}"})
    return info


def _take_indices(count: int, indices: int | Sequence[int] | None) -> list[int]:
    """Absolute indices of ``count`` features: all for None, the last n for an int n, else ``indices`` (negative
    ones count from the end), as timm's ``feature_take_indices``.

    Raises:
        ValueError: an index out of range, or no index.
    """
    if indices is None:
        indices = count
    if isinstance(indices, int):
        if not 0 < indices <= count:
            raise ValueError(f"cannot take the last {indices} of {count} feature maps; pass 1 to {count}")
        return list(range(count - indices, count))
    taken = [index + count if index < 0 else index for index in indices]
    if not taken or not all(0 <= index < count for index in taken):
        raise ValueError(
            f"feature indices {list(indices)} are not a non-empty subset of the {count} maps (stem and stages); "
            f"pass indices in [{-count}, {count - 1}]"
        )
    return taken
