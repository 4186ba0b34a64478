"""``DataConfig``: which images to load, at what size, with which augmentation and which held-out splits."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from nasvit.errors import raise_problems

DIGITS = "digits"
TORCH_PREFIX = "torch/"
TORCH_DATASETS = ("cifar10", "cifar100", "mnist", "kmnist", "fashion_mnist", "qmnist", "imagenet")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

DatasetKind = Literal["digits", "torch", "folder"]
Triple = tuple[float, float, float]

# Per-channel statistics of the images as they are fed to the network (RGB, values in [0, 1]).
# Digits: measured on all 1,797 images after bicubic upsampling (the same at 32 and 224 px to 3 digits).
DATASET_STATS: dict[str, tuple[Triple, Triple]] = {
    DIGITS: ((0.312, 0.312, 0.312), (0.356, 0.356, 0.356)),
    "torch/cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "torch/cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "torch/mnist": ((0.1307, 0.1307, 0.1307), (0.3081, 0.3081, 0.3081)),
    "torch/fashion_mnist": ((0.2860, 0.2860, 0.2860), (0.3530, 0.3530, 0.3530)),
}


@dataclass(frozen=True)
class DataConfig:
    """What the data pipeline loads and how.

    Attributes:
        dataset: ``"digits"`` (the embedded scikit-learn digits, no files needed), ``"torch/<name>"`` for a
            torchvision dataset already on disk under ``root`` (one of ``TORCH_DATASETS``), or the path of an
            image folder laid out as ``<path>/<split>/<class>/<image>`` (a relative path is taken under
            ``root`` when ``root`` is set). Nothing is ever downloaded.
        root: data root for ``torch/`` datasets (required there) and relative folder paths.
        train_split: subfolder (or torchvision split name) of the training images.
        val_split: subfolder (or torchvision split name) of the validation images; ``None``: there is none, so
            ``val_fraction`` of each class of the training split is held out as validation (seeded by ``seed``,
            disjoint from the search split). An image folder with no subfolder of this name (nor a synonym, for the
            standard names ``validation``, ``val``, ...) is built as ``None``, and ``DataSplits.config`` records
            that. Unused for digits, which are split by ``val_fraction``.
        image_size: side of the square batches as loaded; the trainer resizes down per subnet.
        batch_size: default images per batch of the loaders.
        workers: DataLoader worker processes (0 loads in the main process).
        crop_scale: training crops of folder and torchvision datasets: the share of the image's area a random
            resized crop keeps, ``[low, high]`` (timm's ``scale``; ImageNet's ``[0.08, 1.0]`` by default; small
            images such as CIFAR's train better with a milder range, e.g. ``[0.35, 1.0]``).
        auto_augment: timm auto-augment string for folder and torchvision datasets (default: weak RandAugment,
            one op of magnitude 1, as the paper trains; the ``inc1`` op set, because timm's plain Posterize keeps
            0 bits at magnitude 1, which Pillow >= 13 rejects); ``None`` disables it. Digits ignore it and use small
            random translations instead (RandAugment on 8x8 strokes is pointless).
        mixup: mixup alpha (0 disables).
        cutmix: cutmix alpha (0 disables).
        label_smoothing: smoothing of the hard (and mixed) targets.
        search_fraction: digits only: share of each class held out of training as the search split.
        search_per_class: folder and torchvision datasets: training images per class held out as the search
            split (the paper: 5).
        val_fraction: share of each class kept as the validation split: of the digits, and of the training split
            of a dataset without a validation split (``val_split`` ``None``).
        seed: seed of the split permutations, the shuffling and the digits augmentation.
        mean: per-channel normalisation mean; ``None`` picks the dataset's own (``DATASET_STATS``, else
            ImageNet's). Resolved at construction, so the stored config holds the numbers used.
        std: per-channel normalisation standard deviation, resolved like ``mean``.
        interpolation: resampling of every resize: one of ``INTERPOLATIONS``.
        max_unreadable: image folders: unreadable images tolerated per process (each is named in a warning and
            replaced by the next readable one); one more stops the run with their paths.

    Raises:
        NasvitError: listing every invalid field at once, with the allowed range.
    """

    dataset: str = DIGITS
    root: str | None = None
    train_split: str = "train"
    val_split: str | None = "validation"
    image_size: int = 32
    batch_size: int = 64
    workers: int = 0
    crop_scale: tuple[float, float] = (0.08, 1.0)
    auto_augment: str | None = "rand-m1-n1-inc1"
    mixup: float = 0.0
    cutmix: float = 0.0
    label_smoothing: float = 0.1
    search_fraction: float = 0.1
    search_per_class: int = 5
    val_fraction: float = 0.2
    seed: int = 0
    mean: Triple | None = None
    std: Triple | None = None
    interpolation: str = "bicubic"
    max_unreadable: int = 20

    def __post_init__(self) -> None:
        default_mean, default_std = DATASET_STATS.get(self.dataset, (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD))
        object.__setattr__(self, "mean", tuple(float(v) for v in (self.mean or default_mean)))
        object.__setattr__(self, "std", tuple(float(v) for v in (self.std or default_std)))
        raise_problems(_problems(self), prefix="invalid data config: ")

    @property
    def kind(self) -> DatasetKind:
        """``"digits"``, ``"torch"`` (a torchvision dataset under ``root``) or ``"folder"`` (an image folder)."""
        if self.dataset == DIGITS:
            return "digits"
        if self.dataset.startswith(TORCH_PREFIX):
            return "torch"
        return "folder"

    def replace(self, **changes: object) -> DataConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _problems(cfg: DataConfig) -> list[str]:
    """Every invalid field of ``cfg``, each naming the value and the allowed range."""
    problems = []
    if not cfg.dataset:
        problems.append(f"dataset is empty; use '{DIGITS}', 'torch/<name>' or an image folder path")
    if cfg.val_split == "":
        problems.append(
            "val_split is empty; name the validation subfolder, or null to hold out val_fraction of each class "
            "of the training images"
        )
    for name in ("image_size", "batch_size", "search_per_class"):
        if getattr(cfg, name) < 1:
            problems.append(f"{name}={getattr(cfg, name)} must be at least 1")
    for name in ("workers", "max_unreadable"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name}={getattr(cfg, name)} must be 0 or more")
    for name in ("mixup", "cutmix"):
        if getattr(cfg, name) < 0:
            problems.append(f"{name}={getattr(cfg, name)} must be >= 0 (0 disables it)")
    low, high = cfg.crop_scale
    if not 0.0 < low <= high <= 1.0:
        problems.append(f"crop_scale={list(cfg.crop_scale)} must be [low, high] with 0 < low <= high <= 1")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        problems.append(f"label_smoothing={cfg.label_smoothing} must be in [0, 1)")
    bad_fractions = [name for name in ("search_fraction", "val_fraction") if not 0.0 < getattr(cfg, name) < 1.0]
    for name in bad_fractions:
        problems.append(f"{name}={getattr(cfg, name)} must be in (0, 1), e.g. 0.1")
    if not bad_fractions and cfg.search_fraction + cfg.val_fraction >= 1.0:
        problems.append(
            f"search_fraction + val_fraction = {cfg.search_fraction} + {cfg.val_fraction} leaves no training "
            "images; keep the sum below 1 (defaults 0.1 + 0.2)"
        )
    if len(cfg.mean) != 3 or len(cfg.std) != 3:
        problems.append(f"mean={cfg.mean} and std={cfg.std} need 3 values each (RGB)")
    if any(value <= 0 for value in cfg.std):
        problems.append(f"std={cfg.std} must be positive")
    if cfg.interpolation not in INTERPOLATIONS:
        problems.append(f"interpolation={cfg.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}")
    return problems
