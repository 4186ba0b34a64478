"""How latency is measured: :class:`LatencySettings` (plain data, so the CLI can show its defaults without torch)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LatencySettings:
    """How latency is measured.

    Attributes:
        batch_size: images per forward pass.
        threads: CPU threads (None: leave torch's setting).
        dtype: ``float32`` or ``bfloat16``.
        warmup: untimed runs first.
        repeats: timed runs; their median and 10th / 90th percentiles are reported.
        device: ``cpu`` or ``cuda``.
    """

    batch_size: int = 1
    threads: int | None = None
    dtype: str = "float32"
    warmup: int = 5
    repeats: int = 20
    device: str = "cpu"
