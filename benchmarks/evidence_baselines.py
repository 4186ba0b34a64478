"""Hand-designed baselines of the evidence run: timm models of about the found subnets' CPU latency, trained from
scratch with the supernet's recipe (data, augmentation, optimiser, schedule) through the same training engine.

Latency: batch 1 at the data's resolution, every model traced and frozen by TorchScript (which folds BatchNorm into
the convolutions on both sides), timed in interleaved rounds on one thread.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import timm
import torch
from evidence_plan import TIMM_CANDIDATES, TRAIN_CONFIG, Plan
from torch import nn

from nasvit.config.loading import load_config
from nasvit.config.train import EmaConfig, EvalConfig, OptimConfig, RunSettings, TrainConfig
from nasvit.data import DataConfig
from nasvit.evaluation import accuracy
from nasvit.export.directory import load_model
from nasvit.latency.measure import measure_callables_interleaved
from nasvit.latency.settings import LatencySettings
from nasvit.recipes.engine import TrainingEngine
from nasvit.runtime import checkpoint
from supernet.training.sandwich import StepResult


@dataclass(frozen=True)
class TimmRunConfig(RunSettings):
    """A timm model trained from scratch with a supernet training's data, optimiser, EMA and evaluation settings."""

    model: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


class TimmRecipe(TrainingEngine):
    """``timm.create_model(config.model, num_classes=...)`` trained on the targets alone, evaluated by top-1."""

    kind = "timm-baseline"
    resume_keys = ("model", "optim", "data.batch_size", "data.dataset", "data.image_size", "seed")
    config: TimmRunConfig

    def _setup_model(self) -> nn.Module:
        return timm.create_model(self.config.model, pretrained=False, num_classes=self.data.num_classes)

    def _setup_evaluation(self) -> None:
        self.val_loader = self._validation_loader()

    def _compute_gradients(self, batches: list, epoch: int) -> StepResult:
        return self._label_loss_gradients(batches, "loss")

    def _evaluate_model(self) -> dict[str, float]:
        result = accuracy(self.net, self.val_loader, self._autocast, reduce=True)
        return {"top1": result["top1"], "top5": result["top5"]}

    def _describe(self) -> str:
        return f"timm {self.config.model} from scratch"


def train_timm(plan: Plan, data: Path, out: Path, model: str) -> dict:
    """Train ``model`` from scratch with ``TRAIN_CONFIG``'s recipe at the plan's sizes (seed 0); top-1 and wall."""
    train = load_config(TrainConfig, TRAIN_CONFIG, plan.train_overrides(data, 0))
    settings = {f.name: getattr(train, f.name) for f in dataclasses.fields(RunSettings)}
    config = TimmRunConfig(**settings, model=model, data=train.data, optim=train.optim, ema=train.ema, eval=train.eval)
    run_dir = out / "timm" / model
    started = time.perf_counter()
    summary = TimmRecipe(config, run_dir, resume="auto" if checkpoint.latest(run_dir) else None).run()
    return {"top1": summary["top1"], "wall_seconds": time.perf_counter() - started, "steps": summary["steps"]}


def frozen(model: nn.Module, resolution: int) -> torch.jit.ScriptModule:
    """``model`` traced on one (1, 3, R, R) image and frozen (BatchNorm folded), in eval mode."""
    with torch.no_grad():
        return torch.jit.freeze(torch.jit.trace(model.eval(), torch.randn(1, 3, resolution, resolution)))


def latencies(plan: Plan, exports: dict[str, str], resolution: int) -> dict[str, dict]:
    """Batch-1 latency (median ms with spread) of each export and each timm candidate, interleaved on one thread."""
    models = {name: load_model(path) for name, path in exports.items()}
    models.update({name: timm.create_model(name, pretrained=False, num_classes=10) for name in TIMM_CANDIDATES})
    settings = LatencySettings(batch_size=1, threads=1, repeats=plan.latency_repeats, warmup=3)
    callables = [frozen(model, resolution) for model in models.values()]
    inputs = [torch.randn(1, 3, resolution, resolution) for _ in callables]
    stats = measure_callables_interleaved(callables, inputs, settings)
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    return {name: {**s.to_dict(), "params": params[name]} for name, s in zip(models, stats)}


def nearest_timm_models(measured: dict[str, dict], exports: list[str]) -> list[str]:
    """For each export, the timm candidate nearest to it in log latency, each candidate used once."""
    chosen: list[str] = []
    for name in exports:
        target = measured[name]["median_ms"]
        free = [c for c in TIMM_CANDIDATES if c not in chosen]
        chosen.append(min(free, key=lambda c: abs(math.log(measured[c]["median_ms"] / target))))
    return chosen
