"""Measured latency: build the static subnet in its inference form, warm up, time repeated runs, and report the
median with its spread (:class:`LatencyStats`).

Latency is always of :func:`~supernet.optimize_for_inference`'s form of a model (BatchNorm folded,
channels-last), the form a deployment runs; the exported ``model.safetensors`` keeps the trainable form. It is run
in the settings' runtime: PyTorch itself, or the form's ONNX graph in onnxruntime (:mod:`nasvit.latency.onnx_runtime`,
for a deployment that ships ``model.onnx``). A
measurement whose runs spread widely, or one taken while the machine is busy, is logged as a warning: on a
shared CPU a second process can make a model read several times slower.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from nasvit.latency.onnx_runtime import module_to_onnx, onnx_runner, onnxruntime_version
from nasvit.latency.settings import LatencySettings
from search_space import SubnetConfig
from supernet import NASViT, optimize_for_inference

logger = logging.getLogger(__name__)
WIDE_SPREAD = 0.5  # (p90 - p10) / median above which a measurement is flagged as noisy (sub-ms runs jitter 30-40%)


@dataclass(frozen=True)
class LatencyStats:
    """Milliseconds of the timed runs of one model: their median and 10th / 90th percentiles.

    Attributes:
        median_ms: the median run, the figure a latency is quoted as.
        p10_ms: the 10th percentile (a fast run).
        p90_ms: the 90th percentile (a slow run).
        runs: how many timed runs.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: list[float]) -> LatencyStats:
        """Statistics of timed runs given in seconds."""
        ms = sorted(1e3 * s for s in seconds)
        deciles = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else [ms[0]] * 9
        return cls(statistics.median(ms), deciles[0], deciles[-1], len(ms))

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: 0 for identical runs; above :data:`WIDE_SPREAD` the figure is noisy."""
        return (self.p90_ms - self.p10_ms) / self.median_ms if self.median_ms > 0 else 0.0

    def describe(self) -> str:
        """``'5.41 ms (p10 5.30, p90 5.62, 20 runs)'``."""
        return f"{self.median_ms:.2f} ms (p10 {self.p10_ms:.2f}, p90 {self.p90_ms:.2f}, {self.runs} runs)"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def busy_machine_warning(settings: LatencySettings) -> str | None:
    """A warning when other processes are running right now on more cores than timing leaves free, so timings would
    read slow; None on a quiet machine or where that cannot be read.

    On Linux it counts the runnable tasks of ``/proc/loadavg`` (an instant count, less this process), not the load
    average, which lags by a minute and would blame the machine for this process's own work just before.
    """
    busy = _other_runnable_tasks()
    if busy is None:
        return None
    cores = os.cpu_count() or 1
    threads = settings.threads or torch.get_num_threads()
    if busy + threads <= cores:
        return None
    return (
        f"the machine is busy ({busy} other runnable tasks on {cores} cores, timing with {threads} threads): latency "
        "will read slow and noisy; measure on a quiet machine for figures to compare"
    )


def _other_runnable_tasks() -> int | None:
    """Runnable tasks other than this one, from ``/proc/loadavg`` ("1.48 1.60 2.79 2/78 3414"); None elsewhere."""
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    return max(running - 1, 0)


def warn_if_noisy(stats: list[LatencyStats], what: str = "model") -> None:
    """Log a warning naming the models whose runs spread more than :data:`WIDE_SPREAD` of their median."""
    noisy = [(index, s) for index, s in enumerate(stats) if s.spread > WIDE_SPREAD]
    if noisy:
        worst_index, worst = max(noisy, key=lambda pair: pair[1].spread)
        logger.warning(
            "%d of %d %s timings spread more than %.0f%% of their median (worst: %s #%d, %s); the machine is "
            "probably busy, or use more --repeats",
            len(noisy),
            len(stats),
            what,
            100 * WIDE_SPREAD,
            what,
            worst_index,
            worst.describe(),
        )


def measure_module_latency(module: nn.Module, input_shape: tuple[int, ...], settings: LatencySettings) -> LatencyStats:
    """Timings of ``module(x)`` for a random contiguous ``x`` of ``input_shape``, after ``settings.warmup`` runs."""
    return measure_modules_interleaved([module], [input_shape], settings)[0]


def measure_model_latency(model: nn.Module, resolution: int, settings: LatencySettings) -> LatencyStats:
    """Timings of one forward pass of ``model`` on (batch, 3, resolution, resolution) inputs."""
    return measure_module_latency(model, (settings.batch_size, 3, resolution, resolution), settings)


def runtime_version(runtime: str) -> str:
    """``'torch 2.5.1'`` or ``'onnxruntime 1.20.1'``: the runtime and version a latency figure was measured in."""
    return f"torch {torch.__version__}" if runtime == "torch" else f"onnxruntime {onnxruntime_version()}"


def inference_model(cfg: SubnetConfig) -> nn.Module:
    """The inference form of ``cfg``'s static model, randomly initialised (weights do not matter for timing)."""
    return optimize_for_inference(NASViT(cfg))


def measure_latency(cfg: SubnetConfig, settings: LatencySettings) -> LatencyStats:
    """Timings of the inference form of ``cfg``'s static model."""
    return measure_model_latency(inference_model(cfg), cfg.resolution, settings)


def measure_models_interleaved(
    models: list[nn.Module], resolution: int, settings: LatencySettings
) -> list[LatencyStats]:
    """Timings of each model on (batch, 3, resolution, resolution) inputs, in interleaved rounds
    (:func:`measure_modules_interleaved`)."""
    shape = (settings.batch_size, 3, resolution, resolution)
    return measure_modules_interleaved(models, [shape] * len(models), settings)


@torch.inference_mode()
def measure_modules_interleaved(
    modules: list[nn.Module],
    input_shapes: list[tuple[int, ...]],
    settings: LatencySettings,
    memory_formats: list[torch.memory_format] | None = None,
) -> list[LatencyStats]:
    """Timings of each ``modules[i](x)`` for a random ``x`` of ``input_shapes[i]`` (stored in
    ``memory_formats[i]``, default contiguous), timed in rounds that visit every module in turn, in
    ``settings.runtime``: the module itself, or (``onnxruntime``) its ONNX graph in an onnxruntime session, where
    the memory formats do not apply.

    Spreading each module's ``settings.repeats`` runs over rounds (of about 5 runs each) makes slow drift of a
    shared machine hit all modules alike, so their ranking holds (run to run, one sequential pass per module
    ranks worse).
    """
    if settings.runtime == "onnxruntime":
        graphs = [module_to_onnx(module, shape) for module, shape in zip(modules, input_shapes, strict=True)]
        return measure_onnx_graphs(graphs, input_shapes, settings)
    dtype, device = getattr(torch, settings.dtype), torch.device(settings.device)
    formats = memory_formats or [torch.contiguous_format] * len(modules)
    modules = [m.to(device=device, dtype=dtype).eval() for m in modules]
    inputs = [
        torch.randn(shape, device=device, dtype=dtype).contiguous(memory_format=layout)
        for shape, layout in zip(input_shapes, formats, strict=True)
    ]
    return measure_callables_interleaved(modules, inputs, settings)


def measure_onnx_graphs(
    payloads: list[bytes], input_shapes: list[tuple[int, ...]], settings: LatencySettings
) -> list[LatencyStats]:
    """Timings of each ONNX graph ``payloads[i]`` (an export's ``model.onnx``) in onnxruntime on a random float32
    input of ``input_shapes[i]``, in interleaved rounds as :func:`measure_modules_interleaved` times modules."""
    runners = [onnx_runner(payload, settings.threads) for payload in payloads]
    return measure_callables_interleaved(runners, [torch.randn(shape) for shape in input_shapes], settings)


@torch.inference_mode()
def measure_callables_interleaved(
    callables: list[Callable[[torch.Tensor], object]], inputs: list[torch.Tensor], settings: LatencySettings
) -> list[LatencyStats]:
    """Timings of each ``callables[i](inputs[i])`` (a module, or an :func:`~nasvit.latency.onnx_runtime.onnx_runner`:
    both runtimes can be timed in one interleaved measurement), with torch on ``settings.threads`` threads."""
    with torch_threads(settings.threads):
        return [LatencyStats.of(record) for record in _timed_runs(callables, inputs, settings)]


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with torch on ``threads`` CPU threads (None: unchanged), then restore the caller's count, so
    timing at one thread does not slow down what runs after it."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _timed_runs(
    modules: list[Callable[[torch.Tensor], object]], inputs: list[torch.Tensor], settings: LatencySettings
) -> list[list[float]]:
    """Seconds of each module's (or runner's) timed runs, after its warm-up, in rounds that visit every one in
    turn."""
    synchronize = torch.cuda.synchronize if inputs and inputs[0].device.type == "cuda" else (lambda: None)
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
    return times
