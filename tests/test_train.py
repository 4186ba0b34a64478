"""Supernet training: resume exactness, outputs, bad inputs, NaN handling, the ImageNet config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from nasvit.cli import main
from nasvit.config.loading import ConfigError, load_config
from nasvit.config.train import TrainConfig
from nasvit.errors import NasvitError
from nasvit.recipes.train import TrainingError, TrainRecipe
from nasvit.runtime import checkpoint

TINY = "configs/train/tiny.yaml"
FAST = [  # 4 steps of 64 per epoch on digits (270 training images); one random subnet per step
    "data.batch_size=64",
    "data.search_fraction=0.65",
    "sandwich.num_random=1",
    "optim.epochs=3",
    "optim.warmup_epochs=0.5",
    "eval.every_epochs=1",
    "eval.bn_batches=2",
]


def fast_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [*FAST, *overrides])


def test_resume_gives_identical_weights(tmp_path):
    two = "sandwich.num_random=0"  # the largest and the smallest subnet: what a resume restores is the same
    straight = TrainRecipe(fast_config("max_steps=5", two), tmp_path / "straight")
    straight.run()
    TrainRecipe(fast_config("max_steps=3", two), tmp_path / "split").run()
    resumed = TrainRecipe(fast_config("max_steps=5", two), tmp_path / "split", resume="auto")
    summary = resumed.run()
    assert summary["steps_this_run"] == 2 and summary["steps"] == 5
    expected, actual = straight.net.state_dict(), resumed.net.state_dict()
    assert expected.keys() == actual.keys()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    # both crossed the epoch boundary at step 4 and evaluated there
    lines = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [4]


def test_run_directory_outputs(tmp_path):
    summary = TrainRecipe(fast_config("optim.epochs=1", "log_every=3"), tmp_path).run()
    assert summary["steps"] == 4 and 0 <= summary["min_top1"] <= 100 and 0 <= summary["max_top1"] <= 100
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"epoch", "step", "min_top1", "max_top1"} <= set(record)
    assert load_config(TrainConfig, tmp_path / "config.yaml") == fast_config("optim.epochs=1", "log_every=3")
    assert "val top-1 min" in (tmp_path / "train.log").read_text()
    state = checkpoint.load(checkpoint.latest(tmp_path))
    assert state["step"] == 4 and state["config"]["space"] == "tiny" and state["space"]["name"] == "tiny"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/max", "loss/min", "loss/random0", "lr", "grad_norm", "images_per_second", "conflict/overall"} <= tags
    assert {"conflict/s1", "conflict/s4", "conflict/head", "val/max_top1"} <= tags


@pytest.mark.slow  # learning in the default run: test_train_distributed.py's loss falls too
def test_loss_falls(tmp_path):
    every_image = ("data.search_fraction=0.1", "optim.epochs=2")  # 9 steps an epoch: 4 are too noisy to compare
    recipe = TrainRecipe(fast_config("max_steps=12", "optim.warmup_epochs=0", *every_image), tmp_path)
    recipe.run()
    losses = recipe.main_losses
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses


def test_unknown_config_key_is_suggested():
    with pytest.raises(ConfigError, match=r'optim.lrr: unknown key \(did you mean "lr"\?\)'):
        fast_config("optim.lrr=0.1")


def test_cli_reports_bad_config_in_one_line(capsys):
    assert main(["train", "--config", TINY, "--set", "optim.epochs=zero"]) == 2
    assert "optim.epochs: expected an integer, got 'zero'" in capsys.readouterr().err


def test_missing_dataset_path(tmp_path):
    with pytest.raises(NasvitError, match="does not exist"):
        TrainRecipe(fast_config(f"data.dataset={tmp_path / 'nothing'}"), tmp_path / "run").run()


def test_missing_teacher_file(tmp_path):
    config = fast_config("teacher.model=resnet18", f"teacher.checkpoint={tmp_path / 'teacher.pth'}")
    with pytest.raises(NasvitError, match=r"teacher.checkpoint .*teacher.pth does not exist"):
        TrainRecipe(config, tmp_path / "run").run()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint at all", "is corrupted or not a PyTorch checkpoint"),
        (None, "is not a nasvit supernet checkpoint"),
    ],
)
def test_corrupted_or_foreign_checkpoint_is_refused_and_kept(tmp_path, content, message):
    path = checkpoint.checkpoint_path(tmp_path, 5)
    path.parent.mkdir(parents=True)
    if content is None:
        torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(checkpoint.CheckpointError, match=message):
        TrainRecipe(fast_config(), tmp_path, resume="auto").run()
    assert path.read_bytes() == before and checkpoint.latest(tmp_path) == path


def test_checkpoint_of_another_space_is_refused(tmp_path):
    TrainRecipe(fast_config("max_steps=1"), tmp_path).run()
    other = tmp_path / "space.yaml"
    text = (
        Path("configs/space/tiny.yaml").read_text().replace("name: tiny", "name: tiny2").replace("[128, 192]", "[128]")
    )
    other.write_text(text)
    with pytest.raises(checkpoint.CheckpointError, match="trained on search space 'tiny'"):
        TrainRecipe(fast_config(f"space={other}", "max_steps=2"), tmp_path, resume="auto").run()


def test_non_finite_loss_is_skipped_then_stops(tmp_path, monkeypatch):
    original = TrainRecipe._prepare

    def poisoned(self, images, labels):
        images, targets = original(self, images, labels)
        return (images * float("nan") if self.step >= 2 else images), targets

    monkeypatch.setattr(TrainRecipe, "_prepare", poisoned)
    small = "data.batch_size=16"  # 17 steps an epoch: no evaluation before the stop at step 5
    recipe = TrainRecipe(fast_config("max_nan_skips=3", "checkpoint_every_steps=2", small), tmp_path)
    with pytest.raises(TrainingError, match="not finite for 3 consecutive steps") as info:
        recipe.run()
    good = checkpoint.checkpoint_path(tmp_path, 2)
    assert str(good) in str(info.value)
    assert checkpoint.load(good)["step"] == 2 and checkpoint.latest(tmp_path) == good
    assert all(torch.isfinite(p).all() for p in recipe.net.parameters())  # no update from a NaN step
    assert all(torch.isfinite(b).all() for b in recipe.net.buffers())  # nor BN statistics of skipped steps


def _fake_image_folder(root: Path, classes: int = 2, per_class: int = 4) -> None:
    generator = torch.Generator().manual_seed(0)
    for split in ("train", "validation"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = (torch.rand(40, 48, 3, generator=generator) * 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")


def imagenet_recipe(folder: Path, run_dir: Path) -> TrainRecipe:
    """The ImageNet recipe on a fake two-class image folder, at batch 2 on the CPU."""
    _fake_image_folder(folder)
    overrides = [
        f"data.dataset={folder}",
        "data.batch_size=2",
        "data.workers=0",
        "data.search_per_class=1",
        "data.image_size=192",
        "device=cpu",
        "channels_last=false",
        "max_steps=1",
        "eval.bn_batches=1",
        "eval.batch_size=2",
    ]
    config = load_config(TrainConfig, "configs/train/nasvit_imagenet.yaml", overrides)
    assert config.space == "nasvit" and config.optim.epochs == 360 and config.ema.enabled
    return TrainRecipe(config, run_dir)


def test_imagenet_config_builds_its_supernet_data_and_optimizer(tmp_path):
    recipe = imagenet_recipe(tmp_path / "imagenet", tmp_path / "run")
    recipe.setup()
    try:
        assert recipe.data.num_classes == 2 and recipe.net.space.name == "nasvit" and recipe.ema is not None
        assert (
            sum(p.numel() for p in recipe.net.parameters()) > 10e6
            and recipe.total_steps == 360 * recipe.steps_per_epoch
        )
    finally:
        recipe.cleanup()


@pytest.mark.slow  # one sandwich step of the ImageNet-size supernet and its evaluation: half a minute on a CPU
def test_imagenet_config_runs_one_step(tmp_path):
    recipe = imagenet_recipe(tmp_path / "imagenet", tmp_path / "run")
    summary = recipe.run()
    assert summary["steps"] == 1 and len(recipe.main_losses) == 1
    assert checkpoint.load(checkpoint.latest(tmp_path / "run"))["step"] == 1


def test_gradient_accumulation_takes_one_step_per_group_of_micro_batches(tmp_path):
    recipe = TrainRecipe(fast_config("optim.accumulation=2", "optim.epochs=1", "sandwich.num_random=0"), tmp_path)
    summary = recipe.run()
    assert recipe.steps_per_epoch == 2 and summary["steps"] == 2  # 4 batches of 64 per epoch -> 2 steps of 2
    assert recipe.lr == pytest.approx(0.04 * 128 / 512)  # linear scaling with the global batch
    assert all(torch.isfinite(p).all() for p in recipe.net.parameters())


def test_resume_with_other_schedule_or_data_is_refused(tmp_path):
    TrainRecipe(fast_config("max_steps=2"), tmp_path).run()
    with pytest.raises(checkpoint.CheckpointError, match=r"optim: .* in the checkpoint|data.batch_size: 128"):
        TrainRecipe(fast_config("optim.epochs=5", "data.batch_size=64"), tmp_path, resume="auto").run()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.betas=[0.9]", "optim.betas: expected 2 values, got 1"),
        ("log_every=0", "log_every and eval.every_epochs must be at least 1"),
        ("sandwich.alpha_min=-2", "need -1 <= alpha_min <= alpha_max <= 1"),
        ("ema.decay=1.5", "ema.decay: 1.5 must be in [0, 1)"),
    ],
)
def test_invalid_values_are_refused_before_training(override, message):
    with pytest.raises(ConfigError) as info:
        fast_config(override)
    assert message in str(info.value)


def test_exponent_floats_without_a_dot_parse():
    assert fast_config("optim.lr=3e-4").optim.lr == pytest.approx(3e-4)
