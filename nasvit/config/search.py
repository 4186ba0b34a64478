"""Schema of ``nasvit search`` configs (``configs/search/*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from evolve import EvolveConfig
from nasvit.data import DataConfig
from nasvit.errors import raise_problems


@dataclass(frozen=True)
class CandidateEvalConfig:
    """How each candidate is scored.

    Attributes:
        bn_batches: un-augmented training batches for BN recalibration (fixed, held in memory).
        batch_size: batch size of recalibration and of the held-out split.
        split: the split candidates are ranked on: ``search`` (held out of training) or ``val``.
        use_ema: use the checkpoint's EMA weights when it has them.
    """

    bn_batches: int = 4
    batch_size: int = 128
    split: Literal["search", "val"] = "search"
    use_ema: bool = True


@dataclass(frozen=True)
class LatencyConfig:
    """Where ``latency_ms`` budgets and objectives get their numbers.

    Attributes:
        source: ``lut`` (a per-block lookup table built by ``nasvit latency build-lut``) or ``measure``
            (time each candidate's static model here).
        lut: path of the lookup table (``source: lut``).
        runtime: the runtime latency budgets mean: ``torch`` (PyTorch's inference form) or ``onnxruntime`` (the
            model's ONNX graph); a table timed in another runtime is refused, and the check after the search times
            in it.
        batch_size, threads, repeats: measurement settings (``source: measure``).
        verify: after the search, time each latency budget's winner and runners-up on this device and keep the
            most accurate one whose measured median is within the budget (or report the budget as not met).
        runners_up: candidates timed after each winner when verifying.
        correction_rounds: when none of the timed candidates of a budget measures within it, up to this many more
            rounds, each searching again under the budget corrected by the measured/predicted ratio and timing
            the new candidates, before the budget is reported as not met.
    """

    source: Literal["lut", "measure"] = "lut"
    lut: str | None = None
    runtime: Literal["torch", "onnxruntime"] = "torch"
    batch_size: int = 1
    threads: int | None = None
    repeats: int = 20
    verify: bool = True
    runners_up: int = 4
    correction_rounds: int = 2

    def __post_init__(self) -> None:
        counts = {"runners_up": self.runners_up, "correction_rounds": self.correction_rounds}
        raise_problems([f"{name} must be 0 or more, got {value}" for name, value in counts.items() if value < 0])


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nasvit search`` needs besides the checkpoint.

    Attributes:
        space: expected search space (None: the checkpoint's); a checkpoint of another space is refused.
        device, precision: where and how candidates are evaluated.
        data: the dataset (None: the one the checkpoint was trained on).
        eval: candidate scoring.
        latency: latency source for ``latency_ms`` budgets.
        evolve: the evolutionary search itself (budgets, algorithm, population, generations, ...).
    """

    space: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16"] = "fp32"
    data: DataConfig | None = None
    eval: CandidateEvalConfig = field(default_factory=CandidateEvalConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    evolve: EvolveConfig = field(default_factory=EvolveConfig)
