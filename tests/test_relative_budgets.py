"""Budgets stated as a share of the space's range (``latency_ms<=40%``): parsing, resolving, and a search under one
that binds alike on a slow and a fast machine."""

from __future__ import annotations

import json

import pytest
from test_evolve_synthetic import CountingEvaluator, nasvit

from evolve import Budget, BudgetError, EvolveConfig, parse_budget, run_search


def test_a_share_parses_keeps_its_label_and_resolves_between_the_extremes():
    budget = parse_budget(" latency_ms <= 40% ")
    assert (budget.metric, budget.limit, budget.share, budget.is_relative) == ("latency_ms", None, 0.4, True)
    assert budget.label == "latency_ms<=40%" and parse_budget(budget.label) == budget
    resolved = budget.resolved(2.0, 12.0)
    assert resolved.limit == pytest.approx(6.0) and resolved.label == "latency_ms<=40%"
    assert resolved.describe() == "latency_ms<=40% (6 ms)"
    assert parse_budget("macs<=25%").resolved(100e6, 500e6).describe() == "macs<=25% (200M)"
    assert parse_budget("macs<=300M").resolved(1.0, 2.0) == parse_budget("macs<=300M")  # absolute: unchanged
    assert parse_budget("params<=0%").resolved(5.0, 9.0).limit == 5.0  # the smallest subnet alone


def test_an_unresolved_share_cannot_be_checked_and_a_share_over_100_is_refused():
    with pytest.raises(BudgetError, match=r"latency_ms<=40% is a share of the space's range; resolve it first"):
        parse_budget("latency_ms<=40%").satisfied({"latency_ms": 1.0})
    with pytest.raises(BudgetError, match="between 0% and 100%"):
        parse_budget("latency_ms<=120%")
    with pytest.raises(BudgetError, match="between 0% and 100%"):
        Budget("macs", None, 1.5)
    with pytest.raises(BudgetError, match="malformed budget"):
        parse_budget("latency_ms<=40%%")


@pytest.mark.parametrize("speed", [1.0, 3.0])
def test_a_relative_latency_budget_binds_on_a_slow_and_a_fast_machine(speed, tmp_path):
    """The same search on a machine ``speed`` times slower picks the same subnet under ``latency_ms<=30%``, with
    the limit resolved ``speed`` times higher, and records that limit in best.json."""
    space = nasvit()

    def latency(cfg):  # 1 ms per million activations on the fast machine
        return speed * space.cost(cfg).activations / 1e6

    config = EvolveConfig(population=10, generations=3, parents=4, budgets=["latency_ms<=30%", "macs<=600M"], seed=0)
    result = run_search(space, CountingEvaluator(space), config, out_dir=tmp_path, latency_fn=latency)
    (budget, _) = result.budgets
    smallest, largest = latency(space.min_subnet()), latency(space.max_subnet())
    assert budget.limit == pytest.approx(smallest + 0.3 * (largest - smallest))
    best = result.best_for("latency_ms<=30%")
    assert smallest < best.costs["latency_ms"] <= budget.limit < largest
    assert best.key == _best_on_fast_machine(space)
    entries = json.loads((tmp_path / "best.json").read_text())["budgets"]
    assert [(e["budget"], e["limit"]) for e in entries] == [("latency_ms<=30%", budget.limit), ("macs<=600M", 600e6)]


def _best_on_fast_machine(space) -> str:
    config = EvolveConfig(population=10, generations=3, parents=4, budgets=["latency_ms<=30%", "macs<=600M"], seed=0)
    result = run_search(space, CountingEvaluator(space), config, latency_fn=lambda c: space.cost(c).activations / 1e6)
    return result.best_for("latency_ms<=30%").key


def test_an_unsatisfiable_budget_is_named_so_a_caller_can_go_on_with_the_others():
    space = nasvit()
    config = EvolveConfig(budgets=["macs<=100M", "macs<=600M", "latency_ms<=1"])
    with pytest.raises(BudgetError) as info:
        run_search(space, CountingEvaluator(space), config, latency_fn=lambda c: space.cost(c).activations / 1e6)
    assert info.value.labels == ["macs<=100M", "latency_ms<=1"]
    assert "e.g. latency_ms<=40%" in str(info.value)
