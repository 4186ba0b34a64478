"""``nasvit train``: train a supernet from a config (``configs/train/*.yaml``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasvit.commands import add_config_arguments, add_overwrite_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a supernet (sandwich rule, distillation, projection)")
    add_config_arguments(parser, "configs/train/tiny.yaml", "run directory (default: runs/<config name>)")
    parser.add_argument("--resume", help="'auto' (latest checkpoint in the run directory) or a checkpoint path")
    add_overwrite_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from nasvit.config.loading import load_config
    from nasvit.config.train import TrainConfig
    from nasvit.recipes.train import TrainRecipe

    config = load_config(TrainConfig, args.config, args.overrides)
    run_dir = Path(args.out) if args.out else Path("runs") / Path(args.config).stem
    summary = TrainRecipe(config, run_dir, resume=args.resume, overwrite=args.overwrite).run()
    if "max_top1" in summary:
        print(
            f"val top-1 after BN recalibration: largest {summary['max_top1']:.2f}%, "
            f"smallest {summary['min_top1']:.2f}% (epoch {summary['epoch']}, step {summary['step']})"
        )
    print(f"{summary['steps_this_run']} steps in {summary['seconds']:.0f} s; run directory {run_dir}")
    print(json.dumps({k: v for k, v in summary.items()}))
