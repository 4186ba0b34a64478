"""Deterministic stratified splits: the same seed gives the same indices on every machine and every run."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor

from nasvit.errors import NasvitError

Settings = Mapping[str, float | int]


def fraction_count(class_size: int, fraction: float) -> int:
    """Images a share ``fraction`` takes of a class of ``class_size``: ``round(class_size * fraction)``, at least 1."""
    return max(1, round(class_size * fraction))


def split_fractions(labels: Tensor, fractions: Sequence[float], seed: int, settings: Settings) -> list[Tensor]:
    """Split every class by fractions; what is left of each class forms the last part.

    Each part takes ``fraction_count(n_c, fraction)`` images of a class of ``n_c`` images, so every class appears
    in every part.

    Args:
        labels: (N,) integer class of each item.
        fractions: the share of each class for each part but the last, each in (0, 1), sum below 1.
        seed: seed of the per-class permutations.
        settings: the config values the fractions come from (``{"val_fraction": 0.2, ...}``), named in the error
            of a class too small.

    Returns:
        ``len(fractions) + 1`` sorted (M_i,) int64 index tensors, disjoint, together covering ``range(N)``.

    Raises:
        NasvitError: a class too small to give every part an image.
    """

    def counts(class_size: int) -> list[int]:
        return [fraction_count(class_size, fraction) for fraction in fractions]

    return _split_per_class(labels, counts, seed, settings)


def hold_out_per_class(labels: Tensor, per_class: int, seed: int) -> tuple[Tensor, Tensor]:
    """Hold ``per_class`` random items of every class out of a set (the search split of the paper).

    Args:
        labels: (N,) integer class of each item.
        per_class: items to hold out of each class.
        seed: seed of the per-class permutations.

    Returns:
        ``(kept, held_out)``: sorted int64 index tensors of shapes (N - K * per_class,) and (K * per_class,)
        for K classes; disjoint, together covering ``range(N)``.

    Raises:
        NasvitError: a class with ``per_class`` items or fewer (nothing would be left to train on).
    """
    held_out, kept = _split_per_class(labels, lambda class_size: [per_class], seed, {"search_per_class": per_class})
    return kept, held_out


def hold_out_validation_and_search(
    labels: Tensor, val_fraction: float, search_per_class: int, seed: int, class_names: Sequence[str] = ()
) -> tuple[Tensor, Tensor, Tensor]:
    """Hold a share of every class out as validation and ``search_per_class`` more as the search split.

    Each class is permuted once (one seeded generator, classes in ascending order); its first
    ``fraction_count(n_c, val_fraction)`` items are validation, the next ``search_per_class`` the search split,
    the rest training.

    Args:
        labels: (N,) integer class of each item.
        val_fraction: share of each class kept as validation, in (0, 1).
        search_per_class: items of each class held out as the search split.
        seed: seed of the per-class permutations.
        class_names: name of each class index (a folder's class subfolders), used in the error of a class too small.

    Returns:
        ``(train, search, val)``: sorted int64 index tensors, disjoint, together covering ``range(N)``.

    Raises:
        NasvitError: a class too small to hold both out and keep an item for training.
    """

    def counts(class_size: int) -> list[int]:
        return [fraction_count(class_size, val_fraction), search_per_class]

    settings = {"val_fraction": val_fraction, "search_per_class": search_per_class}
    val, search, train = _split_per_class(labels, counts, seed, settings, class_names)
    return train, search, val


def _split_per_class(
    labels: Tensor, counts: Callable[[int], list[int]], seed: int, settings: Settings, class_names: Sequence[str] = ()
) -> list[Tensor]:
    """Permute each class with one seeded generator (classes in ascending order) and cut it by ``counts``."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] | None = None
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        sizes = counts(len(members))
        if sum(sizes) >= len(members):
            raise NasvitError(_too_small(label, len(members), sum(sizes), settings, class_names))
        pieces = torch.split(members, [*sizes, len(members) - sum(sizes)])
        parts = [[] for _ in pieces] if parts is None else parts
        for part, piece in zip(parts, pieces):
            part.append(piece)
    if parts is None:
        raise NasvitError("cannot split an empty dataset; check that the dataset has images")
    return [torch.sort(torch.cat(part)).values for part in parts]


def _too_small(label: int, size: int, held_out: int, settings: Settings, class_names: Sequence[str]) -> str:
    """The one-line error of a class of ``size`` items that cannot give ``held_out`` of them and keep one."""
    named = f" ({class_names[label]!r})" if label < len(class_names) else ""
    values = ", ".join(f"{key}={value}" for key, value in settings.items())
    return (
        f"class {label} has {size} images{named}, too few to hold out {held_out} of them ({values}) and keep at least "
        f"one for training; lower {' or '.join(settings)}, or add images of that class"
    )
