"""``nasvit flops``: MACs, parameters and activations of one subnet from the analytical cost model."""

from __future__ import annotations

import argparse
import json

from nasvit.commands import positive_int
from nasvit.commands.arch_argument import resolve_arch
from search_space import Cost, format_count, load_space


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("flops", help="cost of a subnet: MACs, params, activations")
    parser.add_argument("--space", required=True, help="a name in configs/space/ or a path to a YAML file")
    parser.add_argument("--arch", default="max", help="min | max | random | a subnet string | a subnet JSON file")
    parser.add_argument("--seed", type=int, default=0, help="seed for --arch random")
    parser.add_argument("--resolution", type=positive_int, help="override the subnet's input resolution")
    parser.add_argument("--num-classes", type=positive_int, help="classifier size (default: the space's num_classes)")
    parser.add_argument(
        "--by-part", action="store_true", help="also give the cost of the stem, each stage and the head"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    space = load_space(args.space)
    cfg = resolve_arch(space, args.arch, args.seed)
    if args.resolution is not None:
        cfg = cfg.replace(resolution=args.resolution)
    cost = space.cost(cfg, args.num_classes)
    parts = space.cost_breakdown(cfg, args.num_classes) if args.by_part else {}
    if args.json:
        payload = {**_figures(cost), "resolution": cfg.resolution, "arch": str(cfg)}
        print(json.dumps({**payload, **({"parts": {name: _figures(c) for name, c in parts.items()}} if parts else {})}))
        return
    print(f"arch:        {cfg}")
    print(f"resolution:  {cfg.resolution}")
    print(f"MACs:        {format_count(cost.macs)} ({cost.macs:,})")
    print(f"params:      {format_count(cost.params)} ({cost.params:,})")
    print(f"activations: {format_count(cost.activations)} ({cost.activations:,})")
    if parts:
        print(f"\n{'part':8s} {'MACs':>9s} {'params':>9s} {'activations':>12s} {'MACs share':>11s}")
        for name, part in parts.items():
            share = 100 * part.macs / cost.macs if cost.macs else 0.0
            print(
                f"{name:8s} {format_count(part.macs):>9s} {format_count(part.params):>9s} "
                f"{format_count(part.activations):>12s} {share:10.1f}%"
            )


def _figures(cost: Cost) -> dict[str, int]:
    return {"macs": cost.macs, "params": cost.params, "activations": cost.activations}
