"""Schema of ``nasvit train`` configs (``configs/train/*.yaml``); every field documented with its default."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from nasvit.data import DataConfig
from nasvit.errors import raise_problems


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear lr scaling, warm-up then cosine (timm scheduler), gradient clipping.

    Attributes:
        lr: learning rate per 512 images; the run uses ``lr * global_batch / 512``.
        weight_decay: AdamW weight decay (the paper uses 0).
        betas: AdamW betas.
        epochs: length of the schedule.
        warmup_epochs: linear warm-up from ``warmup_lr`` (may be fractional).
        warmup_lr: learning rate at step 0.
        min_lr: learning rate at the end of the cosine.
        clip_grad: max global gradient norm; None disables clipping.
        accumulation: micro-batches per optimiser step.
    """

    lr: float = 3e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 360
    warmup_epochs: float = 5.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    clip_grad: float | None = 1.0
    accumulation: int = 1


@dataclass(frozen=True)
class SandwichConfig:
    """Subnets per step and the in-place distillation loss.

    Attributes:
        num_random: random subnets per step besides the largest and the smallest.
        alpha_min, alpha_max: the adaptive alpha-divergence's alpha range.
        alpha_clamp: clamp of the importance ratio (p/q)^alpha.
    """

    num_random: int = 2
    alpha_min: float = -1.0
    alpha_max: float = 1.0
    alpha_clamp: float = 5.0


@dataclass(frozen=True)
class SamplingConfig:
    """Which subnets one training step trains.

    Attributes:
        rule: ``sandwich`` (NASViT): the largest, the smallest and ``sandwich.num_random`` random subnets, the
            others distilled from the largest, with gradient projection. ``spos`` (Single Path One-Shot, Guo et al.
            2019): one path per step on the targets alone, without distillation or projection (both need a largest
            subnet, so ``sandwich`` and ``projection`` are unused); one forward and backward pass a step.
        macs_bins: with ``spos``, 0 draws each path uniformly from the space; N > 0 splits ``macs_range`` into N
            equal bins, draws a bin uniformly and then a path inside it by rejection.
        macs_range: the binned MACs range ``[low, high]`` (default: the smallest to the largest subnet's MACs).
    """

    rule: Literal["sandwich", "spos"] = "sandwich"
    macs_bins: int = 0
    macs_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class ProgressiveConfig:
    """Progressive learning (EfficientNetV2): the run cut into stages of equal epochs, the sampled resolutions of
    every subnet slot (the largest included) capped per stage, regularisation growing with them.

    Attributes:
        stages: how many stages; 1 trains the whole space from the first epoch (no progression).
        min_resolution: the first stage's resolution cap as a share of the space's largest resolution; the caps
            rise linearly to the largest in the last stage, each rounded down to a resolution of the space (at least
            its smallest). EfficientNetV2 starts at about half the final image size.
        magnitude: RandAugment magnitude ``[first stage, last stage]`` (EfficientNetV2-S: ``[5, 15]`` of 30; here
            timm's scale, at most 10), replacing the m of ``data.auto_augment``, which must be a RandAugment
            string; None leaves it as it is.
        mixup: mixup alpha ``[first stage, last stage]`` (EfficientNetV2-M: ``[0, 0.2]``), replacing
            ``data.mixup`` (leave that at 0); None leaves it as it is.
    """

    stages: int = 1
    min_resolution: float = 0.5
    magnitude: tuple[float, float] | None = None
    mixup: tuple[float, float] | None = None


@dataclass(frozen=True)
class ProjectionConfig:
    """Gradient projection between the largest subnet and the others (NASViT) and the conflict meter.

    Attributes:
        enabled: project conflicting gradients; off sums them.
        mode: ``tensor`` (per parameter tensor) or ``global`` (one vector).
        start_epoch: before this epoch (counted from 0) gradients are simply summed.
        conflict_meter: measure the share of conflicting tensors every step.
        rule: ``paper``: where <g_s, g_sub> < 0, g_s is projected on the normal plane of g_sub, then the two are
            summed and ``optim.clip_grad`` clips the sum. ``reference``: what the reference code
            (facebookresearch/NASViT) does: ``optim.clip_grad`` clips the smaller subnets' gradient g_sub alone,
            before g_s is added; after ``start_epoch`` g_sub is scaled by 1 + clamp(-<g_sub, g_s> /
            (1e-6 + |g_sub|^2), 0, 2) (the paper's projection with a clamp); a tensor that only the largest
            subnet touched gets g_s twice; the vectors of one switchable scaling layer count as one tensor. It
            needs ``mode: tensor`` and a precision other than fp16.
    """

    enabled: bool = True
    mode: Literal["tensor", "global"] = "tensor"
    start_epoch: int = 0
    conflict_meter: bool = True
    rule: Literal["paper", "reference"] = "paper"


@dataclass(frozen=True)
class EmaConfig:
    """Exponential moving average of the supernet weights (timm ``ModelEmaV3``, with warm-up).

    Attributes:
        enabled: keep an EMA; evaluation and the final export use it.
        decay: EMA decay per optimiser step.
        warmup: raise the decay from 0 towards ``decay`` over the first steps (timm's warm-up); false uses
            ``decay`` from the first step, as the reference code's timm ``ModelEma`` does.
    """

    enabled: bool = True
    decay: float = 0.9998
    warmup: bool = True


@dataclass(frozen=True)
class TeacherModelConfig:
    """One more teacher of an ensemble.

    Attributes:
        model: a timm model name (built without hub weights).
        checkpoint: a local weights file for it.
    """

    model: str | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class TeacherConfig:
    """Optional external teacher whose soft labels replace the largest subnet's hard labels.

    The targets are softmax(logit_scale * logits) of the teacher, averaged over the teachers when ``extra`` names
    more (the reference code: two ResNeXt-101 teachers, logits times 5).

    Attributes:
        model: a timm model name (built without hub weights).
        checkpoint: a local weights file for it (required with ``model``).
        extra: further teachers (``model`` and ``checkpoint`` each) whose probabilities are averaged with the first's.
        logit_scale: factor on every teacher's logits before the softmax (above 1 sharpens the targets).
    """

    model: str | None = None
    checkpoint: str | None = None
    extra: tuple[TeacherModelConfig, ...] = ()
    logit_scale: float = 1.0


@dataclass(frozen=True)
class EvalConfig:
    """Per-epoch evaluation of the smallest and largest subnets after BN recalibration.

    Attributes:
        every_epochs: evaluate every this many epochs (and after the last).
        bn_batches: training batches (un-augmented) for BN recalibration.
        batch_size: batch size of recalibration and validation.
    """

    every_epochs: int = 1
    bn_batches: int = 8
    batch_size: int = 128


@dataclass(frozen=True)
class RunSettings:
    """How any training run (``nasvit train``, ``nasvit finetune``) runs, whatever it trains.

    Attributes:
        seed: seeds data order, augmentation, subnet sampling and initialisation.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        precision: ``fp32``, ``bf16`` (autocast, CPU or GPU) or ``fp16`` (autocast with a grad scaler, GPU).
        channels_last: use the channels-last memory format (helps convs on GPUs).
        max_steps: stop after this many optimiser steps (None: run the schedule); the schedule is unchanged.
        max_nan_skips: stop with an error after this many consecutive steps with a non-finite loss.
        log_every: steps between scalar logs.
        checkpoint_every_steps: also checkpoint every this many steps (None: at epoch ends only).
    """

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    channels_last: bool = False
    max_steps: int | None = None
    max_nan_skips: int = 5
    log_every: int = 10
    checkpoint_every_steps: int | None = None


@dataclass(frozen=True)
class TrainConfig(RunSettings):
    """Everything ``nasvit train`` needs; written resolved into the run directory and every checkpoint.

    Attributes:
        space: search space name or YAML path.
        init_from: a nasvit supernet checkpoint (of ``nasvit train`` or ``nasvit convert-reference``) whose weights
            start the run, with a fresh optimiser, schedule and EMA (a copy of those weights); its search space and
            class count must be this run's. Unlike ``--resume``, nothing else is taken from it.
        data, optim, sampling, progressive, sandwich, projection, ema, teacher, eval: the sections above; the run
            settings of :class:`RunSettings` come first.
    """

    space: str = "tiny"
    init_from: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    progressive: ProgressiveConfig = field(default_factory=ProgressiveConfig)
    sandwich: SandwichConfig = field(default_factory=SandwichConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        problems = training_problems(self)
        problems += _teacher_problems(self.teacher)
        projection = self.projection
        if projection.rule == "reference" and projection.mode != "tensor":
            problems.append("projection.rule: reference combines per tensor; set projection.mode=tensor")
        if projection.rule == "reference" and self.precision == "fp16":
            problems.append(
                "projection.rule: reference clips inside the step, which a grad scaler does not allow; "
                "use precision=bf16 or fp32"
            )
        problems += _sampling_problems(self.sampling)
        problems += _progressive_problems(self.progressive, self.sampling, self.data)
        sandwich = self.sandwich
        if sandwich.num_random < 0:
            problems.append(f"sandwich.num_random: {sandwich.num_random} must be >= 0")
        if not -1.0 <= sandwich.alpha_min <= sandwich.alpha_max <= 1.0 or sandwich.alpha_clamp <= 0:
            problems.append(
                f"sandwich: need -1 <= alpha_min <= alpha_max <= 1 and alpha_clamp > 0, got "
                f"{sandwich.alpha_min}, {sandwich.alpha_max}, {sandwich.alpha_clamp}"
            )
        raise_problems(problems)


def _sampling_problems(sampling: SamplingConfig) -> list[str]:
    problems = []
    if sampling.macs_bins < 0:
        problems.append(f"sampling.macs_bins: {sampling.macs_bins} must be >= 0 (0: no bins)")
    if (sampling.macs_bins or sampling.macs_range is not None) and sampling.rule != "spos":
        problems.append("sampling.macs_bins and macs_range apply to sampling.rule=spos; remove them or set the rule")
    if sampling.macs_range is not None and sampling.macs_bins == 0:
        problems.append("sampling.macs_range: give sampling.macs_bins too (the number of bins in the range)")
    if sampling.macs_range is not None and not 0 <= sampling.macs_range[0] < sampling.macs_range[1]:
        problems.append(f"sampling.macs_range: {list(sampling.macs_range)} must be [low, high] with 0 <= low < high")
    return problems


def _progressive_problems(progressive: ProgressiveConfig, sampling: SamplingConfig, data: DataConfig) -> list[str]:
    problems = []
    if progressive.stages < 1:
        problems.append(f"progressive.stages: {progressive.stages} must be >= 1 (1: no progression)")
    if not 0 < progressive.min_resolution <= 1:
        problems.append(f"progressive.min_resolution: {progressive.min_resolution} must be in (0, 1], e.g. 0.5")
    scheduled = progressive.magnitude is not None or progressive.mixup is not None
    if progressive.stages == 1 and scheduled:
        problems.append("progressive.magnitude and mixup change between stages; set progressive.stages >= 2")
    if progressive.stages > 1 and sampling.macs_bins:
        problems.append(
            "progressive caps the resolutions, which empties the upper sampling.macs_bins; use one or the other"
        )
    if progressive.magnitude is not None:
        if not all(0 <= value < 10 for value in progressive.magnitude):
            problems.append(f"progressive.magnitude: {list(progressive.magnitude)} must lie in [0, 10) (timm's scale)")
        if data.kind == "digits" or not (data.auto_augment or "").startswith("rand"):
            problems.append(
                f"progressive.magnitude schedules RandAugment, which data.dataset={data.dataset!r} with "
                f"data.auto_augment={data.auto_augment!r} does not use; remove it, or train an image folder with "
                "a 'rand-...' data.auto_augment"
            )
    if progressive.mixup is not None:
        if not all(value >= 0 for value in progressive.mixup):
            problems.append(f"progressive.mixup: {list(progressive.mixup)} must be >= 0")
        if data.mixup:
            problems.append(f"progressive.mixup replaces data.mixup={data.mixup}; set data.mixup=0")
    return problems


def _teacher_problems(teacher: TeacherConfig) -> list[str]:
    problems = []
    if (teacher.model is None) != (teacher.checkpoint is None):
        problems.append("teacher: give both teacher.model and teacher.checkpoint, or neither")
    if teacher.extra and teacher.model is None:
        problems.append("teacher.extra: name the first teacher in teacher.model and teacher.checkpoint first")
    for i, member in enumerate(teacher.extra):
        if member.model is None or member.checkpoint is None:
            problems.append(f"teacher.extra[{i}]: give both model and checkpoint")
    if not teacher.logit_scale > 0:
        problems.append(f"teacher.logit_scale: {teacher.logit_scale} must be > 0 (the reference code uses 5.0)")
    return problems


def training_problems(config: TrainConfig | Any) -> list[str]:
    """The problems of the settings every training config has (run settings, optim, ema, eval)."""
    problems = []
    optim = config.optim
    if optim.accumulation < 1 or optim.epochs < 1:
        problems.append("optim: epochs and accumulation must be at least 1")
    if optim.lr <= 0 or not all(0 <= beta < 1 for beta in optim.betas):
        problems.append(f"optim: lr must be > 0 and betas in [0, 1), got {optim.lr}, {list(optim.betas)}")
    if config.max_nan_skips < 1:
        problems.append(f"max_nan_skips: {config.max_nan_skips} must be >= 1")
    if config.log_every < 1 or config.eval.every_epochs < 1:
        problems.append("log_every and eval.every_epochs must be at least 1")
    if not 0 <= config.ema.decay < 1:
        problems.append(f"ema.decay: {config.ema.decay} must be in [0, 1)")
    return problems
