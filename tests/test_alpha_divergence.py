"""Tests of the adaptive alpha-divergence against hand-written references of AlphaNet's formula."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from supernet.training import adaptive_alpha_divergence

ALPHAS = [-1.0, -0.5, 0.5, 1.0]


def reference_divergence(student_logits: Tensor, teacher_logits: Tensor, alpha: float, clamp: float) -> Tensor:
    """D_alpha per sample written straight from the formula: sum q (clamp((p/q)^alpha, 0, clamp) - 1) / (a(a-1))."""
    p = teacher_logits.softmax(dim=1)
    q = student_logits.softmax(dim=1)
    if alpha == 1.0:
        return (p * (p.log() - q.log())).sum(dim=1)  # KL(p || q)
    w = ((p / q) ** alpha).clamp(0.0, clamp)
    return (q * (w - 1.0)).sum(dim=1) / (alpha * (alpha - 1.0))


def reference_surrogate(student_logits: Tensor, teacher_logits: Tensor, alpha: float, clamp: float) -> Tensor:
    """Per-sample surrogate -sum q.detach() rho log q, rho = w/alpha + 1/(alpha(alpha-1)); -sum p log q at alpha 1."""
    p = teacher_logits.softmax(dim=1).detach()
    log_q = student_logits.log_softmax(dim=1)
    if alpha == 1.0:
        return -(p * log_q).sum(dim=1)
    q = log_q.exp().detach()
    w = ((p / q) ** alpha).clamp(0.0, clamp)
    rho = w / alpha + 1.0 / (alpha * (alpha - 1.0))
    return -(q * rho * log_q).sum(dim=1)


def random_logits(seed: int, batch: int = 6, classes: int = 10) -> tuple[Tensor, Tensor]:
    """Student and teacher logits in float64, far enough apart that the clamp at 5 is active somewhere."""
    generator = torch.Generator().manual_seed(seed)
    student = 2.0 * torch.randn(batch, classes, generator=generator, dtype=torch.float64)
    teacher = 2.0 * torch.randn(batch, classes, generator=generator, dtype=torch.float64)
    return student.requires_grad_(), teacher.requires_grad_()


def student_grad(loss: Tensor, student: Tensor) -> Tensor:
    """Gradient of a scalar loss with respect to the student logits."""
    (grad,) = torch.autograd.grad(loss, student)
    return grad


@pytest.mark.parametrize("alpha", ALPHAS)
def test_value_matches_formula(alpha: float) -> None:
    student, teacher = random_logits(seed=0)
    loss = adaptive_alpha_divergence(student, teacher, alpha_min=alpha, alpha_max=alpha, clamp=5.0)
    expected = reference_divergence(student, teacher, alpha, clamp=5.0).mean()
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha", [-1.0, -0.5, 0.5])
def test_clamp_is_active_in_fixture(alpha: float) -> None:
    student, teacher = random_logits(seed=0)
    clamped = reference_divergence(student, teacher, alpha, clamp=5.0)
    unclamped = reference_divergence(student, teacher, alpha, clamp=1e12)
    assert not torch.allclose(clamped, unclamped)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gradient_matches_weighted_log_q_surrogate(alpha: float) -> None:
    student, teacher = random_logits(seed=0)
    loss = adaptive_alpha_divergence(student, teacher, alpha_min=alpha, alpha_max=alpha, clamp=5.0)
    expected = reference_surrogate(student, teacher, alpha, clamp=5.0).mean()
    torch.testing.assert_close(student_grad(loss, student), student_grad(expected, student), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_gradient_is_exact_divergence_gradient_without_clipping(alpha: float) -> None:
    student, teacher = random_logits(seed=2)
    loss = adaptive_alpha_divergence(student, teacher, alpha_min=alpha, alpha_max=alpha, clamp=1e12)
    exact = reference_divergence(student, teacher, alpha, clamp=1e12).mean()
    torch.testing.assert_close(student_grad(loss, student), student_grad(exact, student), rtol=1e-9, atol=1e-12)


def test_alpha_zero_is_reverse_kl_with_its_gradient() -> None:
    student, teacher = random_logits(seed=3)
    loss = adaptive_alpha_divergence(student, teacher, alpha_min=0.0, alpha_max=0.0)
    log_q, log_p = student.log_softmax(dim=1), teacher.log_softmax(dim=1)
    reverse_kl = (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()
    torch.testing.assert_close(loss, reverse_kl, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(student_grad(loss, student), student_grad(reverse_kl, student), rtol=1e-9, atol=1e-12)


def test_small_alpha_approaches_reverse_kl() -> None:
    student, teacher = random_logits(seed=4)
    near_zero = adaptive_alpha_divergence(student.float(), teacher.float(), alpha_min=1e-5, alpha_max=1e-5, clamp=1e6)
    at_zero = adaptive_alpha_divergence(student.float(), teacher.float(), alpha_min=0.0, alpha_max=0.0)
    torch.testing.assert_close(near_zero, at_zero, rtol=1e-3, atol=0.0)


def test_per_sample_selection_of_larger_divergence() -> None:
    teacher = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    student = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    at_min = reference_divergence(student, teacher, -1.0, clamp=5.0)
    at_max = reference_divergence(student, teacher, 1.0, clamp=5.0)
    assert at_min[0] < at_max[0] and at_min[1] > at_max[1], "fixture must exercise both branches"

    loss = adaptive_alpha_divergence(student, teacher, alpha_min=-1.0, alpha_max=1.0, clamp=5.0)
    torch.testing.assert_close(loss, torch.stack((at_max[0], at_min[1])).mean(), rtol=1e-12, atol=1e-12)
    selected = torch.stack(
        (
            reference_surrogate(student, teacher, 1.0, clamp=5.0)[0],
            reference_surrogate(student, teacher, -1.0, clamp=5.0)[1],
        )
    ).mean()
    torch.testing.assert_close(student_grad(loss, student), student_grad(selected, student), rtol=1e-10, atol=1e-12)


def test_teacher_receives_no_gradient() -> None:
    student, teacher = random_logits(seed=5)
    adaptive_alpha_divergence(student, teacher).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


@pytest.mark.parametrize("alpha_pair", [(-1.0, 1.0), (-0.5, 0.5), (0.0, 0.0)])
def test_identical_distributions_give_zero_loss_and_gradient(alpha_pair: tuple[float, float]) -> None:
    logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(6))
    student = logits.clone().requires_grad_()
    loss = adaptive_alpha_divergence(student, logits, *alpha_pair)
    torch.testing.assert_close(loss, torch.zeros(()), rtol=0.0, atol=1e-6)
    torch.testing.assert_close(student_grad(loss, student), torch.zeros_like(logits), rtol=0.0, atol=1e-6)


def test_low_precision_logits_are_computed_in_float32() -> None:
    student, teacher = random_logits(seed=7)
    loss = adaptive_alpha_divergence(student.bfloat16(), teacher.bfloat16())
    expected = adaptive_alpha_divergence(student.bfloat16().float(), teacher.bfloat16().float())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"alpha_min": -1.5}, "alpha_min=-1.5"),
        ({"alpha_max": 2.0}, "alpha_max=2.0"),
        ({"alpha_min": 0.5, "alpha_max": -0.5}, "alpha_min=0.5 exceeds alpha_max=-0.5"),
        ({"clamp": 0.0}, "clamp=0.0"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, float], message: str) -> None:
    student, teacher = random_logits(seed=8)
    with pytest.raises(ValueError, match=message):
        adaptive_alpha_divergence(student, teacher, **kwargs)


@pytest.mark.parametrize(("student_shape", "teacher_shape"), [((4, 10), (4, 9)), ((10,), (10,)), ((0, 10), (0, 10))])
def test_bad_shapes_raise(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="shape"):
        adaptive_alpha_divergence(torch.zeros(student_shape), torch.zeros(teacher_shape))
