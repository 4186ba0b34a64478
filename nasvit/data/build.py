"""``build_data``: the train, search and validation datasets of a ``DataConfig``, and their loaders."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nasvit.data.config import DataConfig
from nasvit.data.digits import (
    NUM_DIGIT_CLASSES,
    DigitsDataset,
    default_padding,
    digits_split_indices,
    load_digit_images,
)
from nasvit.data.loader import make_loader
from nasvit.data.splits import fraction_count, hold_out_per_class, hold_out_validation_and_search
from nasvit.data.timm_datasets import (
    VAL_SPLIT_NAMES,
    class_names,
    dataset_targets,
    open_image_datasets,
    resolve_val_split,
)
from nasvit.data.transforms import TransformedSubset, build_transforms
from nasvit.errors import NasvitError

logger = logging.getLogger(__name__)

SPLITS = ("train", "train_eval", "search", "val")


@dataclass(frozen=True)
class DataSplits:
    """The datasets of one run. Every item is ``(image, label)``: a (3, S, S) float32 tensor and an int.

    Attributes:
        train: training images, augmented; excludes the search split.
        train_eval: the same images as ``train`` without augmentation, for BatchNorm recalibration.
        search: images held out of training, un-augmented: the search evaluates candidates on them.
        val: the validation set, un-augmented, for final numbers.
        num_classes: number of classes.
        config: the config that built them, resolved: an image folder without a validation subfolder has
            ``val_split`` ``None`` here, so that a run which stores it rebuilds the same splits.
    """

    train: Dataset
    train_eval: Dataset
    search: Dataset
    val: Dataset
    num_classes: int
    config: DataConfig

    def dataset(self, split: str) -> Dataset:
        """The dataset of ``split``, one of ``SPLITS``.

        Raises:
            NasvitError: an unknown split name.
        """
        if split not in SPLITS:
            raise NasvitError(f"unknown data split {split!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def loader(
        self,
        split: str,
        batch_size: int | None = None,
        shuffle: bool | None = None,
        seed: int | None = None,
        drop_last: bool | None = None,
        distributed: bool = False,
        skip_batches: int = 0,
    ) -> DataLoader:
        """A loader of ``split`` yielding (B, 3, S, S) float32 images and (B,) int64 labels.

        Args:
            split: one of ``SPLITS``.
            batch_size: default ``config.batch_size``.
            shuffle: default: shuffle ``train`` only. Call ``nasvit.data.set_epoch(loader, epoch)`` each epoch.
            seed: seed of the order; default ``config.seed``.
            drop_last: default: drop the incomplete last batch of ``train`` only.
            distributed: shard over the ranks of the initialised process group.
            skip_batches: leave out the first batches of this epoch's order (resuming inside an epoch).
        """
        is_train = split == "train"
        return make_loader(
            self.dataset(split),
            batch_size=self.config.batch_size if batch_size is None else batch_size,
            shuffle=is_train if shuffle is None else shuffle,
            seed=self.config.seed if seed is None else seed,
            drop_last=is_train if drop_last is None else drop_last,
            distributed=distributed,
            workers=self.config.workers,
            skip_batches=skip_batches,
        )


def build_data(cfg: DataConfig) -> DataSplits:
    """Open the dataset of ``cfg`` and cut the search split out of its training set.

    Digits: a seeded stratified split by ``val_fraction`` and ``search_fraction``. Folder and torchvision
    datasets: validation from the ``val_split``; ``search_per_class`` random training images of each class
    held out as the search split (seeded by ``cfg.seed``, so identical on every run and every rank). Without a
    validation split (``val_split`` ``None``, or an image folder without that subfolder) ``val_fraction`` of each
    class of the training images is held out as validation too, disjoint from the search split.

    Raises:
        NasvitError: the dataset cannot be found or opened, has fewer than 2 classes, or a class is too small to
            hold images out.
    """
    splits = _build_digits(cfg) if cfg.kind == "digits" else _build_image_datasets(cfg)
    logger.info(
        "data %s at %d px: %d classes; train %d, search %d, val %d images",
        cfg.dataset,
        cfg.image_size,
        splits.num_classes,
        len(splits.train),
        len(splits.search),
        len(splits.val),
    )
    return splits


def _build_digits(cfg: DataConfig) -> DataSplits:
    """The embedded digits, upsampled once and split by fractions."""
    images, labels = load_digit_images(cfg.image_size, cfg.interpolation)
    train, search, val = digits_split_indices(labels, cfg)

    def view(indices: Tensor, padding: int = 0) -> DigitsDataset:
        return DigitsDataset(images[indices], labels[indices], indices, cfg.mean, cfg.std, padding, cfg.seed)

    return DataSplits(
        train=view(train, default_padding(cfg.image_size)),
        train_eval=view(train),
        search=view(search),
        val=view(val),
        num_classes=NUM_DIGIT_CLASSES,
        config=cfg,
    )


def _build_image_datasets(requested: DataConfig) -> DataSplits:
    """A folder or torchvision dataset with timm transforms; the search split (and, without a validation split, the
    validation split) is held out of training."""
    cfg = resolve_val_split(requested)
    train_set, val_set, num_classes = open_image_datasets(cfg)
    if num_classes < 2:
        raise NasvitError(
            f"dataset {cfg.dataset!r} has {num_classes} class; classification needs at least 2 (one subfolder per "
            f"class under the split folders: <path>/{cfg.train_split}/<class>/<image>)"
        )
    labels = dataset_targets(train_set)
    train_transform, eval_transform = build_transforms(cfg)
    if val_set is None:
        _log_held_out_validation(cfg, labels, resolved=requested.val_split is not None)
        train, search, val = hold_out_validation_and_search(
            labels, cfg.val_fraction, cfg.search_per_class, cfg.seed, class_names(train_set)
        )
        val_view = TransformedSubset(train_set, val.tolist(), eval_transform)
    else:
        train, search = hold_out_per_class(labels, cfg.search_per_class, cfg.seed)
        val_view = TransformedSubset(val_set, range(len(val_set)), eval_transform)
    train_list = train.tolist()
    return DataSplits(
        train=TransformedSubset(train_set, train_list, train_transform),
        train_eval=TransformedSubset(train_set, train_list, eval_transform),
        search=TransformedSubset(train_set, search.tolist(), eval_transform),
        val=val_view,
        num_classes=num_classes,
        config=cfg,
    )


def _log_held_out_validation(cfg: DataConfig, labels: Tensor, resolved: bool) -> None:
    """Say why validation comes out of the training images, and how many of each class it takes."""
    sizes = sorted({fraction_count(size, cfg.val_fraction) for size in torch.bincount(labels).tolist() if size})
    per_class = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    reason = (
        f"no validation subfolder in {cfg.dataset} (none of {', '.join(VAL_SPLIT_NAMES)})"
        if resolved
        else "data.val_split is null"
    )
    logger.info(
        "%s: holding out val_fraction=%g of each class of %s/ (%s images a class) as validation, seed %d",
        reason,
        cfg.val_fraction,
        cfg.train_split,
        per_class,
        cfg.seed,
    )
