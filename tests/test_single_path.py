"""Single Path One-Shot training (``sampling.rule: spos``): its config, its MACs bins, exact resume."""

from __future__ import annotations

import collections
import json
import shutil

import pytest
import torch

from nasvit.config.loading import ConfigError, load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import SpaceError, load_space
from supernet.training.single_path import macs_bins, sample_path
from tests.supernet_helpers import BRIEF_TRAINING

SPOS = [  # 4 steps of 64 per epoch on digits; one pass a step
    "sampling.rule=spos",
    "data.batch_size=64",
    "data.search_fraction=0.65",
    "optim.epochs=3",
    "optim.warmup_epochs=0.5",
    "eval.every_epochs=1",
    "eval.bn_batches=1",
    "device=cpu",
]


TINY = "configs/train/tiny.yaml"


def spos_config(*overrides: str) -> TrainConfig:
    return load_config(TrainConfig, TINY, [*SPOS, *overrides])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sampling.rule=spo", "sampling.rule: 'spo' is not one of ['sandwich', 'spos']"),
        ("sampling.macs_bins=-1", "sampling.macs_bins: -1 must be >= 0"),
        ("sampling.macs_range=[5, 1]", "must be [low, high] with 0 <= low < high"),
    ],
)
def test_bad_sampling_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(TrainConfig, TINY, ["sampling.rule=spos", "sampling.macs_bins=2", override])


def test_bins_need_the_single_path_rule_and_a_range_needs_bins():
    with pytest.raises(ConfigError, match=r"apply to sampling\.rule=spos"):
        load_config(TrainConfig, TINY, ["sampling.macs_bins=3"])
    with pytest.raises(ConfigError, match=r"give sampling\.macs_bins too"):
        load_config(TrainConfig, TINY, ["sampling.rule=spos", "sampling.macs_range=[1, 2]"])


def test_bins_split_the_range_and_every_bin_gets_its_share_of_steps():
    space = load_space("tiny")
    low, high = space.cost(space.min_subnet()).macs, space.cost(space.max_subnet()).macs
    bins = macs_bins(space, 3)
    assert bins[0][0] == low and bins[-1][1] == pytest.approx(high)
    assert [b[1] for b in bins[:-1]] == pytest.approx([b[0] for b in bins[1:]])
    counts = collections.Counter()
    for step in range(300):
        path = sample_path(space, seed=0, step=step, bins=bins)
        assert path == sample_path(space, seed=0, step=step, bins=bins)  # every rank and resumed run: the same
        macs = space.cost(path).macs
        counts[next(i for i, (a, b) in enumerate(bins) if a <= macs <= b)] += 1
    assert min(counts.values()) >= 70, counts  # 100 each expected; uniform over the space would not be
    uniform = collections.Counter()
    for step in range(300):
        macs = space.cost(sample_path(space, seed=0, step=step)).macs
        uniform[next(i for i, (a, b) in enumerate(bins) if a <= macs <= b)] += 1
    assert uniform != counts


def test_a_bin_that_holds_no_subnet_is_named():
    space = load_space("tiny")
    with pytest.raises(SpaceError, match=r"bin \d+ of 400 \(MACs .*\) held no subnet in 300 .* narrow"):
        macs_bins(space, 400, tries=300)


def test_spos_resumes_exactly_and_evaluates_like_the_sandwich_rule(tmp_path):
    straight = TrainRecipe(spos_config("max_steps=5"), tmp_path / "straight")
    straight.run()
    TrainRecipe(spos_config("max_steps=3"), tmp_path / "split").run()
    resumed = TrainRecipe(spos_config("max_steps=5"), tmp_path / "split", resume="auto")
    assert resumed.run()["steps_this_run"] == 2
    expected, actual = straight.net.state_dict(), resumed.net.state_dict()
    for key in expected:
        assert torch.equal(expected[key], actual[key]), key
    assert len(straight.main_losses) == 5
    record = json.loads((tmp_path / "split" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 4 and {"min_top1", "max_top1"} <= set(record)


def test_a_step_is_one_forward_pass_of_the_step_s_path(tmp_path):
    recipe = TrainRecipe(spos_config("max_steps=2", "eval.every_epochs=3"), tmp_path)
    recipe.setup()
    forward, paths = recipe.net.forward, []

    def counted(images):
        paths.append(recipe.net.active_subnet)
        return forward(images)

    recipe.net.forward = counted
    try:
        recipe.train()
    finally:
        recipe.cleanup()
    assert paths == [sample_path(recipe.space, 0, 0), sample_path(recipe.space, 0, 1)]
    assert paths[0] != paths[1] and set(recipe.main_losses) and len(recipe.main_losses) == 2


def test_a_checkpoint_from_before_the_sampling_section_resumes_as_the_sandwich_rule(tmp_path, briefly_trained):
    run = tmp_path / "run"
    shutil.copytree(briefly_trained.parents[1], run)
    path = checkpoint.latest(run)
    state = checkpoint.load(path)
    del state["config"]["sampling"]  # written before the section existed
    checkpoint.save_atomic(state, path)
    with pytest.raises(checkpoint.CheckpointError, match=r"sampling: \{'rule': 'sandwich'.* in the checkpoint"):
        TrainRecipe(load_config(TrainConfig, TINY, [*BRIEF_TRAINING, "sampling.rule=spos"]), run, resume="auto").run()
    resumed = TrainRecipe(load_config(TrainConfig, TINY, [*BRIEF_TRAINING, "max_steps=3"]), run, resume="auto")
    assert resumed.run()["steps_this_run"] == 1
