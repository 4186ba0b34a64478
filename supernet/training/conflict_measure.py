"""Gradient conflict over a dataset, as the NASViT paper measures it (its Figure 2), beside the per-step meter.

The per-step meter compares the largest subnet's gradient with the smaller subnets' on one batch, where the sign of
a cosine is mostly noise at small batch sizes. Here each of the two gradients is accumulated over many batches of
the same data first, the largest subnet's on the targets and the smaller subnet's distilled from the largest (as the
sandwich rule trains them), and then every parameter tensor (a layer) whose two gradients point against each other
(negative cosine) counts as conflicting, per stage.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from search_space import SubnetConfig
from supernet.bn_calibration import BatchNormSnapshot
from supernet.supernet import Supernet
from supernet.training.gradient_projection import ConflictStats
from supernet.training.sandwich import SandwichStep, parameter_groups


def dataset_conflicts(
    net: Supernet,
    subnet: SubnetConfig,
    batches: Sequence[tuple[Tensor, Tensor]],
    alpha: tuple[float, float, float] = (-1.0, 1.0, 5.0),
) -> ConflictStats:
    """The share of layers, overall and per stage, whose accumulated gradients of the largest subnet and of
    ``subnet`` have a negative cosine.

    The supernet runs in training mode, as a training step does (BatchNorm on batch statistics); its BatchNorm
    running statistics, ``.grad``, mode and active subnet are left as they were found, and its weights unchanged.

    Args:
        net: the supernet.
        subnet: the smaller subnet compared with the largest.
        batches: (images (B, 3, S, S), soft targets (B, K)) pairs, all held in memory; gradients are their mean.
        alpha: ``(alpha_min, alpha_max, clamp)`` of the distillation loss (the training config's ``sandwich``).

    Returns:
        Conflict shares over the tensors both subnets give a non-zero gradient (``per_group`` keyed by stage).
    """
    step = SandwichStep(net, *alpha, groups=parameter_groups(net), measure_conflicts=True)
    found_grads = [parameter.grad for parameter in step.params]
    snapshot, was_training, active = BatchNormSnapshot(net), net.training, net.active_subnet
    snapshot.save()
    net.train()
    try:
        result = step.run(batches, [("largest", net.space.max_subnet()), ("subnet", subnet)], project=False)
    finally:
        snapshot.restore()
        net.train(was_training)
        net.set_active_subnet(active)
        for parameter, grad in zip(step.params, found_grads):
            parameter.grad = grad
    if result.conflicts is None:
        raise ValueError(f"a loss was not finite over these batches ({result.losses}); no conflict share to measure")
    return result.conflicts
