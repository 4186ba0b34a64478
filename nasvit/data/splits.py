"""Deterministic stratified splits: the same seed gives the same indices on every machine and every run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from nasvit.errors import NasvitError


def split_fractions(labels: Tensor, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """Split every class by fractions; what is left of each class forms the last part.

    Each part takes ``round(n_c * fraction)`` images of a class of ``n_c`` images, at least one, so every
    class appears in every part.

    Args:
        labels: (N,) integer class of each item.
        fractions: the share of each class for each part but the last, each in (0, 1), sum below 1.
        seed: seed of the per-class permutations.

    Returns:
        ``len(fractions) + 1`` sorted (M_i,) int64 index tensors, disjoint, together covering ``range(N)``.

    Raises:
        NasvitError: a class too small to give every part an image.
    """

    def counts(class_size: int) -> list[int]:
        return [max(1, round(class_size * fraction)) for fraction in fractions]

    return _split_per_class(labels, counts, seed)


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
    held_out, kept = _split_per_class(labels, lambda class_size: [per_class], seed)
    return kept, held_out


def _split_per_class(labels: Tensor, counts: Callable[[int], list[int]], seed: int) -> list[Tensor]:
    """Permute each class with one seeded generator (classes in ascending order) and cut it by ``counts``."""
    labels = torch.as_tensor(labels, dtype=torch.int64)
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[Tensor]] | None = None
    for label in torch.unique(labels).tolist():
        members = torch.nonzero(labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        sizes = counts(len(members))
        if sum(sizes) >= len(members):
            raise NasvitError(
                f"class {label} has {len(members)} images, too few to hold out {sum(sizes)} of them and keep at "
                "least one for training; lower search_per_class (or search_fraction / val_fraction) or add images "
                "of that class"
            )
        pieces = torch.split(members, [*sizes, len(members) - sum(sizes)])
        parts = [[] for _ in pieces] if parts is None else parts
        for part, piece in zip(parts, pieces):
            part.append(piece)
    if parts is None:
        raise NasvitError("cannot split an empty dataset; check that the dataset has images")
    return [torch.sort(torch.cat(part)).values for part in parts]
