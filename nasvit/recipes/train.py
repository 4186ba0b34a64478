"""``nasvit train``: supernet training with the sandwich rule, in-place distillation and gradient projection.

    recipe = TrainRecipe(config, run_dir, resume="auto")
    summary = recipe.run()          # setup, train, cleanup

Runs on one CPU or GPU, or on many under ``torchrun`` (gradients averaged over processes; only rank 0 logs
and writes). Checkpoints are atomic and resume exactly: the same weights as an uninterrupted run (for image
folders with ``data.workers=0``; worker processes draw augmentations in scheduling order).
"""

from __future__ import annotations

import logging
import math
import random
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch.utils.data import Subset
from tqdm import tqdm

from nasvit import checkpoint, distributed, run_directory
from nasvit.config import dump_yaml, to_dict
from nasvit.data import build_data, build_mixup, fixed_batches, make_loader, set_epoch
from nasvit.errors import NasvitError
from nasvit.evaluation import evaluate_subnet
from nasvit.recipes.run_log import RunLog
from nasvit.recipes.teacher import build_teacher
from nasvit.train_config import TrainConfig
from search_space import load_space, parse_space, space_to_dict
from supernet import Supernet
from supernet.training.losses import smoothed_one_hot
from supernet.training.sandwich import SandwichStep, StepResult, parameter_groups, sample_subnets

logger = logging.getLogger(__name__)


class TrainingError(NasvitError):
    """Training cannot go on (for example, the loss stayed non-finite); the last good checkpoint is kept."""


class TrainRecipe:
    """Supernet training as one object: :meth:`setup`, :meth:`train`, :meth:`save_checkpoint`, :meth:`cleanup`.

    Args:
        config: the resolved training config.
        run_dir: where config.yaml, train.log, metrics.jsonl, tensorboard/ and checkpoints/ go.
        resume: None (start fresh), ``auto`` (the latest checkpoint in ``run_dir`` if any) or a checkpoint path.
        overwrite: clear ``run_dir`` first when it holds a nasvit run (without it such a directory is refused).
    """

    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: str | None = None, overwrite: bool = False):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.step = 0
        self.nan_skips = 0
        self.evaluated_step = -1  # the step of the last completed evaluation
        self.last_checkpoint: Path | None = None
        self.largest_losses: list[float] = []  # the largest subnet's loss at every step of this run

    # ----------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        config = self.config
        self.ctx = distributed.init(config.device)
        if config.precision == "fp16" and self.ctx.device.type != "cuda":
            raise NasvitError("precision fp16 needs a GPU (it uses a grad scaler); use precision=bf16 on the CPU")
        self.space = load_space(config.space)
        if self.ctx.is_main:  # what defines a resumed run (space, schedule, data) is checked against its checkpoint
            run_directory.claim(self.run_dir, "train", {}, resume=self.resume is not None, overwrite=self.overwrite)
        self.log = RunLog(self.run_dir, enabled=self.ctx.is_main)
        self.data = build_data(config.data)
        torch.manual_seed(config.seed)
        random.seed(config.seed + self.ctx.rank)  # timm RandAugment in the main process
        np.random.seed(config.seed + self.ctx.rank)  # timm Mixup
        self.net = Supernet(self.space, self.data.num_classes).to(self.ctx.device)
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        distributed.broadcast_module(self.net)
        accumulation = config.optim.accumulation
        global_batch = config.data.batch_size * self.ctx.world_size * accumulation
        self.lr = config.optim.lr * global_batch / 512
        self.optimizer = create_optimizer_v2(
            self.net, opt="adamw", lr=self.lr, weight_decay=config.optim.weight_decay, betas=config.optim.betas
        )
        self.steps_per_epoch = len(self._train_loader(0)) // accumulation
        if self.steps_per_epoch < 1:
            raise NasvitError(
                f"the training set gives fewer than {accumulation} batches of {config.data.batch_size}; "
                "lower data.batch_size or optim.accumulation"
            )
        self.total_steps = config.optim.epochs * self.steps_per_epoch
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=self.total_steps,
            lr_min=config.optim.min_lr,
            warmup_t=round(config.optim.warmup_epochs * self.steps_per_epoch),
            warmup_lr_init=config.optim.warmup_lr,
            t_in_epochs=False,
        )
        self.ema = ModelEmaV3(self.net, decay=config.ema.decay, use_warmup=True) if config.ema.enabled else None
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.teacher = build_teacher(config.teacher, self.data.num_classes, self.ctx.device)
        self.mixup = build_mixup(config.data, self.data.num_classes)
        sync = distributed.all_reduce_mean if self.ctx.distributed else None
        alpha = (config.sandwich.alpha_min, config.sandwich.alpha_max, config.sandwich.alpha_clamp)
        self.sandwich = SandwichStep(self.net, *alpha, groups=parameter_groups(self.net), sync=sync)
        self._bn_statistics = [
            b for name, b in self.net.named_buffers() if name.endswith(("running_mean", "running_var"))
        ]
        self.calibration = fixed_batches(
            self.data.train_eval,
            config.eval.bn_batches,
            config.eval.batch_size,
            config.seed,
            size_keys=("eval.bn_batches", "eval.batch_size"),
        )
        val = self.data.val
        shard = Subset(val, list(range(self.ctx.rank, len(val), self.ctx.world_size)))
        self.val_loader = make_loader(shard, config.eval.batch_size, workers=config.data.workers)
        if self.resume is not None:
            self._resume(self.resume)
        self.scheduler.step_update(num_updates=self.step)
        if self.ctx.is_main:
            (self.run_dir / "config.yaml").write_text(dump_yaml(config))
            logger.info(
                "training %s supernet (%.2fM parameters) on %s: %d steps/epoch, %d epochs, global batch %d, lr %.3g",
                self.space.name,
                sum(p.numel() for p in self.net.parameters()) / 1e6,
                self.ctx.device,
                self.steps_per_epoch,
                config.optim.epochs,
                global_batch,
                self.lr,
            )

    # ----------------------------------------------------------------------------------------- train
    def train(self) -> dict[str, Any]:
        """Run until the schedule ends or ``max_steps``; returns the last evaluation and timing."""
        config = self.config
        start, started_at = self.step, time.perf_counter()
        last_eval: dict[str, Any] = {}
        stop = config.max_steps if config.max_steps is not None else self.total_steps
        epoch = self.step // self.steps_per_epoch
        if self._evaluation_pending():  # an interrupt came during the end-of-epoch evaluation
            last_eval = self.evaluate(epoch)
        while self.step < min(stop, self.total_steps):
            epoch = self.step // self.steps_per_epoch
            done = self.step - epoch * self.steps_per_epoch
            batches = iter(self._train_loader(epoch, skip_batches=done * config.optim.accumulation))
            todo = min(self.steps_per_epoch, stop - epoch * self.steps_per_epoch) - done
            bar = tqdm(
                range(todo),
                desc=f"epoch {epoch + 1}/{config.optim.epochs}",
                disable=not self.ctx.is_main,
                leave=False,
                dynamic_ncols=True,
            )
            for _ in bar:
                micro = [next(batches) for _ in range(config.optim.accumulation)]
                bar.set_postfix_str(self._optimizer_step(micro, epoch))
                periodic = config.checkpoint_every_steps and self.step % config.checkpoint_every_steps == 0
                if periodic and self.nan_skips == 0:  # never checkpoint inside a run of skipped steps
                    self.save_checkpoint(epoch)
            bar.close()
            if self._evaluation_pending():
                last_eval = self.evaluate(epoch + 1)
            already_saved = self.last_checkpoint == checkpoint.checkpoint_path(self.run_dir, self.step)
            if self.nan_skips == 0 and not already_saved:
                self.save_checkpoint(self.step // self.steps_per_epoch)
        elapsed = time.perf_counter() - started_at
        return {"steps": self.step, "steps_this_run": self.step - start, "seconds": elapsed, **last_eval}

    def _optimizer_step(self, micro: list, epoch: int) -> str:
        config = self.config
        started = time.perf_counter()
        prepared = [self._prepare(images, labels) for images, labels in micro]
        subnets = sample_subnets(self.net, config.seed, self.step, config.sandwich.num_random)
        project = config.projection.enabled and epoch >= config.projection.start_epoch
        self.net.train()
        statistics = [b.clone() for b in self._bn_statistics]
        result = self.sandwich.run(
            prepared,
            subnets,
            autocast=self._autocast,
            scale_loss=self.scaler.scale if self.scaler is not None else (lambda loss: loss),
            project=project,
            projection_mode=config.projection.mode,
            measure_conflicts=config.projection.conflict_meter,
        )
        if not result.finite:  # the skipped forward passes must leave no trace in the BN statistics
            for buffer, saved in zip(self._bn_statistics, statistics):
                buffer.copy_(saved)
        grad_norm = self._apply(result)
        self.largest_losses.append(result.losses[subnets[0][0]])
        self.step += 1
        self.scheduler.step_update(num_updates=self.step)
        images = sum(images.shape[0] for images, _ in prepared) * self.ctx.world_size
        throughput = images / (time.perf_counter() - started)
        if self.step % config.log_every == 0 or self.step == 1:
            self._log_step(result, grad_norm, throughput)
        losses = " ".join(f"{slot} {loss:.3f}" for slot, loss in list(result.losses.items())[:2])
        return f"{losses} lr {self.optimizer.param_groups[0]['lr']:.2e} {throughput:.0f} img/s"

    def _apply(self, result: StepResult) -> float:
        """Clip and step on a finite result; count and check non-finite ones."""
        if not result.finite:
            self.nan_skips += 1
            self.optimizer.zero_grad(set_to_none=True)
            logger.warning(
                "step %d: non-finite loss %s; step skipped (%d in a row)", self.step, result.losses, self.nan_skips
            )
            if self.nan_skips >= self.config.max_nan_skips:
                raise TrainingError(
                    f"the loss was not finite for {self.nan_skips} consecutive steps (last: {result.losses}); "
                    f"stopped at step {self.step}. The last good checkpoint is {self.last_checkpoint or 'none'}. "
                    "Lower optim.lr, enable optim.clip_grad, or train in precision=fp32"
                )
            return float("nan")
        self.nan_skips = 0
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.net.parameters() if p.grad is not None]
        clip = self.config.optim.clip_grad
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        distributed.broadcast_module(self.net, buffers_only=True)  # BN statistics of rank 0 everywhere
        if self.ema is not None:
            self.ema.update(self.net, step=self.step)
        return float(norm)

    def _prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move a batch to the device and turn labels into soft targets (mixup, teacher or label smoothing)."""
        images = images.to(self.ctx.device, non_blocking=True)
        labels = labels.to(self.ctx.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        if self.mixup is not None:
            images, targets = self.mixup(images, labels)
        else:
            targets = smoothed_one_hot(labels, self.data.num_classes, self.config.data.label_smoothing)
        if self.teacher is not None:
            with torch.no_grad(), self._autocast():
                targets = self.teacher(images).float().softmax(-1)
        return images, targets

    def _log_step(self, result: StepResult, grad_norm: float, throughput: float) -> None:
        values = {f"loss/{slot}": loss for slot, loss in result.losses.items()}
        values.update(
            {"lr": self.optimizer.param_groups[0]["lr"], "grad_norm": grad_norm, "images_per_second": throughput}
        )
        if result.conflicts is not None:
            values["conflict/overall"] = result.conflicts.overall
            values.update({f"conflict/{stage}": rate for stage, rate in result.conflicts.per_group.items()})
        self.log.scalars(values, self.step)

    # -------------------------------------------------------------------------------------- evaluate
    def evaluate(self, epoch: int) -> dict[str, Any]:
        """Top-1/top-5 on the validation set of the smallest and largest subnets after BN recalibration."""
        model = self.ema.module if self.ema is not None else self.net
        record: dict[str, Any] = {"epoch": epoch, "step": self.step}
        for label, cfg in (("min", self.space.min_subnet()), ("max", self.space.max_subnet())):
            result = evaluate_subnet(model, cfg, self.calibration, self.val_loader, self._autocast)
            record[f"{label}_top1"], record[f"{label}_top5"] = result["top1"], result["top5"]
        self.log.metrics(record)
        self.evaluated_step = self.step
        self.log.scalars({f"val/{k}": v for k, v in record.items() if k.endswith(("top1", "top5"))}, self.step)
        logger.info(
            "epoch %d step %d: val top-1 min %.2f%%, max %.2f%%",
            epoch,
            self.step,
            record["min_top1"],
            record["max_top1"],
        )
        return record

    def _evaluation_pending(self) -> bool:
        """Whether the step ends an epoch whose evaluation is due and has not been made yet."""
        if self.step == 0 or self.step % self.steps_per_epoch or self.evaluated_step == self.step:
            return False
        finished = self.step // self.steps_per_epoch  # epochs done, counted from 1
        return finished % self.config.eval.every_epochs == 0 or self.step == self.total_steps

    # ----------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, epoch: int) -> Path | None:
        """Write the full training state atomically (rank 0) and keep the three newest checkpoints."""
        if not self.ctx.is_main:
            return None
        payload = {
            "format": checkpoint.FORMAT,
            "model": self.net.state_dict(),
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": epoch,
            "step": self.step,
            "nan_skips": self.nan_skips,
            "evaluated_step": self.evaluated_step,
            "rng": _rng_state(),
            "config": to_dict(self.config),
            "space": space_to_dict(self.space),
            "num_classes": self.data.num_classes,
            "world_size": self.ctx.world_size,
        }
        path = checkpoint.save_atomic(payload, checkpoint.checkpoint_path(self.run_dir, self.step))
        checkpoint.prune(self.run_dir, keep=3)
        self.last_checkpoint = path
        return path

    def _resume(self, resume: str) -> None:
        path = checkpoint.latest(self.run_dir) if resume == "auto" else Path(resume)
        if path is None:
            logger.info("no checkpoint in %s; starting a new run", checkpoint.checkpoint_dir(self.run_dir))
            return
        state = checkpoint.load(path)
        saved_space = parse_space(state["space"], source=f"{path} (space)")
        if saved_space != self.space:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained on search space '{saved_space.name}', which differs from this "
                f"config's space '{self.space.name}'; resume with the config it was made with"
            )
        mismatches = _resume_mismatches(state, self.config, self.data.num_classes, self.ctx.world_size)
        if mismatches:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was made with other settings ({'; '.join(mismatches)}); resume with the "
                "config it was made with, or start a new run in another directory"
            )
        try:
            self.net.load_state_dict(state["model"])
            if self.ema is not None and state["ema"] is not None:
                self.ema.module.load_state_dict(state["ema"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.scaler is not None and state["scaler"] is not None:
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise checkpoint.CheckpointError(f"checkpoint {path} does not fit this run: {str(error)[:300]}") from None
        self.step, self.nan_skips = state["step"], state["nan_skips"]
        self.evaluated_step = state.get("evaluated_step", self.step)  # checkpoints before this key: evaluated
        _set_rng_state(state["rng"])
        self.last_checkpoint = path
        logger.info("resumed from %s at step %d", path, self.step)

    # -------------------------------------------------------------------------------------- plumbing
    def _train_loader(self, epoch: int, skip_batches: int = 0):
        loader = self.data.loader("train", distributed=self.ctx.distributed, skip_batches=skip_batches)
        set_epoch(loader, epoch)
        return loader

    def _autocast(self):
        precision = self.config.precision
        if precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(self.ctx.device.type, dtype=dtype)

    def cleanup(self) -> None:
        if hasattr(self, "log"):
            self.log.close()
        distributed.cleanup()

    def run(self) -> dict[str, Any]:
        """setup, train and cleanup; an interrupt saves a checkpoint first (resume with ``--resume auto``)."""
        try:
            self.setup()
            try:
                return self.train()
            except KeyboardInterrupt:
                saved = self.save_checkpoint(self.step // self.steps_per_epoch)
                logger.warning("interrupted at step %d; checkpoint %s", self.step, saved)
                raise
        finally:
            self.cleanup()


RESUME_KEYS = ("optim", "sandwich", "data.batch_size", "data.dataset", "data.image_size", "seed")


def _resume_mismatches(state: dict[str, Any], config: TrainConfig, num_classes: int, world_size: int) -> list[str]:
    """Settings that shape the model, the schedule or the data order and differ from the checkpoint's
    (``max_steps`` and logging may change on resume)."""
    saved, current = state["config"], to_dict(config)
    problems = []
    for key in RESUME_KEYS:
        section, _, leaf = key.partition(".")
        before = saved.get(section, {}).get(leaf) if leaf else saved.get(section)
        after = current[section][leaf] if leaf else current[section]
        if before != after:
            problems.append(f"{key}: {before!r} in the checkpoint, {after!r} now")
    if state["num_classes"] != num_classes:
        problems.append(f"num_classes: {state['num_classes']} in the checkpoint, {num_classes} now")
    if state.get("world_size", world_size) != world_size:
        problems.append(f"world size: {state['world_size']} processes in the checkpoint, {world_size} now")
    return problems


def _rng_state() -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
