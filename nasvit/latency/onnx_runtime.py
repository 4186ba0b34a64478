"""Latency in onnxruntime: a model's ONNX graph timed in an onnxruntime session on the CPU, with the warm-up, rounds
and statistics of PyTorch's timings (:mod:`nasvit.latency.measure`), so the two runtimes' figures compare.

The session runs on onnxruntime's CPU provider with its default graph optimisations (which fold BatchNorm as
PyTorch's inference form does); ``settings.threads`` sets its intra-op threads (None: onnxruntime's default, every
core) with one inter-op thread.
"""

from __future__ import annotations

import torch

from nasvit.latency.measure import LatencyStats, _timed_runs
from nasvit.latency.settings import LatencySettings

RUNTIMES = ("torch", "onnxruntime")


def onnx_session(payload: bytes, threads: int | None):
    """An onnxruntime ``InferenceSession`` of the ONNX bytes ``payload`` on the CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def measure_onnx_latency(payload: bytes, input_shape: tuple[int, ...], settings: LatencySettings) -> LatencyStats:
    """Timings of the ONNX graph ``payload`` on a random float32 input of ``input_shape`` (B, 3, R, R)."""
    session = onnx_session(payload, settings.threads)
    name = session.get_inputs()[0].name

    def run(x: torch.Tensor) -> None:
        session.run(None, {name: x.numpy()})

    return LatencyStats.of(_timed_runs([run], [torch.randn(input_shape)], settings)[0])


def onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
