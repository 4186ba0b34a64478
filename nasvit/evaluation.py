"""Accuracy of one subnet of a supernet: BN recalibration, then top-1/top-5 over fixed batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

from nasvit.distributed import all_reduce_sum
from search_space import SubnetConfig
from supernet import Supernet, recalibrate_bn


@torch.no_grad()
def evaluate_subnet(
    net: Supernet,
    cfg: SubnetConfig,
    calibration: Sequence[tuple[Tensor, Tensor]],
    batches: Sequence[tuple[Tensor, Tensor]],
    autocast: Callable[[], object] = nullcontext,
) -> dict[str, float]:
    """Select ``cfg``, re-estimate BN statistics on ``calibration``, and measure accuracy on ``batches``.

    In a distributed run each process passes its shard of ``batches`` (the same ``calibration`` everywhere);
    counts are summed over processes. The supernet is left in eval mode with ``cfg`` active.

    Returns:
        ``{"top1": percent, "top5": percent, "images": count}``.
    """
    net.set_active_subnet(cfg)
    recalibrate_bn(net, calibration)
    net.eval()
    device = next(net.parameters()).device
    counts = torch.zeros(3, dtype=torch.float64, device=device)
    for images, labels in batches:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with autocast():
            logits = net(images)
        counts += topk_correct(logits, labels)
    top1, top5, images = all_reduce_sum(counts).tolist()
    return {"top1": 100.0 * top1 / max(images, 1), "top5": 100.0 * top5 / max(images, 1), "images": int(images)}


def topk_correct(logits: Tensor, labels: Tensor) -> Tensor:
    """(top-1 correct, top-5 correct, count) of (B, K) logits against (B,) labels, as a float64 tensor."""
    k = min(5, logits.shape[-1])
    hits = logits.topk(k, dim=-1).indices.eq(labels.view(-1, 1))
    return torch.stack(
        [hits[:, 0].sum(), hits.any(-1).sum(), torch.tensor(labels.shape[0], device=labels.device)]
    ).double()
