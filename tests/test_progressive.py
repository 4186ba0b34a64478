"""Progressive learning (``progressive:``): the stage schedule, the capped sampling, its values during training,
exact resume across a stage boundary, RandAugment's magnitude and the config's refusals."""

from __future__ import annotations

import collections
import random

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from timm.data.auto_augment import RandAugment

from nasvit.config.loading import ConfigError, load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.train import TrainRecipe
from search_space import load_space
from supernet import Supernet
from supernet.training.progressive import cap_resolution, progressive_stages, stage_at
from supernet.training.sandwich import sample_subnets
from supernet.training.single_path import sample_path
from tests.test_train import _fake_image_folder

TINY = "configs/train/tiny.yaml"
PROGRESSIVE = [  # the tiny space (16, 24, 32 px) in 3 stages of 1 epoch, 4 steps of 64 digits each
    "progressive.stages=3",
    "progressive.min_resolution=0.5",
    "progressive.mixup=[0, 0.4]",
    "data.batch_size=64",
    "data.search_fraction=0.65",
    "sandwich.num_random=1",
    "optim.epochs=3",
    "optim.warmup_epochs=0.5",
    "eval.every_epochs=3",
    "eval.bn_batches=1",
    "log_every=1",
    "device=cpu",
]


def progressive_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [*PROGRESSIVE, *overrides])


def test_stages_split_the_epochs_and_move_every_value_linearly():
    stages = progressive_stages(
        [4, 8, 16, 24], epochs=10, stages=4, min_resolution=0.5, magnitude=(2, 8), mixup=(0, 0.3)
    )
    assert [s.first_epoch for s in stages] == [0, 3, 5, 8]  # ceil(i * 10 / 4)
    assert [s.resolution_cap for s in stages] == [8, 16, 16, 24]  # 12, 16, 20, 24 px rounded down to the space's
    assert [s.magnitude for s in stages] == pytest.approx([2, 4, 6, 8])
    assert [s.mixup for s in stages] == pytest.approx([0, 0.1, 0.2, 0.3])
    assert [stage_at(stages, epoch).index for epoch in range(10)] == [0, 0, 0, 1, 1, 2, 2, 2, 3, 3]
    lowest = progressive_stages([16, 24], epochs=2, stages=2, min_resolution=0.1)
    assert [s.resolution_cap for s in lowest] == [16, 24] and lowest[0].magnitude is None
    assert [s.resolution_cap for s in progressive_stages([16, 24], epochs=5, stages=1, min_resolution=0.5)] == [24]


def test_capped_sampling_is_uniform_below_the_cap_and_unchanged_without_one():
    net = Supernet(load_space("demo"), 10)
    space = net.space
    counts = collections.Counter()
    for step in range(600):
        slots = dict(sample_subnets(net, seed=0, step=step, num_random=1, resolution_cap=16))
        assert slots["max"] == space.max_subnet().replace(resolution=16) and slots["min"] == space.min_subnet()
        counts[slots["random0"].resolution] += 1
        uncapped = dict(sample_subnets(net, seed=0, step=step, num_random=1))
        assert uncapped["random0"] == space.sample(random.Random(f"0:{step}:random0"))  # as before the cap existed
        assert sample_path(space, 0, step, resolution_cap=8).resolution in (4, 8)
    assert set(counts) == {4, 8, 16} and min(counts.values()) >= 160, counts  # 200 each expected
    assert cap_resolution(space.max_subnet(), 2) == space.max_subnet().replace(resolution=4)  # never below the space


def _recorded_training(config: TrainConfig, run_dir) -> list[tuple[int, int, float]]:
    """Train ``config``; returns (epoch, largest resolution trained, mixup alpha) of every step."""
    recipe = TrainRecipe(config, run_dir)
    recipe.setup()
    steps, resolutions = [], []
    compute, activate = recipe._compute_gradients, recipe.net.set_active_subnet

    def recorded_activation(cfg):
        resolutions.append(cfg.resolution)
        activate(cfg)

    def recorded(batches, epoch):
        resolutions.clear()
        result = compute(batches, epoch)
        alpha = recipe.mixup.mixup_alpha if recipe.mixup is not None else 0.0
        steps.append((epoch, max(resolutions), alpha))
        return result

    recipe.net.set_active_subnet, recipe._compute_gradients = recorded_activation, recorded
    try:
        recipe.train()
    finally:
        recipe.cleanup()
    return steps


def test_every_step_trains_its_stage_s_resolutions_and_mixup_and_the_run_logs_the_stages(tmp_path):
    steps = _recorded_training(progressive_config(), tmp_path)
    assert [(epoch, resolution) for epoch, resolution, _ in steps] == [(0, 16)] * 4 + [(1, 24)] * 4 + [(2, 32)] * 4
    assert [alpha for _, _, alpha in steps] == pytest.approx([0.0] * 4 + [0.2] * 4 + [0.4] * 4)
    log = (tmp_path / "train.log").read_text()
    assert "stage 2/3 from epoch 2: resolutions <= 24 px, mixup 0.2" in log
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    caps = [(event.step, event.value) for event in events.Scalars("progressive/resolution_cap")]
    assert caps == [(0, 16), (4, 24), (8, 32)]


def test_a_run_resumed_before_a_stage_boundary_equals_one_straight_run(tmp_path):
    two = "sandwich.num_random=0"  # the largest and the smallest subnet: what a resume restores is the same
    straight = TrainRecipe(progressive_config("max_steps=6", two), tmp_path / "straight")
    straight.run()
    TrainRecipe(progressive_config("max_steps=3", two), tmp_path / "split").run()
    resumed = TrainRecipe(progressive_config("max_steps=6", two), tmp_path / "split", resume="auto")
    assert resumed.run()["steps_this_run"] == 3  # steps 4-6: the second stage, at 24 px with mixup
    expected, actual = straight.net.state_dict(), resumed.net.state_dict()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert straight.main_losses[3:] == resumed.main_losses
    changed = progressive_config("max_steps=6", two, "progressive.min_resolution=0.8")
    with pytest.raises(Exception, match=r"progressive: .* in the checkpoint"):
        TrainRecipe(changed, tmp_path / "split", resume="auto").run()


def test_each_stage_sets_randaugment_s_magnitude(tmp_path):
    _fake_image_folder(tmp_path / "images", classes=2, per_class=6)
    config = progressive_config(
        f"data.dataset={tmp_path / 'images'}",
        "data.search_per_class=1",
        "data.batch_size=4",
        "eval.batch_size=4",
        "progressive.magnitude=[1, 9]",
        "progressive.mixup=null",
    )
    recipe = TrainRecipe(config, tmp_path / "run")
    recipe.setup()
    try:
        steps = [step for step in recipe.data.train.transform.transforms if isinstance(step, RandAugment)]
        magnitudes = []
        for epoch in range(3):
            recipe._start_epoch(epoch)
            magnitudes.append({op.magnitude for op in steps[0].ops})
    finally:
        recipe.cleanup()
    assert magnitudes == [{1.0}, {5.0}, {9.0}]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["progressive.stages=0"], "progressive.stages: 0 must be >= 1"),
        (["progressive.stages=3", "progressive.min_resolution=0"], "min_resolution: 0.0 must be in (0, 1]"),
        (["progressive.mixup=[0, 0.2]"], "set progressive.stages >= 2"),
        (["progressive.stages=2", "progressive.mixup=[0, -1]"], "progressive.mixup: [0.0, -1.0] must be >= 0"),
        (["progressive.stages=2", "progressive.mixup=[0, 1]", "data.mixup=0.2"], "set data.mixup=0"),
        (["progressive.stages=2", "progressive.magnitude=[1, 5]"], "data.dataset='digits'"),
        (["progressive.stages=2", "progressive.magnitude=[1, 10]"], "must lie in [0, 10)"),
        (
            ["progressive.stages=2", "sampling.rule=spos", "sampling.macs_bins=3"],
            "empties the upper sampling.macs_bins",
        ),
    ],
)
def test_bad_progressive_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config(TrainConfig, TINY, overrides)
    assert message in str(raised.value)
