"""timm transforms for folder and torchvision datasets, and the subset view that applies them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PIL import Image
from timm.data import create_transform
from timm.data.auto_augment import RandAugment
from torch import Tensor
from torch.utils.data import Dataset, Subset

from nasvit.data.config import DataConfig
from nasvit.data.timm_datasets import dataset_targets

Transform = Callable[[Image.Image], Tensor]


def build_transforms(cfg: DataConfig) -> tuple[Transform, Transform]:
    """The training and evaluation transforms of ``cfg``, both producing (3, S, S) float tensors, normalised.

    Training: random-resized crop to S (keeping ``cfg.crop_scale`` of the area), horizontal flip, then
    ``cfg.auto_augment`` (default: weak RandAugment, one op of magnitude 1). Colour jitter stays off, with or
    without RandAugment: the paper keeps augmentation weak because stronger augmentation raises gradient conflicts
    between subnets. Evaluation: resize to S / 0.875, centre crop S (timm's default crop ratio).

    Returns:
        ``(train_transform, eval_transform)``: PIL image -> (3, S, S) float32.
    """
    common = {
        "input_size": cfg.image_size,
        "interpolation": cfg.interpolation,
        "mean": cfg.mean,
        "std": cfg.std,
    }
    train = create_transform(
        is_training=True, scale=cfg.crop_scale, auto_augment=cfg.auto_augment, color_jitter=None, **common
    )
    return train, create_transform(is_training=False, **common)


def set_randaugment_magnitude(transform: Transform, magnitude: float) -> int:
    """Set the magnitude of every op of the timm ``RandAugment`` steps in ``transform`` (a timm ``Compose``), as
    a progressive-learning stage asks; returns how many RandAugment steps it found (0 leaves ``transform`` alone)."""
    steps = [step for step in getattr(transform, "transforms", ()) if isinstance(step, RandAugment)]
    for step in steps:
        for op in step.ops:
            op.magnitude = magnitude
    return len(steps)


class TransformedSubset(Subset):
    """The items at ``indices`` of an untransformed ``(PIL image, class)`` dataset, passed through ``transform``.

    Several views share one dataset (scanned once) with different transforms: the augmented training view,
    the un-augmented training view for BatchNorm recalibration, and the search split held out of training.
    Grayscale or palette images are converted to RGB first (the search spaces take 3 input channels).

    Args:
        dataset: returns ``(PIL image, class)``.
        indices: positions in ``dataset`` of this view's items.
        transform: PIL image -> (3, S, S) tensor.
    """

    def __init__(self, dataset: Dataset, indices: Sequence[int], transform: Transform) -> None:
        super().__init__(dataset, indices)
        self.transform = transform

    @property
    def targets(self) -> list[int]:
        """The class of every item (reads the labels only, decodes no image)."""
        all_targets = dataset_targets(self.dataset)
        return all_targets[list(self.indices)].tolist()

    def __getitem__(self, position: int) -> tuple[Tensor, int]:
        """Returns ``(image, label)``: a (3, S, S) float32 image and its class."""
        image, label = self.dataset[self.indices[position]]
        if image.mode != "RGB":
            image = image.convert("RGB")
        return self.transform(image), int(label)

    def __getitems__(self, positions: list[int]) -> list[tuple[Tensor, int]]:
        return [self[position] for position in positions]
