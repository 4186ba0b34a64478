"""``nasvit search``: evolutionary search over a trained supernet (``configs/search/*.yaml``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nasvit.commands import add_config_arguments, add_overwrite_argument


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("search", help="search subnets under budgets (constrained GA or NSGA-II)")
    add_config_arguments(parser, "configs/search/tiny.yaml", "output directory (default: runs/search-<config name>)")
    parser.add_argument("--checkpoint", required=True, help="a supernet checkpoint written by nasvit train")
    parser.add_argument("--resume", action="store_true", help="continue the search logged in --out")
    add_overwrite_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from evolve import describe_budget
    from nasvit.config.loading import load_config
    from nasvit.config.search import SearchConfig
    from nasvit.recipes.search import SearchRecipe

    config = load_config(SearchConfig, args.config, args.overrides)
    out = Path(args.out) if args.out else Path("runs") / f"search-{Path(args.config).stem}"
    summary = SearchRecipe(config, args.checkpoint, out, resume=args.resume, overwrite=args.overwrite).run()
    if not summary:
        return
    for budget, best in summary["best"].items():
        check = (best or {}).get("latency_check")
        label = describe_budget(budget, (best or {}).get("limit") or (check or {}).get("limit_ms"))
        if check is not None and not check["met"]:
            print(f"{label}: NOT MET on this device (see latency_check in {out / 'best.json'})")
        elif best is None:
            print(f"{label}: no feasible subnet found")
        else:
            measured = "" if check is None else f", measured {check['measured_ms']:.2f} ms (p90 {check['p90_ms']:.2f})"
            print(
                f"{label}: top-1 {best['top1']:.2f}% at {best['macs'] / 1e6:.2f}M MACs, {best['params'] / 1e6:.3f}M "
                f"params{measured}  {best['subnet']}"
            )
    calibration, measuring = summary["calibration_seconds"], summary["accuracy_seconds"]
    share = calibration / max(calibration + measuring, 1e-9)
    print(
        f"{summary['evaluations']} evaluations in {summary['seconds']:.0f} s "
        f"({summary['evaluations_per_minute']:.0f}/min, {100 * share:.0f}% of evaluation time in BN recalibration); "
        f"files in {out}"
    )
    print(json.dumps(summary))
