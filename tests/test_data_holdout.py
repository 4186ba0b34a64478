"""An image folder with a training split only: a seeded share of each class is held out as validation, beside the
search split, and every command that rebuilds the data from a run's stored config gets the very same images."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from nasvit.cli import main
from nasvit.config.loading import load_config, to_dict
from nasvit.config.train import TrainConfig
from nasvit.data import DataConfig, DataSplits, build_data
from nasvit.errors import NasvitError
from nasvit.export.directory import export_data_config
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import load_space

CLASS_SIZES = {"ant": 10, "bee": 12, "cow": 21}  # val_fraction 0.2 holds out 2, 2 and 4 (round(0.2 * n))
SPLITS = ("train", "search", "val")


def _write_split(root: Path, split: str, images_per_class: dict[str, int], seed: int = 0) -> None:
    """``root/split/<class>/<i>.png``: 8x8 noise images."""
    rng = np.random.default_rng(seed)
    for name, count in images_per_class.items():
        (root / split / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / split / name / f"{index}.png")


@pytest.fixture
def train_only(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    _write_split(root, "train", CLASS_SIZES)
    return root


def _config(folder: Path, **changes) -> DataConfig:
    return DataConfig(**{"dataset": str(folder), "image_size": 16, "batch_size": 4, "search_per_class": 2, **changes})


def _indices(splits: DataSplits) -> dict[str, list[int]]:
    return {split: list(splits.dataset(split).indices) for split in SPLITS}


def test_folder_without_validation_holds_out_a_seeded_share_of_each_class(train_only, caplog):
    with caplog.at_level(logging.INFO, logger="nasvit.data.build"):
        splits = build_data(_config(train_only))
    assert "no validation subfolder in" in caplog.text and "val_fraction=0.2" in caplog.text, caplog.text
    assert splits.config == _config(train_only, val_split=None)  # the resolved config says which split was used
    train, search, val = (set(indices) for indices in _indices(splits).values())
    assert not train & search and not train & val and not search & val
    assert train | search | val == set(range(sum(CLASS_SIZES.values())))
    assert splits.val.dataset is splits.train.dataset  # one scan of train/
    assert torch.bincount(torch.tensor(splits.val.targets)).tolist() == [2, 2, 4]
    assert torch.bincount(torch.tensor(splits.search.targets)).tolist() == [2, 2, 2]
    assert splits.val[0][0].shape == (3, 16, 16)
    assert _indices(build_data(_config(train_only))) == _indices(splits)
    assert _indices(build_data(_config(train_only, seed=1)))["val"] != _indices(splits)["val"]


def test_val_split_null_holds_out_even_beside_a_validation_folder(train_only):
    _write_split(train_only, "validation", {"ant": 3, "bee": 3, "cow": 3}, seed=1)
    assert len(build_data(_config(train_only)).val) == 9  # the folder's own validation split, as before
    held_out = build_data(_config(train_only, val_split=None, val_fraction=0.5))
    assert torch.bincount(torch.tensor(held_out.val.targets)).tolist() == [5, 6, 10]  # half of 10, 12, 21 (rounded)
    assert held_out.val.dataset is held_out.train.dataset


def test_stored_configs_rebuild_the_same_splits(train_only):
    """A run stores its config (YAML); resume, ``nasvit search`` (``checkpoint.data_config_of``) and ``nasvit eval``
    of an export (``export_data_config``) rebuild the data from it: the user's config or the resolved one."""
    built = build_data(_config(train_only))
    for stored in (_config(train_only), built.config):
        text = yaml.safe_dump(to_dict(stored))
        from_checkpoint = checkpoint.data_config_of({"config": {"data": yaml.safe_load(text)}})
        assert _indices(build_data(from_checkpoint)) == _indices(built)


def test_train_resume_search_and_export_see_the_same_validation_images(train_only, tmp_path):
    folder_run = [f"data.dataset={train_only}", "data.batch_size=8", "data.search_per_class=2", "eval.bn_batches=1"]
    brief = ["device=cpu", "sandwich.num_random=0", "eval.batch_size=8", "data.image_size=16", *folder_run]
    run = tmp_path / "run"
    first = TrainRecipe(load_config(TrainConfig, "configs/train/tiny.yaml", [*brief, "max_steps=1"]), run)
    first.run()
    resumed = TrainRecipe(load_config(TrainConfig, "configs/train/tiny.yaml", [*brief, "max_steps=2"]), run, "auto")
    resumed.run()
    trained = checkpoint.latest(run)
    searched = build_data(checkpoint.data_config_of(checkpoint.load(trained)))  # what nasvit search builds
    export = tmp_path / "export"
    arch = str(load_space("tiny").min_subnet().replace(resolution=16))
    argv = ["export", "--checkpoint", str(trained), "--arch", arch, "--out", str(export)]
    assert main([*argv, "--bn-batches", "1", "--batch-size", "8"]) == 0
    evaluated = build_data(export_data_config(export))  # what nasvit eval builds
    for splits in (resumed.data, searched, evaluated):
        assert _indices(splits) == _indices(first.data)
    recorded = [yaml.safe_load((run / "config.yaml").read_text())["data"], checkpoint.load(trained)["config"]["data"]]
    recorded.append(json.loads((export / "subnet.json").read_text())["data"])
    assert [data["val_split"] for data in recorded] == [None, None, None]  # the run says which split it used
    other = tmp_path / "other"
    _write_split(other, "train", CLASS_SIZES)
    _write_split(other, "validation", CLASS_SIZES, seed=1)
    assert export_data_config(export, dataset=str(other)).val_split == "validation"  # eval --data OTHER: its own


def test_class_too_small_to_hold_out_its_share_is_named(train_only):
    with pytest.raises(NasvitError) as error:
        build_data(_config(train_only, search_per_class=8))  # ant: 2 validation + 8 search of 10 leaves none
    message = str(error.value)
    assert "class 0 has 10 images ('ant')" in message and "(val_fraction=0.2, search_per_class=8)" in message
    assert "lower val_fraction or search_per_class, or add images" in message


def test_a_missing_custom_validation_folder_stays_an_error(train_only):
    with pytest.raises(NasvitError, match="no 'holdout' split subfolder"):
        build_data(_config(train_only, val_split="holdout"))


def test_empty_val_split_is_refused():
    with pytest.raises(NasvitError, match="val_split is empty"):
        DataConfig(val_split="")


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        ("missing", "does not exist"),
        ("no_class_folders", "has 1 class; classification needs at least 2"),
        ("class_too_small", "class 1 has 3 images ('bee'), too few to hold out"),
    ],
)
def test_bad_folders_end_the_cli_with_one_line(layout, fragment, tmp_path, capsys):
    folder = tmp_path / "images"
    if layout == "no_class_folders":
        _write_split(folder, "train", {"": 4})  # images straight in train/
    elif layout == "class_too_small":
        _write_split(folder, "train", {"ant": 10, "bee": 3})
    argv = ["train", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "run"), "--set", "device=cpu"]
    code = main([*argv, "--set", f"data.dataset={folder}", "--set", "data.search_per_class=2"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert fragment in err and "Traceback" not in err, err
