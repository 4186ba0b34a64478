"""The training engine shared by ``nasvit train`` (a supernet) and ``nasvit finetune`` (an exported subnet).

It owns what both do alike: devices and processes, the run directory, data and loaders, AdamW with linear lr
scaling, warm-up and cosine (timm), EMA (timm ``ModelEmaV3``), mixed precision, mixup / label smoothing / soft
targets, the epoch loop with progress bars, clipping, skipping non-finite steps, evaluation scheduling, atomic
checkpoints with exact resume, and interrupts. A recipe subclass supplies the model, the gradients of one step and
the evaluation:

    class MyRecipe(TrainingEngine):
        kind = "train"                              # run-directory kind; also names the checkpoint format
        def _setup_model(self) -> nn.Module: ...
        def _compute_gradients(self, batches, epoch) -> StepResult: ...
        def _evaluate_model(self) -> dict[str, float]: ...

Runs on one CPU or GPU, or on many under ``torchrun`` (gradients averaged over processes; only rank 0 logs and
writes). Checkpoints resume exactly: the same weights as an uninterrupted run (for image folders with
``data.workers=0``; worker processes draw augmentations in scheduling order).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler
from timm.utils import ModelEmaV3
from torch import nn
from torch.utils.data import Subset
from tqdm import tqdm

from nasvit.config.loading import dump_yaml, to_dict
from nasvit.data import build_data, build_mixup, fixed_batches, make_loader, set_epoch
from nasvit.errors import NasvitError
from nasvit.recipes.run_log import RunLog
from nasvit.runtime import checkpoint, distributed, run_directory
from supernet.bn_calibration import BatchNormSnapshot
from supernet.training.losses import smoothed_one_hot, soft_cross_entropy
from supernet.training.sandwich import StepResult

logger = logging.getLogger(__name__)

# the data settings a resumed run must share with its checkpoint: they set the batches and the held-out splits
DATA_RESUME_KEYS = (
    "data.batch_size",
    "data.dataset",
    "data.image_size",
    "data.val_split",
    "data.val_fraction",
    "data.search_per_class",
)


class TrainingError(NasvitError):
    """Training cannot go on (for example, the loss stayed non-finite); the last good checkpoint is kept."""


class TrainingEngine:
    """One training run as an object: :meth:`setup`, :meth:`train`, :meth:`save_checkpoint`, :meth:`cleanup`.

    Args:
        config: the resolved config (``TrainConfig`` or ``FinetuneConfig``: device, precision, seed, data, optim,
            ema, eval, max_steps, max_nan_skips, log_every, checkpoint_every_steps, channels_last).
        run_dir: where config.yaml, train.log, metrics.jsonl, tensorboard/ and checkpoints/ go.
        resume: None (start fresh), ``auto`` (the latest checkpoint in ``run_dir`` if any) or a checkpoint path.
        overwrite: clear ``run_dir`` first when it holds a nasvit run (without it such a directory is refused).
    """

    kind = "train"
    resume_keys: tuple[str, ...] = ("optim", *DATA_RESUME_KEYS, "seed")

    def __init__(self, config: Any, run_dir: str | Path, resume: str | None = None, overwrite: bool = False):
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.overwrite = overwrite
        self.step = 0
        self.nan_skips = 0
        self.evaluated_step = -1  # the step of the last completed evaluation
        self.last_checkpoint: Path | None = None
        self.main_losses: list[float] = []  # the first loss of every step of this run (the largest subnet's)

    @property
    def checkpoint_format(self) -> str:
        return checkpoint.FORMAT if self.kind == "train" else f"nasvit-{self.kind}-checkpoint/1"

    # ----------------------------------------------------------------------------------------- setup
    def setup(self) -> None:
        config = self.config
        self.ctx = distributed.init(config.device)
        if config.precision == "fp16" and self.ctx.device.type != "cuda":
            raise NasvitError("precision fp16 needs a GPU (it uses a grad scaler); use precision=bf16 on the CPU")
        self._setup_inputs()
        if self.ctx.is_main:  # what defines a resumed run (space, schedule, data) is checked against its checkpoint
            run_directory.claim(self.run_dir, self.kind, {}, resume=self.resume is not None, overwrite=self.overwrite)
        self.log = RunLog(self.run_dir, enabled=self.ctx.is_main)
        self._setup_data()
        self.net = self._setup_model().to(self.ctx.device)
        if config.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        distributed.broadcast_module(self.net)
        self._setup_optimizer()
        ema = config.ema
        self.ema = ModelEmaV3(self.net, decay=ema.decay, use_warmup=ema.warmup) if ema.enabled else None
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.teacher = self._setup_teacher()
        self.mixup = build_mixup(config.data, self.data.num_classes)
        self.batch_norms = BatchNormSnapshot(self.net)
        self._setup_step()
        self._setup_evaluation()
        if self.resume is not None:
            self._resume(self.resume)
        self.scheduler.step_update(num_updates=self.step)
        if self.ctx.is_main:
            (self.run_dir / "config.yaml").write_text(dump_yaml(self.config))
            logger.info(
                "training %s (%.2fM parameters) on %s: %d steps/epoch, %d epochs, global batch %d, lr %.3g",
                self._describe(),
                sum(p.numel() for p in self.net.parameters()) / 1e6,
                self.ctx.device,
                self.steps_per_epoch,
                config.optim.epochs,
                self.global_batch,
                self.lr,
            )

    def _setup_inputs(self) -> None:
        """Read what the run starts from before anything is written (the search space, a parent export)."""

    def _setup_data(self) -> None:
        config = self.config
        self.data = build_data(config.data)
        # resolved: a folder without a validation split is recorded as val_split null in config.yaml and checkpoints
        self.config = dataclasses.replace(config, data=self.data.config)
        torch.manual_seed(config.seed)
        random.seed(config.seed + self.ctx.rank)  # timm RandAugment in the main process
        np.random.seed(config.seed + self.ctx.rank)  # timm Mixup

    def _setup_evaluation(self) -> None:
        """BN-recalibration batches (held in memory) and this process's shard of the validation set."""
        self.calibration = self._calibration_batches()
        self.val_loader = self._validation_loader()

    def _calibration_batches(self) -> list:
        """``eval.bn_batches`` fixed, un-augmented training batches of ``eval.batch_size`` (held in memory)."""
        config = self.config
        return fixed_batches(
            self.data.train_eval,
            config.eval.bn_batches,
            config.eval.batch_size,
            config.seed,
            size_keys=("eval.bn_batches", "eval.batch_size"),
        )

    def _validation_loader(self):
        """This process's shard of the validation set, unshuffled."""
        val = self.data.val
        shard = Subset(val, list(range(self.ctx.rank, len(val), self.ctx.world_size)))
        return make_loader(shard, self.config.eval.batch_size, workers=self.config.data.workers)

    def _setup_optimizer(self) -> None:
        optim = self.config.optim
        self.global_batch = self.config.data.batch_size * self.ctx.world_size * optim.accumulation
        self.lr = optim.lr * self.global_batch / 512
        options = {"weight_decay": optim.weight_decay, "betas": optim.betas, **self._optimizer_options()}
        if self.ctx.device.type == "cpu":  # one fused kernel instead of a loop over tensors: 8x faster update here
            options["fused"] = True
        self.optimizer = create_optimizer_v2(self.net, opt="adamw", lr=self.lr, **options)
        self.steps_per_epoch = len(self._train_loader(0)) // optim.accumulation
        if self.steps_per_epoch < 1:
            raise NasvitError(
                f"the training set gives fewer than {optim.accumulation} batches of {self.config.data.batch_size}; "
                "lower data.batch_size or optim.accumulation"
            )
        self.total_steps = optim.epochs * self.steps_per_epoch
        self.scheduler = CosineLRScheduler(
            self.optimizer,
            t_initial=self.total_steps,
            lr_min=optim.min_lr,
            warmup_t=round(optim.warmup_epochs * self.steps_per_epoch),
            warmup_lr_init=optim.warmup_lr,
            t_in_epochs=False,
        )

    # ------------------------------------------------------------------------------ recipe hooks
    def _setup_model(self) -> nn.Module:
        """The network to train (on the CPU; the engine moves it)."""
        raise NotImplementedError

    def _setup_teacher(self) -> nn.Module | None:
        """A frozen model whose softmax becomes the targets, or None."""
        return None

    def _setup_step(self) -> None:
        """Anything the recipe's step needs once the model and optimizer exist."""

    def _start_epoch(self, epoch: int) -> None:
        """Anything that changes from epoch to epoch (a schedule's stage), before its batches are drawn; called again
        for the epoch a resumed run continues."""

    def _optimizer_options(self) -> dict[str, Any]:
        """Extra keyword arguments of timm's ``create_optimizer_v2`` (e.g. ``layer_decay``)."""
        return {}

    def _compute_gradients(self, batches: list[tuple[torch.Tensor, torch.Tensor]], epoch: int) -> StepResult:
        """Fill ``.grad`` of the model's parameters, averaged over processes, from prepared ``(images, soft targets)``
        micro-batches; return this process's losses (the first is the one the run log follows)."""
        raise NotImplementedError

    def _evaluate_model(self) -> dict[str, float]:
        """Validation figures of the current weights (EMA when kept), e.g. ``{"top1": ..., "top5": ...}``."""
        raise NotImplementedError

    def _checkpoint_extras(self) -> dict[str, Any]:
        """What the recipe adds to every checkpoint (the search space, the parent export)."""
        return {}

    def _check_checkpoint(self, state: checkpoint.TrainingState, path: Path) -> None:
        """Refuse a checkpoint of another model before its tensors are loaded."""

    def _describe(self) -> str:
        return type(self.net).__name__

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
            self._start_epoch(epoch)
            batches = iter(self._train_loader(epoch, skip_batches=done * config.optim.accumulation))
            todo = min(self.steps_per_epoch, stop - epoch * self.steps_per_epoch) - done
            interactive = sys.stderr.isatty()  # a progress bar on a terminal, plain periodic lines in a log file
            bar = tqdm(
                range(todo),
                desc=f"epoch {epoch + 1}/{config.optim.epochs}",
                disable=not (self.ctx.is_main and interactive),
                leave=False,
                dynamic_ncols=True,
            )
            for _ in bar:
                micro = [next(batches) for _ in range(config.optim.accumulation)]
                status = self._optimizer_step(micro, epoch)
                bar.set_postfix_str(status)
                if not interactive and self.step % config.log_every == 0:
                    logger.info("epoch %d step %d/%d: %s", epoch + 1, self.step, self.total_steps, status)
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
        """One optimiser step, top to bottom; returns the progress bar's status.

        The micro-batches become (images (B, 3, S, S), soft targets (B, K)) on the device; the recipe fills ``.grad``
        with their gradient averaged over processes. A loss that is not finite on any process skips the step on all
        of them and puts back the BatchNorm statistics its forward passes moved; otherwise the gradient is applied.
        """
        started = time.perf_counter()
        batches = [self._prepare(images, labels) for images, labels in micro]
        self.net.train()
        self.batch_norms.save()
        result = self._compute_gradients(batches, epoch)
        if distributed.true_everywhere(result.finite, self.ctx.device):
            self.nan_skips = 0
            grad_norm = self._apply_gradients(result)
        else:
            self.batch_norms.restore()
            grad_norm = self._count_skipped_step(result.losses)
        self.optimizer.zero_grad(set_to_none=True)
        self.main_losses.append(next(iter(result.losses.values())))
        self.step += 1
        self.scheduler.step_update(num_updates=self.step)
        images = sum(images.shape[0] for images, _ in batches) * self.ctx.world_size
        throughput = images / (time.perf_counter() - started)
        if self.step % self.config.log_every == 0 or self.step == 1:
            self._log_step(result, grad_norm, throughput)
        losses = " ".join(f"{slot} {loss:.3f}" for slot, loss in list(result.losses.items())[:2])
        return f"{losses} lr {self.optimizer.param_groups[0]['lr']:.2e} {throughput:.0f} img/s"

    def _label_loss_gradients(self, batches: list[tuple[torch.Tensor, torch.Tensor]], slot: str) -> StepResult:
        """Cross-entropy of the model against the soft targets, averaged over the micro-batches and processes, into
        ``.grad``; the loss is reported as ``slot``."""
        total = torch.zeros((), device=self.ctx.device)
        for images, targets in batches:
            with self._autocast():
                logits = self.net(images)
            loss = soft_cross_entropy(logits, targets) / len(batches)
            self._scale_loss(loss).backward()
            total += loss.detach()
        distributed.average_gradients(self.net)
        return StepResult(losses={slot: float(total)})

    def _apply_gradients(self, result: StepResult) -> float:
        """Unscale, clip (unless the step clipped itself) and apply ``.grad``, share rank 0's BatchNorm statistics and
        update the EMA; returns the gradient's global norm before clipping."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        norm = result.clipped_norm
        if norm is None:
            params = [p for p in self.net.parameters() if p.grad is not None]
            clip = self.config.optim.clip_grad
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        distributed.broadcast_module(self.net, buffers_only=True)
        if self.ema is not None:
            self.ema.update(self.net, step=self.step)
        return norm

    def _count_skipped_step(self, losses: dict[str, float]) -> float:
        """Count a skipped step; raise once ``max_nan_skips`` come in a row. Returns the step's gradient norm (NaN)."""
        self.nan_skips += 1
        logger.warning("step %d: non-finite loss %s; step skipped (%d in a row)", self.step, losses, self.nan_skips)
        if self.nan_skips >= self.config.max_nan_skips:
            raise TrainingError(
                f"the loss was not finite for {self.nan_skips} consecutive steps (last: {losses}); "
                f"stopped at step {self.step}. The last good checkpoint is {self.last_checkpoint or 'none'}. "
                "Lower optim.lr, enable optim.clip_grad, or train in precision=fp32"
            )
        return float("nan")

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
                targets = self._teacher_targets(images, targets)
        return images, targets

    def _scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to backpropagate: scaled by the grad scaler in fp16, else itself."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def _teacher_targets(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(B, classes) soft targets from the teacher; recipes may blend them with ``targets``."""
        return self.teacher(images).float().softmax(-1)

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
        """The recipe's validation figures, logged to ``metrics.jsonl`` and tensorboard."""
        record: dict[str, Any] = {"epoch": epoch, "step": self.step, **self._evaluate_model()}
        self.log.metrics(record)
        self.evaluated_step = self.step
        self.log.scalars({f"val/{k}": v for k, v in record.items() if k.endswith(("top1", "top5"))}, self.step)
        figures = ", ".join(
            f"{k.removesuffix('top1').rstrip('_')} {v:.2f}%".lstrip() for k, v in record.items() if k.endswith("top1")
        )
        logger.info("epoch %d step %d: val top-1 %s", epoch, self.step, figures)
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
        state = checkpoint.TrainingState(
            model=self.net.state_dict(),
            ema=self.ema.module.state_dict() if self.ema is not None else None,
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            epoch=epoch,
            step=self.step,
            nan_skips=self.nan_skips,
            evaluated_step=self.evaluated_step,
            rng=_rng_state(),
            config=to_dict(self.config),
            num_classes=self.data.num_classes,
            world_size=self.ctx.world_size,
            extras=self._checkpoint_extras(),
        )
        payload = state.to_payload(self.checkpoint_format)
        path = checkpoint.save_atomic(payload, checkpoint.checkpoint_path(self.run_dir, self.step))
        checkpoint.prune(self.run_dir, keep=3)
        self.last_checkpoint = path
        return path

    def _resume(self, resume: str) -> None:
        path = checkpoint.latest(self.run_dir) if resume == "auto" else Path(resume)
        if path is None:
            logger.info("no checkpoint in %s; starting a new run", checkpoint.checkpoint_dir(self.run_dir))
            return
        state = checkpoint.TrainingState.from_payload(checkpoint.load(path, self.checkpoint_format))
        self._check_checkpoint(state, path)
        mismatches = self._resume_mismatches(state)
        if mismatches:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was made with other settings ({'; '.join(mismatches)}); resume with the "
                "config it was made with, or start a new run in another directory"
            )
        try:
            self.net.load_state_dict(state.model)
            if self.ema is not None and state.ema is not None:
                self.ema.module.load_state_dict(state.ema)
            self.optimizer.load_state_dict(state.optimizer)
            self.scheduler.load_state_dict(state.scheduler)
            if self.scaler is not None and state.scaler is not None:
                self.scaler.load_state_dict(state.scaler)
        except (RuntimeError, ValueError, KeyError, TypeError) as error:
            raise checkpoint.CheckpointError(f"checkpoint {path} does not fit this run: {str(error)[:300]}") from None
        self.step, self.nan_skips = state.step, state.nan_skips
        # checkpoints written before evaluated_step was recorded were evaluated at their step
        self.evaluated_step = state.evaluated_step if state.evaluated_step is not None else self.step
        _set_rng_state(state.rng)
        self.last_checkpoint = path
        logger.info("resumed from %s at step %d", path, self.step)

    def _resume_mismatches(self, state: checkpoint.TrainingState) -> list[str]:
        """Settings that shape the model, the schedule or the data order and differ from the checkpoint's
        (``max_steps`` and logging may change on resume)."""
        saved, current = state.config, to_dict(self.config)
        problems = []
        for key in self.resume_keys:
            section, _, leaf = key.partition(".")
            if section not in saved:  # a section added after the checkpoint was written: it ran with the default
                saved = {**saved, section: _default_section(self.config, section)}
            before = saved[section].get(leaf) if leaf else saved[section]
            after = current[section][leaf] if leaf else current[section]
            if before != after:
                problems.append(f"{key}: {before!r} in the checkpoint, {after!r} now")
        if state.num_classes != self.data.num_classes:
            problems.append(f"num_classes: {state.num_classes} in the checkpoint, {self.data.num_classes} now")
        world_size = self.ctx.world_size
        if state.world_size not in (None, world_size):
            problems.append(f"world size: {state.world_size} processes in the checkpoint, {world_size} now")
        return problems

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
                summary = self.train()
            except KeyboardInterrupt:
                saved = self.save_checkpoint(self.step // self.steps_per_epoch)
                logger.warning("interrupted at step %d; checkpoint %s", self.step, saved)
                raise
            return self._finish(summary)
        finally:
            self.cleanup()

    def _finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """What the recipe does after the last step (fine-tuning writes its export); returns the summary."""
        return summary


def _default_section(config: Any, section: str) -> Any:
    """The default value of the config dataclass field ``section``, as a plain dict or value."""
    spec = next(f for f in dataclasses.fields(config) if f.name == section)
    return to_dict(spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default)


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
