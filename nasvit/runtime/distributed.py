"""Process groups for ``torchrun`` (NCCL on GPUs, gloo on CPU, multi-node through its rendezvous).

Supernet steps reduce two gradient sets (the largest subnet's and the others'), so gradients are averaged
explicitly with one coalesced all-reduce per set, instead of DistributedDataParallel's per-backward hooks.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """Where this process runs: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init(device: str = "auto") -> Context:
    """Join the process group that ``torchrun`` describes in the environment (if any) and pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        from nasvit.errors import NasvitError

        raise NasvitError("device 'cuda' was asked for but no GPU is visible; use device=cpu or device=auto")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return Context(rank, world_size, torch.device("cuda", local_rank))
    return Context(rank, world_size, torch.device("cpu"))


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(tensors: list[Tensor | None]) -> list[Tensor | None]:
    """Average tensors over all processes with one all-reduce per dtype; None entries stay None.

    Every process must pass the same pattern of None entries (they run the same subnets).
    """
    present = [t for t in tensors if t is not None]
    if not present or not dist.is_initialized():
        return tensors
    world = dist.get_world_size()
    reduced: dict[int, Tensor] = {}
    by_dtype: dict[torch.dtype, list[int]] = {}
    for index, tensor in enumerate(tensors):
        if tensor is not None:
            by_dtype.setdefault(tensor.dtype, []).append(index)
    for indices in by_dtype.values():
        flat = _flatten([tensors[i] for i in indices])
        dist.all_reduce(flat)
        flat /= world
        for i, tensor in zip(indices, _unflatten(flat, [tensors[i] for i in indices])):
            reduced[i] = tensor
    return [reduced.get(i) for i in range(len(tensors))]


def average_gradients(module: nn.Module) -> None:
    """Replace each ``.grad`` of ``module``'s parameters by its mean over all processes (no-op on one)."""
    parameters = [p for p in module.parameters() if p.grad is not None]
    for parameter, grad in zip(parameters, all_reduce_mean([p.grad for p in parameters])):
        parameter.grad = grad


def true_everywhere(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every process, with one all-reduce (``flag`` itself on one process)."""
    if not dist.is_initialized():
        return flag
    failures = all_reduce_sum(torch.tensor([0.0 if flag else 1.0], device=device))
    return bool(failures.item() == 0.0)


def all_reduce_sum(values: Tensor) -> Tensor:
    """Sum a tensor over all processes (identity on one)."""
    if dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
    return values


@torch.no_grad()
def broadcast_module(module: nn.Module, buffers_only: bool = False) -> None:
    """Copy rank 0's floating-point parameters (unless ``buffers_only``) and buffers to every process in one
    collective, as DistributedDataParallel does with BatchNorm statistics."""
    if not dist.is_initialized():
        return
    tensors = [] if buffers_only else list(module.parameters())
    tensors = [t for t in tensors + list(module.buffers()) if t.dtype.is_floating_point]
    flat = _flatten([t.data for t in tensors])
    dist.broadcast(flat, src=0)
    for tensor, value in zip(tensors, _unflatten(flat, [t.data for t in tensors])):
        tensor.data.copy_(value)


def _flatten(tensors: list[Tensor]) -> Tensor:
    """Concatenate tensors of one dtype into one 1-D tensor, shape (sum of numels,), for a single collective."""
    return torch.cat([t.reshape(-1) for t in tensors])


def _unflatten(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    """Split a tensor made by `_flatten` back into views shaped like `like`."""
    pieces = torch.split(flat, [t.numel() for t in like])
    return [piece.view_as(t) for piece, t in zip(pieces, like, strict=True)]
