"""Gradient projection between the largest subnet and the other subnets (NASViT), and the conflict meter.

g_s is the gradient of the largest subnet's loss and g_sub the summed gradient of the smallest and the random subnets,
both given as one entry per parameter tensor (None where a pass left the tensor without gradient). Where
<g_s, g_sub> < 0 the largest subnet's gradient is projected on the normal plane of g_sub before the two are summed.

`reference_combine` is the reference code's variant of the same rule (see its docstring); the recipe option
``projection.rule: reference`` selects it.

The public functions read the per-tensor inner products from a `GradientDots`. A caller who wants the projection and
the conflict statistics of the same step computes it once and passes it to both; otherwise each function computes it.
Everything stays on the gradients' device: the projection makes no host synchronisation, the statistics make one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

ProjectionMode = Literal["tensor", "global"]
_MODES: tuple[str, ...] = get_args(ProjectionMode)


@dataclass(frozen=True)
class GradientDots:
    """Per-tensor inner products of the largest subnet's gradients with the other subnets' gradients.

    A missing gradient counts as zeros, so its entries are 0. All fields are float32 tensors of shape (num_tensors,)
    on the gradients' device.

    Attributes:
        dot: <g_s, g_sub> per tensor.
        largest_sq: |g_s|^2 per tensor.
        subnet_sq: |g_sub|^2 per tensor.
    """

    dot: Tensor
    largest_sq: Tensor
    subnet_sq: Tensor

    @classmethod
    def compute(cls, largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None]) -> GradientDots:
        """Compute the inner products and squared norms in float32 (float64 gradients in float64, then rounded),
        without host synchronisation.

        Args:
            largest: g_s per parameter tensor, None where the largest subnet gave no gradient.
            subnets: g_sub per parameter tensor, None where the other subnets gave no gradient.

        Returns:
            The per-tensor inner products and squared norms.

        Raises:
            ValueError: If the sequences differ in length or a pair of gradients differs in shape.
        """
        _check_pairs(largest, subnets)
        zero = torch.zeros((), dtype=torch.float32, device=_device(largest, subnets))
        return cls(
            dot=_inner_products(largest, subnets, zero),
            largest_sq=_squared_norms(largest, zero),
            subnet_sq=_squared_norms(subnets, zero),
        )


@dataclass(frozen=True)
class ConflictStats:
    """Share of parameter tensors whose two gradients point against each other (cos(g_s, g_sub) < 0).

    Only tensors with both gradients present and non-zero are counted; a share over no such tensor is NaN.

    Attributes:
        overall: Conflicting share over all counted tensors.
        per_group: Conflicting share per group name, in order of first appearance.
        num_tensors: Number of counted tensors.
    """

    overall: float
    per_group: dict[str, float]
    num_tensors: int


def project_gradients(
    largest: Sequence[Tensor | None],
    subnets: Sequence[Tensor | None],
    mode: ProjectionMode = "tensor",
    dots: GradientDots | None = None,
) -> list[Tensor | None]:
    """Combine the largest subnet's gradient with the other subnets' gradient, projecting away conflicts.

    Where <g_s, g_sub> < 0 and g_sub != 0, g_s becomes g_s - (<g_s, g_sub> / |g_sub|^2) g_sub; the result is
    g_sub + g_s. In mode "tensor" the test and projection run per parameter tensor; in mode "global" over the
    concatenation of all tensors as one vector, so every tensor uses the same coefficient. A tensor with one gradient
    missing gets the other one back unchanged (the same tensor object); with both missing it gets None. The inputs
    are not modified.

    Args:
        largest: g_s per parameter tensor, None where the largest subnet gave no gradient.
        subnets: g_sub per parameter tensor, None where the other subnets gave no gradient.
        mode: "tensor" or "global".
        dots: The `GradientDots` of these same gradients, if already computed.

    Returns:
        The combined gradient per parameter tensor, each with its input's shape.

    Raises:
        ValueError: If the mode is unknown, the sequences differ in length, a pair differs in shape, or `dots` has
            the wrong length.
    """
    if mode not in _MODES:
        raise ValueError(f"mode={mode!r} is not one of {_MODES}; use 'tensor' (per parameter tensor) or 'global'")
    dots = _resolve_dots(largest, subnets, dots)
    subnet_scales = 1.0 - _projection_coefficients(dots, mode)  # (num_tensors,)
    return [
        combine_gradient(g_s, g_sub, scale)
        for g_s, g_sub, scale in zip(largest, subnets, subnet_scales.unbind(0), strict=True)
    ]


def conflict_stats(
    largest: Sequence[Tensor | None],
    subnets: Sequence[Tensor | None],
    groups: Sequence[str],
    dots: GradientDots | None = None,
) -> ConflictStats:
    """Measure the share of parameter tensors with cos(g_s, g_sub) < 0, overall and per group.

    Makes one host synchronisation.

    Args:
        largest: g_s per parameter tensor, None where the largest subnet gave no gradient.
        subnets: g_sub per parameter tensor, None where the other subnets gave no gradient.
        groups: Group name per parameter tensor, e.g. the stage name ("s1", "s4", "head").
        dots: The `GradientDots` of these same gradients, if already computed.

    Returns:
        The conflict shares over the tensors with both gradients present and non-zero.

    Raises:
        ValueError: If `groups` or `subnets` differ in length from `largest`, a pair differs in shape, or `dots` has
            the wrong length.
    """
    if len(groups) != len(largest):
        raise ValueError(f"got {len(groups)} group names for {len(largest)} gradient tensors; pass one per tensor")
    dots = _resolve_dots(largest, subnets, dots)
    counted = (dots.largest_sq > 0) & (dots.subnet_sq > 0)  # (num_tensors,)
    conflicting = counted & (dots.dot < 0)  # (num_tensors,)
    counted_host, conflicting_host = torch.stack((counted, conflicting)).tolist()  # the one host synchronisation
    totals: dict[str, list[int]] = {name: [0, 0] for name in groups}  # name -> [counted, conflicting]
    for name, is_counted, is_conflicting in zip(groups, counted_host, conflicting_host, strict=True):
        totals[name][0] += is_counted
        totals[name][1] += is_conflicting
    num_tensors = sum(counted_host)
    return ConflictStats(
        overall=_share(sum(conflicting_host), num_tensors),
        per_group={name: _share(conflicts, total) for name, (total, conflicts) in totals.items()},
        num_tensors=num_tensors,
    )


def reference_combine(
    largest: Sequence[Tensor | None],
    subnets: Sequence[Tensor | None],
    units: Sequence[int],
    project: bool,
    dots: GradientDots | None = None,
    max_scale: float = 2.0,
    eps: float = 1e-6,
) -> list[Tensor | None]:
    """Combine the two gradients as the NASViT reference code's ``Constraint`` optimiser does.

    With ``project``, each unit's g_sub is scaled by 1 + clamp(-<g_sub, g_s> / (eps + |g_sub|^2), 0, max_scale)
    before g_s is added (the paper's projection of g_s, written on g_sub, plus the reference code's clamp and eps);
    without, the two are summed. A unit is one tensor of the reference code: ``units`` gives the unit of every
    tensor, and the inner products and norms are summed over a unit's tensors. Where a unit holds no subnet
    gradient at all, its tensors get g_s twice (the reference hands the largest subnet's stored gradient back as the
    gradient, then adds it once more); a tensor without g_sub in a unit that has some counts g_sub as zeros. A
    unit without any g_s gets g_sub unchanged (the same tensor objects); a tensor without g_s in a unit that has some
    counts g_s as zeros (its g_sub is scaled with the unit's). The inputs are not modified.

    Args:
        largest, subnets: g_s and g_sub per parameter tensor, None where that side gave no gradient.
        units: Unit index per parameter tensor, in [0, number of units).
        project: Scale g_sub as above; False sums the gradients.
        dots: The `GradientDots` of these same gradients, if already computed.
        max_scale, eps: Upper clamp of the extra scale of g_sub and what is added to |g_sub|^2 (the reference: 2, 1e-6).

    Returns:
        The combined gradient per parameter tensor, each with its input's shape.

    Raises:
        ValueError: If `units` differs in length from `largest`, the sequences differ in length, a pair differs in
            shape, or `dots` has the wrong length.
    """
    if len(units) != len(largest):
        raise ValueError(f"got {len(units)} unit indices for {len(largest)} gradient tensors; pass one per tensor")
    has_subnet, has_largest = _units_with_gradients(units, largest, subnets)
    scales: list[Tensor | None] = [None] * len(largest)
    if project:
        scales = _unit_scales(largest, subnets, units, _resolve_dots(largest, subnets, dots), max_scale, eps)
    else:
        _check_pairs(largest, subnets)
    parts = zip(largest, subnets, units, scales, strict=True)
    return [_combined_tensor(a, b, scale, has_largest[unit], has_subnet[unit]) for a, b, unit, scale in parts]


def _units_with_gradients(
    units: Sequence[int], largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None]
) -> tuple[list[bool], list[bool]]:
    """Per unit: whether any of its tensors has g_sub, and whether any has g_s."""
    has_subnet = [False] * (max(units, default=-1) + 1)
    has_largest = list(has_subnet)
    for unit, g_s, g_sub in zip(units, largest, subnets, strict=True):
        has_subnet[unit] |= g_sub is not None
        has_largest[unit] |= g_s is not None
    return has_subnet, has_largest


def _unit_scales(
    largest: Sequence[Tensor | None],
    subnets: Sequence[Tensor | None],
    units: Sequence[int],
    dots: GradientDots,
    max_scale: float,
    eps: float,
) -> list[Tensor]:
    """The scale 1 + clamp(-<g_sub, g_s> / (eps + |g_sub|^2), 0, max_scale) of each tensor's unit, as 0-d tensors."""
    index = torch.tensor(list(units), device=dots.dot.device)  # (num_tensors,)
    count = max(units, default=-1) + 1
    unit_dot = dots.dot.new_zeros(count).index_add_(0, index, dots.dot)  # (num_units,)
    unit_sq = dots.subnet_sq.new_zeros(count).index_add_(0, index, dots.subnet_sq)
    unit_scale = 1.0 + (-unit_dot / (eps + unit_sq)).clamp(0.0, max_scale)  # (num_units,)
    return list(unit_scale[index].unbind(0))


def _combined_tensor(
    g_s: Tensor | None, g_sub: Tensor | None, scale: Tensor | None, unit_has_largest: bool, unit_has_subnet: bool
) -> Tensor | None:
    """One tensor of :func:`reference_combine`'s result."""
    if g_s is None:  # counted as zeros in a unit with some g_s (the reference scales the whole tensor)
        keep = scale is None or g_sub is None or not unit_has_largest
        return g_sub if keep else g_sub * scale
    if g_sub is None:
        return g_s if unit_has_subnet else g_s + g_s
    return g_s + g_sub if scale is None else torch.addcmul(g_s, g_sub, scale)


def _projection_coefficients(dots: GradientDots, mode: ProjectionMode) -> Tensor:
    """Coefficient c per tensor such that the projected g_s is g_s - c g_sub.

    Args:
        dots: Per-tensor inner products and squared norms, fields of shape (num_tensors,).
        mode: "tensor" or "global".

    Returns:
        Float32 coefficients, shape (num_tensors,): <g_s, g_sub> / |g_sub|^2 where that inner product is negative
        and g_sub is non-zero, 0 elsewhere (in mode "global" one shared value).
    """
    dot, subnet_sq = dots.dot, dots.subnet_sq
    if mode == "global":
        dot, subnet_sq = dot.sum(), subnet_sq.sum()
    conflict = (dot < 0) & (subnet_sq > 0)
    coefficients = torch.where(conflict, dot / torch.where(subnet_sq > 0, subnet_sq, 1.0), 0.0)
    return coefficients.expand(dots.dot.shape)


def combine_gradient(g_s: Tensor | None, g_sub: Tensor | None, subnet_scale: Tensor | None = None) -> Tensor | None:
    """Return g_s + subnet_scale * g_sub, i.e. g_sub + (g_s - c g_sub), or the plain sum g_s + g_sub without
    ``subnet_scale``; a missing side yields the other one (the same tensor object)."""
    if g_s is None:
        return g_sub
    if g_sub is None:
        return g_s
    return g_s + g_sub if subnet_scale is None else torch.addcmul(g_s, g_sub, subnet_scale)


def _resolve_dots(
    largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None], dots: GradientDots | None
) -> GradientDots:
    """Return `dots` after checking its length against the gradients, or compute it when None."""
    if dots is None:
        return GradientDots.compute(largest, subnets)
    _check_pairs(largest, subnets)
    if dots.dot.shape[0] != len(largest):
        raise ValueError(
            f"dots covers {dots.dot.shape[0]} tensors but {len(largest)} gradients were given; "
            "compute it with GradientDots.compute on these same gradients"
        )
    return dots


def _inner_products(largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None], zero: Tensor) -> Tensor:
    """Inner product <g_s, g_sub> per tensor in float32, 0 where a gradient is missing.

    Args:
        largest: g_s per parameter tensor or None.
        subnets: g_sub per parameter tensor or None.
        zero: Float32 scalar zero on the gradients' device.

    Returns:
        Inner products, shape (len(largest),).
    """
    dots = [
        torch.dot(_wide(g_s), _wide(g_sub)).float() if g_s is not None and g_sub is not None else zero
        for g_s, g_sub in zip(largest, subnets, strict=True)
    ]
    return torch.stack(dots) if dots else zero.new_zeros(0)


def _squared_norms(grads: Sequence[Tensor | None], zero: Tensor) -> Tensor:
    """Squared L2 norm per tensor in float32, 0 for a missing gradient.

    Args:
        grads: Gradient per parameter tensor or None.
        zero: Float32 scalar zero on the gradients' device.

    Returns:
        Squared norms, shape (len(grads),).
    """
    norms = [torch.linalg.vector_norm(_wide(g)).float() if g is not None else zero for g in grads]
    return torch.stack(norms).square() if norms else zero.new_zeros(0)


def _wide(grad: Tensor) -> Tensor:
    """``grad`` flattened, in float32 or wider (float64 stays float64)."""
    return grad.reshape(-1).to(torch.promote_types(grad.dtype, torch.float32))


def _check_pairs(largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None]) -> None:
    """Raise a ValueError if the gradient sequences differ in length or a present pair differs in shape."""
    if len(largest) != len(subnets):
        raise ValueError(
            f"largest has {len(largest)} gradient tensors but subnets has {len(subnets)}; pass one entry per "
            "parameter tensor in the same order, None where a tensor has no gradient"
        )
    for index, (g_s, g_sub) in enumerate(zip(largest, subnets, strict=True)):
        if g_s is not None and g_sub is not None and g_s.shape != g_sub.shape:
            raise ValueError(
                f"gradient {index}: largest has shape {tuple(g_s.shape)} but subnets has {tuple(g_sub.shape)}; "
                "the two sequences must list the same parameter tensors in the same order"
            )


def _device(largest: Sequence[Tensor | None], subnets: Sequence[Tensor | None]) -> torch.device:
    """Device of the first present gradient, the CPU if there is none."""
    return next((g.device for g in (*largest, *subnets) if g is not None), torch.device("cpu"))


def _share(part: int, total: int) -> float:
    """part / total, NaN for an empty total."""
    return part / total if total else math.nan
