"""What ``benchmarks/evidence.py`` runs, at full size and ``--quick``: the trainings, the compared subnets, the
search budgets, the baselines, and the bookkeeping that makes every stage run once.

Every variant trains ``configs/train/cifar.yaml`` with one change; the same seed policy, data, steps and recipe.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from nasvit.errors import NasvitError
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SearchSpace, SubnetConfig, load_space

TRAIN_CONFIG = "configs/train/cifar.yaml"
HYBRID, CNN, SHARED = "cifar", "cifar_cnn", "cifar_shared_scale"
RANDOM_SUBNETS = 5


@dataclass(frozen=True)
class Variant:
    """One row of the ablation table: the space it trains and its overrides of ``TRAIN_CONFIG``."""

    space: str
    overrides: tuple[str, ...] = ()
    label: str = ""


VARIANTS = {
    "full": Variant(HYBRID, (), "full method (hybrid space)"),
    "no_projection": Variant(HYBRID, ("projection.enabled=false",), "without gradient projection"),
    "no_switchable_scaling": Variant(SHARED, (), "without switchable scaling (one layer scale a block)"),
    "cnn_only": Variant(CNN, (), "CNN-only space, full method"),
    "spos": Variant(HYBRID, ("sampling.rule=spos",), "single path one-shot (one path a step, label loss)"),
    "progressive": Variant(
        HYBRID, ("progressive.stages=4", "progressive.min_resolution=0.5"), "progressive learning (4 stages)"
    ),
}
# the two contrasts the paper is about (projection; hybrid against CNN-only) run with 2 seeds
TRAININGS = (
    ("full", 0),
    ("no_projection", 0),
    ("cnn_only", 0),
    ("no_switchable_scaling", 0),
    ("full", 1),
    ("no_projection", 1),
    ("cnn_only", 1),
    ("spos", 0),
    ("progressive", 0),
)
TIMM_CANDIDATES = (
    "lcnet_050",
    "lcnet_075",
    "mobilenetv3_small_050",
    "mobilenetv3_small_100",
    "tinynet_e",
    "ghostnet_050",
    "regnetx_002",
    "resnet10t",
)


@dataclass(frozen=True)
class Plan:
    """The sizes of one evidence run.

    Attributes:
        name: ``full`` or ``quick``.
        images_per_class: use only the first N images of each class (a linked copy of the folder), or all.
        epochs: epochs of every supernet training and of every timm model trained from scratch.
        batch_size: training batch.
        bn_batches, eval_batch: BN recalibration batches and the evaluation batch size.
        search_per_class: training images a class held out as the search split.
        val_fraction: share of each class held out as validation.
        budget_shares: MACs budgets as shares of the way from the smallest to the largest hybrid subnet.
        search_evaluations: subnets each search evaluates (evolution and random alike).
        search_seeds: seeds of each search.
        conflict_batches: training batches the gradient-conflict measurement accumulates.
        finetune_epochs: epochs of ``nasvit finetune`` of each found subnet.
        latency_repeats: timed runs of each model (batch 1, interleaved).
    """

    name: str
    images_per_class: int | None
    epochs: int
    batch_size: int
    bn_batches: int
    eval_batch: int
    search_per_class: int
    val_fraction: float
    budget_shares: tuple[float, float]
    search_evaluations: int
    search_seeds: tuple[int, ...]
    conflict_batches: int
    finetune_epochs: int
    latency_repeats: int

    def train_overrides(self, data_dir: Path, seed: int) -> list[str]:
        """The data, schedule and seed of every training of this plan."""
        return [
            f"data.dataset={data_dir}",
            f"data.batch_size={self.batch_size}",
            f"data.search_per_class={self.search_per_class}",
            f"data.val_fraction={self.val_fraction}",
            f"optim.epochs={self.epochs}",
            f"eval.every_epochs={self.epochs}",
            f"eval.bn_batches={self.bn_batches}",
            f"eval.batch_size={self.eval_batch}",
            f"seed={seed}",
            "device=cpu",
        ]


# full: 3 epochs of 44,000 images, 0.50 s a hybrid sandwich step (batch 128; 0.37 CNN-only, 0.17 single path)
# on this 2-core CPU: about 9 min a hybrid training and 1.5-2 h in all
FULL = Plan("full", None, 3, 128, 4, 256, 100, 0.1, (0.3, 0.6), 120, (0, 1, 2), 40, 1, 30)
QUICK = Plan("quick", 40, 1, 32, 2, 64, 8, 0.2, (0.3, 0.6), 12, (0, 1, 2), 3, 1, 5)


def space_of(name: str, out: Path) -> SearchSpace:
    """A space by name; ``SHARED`` is the hybrid space with one layer scale a block, written into ``out``."""
    return load_space(str(shared_scale_space(out)) if name == SHARED else name)


def shared_scale_space(out: Path) -> Path:
    """Write (once) the hybrid space with ``scale_layout: shared``: the ablation without switchable scaling."""
    path = out / "spaces" / f"{SHARED}.yaml"
    if not path.is_file():
        text = yaml.safe_load(Path(load_space(HYBRID).source).read_text())
        text.update(name=SHARED, description="The cifar space with one layer scale a block (no switching).")
        text["transformer"]["scale_layout"] = "shared"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(text, sort_keys=False))
    return path


def compared_subnets(space: SearchSpace) -> list[SubnetConfig]:
    """The smallest, the largest and ``RANDOM_SUBNETS`` subnets drawn with seed 0. A draw depends on the genes alone,
    so every space with the hybrid space's genes (the shared-scale variant) gets the very same subnets."""
    rng = random.Random(0)
    return [space.min_subnet(), space.max_subnet(), *(space.sample(rng) for _ in range(RANDOM_SUBNETS))]


def linked_subset(data: Path, out: Path, per_class: int | None) -> Path:
    """``data`` itself, or a folder of symbolic links to the first ``per_class`` images of each class."""
    if per_class is None:
        return data
    subset = out / f"data-first{per_class}"
    for class_dir in sorted(p for p in (data / "train").iterdir() if p.is_dir()):
        target = subset / "train" / class_dir.name
        target.mkdir(parents=True, exist_ok=True)
        for image in sorted(class_dir.iterdir())[:per_class]:
            link = target / image.name
            if not link.exists():
                os.symlink(image.resolve(), link)
    return subset


class Results:
    """``results.json`` of one evidence run: each stage's value and wall time, written atomically as it finishes,
    so a rerun does no finished stage again.

    Raises:
        NasvitError: the directory holds the results of another plan or dataset.
    """

    def __init__(self, path: Path, plan: Plan, data: Path):
        self.path = path
        identity = json.loads(json.dumps({"plan": asdict(plan), "data": str(data.resolve())}))  # as the file holds it
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {**identity, "stages": {}}
        if {key: self.data.get(key) for key in identity} != identity:
            raise NasvitError(
                f"{path} holds an evidence run of another plan or dataset ({self.data.get('plan', {}).get('name')}, "
                f"{self.data.get('data')}); use another --out directory"
            )
        self.data.setdefault("wall_seconds", {})

    def stage(self, key: str, compute: Callable[..., Any], *args: Any) -> Any:
        """The value of stage ``key``: recorded, or ``compute(*args)`` now, recorded with its wall time and saved."""
        if key not in self.data["stages"]:
            started = time.perf_counter()
            value = compute(*args)
            self.data["stages"][key] = value
            self.data["wall_seconds"][key] = round(time.perf_counter() - started, 1)
            write_json_atomic(self.path, self.data)
            print(f"[evidence] {key}: done in {self.data['wall_seconds'][key]:.0f} s", flush=True)
        return self.data["stages"][key]
