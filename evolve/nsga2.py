"""NSGA-II: a Pareto front of the objective (maximised) against one or two costs (minimised).

Survivor selection is deap's ``selNSGA2`` (non-dominated sorting, then crowding distance) on the feasible
candidates. Budgets, when given, are constraints in Deb's sense: a candidate that meets none of them is
dominated by every feasible one, and infeasible ones rank among themselves by how far they overshoot.
Parents are chosen by binary tournament on (front rank, crowding distance) with the search's own RNG
(deap's tournament uses the global ``random`` state, so it is not used).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from deap import base
from deap.tools import selNSGA2, sortNondominated
from deap.tools.emo import assignCrowdingDist

from evolve.breeding import Breeder, initial_population
from evolve.budget import Budget
from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.ranking import meets_any
from search_space import SubnetConfig


class _Individual:
    """A candidate wrapped for deap: ``fitness.values`` = (objective, cost, [cost])."""

    __slots__ = ("candidate", "fitness")

    def __init__(self, candidate: Candidate, fitness: base.Fitness):
        self.candidate = candidate
        self.fitness = fitness


class NSGA2Search:
    """NSGA-II as a strategy of :func:`evolve.run_search`.

    Args:
        breeder: samples and breeds new subnets.
        config: population, objective and the cost ``objectives``.
        budgets: constraints (a candidate must meet at least one); may be empty.
    """

    def __init__(self, breeder: Breeder, config: EvolveConfig, budgets: Sequence[Budget]):
        self.breeder = breeder
        self.config = config
        self.budgets = tuple(budgets)
        weights = (1.0, *(-1.0 for _ in config.objectives))
        self._fitness_class = type("SearchFitness", (base.Fitness,), {"weights": weights})

    def initial(self, rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """Generation 0: ``population`` subnets, split across budgets and sampled within them when given."""
        return initial_population(self.breeder, self.budgets, self.config.population, rng, seen)

    def offspring(self, population: Sequence[Candidate], rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """``population`` children of parents chosen by binary tournament on (front rank, crowding distance)."""
        keys = self._tournament_keys(population)

        def tournament(rng: random.Random) -> SubnetConfig:
            first, second = rng.randrange(len(population)), rng.randrange(len(population))
            return population[first if keys[first] <= keys[second] else second].subnet

        children = []
        for _ in range(self.config.population):
            child = self.breeder.child(lambda r: (tournament(r), tournament(r)), self.budgets, rng, seen)
            if child is not None:
                seen.add(str(child))
                children.append(child)
        return children

    def survivors(self, population: Sequence[Candidate], children: Sequence[Candidate]) -> list[Candidate]:
        """The ``population`` best of parents and children by constrained non-dominated sorting."""
        return self.rank([*population, *children])[: self.config.population]

    def preselect(self, predicted: Sequence[Candidate], count: int) -> list[Candidate]:
        """The ``count`` best of ``predicted`` (children scored by the predictor) in NSGA-II order."""
        return self.rank(predicted)[:count]

    def rank(self, candidates: Sequence[Candidate]) -> list[Candidate]:
        """All candidates best first: feasible ones in NSGA-II order, then infeasible by overshoot."""
        feasible = [c for c in candidates if meets_any(c, self.budgets)]
        infeasible = [c for c in candidates if not meets_any(c, self.budgets)]
        individuals = [self._individual(c) for c in feasible]
        ordered = [ind.candidate for ind in selNSGA2(individuals, len(individuals))]
        return ordered + sorted(infeasible, key=lambda c: (self._overshoot(c), c.key))

    def _tournament_keys(self, population: Sequence[Candidate]) -> list[tuple[float, float]]:
        """Per member ``(front rank, -crowding distance)``, lower is better; infeasible ones rank last."""
        individuals = [self._individual(c) for c in population if meets_any(c, self.budgets)]
        fronts = sortNondominated(individuals, len(individuals))
        keys: dict[str, tuple[float, float]] = {}
        for level, front in enumerate(fronts):
            assignCrowdingDist(front)
            keys.update({ind.candidate.key: (float(level), -ind.fitness.crowding_dist) for ind in front})
        infeasible = sorted((c for c in population if c.key not in keys), key=lambda c: (self._overshoot(c), c.key))
        keys.update({c.key: (float(len(fronts) + i), 0.0) for i, c in enumerate(infeasible)})
        return [keys[c.key] for c in population]

    def _individual(self, candidate: Candidate) -> _Individual:
        fitness = self._fitness_class()
        fitness.values = (
            candidate.metrics[self.config.objective],
            *(candidate.costs[n] for n in self.config.objectives),
        )
        return _Individual(candidate, fitness)

    def _overshoot(self, candidate: Candidate) -> float:
        return min(budget.excess(candidate.costs) for budget in self.budgets)
