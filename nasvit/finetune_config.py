"""Schema of ``nasvit finetune`` configs (``configs/finetune/*.yaml``); every field documented with its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nasvit.data import DataConfig
from nasvit.errors import NasvitError
from nasvit.train_config import EmaConfig, EvalConfig, OptimConfig


@dataclass(frozen=True)
class DistillConfig:
    """Optional distillation: the teacher's softmax blended into the targets.

    Attributes:
        teacher: an export directory, or a supernet checkpoint (``.pt``) whose largest subnet teaches (its BN is
            recalibrated on this run's training data); it must predict the data's classes.
        weight: share of the teacher in the targets (1: teacher only, 0: labels only).
    """

    teacher: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class ExportSettings:
    """The verified export written at the end (into ``<run>/export``).

    Attributes:
        onnx: also write ``model.onnx`` (verified in onnxruntime).
        torchscript: also write ``model.ts`` (the inference form).
    """

    onnx: bool = False
    torchscript: bool = True


@dataclass(frozen=True)
class FinetuneConfig:
    """Everything ``nasvit finetune`` needs; written resolved into the run directory and every checkpoint.

    Attributes:
        model: the export directory to start from (``nasvit export --out``).
        pretrained: start from its weights (False: the same subnet from random initialisation, for comparison).
        seed: seeds data order, augmentation and the new classifier's initialisation.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``fp32``, ``bf16`` (autocast, CPU or GPU) or ``fp16`` (autocast with a grad scaler, GPU).
        channels_last: use the channels-last memory format.
        max_steps: stop after this many optimiser steps (None: run the schedule); the schedule is unchanged.
        max_nan_skips: stop with an error after this many consecutive steps with a non-finite loss.
        log_every: steps between scalar logs.
        checkpoint_every_steps: also checkpoint every this many steps (None: at epoch ends only).
        layer_decay: layer-wise lr decay (timm ``layer_decay``: the head keeps the lr, each earlier group is
            scaled by this factor); None disables it.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth of the residual branches (largest at the last block).
        data: the new dataset; a class count other than the export's replaces the classifier.
        optim, ema, eval: as in ``nasvit train`` (``eval.bn_batches`` only sizes a supernet teacher's BN
            recalibration).
        distill: optional teacher.
        export: what the final export holds besides the weights.
    """

    model: str = ""
    pretrained: bool = True
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    max_steps: int | None = None
    max_nan_skips: int = 5
    log_every: int = 10
    checkpoint_every_steps: int | None = None
    layer_decay: float | None = None
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(lr=2e-3, weight_decay=0.05, epochs=10, warmup_epochs=1.0)
    )
    ema: EmaConfig = field(default_factory=lambda: EmaConfig(enabled=False))
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    export: ExportSettings = field(default_factory=ExportSettings)

    def __post_init__(self) -> None:
        problems = []
        if not self.model:
            problems.append("model: give the export directory to fine-tune (--model DIR or model=DIR)")
        if self.optim.accumulation < 1 or self.optim.epochs < 1:
            problems.append("optim: epochs and accumulation must be at least 1")
        if self.optim.lr <= 0:
            problems.append(f"optim.lr: {self.optim.lr} must be > 0")
        if self.max_nan_skips < 1 or self.log_every < 1 or self.eval.every_epochs < 1:
            problems.append("max_nan_skips, log_every and eval.every_epochs must be at least 1")
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            problems.append(f"layer_decay: {self.layer_decay} must be in (0, 1], or null to disable it")
        if not 0 <= self.drop_rate < 1 or not 0 <= self.drop_path_rate < 1:
            problems.append(
                f"drop_rate and drop_path_rate must be in [0, 1), got {self.drop_rate}, {self.drop_path_rate}"
            )
        if not 0 <= self.distill.weight <= 1:
            problems.append(f"distill.weight: {self.distill.weight} must be in [0, 1]")
        if not 0 <= self.ema.decay < 1:
            problems.append(f"ema.decay: {self.ema.decay} must be in [0, 1)")
        if problems:
            error = NasvitError("; ".join(problems))
            error.problems = problems
            raise error
