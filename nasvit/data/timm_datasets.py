"""Image-folder and torchvision datasets opened through timm's ``create_dataset``, with errors that say what to fix.

The datasets opened here have no transform: they return ``(PIL image, class)``. ``TransformedSubset`` gives the
train, search and validation views their own transforms over one shared, once-scanned dataset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from PIL import Image
from timm.data import create_dataset
from torch import Tensor
from torch.utils.data import Dataset

from nasvit.data.config import DIGITS, TORCH_DATASETS, TORCH_PREFIX, DataConfig
from nasvit.errors import NasvitError

logger = logging.getLogger(__name__)

TRAIN_SPLIT_NAMES = ("train", "training")
VAL_SPLIT_NAMES = ("validation", "val", "valid", "eval", "evaluation")
_REMOTE_PREFIXES = ("hfds", "hfids", "tfds", "wds")
_LISTED_ENTRIES = 12


def open_image_datasets(cfg: DataConfig) -> tuple[Dataset, Dataset | None, int]:
    """Open the training and validation sets of a folder or ``torch/`` dataset, untransformed.

    Args:
        cfg: a config whose ``kind`` is ``"folder"`` or ``"torch"``.

    Returns:
        ``(train, val, num_classes)``; both datasets return ``(PIL image, int class)`` and share class indices;
        ``val`` is ``None`` when ``cfg.val_split`` is (validation is then held out of ``train``).

    Raises:
        NasvitError: an unknown dataset name, a missing folder or root, a missing split subfolder, a split
            without images, or validation classes that training lacks.
    """
    if cfg.kind == "torch":
        return _open_torch(cfg)
    folder = resolve_folder(cfg)
    train = _open_folder_split(folder, cfg.train_split, TRAIN_SPLIT_NAMES, None, cfg.max_unreadable)
    class_to_idx = train.reader.class_to_idx
    if cfg.val_split is None:
        return train, None, len(class_to_idx)
    val_dir = find_split_dir(folder, cfg.val_split, VAL_SPLIT_NAMES)
    unknown = sorted(entry.name for entry in val_dir.iterdir() if entry.is_dir() and entry.name not in class_to_idx)
    if unknown:
        raise NasvitError(
            f"validation folder {val_dir} has classes that {cfg.train_split}/ lacks: {_listing(unknown)}; "
            "every validation class needs training images (same subfolder names)"
        )
    val = _open_folder_split(folder, cfg.val_split, VAL_SPLIT_NAMES, class_to_idx, cfg.max_unreadable)
    return train, val, len(class_to_idx)


def resolve_folder(cfg: DataConfig) -> Path:
    """The image folder named by ``cfg.dataset`` (relative paths taken under ``cfg.root`` when set).

    Raises:
        NasvitError: the folder does not exist, or the name is neither a path nor a known dataset.
    """
    name = cfg.dataset
    prefix = name.split("/", 1)[0].lower()
    if "/" in name and prefix in _REMOTE_PREFIXES:
        raise NasvitError(
            f"dataset {name!r}: {prefix}/ datasets stream or download, which nasvit never does; save the images "
            f"as an image folder (<path>/{cfg.train_split}/<class>/<image>) and pass its path"
        )
    folder = Path(os.path.expanduser(name))
    if cfg.root is not None and not folder.is_absolute():
        folder = Path(os.path.expanduser(cfg.root)) / folder
    if folder.is_dir():
        return folder
    looks_like_path = "/" in name or os.sep in name or name.startswith((".", "~"))
    if looks_like_path:
        raise NasvitError(
            f"dataset folder {folder} does not exist; pass the path of a folder laid out as "
            f"<path>/{cfg.train_split}/<class>/<image> (and optionally <path>/{cfg.val_split or 'validation'}/"
            f"<class>/<image>), or dataset='{DIGITS}' for the embedded digits"
        )
    raise NasvitError(
        f"unknown dataset {name!r} (and no folder {folder} exists); use '{DIGITS}' (embedded), "
        f"'{TORCH_PREFIX}<name>' with <name> one of {', '.join(TORCH_DATASETS)} (files under root=), "
        "or the path of an image folder"
    )


def resolve_val_split(cfg: DataConfig) -> DataConfig:
    """``cfg`` with ``val_split=None`` when it names an image folder that has no validation subfolder.

    Only a standard name (one of ``VAL_SPLIT_NAMES``, such as the default ``validation``) falls back so: it is
    looked up with its synonyms, and a folder with none of them has no validation images. A missing subfolder of
    another name stays an error (:func:`open_image_datasets`), as a misspelt name should.

    Raises:
        NasvitError: the folder does not exist (:func:`resolve_folder`).
    """
    if cfg.kind != "folder" or cfg.val_split not in VAL_SPLIT_NAMES:
        return cfg
    if _existing_split_dir(resolve_folder(cfg), cfg.val_split, VAL_SPLIT_NAMES) is not None:
        return cfg
    return cfg.replace(val_split=None)


def find_split_dir(folder: Path, split: str, synonyms: tuple[str, ...]) -> Path:
    """``folder/split``, or the first existing synonym of it (``val`` for ``validation``, ...).

    Raises:
        NasvitError: neither exists; the message lists what the folder holds.
    """
    found = _existing_split_dir(folder, split, synonyms)
    if found is not None:
        if found.name != split:
            logger.info("split %r not found in %s; using its synonym %r", split, folder, found.name)
        return found
    entries = sorted(entry.name + ("/" if entry.is_dir() else "") for entry in folder.iterdir())
    raise NasvitError(
        f"dataset folder {folder} has no {split!r} split subfolder (it holds: {_listing(entries) or 'nothing'}); "
        f"expected {folder}/{split}/<class>/<image>; set train_split / val_split to the subfolder names, or pass "
        "the parent folder if this is itself a split folder"
    )


def _existing_split_dir(folder: Path, split: str, synonyms: tuple[str, ...]) -> Path | None:
    """``folder/split`` or, when ``split`` is one of ``synonyms``, the first of them that exists; else ``None``."""
    candidates = (split, *synonyms) if split in synonyms else (split,)
    return next((folder / name for name in candidates if (folder / name).is_dir()), None)


def dataset_targets(dataset: Dataset) -> Tensor:
    """The (N,) int64 class of every item, read without decoding any image.

    Raises:
        NasvitError: the dataset exposes its classes neither as ``targets`` nor through a timm reader.
    """
    targets = getattr(dataset, "targets", None)
    reader = getattr(dataset, "reader", None)
    if targets is None and reader is not None:
        targets = getattr(reader, "targets", None)
        if targets is None and hasattr(reader, "samples"):
            targets = [target for _, target in reader.samples]
    if targets is None:
        raise NasvitError(
            f"cannot read the classes of a {type(dataset).__name__} without decoding it; use an image folder or a "
            f"dataset with a 'targets' attribute"
        )
    return torch.as_tensor(targets, dtype=torch.int64)


def class_names(dataset: Dataset) -> list[str]:
    """The name of each class index: an image folder's class subfolders, a torchvision dataset's ``classes``, or
    an empty list when the dataset names none."""
    class_to_idx = getattr(getattr(dataset, "reader", None), "class_to_idx", None)
    if class_to_idx:
        return sorted(class_to_idx, key=class_to_idx.__getitem__)
    return list(getattr(dataset, "classes", None) or [])


def _open_folder_split(
    folder: Path, split: str, synonyms: tuple[str, ...], class_map: dict | None, max_unreadable: int
) -> Dataset:
    """A timm ``ImageDataset`` (RGB) over ``folder/split``; ``class_map`` pins class indices to training's."""
    split_dir = find_split_dir(folder, split, synonyms)
    try:
        dataset = create_dataset("", root=str(split_dir), split=split, search_split=False, class_map=class_map)
    except RuntimeError as error:  # timm: "Found 0 images in subfolders of ..."
        raise NasvitError(
            f"split folder {split_dir} holds no images in class subfolders ({error}); expected "
            f"{split_dir}/<class>/<image>.jpg|png"
        ) from error
    return CheckedImageFolder(dataset, max_unreadable)


class CheckedImageFolder(Dataset):
    """A timm image-folder dataset that names every unreadable image and stops after ``max_unreadable`` of them.

    timm's own dataset skips a broken file with a warning that names only its index, and fails with a bare
    RuntimeError when many in a row are broken. Here each unreadable file is logged with its path and replaced by
    the next readable image; one more than ``max_unreadable`` (counted per process) raises a ``NasvitError``
    listing the paths.

    Args:
        dataset: a timm ``ImageDataset`` without transforms (its ``reader`` gives file handles and classes).
        max_unreadable: unreadable images tolerated before the run stops.
    """

    def __init__(self, dataset: Dataset, max_unreadable: int) -> None:
        self.reader = dataset.reader
        self.max_unreadable = max_unreadable
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        """Returns ``(RGB PIL image, class)`` of item ``index``, or of the next readable item."""
        for offset in range(len(self)):
            position = (index + offset) % len(self)
            try:
                return self._load(position)
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                self._record_unreadable(position, error)
        raise NasvitError(f"no image of {len(self)} could be read")  # reached only with a huge max_unreadable

    def _load(self, position: int) -> tuple[Image.Image, int]:
        file, target = self.reader[position]
        with file:
            image = Image.open(file)
            image.load()
        return image.convert("RGB"), int(target)

    def _record_unreadable(self, position: int, error: Exception) -> None:
        path = str(self.reader.filename(position, absolute=True))
        self.unreadable.append(path)
        if len(self.unreadable) > self.max_unreadable:
            shown = _listing(self.unreadable)
            raise NasvitError(
                f"{len(self.unreadable)} images could not be read ({shown}), more than data.max_unreadable="
                f"{self.max_unreadable}; fix or remove them, or raise data.max_unreadable"
            )
        logger.warning(
            "unreadable image %s (%s: %s); using the next image instead (%d of at most %d)",
            path,
            type(error).__name__,
            error,
            len(self.unreadable),
            self.max_unreadable,
        )


def _open_torch(cfg: DataConfig) -> tuple[Dataset, Dataset | None, int]:
    """A torchvision dataset already on disk under ``cfg.root``; never downloads."""
    name = cfg.dataset[len(TORCH_PREFIX) :].lower()
    if name not in TORCH_DATASETS:
        raise NasvitError(f"unknown dataset {cfg.dataset!r}; torch/ datasets are: {', '.join(TORCH_DATASETS)}")
    if cfg.root is None or not Path(os.path.expanduser(cfg.root)).is_dir():
        raise NasvitError(
            f"dataset {cfg.dataset!r} needs root= an existing folder holding its files (got root={cfg.root!r}); "
            "nasvit never downloads: fetch it once with torchvision (download=True) into that folder"
        )
    root = os.path.expanduser(cfg.root)
    train = _open_torch_split(cfg.dataset, root, cfg.train_split)
    val = None if cfg.val_split is None else _open_torch_split(cfg.dataset, root, cfg.val_split)
    classes = getattr(train, "classes", None)
    num_classes = len(classes) if classes else int(dataset_targets(train).max()) + 1
    return train, val, num_classes


def _open_torch_split(dataset: str, root: str, split: str) -> Dataset:
    """One split of the torchvision dataset ``dataset`` under ``root``, or an error saying how to fetch it."""
    try:
        return create_dataset(dataset, root=root, split=split, download=False)
    except (RuntimeError, OSError) as error:
        raise NasvitError(
            f"dataset {dataset!r} split {split!r} not found under root={root} ({error}); nasvit never "
            "downloads: fetch it once with torchvision (download=True) into that folder"
        ) from error


def _listing(names: list[str]) -> str:
    """At most ``_LISTED_ENTRIES`` names, comma-separated, with a count of the rest."""
    shown = ", ".join(names[:_LISTED_ENTRIES])
    rest = len(names) - _LISTED_ENTRIES
    return f"{shown}, and {rest} more" if rest > 0 else shown
