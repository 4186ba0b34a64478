"""``nasvit demo`` keeps what it did: a budget that cannot be met becomes a NOT MET row of the table and of
``summary.json``, the other budgets are still exported and measured, and the command exits non-zero; a relative
latency budget still binds on a machine far slower than its latency table."""

from __future__ import annotations

import argparse
import json

import pytest

from nasvit.commands import demo as demo_command
from nasvit.latency import LatencySettings, LatencyStats, budget_check
from nasvit.recipes.demo import DemoRecipe, _slug, format_table

QUICK_TRAIN = ("optim.epochs=1", "eval.every_epochs=1", "data.batch_size=32")
QUICK_SEARCH = ("evolve.generations=1", "evolve.population=6", "evolve.parents=3")
BUDGETS = 'evolve.budgets=["macs<=1K", "params<=60K", "latency_ms<=10%"]'  # 1K MACs: below the smallest subnet
QUICK_TIMING = LatencySettings(threads=1, warmup=1, repeats=3)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A quick demo in which every timing after the search reads 50 times slow (a machine far slower than its table:
    an absolute budget would miss by 50x) and one cost budget is below the smallest subnet."""
    slow = pytest.MonkeyPatch()
    measure = budget_check.measure_modules_interleaved

    def fifty_times_slower(models, shapes, settings):
        return [
            LatencyStats(50 * s.median_ms, 50 * s.p10_ms, 50 * s.p90_ms, s.runs)
            for s in measure(models, shapes, settings)
        ]

    slow.setattr(budget_check, "measure_modules_interleaved", fifty_times_slower)
    out = tmp_path_factory.mktemp("demo") / "run"
    try:
        recipe = DemoRecipe(
            out, train_overrides=QUICK_TRAIN, search_overrides=(*QUICK_SEARCH, BUDGETS), latency=QUICK_TIMING
        )
        rows = recipe.run()
    finally:
        slow.undo()
    return out, rows


def test_budgets_not_met_become_rows_and_the_others_are_exported(demo_run):
    out, rows = demo_run
    assert [(row["budget"], row["met"]) for row in rows] == [
        ("macs<=1K", False),
        ("params<=60K", True),
        ("latency_ms<=10%", True),
    ]
    unsatisfiable, met, relative = rows
    assert "unsatisfiable: the smallest attainable macs in space 'demo'" in unsatisfiable["reason"]
    for row in (met, relative):
        assert (out / "export" / _slug(row["budget"]) / "model.safetensors").is_file()
    assert met["params"] <= 60e3
    best = json.loads((out / "search-latency" / "best.json").read_text())["budgets"][0]
    check = best["latency_check"]
    assert check["met"] and check["measured_ms"] <= check["limit_ms"]
    assert check["limit_ms"] > 20 * best["limit"]  # resolved again on the timings: 50 times slow, like them
    assert json.loads((out / "summary.json").read_text()) == rows
    table = format_table(rows)
    assert "NOT MET: budget macs<=1K" in table and f"latency_ms<=10% ({relative['limit']:.4g} ms)" in table


def test_the_command_prints_the_table_and_exits_non_zero_naming_what_was_not_met(demo_run, monkeypatch, capsys):
    out, rows = demo_run
    monkeypatch.setattr(DemoRecipe, "run", lambda self: rows)
    args = argparse.Namespace(out=str(out), train_overrides=[], search_overrides=[])
    assert demo_command.run(args) == 1
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("NOT MET: macs<=1K (")
    assert any(line.startswith("params<=60K: demo:") for line in printed)
