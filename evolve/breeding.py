"""Making new subnets: initial sampling within a budget and breeding children from parents.

Both searchers use these. Every draw comes from the ``random.Random`` passed in, and every subnet made
is new: its string is not in ``seen`` (the subnets the search has already evaluated or proposed), so no
evaluation is spent twice.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evolve.budget import Budget
from evolve.config import EvolveConfig
from evolve.errors import BudgetError
from evolve.evaluator import CandidateScorer
from search_space import SearchSpace, SpaceError, SubnetConfig

logger = logging.getLogger(__name__)

_NOVELTY_TRIES = 50  # draws per subnet that may hit already seen subnets before falling back
ParentPicker = Callable[[random.Random], tuple[SubnetConfig, SubnetConfig]]


def split_evenly(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` sizes differing by at most one, larger ones first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Breeder:
    """Samples and breeds subnets that meet budgets and have not been seen before.

    Args:
        space: the search space (sampling, mutation, crossover).
        scorer: gives the costs used to check budgets (latency only when measured).
        config: mutation and crossover probabilities and the retry limits.
    """

    space: SearchSpace
    scorer: CandidateScorer
    config: EvolveConfig

    def feasible(self, cfg: SubnetConfig, budgets: Sequence[Budget]) -> bool:
        """Whether ``cfg`` meets at least one of ``budgets`` (always true for no budgets)."""
        if not budgets:
            return True
        costs = self.scorer.costs(cfg)
        return any(budget.satisfied(costs) for budget in budgets)

    def sample(self, budget: Budget | None, rng: random.Random, seen: set[str]) -> SubnetConfig | None:
        """A random new subnet within ``budget`` (any subnet when None), or None when none was found.

        A cost budget draws with ``space.sample_within``; a latency budget draws uniformly and filters with
        the latency function, ``init_max_tries`` draws at most. Under budgets so tight that random draws
        rarely land inside, the search falls back to light mutations of the smallest subnet.
        """
        if budget is not None and budget.is_latency:
            for _ in range(self.config.init_max_tries):
                cfg = self.space.sample(rng)
                if str(cfg) not in seen and budget.satisfied(self.scorer.costs(cfg)):
                    return cfg
        else:
            for _ in range(_NOVELTY_TRIES):
                cfg = self._draw(budget, rng)
                if cfg is None:
                    break
                if str(cfg) not in seen:
                    return cfg
        return self._near_smallest([budget] if budget is not None else [], rng, seen)

    def child(
        self, pick: ParentPicker, budgets: Sequence[Budget], rng: random.Random, seen: set[str]
    ) -> SubnetConfig | None:
        """A new child of two parents from ``pick`` that meets one of ``budgets``.

        Each attempt crosses the parents over with probability ``crossover_prob`` (else copies the first)
        and mutates every gene with probability ``mutation_prob``. After ``breed_max_tries`` failed
        attempts the child is resampled within a budget; None when that fails too.
        """
        for _ in range(self.config.breed_max_tries):
            first, second = pick(rng)
            crossed = rng.random() < self.config.crossover_prob
            child = self.space.crossover(first, second, rng) if crossed else first
            child = self.space.mutate(child, rng, self.config.mutation_prob)
            if str(child) not in seen and self.feasible(child, budgets):
                return child
        logger.debug("no new feasible child in %d attempts; resampling", self.config.breed_max_tries)
        return self.sample(rng.choice(list(budgets)) if budgets else None, rng, seen)

    def _draw(self, budget: Budget | None, rng: random.Random) -> SubnetConfig | None:
        if budget is None:
            return self.space.sample(rng)
        try:
            return self.space.sample_within(rng, **budget.bounds, max_tries=self.config.init_max_tries)
        except SpaceError:
            return None

    def _near_smallest(self, budgets: Sequence[Budget], rng: random.Random, seen: set[str]) -> SubnetConfig | None:
        smallest = self.space.min_subnet()
        prob = 1.0 / len(self.space.genes)
        for attempt in range(self.config.init_max_tries):
            cfg = smallest if attempt == 0 else self.space.mutate(smallest, rng, prob)
            if str(cfg) not in seen and self.feasible(cfg, budgets):
                return cfg
        return None


def initial_population(
    breeder: Breeder, budgets: Sequence[Budget], size: int, rng: random.Random, seen: set[str]
) -> list[SubnetConfig]:
    """``size`` new subnets, split evenly across ``budgets`` (uniform when there are none).

    Raises:
        BudgetError: a budget for which not a single subnet could be drawn.
    """
    targets: list[Budget | None] = list(budgets) or [None]
    population = []
    for budget, count in zip(targets, split_evenly(size, len(targets))):
        for _ in range(count):
            cfg = breeder.sample(budget, rng, seen)
            if cfg is None:
                if budget is not None and not any(budget.satisfied(breeder.scorer.costs(c)) for c in population):
                    raise BudgetError(
                        f"no subnet within {budget.label} found in {breeder.config.init_max_tries} draws; "
                        "loosen the budget or raise init_max_tries"
                    )
                logger.warning("initial population for %s: ran out of new subnets after %d", budget, len(population))
                break
            seen.add(str(cfg))
            population.append(cfg)
    return population
