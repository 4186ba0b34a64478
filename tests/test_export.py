"""``nasvit export`` / ``load_model`` / ``nasvit eval`` and the one-command demo, on a briefly trained tiny supernet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import timm
import torch

import nasvit
from evolve import parse_budget
from nasvit import checkpoint
from nasvit.cli import main
from nasvit.config import load_config
from nasvit.export import export_subnet
from nasvit.latency import LatencySettings, table_quality
from nasvit.latency.table import LatencyTable
from nasvit.recipes.demo import SUMMARY_KEYS, DemoRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.train_config import TrainConfig
from search_space import load_space
from supernet import NASViT

TRAIN_FAST = ("data.batch_size=128", "sandwich.num_random=1", "max_steps=2", "device=cpu", "eval.bn_batches=1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("train")
    TrainRecipe(load_config(TrainConfig, "configs/train/demo.yaml", TRAIN_FAST), run).run()
    return checkpoint.latest(run)


def test_export_writes_verified_files_and_loads_back(trained, tmp_path):
    onnx = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')") is not None
    arch = str(load_space("tiny").max_subnet().replace(resolution=24))
    argv = [
        "export",
        "--checkpoint",
        str(trained),
        "--arch",
        arch,
        "--out",
        str(tmp_path),
        "--torchscript",
        "--onnx",
        "--bn-batches",
        "2",
    ]
    assert main(argv) == 0
    assert {p.name for p in tmp_path.iterdir()} >= {"model.safetensors", "subnet.json", "model.ts", "model.onnx"}
    description = json.loads((tmp_path / "subnet.json").read_text())
    assert (
        description["subnet"] == arch
        and description["costs"]["macs"] == load_space("tiny").cost(load_space("tiny").parse(arch), 10).macs
    )
    differences = description["verification"]["max_abs_difference"]
    assert set(differences) == {"supernet", "inference", "torchscript", "onnx"} and max(differences.values()) <= 1e-4
    assert description["provenance"]["checkpoint"] == str(trained) and description["provenance"]["date"]
    assert onnx

    model = nasvit.load_model(tmp_path)
    assert isinstance(model, NASViT) and not model.training and model.subnet == arch
    x = torch.randn(2, 3, 24, 24)
    with torch.no_grad():
        expected = model(x)
        torchscript = torch.jit.load(str(tmp_path / "model.ts"))
        scripted = torchscript(x)
        via_timm = timm.create_model(
            "nasvit_subnet", subnet=arch, num_classes=10, checkpoint_path=str(tmp_path / "model.safetensors")
        ).eval()(x)
        fast = nasvit.load_model(tmp_path, inference=True)(x)
    assert torch.allclose(scripted, expected, atol=1e-5) and torch.allclose(via_timm, expected, atol=1e-6)
    assert torch.allclose(fast, expected, atol=1e-5)
    assert "BatchNorm2d" not in {m.original_name for m in torchscript.modules()}  # model.ts is the inference form


def test_export_from_search_result_keeps_its_metrics(trained, tmp_path):
    space = load_space("tiny")
    best = {"budgets": [{"budget": "macs<=3M", "subnet": str(space.min_subnet()), "metrics": {"top1": 12.5}}]}
    (tmp_path / "best.json").write_text(json.dumps(best))
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(trained),
                "--arch",
                f"{tmp_path / 'best.json'}#macs<=3M",
                "--out",
                str(tmp_path / "out"),
                "--bn-batches",
                "1",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "out" / "subnet.json").read_text())["metrics"] == {"top1": 12.5}


def test_export_fails_above_tolerance(trained, tmp_path, monkeypatch):
    import nasvit.export as export_module

    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # any difference, even 0, now fails
    state = checkpoint.load(trained)
    with pytest.raises(nasvit.errors.NasvitError, match="failed verification"):
        export_subnet(state, str(trained), load_space("tiny").min_subnet(), tmp_path / "x", bn_batches=1)
    assert not (tmp_path / "x").exists()  # nothing written when verification fails


@pytest.mark.parametrize(
    ("arch", "message"),
    [("nowhere.json", "subnet file nowhere.json does not exist"), ("best.json#nope", "has no entry 'nope'")],
)
def test_export_bad_arch(trained, tmp_path, capsys, monkeypatch, arch, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.json").write_text(json.dumps({"budgets": [{"budget": "a", "subnet": "x"}]}))
    assert main(["export", "--checkpoint", str(trained), "--arch", arch, "--out", "o"]) == 2
    assert message in capsys.readouterr().err


def test_eval_prints_accuracy_and_throughput(trained, tmp_path, capsys):
    assert (
        main(["export", "--checkpoint", str(trained), "--arch", "min", "--out", str(tmp_path), "--bn-batches", "1"])
        == 0
    )
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" in out and "images/s" in out and "on 359 val images" in out


def test_load_model_of_a_non_export(tmp_path):
    with pytest.raises(nasvit.errors.NasvitError, match="is not an exported model"):
        nasvit.load_model(tmp_path)


def test_demo_runs_every_stage_and_reuses_them(tmp_path, monkeypatch):
    for name, never in (("POOR_NOISY_SHARE", 1.0), ("POOR_MAPE", math.inf), ("POOR_BUSY_SHARE", 1.0)):
        monkeypatch.setattr(table_quality, name, never)  # a 5-run table may be poor, and a rerun re-times a poor one
    recipe = DemoRecipe(
        tmp_path,
        train_overrides=TRAIN_FAST,
        search_overrides=("evolve.population=4", "evolve.generations=1", "evolve.parents=2", "eval.bn_batches=1"),
        latency=LatencySettings(threads=1, warmup=1, repeats=5),
    )
    rows = recipe.run()
    budgets = [parse_budget(b) for b in recipe.search_config.evolve.budgets]
    assert [row["budget"] for row in rows] == [b.label for b in budgets] and len({b.metric for b in budgets}) == 3
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == rows and all(row["met"] for row in rows[:2])  # only a latency budget can be unmet here
    table = LatencyTable.load(tmp_path / "latency_table.json", load_space("demo"))
    assert set(table.calibration) == set(load_space("demo").resolutions)
    for row in (row for row in summary if row["met"]):
        assert set(SUMMARY_KEYS) <= set(row)
        budget = parse_budget(row["budget"])
        if not budget.is_latency:
            assert row[budget.metric] <= budget.limit
        assert row["latency_p10_ms"] <= row["latency_ms"] <= row["latency_p90_ms"] and 0 <= row["top1"] <= 100
        assert Path(row["export_dir"], "model.safetensors").exists()
    by_subnet = {}
    for row in (row for row in summary if row["met"]):  # a subnet two budgets share shows one latency
        assert by_subnet.setdefault(row["subnet"], row["latency_ms"]) == row["latency_ms"]
    latency_best = json.loads((tmp_path / "search-latency" / "best.json").read_text())["budgets"]
    (latency_entry,) = [e for e in latency_best if "latency_check" in e]
    check = latency_entry["latency_check"]
    assert check["met"] == rows[2]["met"] and (not check["met"] or check["measured_ms"] <= check["limit_ms"])
    assert (tmp_path / "search" / "pareto.png").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "export").rglob("model.safetensors")}
    again = recipe.run()  # every stage finished: reused
    assert [r["subnet"] for r in again] == [r["subnet"] for r in rows]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    older = Path(rows[0]["export_dir"], "subnet.json")  # as an export made before model.ts was the inference form
    description = json.loads(older.read_text())
    del description["verification"]["max_abs_difference"]["inference"]
    older.write_text(json.dumps(description))
    recipe.run()
    redone = {p for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    assert redone == {older.parent / "model.safetensors"}
    assert "inference" in json.loads(older.read_text())["verification"]["max_abs_difference"]
