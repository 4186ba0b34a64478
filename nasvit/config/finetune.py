"""Schema of ``nasvit finetune`` configs (``configs/finetune/*.yaml``); every field documented with its default."""

from __future__ import annotations

from dataclasses import dataclass, field

from nasvit.config.train import EmaConfig, EvalConfig, OptimConfig, RunSettings, training_problems
from nasvit.data import DataConfig
from nasvit.errors import raise_problems


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
class FinetuneConfig(RunSettings):
    """Everything ``nasvit finetune`` needs (the run settings of ``RunSettings`` too); written resolved into the
    run directory and every checkpoint.

    Attributes:
        model: the export directory to start from (``nasvit export --out``).
        pretrained: start from its weights (False: the same subnet from random initialisation, for comparison).
        resolution: the input side to train at and export for, when not the export's own (None): the same subnet at
            that side (:mod:`supernet.resolution`: the sides it runs at; its relative-position tables resized). The
            data is then loaded at it: ``data.image_size`` must be the same (``--resolution`` sets both).
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
    resolution: int | None = None
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
        problems = training_problems(self)
        if not self.model:
            problems.append("model: give the export directory to fine-tune (--model DIR or model=DIR)")
        problems += self._resolution_problems()
        if self.layer_decay is not None and not 0 < self.layer_decay <= 1:
            problems.append(f"layer_decay: {self.layer_decay} must be in (0, 1], or null to disable it")
        if not 0 <= self.drop_rate < 1 or not 0 <= self.drop_path_rate < 1:
            problems.append(
                f"drop_rate and drop_path_rate must be in [0, 1), got {self.drop_rate}, {self.drop_path_rate}"
            )
        if not 0 <= self.distill.weight <= 1:
            problems.append(f"distill.weight: {self.distill.weight} must be in [0, 1]")
        raise_problems(problems)

    def _resolution_problems(self) -> list[str]:
        resolution, image_size = self.resolution, self.data.image_size
        if resolution is None:
            return []
        if resolution < 1:
            return [f"resolution: {resolution} is not a side in pixels; pass at least 1, or null for the export's own"]
        if image_size != resolution:
            return [
                f"resolution: {resolution} but data.image_size is {image_size}; a fine-tune at another resolution "
                f"loads its data at it: set data.image_size={resolution} too (nasvit finetune --resolution sets both)"
            ]
        return []
