"""CandidateScorer: costs, caching by subnet string, counting, batching, latency on demand, bad evaluator output."""

from __future__ import annotations

import math

import pytest
from test_evolve_synthetic import CountingEvaluator, nasvit, random_subnets

from evolve import CandidateScorer, EvolveConfig, SearchError, run_search
from evolve.objectives import synthetic_top1


def test_costs_and_metrics_of_a_candidate():
    space = nasvit()
    scorer = CandidateScorer(space, CountingEvaluator(space))
    cfg = space.max_subnet()
    [candidate] = scorer.evaluate([cfg], generation=3)
    cost = space.cost(cfg)
    assert candidate.costs == {"macs": cost.macs, "params": cost.params, "activations": cost.activations}
    assert candidate.metrics == {"top1": synthetic_top1(space, cfg), "top5": 1.0}
    assert candidate.generation == 3
    assert candidate.key == str(cfg)
    assert candidate.value("macs") == cost.macs and candidate.value("top1") == candidate.metrics["top1"]


def test_cache_counts_hits_and_evaluations():
    space = nasvit()
    inner = CountingEvaluator(space)
    scorer = CandidateScorer(space, inner)
    cfgs = random_subnets(space, 5, seed=1)
    first = scorer.evaluate([*cfgs, cfgs[0]], generation=0)  # a duplicate inside one batch is scored once
    assert inner.calls == 1 and len(inner.scored) == 5
    assert scorer.evaluations == 5 and scorer.cache_hits == 0
    again = scorer.evaluate(cfgs[:3], generation=1)
    assert inner.calls == 1 and scorer.cache_hits == 3
    assert again == first[:3] and all(c.generation == 0 for c in again)
    assert str(cfgs[2]) in scorer and len(scorer) == 5


def test_batches_and_on_batch():
    space = nasvit()
    inner = CountingEvaluator(space)
    scorer = CandidateScorer(space, inner)
    seen_batches = []
    scorer.evaluate(random_subnets(space, 7, seed=2), generation=0, batch_size=3, on_batch=seen_batches.append)
    assert [len(b) for b in seen_batches] == [3, 3, 1]
    assert inner.calls == 3


def test_protocol_call_merges_costs_and_metrics():
    space = nasvit()
    scorer = CandidateScorer(space, CountingEvaluator(space))
    [result] = scorer([space.min_subnet()])
    assert set(result) == {"macs", "params", "activations", "top1", "top5"}


def test_latency_measured_only_when_asked():
    space = nasvit()
    calls = []

    def latency(cfg):
        calls.append(str(cfg))
        return space.cost(cfg).activations / 1e6

    plain = CandidateScorer(space, CountingEvaluator(space), latency_fn=latency)
    assert "latency_ms" not in plain.costs(space.min_subnet()) and calls == []
    timed = CandidateScorer(space, CountingEvaluator(space), latency_fn=latency, measure_latency=True)
    cfg = space.min_subnet()
    assert timed.costs(cfg)["latency_ms"] == pytest.approx(space.cost(cfg).activations / 1e6)
    timed.costs(cfg)
    assert calls == [str(cfg)]  # memoised
    with pytest.raises(SearchError, match="pass latency_fn"):
        CandidateScorer(space, CountingEvaluator(space), measure_latency=True)


def test_search_without_latency_budget_never_calls_latency_fn():
    space = nasvit()

    def latency(cfg):
        raise AssertionError("latency_fn must not be called without a latency budget or objective")

    config = EvolveConfig(population=8, generations=2, budgets=["macs<=400M"], parents=4)
    result = run_search(space, CountingEvaluator(space), config, latency_fn=latency)
    assert result.best_for("macs<=400M") is not None


@pytest.mark.parametrize(
    ("evaluator", "match"),
    [
        (lambda cfgs: [{"top1": 1.0}], "returned 1 results for 2 subnets"),
        (lambda cfgs: [{"acc": 1.0} for _ in cfgs], "holding the objective 'top1'"),
        (lambda cfgs: [{"top1": math.nan} for _ in cfgs], "must be finite"),
    ],
)
def test_bad_evaluator_output(evaluator, match):
    space = nasvit()
    with pytest.raises(SearchError, match=match):
        CandidateScorer(space, evaluator).evaluate(random_subnets(space, 2, seed=3), generation=0)


def test_custom_objective_name():
    space = nasvit()
    config = EvolveConfig(population=6, generations=1, budgets=["macs<=500M"], parents=3, objective="acc")
    result = run_search(space, lambda cfgs: [{"acc": synthetic_top1(space, c)} for c in cfgs], config)
    feasible = [c for c in result.candidates if c.costs["macs"] <= 500e6]
    assert result.best_for("macs<=500M").metrics["acc"] == max(c.metrics["acc"] for c in feasible)


def test_shared_cost_evaluator_reruns_a_search_from_its_cache():
    space = nasvit()
    inner = CountingEvaluator(space)
    scorer = CandidateScorer(space, inner)
    config = EvolveConfig(population=8, generations=2, budgets=["macs<=450M"], parents=3, seed=9)
    first = run_search(space, scorer, config)
    calls = inner.calls
    again = run_search(space, scorer, config)
    assert inner.calls == calls and scorer.cache_hits == len(first.candidates)  # a rerun costs no evaluation
    assert again.candidates == first.candidates and again.best == first.best
