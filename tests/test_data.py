"""The data pipeline: embedded digits, image folders via timm, loaders, fixed batches, mixup, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, Mixup
from torch.utils.data import DistributedSampler, Subset

from nasvit.data import (
    DATASET_STATS,
    DataConfig,
    DataSplits,
    build_data,
    build_mixup,
    fixed_batches,
    set_epoch,
)
from nasvit.errors import NasvitError

NUM_DIGITS = 1797
DIGIT_SPLIT_SIZES = {"train": 1259, "search": 179, "val": 359}  # defaults: val 0.2, search 0.1, seed 0


@pytest.fixture(scope="module")
def digits() -> DataSplits:
    return build_data(DataConfig())


def _indices(splits: DataSplits, split: str) -> set[int]:
    return set(getattr(splits, split).indices.tolist())


# --- digits -------------------------------------------------------------------------------------------------


def test_digits_split_sizes_add_up_and_are_pinned(digits):
    sizes = {split: len(getattr(digits, split)) for split in DIGIT_SPLIT_SIZES}
    assert sizes == DIGIT_SPLIT_SIZES
    assert sum(sizes.values()) == NUM_DIGITS
    assert len(digits.train_eval) == len(digits.train)
    assert digits.num_classes == 10


def test_digits_splits_are_disjoint_and_cover_everything(digits):
    train, search, val = (_indices(digits, split) for split in ("train", "search", "val"))
    assert not train & search and not train & val and not search & val
    assert train | search | val == set(range(NUM_DIGITS))
    assert _indices(digits, "train_eval") == train


def test_digits_split_is_deterministic_and_follows_the_seed(digits):
    again = build_data(DataConfig())
    for split in ("train", "search", "val"):
        assert torch.equal(getattr(again, split).indices, getattr(digits, split).indices)
        assert torch.equal(getattr(again, split).images, getattr(digits, split).images)
    other_seed = build_data(DataConfig(seed=1))
    assert not torch.equal(other_seed.search.indices, digits.search.indices)


def test_digits_every_class_is_in_every_split(digits):
    for split in ("train", "search", "val"):
        counts = torch.bincount(getattr(digits, split).labels, minlength=10)
        assert (counts > 0).all(), f"{split}: {counts.tolist()}"
    # stratified: each class keeps roughly its share (about 10% of 174-183 images) in the search split
    assert set(torch.bincount(digits.search.labels).tolist()) <= {17, 18}


def test_digits_items_are_normalised_three_channel_tensors(digits):
    image, label = digits.val[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label < 10
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])  # grayscale replicated
    images = torch.stack([digits.val[i][0] for i in range(len(digits.val))])  # (359, 3, 32, 32)
    assert abs(images.mean().item()) < 0.1
    assert 0.8 < images.std().item() < 1.2


def test_digits_image_size_follows_the_config():
    splits = build_data(DataConfig(image_size=16, interpolation="bilinear"))
    assert splits.train[0][0].shape == (3, 16, 16)


def test_digits_augmentation_shifts_train_images_only(digits):
    positions = range(32)
    train = [digits.train[i][0] for i in positions]
    clean = [digits.train_eval[i][0] for i in positions]
    assert sum(not torch.equal(a, b) for a, b in zip(train, clean)) >= 16  # most get a non-zero shift
    assert all(torch.equal(digits.train[i][0], train[i]) for i in positions)  # same epoch: same images
    for split in ("search", "val", "train_eval"):
        dataset = getattr(digits, split)
        assert torch.equal(dataset[3][0], dataset[3][0])
    digits.train.set_epoch(1)
    try:
        assert any(not torch.equal(digits.train[i][0], train[i]) for i in positions)  # new epoch: new shifts
    finally:
        digits.train.set_epoch(0)


def test_digits_train_loader_batches_and_seeded_order(digits):
    loader = digits.loader("train", batch_size=64)
    batches = list(loader)
    assert len(batches) == DIGIT_SPLIT_SIZES["train"] // 64  # drop_last for training
    images, labels = batches[0]
    assert images.shape == (64, 3, 32, 32) and labels.dtype == torch.int64
    first_epoch = list(loader.sampler)
    assert list(digits.loader("train").sampler) == first_epoch  # same seed, same order
    set_epoch(loader, 1)
    assert list(loader.sampler) != first_epoch
    assert sorted(loader.sampler) == sorted(first_epoch)
    set_epoch(loader, 0)
    val_batches = list(digits.loader("val", batch_size=100))
    assert [len(labels) for _, labels in val_batches] == [100, 100, 100, 59]  # eval keeps every image


def test_distributed_loader_without_process_group_uses_one_replica(digits):
    loader = digits.loader("val", batch_size=50, distributed=True)
    assert isinstance(loader.sampler, DistributedSampler)
    assert loader.sampler.num_replicas == 1 and len(loader.sampler) == DIGIT_SPLIT_SIZES["val"]


def test_unknown_split_name_is_an_error(digits):
    with pytest.raises(NasvitError, match=r"'test'; use one of train, train_eval, search, val"):
        digits.loader("test")


# --- config -------------------------------------------------------------------------------------------------


def test_config_is_frozen_and_resolves_dataset_statistics(tmp_path):
    cfg = DataConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.image_size = 64
    assert (cfg.mean, cfg.std) == DATASET_STATS["digits"]
    assert DataConfig(dataset=str(tmp_path)).mean == tuple(IMAGENET_DEFAULT_MEAN)
    assert DataConfig(mean=[0.5, 0.5, 0.5]).mean == (0.5, 0.5, 0.5)
    assert cfg.kind == "digits" and DataConfig(dataset="torch/cifar10").kind == "torch"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"search_fraction": 1.5}, "search_fraction=1.5"),
        ({"val_fraction": 0.0}, "val_fraction=0.0"),
        ({"search_fraction": 0.5, "val_fraction": 0.5}, "leaves no training images"),
        ({"search_per_class": 0}, "search_per_class=0"),
        ({"interpolation": "lanczos"}, "interpolation='lanczos'"),
        ({"crop_scale": (0.5, 0.2)}, r"crop_scale=\[0.5, 0.2\] must be \[low, high\]"),
    ],
)
def test_bad_config_values_are_named(changes, message):
    with pytest.raises(NasvitError, match=message):
        DataConfig(**changes)


def test_all_config_problems_are_reported_at_once():
    with pytest.raises(NasvitError) as error:
        DataConfig(batch_size=0, label_smoothing=1.0)
    assert "batch_size=0" in str(error.value) and "label_smoothing=1.0" in str(error.value)


# --- image folders ------------------------------------------------------------------------------------------


def _write_folder(root: Path, split: str, images_per_class: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for name, count in images_per_class.items():
        (root / split / name).mkdir(parents=True)
        for index in range(count):
            pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / name / f"{index}.png")


@pytest.fixture
def image_folder(tmp_path) -> Path:
    root = tmp_path / "images"
    _write_folder(root, "train", {"cat": 8, "dog": 8, "frog": 8}, seed=0)
    _write_folder(root, "validation", {"cat": 3, "dog": 4, "frog": 5}, seed=1)
    return root


def _folder_config(path: Path, **changes) -> DataConfig:
    settings = {"dataset": str(path), "image_size": 32, "batch_size": 4, "search_per_class": 2}
    return DataConfig(**{**settings, **changes})


def test_folder_dataset_builds_train_search_and_val(image_folder):
    splits = build_data(_folder_config(image_folder))
    assert splits.num_classes == 3
    images, labels = next(iter(splits.loader("train")))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    assert splits.search[0][0].shape == splits.val[0][0].shape == (3, 32, 32)

    assert isinstance(splits.train, Subset) and isinstance(splits.search, Subset)
    assert splits.train.dataset is splits.search.dataset  # one scan of train/, two views
    assert len(splits.search) == 3 * 2
    assert torch.bincount(torch.tensor(splits.search.targets)).tolist() == [2, 2, 2]
    assert not set(splits.train.indices) & set(splits.search.indices)  # search held out of training
    assert len(splits.train) + len(splits.search) == 24

    assert len(splits.val) == 12  # from validation/, not from train/
    assert torch.bincount(torch.tensor(splits.val.targets)).tolist() == [3, 4, 5]


def test_folder_search_split_is_deterministic(image_folder):
    first, second = (build_data(_folder_config(image_folder)) for _ in range(2))
    assert first.search.indices == second.search.indices
    assert torch.equal(first.search[0][0], second.search[0][0])  # eval transform: no randomness
    other = build_data(_folder_config(image_folder, seed=3))
    assert other.search.indices != first.search.indices


def test_folder_accepts_a_val_synonym(tmp_path):
    root = tmp_path / "images"
    _write_folder(root, "train", {"a": 4, "b": 4}, seed=0)
    _write_folder(root, "val", {"a": 2, "b": 2}, seed=1)
    splits = build_data(_folder_config(root, search_per_class=1))
    assert len(splits.val) == 4 and len(splits.train) == 6


def test_missing_folder_is_named(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(NasvitError, match=f"dataset folder {missing} does not exist"):
        build_data(DataConfig(dataset=str(missing)))


def test_folder_without_split_subfolder_lists_its_contents(tmp_path):
    root = tmp_path / "flat"
    _write_folder(root, "images", {"a": 2}, seed=0)
    with pytest.raises(NasvitError, match=r"no 'train' split subfolder \(it holds: images/\)"):
        build_data(DataConfig(dataset=str(root)))


def test_validation_class_missing_from_training_is_an_error(image_folder):
    _write_folder(image_folder, "validation", {"zebra": 1}, seed=2)
    with pytest.raises(NasvitError, match="zebra"):
        build_data(_folder_config(image_folder))


def test_too_few_images_for_the_search_split_is_an_error(image_folder):
    with pytest.raises(NasvitError, match="class 0 has 8 images"):
        build_data(_folder_config(image_folder, search_per_class=8))


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        ("imagenett", "unknown dataset 'imagenett'"),
        ("torch/cifar11", "unknown dataset 'torch/cifar11'"),
        ("hfds/some/set", "'hfds/some/set'"),
    ],
)
def test_unknown_dataset_name_is_named(dataset, message):
    with pytest.raises(NasvitError, match=message):
        build_data(DataConfig(dataset=dataset))


def test_torch_dataset_without_files_does_not_download(tmp_path):
    with pytest.raises(NasvitError, match="root=None"):
        build_data(DataConfig(dataset="torch/cifar10"))
    with pytest.raises(NasvitError, match="never downloads"):
        build_data(DataConfig(dataset="torch/cifar10", root=str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


# --- fixed batches and mixup --------------------------------------------------------------------------------


def test_fixed_batches_are_deterministic_and_sized(digits):
    first = fixed_batches(digits.train_eval, num_batches=3, batch_size=16, seed=5)
    second = fixed_batches(digits.train_eval, num_batches=3, batch_size=16, seed=5)
    assert len(first) == 3
    for (images_a, labels_a), (images_b, labels_b) in zip(first, second):
        assert images_a.shape == (16, 3, 32, 32) and labels_a.shape == (16,)
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    other = fixed_batches(digits.train_eval, num_batches=3, batch_size=16, seed=6)
    assert not torch.equal(other[0][0], first[0][0])  # another seed selects other images


def test_fixed_batches_whole_dataset_and_too_many(digits):
    everything = fixed_batches(digits.search, num_batches=None, batch_size=64)
    assert sum(len(labels) for _, labels in everything) == DIGIT_SPLIT_SIZES["search"]
    loaded_labels = torch.cat([labels for _, labels in everything])
    assert torch.equal(loaded_labels.sort().values, digits.search.labels.sort().values)
    with pytest.raises(NasvitError, match="need 192 images but the dataset holds 179"):
        fixed_batches(digits.search, num_batches=3, batch_size=64)


def test_mixup_helper():
    assert build_mixup(DataConfig(), num_classes=10) is None
    mixup = build_mixup(DataConfig(mixup=0.2, cutmix=1.0), num_classes=10)
    assert isinstance(mixup, Mixup)
    images, targets = mixup(torch.randn(8, 3, 32, 32), torch.arange(8))
    assert images.shape == (8, 3, 32, 32) and targets.shape == (8, 10)
    assert torch.allclose(targets.sum(dim=1), torch.ones(8))
    with pytest.raises(NasvitError, match="batch_size=63"):
        build_mixup(DataConfig(mixup=0.2, batch_size=63), num_classes=10)


def test_training_crops_keep_the_configured_share_of_the_image(tmp_path):
    from timm.data.transforms import RandomResizedCropAndInterpolation

    from nasvit.data import build_transforms

    train, _ = build_transforms(DataConfig(dataset=str(tmp_path), crop_scale=(0.35, 1.0)))
    crops = [step for step in train.transforms if isinstance(step, RandomResizedCropAndInterpolation)]
    assert len(crops) == 1 and crops[0].scale == (0.35, 1.0)
