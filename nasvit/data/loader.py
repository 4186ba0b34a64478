"""DataLoaders with epoch-seeded order, and fixed in-memory batches for BN recalibration and search evaluation."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from nasvit.errors import NasvitError


class SeededShuffleSampler(Sampler[int]):
    """A random permutation of ``range(num_items)`` that depends only on ``seed + epoch``.

    It draws the same order as a one-replica ``DistributedSampler``, so a resumed run (``set_epoch``) sees the
    same order as an uninterrupted one, and single-process and distributed runs agree.

    Args:
        num_items: dataset length N.
        seed: base seed.
    """

    def __init__(self, num_items: int, seed: int = 0) -> None:
        self.num_items = num_items
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of this epoch."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.num_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_items


class SkipSampler(Sampler[int]):
    """Another sampler's indices without the first ``skip`` of them (resuming inside an epoch: no image of the
    skipped batches is loaded)."""

    def __init__(self, sampler: Sampler[int], skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    distributed: bool = False,
    workers: int = 0,
    skip_batches: int = 0,
) -> DataLoader:
    """A DataLoader yielding ``(images, labels)``: (B, 3, S, S) float32 and (B,) int64.

    Args:
        dataset: a map-style dataset of ``(image, label)``.
        batch_size: images per batch (per process when distributed).
        shuffle: draw a new seeded permutation every epoch (call ``set_epoch``).
        seed: seed of the order and of the workers' random streams.
        drop_last: drop the last incomplete batch (training, so that every step sees ``batch_size`` images).
        distributed: shard with a ``DistributedSampler`` over the ranks of the initialised process group (one
            replica when none is initialised).
        workers: worker processes; they restart every epoch so that ``set_epoch`` reaches their dataset copy.
        skip_batches: leave out the first batches of the order (resuming inside an epoch).
    """
    sampler: Sampler[int] | None = None
    if distributed:
        rank, world = _rank_and_world()
        sampler = DistributedSampler(
            dataset, num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    elif shuffle:
        sampler = SeededShuffleSampler(len(dataset), seed)
    if skip_batches:
        sampler = SkipSampler(sampler if sampler is not None else range(len(dataset)), skip_batches * batch_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(seed),
    )


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select the epoch of a loader's shuffling and of its dataset's augmentation (where they have one)."""
    for owner in (loader.sampler, loader.dataset):
        if hasattr(owner, "set_epoch"):
            owner.set_epoch(epoch)


def fixed_batches(
    dataset: Dataset,
    num_batches: int | None,
    batch_size: int,
    seed: int = 0,
    workers: int = 0,
    size_keys: tuple[str, str] = ("num_batches", "batch_size"),
) -> list[tuple[Tensor, Tensor]]:
    """Load a fixed, seeded selection of batches once and keep it in memory.

    Used for BatchNorm recalibration (pass the un-augmented training view, ``DataSplits.train_eval``) and for
    the search's held-out evaluation (``DataSplits.search``), so that no image is decoded again per candidate.
    The same dataset, sizes and seed give identical batches.

    Args:
        dataset: a map-style dataset of ``(image, label)``; its transform should be deterministic.
        num_batches: how many batches; ``None`` takes the whole dataset (the last batch may be smaller).
        batch_size: images per batch.
        seed: seed of the selection and order of the images.
        workers: worker processes for decoding.
        size_keys: the names the user sets ``num_batches`` and ``batch_size`` by (config keys or flags), for
            the error message.

    Returns:
        ``num_batches`` pairs ``(images, labels)``: (batch_size, 3, S, S) float32 and (batch_size,) int64.

    Raises:
        NasvitError: the dataset holds fewer than ``num_batches * batch_size`` images.
    """
    if batch_size < 1 or (num_batches is not None and num_batches < 1):
        raise NasvitError(f"fixed_batches needs num_batches >= 1 and batch_size >= 1, got {num_batches}, {batch_size}")
    wanted = len(dataset) if num_batches is None else num_batches * batch_size
    if wanted > len(dataset):
        raise NasvitError(
            f"{num_batches} batches of {batch_size} need {wanted} images but the dataset holds {len(dataset)}; "
            f"set {size_keys[0]} to at most {len(dataset) // batch_size} or lower {size_keys[1]}"
        )
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:wanted]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, num_workers=workers)
    return [(images, labels) for images, labels in loader]


def _rank_and_world() -> tuple[int, int]:
    """``(rank, world size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1
