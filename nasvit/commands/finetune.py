"""``nasvit finetune``: train an exported subnet on new data, at its own or another resolution, and export it again
(``configs/finetune/*.yaml``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasvit.commands import add_config_arguments, add_overwrite_argument, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("finetune", help="fine-tune an exported subnet on new data, then export it")
    default = "configs/finetune/default.yaml"
    add_config_arguments(parser, default, "run directory (default: runs/finetune)", default_config=default)
    parser.add_argument("--model", required=True, help="the export directory to start from (nasvit export --out)")
    parser.add_argument("--data", help="the new dataset: an image folder, 'digits' or torch/<name> (data.dataset)")
    parser.add_argument(
        "--resolution",
        type=positive_int,
        help="train at this input side and export for it, data loaded at it (resolution and data.image_size)",
    )
    parser.add_argument("--resume", help="'auto' (latest checkpoint in the run directory) or a checkpoint path")
    add_overwrite_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from nasvit.config.finetune import FinetuneConfig
    from nasvit.config.loading import load_config
    from nasvit.recipes.finetune import FinetuneRecipe

    overrides = [f"model={args.model}", *([f"data.dataset={args.data}"] if args.data else [])]
    if args.resolution:  # before the --set overrides: a data.image_size among them that contradicts it is refused
        overrides += [f"resolution={args.resolution}", f"data.image_size={args.resolution}"]
    config = load_config(FinetuneConfig, args.config, [*overrides, *args.overrides])
    run_dir = Path(args.out or "runs/finetune")
    summary = FinetuneRecipe(config, run_dir, resume=args.resume, overwrite=args.overwrite).run()
    if "top1" in summary:
        print(f"val top-1 {summary['top1']:.2f}%, top-5 {summary['top5']:.2f}% (epoch {summary['epoch']})")
    print(f"{summary['steps_this_run']} steps in {summary['seconds']:.0f} s; export {summary['export']}")
    print(json.dumps(summary))
