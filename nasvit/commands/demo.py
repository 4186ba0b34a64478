"""``nasvit demo``: train, search, export and measure on the embedded dataset (the README's main job)."""

from __future__ import annotations

import argparse
import json
import time


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="the whole pipeline on the embedded digits dataset, on a CPU")
    parser.add_argument("--out", default="runs/demo", help="run directory (a rerun reuses finished stages)")
    parser.add_argument(
        "--set-train",
        dest="train_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the training config (configs/train/demo.yaml)",
    )
    parser.add_argument(
        "--set-search",
        dest="search_overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override the search config (configs/search/demo.yaml)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nasvit.recipes.demo import DemoRecipe, format_table

    start = time.perf_counter()
    recipe = DemoRecipe(
        args.out, train_overrides=tuple(args.train_overrides), search_overrides=tuple(args.search_overrides)
    )
    rows = recipe.run()
    pareto = recipe.out / "search" / "pareto.json"
    front = json.loads(pareto.read_text())["front"] if pareto.exists() else []
    print()
    print(format_table(rows))
    print(
        f"\nPareto front: {len(front)} subnets, plotted in {recipe.out / 'search' / 'pareto.png'}; summary: "
        f"{recipe.out / 'summary.json'}; {time.perf_counter() - start:.0f} s in all"
    )
    missed = [row["budget"] for row in rows if not row["met"]]
    if missed:
        print(f"NOT MET: {', '.join(missed)} (the other budgets were searched, exported and measured)")
        return 1
    print(f"all {len(rows)} budgets met")
    return 0
