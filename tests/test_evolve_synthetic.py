"""Shared pieces of the evolve tests: the synthetic accuracy with a known optimum (:mod:`evolve.objectives`),
counting evaluators; and the property its exhaustive optimum relies on (``test_macs_monotone_in_every_gene``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

import pytest

from evolve.objectives import PENALTY, REWARDS, synthetic_top1
from search_space import SearchSpace, SubnetConfig, load_space

# robust setting: within 1% of the optimum for seeds 0-11 on the budgets the tests use
FAST_CONSTRAINED = {"population": 40, "generations": 30, "parents": 5, "mutation_prob": 0.05}


@lru_cache(maxsize=1)
def nasvit() -> SearchSpace:
    return load_space("nasvit")


class CountingEvaluator:
    """Evaluator protocol over :func:`synthetic_top1` that records every subnet it scores."""

    def __init__(self, space: SearchSpace, fail_after_calls: int | None = None):
        self.space = space
        self.calls = 0
        self.scored: list[str] = []
        self.fail_after_calls = fail_after_calls

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        if self.fail_after_calls is not None and self.calls >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated kill")
        self.calls += 1
        self.scored += [str(cfg) for cfg in cfgs]
        return [{"top1": synthetic_top1(self.space, cfg), "top5": 1.0} for cfg in cfgs]


def random_subnets(space: SearchSpace, count: int, seed: int) -> list[SubnetConfig]:
    rng = random.Random(seed)
    return [space.sample(rng) for _ in range(count)]


def test_macs_monotone_in_every_gene():
    """The exhaustive optimum relies on this: a dearer choice of any one gene never lowers MACs."""
    space = nasvit()
    for cfg in random_subnets(space, 25, seed=7):
        values = list(space.to_genes(cfg))
        base = space.cost(cfg).macs
        for index, gene in enumerate(space.genes):
            position = gene.choices.index(values[index])
            if position + 1 < len(gene.choices):
                dearer = [*values[:index], gene.choices[position + 1], *values[index + 1 :]]
                assert space.cost(space.from_genes(dearer)).macs >= base, gene.label


def test_synthetic_top1_extremes():
    space = nasvit()
    assert synthetic_top1(space, space.min_subnet()) == 0.0
    penalised = sum(1 for g in space.genes if len(g.choices) > 1 and g.label not in REWARDS)
    assert synthetic_top1(space, space.max_subnet()) == pytest.approx(sum(REWARDS.values()) - PENALTY * penalised)
