"""Constrained GA on a synthetic accuracy with a known optimum: quality, several budgets, determinism, errors."""

from __future__ import annotations

import random

import pytest
from test_evolve_synthetic import FAST_CONSTRAINED, CountingEvaluator, nasvit

from evolve import BudgetError, EvolveConfig, parse_budget, run_search
from evolve.objectives import exhaustive_optimum
from evolve.search import fastest_smallest_subnet, resolve_budgets


def test_finds_the_optimum_under_a_macs_budget():
    space = nasvit()
    optimum = exhaustive_optimum(space, 400e6)
    config = EvolveConfig(**FAST_CONSTRAINED, budgets=["macs<=400M"], seed=0)
    result = run_search(space, CountingEvaluator(space), config)
    best = result.best_for("macs<=400M")
    assert best.costs["macs"] <= 400e6
    assert best.metrics["top1"] >= 0.99 * optimum
    assert best.metrics["top1"] <= optimum + 1e-9  # nothing beats the exhaustive optimum
    assert len(result.candidates) <= config.population * (config.generations + 1)
    assert all(c.costs["macs"] <= 400e6 for c in result.candidates)  # no evaluation spent outside the budget


def test_serves_two_budgets_in_one_run():
    space = nasvit()
    evaluator = CountingEvaluator(space)
    config = EvolveConfig(**FAST_CONSTRAINED, budgets=["macs<=350M", "macs<=550M"], seed=0)
    result = run_search(space, evaluator, config)
    assert list(result.best) == ["macs<=350M", "macs<=550M"]
    for limit in (350e6, 550e6):
        best = result.best_for(f"macs<={limit / 1e6:g}M")
        assert best.costs["macs"] <= limit
        assert best.metrics["top1"] >= 0.99 * exhaustive_optimum(space, limit)
        assert best.metrics["top1"] == max(c.metrics["top1"] for c in result.candidates if c.costs["macs"] <= limit)
    assert result.best_for("macs<=550M").metrics["top1"] > result.best_for("macs<=350M").metrics["top1"]
    assert evaluator.calls == config.generations + 1  # one batched call per generation serves both budgets
    assert len(evaluator.scored) == len(set(evaluator.scored)) == len(result.candidates)


def test_same_seed_same_result_other_seed_other_search():
    space = nasvit()
    config = dict(population=12, generations=4, parents=4, budgets=["macs<=450M"])
    global_state = random.getstate()
    first = run_search(space, CountingEvaluator(space), EvolveConfig(**config, seed=5))
    assert random.getstate() == global_state  # the global random module is never drawn from
    again = run_search(space, CountingEvaluator(space), EvolveConfig(**config, seed=5))
    other = run_search(space, CountingEvaluator(space), EvolveConfig(**config, seed=6))
    assert first.candidates == again.candidates
    assert first.best == again.best and first.pareto == again.pareto and first.population == again.population
    assert [c.key for c in first.candidates] != [c.key for c in other.candidates]


def test_unsatisfiable_budget_names_smallest_attainable_value():
    space = nasvit()
    evaluator = CountingEvaluator(space)
    smallest = space.cost(space.min_subnet())
    with pytest.raises(BudgetError) as info:
        run_search(space, evaluator, EvolveConfig(budgets=["macs<=100M", "params<=2M"]))
    message = str(info.value)
    assert "macs<=100M" in message and "176.6M" in message and str(smallest.macs) in message
    assert "params<=2M" in message and str(smallest.params) in message
    assert evaluator.calls == 0  # failed before any evaluation


def test_budget_just_above_the_smallest_subnet():
    space = nasvit()
    limit = space.cost(space.min_subnet()).macs * 1.005
    config = EvolveConfig(population=6, generations=2, parents=3, budgets=[f"macs<={limit:.0f}"], init_max_tries=200)
    result = run_search(space, CountingEvaluator(space), config)
    assert result.candidates and all(c.costs["macs"] <= limit for c in result.candidates)
    assert str(space.min_subnet()) in {c.key for c in result.candidates}


def test_latency_budget_uses_latency_fn():
    space = nasvit()
    calls = []

    def latency(cfg):
        calls.append(cfg)
        return space.cost(cfg).activations / 1e6  # a deterministic stand-in: 1 ms per million activations

    config = EvolveConfig(population=10, generations=3, parents=4, budgets=["latency_ms<=8", "macs<=600M"])
    result = run_search(space, CountingEvaluator(space), config, latency_fn=latency)
    best = result.best_for("latency_ms<=8")
    assert best.costs["latency_ms"] <= 8 and calls
    assert all("latency_ms" in c.costs for c in result.candidates)
    with pytest.raises(BudgetError, match=r"smallest subnet .* takes 4.28 ms"):
        run_search(space, CountingEvaluator(space), EvolveConfig(budgets=["latency_ms<=1"]), latency_fn=latency)


def test_a_latency_budget_is_judged_at_the_resolution_where_the_smallest_subnet_is_fastest():
    """A table need not rank resolutions as MACs do: here the smallest subnet takes 5 ms at the lowest resolution and
    3 ms at the next, so 40% of the range starts from 3 ms, and a budget under 3 ms names that resolution."""
    space = nasvit()
    lowest, second = space.resolutions[:2]

    def latency(cfg):
        if cfg.replace(resolution=lowest) == space.min_subnet():
            return {lowest: 5.0, second: 3.0}.get(cfg.resolution, 6.0)
        return 6.0 + space.cost(cfg).activations / 1e6

    def costs(cfg):
        return {"latency_ms": latency(cfg)}

    assert fastest_smallest_subnet(space, costs) == (space.min_subnet().replace(resolution=second), 3.0)
    (resolved,) = resolve_budgets(space, [parse_budget("latency_ms<=40%")], costs)
    assert resolved.limit == pytest.approx(3.0 + 0.4 * (latency(space.max_subnet()) - 3.0))
    with pytest.raises(BudgetError, match=rf"at its fastest resolution, {second} px\) takes 3 ms"):
        run_search(space, CountingEvaluator(space), EvolveConfig(budgets=["latency_ms<=2"]), latency_fn=latency)
