"""Measured latency: build the static subnet in its inference form, warm up, report the median of timed runs.

Latency is always of :func:`~supernet.optimize_for_inference`'s form of a model (BatchNorm folded,
channels-last), the form a deployment runs; the exported ``model.safetensors`` keeps the trainable form.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from search_space import SubnetConfig
from supernet import NASViT, optimize_for_inference


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured.

    Attributes:
        batch_size: images per forward pass.
        threads: CPU threads (None: leave torch's setting).
        dtype: ``float32`` or ``bfloat16``.
        warmup: untimed runs first.
        repeats: timed runs; the median is reported.
        device: ``cpu`` or ``cuda``.
    """

    batch_size: int = 1
    threads: int | None = None
    dtype: str = "float32"
    warmup: int = 5
    repeats: int = 20
    device: str = "cpu"


def measure_module_latency(module: nn.Module, input_shape: tuple[int, ...], settings: LatencySettings) -> float:
    """Median milliseconds of ``module(x)`` for a random contiguous ``x`` of ``input_shape``, after
    ``settings.warmup`` runs."""
    return measure_modules_interleaved([module], [input_shape], settings)[0]


def measure_model_latency(model: nn.Module, resolution: int, settings: LatencySettings) -> float:
    """Median milliseconds of one forward pass of ``model`` on (batch, 3, resolution, resolution) inputs."""
    return measure_module_latency(model, (settings.batch_size, 3, resolution, resolution), settings)


def inference_model(cfg: SubnetConfig) -> nn.Module:
    """The inference form of ``cfg``'s static model, randomly initialised (weights do not matter for timing)."""
    return optimize_for_inference(NASViT(cfg))


def measure_latency(cfg: SubnetConfig, settings: LatencySettings) -> float:
    """Median milliseconds of the inference form of ``cfg``'s static model."""
    return measure_model_latency(inference_model(cfg), cfg.resolution, settings)


def measure_models_interleaved(models: list[nn.Module], resolution: int, settings: LatencySettings) -> list[float]:
    """Median milliseconds of each model on (batch, 3, resolution, resolution) inputs, timed in interleaved
    rounds (:func:`measure_modules_interleaved`)."""
    shape = (settings.batch_size, 3, resolution, resolution)
    return measure_modules_interleaved(models, [shape] * len(models), settings)


@torch.inference_mode()
def measure_modules_interleaved(
    modules: list[nn.Module],
    input_shapes: list[tuple[int, ...]],
    settings: LatencySettings,
    memory_formats: list[torch.memory_format] | None = None,
) -> list[float]:
    """Median milliseconds of each ``modules[i](x)`` for a random ``x`` of ``input_shapes[i]`` (stored in
    ``memory_formats[i]``, default contiguous), timed in rounds that visit every module in turn.

    Spreading each module's ``settings.repeats`` runs over rounds (of about 5 runs each) makes slow drift of a
    shared machine hit all modules alike, so their ranking holds (run to run, one sequential pass per module
    ranks worse).
    """
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    dtype, device = getattr(torch, settings.dtype), torch.device(settings.device)
    formats = memory_formats or [torch.contiguous_format] * len(modules)
    modules = [m.to(device=device, dtype=dtype).eval() for m in modules]
    inputs = [
        torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=layout)
        for shape, layout in zip(input_shapes, formats, strict=True)
    ]
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for module, x in zip(modules, inputs):
        for _ in range(settings.warmup):
            module(x)
    rounds = max(1, settings.repeats // 5)
    per_round = -(-settings.repeats // rounds)
    times: list[list[float]] = [[] for _ in modules]
    for _ in range(rounds):
        for module, x, record in zip(modules, inputs, times):
            for _ in range(per_round):
                synchronize()
                start = time.perf_counter()
                module(x)
                synchronize()
                record.append(time.perf_counter() - start)
    return [1e3 * statistics.median(record) for record in times]
