"""One sandwich-rule step (NASViT, Gong et al. 2022): largest subnet on the targets, the smallest and random subnets
distilled from the largest, then the two gradients combined with gradient projection.

The step fills ``parameter.grad`` and leaves clipping and the optimiser step to the caller.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from search_space import SubnetConfig
from supernet.supernet import Supernet
from supernet.training.alpha_divergence import adaptive_alpha_divergence
from supernet.training.gradient_projection import ConflictStats, GradientDots, conflict_stats, project_gradients
from supernet.training.losses import soft_cross_entropy

GradientSync = Callable[[list[Tensor | None]], list[Tensor | None]]


def sample_subnets(net: Supernet, seed: int, step: int, num_random: int) -> list[tuple[str, SubnetConfig]]:
    """The subnets of one step: ``max``, ``min`` and ``random{i}``, each random one drawn from
    ``random.Random(f"{seed}:{step}:{slot}")`` so that every rank and every resumed run draws the same."""
    space = net.space
    slots = [("max", space.max_subnet()), ("min", space.min_subnet())]
    for i in range(num_random):
        slots.append((f"random{i}", space.sample(random.Random(f"{seed}:{step}:random{i}"))))
    return slots


@dataclass
class StepResult:
    """What one sandwich step measured (host values, for logging)."""

    losses: dict[str, float]
    conflicts: ConflictStats | None
    finite: bool


class SandwichStep:
    """Runs the sandwich rule on batches and writes the combined gradient into ``.grad``.

    Args:
        net: the supernet (not wrapped: gradients are synchronised through ``sync``).
        alpha_min, alpha_max, alpha_clamp: the distillation loss's parameters.
        groups: stage name of each parameter of ``net.parameters()``, for the per-stage conflict rate.
        sync: reduces a list of gradients across processes (mean); identity when training on one.
    """

    def __init__(
        self,
        net: Supernet,
        alpha_min: float,
        alpha_max: float,
        alpha_clamp: float,
        groups: Sequence[str],
        sync: GradientSync | None = None,
    ):
        self.net = net
        self.alpha = (alpha_min, alpha_max, alpha_clamp)
        self.params = [p for p in net.parameters()]
        self.groups = list(groups)
        self.sync = sync or (lambda grads: grads)

    def run(
        self,
        micro_batches: Sequence[tuple[Tensor, Tensor]],
        subnets: Sequence[tuple[str, SubnetConfig]],
        autocast: Callable[[], torch.autocast],
        scale_loss: Callable[[Tensor], Tensor],
        project: bool,
        projection_mode: str,
        measure_conflicts: bool,
    ) -> StepResult:
        """One optimiser step's gradients over ``micro_batches`` of (images (B, 3, S, S), soft targets (B, K)).

        ``subnets[0]`` is the largest; the others are distilled from it. Losses are divided by the number of
        micro-batches, and ``scale_loss`` applies a grad scaler (identity without one). When any loss is
        non-finite on any process the gradients are cleared and ``finite`` is False.
        """
        count = len(micro_batches)
        device = self.params[0].device
        totals = {slot: torch.zeros((), device=device) for slot, _ in subnets}  # on the device: one sync a step
        largest_slot, largest_cfg = subnets[0]
        teacher_logits = []
        self.net.set_active_subnet(largest_cfg)
        for images, targets in micro_batches:
            with autocast():
                logits = self.net(images)
                loss = soft_cross_entropy(logits, targets)
            scale_loss(loss / count).backward()
            teacher_logits.append(logits.detach())
            totals[largest_slot] += loss.detach().float()
        largest = self._take_gradients()
        for slot, cfg in subnets[1:]:
            self.net.set_active_subnet(cfg)
            for (images, _), teacher in zip(micro_batches, teacher_logits):
                with autocast():
                    logits = self.net(images)
                loss = adaptive_alpha_divergence(logits, teacher, *self.alpha)
                scale_loss(loss / count).backward()
                totals[slot] += loss.detach().float()
        others = self._take_gradients()
        values = (torch.stack(list(totals.values())) / count).tolist()
        losses = dict(zip(totals, values))
        finite = self._all_finite(losses)
        if not finite:
            return StepResult(losses, None, False)
        dots = GradientDots.compute(largest, others) if (project or measure_conflicts) else None
        stats = conflict_stats(largest, others, self.groups, dots) if measure_conflicts else None
        if project:
            combined = project_gradients(largest, others, projection_mode, dots)
        else:
            combined = [_add(a, b) for a, b in zip(largest, others)]
        for param, grad in zip(self.params, combined):
            param.grad = grad
        return StepResult(losses, stats, True)

    def _take_gradients(self) -> list[Tensor | None]:
        grads = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        return self.sync(grads)

    def _all_finite(self, losses: dict[str, float]) -> bool:
        flag = torch.tensor([float(all(math.isfinite(v) for v in losses.values()))], device=self.params[0].device)
        reduced = self.sync([flag])[0]
        return bool(reduced.item() == 1.0)


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    if a is None:
        return b
    return a if b is None else a + b


def parameter_groups(net: nn.Module) -> list[str]:
    """Stage name of every parameter of ``net`` (a ``Supernet``), in ``net.parameters()`` order."""
    mapping = net.stage_of_parameter()
    return [mapping[name] for name, _ in net.named_parameters()]
