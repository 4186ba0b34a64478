"""Budget strings and search settings: parsing, labels, checks and the errors for bad input."""

from __future__ import annotations

import pytest

from evolve import Budget, BudgetError, EvolveConfig, SearchError, parse_budget
from evolve.candidate import Candidate
from evolve.ranking import best_per_budget, ranked
from search_space import load_space


@pytest.mark.parametrize(
    ("text", "metric", "limit"),
    [
        ("macs<=300M", "macs", 300e6),
        (" params <= 6M ", "params", 6e6),
        ("activations<=5.5M", "activations", 5.5e6),
        ("macs<=1.2G", "macs", 1.2e9),
        ("params<=750K", "params", 750e3),
        ("macs<=123456789", "macs", 123456789.0),
        ("latency_ms<=20", "latency_ms", 20.0),
        ("latency_ms<=12.5ms", "latency_ms", 12.5),
    ],
)
def test_parse_budget(text, metric, limit):
    budget = parse_budget(text)
    assert budget.metric == metric
    assert budget.limit == pytest.approx(limit)
    assert parse_budget(budget.label) == budget


def test_labels_are_readable():
    assert parse_budget("macs<=300000000").label == "macs<=300M"
    assert parse_budget("activations<=5.5M").label == "activations<=5.5M"
    assert parse_budget("latency_ms<=20").label == "latency_ms<=20"
    assert str(parse_budget("params <= 6M")) == "params<=6M"


def test_satisfied_is_inclusive():
    budget = parse_budget("macs<=300M")
    assert budget.satisfied({"macs": 300_000_000, "params": 1})
    assert not budget.satisfied({"macs": 300_000_001})
    assert budget.excess({"macs": 330e6}) == pytest.approx(0.1)
    assert budget.excess({"macs": 1e6}) == 0.0
    assert budget.bounds == {"macs": (None, 300e6)}


def test_ties_in_accuracy_go_to_the_cheaper_subnet_within_a_budget():
    space = load_space("tiny")
    cheap, dear, worse = space.min_subnet(), space.max_subnet(), space.min_subnet().replace(resolution=24)
    candidates = [
        Candidate(dear, {"top1": 99.0}, {"macs": 3e6}, 0),
        Candidate(cheap, {"top1": 99.0}, {"macs": 1e6}, 0),
        Candidate(worse, {"top1": 98.0}, {"macs": 0.5e6}, 0),
    ]
    budget = parse_budget("macs<=5M")
    assert [c.subnet for c in ranked(candidates, "top1", budget)] == [cheap, dear, worse]
    assert best_per_budget(candidates, "top1", [budget, parse_budget("macs<=0.6M")]) == {
        "macs<=5M": candidates[1],
        "macs<=600K": candidates[2],
    }


def test_unknown_metric_names_allowed_ones_and_suggests():
    with pytest.raises(BudgetError) as info:
        parse_budget("mac<=300M")
    message = str(info.value)
    assert 'did you mean "macs"' in message
    for metric in ("macs", "params", "activations", "latency_ms"):
        assert metric in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(BudgetError, match="unknown metric 'flops'"):
        parse_budget("flops<=300M")


@pytest.mark.parametrize("text", ["macs>=300M", "macs<=", "300M", "macs<=-5M", "macs 300M", ""])
def test_malformed_budget(text):
    with pytest.raises(BudgetError, match="malformed budget"):
        parse_budget(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [("macs<=300X", "unknown suffix 'X'"), ("macs<=300m", "unknown suffix 'm'"), ("latency_ms<=2M", "milliseconds")],
)
def test_bad_suffix(text, match):
    with pytest.raises(BudgetError, match=match):
        parse_budget(text)


def test_zero_limit_and_unknown_metric_are_rejected_by_the_dataclass_too():
    with pytest.raises(BudgetError, match="positive"):
        parse_budget("macs<=0")
    with pytest.raises(BudgetError, match="allowed metrics"):
        Budget("flops", 1.0)


def test_config_reports_every_problem_at_once():
    with pytest.raises(SearchError) as info:
        EvolveConfig(population=0, mutation_prob=1.5, algorithm="nsga", budgets=["mac<=3M"], objectives=["flops"])
    problems = info.value.problems
    assert any("population" in p for p in problems)
    assert any("mutation_prob" in p for p in problems)
    assert any('did you mean "nsga2"' in p for p in problems)
    assert any('did you mean "macs"' in p for p in problems)
    assert any("unknown cost objective 'flops'" in p for p in problems)


def test_constrained_needs_a_budget():
    with pytest.raises(SearchError, match="needs at least one budget"):
        EvolveConfig(algorithm="constrained", budgets=[])
    assert EvolveConfig(algorithm="nsga2", budgets=[]).budgets == []


def test_config_round_trip_and_mismatches():
    config = EvolveConfig(budgets=["macs<=300M"], seed=3, generations=5)
    again = EvolveConfig.from_dict(config.to_dict())
    assert again == config
    same = EvolveConfig(budgets=["macs<=300M"], seed=3, generations=50, eval_batch_size=8)
    assert again.resume_mismatches(same) == []
    assert again.resume_mismatches(EvolveConfig(budgets=["macs<=300M"], seed=4)) == ["seed: 3 != 4"]
    with pytest.raises(SearchError, match='did you mean "population"'):
        EvolveConfig.from_dict({"populaton": 3})


def test_needs_latency():
    assert not EvolveConfig(budgets=["macs<=300M"]).needs_latency
    assert EvolveConfig(budgets=["latency_ms<=20"]).needs_latency
    assert EvolveConfig(algorithm="nsga2", objectives=["latency_ms"]).needs_latency
