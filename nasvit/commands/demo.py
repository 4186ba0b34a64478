"""``nasvit demo``: train, search, export and measure on the embedded dataset (the README's main job)."""

from __future__ import annotations

import argparse
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


def run(args: argparse.Namespace) -> None:
    from nasvit.recipes.demo import DemoRecipe, format_table

    start = time.perf_counter()
    recipe = DemoRecipe(
        args.out, train_overrides=tuple(args.train_overrides), search_overrides=tuple(args.search_overrides)
    )
    rows = recipe.run()
    print()
    print(format_table(rows))
    print(
        f"\nPareto plot: {recipe.out / 'search' / 'pareto.png'}; summary: {recipe.out / 'summary.json'}; "
        f"{time.perf_counter() - start:.0f} s in all"
    )
