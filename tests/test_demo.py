"""``nasvit demo`` keeps what it did: a budget that cannot be met becomes a NOT MET row of the table and of
``summary.json``, the other budgets are still exported and measured, and the command exits non-zero; a relative
latency budget still binds on a machine far slower than its latency table; a rerun reuses every finished stage.

The latency table's block timings and calibration are faked (building a real one is ``test_latency.py``'s work);
the latency check and the final measurements time the exported models for real."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from evolve import parse_budget
from nasvit.commands import demo as demo_command
from nasvit.latency import LatencyStats, budget_check
from nasvit.latency import table_build as lut_build
from nasvit.latency.table import LatencyTable
from nasvit.recipes.demo import SUMMARY_KEYS, DemoRecipe, _slug, format_table
from search_space import load_space
from tests.supernet_helpers import BRIEF_TRAINING, FAST_TIMING

QUICK_SEARCH = ("evolve.generations=1", "evolve.population=6", "evolve.parents=3")
BUDGETS = 'evolve.budgets=["macs<=1K", "params<=60K", "latency_ms<=10%"]'  # 1K MACs: below the smallest subnet


def untimed_table(patch: pytest.MonkeyPatch) -> None:
    """Every block of the latency table "takes" 0.2 ms (about what one takes here: the demo's smallest subnet reads
    1.2 ms) and its calibration is the identity."""
    block = LatencyStats(0.2, 0.2, 0.2, 1)
    patch.setattr(lut_build, "time_blocks", lambda space, plans, settings: [block] * len(plans))
    identity = {"scale": 1.0, "per_block_ms": 0.0, "offset_ms": 0.0, "subnets": 16, "mape": 0.0}
    patch.setattr(lut_build, "fit_calibration", lambda *args, **kwargs: dict(identity))


def demo_recipe(out: Path) -> DemoRecipe:
    search = (*QUICK_SEARCH, BUDGETS)
    return DemoRecipe(out, train_overrides=BRIEF_TRAINING, search_overrides=search, latency=FAST_TIMING)


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
    untimed_table(slow)
    out = tmp_path_factory.mktemp("demo") / "run"
    try:
        rows = demo_recipe(out).run()
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


def test_every_stage_wrote_what_the_summary_reports(demo_run):
    out, rows = demo_run
    assert [row["budget"] for row in rows] == [parse_budget(b).label for b in json.loads(BUDGETS.split("=", 1)[1])]
    assert json.loads((out / "summary.json").read_text()) == rows
    table = LatencyTable.load(out / "latency_table.json", load_space("demo"))
    assert set(table.calibration) == set(load_space("demo").resolutions)
    met = [row for row in rows if row["met"]]
    for row in met:
        assert set(SUMMARY_KEYS) <= set(row)
        budget = parse_budget(row["budget"])
        if not budget.is_latency:
            assert row[budget.metric] <= budget.limit
        assert row["latency_p10_ms"] <= row["latency_ms"] <= row["latency_p90_ms"] and 0 <= row["top1"] <= 100
        assert row["onnxruntime_p10_ms"] <= row["onnxruntime_ms"] <= row["onnxruntime_p90_ms"]  # its model.onnx timed
        assert Path(row["export_dir"], "model.safetensors").exists() and Path(row["export_dir"], "model.onnx").exists()
    by_subnet = {}
    for row in met:  # a subnet two budgets share shows one latency
        assert by_subnet.setdefault(row["subnet"], row["latency_ms"]) == row["latency_ms"]
    assert (out / "search" / "pareto.png").exists()


def test_a_rerun_reuses_every_finished_stage_and_redoes_an_outdated_export(demo_run, monkeypatch):
    """Last in this file: it rewrites one of the run's exports."""
    out, rows = demo_run
    untimed_table(monkeypatch)
    stamps = {p: p.stat().st_mtime_ns for p in (out / "export").rglob("model.safetensors")}
    recipe = demo_recipe(out)
    again = recipe.run()  # every stage finished: reused
    assert [r.get("subnet") for r in again] == [r.get("subnet") for r in rows]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    first_met = next(row for row in rows if row["met"])
    older = Path(first_met["export_dir"], "subnet.json")  # as an export made before model.ts was the inference form
    description = json.loads(older.read_text())
    del description["verification"]["max_abs_difference"]["inference"]
    older.write_text(json.dumps(description))
    recipe.run()
    redone = {p for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    assert redone == {older.parent / "model.safetensors"}
    assert "inference" in json.loads(older.read_text())["verification"]["max_abs_difference"]
