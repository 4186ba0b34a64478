"""The supernet side of the evidence run: the ablation trainings, the compared subnets' top-1, and the gradient
conflict of the hybrid and the CNN-only supernet measured over a dataset."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch
from demo_supernets import supernet_top1
from evidence_plan import SHARED, TRAIN_CONFIG, VARIANTS, Plan, compared_subnets, shared_scale_space, space_of

from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.data import build_data, fixed_batches
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from supernet.training.conflict_measure import dataset_conflicts
from supernet.training.losses import smoothed_one_hot


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def train_variant(plan: Plan, data: Path, out: Path, variant: str, seed: int) -> dict:
    """Train one ablation variant into ``out/train/<variant>-seed<seed>`` (resumed from its checkpoint when one is
    there); its summary with the wall time."""
    spec = VARIANTS[variant]
    space = str(shared_scale_space(out)) if spec.space == SHARED else spec.space
    overrides = [*plan.train_overrides(data, seed), f"space={space}", *spec.overrides]
    config = load_config(TrainConfig, TRAIN_CONFIG, overrides)
    run_dir = out / "train" / run_name(variant, seed)
    started = time.perf_counter()
    summary = TrainRecipe(config, run_dir, resume="auto" if checkpoint.latest(run_dir) else None).run()
    return {**summary, "wall_seconds": time.perf_counter() - started, "space": space}


def subnet_top1(out: Path, variant: str, seed: int) -> dict:
    """Validation top-1 of the variant's compared subnets (smallest, largest, 5 random) after BN recalibration."""
    space = space_of(VARIANTS[variant].space, out)
    subnets = compared_subnets(space)
    top1 = supernet_top1(out / "train" / run_name(variant, seed), subnets)
    macs = [space.cost(cfg).macs for cfg in subnets]
    return {"subnets": [str(cfg) for cfg in subnets], "macs": macs, "top1": top1, "mean": statistics.mean(top1)}


def gradient_conflicts(plan: Plan, out: Path, variant: str) -> dict:
    """Per stage, the share of layers whose gradients of the largest and of each compared smaller subnet, each
    accumulated over ``plan.conflict_batches`` un-augmented training batches, point against each other (seed 0)."""
    run_dir = out / "train" / run_name(variant, 0)
    state = checkpoint.load(checkpoint.latest(run_dir))
    config = load_config(TrainConfig, run_dir / "config.yaml")
    net = checkpoint.supernet_from_state(state)
    data = build_data(config.data)
    batches = fixed_batches(data.train_eval, plan.conflict_batches, config.data.batch_size, config.seed + 1)
    smoothing = config.data.label_smoothing
    batches = [(images, smoothed_one_hot(labels, data.num_classes, smoothing)) for images, labels in batches]
    subnets = [cfg for cfg in compared_subnets(net.space) if cfg != net.space.max_subnet()]
    measured = {}
    for cfg in subnets:
        with torch.enable_grad():
            stats = dataset_conflicts(net, cfg, batches)
        measured[str(cfg)] = {"overall": stats.overall, "per_stage": stats.per_group, "tensors": stats.num_tensors}
    stages = list(next(iter(measured.values()))["per_stage"])
    mean = {stage: statistics.mean(m["per_stage"][stage] for m in measured.values()) for stage in stages}
    return {"subnets": measured, "mean_per_stage": mean, "images": plan.conflict_batches * config.data.batch_size}
