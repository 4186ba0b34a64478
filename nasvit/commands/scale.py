"""``nasvit scale``: a subnet scaled beyond its space by a rule (one dimension, compound or fast compound).

Each scaled subnet comes with a one-subnet space (``--out DIR`` writes it as ``<rule>_x<factor>.yaml``) that
``nasvit train --set space=FILE`` trains and ``nasvit export`` / ``latency measure`` / timm take like any other
space (see :mod:`search_space.scaling`). With ``--checkpoint`` (the base subnet's supernet) each also gets
``<rule>_x<factor>.pt``, starting weights taken from that supernet where shapes allow
(:mod:`nasvit.recipes.scaled_init`), for ``--set init_from=FILE``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from nasvit.commands.arch_argument import resolve_arch
from nasvit.errors import NasvitError
from nasvit.runtime.atomic_json import write_text_atomic
from search_space import format_count, load_space, space_to_dict
from search_space.scaling import FAST_ALPHA, RULES, ScaledSubnet, scale_subnet

MACS_TOLERANCE = 0.03  # a scaled subnet's MACs within 3% of the target count as met


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("scale", help="scale a subnet beyond its space (compound, fast dWr, one dimension)")
    parser.add_argument("--space", required=True, help="the base subnet's space: a name in configs/space/ or a file")
    parser.add_argument("--arch", required=True, help="min | max | a subnet string | best.json#BUDGET | a JSON file")
    parser.add_argument(
        "--factor", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="MACs factors s (default: 2 4 8)"
    )
    parser.add_argument("--rule", nargs="+", choices=RULES, default=list(RULES), help="rules (default: all)")
    parser.add_argument("--alpha", type=float, default=FAST_ALPHA, help="width share of the fast rule (default 0.8)")
    parser.add_argument("--phi", type=float, help="EfficientNet's phi instead of a factor (efficientnet rule only)")
    parser.add_argument("--out", help="write each scaled subnet's one-subnet space here as <rule>_x<factor>.yaml")
    parser.add_argument(
        "--checkpoint",
        help="the base's supernet checkpoint: with --out, also write <rule>_x<factor>.pt, starting weights taken "
        "from it where shapes allow, for nasvit train --set init_from=FILE",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    base = resolve_arch(space, args.arch)
    if args.phi is not None and args.rule != ["efficientnet"]:
        raise NasvitError(f"--phi {args.phi} sets EfficientNet's rule; pass --rule efficientnet with it")
    if args.checkpoint and not args.out:
        raise NasvitError(f"--checkpoint {args.checkpoint} writes starting weights next to each space; add --out DIR")
    start = _load_base_weights(args.checkpoint, base.space) if args.checkpoint else None
    settings = (
        [(rule, None, args.phi) for rule in args.rule]
        if args.phi is not None
        else [(rule, factor, None) for rule in args.rule for factor in args.factor]
    )
    try:
        results = [scale_subnet(base, rule, factor, args.alpha, phi) for rule, factor, phi in settings]
    except ValueError as error:
        raise NasvitError(str(error)) from None
    files = _write_spaces(results, Path(args.out)) if args.out else [None] * len(results)
    starts = _write_starting_weights(results, base, start, args.checkpoint, files) if start else {}
    if args.json:
        entries = [{**_entry(r, f), **starts.get(f, {})} for r, f in zip(results, files)]
        print(json.dumps({"base": str(base), "scaled": entries}))
    else:
        _print_table(base, results, files)
        _print_starts(starts, args.checkpoint)
    return 0


def _load_base_weights(checkpoint_path: str, space) -> tuple:
    """The base supernet's weights, class count and which weights they are (before anything is written)."""
    from nasvit.recipes.scaled_init import base_weights

    return base_weights(checkpoint_path, space)


def _write_starting_weights(
    results: list[ScaledSubnet], base, start: tuple, checkpoint_path: str, files: list[Path]
) -> dict[Path, dict]:
    """``<rule>_x<factor>.pt`` next to each space file (:mod:`nasvit.recipes.scaled_init`); space file -> the
    starting checkpoint's path, the share of parameters taken from ``checkpoint_path`` and which weights."""
    from nasvit.recipes.scaled_init import write_scaled_checkpoint

    weights, num_classes, entry = start
    starts = {}
    for result, path in zip(results, files):
        out = path.with_suffix(".pt")
        transfer = write_scaled_checkpoint(result, base, weights, num_classes, checkpoint_path, out)
        starts[path] = {"init_from": str(out), "init_parameter_share": transfer.parameter_share, "init_weights": entry}
    return starts


def _print_starts(starts: dict[Path, dict], checkpoint_path: str) -> None:
    for start in starts.values():
        print(
            f"{start['init_from']}: {start['init_parameter_share']:.1%} of the parameters from {checkpoint_path} "
            f"({start['init_weights']} weights)"
        )
    if starts:
        path, start = next(iter(starts.items()))
        print(f"start from one with nasvit train --config ... --set space={path} --set init_from={start['init_from']}")


def _write_spaces(results: list[ScaledSubnet], out: Path) -> list[Path]:
    """Write each scaled subnet's space as YAML (its subnet string in a comment); returns the paths."""
    paths = []
    for result in results:
        path = out / f"{result.rule}_x{result.factor:g}.yaml"
        header = f"# {result.rule} x{result.factor:g} of the base subnet; its one subnet:\n# {result.cfg}\n"
        paths.append(write_text_atomic(path, header + yaml.safe_dump(space_to_dict(result.space), sort_keys=False)))
    return paths


def _entry(result: ScaledSubnet, path: Path | None) -> dict:
    cost, base = result.cost, result.base_cost
    return {
        "rule": result.rule,
        "factor": result.factor,
        "multiplier": result.multiplier,
        "width_correction": result.width_correction,
        "subnet": str(result.cfg),
        "space_file": str(path) if path else None,
        "macs": cost.macs,
        "params": cost.params,
        "activations": cost.activations,
        "ratios": {
            "macs": cost.macs / base.macs,
            "params": cost.params / base.params,
            "activations": cost.activations / base.activations,
        },
        "macs_within_3_percent": abs(cost.macs / base.macs / result.factor - 1.0) <= MACS_TOLERANCE,
    }


def _print_table(base, results: list[ScaledSubnet], files: list[Path | None]) -> None:
    cost = base.space.cost(base)
    print(f"base: {base}")
    print(
        f"      {format_count(cost.macs)} MACs, {format_count(cost.params)} params, "
        f"{format_count(cost.activations)} activations\n"
    )
    header = f"{'rule':12s} {'s':>4s} {'MACs':>9s} {'x MACs':>7s} {'x params':>9s} {'x acts':>7s} {'res':>5s}"
    print(f"{header}  depths / widths")
    for result, path in zip(results, files):
        entry = _entry(result, path)
        ratios = entry["ratios"]
        mark = "" if entry["macs_within_3_percent"] else "  (rounding: not within 3%)"
        depths = "-".join(str(choice.depth) for choice in result.cfg.stages)
        widths = "-".join(str(choice.width) for choice in result.cfg.stages)
        print(
            f"{result.rule:12s} {result.factor:4g} {format_count(result.cost.macs):>9s} {ratios['macs']:7.2f} "
            f"{ratios['params']:9.2f} {ratios['activations']:7.2f} {result.cfg.resolution:5d}  d {depths} / w {widths}"
            f"{mark}"
        )
    written = [str(path) for path in files if path]
    if written:
        print(
            f"\nwrote {len(written)} one-subnet spaces to {Path(written[0]).parent}; train one with "
            f"nasvit train --config ... --set space={written[0]}"
        )
