"""``nasvit finetune``: an exported digits subnet trained on a 5-class image folder, exported again, resumed exactly."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nasvit.cli import main
from nasvit.config.finetune import FinetuneConfig
from nasvit.config.loading import load_config
from nasvit.data.digits import write_digits_folder
from nasvit.export.directory import export_subnet, load_model
from nasvit.recipes.engine import TrainingError
from nasvit.recipes.finetune import FinetuneRecipe
from nasvit.runtime import checkpoint
from search_space import load_space

FINETUNE_FAST = ["device=cpu", "data.image_size=16", "data.batch_size=16", "eval.batch_size=32", "optim.epochs=2"]


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory, briefly_trained: Path) -> Path:
    """A digits export (10 classes) of the tiny space's smallest subnet."""
    state = checkpoint.load(briefly_trained)
    out = tmp_path_factory.mktemp("export") / "parent"
    export_subnet(state, str(briefly_trained), load_space("tiny").min_subnet(), out, bn_batches=1)
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digits_folder(tmp_path_factory.mktemp("pairs"), lambda d: f"pair{d // 2}", 4, per_class=24)


def finetune_config(parent: Path, folder: Path, *overrides: str) -> FinetuneConfig:
    settings = [f"model={parent}", f"data.dataset={folder}", *FINETUNE_FAST, *overrides]
    return load_config(FinetuneConfig, "configs/finetune/default.yaml", settings)


def test_finetune_replaces_the_classifier_and_exports_a_verified_model(parent, folder, tmp_path):
    # channels_last: the trained weights are NHWC-strided, and the export must still write them
    summary = FinetuneRecipe(finetune_config(parent, folder, "max_steps=4", "channels_last=true"), tmp_path).run()
    export = Path(summary["export"])
    description = json.loads((export / "subnet.json").read_text())
    assert (
        description["num_classes"] == 5
        and description["subnet"] == json.loads((parent / "subnet.json").read_text())["subnet"]
    )
    assert description["provenance"]["parent_export"] == str(parent)
    assert max(description["verification"]["max_abs_difference"].values()) <= 1e-4
    assert description["metrics"]["top1"] == summary["top1"]
    model = load_model(export)
    assert model.num_classes == 5
    parent_weights, weights = load_file(str(parent / "model.safetensors")), load_file(str(export / "model.safetensors"))
    classifier = {name for name in weights if weights[name].shape != parent_weights.get(name, weights[name]).shape}
    assert classifier and all(weights[name].shape[0] == 5 for name in classifier)  # only the classifier changed shape


def test_interrupted_finetune_resumes_exactly(parent, folder, tmp_path):
    straight = tmp_path / "straight"  # 5 steps: the first epoch, ending in its evaluation
    finished = FinetuneRecipe(finetune_config(parent, folder, "max_steps=5"), straight).run()
    split = tmp_path / "split"
    FinetuneRecipe(finetune_config(parent, folder, "max_steps=3"), split).run()
    FinetuneRecipe(finetune_config(parent, folder, "max_steps=5"), split, resume="auto").run()
    expected = checkpoint.load(checkpoint.latest(straight), "nasvit-finetune-checkpoint/1")
    resumed = checkpoint.load(checkpoint.latest(split), "nasvit-finetune-checkpoint/1")
    assert expected["step"] == resumed["step"] == 5
    for name, tensor in expected["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    # a finished run resumed (as after a failed export) evaluates again and exports with its figures
    again = FinetuneRecipe(finetune_config(parent, folder, "max_steps=5"), straight, resume="auto").run()
    assert again["steps_this_run"] == 0 and again["top1"] == finished["top1"]
    assert json.loads((Path(again["export"]) / "subnet.json").read_text())["metrics"]["top1"] == finished["top1"]


def test_finetune_cli_and_its_refusals(parent, folder, tmp_path, capsys):
    argv = ["finetune", "--model", str(parent), "--data", str(folder), "--out", str(tmp_path / "run")]
    sets = [x for setting in [*FINETUNE_FAST, "max_steps=2"] for x in ("--set", setting)]
    assert main([*argv, *sets]) == 0
    assert "export" in capsys.readouterr().out
    assert main([*argv, *sets]) == 2  # the run directory holds a run
    assert "already holds a nasvit finetune run" in capsys.readouterr().err
    other = tmp_path / "other"
    args = ["finetune", "--model", str(folder), "--data", str(folder), "--out", str(other), *sets]
    assert main(args) == 2
    assert "is not an exported model" in capsys.readouterr().err
    supernet = json.loads((parent / "subnet.json").read_text())["provenance"]["checkpoint"]
    distill = [*argv[:-1], str(tmp_path / "distill"), *sets, "--set", f"distill.teacher={supernet}"]
    assert main(distill) == 2
    assert "predicts 10 classes but the data has 5" in capsys.readouterr().err


def _distributed_worker(rank: int, port: int, parent: str, folder: str, out: str) -> None:
    import os

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    torch.set_num_threads(1)
    recipe = FinetuneRecipe(finetune_config(Path(parent), Path(folder), "max_steps=3", "data.batch_size=8"), Path(out))
    recipe.run()
    torch.save(recipe.net.state_dict(), Path(out).parent / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_gloo_processes_finetune_alike(parent, folder, tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    mp.start_processes(
        _distributed_worker, args=(port, str(parent), str(folder), str(tmp_path / "run")), nprocs=2, start_method="fork"
    )
    first, second = (torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in (0, 1))
    assert all(torch.equal(tensor, second[name]) for name, tensor in first.items())
    assert (tmp_path / "run" / "export" / "subnet.json").is_file()


def test_distillation_from_the_supernet_largest_subnet_or_an_export(parent, tmp_path):
    supernet = json.loads((parent / "subnet.json").read_text())["provenance"]["checkpoint"]
    for name, teacher in (("supernet", supernet), ("export", str(parent))):
        overrides = ["data.dataset=digits", "max_steps=2", "eval.bn_batches=1", f"distill.teacher={teacher}"]
        config = load_config(
            FinetuneConfig, "configs/finetune/default.yaml", [f"model={parent}", *FINETUNE_FAST, *overrides]
        )
        recipe = FinetuneRecipe(config, tmp_path / name)
        summary = recipe.run()
        assert recipe.teacher is not None and not any(p.requires_grad for p in recipe.teacher.parameters())
        assert summary["steps"] == 2 and math.isfinite(recipe.main_losses[-1])


def test_non_finite_steps_leave_the_weights_and_batchnorm_statistics_untouched(parent, folder, tmp_path, monkeypatch):
    original = FinetuneRecipe._prepare

    def poisoned(self, images, labels):
        images, targets = original(self, images, labels)
        return (images * float("nan") if self.step >= 1 else images), targets

    monkeypatch.setattr(FinetuneRecipe, "_prepare", poisoned)
    recipe = FinetuneRecipe(finetune_config(parent, folder, "max_nan_skips=2", "checkpoint_every_steps=1"), tmp_path)
    with pytest.raises(TrainingError, match="not finite for 2 consecutive steps"):
        recipe.run()
    saved = checkpoint.load(checkpoint.latest(tmp_path), "nasvit-finetune-checkpoint/1")
    assert saved["step"] == 1 and recipe.step == 2  # the second skip raised
    for name, tensor in recipe.net.state_dict().items():
        assert torch.equal(tensor, saved["model"][name]), name  # two skipped steps changed nothing, BN included


def test_finetune_at_another_resolution_exports_for_it_and_resumes(parent, folder, tmp_path, capsys):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    fast = [setting for setting in FINETUNE_FAST if not setting.startswith("data.image_size")]
    argv = ["finetune", "--model", str(parent), "--data", str(folder), "--out", str(tmp_path), "--resolution", "40"]
    sets = [x for setting in [*fast, "export.onnx=true", "export.torchscript=false"] for x in ("--set", setting)]
    assert main([*argv, *sets, "--set", "max_steps=1"]) == 0
    description = json.loads((tmp_path / "export" / "subnet.json").read_text())
    assert description["resolution"] == 40 and description["subnet"].startswith("tiny_r40:r40:")
    assert description["space"]["resolutions"] == [40] and description["pretrained_cfg"]["input_size"] == [3, 40, 40]
    assert set(description["verification"]["max_abs_difference"]) == {"inference", "onnx"}
    assert max(description["verification"]["max_abs_difference"].values()) <= 1e-4
    onnx_metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "export" / "model.onnx")).metadata_props}
    assert onnx_metadata["resolution"] == "40" and onnx_metadata["input_size"] == "[3, 40, 40]"
    assert load_model(tmp_path / "export").resolution == 40
    assert main([*argv, *sets, "--set", "max_steps=2", "--resume", "auto"]) == 0  # the resolution matches
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["steps"] == 2
    at_own = [*argv[:-2], *sets, "--set", "max_steps=3", "--set", "data.image_size=40", "--resume", "auto"]
    assert main(at_own) == 2
    assert "resolution: 40 in the checkpoint, None now" in capsys.readouterr().err


def test_eval_at_another_resolution_warns_only_when_the_phase_changes(parent, capsys, caplog):
    with caplog.at_level(logging.WARNING, logger="supernet.resolution"):
        assert main(["eval", "--model", str(parent), "--resolution", "24"]) == 0  # 24 = 16 modulo the stride 8
        assert "at 24 px on digits" in capsys.readouterr().out and not caplog.records
        assert main(["eval", "--model", str(parent), "--resolution", "14"]) == 0
    assert "at 14 px on digits" in capsys.readouterr().out
    assert "another phase than the subnet's own 16" in caplog.text
