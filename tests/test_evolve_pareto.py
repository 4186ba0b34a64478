"""Pareto filtering and hypervolume against hand-computed cases and a brute-force check."""

from __future__ import annotations

import numpy as np
import pytest

from evolve import SearchError, hypervolume, pareto_front


def test_front_two_objectives_minimised():
    points = [[1, 3], [2, 2], [3, 1], [3, 3], [2, 4], [1, 3]]
    assert pareto_front(points, ["min", "min"]) == [0, 1, 2, 5]  # duplicates of a front point are both kept


def test_front_mixed_senses():
    # (accuracy, macs): maximise accuracy, minimise macs
    points = [[0.70, 300], [0.75, 400], [0.72, 450], [0.69, 200], [0.75, 390]]
    assert pareto_front(points, ["max", "min"]) == [0, 3, 4]


def test_front_matches_brute_force_in_three_objectives():
    rng = np.random.default_rng(0)
    points = rng.integers(0, 6, size=(200, 3)).astype(float)
    senses = ["max", "min", "min"]
    signed = points * np.array([-1, 1, 1])
    expected = [
        i
        for i, p in enumerate(signed)
        if not any(np.all(q <= p) and np.any(q < p) for j, q in enumerate(signed) if j != i)
    ]
    assert pareto_front(points.tolist(), senses) == expected


def test_front_of_nothing():
    assert pareto_front([], ["max", "min"]) == []


def test_hypervolume_two_objectives_by_hand():
    # staircase of three unit-step boxes under reference (4, 4): 3 + 2 + 1 columns of height 3, 2, 1
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4], ["min", "min"]) == pytest.approx(6.0)
    # maximised accuracy against minimised cost; (2, 2) and (1, 3) lie inside the box of (3, 1)
    assert hypervolume([[3, 1], [2, 2], [1, 3]], [0, 4], ["max", "min"]) == pytest.approx(9.0)
    assert hypervolume([[0.8, 100.0]], [0.5, 300.0], ["max", "min"]) == pytest.approx(0.3 * 200.0)


def test_hypervolume_three_objectives_by_hand():
    # three boxes of volume 4, pairwise overlaps of 2, a common cube of 1: 12 - 6 + 1 (inclusion-exclusion)
    front = [[0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert hypervolume(front, [2, 2, 2], ["min", "min", "min"]) == pytest.approx(7.0)
    flipped = [[-x, y, z] for x, y, z in front]
    assert hypervolume(flipped, [-2, 2, 2], ["max", "min", "min"]) == pytest.approx(7.0)


def test_hypervolume_ignores_dominated_and_out_of_reference_points():
    base = hypervolume([[1, 3], [3, 1]], [4, 4], ["min", "min"])
    assert hypervolume([[1, 3], [3, 1], [3.5, 3.5], [5, 0]], [4, 4], ["min", "min"]) == pytest.approx(base)
    assert hypervolume([], [4, 4], ["min", "min"]) == 0.0
    assert hypervolume([[5, 5]], [4, 4], ["min", "min"]) == 0.0


def test_hypervolume_rejects_bad_shapes():
    with pytest.raises(SearchError, match="2 or 3 objectives"):
        hypervolume([[1.0]], [2.0], ["min"])
    with pytest.raises(SearchError, match="reference point"):
        hypervolume([[1, 2]], [3, 3, 3], ["min", "min"])
    with pytest.raises(SearchError, match="'max' or 'min'"):
        pareto_front([[1, 2]], ["up", "min"])
