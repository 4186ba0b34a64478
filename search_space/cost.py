"""Analytical cost model: multiply-accumulates, parameters and activations of a subnet (batch 1).

What is counted, per layer of :mod:`search_space.plan`:

- **macs**: one per multiply-accumulate of every conv (dense, grouped, depthwise, 1x1 on pooled features),
  every linear layer (Q, K, V, output projection, both talking-head mixes, MLPs, classifier) and
  every attention matmul (Q K^T and attention times V). Bias additions, norms, activations, softmax,
  pooling, the relative-position bias add, residual adds and the input resize are not counted. This
  equals ``torch.utils.flop_counter.FlopCounterMode`` total / 2 on the exported model.
- **params**: every parameter tensor of the exported static model: conv and linear weights and biases,
  BatchNorm and LayerNorm affine weights, the switchable scales selected for the subnet (two vectors of
  C per transformer block) and the relative-position table cropped to the block's window
  ((2 rows - 1) x (2 cols - 1) x heads). Buffers (BN running statistics, index tables) are not counted.
- **activations**: output elements of every conv and linear layer (the Fast Compound Scaling
  definition), including the talking-head linears; attention matmuls, norms and activations are not
  conv or linear layers and are not counted.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from search_space.plan import (
    BlockPlan,
    FusedMBConvPlan,
    HeadPlan,
    MBConvPlan,
    PartPlan,
    StemPlan,
    TransformerPlan,
    walk_parts,
)
from search_space.spec import SpaceDefinition
from search_space.subnet import SubnetConfig


@dataclass(frozen=True)
class Cost:
    """Cost of a network or a part of one, per image."""

    macs: int
    params: int
    activations: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.params + other.params, self.activations + other.activations)

    def get(self, metric: str) -> int:
        """Value of ``metric`` ('macs', 'params' or 'activations')."""
        if metric not in COST_METRICS:
            raise KeyError(f"unknown cost metric {metric!r}; use one of {list(COST_METRICS)}")
        return getattr(self, metric)


COST_METRICS = ("macs", "params", "activations")
ZERO = Cost(0, 0, 0)


def _conv(in_ch: int, out_ch: int, kernel: int, out_size: int, groups: int = 1, bias: bool = False) -> Cost:
    weights = out_ch * (in_ch // groups) * kernel * kernel
    outputs = out_ch * out_size * out_size
    return Cost(weights * out_size * out_size, weights + (out_ch if bias else 0), outputs)


def _linear(in_features: int, out_features: int, rows: int, bias: bool = True) -> Cost:
    weights = in_features * out_features
    return Cost(weights * rows, weights + (out_features if bias else 0), out_features * rows)


def _norm(channels: int) -> Cost:
    return Cost(0, 2 * channels, 0)


def stem_cost(plan: StemPlan) -> Cost:
    return _conv(plan.in_channels, plan.out_channels, plan.kernel, plan.out_size) + _norm(plan.out_channels)


def mbconv_cost(plan: MBConvPlan) -> Cost:
    total = ZERO
    if plan.expand:
        total += _conv(plan.in_channels, plan.mid_channels, 1, plan.in_size) + _norm(plan.mid_channels)
    groups = plan.mid_channels // plan.group_size
    total += _conv(plan.mid_channels, plan.mid_channels, plan.kernel, plan.out_size, groups=groups)
    return total + _norm(plan.mid_channels) + _squeeze_project_shortcut(plan)


def fused_mbconv_cost(plan: FusedMBConvPlan) -> Cost:
    total = _conv(plan.in_channels, plan.mid_channels, plan.kernel, plan.out_size) + _norm(plan.mid_channels)
    return total + _squeeze_project_shortcut(plan)


def _squeeze_project_shortcut(plan: MBConvPlan | FusedMBConvPlan) -> Cost:
    """What an MBConv and a Fused-MBConv block share after their k x k conv: SE, projection, shortcut conv."""
    total = ZERO
    if plan.se_channels:
        total += _conv(plan.mid_channels, plan.se_channels, 1, 1, bias=True)
        total += _conv(plan.se_channels, plan.mid_channels, 1, 1, bias=True)
    total += _conv(plan.mid_channels, plan.out_channels, 1, plan.out_size) + _norm(plan.out_channels)
    if plan.shortcut_conv:
        total += _conv(plan.in_channels, plan.out_channels, 1, plan.out_size)
    return total


def transformer_cost(plan: TransformerPlan) -> Cost:
    c, tokens, heads = plan.channels, plan.tokens, plan.heads
    window_tokens = plan.window_tokens
    total = _norm(c) + _norm(c) + _norm(c)
    total += _linear(c, c, tokens) + _linear(c, c, tokens) + _linear(c, plan.value_channels, tokens)
    total += _conv(plan.value_channels, plan.value_channels, plan.value_kernel, plan.size, groups=plan.value_channels)
    pairs = tokens * window_tokens  # query-key pairs summed over windows
    attention_matmuls = pairs * plan.head_dim * heads + pairs * plan.value_channels
    total += Cost(attention_matmuls, 0, 0)
    total += _linear(heads, heads, pairs) + _linear(heads, heads, pairs)  # talking heads, before and after softmax
    total += _linear(plan.value_channels, c, tokens)
    for _ in range(2):
        total += _linear(c, plan.mlp_hidden, tokens) + _linear(plan.mlp_hidden, c, tokens)
        if plan.mlp_dwconv:
            total += _conv(plan.mlp_hidden, plan.mlp_hidden, 3, plan.size, groups=plan.mlp_hidden)
    table_rows = (2 * plan.window_rows - 1) * (2 * plan.window_cols - 1)
    total += Cost(0, 2 * c + table_rows * heads, 0)  # switchable scales (attention, MLP) + position table
    return total


def head_cost(plan: HeadPlan) -> Cost:
    total = _conv(plan.in_channels, plan.expand_channels, 1, plan.size) + _norm(plan.expand_channels)
    total += _conv(plan.expand_channels, plan.width, 1, 1)
    return total + _linear(plan.width, plan.num_classes, 1)


def block_cost(plan: BlockPlan) -> Cost:
    if isinstance(plan, MBConvPlan):
        return mbconv_cost(plan)
    return fused_mbconv_cost(plan) if isinstance(plan, FusedMBConvPlan) else transformer_cost(plan)


def part_cost(plans: tuple[PartPlan, ...]) -> Cost:
    """Summed cost of the plans of one part of a subnet (the stem, a stage's blocks or the head)."""
    total = ZERO
    for plan in plans:
        if isinstance(plan, StemPlan):
            total += stem_cost(plan)
        elif isinstance(plan, HeadPlan):
            total += head_cost(plan)
        else:
            total += block_cost(plan)
    return total


def _part_figures(plans: tuple[PartPlan, ...]) -> tuple[int, int, int]:
    cost = part_cost(plans)
    return cost.macs, cost.params, cost.activations


class CostModel:
    """Costs of the subnets of one space, each part costed once per signature (see
    :func:`~search_space.plan.walk_parts`): tens of thousands of subnets a second."""

    def __init__(self):
        self._memo: dict = {}  # part signature -> ((macs, params, activations), output width, output side)

    def cost(self, cfg: SubnetConfig, num_classes: int | None = None) -> Cost:
        """MACs, parameters and activations of ``cfg`` per image (``num_classes`` defaults to the space's)."""
        macs = params = activations = 0
        for part_macs, part_params, part_activations in walk_parts(cfg, _part_figures, self._memo, num_classes):
            macs, params, activations = macs + part_macs, params + part_params, activations + part_activations
        return Cost(macs, params, activations)


_MODELS: dict[int, CostModel] = {}  # id(space) -> its model, dropped when the space is (so an id is never reused)


def cost_model(space: SpaceDefinition) -> CostModel:
    """The one :class:`CostModel` of this space object, made on first use and freed with the space.

    Keyed by identity: hashing a space field by field would cost more than a memoised costing.
    """
    model = _MODELS.get(id(space))
    if model is None:
        model = _MODELS[id(space)] = CostModel()
        weakref.finalize(space, _MODELS.pop, id(space), None)
    return model
