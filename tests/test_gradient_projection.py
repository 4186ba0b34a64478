"""Tests of the gradient projection and the conflict meter on hand-made gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from supernet.training import ConflictStats, GradientDots, conflict_stats, project_gradients


def vec(*values: float) -> Tensor:
    """A float32 gradient vector."""
    return torch.tensor(values, dtype=torch.float32)


def assert_gradients_equal(actual: list[Tensor | None], expected: list[Tensor | None]) -> None:
    """Element-wise comparison of two gradient lists, None included."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        if want is None:
            assert got is None
        else:
            assert got is not None
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize("mode", ["tensor", "global"])
def test_conflicting_pair_is_projected_on_normal_plane(mode: str) -> None:
    g_s, g_sub = vec(1.0, 0.0), vec(-1.0, 1.0)  # <g_s, g_sub> = -1, |g_sub|^2 = 2
    (combined,) = project_gradients([g_s], [g_sub], mode=mode)
    projected = combined - g_sub
    torch.testing.assert_close(projected, vec(0.5, 0.5))  # g_s + (1/2) g_sub
    torch.testing.assert_close(torch.dot(projected, g_sub), torch.tensor(0.0))
    torch.testing.assert_close(combined, vec(-0.5, 1.5))


def test_random_conflicting_pair_is_orthogonal_after_projection() -> None:
    generator = torch.Generator().manual_seed(0)
    g_sub = torch.randn(3, 5, generator=generator)
    g_s = -2.0 * g_sub + 0.3 * torch.randn(3, 5, generator=generator)
    assert torch.dot(g_s.flatten(), g_sub.flatten()) < 0
    (combined,) = project_gradients([g_s], [g_sub])
    projected = combined - g_sub
    torch.testing.assert_close(torch.dot(projected.flatten(), g_sub.flatten()), torch.tensor(0.0), atol=1e-5, rtol=0)
    assert not torch.allclose(projected, g_s)


@pytest.mark.parametrize("mode", ["tensor", "global"])
def test_non_conflicting_pair_is_plain_sum(mode: str) -> None:
    g_s, g_sub = vec(1.0, 2.0), vec(0.5, -0.1)  # <g_s, g_sub> = 0.3 > 0
    (combined,) = project_gradients([g_s], [g_sub], mode=mode)
    torch.testing.assert_close(combined, vec(1.5, 1.9))


def test_tensor_mode_projects_where_global_mode_sums() -> None:
    largest = [vec(1.0, 0.0), vec(3.0, 0.0)]  # dots per tensor: -1 and 3, total 2 > 0
    subnets = [vec(-1.0, 0.0), vec(1.0, 0.0)]
    assert_gradients_equal(project_gradients(largest, subnets, mode="tensor"), [vec(-1.0, 0.0), vec(4.0, 0.0)])
    assert_gradients_equal(project_gradients(largest, subnets, mode="global"), [vec(0.0, 0.0), vec(4.0, 0.0)])


def test_global_mode_uses_one_coefficient_over_all_tensors() -> None:
    largest = [vec(1.0), vec(1.0)]  # total dot -2 + 1 = -1, total |g_sub|^2 = 5, coefficient -1/5
    subnets = [vec(-2.0), vec(1.0)]
    global_result = project_gradients(largest, subnets, mode="global")
    assert_gradients_equal(global_result, [vec(-1.4), vec(2.2)])  # g_sub + g_s + (1/5) g_sub
    projected = torch.cat([r - s for r, s in zip(global_result, subnets, strict=True)])
    torch.testing.assert_close(torch.dot(projected, torch.cat(subnets)), torch.tensor(0.0))
    assert_gradients_equal(project_gradients(largest, subnets, mode="tensor"), [vec(-2.0), vec(2.0)])


@pytest.mark.parametrize(
    ("mode", "first"),
    # tensor: coefficient -1 on tensor 0 alone; global: total dot -1, total |g_sub|^2 = 1 + 49 + 64 = 114.
    [("tensor", vec(-1.0, 0.0)), ("global", vec(-1.0 / 114.0, 0.0))],
)
def test_missing_gradients(mode: str, first: Tensor) -> None:
    only_largest, only_subnets = vec(5.0), vec(7.0, 8.0)
    largest = [vec(1.0, 0.0), only_largest, None, None]
    subnets = [vec(-1.0, 0.0), None, only_subnets, None]
    result = project_gradients(largest, subnets, mode=mode)
    assert result[1] is only_largest and result[2] is only_subnets and result[3] is None
    torch.testing.assert_close(result[0], first)


@pytest.mark.parametrize("mode", ["tensor", "global"])
def test_zero_subnet_gradient_is_not_projected(mode: str) -> None:
    (combined,) = project_gradients([vec(1.0, 2.0)], [vec(0.0, 0.0)], mode=mode)
    torch.testing.assert_close(combined, vec(1.0, 2.0))


def test_low_precision_gradients_keep_their_dtype() -> None:
    (combined,) = project_gradients([vec(1.0, 0.0).bfloat16()], [vec(-1.0, 1.0).bfloat16()])
    assert combined.dtype == torch.bfloat16
    torch.testing.assert_close(combined.float(), vec(-0.5, 1.5))


def test_precomputed_dots_give_same_results() -> None:
    generator = torch.Generator().manual_seed(1)
    largest: list[Tensor | None] = [torch.randn(4, 3, generator=generator) for _ in range(5)]
    subnets: list[Tensor | None] = [torch.randn(4, 3, generator=generator) for _ in range(5)]
    groups = ["s1", "s1", "s4", "s4", "head"]
    dots = GradientDots.compute(largest, subnets)
    assert dots.dot.shape == (5,) and dots.dot.dtype == torch.float32
    for mode in ("tensor", "global"):
        assert_gradients_equal(
            project_gradients(largest, subnets, mode=mode, dots=dots), project_gradients(largest, subnets, mode=mode)
        )
    assert conflict_stats(largest, subnets, groups, dots=dots) == conflict_stats(largest, subnets, groups)


def test_conflict_stats_on_known_signs() -> None:
    largest = [vec(1.0, 0.0), vec(1.0, 0.0), vec(0.0, 1.0), vec(2.0), vec(1.0), vec(1.0), vec(0.0)]
    subnets = [vec(-1.0, 0.5), vec(1.0, 1.0), vec(0.0, -3.0), vec(-1.0), None, vec(0.0), vec(-1.0)]
    groups = ["s1", "s1", "s4", "s4", "head", "head", "head"]  # head: missing, zero g_sub, zero g_s
    stats = conflict_stats(largest, subnets, groups)
    assert stats.num_tensors == 4
    assert stats.overall == 0.75
    assert list(stats.per_group) == ["s1", "s4", "head"]
    assert stats.per_group["s1"] == 0.5 and stats.per_group["s4"] == 1.0
    assert math.isnan(stats.per_group["head"])


def test_conflict_stats_without_comparable_tensors() -> None:
    stats = conflict_stats([None, vec(1.0)], [vec(1.0), None], ["s1", "s2"])
    assert stats.num_tensors == 0 and math.isnan(stats.overall)
    assert isinstance(stats, ConflictStats)


@pytest.mark.parametrize("mode", ["tensor", "global"])
def test_no_tensors(mode: str) -> None:
    assert project_gradients([], [], mode=mode) == []
    stats = conflict_stats([], [], [])
    assert stats.num_tensors == 0 and stats.per_group == {} and math.isnan(stats.overall)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="mode='layer'"):
        project_gradients([vec(1.0)], [vec(1.0)], mode="layer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="largest has 2 gradient tensors but subnets has 1"):
        project_gradients([vec(1.0), vec(1.0)], [vec(1.0)])
    with pytest.raises(ValueError, match=r"gradient 0: largest has shape \(2,\) but subnets has \(3,\)"):
        project_gradients([vec(1.0, 2.0)], [vec(1.0, 2.0, 3.0)])
    with pytest.raises(ValueError, match="1 group names for 2 gradient tensors"):
        conflict_stats([vec(1.0), vec(1.0)], [vec(1.0), vec(1.0)], ["s1"])
    dots = GradientDots.compute([vec(1.0)], [vec(1.0)])
    with pytest.raises(ValueError, match="dots covers 1 tensors but 2"):
        project_gradients([vec(1.0), vec(1.0)], [vec(1.0), vec(1.0)], dots=dots)
