"""Scores subnets of a trained supernet for the evolutionary search: BN recalibration on fixed training
batches, then top-1 on the held-out search split, both held in memory (no image is decoded per candidate).

Under ``torchrun`` rank 0 runs the search and :class:`DistributedEvaluator` splits each batch of subnets over
all ranks; the other ranks :meth:`~DistributedEvaluator.serve` until rank 0 closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch.distributed as dist
from torch import Tensor

from nasvit.errors import NasvitError
from nasvit.evaluation import accuracy, select_and_recalibrate
from search_space import SearchSpace, SubnetConfig
from supernet import Supernet


class SupernetEvaluator:
    """``cfgs -> [{"top1": ..., "top5": ...}]`` in this process (the :class:`evolve.Evaluator` protocol).

    Args:
        net: the trained supernet, on its device.
        calibration: fixed (images, labels) batches for BN recalibration (un-augmented training images).
        batches: the held-out (images, labels) batches that accuracy is measured on.
        autocast: context for mixed precision.

    Attributes:
        seconds: time spent in BN recalibration (``calibration``) and in measuring accuracy (``accuracy``).
    """

    def __init__(
        self,
        net: Supernet,
        calibration: Sequence[tuple[Tensor, Tensor]],
        batches: Sequence[tuple[Tensor, Tensor]],
        autocast: Callable[[], object] = nullcontext,
    ):
        self.net, self.calibration, self.batches, self.autocast = net, calibration, batches, autocast
        self.seconds = {"calibration": 0.0, "accuracy": 0.0}

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        results = []
        for cfg in cfgs:
            start = time.perf_counter()
            select_and_recalibrate(self.net, cfg, self.calibration)
            middle = time.perf_counter()
            result = accuracy(self.net, self.batches, self.autocast)
            self.seconds["calibration"] += middle - start
            self.seconds["accuracy"] += time.perf_counter() - middle
            results.append({"top1": result["top1"], "top5": result["top5"]})
        return results


class DistributedEvaluator:
    """Splits every evaluator call over the ranks of the process group and gathers the results on rank 0.

    Rank 0 calls it like any evaluator; every other rank calls :meth:`serve`, which evaluates its share of
    each call until rank 0 calls :meth:`close`.
    """

    def __init__(self, local: SupernetEvaluator, space: SearchSpace):
        self.local, self.space = local, space
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.failed = False

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        names = [str(cfg) for cfg in cfgs]
        dist.broadcast_object_list([names], src=0)
        return self._evaluate_share(names)

    def serve(self) -> None:
        """Evaluate shares of rank 0's calls until it closes (ranks other than 0)."""
        while True:
            message = [None]
            dist.broadcast_object_list(message, src=0)
            if message[0] is None:
                return
            self._evaluate_share(message[0])

    def close(self) -> None:
        """Release the serving ranks (rank 0); after a failed call they have already stopped."""
        if not self.failed:
            dist.broadcast_object_list([None], src=0)

    def _evaluate_share(self, names: list[str]) -> list[dict[str, float]]:
        """Evaluate this rank's share and gather all shares. A failure on any rank is gathered like a result,
        so every rank completes the same collectives and then raises the same error."""
        try:
            results: object = self.local(
                [SubnetConfig.from_string(n, self.space) for n in names[self.rank :: self.world]]
            )
        except Exception as error:
            results = f"rank {self.rank}: {type(error).__name__}: {error}"
        gathered: list = [None] * self.world
        dist.all_gather_object(gathered, results)
        errors = [part for part in gathered if isinstance(part, str)]
        if errors:
            self.failed = True
            raise NasvitError(f"distributed evaluation failed: {'; '.join(errors)}")
        merged = [None] * len(names)
        for rank, part in enumerate(gathered):
            merged[rank :: self.world] = part
        return merged
