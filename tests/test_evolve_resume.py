"""Resume: a search killed between or inside generations ends exactly like an uninterrupted one, and never
evaluates a logged subnet again."""

from __future__ import annotations

import json

import pytest
from test_evolve_synthetic import CountingEvaluator, nasvit

from evolve import CANDIDATES_FILE, GENERATIONS_FILE, EvolveConfig, SearchError, run_search

SETTINGS = {
    "constrained": dict(population=12, parents=4, mutation_prob=0.05, budgets=["macs<=350M", "macs<=500M"], seed=3),
    "nsga2": dict(algorithm="nsga2", population=12, mutation_prob=0.05, budgets=["macs<=600M"], seed=3),
}
# the accuracy predictor fitted from generation 1 and picking children from generation 2 on (the forest: a
# seeded model refitted on resume; NSGA-II's preselection)
SETTINGS["nsga2+forest"] = {**SETTINGS["nsga2"], "predictor": "forest", "predictor_pool": 3}
TOTAL = 6


def _same_outcome(resumed, full) -> None:
    assert resumed.best == full.best
    assert resumed.pareto == full.pareto
    assert resumed.population == full.population
    assert resumed.candidates == full.candidates
    assert [h.best for h in resumed.history] == [h.best for h in full.history]
    assert [h.front_size for h in resumed.history] == [h.front_size for h in full.history]
    assert [h.predictor for h in resumed.history] == [h.predictor for h in full.history]
    assert [c.predicted for c in resumed.candidates] == [c.predicted for c in full.candidates]


# the forest's 200 trees take seconds a generation: its resume runs with `pytest -m slow`; the default run resumes a
# search with the ridge predictor in tests/test_search_cli.py
@pytest.fixture(params=[pytest.param(k, marks=pytest.mark.slow) if "forest" in k else k for k in sorted(SETTINGS)])
def settings(request) -> dict:
    return SETTINGS[request.param]


def test_resume_after_a_kill_between_generations(tmp_path, settings):
    space = nasvit()
    full_evaluator = CountingEvaluator(space)
    full = run_search(space, full_evaluator, EvolveConfig(**settings, generations=TOTAL), out_dir=tmp_path / "full")
    picked = [bool(h.predictor and h.predictor["used"]) for h in full.history]
    assert picked == ([False, False] + [True] * (TOTAL - 1) if "predictor" in settings else [False] * (TOTAL + 1))

    first = CountingEvaluator(space)
    run_search(space, first, EvolveConfig(**settings, generations=2), out_dir=tmp_path / "cut")
    logged = [json.loads(line)["subnet"] for line in (tmp_path / "cut" / CANDIDATES_FILE).read_text().splitlines()]
    assert logged == first.scored

    second = CountingEvaluator(space)
    config = EvolveConfig(**settings, generations=TOTAL)
    resumed = run_search(space, second, config, out_dir=tmp_path / "cut", resume=True)
    _same_outcome(resumed, full)
    assert not set(second.scored) & set(first.scored)  # nothing logged was evaluated again
    assert first.scored + second.scored == full_evaluator.scored  # the same evaluations, in the same order
    assert resumed.evaluations == len(second.scored)
    generations = (tmp_path / "cut" / GENERATIONS_FILE).read_text().splitlines()
    assert [json.loads(line)["generation"] for line in generations] == list(range(TOTAL + 1))
    assert (tmp_path / "cut" / "best.json").read_text() == (tmp_path / "full" / "best.json").read_text()
    assert (tmp_path / "cut" / "pareto.json").read_text() == (tmp_path / "full" / "pareto.json").read_text()


def test_resume_after_a_kill_inside_a_generation(tmp_path, settings):
    space = nasvit()
    full_evaluator = CountingEvaluator(space)
    config = EvolveConfig(**settings, generations=TOTAL, eval_batch_size=5)
    full = run_search(space, full_evaluator, config)

    killed = CountingEvaluator(space, fail_after_calls=10)  # dies in generation 3 after logging one batch of it
    with pytest.raises(KeyboardInterrupt):
        run_search(space, killed, config, out_dir=tmp_path)
    with open(tmp_path / CANDIDATES_FILE, "a") as log:
        log.write('{"subnet": "nasvit:r2')  # a line cut short by the kill
    completed = len((tmp_path / GENERATIONS_FILE).read_text().splitlines())
    assert 0 < completed < TOTAL + 1

    second = CountingEvaluator(space)
    resumed = run_search(space, second, config, out_dir=tmp_path, resume=True)
    _same_outcome(resumed, full)
    assert not set(second.scored) & set(killed.scored)
    assert killed.scored + second.scored == full_evaluator.scored
    assert resumed.cache_hits == 5  # the logged batch of the interrupted generation came from the log
    lines = (tmp_path / CANDIDATES_FILE).read_text().splitlines()
    assert len(lines) == len(full.candidates) and all(json.loads(line) for line in lines)


def test_resuming_a_finished_search_evaluates_nothing(tmp_path):
    space = nasvit()
    config = EvolveConfig(**SETTINGS["constrained"], generations=3)
    done = run_search(space, CountingEvaluator(space), config, out_dir=tmp_path)
    evaluator = CountingEvaluator(space)
    again = run_search(space, evaluator, config, out_dir=tmp_path, resume=True)
    assert evaluator.calls == 0 and again.evaluations == 0
    _same_outcome(again, done)
    shorter = run_search(
        space, evaluator, EvolveConfig(**SETTINGS["constrained"], generations=1), out_dir=tmp_path, resume=True
    )
    assert evaluator.calls == 0 and len(shorter.history) == 2
    assert max(c.generation for c in shorter.candidates) == 1


def test_resume_refuses_other_settings_and_existing_logs(tmp_path):
    space = nasvit()
    run_search(
        space, CountingEvaluator(space), EvolveConfig(**SETTINGS["constrained"], generations=1), out_dir=tmp_path
    )
    other = EvolveConfig(**{**SETTINGS["constrained"], "seed": 4}, generations=2)
    with pytest.raises(SearchError, match="seed: 3 != 4"):
        run_search(space, CountingEvaluator(space), other, out_dir=tmp_path, resume=True)
    with pytest.raises(SearchError, match="already holds a search log"):
        run_search(space, CountingEvaluator(space), EvolveConfig(**SETTINGS["constrained"]), out_dir=tmp_path)
    with pytest.raises(SearchError, match="needs the out_dir"):
        run_search(space, CountingEvaluator(space), EvolveConfig(**SETTINGS["constrained"]), resume=True)


def test_resume_into_an_empty_directory_starts_afresh(tmp_path):
    space = nasvit()
    config = EvolveConfig(**SETTINGS["constrained"], generations=1)
    fresh = run_search(space, CountingEvaluator(space), config, out_dir=tmp_path / "new", resume=True)
    plain = run_search(space, CountingEvaluator(space), config)
    _same_outcome(fresh, plain)


def test_corrupt_log_line_is_reported(tmp_path):
    space = nasvit()
    config = EvolveConfig(**SETTINGS["constrained"], generations=1)
    run_search(space, CountingEvaluator(space), config, out_dir=tmp_path)
    lines = (tmp_path / CANDIDATES_FILE).read_text().splitlines()
    (tmp_path / CANDIDATES_FILE).write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")
    with pytest.raises(SearchError, match=f"{CANDIDATES_FILE}:2 is not valid JSON"):
        run_search(space, CountingEvaluator(space), config, out_dir=tmp_path, resume=True)
