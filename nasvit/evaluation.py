"""Accuracy of one subnet of a supernet: BN recalibration, then top-1/top-5 over batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

from nasvit.runtime.distributed import all_reduce_sum
from search_space import SubnetConfig
from supernet import Supernet, recalibrate_bn


def select_and_recalibrate(net: Supernet, cfg: SubnetConfig, calibration: Sequence[tuple[Tensor, Tensor]]) -> None:
    """Select ``cfg`` and re-estimate its BN statistics on the ``calibration`` batches."""
    net.set_active_subnet(cfg)
    recalibrate_bn(net, calibration)


@torch.no_grad()
def accuracy(
    net: torch.nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    autocast: Callable[[], object] = nullcontext,
    reduce: bool = False,
) -> dict[str, float]:
    """Top-1/top-5 (percent) of ``net`` in eval mode over (images (B, 3, H, W), labels (B,)) batches.

    With ``reduce`` the counts are summed over the processes of a distributed run (each passes its shard).

    Returns:
        ``{"top1": percent, "top5": percent, "images": count}``.
    """
    net.eval()
    device = next(net.parameters()).device
    counts = torch.zeros(3, dtype=torch.float64, device=device)
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = net(images)
        counts += topk_correct(logits, labels)
    top1, top5, images = (all_reduce_sum(counts) if reduce else counts).tolist()
    return {"top1": 100.0 * top1 / max(images, 1), "top5": 100.0 * top5 / max(images, 1), "images": int(images)}


def evaluate_subnet(
    net: Supernet,
    cfg: SubnetConfig,
    calibration: Sequence[tuple[Tensor, Tensor]],
    batches: Iterable[tuple[Tensor, Tensor]],
    autocast: Callable[[], object] = nullcontext,
    reduce: bool = True,
) -> dict[str, float]:
    """:func:`select_and_recalibrate` then :func:`accuracy`; the supernet is left in eval mode with ``cfg`` active."""
    select_and_recalibrate(net, cfg, calibration)
    return accuracy(net, batches, autocast, reduce)


def topk_correct(logits: Tensor, labels: Tensor) -> Tensor:
    """(top-1 correct, top-5 correct, count) of (B, K) logits against (B,) labels, as a float64 tensor."""
    k = min(5, logits.shape[-1])
    hits = logits.topk(k, dim=-1).indices.eq(labels.view(-1, 1))
    count = torch.tensor(labels.shape[0], device=labels.device)
    return torch.stack([hits[:, 0].sum(), hits.any(-1).sum(), count]).double()
