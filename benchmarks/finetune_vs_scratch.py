"""Fine-tuning an exported digits subnet on a new 5-class task against the same subnet trained from scratch.

    python benchmarks/finetune_vs_scratch.py --parent runs/demo/export/macs_le_3M [--steps 120] [--out runs/transfer]

The new task is an image folder made here: the 1,797 digits as 8x8 PNGs, relabelled into 5 classes (0-1, 2-3,
4-5, 6-7, 8-9), every fifth image of a class held out for validation. Both runs use configs/finetune/default.yaml
with the same seed, data order and number of steps; only the initial weights differ (the export's, or random). It
prints the validation top-1 of each, their gap, and the wall time of the fine-tuning run (export included).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nasvit.config.finetune import FinetuneConfig
from nasvit.config.loading import load_config
from nasvit.data.digits import write_digits_folder
from nasvit.recipes.finetune import FinetuneRecipe


def run(parent: Path, folder: Path, out: Path, steps: int, pretrained: bool) -> tuple[dict, float]:
    overrides = [f"model={parent}", f"data.dataset={folder}", f"max_steps={steps}", f"pretrained={pretrained}"]
    config = load_config(FinetuneConfig, "configs/finetune/default.yaml", [*overrides, "device=cpu"])
    started = time.perf_counter()
    summary = FinetuneRecipe(config, out, overwrite=True).run()
    return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parent", required=True, type=Path, help="an export directory of a digits subnet")
    parser.add_argument("--steps", type=int, default=120, help="optimiser steps of each run")
    parser.add_argument("--out", type=Path, default=Path("runs/transfer"))
    args = parser.parse_args()
    folder = args.out / "pairs"
    if not folder.is_dir():
        write_digits_folder(folder, lambda digit: f"pair{digit // 2}")
    tuned, seconds = run(args.parent, folder, args.out / "finetuned", args.steps, pretrained=True)
    scratch, _ = run(args.parent, folder, args.out / "scratch", args.steps, pretrained=False)
    print(f"{'start':<22} {'steps':>6} {'val top-1':>10}")
    print(f"{'the export (fine-tune)':<22} {tuned['steps']:>6} {tuned['top1']:>9.2f}%")
    print(f"{'random (from scratch)':<22} {scratch['steps']:>6} {scratch['top1']:>9.2f}%")
    print(
        f"gap {tuned['top1'] - scratch['top1']:+.2f} points; fine-tuning took {seconds:.0f} s; export {tuned['export']}"
    )


if __name__ == "__main__":
    main()
