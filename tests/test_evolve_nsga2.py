"""NSGA-II: its front beats random search at equal cost, budgets act as constraints, ranking rules."""

from __future__ import annotations

import pytest
from test_evolve_synthetic import CountingEvaluator, nasvit, random_subnets

from evolve import Candidate, CandidateScorer, EvolveConfig, hypervolume, pareto_front, run_search
from evolve.breeding import Breeder
from evolve.nsga2 import NSGA2Search
from evolve.objectives import synthetic_top1


def _random_search_points(space, count: int, seed: int, costs: list[str]) -> list[list[float]]:
    points = []
    for cfg in random_subnets(space, count, seed):
        cost = space.cost(cfg)
        points.append([synthetic_top1(space, cfg), *(cost.get(name) for name in costs)])
    return points


@pytest.mark.parametrize("costs", [["macs"], ["macs", "params"]])
def test_front_dominates_random_search_with_same_evaluations(costs):
    space = nasvit()
    config = EvolveConfig(algorithm="nsga2", population=30, generations=15, mutation_prob=0.05, objectives=costs)
    result = run_search(space, CountingEvaluator(space), config)
    evaluations = len(result.candidates)
    assert evaluations == result.evaluations <= config.population * (config.generations + 1)

    senses = ["max", *["min"] * len(costs)]
    largest = space.cost(space.max_subnet())
    reference = [-1.0, *(largest.get(name) * 1.01 for name in costs)]  # worse than any subnet
    front = [[c.metrics["top1"], *(c.costs[name] for name in costs)] for c in result.pareto]
    assert pareto_front(front, senses) == list(range(len(front)))  # the returned front is non-dominated
    random_points = _random_search_points(space, evaluations, seed=123, costs=costs)
    ratio = hypervolume(front, reference, senses) / hypervolume(random_points, reference, senses)
    assert ratio >= 1.0


def test_front_is_the_front_of_all_candidates():
    space = nasvit()
    config = EvolveConfig(algorithm="nsga2", population=12, generations=3, seed=1)
    result = run_search(space, CountingEvaluator(space), config)
    points = [[c.metrics["top1"], c.costs["macs"]] for c in result.candidates]
    expected = {result.candidates[i].key for i in pareto_front(points, ["max", "min"])}
    assert {c.key for c in result.pareto} == expected
    assert [c.costs["macs"] for c in result.pareto] == sorted(c.costs["macs"] for c in result.pareto)
    assert len(result.population) == config.population


def test_budgets_constrain_the_front():
    space = nasvit()
    config = EvolveConfig(algorithm="nsga2", population=16, generations=4, budgets=["macs<=400M"], seed=2)
    result = run_search(space, CountingEvaluator(space), config)
    assert result.pareto and all(c.costs["macs"] <= 400e6 for c in result.pareto)
    best = result.best_for("macs<=400M")
    assert best.costs["macs"] <= 400e6
    assert best.metrics["top1"] == max(c.metrics["top1"] for c in result.pareto)


def test_infeasible_candidates_rank_below_feasible_ones():
    space = nasvit()
    config = EvolveConfig(algorithm="nsga2", population=3, budgets=["macs<=300M"])
    scorer = CandidateScorer(space, CountingEvaluator(space))
    search = NSGA2Search(Breeder(space, scorer, config), config, config.parsed_budgets)
    cfg = space.min_subnet()

    def candidate(top1: float, macs: float) -> Candidate:
        return Candidate(cfg, {"top1": top1}, {"macs": macs}, 0, key=f"{top1}-{macs}")

    far_over, slightly_over = candidate(0.99, 600e6), candidate(0.98, 310e6)
    good, dominated, cheap = candidate(0.80, 250e6), candidate(0.70, 280e6), candidate(0.60, 200e6)
    order = search.rank([far_over, dominated, slightly_over, good, cheap])
    assert {c.key for c in order[:2]} == {good.key, cheap.key}  # first front of the feasible ones
    assert order[2:] == [dominated, slightly_over, far_over]  # then the next front, then by overshoot
    survivors = search.survivors([far_over, slightly_over], [good, cheap])
    assert {c.key for c in survivors} == {good.key, cheap.key, slightly_over.key}  # the worst overshoot goes


def test_nsga2_determinism():
    space = nasvit()
    config = EvolveConfig(algorithm="nsga2", population=10, generations=3, seed=4, objectives=["macs", "params"])
    first = run_search(space, CountingEvaluator(space), config)
    again = run_search(space, CountingEvaluator(space), config)
    assert first.candidates == again.candidates and first.pareto == again.pareto
    assert first.population == again.population
