"""The embedded default dataset: scikit-learn's handwritten digits, upsampled and held in memory.

1,797 real 8x8 grayscale scans (10 classes, 174-183 images each, values 0..16) ship inside scikit-learn, so
the whole pipeline (training, search, export) runs anywhere without a download. With the default
``val_fraction=0.2`` and ``search_fraction=0.1`` the seeded stratified split gives:

    train 1,259 | search 179 | val 359   (sum 1,797; every class in every split)

The scans become 8x8 grayscale PIL images (values 0..16 scaled to 0..255), are upsampled once with PIL (bicubic by
default) to ``image_size`` exactly as timm's evaluation transform resizes an image (``crop_pct`` 1), and are stored
as one (N, 1, S, S) uint8 tensor: 1.8 MB at 32 px, 150 MB at 288 px. So an export trained on digits, given the
PIL images of :func:`digit_pil_images` through ``timm.data.create_transform``, sees the very tensors it was
evaluated on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch import Tensor
from torch.utils.data import Dataset

from nasvit.data.config import DataConfig
from nasvit.data.splits import split_fractions

NUM_DIGIT_CLASSES = 10
_DIGITS_MAX_VALUE = 16.0


_PIL_FILTERS = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def digit_pil_images() -> tuple[list[Image.Image], Tensor]:
    """All 1,797 digits as the 8x8 grayscale images an image folder of them would hold.

    Returns:
        ``(images, labels)``: 8x8 ``L``-mode PIL images (0 background, 255 ink) and (1797,) int64 classes.
    """
    digits = load_digits()
    pixels = np.rint(digits.images / _DIGITS_MAX_VALUE * 255.0).astype(np.uint8)  # (N, 8, 8)
    return [Image.fromarray(image, mode="L") for image in pixels], torch.as_tensor(digits.target, dtype=torch.int64)


def load_digit_images(image_size: int, interpolation: str = "bicubic") -> tuple[Tensor, Tensor]:
    """All 1,797 digits upsampled to ``image_size`` with PIL, as timm's evaluation resize does.

    Args:
        image_size: output side S.
        interpolation: ``"nearest"``, ``"bilinear"`` or ``"bicubic"``.

    Returns:
        ``(images, labels)``: (1797, 1, S, S) uint8 intensities (0 background, 255 ink) and (1797,) int64.
    """
    pil_images, labels = digit_pil_images()
    size, resample = (image_size, image_size), _PIL_FILTERS[interpolation]
    images = np.stack([np.asarray(image.resize(size, resample=resample)) for image in pil_images])  # (N, S, S)
    return torch.from_numpy(images).unsqueeze(1), labels


def digits_split_indices(labels: Tensor, cfg: DataConfig) -> tuple[Tensor, Tensor, Tensor]:
    """The seeded stratified ``(train, search, val)`` index split of the digits (see the module docstring).

    Args:
        labels: (N,) class of each digit.
        cfg: supplies ``val_fraction``, ``search_fraction`` and ``seed``.

    Returns:
        Three sorted, disjoint int64 index tensors covering ``range(N)``.
    """
    settings = {"val_fraction": cfg.val_fraction, "search_fraction": cfg.search_fraction}
    val, search, train = split_fractions(labels, [cfg.val_fraction, cfg.search_fraction], cfg.seed, settings)
    return train, search, val


class DigitsDataset(Dataset):
    """A split of the digits as normalised 3-channel tensors, optionally with seeded random translations.

    The augmentation pads by ``padding`` background pixels and crops back to S at a random offset (no flips:
    digits are not flip-invariant). The offset of an item is drawn from a generator seeded by
    ``(seed, epoch, original index)``, so it is the same in any worker, in any order, on any rank; call
    ``set_epoch`` to get new offsets each epoch.

    Args:
        images: (N, 1, S, S) uint8 images of this split.
        labels: (N,) int64 classes.
        indices: (N,) int64 positions of these images in the full 1,797-image set.
        mean: per-channel normalisation mean (3 values, for intensities in [0, 1]).
        std: per-channel normalisation standard deviation.
        padding: maximum shift in pixels; 0 disables augmentation.
        seed: seed of the shifts.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        indices: Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        padding: int = 0,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.labels = labels
        self.indices = indices
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.padding = padding
        self.seed = seed
        self.epoch = 0

    @property
    def targets(self) -> list[int]:
        """The class of every item, like torchvision datasets."""
        return self.labels.tolist()

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation of this epoch (no effect without padding)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, position: int) -> tuple[Tensor, int]:
        """Returns ``(image, label)``: a (3, S, S) float32 normalised image and its class."""
        image = self.images[position]  # (1, S, S) uint8
        if self.padding > 0:
            image = self._shift(image, int(self.indices[position]))
        image = image.to(torch.float32).div_(255.0).expand(3, -1, -1)  # (3, S, S)
        return (image - self.mean) / self.std, int(self.labels[position])

    def _shift(self, image: Tensor, index: int) -> Tensor:
        """Pad with background and crop back at a seeded random offset: (1, S, S) -> (1, S, S)."""
        size = image.shape[-1]
        generator = torch.Generator().manual_seed(_item_seed(self.seed, self.epoch, index))
        top, left = torch.randint(0, 2 * self.padding + 1, (2,), generator=generator).tolist()
        padded = F.pad(image, (self.padding,) * 4)  # (1, S + 2p, S + 2p), zeros are background
        return padded[:, top : top + size, left : left + size]


def _item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed unique to (seed, epoch, index) for any realistic values."""
    return ((seed * 1_000_003 + epoch) * 1_000_003 + index) % (1 << 63)


def default_padding(image_size: int) -> int:
    """Shift range of the digits augmentation: 1/16 of the side (2 px at 32 px, a quarter of an 8x8 pixel)."""
    return max(1, image_size // 16)


def write_digits_folder(
    root: str | Path,
    class_name: Callable[[int], str] = str,
    validation_every: int = 5,
    per_class: int | None = None,
) -> Path:
    """Write the digits as an image folder (8x8 RGB PNGs): ``root/{train,validation}/<class>/<n>.png``.

    A quick real dataset for the image-folder path, e.g. relabelled into another task
    (``class_name=lambda d: f"pair{d // 2}"`` gives 5 classes).

    Args:
        root: the folder to write (created).
        class_name: the class folder of a digit 0-9.
        validation_every: every this many images of a class goes to ``validation/``, the rest to ``train/``.
        per_class: at most this many images per class (None: all).

    Returns:
        ``root``.
    """
    root = Path(root)
    images, labels = digit_pil_images()
    counts: dict[str, int] = {}
    for image, label in zip(images, labels.tolist()):
        name = class_name(label)
        index = counts.get(name, 0)
        if per_class is not None and index >= per_class:
            continue
        counts[name] = index + 1
        folder = root / ("validation" if index % validation_every == 0 else "train") / name
        folder.mkdir(parents=True, exist_ok=True)
        image.convert("RGB").save(folder / f"{index}.png")
    return root
