"""Does the method work on a real dataset? NASViT's ablations, its gradient-conflict measurement, search against
random sampling, and found subnets against hand-designed timm models, on a folder of CIFAR-10-like images.

    python benchmarks/evidence.py --data DIR --out OUT [--quick]
    python benchmarks/evidence.py --out OUT --report-only      # report.md and plots again from OUT/results.json

DIR holds ``train/<class>/<image>`` (a validation subfolder is optional: without one a seeded share of each class
is held out). ``--quick`` runs every stage small (the first 40 images of a class, one epoch) to check the pipeline.
Stages, each run once and recorded in ``OUT/results.json`` with its wall time (a rerun goes on from the first
unfinished one; an interrupted training resumes from its checkpoint):

1. ``train/<variant>-seed<s>``: the ablation trainings of ``evidence_plan.TRAININGS`` (``configs/train/cifar.yaml``
   with one change each: without gradient projection, without switchable scaling, the CNN-only space, single path
   one-shot, progressive learning; the projection and hybrid/CNN contrasts with 2 seeds).
2. ``subnets/<variant>-seed<s>``: validation top-1 of the smallest, the largest and 5 fixed random subnets (the same
   in every hybrid variant), after BN recalibration.
3. ``conflicts/full`` and ``conflicts/cnn_only``: dataset-level gradient conflict per stage (seed 0 supernets).
4. ``search/<budget>/<method>/<seed>``: evolution and random sampling, the same number of evaluated subnets, two
   MACs budgets, on the full-method supernet (seed 0), over the plan's seeds.
5. ``finetune/<i>``: the evolution's best subnet of budget i (seed 0) exported and fine-tuned (``nasvit finetune``).
6. ``latency``, ``timm_choice``, ``timm/<model>``: batch-1 CPU latency of the found subnets and of timm candidates,
   the nearest candidate to each found subnet, trained from scratch with the same recipe and epochs.

Then ``OUT/report.md`` with plots, drawn from ``results.json`` alone. Time nothing else while it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evidence_baselines import latencies, nearest_timm_models, train_timm
from evidence_plan import FULL, HYBRID, QUICK, TRAININGS, Plan, Results, linked_subset, space_of
from evidence_report import write_report
from evidence_search import METHODS, LazyScorer, budget_labels, finetune, search
from evidence_training import gradient_conflicts, run_name, subnet_top1, train_variant

from nasvit.errors import NasvitError


def supernet_stages(results: Results, plan: Plan, data: Path, out: Path) -> None:
    for variant, seed in TRAININGS:
        name = run_name(variant, seed)
        results.stage(f"train/{name}", train_variant, plan, data, out, variant, seed)
        results.stage(f"subnets/{name}", subnet_top1, out, variant, seed)
    for variant in ("full", "cnn_only"):
        results.stage(f"conflicts/{variant}", gradient_conflicts, plan, out, variant)


def search_stages(results: Results, plan: Plan, data: Path, out: Path, budgets: list[str]) -> list[str]:
    """The searches and the fine-tunes of their winners; returns the fine-tuned exports."""
    run_dir = out / "train" / run_name("full", 0)
    scorer = LazyScorer(plan, run_dir, out / "search-scorer", budgets)  # set up on first use: a finished run needs none
    for budget in budgets:
        for method in METHODS:
            for seed in plan.search_seeds:
                results.stage(f"search/{budget}/{method}/{seed}", search, plan, scorer, run_dir, budget, method, seed)
    exports = []
    for index, budget in enumerate(budgets):
        found = results.data["stages"][f"search/{budget}/evolution/0"]["best_subnet"]
        tuned = results.stage(f"finetune/{index}", finetune, plan, data, out, run_dir, found, f"found_{index}")
        exports.append(tuned["export"])
    return exports


def baseline_stages(results: Results, plan: Plan, data: Path, out: Path, exports: list[str]) -> None:
    named = {f"found_{i}": path for i, path in enumerate(exports)}
    measured = results.stage("latency", latencies, plan, named, 32)
    chosen = results.stage("timm_choice", nearest_timm_models, measured, list(named))
    for model in chosen:
        results.stage(f"timm/{model}", train_timm, plan, data, out, model)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="image folder with train/<class>/<image>")
    parser.add_argument("--out", type=Path, required=True, help="runs, results.json, report.md and plots")
    parser.add_argument("--quick", action="store_true", help="every stage small (about 15 min), to check the pipeline")
    parser.add_argument("--report-only", action="store_true", help="write report.md from OUT/results.json and stop")
    args = parser.parse_args()
    try:
        results = (
            read_results(args.out) if args.report_only else run(args.data, args.out, QUICK if args.quick else FULL)
        )
    except NasvitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {write_report(results, args.out)}")
    return 0


def run(data: Path | None, out: Path, plan: Plan) -> dict:
    """Every stage not yet recorded in ``out/results.json``; returns the results."""
    if data is None:
        raise NasvitError("--data is missing; give the image folder that holds train/<class>/<image>")
    if not (data / "train").is_dir():
        raise NasvitError(f"--data {data} has no train/ folder; give the folder that holds train/<class>/")
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / "results.json", plan, data)
    budgets = budget_labels(plan, space_of(HYBRID, out))
    data = linked_subset(data, out, plan.images_per_class)
    supernet_stages(results, plan, data, out)
    exports = search_stages(results, plan, data, out, budgets)
    baseline_stages(results, plan, data, out, exports)
    return results.data


def read_results(out: Path) -> dict:
    path = out / "results.json"
    if not path.is_file():
        raise NasvitError(f"{path} does not exist; run the evidence into {out} first (without --report-only)")
    return json.loads(path.read_text())


if __name__ == "__main__":
    sys.exit(main())
