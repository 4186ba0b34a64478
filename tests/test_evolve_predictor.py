"""The accuracy predictor inside the search: it finds the synthetic optimum with fewer evaluations, its quality is
logged per generation, a useless one is switched off, and its settings are validated."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from test_evolve_synthetic import FAST_CONSTRAINED, CountingEvaluator, nasvit

from evolve import CANDIDATES_FILE, GENERATIONS_FILE, EvolveConfig, SearchError, run_search
from evolve.objectives import exhaustive_optimum
from evolve.predictor import AccuracyPredictor, rank_agreement

BUDGET = "macs<=400M"


def evaluations_to_optimum(evaluator: CountingEvaluator, result, optimum: float) -> int | None:
    values = {c.key: c.metrics["top1"] for c in result.candidates if c.costs["macs"] <= 400e6}
    return next((i + 1 for i, key in enumerate(evaluator.scored) if values.get(key, -1) >= optimum - 1e-9), None)


def test_the_predictor_reaches_the_synthetic_optimum_with_fewer_evaluations():
    space, optimum = nasvit(), exhaustive_optimum(nasvit(), 400e6)
    needed = {}
    for predictor in ("none", "ridge"):
        evaluator = CountingEvaluator(space)
        settings = {**FAST_CONSTRAINED, "generations": 9}  # 400 evaluations
        config = EvolveConfig(**settings, budgets=[BUDGET], predictor=predictor, seed=2)
        result = run_search(space, evaluator, config)
        needed[predictor] = evaluations_to_optimum(evaluator, result, optimum)
    assert needed["ridge"] is not None and needed["ridge"] <= 300
    assert needed["none"] is None or needed["none"] > needed["ridge"]


class RandomObjective(CountingEvaluator):
    """A top1 with nothing to learn: a hash of the subnet string."""

    def __call__(self, cfgs):
        super().__call__(cfgs)
        return [{"top1": hashlib.sha256(str(cfg).encode()).digest()[0] / 2.55} for cfg in cfgs]


def test_a_predictor_no_better_than_chance_leaves_the_breeding_alone():
    space = nasvit()
    config = EvolveConfig(**{**FAST_CONSTRAINED, "generations": 12}, budgets=[BUDGET], predictor="ridge", seed=0)
    history = run_search(space, RandomObjective(space), config).history
    records = [h.predictor for h in history]
    assert records[0] is None and all(r is not None for r in records[1:])
    for previous, record in itertools.pairwise(records[1:]):
        ranked_well = previous["tau"] is not None and previous["tau"] > 0 and previous["p_value"] <= 0.1
        assert record["used"] == ranked_well
    assert sum(r["used"] for r in records[1:]) <= 2  # a hash is not learnt: chance alone passes p <= 0.1 rarely


def test_predictions_and_rank_agreement_are_logged(tmp_path):
    space = nasvit()
    config = EvolveConfig(population=12, generations=3, parents=4, budgets=[BUDGET], predictor="ridge")
    run_search(space, CountingEvaluator(space), config, out_dir=tmp_path)
    candidates = [json.loads(line) for line in (tmp_path / CANDIDATES_FILE).read_text().splitlines()]
    assert all(("predicted" in c) == (c["generation"] >= 1) for c in candidates)
    generations = [json.loads(line) for line in (tmp_path / GENERATIONS_FILE).read_text().splitlines()]
    assert generations[0]["predictor"] is None
    for record in generations[1:]:
        entry = record["predictor"]
        fresh = [c for c in candidates if c["generation"] == record["generation"]]
        expected = rank_agreement([c["predicted"] for c in fresh], [c["metrics"]["top1"] for c in fresh])
        assert entry["tau"] == pytest.approx(expected.tau) and entry["compared"] == len(fresh)
        assert entry["fitted_on"] == sum(c["generation"] < record["generation"] for c in candidates)
    assert [r["predictor"]["used"] for r in generations[1:]] == [False, True, True]


def test_nsga2_keeps_the_predicted_front():
    space = nasvit()
    config = EvolveConfig(
        algorithm="nsga2", population=12, generations=3, budgets=["macs<=600M"], predictor="forest", predictor_pool=3
    )
    result = run_search(space, CountingEvaluator(space), config)
    assert [bool(h.predictor and h.predictor["used"]) for h in result.history] == [False, False, True, True]
    assert result.pareto and all(c.costs["macs"] <= 600e6 for c in result.pareto)


def test_the_predictor_fits_what_it_was_given():
    space = nasvit()
    config = EvolveConfig(population=16, generations=0, budgets=[BUDGET])
    candidates = run_search(space, CountingEvaluator(space), config).candidates
    for kind in ("ridge", "forest"):
        predictor = AccuracyPredictor(space, kind, "top1").fit(candidates)
        predicted = predictor.predict([c.subnet for c in candidates], [c.costs for c in candidates])
        assert rank_agreement(predicted, [c.metrics["top1"] for c in candidates]).tau > 0.7, kind


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"predictor": "ridg"}, 'did you mean "ridge"'),
        ({"predictor_pool": 0}, "predictor_pool must be a positive integer"),
        ({"predictor_warmup": 1}, "predictor_warmup must be an integer >= 2"),
        ({"predictor_explore": 1.5}, "predictor_explore must lie in [0, 1]"),
    ],
)
def test_bad_predictor_settings_are_refused(setting, message):
    with pytest.raises(SearchError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EvolveConfig(budgets=[BUDGET], **setting)
