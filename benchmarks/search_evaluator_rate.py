"""Evaluations per second of the search's subnet evaluator on the demo, and where its time goes.

    python benchmarks/search_evaluator_rate.py [--checkpoint CKPT] [--subnets 40]

Scores random `tiny` subnets as `nasvit search` does (BN recalibration on 4 fixed batches of 128 training
images, then top-1 on the held-out search split, both in memory) and prints the rate and the share of time
spent in BN recalibration against accuracy measurement. Without a checkpoint the supernet has its initial
weights, which time the same.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from nasvit.data import DataConfig, build_data, fixed_batches
from nasvit.recipes.search_evaluator import SupernetEvaluator
from nasvit.runtime import checkpoint
from search_space import load_space
from supernet import Supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a demo supernet checkpoint (optional)")
    parser.add_argument("--subnets", type=int, default=40)
    args = parser.parse_args()
    space = load_space("tiny")
    data = build_data(DataConfig())
    net = Supernet(space, data.num_classes)
    if args.checkpoint:
        net.load_state_dict(checkpoint.load(args.checkpoint)["model"])
    evaluator = SupernetEvaluator(
        net, fixed_batches(data.train_eval, 4, 128, 0), fixed_batches(data.search, None, 128, 0)
    )
    rng = random.Random(0)
    cfgs = [space.sample(rng) for _ in range(args.subnets)]
    evaluator(cfgs[:2])  # warm-up
    evaluator.seconds = {"calibration": 0.0, "accuracy": 0.0}
    start = time.perf_counter()
    with torch.no_grad():
        evaluator(cfgs)
    elapsed = time.perf_counter() - start
    calibration, accuracy = evaluator.seconds["calibration"], evaluator.seconds["accuracy"]
    rate = args.subnets / elapsed
    print(f"{args.subnets} random tiny subnets: {rate:.1f} evaluations/s ({60 * rate:.0f}/min)")
    print(
        f"time in BN recalibration: {100 * calibration / elapsed:.0f}%, in accuracy measurement: "
        f"{100 * accuracy / elapsed:.0f}% (ratio {calibration / accuracy:.2f})"
    )


if __name__ == "__main__":
    main()
