"""Timing single blocks of a space: the module a latency-table entry times, its input, and the timing itself."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from nasvit.latency.measure import (
    LatencySettings,
    LatencyStats,
    inference_model,
    measure_module_latency,
    measure_modules_interleaved,
)
from search_space import SearchSpace
from search_space.plan import FusedMBConvPlan, HeadPlan, MBConvPlan, PartPlan, StemPlan
from supernet import optimize_for_inference
from supernet.builders import build_block, build_head, build_stem
from supernet.init import init_weights
from supernet.ops import StaticOps


def block_module(space: SearchSpace, plan: PartPlan) -> nn.Module:
    """The inference form (:func:`~supernet.optimize_for_inference`) of :func:`static_block`, the module a
    table entry times."""
    return optimize_for_inference(static_block(space, plan))


def static_block(space: SearchSpace, plan: PartPlan) -> nn.Module:
    """The static (trainable-form) module of one block, initialised as :class:`~supernet.NASViT` initialises it."""
    if isinstance(plan, StemPlan):
        module = build_stem(StaticOps, space, plan)
    elif isinstance(plan, HeadPlan):
        module = build_head(StaticOps, space, plan)
    else:
        module = build_block(StaticOps, space, plan)
    init_weights(module)
    return module


def block_input_shape(plan: PartPlan, batch_size: int) -> tuple[int, int, int, int]:
    """Shape (B, C, H, W) of the input of ``plan``'s module."""
    if isinstance(plan, (StemPlan, MBConvPlan, FusedMBConvPlan)):
        return (batch_size, plan.in_channels, plan.in_size, plan.in_size)
    if isinstance(plan, HeadPlan):
        return (batch_size, plan.in_channels, plan.size, plan.size)
    return (batch_size, plan.channels, plan.size, plan.size)


def warm_up_process(space: SearchSpace, resolution: int, settings: LatencySettings) -> None:
    """Run the largest subnet a few times before timing blocks.

    A fresh process runs convolutions up to three times slower until a whole network has been through it
    (seen here: an MBConv block took 5.7 ms in a fresh process and 1.9 ms after one forward of the largest
    subnet, which is also what it takes inside the network), so blocks timed first would be overestimated.
    """
    model = inference_model(space.max_subnet().replace(resolution=resolution))
    measure_module_latency(
        model,
        (settings.batch_size, space.in_channels, resolution, resolution),
        dataclasses.replace(settings, warmup=3, repeats=3),
    )


def time_blocks(space: SearchSpace, plans: list[PartPlan], settings: LatencySettings) -> list[LatencyStats]:
    """Timings of each block of ``plans`` under ``settings``, in interleaved rounds
    (:func:`~nasvit.latency.measure_modules_interleaved`). Blocks after the stem get channels-last inputs, as
    they do inside an inference-form network."""
    shapes = [block_input_shape(plan, settings.batch_size) for plan in plans]
    layouts = [torch.contiguous_format if isinstance(p, StemPlan) else torch.channels_last for p in plans]
    return measure_modules_interleaved([block_module(space, plan) for plan in plans], shapes, settings, layouts)
