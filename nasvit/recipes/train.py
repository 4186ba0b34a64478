"""``nasvit train``: supernet training with the sandwich rule, in-place distillation and gradient projection, or
with single-path uniform sampling (``sampling.rule: spos``), optionally progressive (``progressive:``).

    recipe = TrainRecipe(config, run_dir, resume="auto")
    summary = recipe.run()          # setup, train, cleanup

The loop, checkpoints, resume and logging are the shared :class:`~nasvit.recipes.engine.TrainingEngine`; this
recipe supplies the supernet, the step (sandwich or single path) and the evaluation of the smallest and largest
subnets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nasvit.config.train import TrainConfig
from nasvit.data import build_mixup, set_randaugment_magnitude
from nasvit.evaluation import evaluate_subnet
from nasvit.recipes.engine import DATA_RESUME_KEYS, TrainingEngine, TrainingError
from nasvit.recipes.teacher import build_teacher
from nasvit.runtime import checkpoint, distributed
from search_space import load_space, parse_space, space_to_dict
from supernet import Supernet
from supernet.training.progressive import ProgressiveStage, progressive_stages, stage_at
from supernet.training.sandwich import SandwichStep, StepResult, parameter_groups, sample_subnets
from supernet.training.single_path import macs_bins, sample_path

logger = logging.getLogger(__name__)

__all__ = ["TrainRecipe", "TrainingError"]


class TrainRecipe(TrainingEngine):
    """Supernet training as one object: :meth:`setup`, :meth:`train`, :meth:`save_checkpoint`, :meth:`cleanup`.

    Args:
        config: the resolved training config.
        run_dir: where config.yaml, train.log, metrics.jsonl, tensorboard/ and checkpoints/ go.
        resume: None (start fresh), ``auto`` (the latest checkpoint in ``run_dir`` if any) or a checkpoint path.
        overwrite: clear ``run_dir`` first when it holds a nasvit run (without it such a directory is refused).
    """

    kind = "train"
    resume_keys = (
        "optim",
        "sampling",
        "progressive",
        "sandwich",
        *DATA_RESUME_KEYS,
        "seed",
    )
    config: TrainConfig

    def _setup_inputs(self) -> None:
        self.space = load_space(self.config.space)

    def _setup_model(self) -> Supernet:
        net = Supernet(self.space, self.data.num_classes)
        if self.config.init_from is not None:
            self._load_initial_weights(net, Path(self.config.init_from))
        return net

    def _load_initial_weights(self, net: Supernet, path: Path) -> None:
        """Start from the raw weights of the supernet checkpoint ``path`` (``init_from``); the EMA copies them."""
        state = checkpoint.load(path)
        saved_space = parse_space(state["space"], source=f"{path} (space)")
        if saved_space != self.space or state["num_classes"] != self.data.num_classes:
            raise checkpoint.CheckpointError(
                f"init_from {path} holds a '{saved_space.name}' supernet with {state['num_classes']} classes, but this "
                f"run trains '{self.space.name}' with {self.data.num_classes}; set space (and data) to match it"
            )
        try:
            net.load_state_dict(state["model"])
        except RuntimeError as error:
            raise checkpoint.CheckpointError(f"init_from {path} does not fit: {str(error)[:300]}") from None

    def _setup_teacher(self):
        return build_teacher(self.config.teacher, self.data.num_classes, self.ctx.device)

    def _setup_step(self) -> None:
        progressive = self.config.progressive
        self.stages = progressive_stages(
            self.space.resolutions,
            self.config.optim.epochs,
            progressive.stages,
            progressive.min_resolution,
            progressive.magnitude,
            progressive.mixup,
        )
        self.stage: ProgressiveStage | None = None
        sampling = self.config.sampling
        if sampling.rule == "spos":
            bins = macs_bins(self.space, sampling.macs_bins, sampling.macs_range) if sampling.macs_bins else []
            self.path_bins = bins
            if self.ctx.is_main:
                drawn = f"a MACs bin of {len(bins)} first" if bins else "uniformly"
                logger.info("single path per step, drawn %s; sandwich and projection settings are unused", drawn)
            return
        sandwich = self.config.sandwich
        sync = distributed.all_reduce_mean if self.ctx.distributed else None
        alpha = (sandwich.alpha_min, sandwich.alpha_max, sandwich.alpha_clamp)
        projection = self.config.projection
        self.sandwich = SandwichStep(
            self.net,
            *alpha,
            groups=parameter_groups(self.net),
            sync=sync,
            rule=projection.rule,
            clip_grad=self.config.optim.clip_grad,
            projection_mode=projection.mode,
            measure_conflicts=projection.conflict_meter,
            autocast=self._autocast,
            scale_loss=self._scale_loss,
        )

    def _start_epoch(self, epoch: int) -> None:
        """Enter the progressive-learning stage of ``epoch``: its resolution cap, RandAugment magnitude and mixup
        alpha, logged and written to tensorboard when the stage changes."""
        stage = stage_at(self.stages, epoch)
        if stage == self.stage:
            return
        self.stage = stage
        if stage.magnitude is not None:
            set_randaugment_magnitude(self.data.train.transform, stage.magnitude)
        if stage.mixup is not None:
            self.mixup = build_mixup(self.config.data.replace(mixup=stage.mixup), self.data.num_classes)
        if stage.count > 1 and self.ctx.is_main:
            logger.info("progressive learning %s", stage.describe())
            values = {"progressive/stage": stage.index + 1, "progressive/resolution_cap": stage.resolution_cap}
            values.update({f"progressive/{name}": getattr(stage, name) for name in ("magnitude", "mixup")})
            self.log.scalars({name: value for name, value in values.items() if value is not None}, self.step)

    def _compute_gradients(self, batches: list, epoch: int) -> StepResult:
        config = self.config
        cap = self.stage.resolution_cap
        if config.sampling.rule == "spos":
            path = sample_path(self.space, config.seed, self.step, self.path_bins, resolution_cap=cap)
            self.net.set_active_subnet(path)
            return self._label_loss_gradients(batches, "path")
        subnets = sample_subnets(self.net, config.seed, self.step, config.sandwich.num_random, resolution_cap=cap)
        project = config.projection.enabled and epoch >= config.projection.start_epoch
        return self.sandwich.run(batches, subnets, project)

    def _evaluate_model(self) -> dict[str, float]:
        """Top-1/top-5 on the validation set of the smallest and largest subnets after BN recalibration."""
        model = self.ema.module if self.ema is not None else self.net
        record: dict[str, float] = {}
        for label, cfg in (("min", self.space.min_subnet()), ("max", self.space.max_subnet())):
            result = evaluate_subnet(model, cfg, self.calibration, self.val_loader, self._autocast)
            record[f"{label}_top1"], record[f"{label}_top5"] = result["top1"], result["top5"]
        return record

    def _checkpoint_extras(self) -> dict[str, Any]:
        return {"space": space_to_dict(self.space)}

    def _check_checkpoint(self, state: checkpoint.TrainingState, path: Path) -> None:
        saved_space = parse_space(state.extras["space"], source=f"{path} (space)")
        if saved_space != self.space:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} was trained on search space '{saved_space.name}', which differs from this "
                f"config's space '{self.space.name}'; resume with the config it was made with"
            )

    def _describe(self) -> str:
        return f"{self.space.name} supernet"
