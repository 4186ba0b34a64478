"""``nasvit export`` / ``load_model`` / ``nasvit eval`` on a briefly trained tiny supernet."""

from __future__ import annotations

import json

import pytest
import timm
import torch

import nasvit
from nasvit.cli import main
from nasvit.export.directory import export_subnet
from nasvit.runtime import checkpoint
from search_space import load_space
from supernet import NASViT


def test_export_writes_verified_files_and_loads_back(briefly_trained, tmp_path):
    onnx = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')") is not None
    arch = str(load_space("tiny").max_subnet().replace(resolution=24))
    argv = [
        "export",
        "--checkpoint",
        str(briefly_trained),
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
    assert description["provenance"]["checkpoint"] == str(briefly_trained) and description["provenance"]["date"]
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


def test_export_from_search_result_keeps_its_metrics(briefly_trained, tmp_path):
    space = load_space("tiny")
    best = {"budgets": [{"budget": "macs<=3M", "subnet": str(space.min_subnet()), "metrics": {"top1": 12.5}}]}
    (tmp_path / "best.json").write_text(json.dumps(best))
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(briefly_trained),
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


def test_export_fails_above_tolerance(briefly_trained, tmp_path, monkeypatch):
    import nasvit.export.directory as export_module

    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)  # any difference, even 0, now fails
    state = checkpoint.load(briefly_trained)
    with pytest.raises(nasvit.errors.NasvitError, match="failed verification"):
        export_subnet(state, str(briefly_trained), load_space("tiny").min_subnet(), tmp_path / "x", bn_batches=1)
    assert not (tmp_path / "x").exists()  # nothing written when verification fails


@pytest.mark.parametrize(
    ("arch", "message"),
    [("nowhere.json", "subnet file nowhere.json does not exist"), ("best.json#nope", "has no entry 'nope'")],
)
def test_export_bad_arch(briefly_trained, tmp_path, capsys, monkeypatch, arch, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.json").write_text(json.dumps({"budgets": [{"budget": "a", "subnet": "x"}]}))
    assert main(["export", "--checkpoint", str(briefly_trained), "--arch", arch, "--out", "o"]) == 2
    assert message in capsys.readouterr().err


def test_eval_prints_accuracy_and_throughput(briefly_trained, tmp_path, capsys):
    argv = ["export", "--checkpoint", str(briefly_trained), "--arch", "min", "--out", str(tmp_path)]
    assert main([*argv, "--bn-batches", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", "--model", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "top-5" in out and "images/s" in out and "on 359 val images" in out


def test_load_model_of_a_non_export(tmp_path):
    with pytest.raises(nasvit.errors.NasvitError, match="is not an exported model"):
        nasvit.load_model(tmp_path)
