"""Files a search writes (candidates.jsonl, pareto.json, best.json, the plot) and the per-generation callbacks."""

from __future__ import annotations

import json

from test_evolve_synthetic import CountingEvaluator, nasvit

from evolve import (
    BEST_FILE,
    CANDIDATES_FILE,
    PARETO_FILE,
    PLOT_FILE,
    EvolveConfig,
    load_candidates,
    run_search,
)
from search_space import SubnetConfig

BUDGETS = ["macs<=350M", "params<=11M"]


def _search(tmp_path, **callbacks):
    space = nasvit()
    config = EvolveConfig(population=10, generations=3, parents=4, budgets=BUDGETS, seed=1)
    return run_search(space, CountingEvaluator(space), config, out_dir=tmp_path, **callbacks)


def test_candidates_log(tmp_path):
    result = _search(tmp_path)
    lines = (tmp_path / CANDIDATES_FILE).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == len(result.candidates)
    for record in records:
        assert set(record) == {"subnet", "metrics", "costs", "generation"}
        assert set(record["costs"]) == {"macs", "params", "activations"} and "top1" in record["metrics"]
        assert 0 <= record["generation"] <= 3
    loaded = load_candidates(tmp_path / CANDIDATES_FILE, nasvit())
    assert sorted(loaded, key=lambda c: (c.generation, c.key)) == result.candidates


def test_best_json_is_loadable(tmp_path):
    result = _search(tmp_path)
    best = json.loads((tmp_path / BEST_FILE).read_text())
    assert [entry["budget"] for entry in best["budgets"]] == BUDGETS
    for entry in best["budgets"]:
        cfg = SubnetConfig.from_string(entry["subnet"], nasvit())
        assert nasvit().cost(cfg).get(entry["budget"].split("<=")[0]) == entry["costs"][entry["budget"].split("<=")[0]]
        assert entry["metrics"] == dict(result.best_for(entry["budget"]).metrics)
    assert best["budgets"][0]["costs"]["macs"] <= 350e6 and best["budgets"][1]["costs"]["params"] <= 11e6


def test_pareto_json_and_plot(tmp_path):
    result = _search(tmp_path)
    pareto = json.loads((tmp_path / PARETO_FILE).read_text())
    assert pareto["objective"] == "top1" and pareto["costs"] == ["macs"]
    assert [entry["subnet"] for entry in pareto["front"]] == [c.key for c in result.pareto]
    macs = [entry["costs"]["macs"] for entry in pareto["front"]]
    top1 = [entry["metrics"]["top1"] for entry in pareto["front"]]
    assert macs == sorted(macs) and top1 == sorted(top1)  # a front: dearer points must be more accurate
    png = (tmp_path / PLOT_FILE).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5_000


def test_generation_callbacks(tmp_path):
    summaries, progress = [], []
    result = _search(
        tmp_path, on_generation=summaries.append, progress=lambda done, total: progress.append((done, total))
    )
    assert [s.generation for s in summaries] == [0, 1, 2, 3] == [h.generation for h in result.history]
    assert [s.candidates for s in summaries] == sorted(s.candidates for s in summaries)
    assert summaries[-1].evaluations == len(result.candidates) and summaries[-1].cache_hits == 0
    assert summaries[-1].best == result.best
    assert all(done == total for done, total in progress) and len(progress) == 4  # one evaluator call a generation
    line = summaries[-1].describe()
    assert line.startswith("gen 3") and "macs<=350M: top1" in line and "params<=11M" in line
