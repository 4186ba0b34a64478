"""Constrained genetic algorithm: maximise the objective under each of several budgets in one run.

The population is the union, over budgets, of the ``parents`` best candidates that meet the budget (an
elite; it only improves). Each generation every budget breeds its share of the children from its own
elite by crossover and mutation; a child is kept only when it is new and meets that budget (otherwise
it is retried, then resampled within the budget), so no evaluation goes to a subnet no budget can use.
Every candidate ever evaluated competes for every budget.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from evolve.breeding import Breeder, initial_population, split_evenly
from evolve.budget import Budget
from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.ranking import ranked
from search_space import SubnetConfig


class ConstrainedSearch:
    """The constrained GA as a strategy of :func:`evolve.run_search`.

    Args:
        breeder: samples and breeds new subnets.
        config: population, parents and the objective.
        budgets: the budgets served (at least one).
    """

    def __init__(self, breeder: Breeder, config: EvolveConfig, budgets: Sequence[Budget]):
        self.breeder = breeder
        self.config = config
        self.budgets = tuple(budgets)

    def initial(self, rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """Generation 0: ``population`` subnets split evenly across budgets, each sampled within its budget."""
        return initial_population(self.breeder, self.budgets, self.config.population, rng, seen)

    def offspring(self, population: Sequence[Candidate], rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """Children of one generation: each budget's share bred from its elite."""
        children = []
        for budget, count in zip(self.budgets, split_evenly(self.config.population, len(self.budgets))):
            elite = [c.subnet for c in self.elite(population, budget)]
            for _ in range(count):
                if elite:
                    child = self.breeder.child(_pick_two(elite), [budget], rng, seen)
                else:
                    child = self.breeder.sample(budget, rng, seen)
                if child is not None:
                    seen.add(str(child))
                    children.append(child)
        return children

    def survivors(self, population: Sequence[Candidate], children: Sequence[Candidate]) -> list[Candidate]:
        """The new population: every budget's elite of the old population and the children, deduplicated."""
        pool = [*population, *children]
        kept: dict[str, Candidate] = {}
        for budget in self.budgets:
            for candidate in self.elite(pool, budget):
                kept.setdefault(candidate.key, candidate)
        return list(kept.values())

    def preselect(self, predicted: Sequence[Candidate], count: int) -> list[Candidate]:
        """``count`` of ``predicted`` (children scored by the predictor), each budget's share the best predicted
        within it, any places left the best predicted overall."""
        chosen: dict[str, Candidate] = {}
        for budget, quota in zip(self.budgets, split_evenly(count, len(self.budgets))):
            fresh = [c for c in ranked(predicted, self.config.objective, budget) if c.key not in chosen]
            chosen.update((c.key, c) for c in fresh[:quota])
        for candidate in ranked(predicted, self.config.objective):
            if len(chosen) >= count:
                break
            chosen.setdefault(candidate.key, candidate)
        return list(chosen.values())

    def elite(self, candidates: Sequence[Candidate], budget: Budget) -> list[Candidate]:
        """The ``parents`` best candidates within ``budget``."""
        return ranked(candidates, self.config.objective, budget)[: self.config.parents]


def _pick_two(elite: list[SubnetConfig]):
    """Parent picker: two different elite members uniformly at random (the same one when only one exists)."""

    def pick(rng: random.Random) -> tuple[SubnetConfig, SubnetConfig]:
        if len(elite) == 1:
            return elite[0], elite[0]
        first, second = rng.sample(range(len(elite)), 2)
        return elite[first], elite[second]

    return pick
