"""Targets and losses of the largest subnet."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def smoothed_one_hot(labels: Tensor, num_classes: int, smoothing: float) -> Tensor:
    """(B,) class indices -> (B, num_classes) targets with ``smoothing`` spread uniformly over all classes."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return targets.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy of (B, K) logits against (B, K) probability targets, batch mean, computed in float32."""
    return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
