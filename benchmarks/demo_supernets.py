"""What the benchmarks on the digits demo share: its training recipe, the subnets they compare and their top-1.

from demo_supernets import ranked_subnets, supernet_top1, train   # benchmarks/ is the script's directory
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.data import build_data, fixed_batches, make_loader
from nasvit.evaluation import evaluate_subnet
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import SubnetConfig, load_space

DEMO = "configs/train/demo.yaml"
RANDOM_SUBNETS = 6


def train(out: Path, *overrides: str) -> dict:
    """A demo-recipe supernet training into ``out`` (resumed when a checkpoint is there); its summary and wall time."""
    config = load_config(TrainConfig, DEMO, ["device=cpu", *overrides])
    started = time.perf_counter()
    summary = TrainRecipe(config, out, resume="auto" if checkpoint.latest(out) else None).run()
    return {**summary, "wall_seconds": time.perf_counter() - started}


def ranked_subnets() -> list[SubnetConfig]:
    """The compared subnets of the demo space: the smallest, the largest and ``RANDOM_SUBNETS`` drawn with seed 0."""
    space = load_space("demo")
    rng = random.Random(0)
    return [space.min_subnet(), space.max_subnet(), *(space.sample(rng) for _ in range(RANDOM_SUBNETS))]


def supernet_top1(run_dir: Path, subnets: list[SubnetConfig]) -> list[float]:
    """Validation top-1 of each subnet in the supernet of ``run_dir``, after BN recalibration as in training."""
    state = checkpoint.load(checkpoint.latest(run_dir))
    config = load_config(TrainConfig, run_dir / "config.yaml")
    net = checkpoint.supernet_from_state(state)
    data = build_data(config.data)
    calibration = fixed_batches(data.train_eval, config.eval.bn_batches, config.eval.batch_size, config.seed)
    val = make_loader(data.val, config.eval.batch_size)
    return [evaluate_subnet(net, cfg, calibration, val, reduce=False)["top1"] for cfg in subnets]


def results_file(description: str, empty: dict) -> tuple[Path, dict]:
    """Parse ``--out DIR`` (created), and the path of ``DIR/results.json`` with what it holds (``empty`` if none)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="runs and results.json")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    return path, json.loads(path.read_text()) if path.is_file() else empty
