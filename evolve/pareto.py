"""Pareto utilities: non-dominated filtering and hypervolume for any mix of maximised and minimised objectives.

``senses`` gives, per objective, ``"max"`` or ``"min"``. Internally every objective is turned into one to
minimise (maximised values are negated), which is also how deap's hypervolume (moocore) sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from evolve.candidate import Candidate
from evolve.errors import SearchError

SENSES = ("max", "min")


def pareto_front(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[int]:
    """Indices (in input order) of the points that no other point dominates.

    A point dominates another when it is at least as good in every objective and better in one. Equal
    points do not dominate each other, so duplicates are all kept.

    Args:
        points: ``(n, m)`` objective values.
        senses: ``m`` entries, each ``"max"`` or ``"min"``.

    Raises:
        SearchError: a sense is not "max"/"min" or its count differs from the number of objectives.
    """
    costs = _as_minimised(points, senses)
    if len(costs) == 0:
        return []
    order = np.lexsort(costs.T[::-1])  # lexicographically best first: a dominator always precedes its victims
    front: list[int] = []
    for index in order:
        point = costs[index]
        if front:
            kept = costs[front]  # (f, m)
            dominated = np.all(kept <= point, axis=1) & np.any(kept < point, axis=1)
            if dominated.any():
                continue
        front.append(int(index))
    return sorted(front)


def hypervolume(front: Sequence[Sequence[float]], reference: Sequence[float], senses: Sequence[str]) -> float:
    """Volume dominated by ``front`` and bounded by ``reference`` (2 or 3 objectives; deap/moocore).

    Points that do not strictly beat ``reference`` in every objective add nothing. The front need not be
    non-dominated: dominated points add nothing either.

    Args:
        front: ``(n, m)`` objective values.
        reference: ``m`` values, worse than the front in every objective (e.g. lowest accuracy, largest cost).
        senses: ``m`` entries, each ``"max"`` or ``"min"``.

    Raises:
        SearchError: not 2 or 3 objectives, or mismatched lengths.
    """
    if len(senses) not in (2, 3):
        raise SearchError(f"hypervolume takes 2 or 3 objectives, got {len(senses)}")
    if len(reference) != len(senses):
        raise SearchError(f"reference point {list(reference)} needs {len(senses)} values, one per objective")
    costs = _as_minimised(front, senses)
    ref = _as_minimised([reference], senses)[0]
    costs = costs[np.all(costs < ref, axis=1)] if len(costs) else costs
    if len(costs) == 0:
        return 0.0
    from deap.benchmarks.tools import hypervolume as deap_hypervolume  # imported here: it loads scipy

    individuals = [SimpleNamespace(fitness=SimpleNamespace(wvalues=tuple(-c))) for c in costs]
    return float(deap_hypervolume(individuals, ref=ref))


def candidate_front(candidates: Sequence[Candidate], objective: str, costs: Sequence[str]) -> list[Candidate]:
    """The candidates on the Pareto front of ``objective`` (maximised) against ``costs`` (minimised).

    Returned in ascending order of the first cost, ties by descending objective, then subnet string.
    """
    names = [objective, *costs]
    points = [[c.value(name) for name in names] for c in candidates]
    front = [candidates[i] for i in pareto_front(points, ["max", *["min"] * len(costs)])]
    return sorted(front, key=lambda c: (c.value(costs[0]), -c.value(objective), c.key))


def _as_minimised(points: Sequence[Sequence[float]], senses: Sequence[str]) -> np.ndarray:
    bad = [s for s in senses if s not in SENSES]
    if bad:
        raise SearchError(f"objective senses must be 'max' or 'min', got {bad}")
    values = np.asarray(points, dtype=float).reshape(len(points), -1) if len(points) else np.zeros((0, len(senses)))
    if values.shape[1] != len(senses):
        raise SearchError(f"points have {values.shape[1]} objectives but {len(senses)} senses were given")
    signs = np.array([-1.0 if s == "max" else 1.0 for s in senses])
    return values * signs
