"""Latency budgets that hold: winners measured over their budget are replaced, or the budget is reported not met."""

from __future__ import annotations

import json
import random

import pytest

from evolve import Candidate, parse_budget
from nasvit.latency import LatencySettings, LatencyStats, budget_check
from nasvit.latency.budget_check import check_latency_budgets, describe_check, record_budget_checks
from search_space import load_space


@pytest.fixture
def candidates():
    """Five tiny subnets, most accurate first, all predicted at 3.7 ms."""
    rng = random.Random(0)
    space = load_space("tiny")
    subnets = list({str(cfg): cfg for cfg in (space.sample(rng) for _ in range(20))}.values())[:5]
    return [Candidate(cfg, {"top1": 90.0 - i}, {"latency_ms": 3.7, "macs": 1e6}, 0) for i, cfg in enumerate(subnets)]


@pytest.fixture
def measured(monkeypatch):
    """Time candidates by a table of medians: ``measured[subnet string] = ms``."""
    table: dict[str, float] = {}

    def fake(models, shapes, settings):
        return [LatencyStats(table[str(cfg)], table[str(cfg)] * 0.95, table[str(cfg)] * 1.05, 20) for cfg in models]

    monkeypatch.setattr(budget_check, "inference_model", lambda cfg: cfg)
    monkeypatch.setattr(budget_check, "measure_modules_interleaved", fake)
    return table


def test_a_winner_over_budget_is_replaced_by_the_best_measured_within(candidates, measured, tmp_path):
    budget = parse_budget("latency_ms<=3.9")
    for index, candidate in enumerate(candidates):
        measured[candidate.key] = [4.6, 4.1, 3.5, 3.0, 2.0][index]
    (check,) = check_latency_budgets({budget: candidates[0]}, candidates, LatencySettings(), runners_up=3)
    assert check.met and check.replaced and check.chosen.candidate is candidates[2]  # 3 of 4 timed: not #4
    assert [t.candidate for t in check.timed] == candidates[:4]
    assert "replaced by the most accurate candidate measured within it" in describe_check(check)
    best = tmp_path / "best.json"
    entry = {"budget": budget.label, "subnet": candidates[0].key, "metrics": {"top1": 90.0}, "costs": {}}
    best.write_text(json.dumps({"budgets": [entry, {"budget": "macs<=3M", "subnet": "x"}]}))
    record_budget_checks(best, [check], "top1")
    written = json.loads(best.read_text())["budgets"]
    assert written[0]["subnet"] == candidates[2].key and written[0]["metrics"] == {"top1": 88.0}
    assert written[0]["latency_check"]["measured_ms"] == 3.5 and written[0]["latency_check"]["predicted_ms"] == 3.7
    assert written[0]["latency_check"]["searched_subnet"] == candidates[0].key and "latency_check" not in written[1]


def test_a_budget_no_timed_candidate_meets_is_reported_not_met(candidates, measured):
    budget = parse_budget("latency_ms<=3.9")
    for candidate in candidates:
        measured[candidate.key] = 5.0
    (check,) = check_latency_budgets({budget: candidates[0]}, candidates, LatencySettings(), runners_up=4)
    assert not check.met and check.to_record("top1")["measured_ms"] is None
    assert len(check.to_record("top1")["timed"]) == 5
    assert "NOT MET on this device" in describe_check(check)


def test_a_subnet_shared_by_two_budgets_is_timed_once(candidates, measured, monkeypatch):
    for candidate in candidates:
        measured[candidate.key] = 1.0
    counts = []
    fake = budget_check.measure_modules_interleaved
    monkeypatch.setattr(
        budget_check, "measure_modules_interleaved", lambda m, s, t: counts.append(len(m)) or fake(m, s, t)
    )
    budgets = {parse_budget("latency_ms<=3.8"): candidates[0], parse_budget("latency_ms<=9"): candidates[0]}
    checks = check_latency_budgets(budgets, candidates, LatencySettings(), runners_up=1)
    assert counts == [2] and all(c.met and not c.replaced for c in checks)


def test_a_table_that_reads_fast_is_corrected_and_searched_again(candidates, measured):
    """Every candidate at the budget's edge measures 12% over its prediction: the check searches again under the
    budget divided by that ratio and finds a subnet that measures within it, recording both rounds."""
    budget = parse_budget("latency_ms<=3.9")
    for candidate in candidates:
        measured[candidate.key] = 3.7 * 1.12
    space = load_space("tiny")
    rng = random.Random(1)
    cheaper = [cfg for cfg in (space.sample(rng) for _ in range(40)) if str(cfg) not in measured][:3]
    cheaper = [Candidate(cfg, {"top1": 80.0 - i}, {"latency_ms": 3.2, "macs": 1e6}, 1) for i, cfg in enumerate(cheaper)]
    for candidate in cheaper:
        measured[candidate.key] = 3.2 * 1.12
    limits = []

    def search_within(searched_budget, limit):
        limits.append(limit)
        return cheaper

    (check,) = check_latency_budgets(
        {budget: candidates[0]},
        candidates,
        LatencySettings(),
        runners_up=4,
        search_within=search_within,
        correction_rounds=2,
    )
    assert limits == [pytest.approx(3.9 / 1.12)]
    assert check.met and check.chosen.candidate is cheaper[0] and len(check.rounds) == 2
    record = check.to_record("top1")
    assert [r["timed"] for r in record["rounds"]] == [5, 3] and record["limit_ms"] == 3.9
    assert record["rounds"][1]["predicted_limit_ms"] == pytest.approx(3.9 / 1.12)
    assert "found in round 1" in describe_check(check)


def test_rounds_are_bounded_and_a_budget_still_missed_is_reported_with_every_round(candidates, measured):
    budget = parse_budget("latency_ms<=3.9")
    for candidate in candidates:
        measured[candidate.key] = 9.0
    calls = []
    (check,) = check_latency_budgets(
        {budget: candidates[0]},
        candidates,
        LatencySettings(),
        runners_up=4,
        search_within=lambda b, limit: calls.append(limit) or [],
        correction_rounds=2,
    )
    assert not check.met and len(calls) == 1 and len(check.rounds) == 2 and not check.rounds[1].timed
    assert "NOT MET on this device" in describe_check(check) and "2 round(s)" in describe_check(check)


def test_a_relative_budget_is_resolved_again_on_the_measured_extremes(candidates, measured):
    """The table reads 2x fast on this machine: the winner measures 7.4 ms against its 4 ms predicted limit, yet it
    is half-way between the fastest smallest subnet and the largest as timed now, which is what
    ``latency_ms<=50%`` asks. The smallest subnet is fastest at 24 px here, not at 16 px: the limit starts there."""
    space = load_space("tiny")
    budget = parse_budget("latency_ms<=50%").resolved(2.0, 6.0)
    for candidate in candidates:
        measured[candidate.key] = 7.4
    for resolution, ms in zip(space.resolutions, (4.0, 3.0, 5.0)):
        measured[str(space.min_subnet().replace(resolution=resolution))] = ms
    measured[str(space.max_subnet())] = 12.0
    (check,) = check_latency_budgets({budget: candidates[0]}, candidates, LatencySettings(), runners_up=1)
    assert check.limit_ms == pytest.approx(7.5) and check.met and not check.replaced
    assert check.to_record("top1")["limit_ms"] == pytest.approx(7.5)
