"""``nasvit finetune``: train an exported subnet on new data, then export it again, verified.

    recipe = FinetuneRecipe(config, run_dir, resume="auto")
    summary = recipe.run()          # setup, train, write <run_dir>/export, cleanup; summary["export"] is its path

The model comes through timm (``create_model("nasvit_subnet", export_dir=..., pretrained=True, num_classes=N)``),
so a class count other than the export's gets a new classifier while every other tensor keeps its weights. With
``config.resolution`` the subnet trains at another input side (timm's ``img_size``; :mod:`supernet.resolution`: the
sides it runs at, its relative-position tables resized) and the export is written for that side. The loop,
checkpoints, exact resume, EMA, mixup, precision and torchrun are the shared
:class:`~nasvit.recipes.engine.TrainingEngine`; this recipe supplies the model, a cross-entropy step (against soft
targets: smoothed labels, mixup, or a teacher's softmax blended in) and a plain top-1/top-5 evaluation.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from nasvit.config.finetune import FinetuneConfig
from nasvit.errors import NasvitError
from nasvit.evaluation import accuracy
from nasvit.export.directory import ExportOptions, ExportReport, load_model, read_description, write_export
from nasvit.recipes.engine import DATA_RESUME_KEYS, TrainingEngine
from nasvit.runtime import checkpoint, run_directory
from search_space import space_to_dict
from supernet import NASViT, recalibrate_bn
from supernet.resolution import check_resolution
from supernet.timm_models import read_export
from supernet.training.sandwich import StepResult

EXPORT_DIR = "export"


class FinetuneRecipe(TrainingEngine):
    """Fine-tuning of an exported subnet: :meth:`setup`, :meth:`train`, :meth:`export`, :meth:`cleanup`.

    Args:
        config: the resolved fine-tuning config (``config.model`` is the parent export).
        run_dir: where config.yaml, train.log, metrics.jsonl, tensorboard/, checkpoints/ and export/ go.
        resume: None (start fresh), ``auto`` (the latest checkpoint in ``run_dir`` if any) or a checkpoint path.
        overwrite: clear ``run_dir`` first when it holds a nasvit run.
    """

    kind = "finetune"
    resume_keys = (
        "model",
        "pretrained",
        "resolution",
        "optim",
        *DATA_RESUME_KEYS,
        "seed",
    )
    config: FinetuneConfig

    def _setup_inputs(self) -> None:
        self.parent = Path(self.config.model)
        self.parent_description = read_description(self.parent)
        if self.config.resolution is not None:  # refused here, before the run directory is claimed
            try:
                check_resolution(read_export(self.parent)[0], self.config.resolution)
            except ValueError as error:
                raise NasvitError(str(error)) from None

    def _setup_model(self) -> NASViT:
        config = self.config
        options = {"num_classes": self.data.num_classes, "drop_rate": config.drop_rate}
        options["drop_path_rate"] = config.drop_path_rate
        if config.resolution is not None:
            options["img_size"] = config.resolution
        return timm.create_model("nasvit_subnet", export_dir=str(self.parent), pretrained=config.pretrained, **options)

    def _optimizer_options(self) -> dict[str, Any]:
        return {} if self.config.layer_decay is None else {"layer_decay": self.config.layer_decay}

    def _setup_teacher(self) -> nn.Module | None:
        source = self.config.distill.teacher
        if source is None:
            return None
        state = None if Path(source).is_dir() else checkpoint.load(source)
        classes = read_description(source)["num_classes"] if state is None else state["num_classes"]
        if classes != self.data.num_classes:
            raise NasvitError(
                f"distill.teacher {source} predicts {classes} classes but the data has {self.data.num_classes}; "
                "distil from a model of the same classes, or set distill.teacher=null"
            )
        teacher = load_model(source) if state is None else self._largest_subnet(state)
        teacher.requires_grad_(False)
        return teacher.eval().to(self.ctx.device)

    def _largest_subnet(self, state: dict[str, Any]) -> NASViT:
        """A supernet's largest subnet as a static model, its BN recalibrated on this run's training data."""
        net = checkpoint.supernet_from_state(state).eval()
        largest = net.space.max_subnet()
        net.set_active_subnet(largest)
        recalibrate_bn(net, self._calibration_batches())
        return net.export(largest)

    def _setup_evaluation(self) -> None:
        """Only the validation shard: a static model needs no BN recalibration."""
        self.val_loader = self._validation_loader()

    def _teacher_targets(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        weight = self.config.distill.weight
        return weight * self.teacher(images).float().softmax(-1) + (1.0 - weight) * targets

    def _compute_gradients(self, batches: list, epoch: int) -> StepResult:
        return self._label_loss_gradients(batches, "loss")

    def _evaluate_model(self) -> dict[str, float]:
        model = self.ema.module if self.ema is not None else self.net
        result = accuracy(model, self.val_loader, self._autocast, reduce=True)
        return {"top1": result["top1"], "top5": result["top5"]}

    def _checkpoint_extras(self) -> dict[str, Any]:
        return {"space": space_to_dict(self.net.subnet_config.space), "parent_export": str(self.parent)}

    def _check_checkpoint(self, state: checkpoint.TrainingState, path: Path) -> None:
        parent = state.extras.get("parent_export")
        if parent != str(self.parent):
            raise checkpoint.CheckpointError(
                f"checkpoint {path} fine-tunes {parent}, not {self.parent}; resume with the "
                "export it was started from, or start a new run in another directory"
            )

    def _describe(self) -> str:
        origin = "pretrained" if self.config.pretrained else "randomly initialised"
        at = "" if self.config.resolution is None else f" at {self.config.resolution} px"
        return f"{origin} {self.parent_description['subnet']} ({self.parent}){at} on {self.config.data.dataset}"

    # ------------------------------------------------------------------------------------------ export
    def export(self, metrics: dict[str, Any]) -> ExportReport | None:
        """Write the fine-tuned model (EMA when kept) as a verified export into ``<run_dir>/export`` (rank 0)."""
        if not self.ctx.is_main:
            return None
        source = self.ema.module if self.ema is not None else self.net
        model = _static_copy(source)
        probe = next(iter(self.val_loader))[0][:8].float()
        digest = run_directory.file_digest(self.last_checkpoint) if self.last_checkpoint else None
        return write_export(
            model,
            self.run_dir / EXPORT_DIR,
            {"finetune_checkpoint_sha256": digest, "subnet": model.subnet},
            self.config.data,
            probe,
            provenance={
                "parent_export": str(self.parent),
                "parent_subnet": self.parent_description["subnet"],
                "finetune_run": str(self.run_dir),
                "checkpoint": str(self.last_checkpoint),
                "checkpoint_step": self.step,
                "pretrained": self.config.pretrained,
            },
            metrics={k: v for k, v in metrics.items() if k in ("top1", "top5")},
            options=ExportOptions(
                onnx=self.config.export.onnx, torchscript=self.config.export.torchscript, overwrite=True
            ),
        )

    def _finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the final weights (unless this run's last step just did) and export them."""
        if self.evaluated_step != self.step or "top1" not in summary:  # resumed after its last step: evaluate again
            summary = {**summary, **self.evaluate(math.ceil(self.step / self.steps_per_epoch))}
        if self.last_checkpoint != checkpoint.checkpoint_path(self.run_dir, self.step):
            self.save_checkpoint(self.step // self.steps_per_epoch)  # the export names the weights it holds
        report = self.export(summary)
        return {**summary, "export": str(report.out_dir) if report else None}


def _static_copy(model: nn.Module) -> NASViT:
    """A CPU copy of a (possibly EMA) NASViT in eval mode, for the export."""
    return copy.deepcopy(model).float().cpu().eval()
