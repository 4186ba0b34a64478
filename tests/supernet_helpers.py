"""Helpers for tests: randomised weights, so residual branches are not silent at init, and the overrides of a brief
training run, a quick search and quick latency timing."""

from __future__ import annotations

import torch
from torch import nn

from nasvit.latency.settings import LatencySettings

# two sandwich steps of one random subnet at batch 128: enough for a checkpoint that exports and evaluates
BRIEF_TRAINING = ("data.batch_size=128", "sandwich.num_random=1", "max_steps=2", "device=cpu", "eval.bn_batches=1")
# latency timing for tests: 1 run per block made 1 table build in 10 refuse its calibration
FAST_TIMING = LatencySettings(threads=1, warmup=1, repeats=3)
# a search of a few candidates: one generation of 4
SEARCH_FAST = ["evolve.population=4", "evolve.generations=1", "evolve.parents=2", "eval.bn_batches=1", "device=cpu"]


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0, std: float = 0.1) -> nn.Module:
    """Give every parameter, scale and BN statistic a random value (default init zeroes residual branches)."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in model.parameters():
        parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator) * std)
        elif name.endswith("running_var"):
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return model


def images(resolution: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed))
