"""Re-estimate BatchNorm statistics for one subnet (as NASViT and BigNAS do before evaluating a subnet)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor | tuple | list]) -> int:
    """Reset every BatchNorm's running statistics and re-estimate them as a cumulative average over ``batches``.

    The model runs in eval mode except its BatchNorm layers, so dropout stays off; the input is resized to
    the model's (active) resolution by the model itself. Modes and momenta are restored afterwards.

    Args:
        model: a :class:`~supernet.Supernet` with the subnet selected, or a static model.
        batches: image tensors (B, 3, H, W), or (images, labels) pairs.

    Returns:
        The number of batches used.

    Raises:
        ValueError: ``batches`` was empty (the statistics would be left reset).
    """
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    modes = {m: m.training for m in model.modules()}
    momenta = [bn.momentum for bn in norms]
    device = next(model.parameters()).device
    count = 0
    try:
        model.eval()
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average
            bn.train()
        for batch in batches:
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(images.to(device, non_blocking=True))
            count += 1
    finally:
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum
        for module, mode in modes.items():
            module.training = mode
    if count == 0:
        raise ValueError("BN recalibration needs at least one batch; got none")
    return count


class BatchNormSnapshot:
    """The running means, variances and batch counts of every BatchNorm of a module, saved and put back (a skipped
    training step must leave no trace in the model)."""

    def __init__(self, module: nn.Module):
        names = ("running_mean", "running_var", "num_batches_tracked")
        self.buffers = [buffer for name, buffer in module.named_buffers() if name.endswith(names)]
        self.saved: list[Tensor] = []

    def save(self) -> None:
        """Copy the statistics as they are now."""
        self.saved = [buffer.clone() for buffer in self.buffers]

    def restore(self) -> None:
        """Put back the statistics :meth:`save` copied."""
        with torch.no_grad():
            for buffer, saved in zip(self.buffers, self.saved, strict=True):
                buffer.copy_(saved)
