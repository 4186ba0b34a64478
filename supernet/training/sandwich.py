"""One sandwich-rule step (NASViT, Gong et al. 2022): largest subnet on the targets, the smallest and random subnets
distilled from the largest, then the two gradients combined with gradient projection.

The step fills ``parameter.grad`` and leaves the optimiser step to the caller, and with it what a non-finite loss
asks for (skipping the step on every process and putting back the BatchNorm statistics, as
``TrainingEngine._optimizer_step`` does for ``nasvit train``). With the paper's rule it leaves clipping to the caller
too; with the reference code's rule (``rule="reference"``) it clips the smaller subnets' gradient itself, before the
largest subnet's gradient is added, as the reference's training loop does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from search_space import SubnetConfig
from supernet.elastic import SwitchableScale
from supernet.supernet import Supernet
from supernet.training.alpha_divergence import adaptive_alpha_divergence
from supernet.training.gradient_projection import (
    ConflictStats,
    GradientDots,
    combine_gradient,
    conflict_stats,
    project_gradients,
    reference_combine,
)
from supernet.training.losses import soft_cross_entropy
from supernet.training.progressive import cap_resolution

GradientSync = Callable[[list[Tensor | None]], list[Tensor | None]]
CombineRule = Literal["paper", "reference"]


def sample_subnets(
    net: Supernet, seed: int, step: int, num_random: int, resolution_cap: int | None = None
) -> list[tuple[str, SubnetConfig]]:
    """The subnets of one step: ``max``, ``min`` and ``random{i}``, each random one drawn from
    ``random.Random(f"{seed}:{step}:{slot}")`` so that every rank and every resumed run draws the same.

    ``resolution_cap`` (progressive learning) caps every slot's resolution (:func:`cap_resolution`): the largest
    subnet trains at the cap, and a random one above it draws its resolution again from those up to the cap."""
    space = net.space
    cap = resolution_cap if resolution_cap is not None else max(space.resolutions)
    slots = [("max", cap_resolution(space.max_subnet(), cap)), ("min", space.min_subnet())]
    for i in range(num_random):
        rng = random.Random(f"{seed}:{step}:random{i}")
        slots.append((f"random{i}", cap_resolution(space.sample(rng), cap, rng)))
    return slots


@dataclass
class StepResult:
    """What one step's gradients measured on this process (host values, for logging)."""

    losses: dict[str, float]
    conflicts: ConflictStats | None = None
    clipped_norm: float | None = None  # set when the step clipped itself: the norm before clipping

    @property
    def finite(self) -> bool:
        """Every loss of this process is finite (a step is taken only when it holds on every process)."""
        return all(math.isfinite(value) for value in self.losses.values())


class SandwichStep:
    """Runs the sandwich rule on batches and writes the combined gradient into ``.grad``.

    The settings of a run are fixed here; :meth:`run` takes what changes from step to step. A step whose loss is
    not finite on this process leaves ``.grad`` empty; its forward passes have moved the BatchNorm statistics, which
    the caller puts back (:class:`~supernet.bn_calibration.BatchNormSnapshot`).

    Args:
        net: the supernet (not wrapped: gradients are synchronised through ``sync``).
        alpha_min, alpha_max, alpha_clamp: the distillation loss's parameters.
        groups: stage name of each parameter of ``net.parameters()``, for the per-stage conflict rate.
        sync: reduces a list of gradients across processes (mean); identity when training on one.
        rule: ``paper`` combines with :func:`project_gradients` and leaves clipping to the caller; ``reference``
            clips the smaller subnets' summed gradient to ``clip_grad`` (global norm) and combines with
            :func:`reference_combine`, each switchable scaling layer's vectors forming one unit (one tensor in the
            reference code).
        clip_grad: max global norm of the smaller subnets' gradient under the reference rule; None: no clipping.
        projection_mode: how :func:`project_gradients` projects under the paper's rule.
        measure_conflicts: measure the gradient-conflict rates of every step (``StepResult.conflicts``).
        autocast: the mixed-precision context of the forward passes.
        scale_loss: a grad scaler's ``scale`` (None: none; the reference rule clips, so it needs unscaled gradients).
    """

    def __init__(
        self,
        net: Supernet,
        alpha_min: float,
        alpha_max: float,
        alpha_clamp: float,
        groups: Sequence[str],
        sync: GradientSync | None = None,
        rule: CombineRule = "paper",
        clip_grad: float | None = None,
        projection_mode: str = "tensor",
        measure_conflicts: bool = False,
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        scale_loss: Callable[[Tensor], Tensor] | None = None,
    ):
        if rule not in ("paper", "reference"):
            raise ValueError(f"rule={rule!r} is not 'paper' or 'reference'")
        self.net = net
        self.alpha = (alpha_min, alpha_max, alpha_clamp)
        self.params = [p for p in net.parameters()]
        self.groups = list(groups)
        self.sync = sync or (lambda grads: grads)
        self.rule, self.clip_grad = rule, clip_grad
        self.projection_mode, self.measure_conflicts = projection_mode, measure_conflicts
        self.autocast = autocast
        self.scale_loss = scale_loss or (lambda loss: loss)
        self.units = reference_units(net) if rule == "reference" else None

    def run(
        self,
        micro_batches: Sequence[tuple[Tensor, Tensor]],
        subnets: Sequence[tuple[str, SubnetConfig]],
        project: bool,
    ) -> StepResult:
        """One optimiser step's gradients over ``micro_batches`` of (images (B, 3, S, S), soft targets (B, K)).

        ``subnets[0]`` is the largest; the others are distilled from it. Losses are divided by the number of
        micro-batches. When a loss of this process is not finite, ``.grad`` is left empty and ``finite`` is False.
        ``project`` False sums the gradients (the reference rule keeps its other details).
        """
        totals = {slot: torch.zeros((), device=self.params[0].device) for slot, _ in subnets}  # one sync a step
        teacher_logits = self._largest_pass(micro_batches, subnets[0], totals)
        largest = self._take_gradients()
        for slot, cfg in subnets[1:]:
            self._distilled_pass(micro_batches, cfg, teacher_logits, totals, slot)
        others = self._take_gradients()
        values = (torch.stack(list(totals.values())) / len(micro_batches)).tolist()
        result = StepResult(dict(zip(totals, values)))
        if result.finite:
            result.clipped_norm = _clip_(others, self.clip_grad) if self.rule == "reference" else None
            result.conflicts = self._combine(largest, others, project)
        return result

    def _largest_pass(self, micro_batches, largest: tuple[str, SubnetConfig], totals: dict) -> list[Tensor]:
        """Backward of the largest subnet's loss on the targets; returns its (B, K) logits per micro-batch."""
        slot, cfg = largest
        teacher_logits = []
        self.net.set_active_subnet(cfg)
        for images, targets in micro_batches:
            with self.autocast():
                logits = self.net(images)
                loss = soft_cross_entropy(logits, targets)
            self.scale_loss(loss / len(micro_batches)).backward()
            teacher_logits.append(logits.detach())
            totals[slot] += loss.detach().float()
        return teacher_logits

    def _distilled_pass(self, micro_batches, cfg: SubnetConfig, teacher_logits: list, totals: dict, slot: str) -> None:
        """Backward of subnet ``cfg``'s distillation loss against the largest subnet's logits."""
        self.net.set_active_subnet(cfg)
        for (images, _), teacher in zip(micro_batches, teacher_logits):
            with self.autocast():
                logits = self.net(images)
            loss = adaptive_alpha_divergence(logits, teacher, *self.alpha)
            self.scale_loss(loss / len(micro_batches)).backward()
            totals[slot] += loss.detach().float()

    def _combine(self, largest: list, others: list, project: bool) -> ConflictStats | None:
        """Write the combined gradient into ``.grad``; returns the conflict rates when they are measured."""
        measure = self.measure_conflicts
        dots = GradientDots.compute(largest, others) if (project or measure) else None
        stats = conflict_stats(largest, others, self.groups, dots) if measure else None
        if self.units is not None:
            combined = reference_combine(largest, others, self.units, project, dots)
        elif project:
            combined = project_gradients(largest, others, self.projection_mode, dots)
        else:
            combined = [combine_gradient(a, b) for a, b in zip(largest, others)]
        for param, grad in zip(self.params, combined):
            param.grad = grad
        return stats

    def _take_gradients(self) -> list[Tensor | None]:
        grads = [p.grad for p in self.params]
        for p in self.params:
            p.grad = None
        return self.sync(grads)


def _clip_(grads: list[Tensor | None], max_norm: float | None) -> float:
    """Scale ``grads`` in place to a global L2 norm of at most ``max_norm`` (as ``clip_grad_norm_``); returns the
    norm before clipping (None: measure only)."""
    present = [g for g in grads if g is not None]
    if not present:
        return 0.0
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    if max_norm is not None:
        factor = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for grad in present:
            grad.mul_(factor)
    return float(norm)


def parameter_groups(net: nn.Module) -> list[str]:
    """Stage name of every parameter of ``net`` (a ``Supernet``), in ``net.parameters()`` order."""
    mapping = net.stage_of_parameter()
    return [mapping[name] for name, _ in net.named_parameters()]


def reference_units(net: nn.Module) -> list[int]:
    """Unit index of every parameter of ``net`` in ``net.parameters()`` order, as the reference code holds them:
    the vectors of one switchable scaling layer form one unit (there, rows of one (10, 8, C) tensor); every other
    parameter is a unit of its own."""
    owner = {}
    for module_name, module in net.named_modules():
        if isinstance(module, SwitchableScale):
            owner.update({name: module_name for name, _ in module.named_parameters(prefix=module_name)})
    index: dict[str, int] = {}
    return [index.setdefault(owner.get(name, name), len(index)) for name, _ in net.named_parameters()]
