"""How latency is measured: :class:`LatencySettings` (plain data, so the CLI can show its defaults without torch)."""

from __future__ import annotations

from dataclasses import dataclass

from nasvit.errors import NasvitError

RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured.

    Attributes:
        batch_size: images per forward pass.
        threads: CPU threads (None: torch's current setting, in either runtime).
        dtype: ``float32`` or ``bfloat16``.
        warmup: untimed runs first.
        repeats: timed runs; their median and 10th / 90th percentiles are reported.
        device: ``cpu`` or ``cuda``.
        runtime: ``torch`` (PyTorch's inference form of the model) or ``onnxruntime`` (the model's ONNX graph in an
            onnxruntime session on the CPU, float32 only).
    """

    batch_size: int = 1
    threads: int | None = None
    dtype: str = "float32"
    warmup: int = 5
    repeats: int = 20
    device: str = "cpu"
    runtime: str = "torch"

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise NasvitError(f"latency runtime {self.runtime!r} is not one of {list(RUNTIMES)}")
        if self.runtime == "onnxruntime" and (self.device, self.dtype) != ("cpu", "float32"):
            raise NasvitError(
                f"runtime onnxruntime times float32 on the CPU; drop device {self.device!r} and dtype {self.dtype!r} "
                "(or time in runtime torch)"
            )
