"""AlphaNet's adaptive alpha-divergence: the in-place distillation loss of supernet training.

For a teacher distribution p and a student distribution q over the classes of one sample, and alpha not in {0, 1}:

    w = clamp((p / q)^alpha, 0, clamp)
    D_alpha(p || q) = sum_c q_c (w_c - 1) / (alpha (alpha - 1))

The gradient is AlphaNet's: it flows only through log q, with the per-class weights
w / alpha + 1 / (alpha (alpha - 1)), i.e. it is the gradient of the surrogate -sum_c q_c.detach() rho_c log q_c with
rho = w / alpha + 1 / (alpha (alpha - 1)). Without clipping this is exactly the gradient of D_alpha (the constant
1 / (alpha (alpha - 1)) is a baseline whose contribution sum_c q_c d(log q_c) = d(sum_c q_c) vanishes); with clipping
it is AlphaNet's clipped importance-weighted estimate. The function returns D_alpha as its value and that gradient
through a straight-through sum, value + (surrogate - surrogate.detach()).

Limits in alpha, both exact special cases:

- alpha = 1: KL(p || q) = sum_c p_c (log p_c - log q_c), unclipped. The value includes the teacher-entropy constant,
  so it is the alpha -> 1 limit of D_alpha, comparable with the other alpha and zero when p = q; the gradient is that
  of the cross entropy -sum_c p_c log q_c.
- alpha = 0: the reverse KL(q || p) = sum_c q_c (log q_c - log p_c), the alpha -> 0 limit of D_alpha; the gradient
  weights are AlphaNet's log(p_c / q_c) - 1.

Per sample the loss keeps the alpha in {alpha_min, alpha_max} whose divergence is larger, and averages over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_ALPHA_RANGE = (-1.0, 1.0)


def adaptive_alpha_divergence(
    student_logits: Tensor,
    teacher_logits: Tensor,
    alpha_min: float = -1.0,
    alpha_max: float = 1.0,
    clamp: float = 5.0,
) -> Tensor:
    """Adaptive alpha-divergence of the student from the teacher, averaged over the batch.

    The teacher is detached (it receives no gradient). The computation runs in float32, or float64 for float64
    inputs, whatever the input dtype and autocast state.

    Args:
        student_logits: Student logits, shape (B, C).
        teacher_logits: Teacher logits, shape (B, C).
        alpha_min: Negative end of the alpha pair, in [-1, 1].
        alpha_max: Positive end of the alpha pair, in [alpha_min, 1].
        clamp: Upper bound of the importance weights (p / q)^alpha; must be positive.

    Returns:
        Scalar tensor: the batch mean of max(D_alpha_min, D_alpha_max) per sample, whose gradient with respect to
        `student_logits` is the AlphaNet gradient of the selected alpha (see the module docstring).

    Raises:
        ValueError: If the logits are not matching non-empty (B, C) tensors, an alpha lies outside [-1, 1],
            alpha_min > alpha_max, or clamp is not positive.
    """
    _check_arguments(student_logits, teacher_logits, alpha_min, alpha_max, clamp)
    dtype = torch.promote_types(torch.promote_types(student_logits.dtype, teacher_logits.dtype), torch.float32)
    student_log_prob = F.log_softmax(student_logits.to(dtype), dim=1)  # (B, C), carries the gradient
    teacher_log_prob = F.log_softmax(teacher_logits.detach().to(dtype), dim=1)  # (B, C)
    value_min, weights_min = _divergence_and_weights(student_log_prob.detach(), teacher_log_prob, alpha_min, clamp)
    value_max, weights_max = _divergence_and_weights(student_log_prob.detach(), teacher_log_prob, alpha_max, clamp)
    use_min = value_min > value_max  # (B,)
    value = torch.where(use_min, value_min, value_max)  # (B,)
    class_weights = torch.where(use_min.unsqueeze(1), weights_min, weights_max)  # (B, C)
    surrogate = -(class_weights * student_log_prob).sum(dim=1)  # (B,)
    # The bracket is exactly zero, so the value is D_alpha while the gradient is the surrogate's.
    return (value + (surrogate - surrogate.detach())).mean()


@torch.no_grad()
def _divergence_and_weights(
    student_log_prob: Tensor, teacher_log_prob: Tensor, alpha: float, clamp: float
) -> tuple[Tensor, Tensor]:
    """Divergence value and gradient weights for one alpha, without gradient.

    Args:
        student_log_prob: log q, shape (B, C).
        teacher_log_prob: log p, shape (B, C).
        alpha: Divergence order in [-1, 1].
        clamp: Upper bound of the importance weights.

    Returns:
        The divergence per sample, shape (B,), and the class weights q * rho of the surrogate -sum(q rho log q),
        shape (B, C).
    """
    student_prob = student_log_prob.exp()  # q, (B, C)
    log_ratio = teacher_log_prob - student_log_prob  # log(p / q), (B, C)
    if alpha == 1.0:
        teacher_prob = teacher_log_prob.exp()  # p, (B, C)
        return (teacher_prob * log_ratio).sum(dim=1), teacher_prob
    if alpha == 0.0:
        return -(student_prob * log_ratio).sum(dim=1), student_prob * (log_ratio - 1.0)
    log_weight = (alpha * log_ratio).clamp(max=math.log(clamp))  # log w, w = clamp((p / q)^alpha, 0, clamp)
    baseline = 1.0 / (alpha * (alpha - 1.0))
    # expm1 keeps w - 1 accurate for small |alpha|, where w is close to 1.
    value = (student_prob * torch.expm1(log_weight)).sum(dim=1) * baseline
    return value, student_prob * (log_weight.exp() / alpha + baseline)


def _check_arguments(
    student_logits: Tensor, teacher_logits: Tensor, alpha_min: float, alpha_max: float, clamp: float
) -> None:
    """Raise a ValueError naming the bad value if the arguments of `adaptive_alpha_divergence` are invalid."""
    if student_logits.ndim != 2 or student_logits.numel() == 0:
        raise ValueError(
            f"student_logits must be a non-empty (batch, classes) tensor, got shape {tuple(student_logits.shape)}"
        )
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits shape {tuple(teacher_logits.shape)} differs from student_logits shape "
            f"{tuple(student_logits.shape)}; pass logits of the same (batch, classes) shape"
        )
    low, high = _ALPHA_RANGE
    for name, alpha in (("alpha_min", alpha_min), ("alpha_max", alpha_max)):
        if not low <= alpha <= high:
            raise ValueError(f"{name}={alpha} is outside [{low}, {high}]; choose alpha_min and alpha_max in that range")
    if alpha_min > alpha_max:
        raise ValueError(f"alpha_min={alpha_min} exceeds alpha_max={alpha_max}; swap them")
    if not clamp > 0:
        raise ValueError(f"clamp={clamp} must be positive (the NASViT recipe uses 5.0)")
