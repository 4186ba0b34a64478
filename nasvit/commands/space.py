"""``nasvit space show SPACE``: the stages and choices of a space, its size and its cost range."""

from __future__ import annotations

import argparse

from search_space import format_count, load_space


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="inspect search spaces")
    actions = parser.add_subparsers(dest="space_command", required=True)
    show = actions.add_parser("show", help="print a table of the stages and choices of a space")
    show.add_argument("space", help="a name in configs/space/ or a path to a YAML file")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> None:
    space = load_space(args.space)
    print(f"space {space.name}: {space.description}")
    print(f"resolutions {list(space.resolutions)}, activation {space.activation}, source {space.source}")
    blocks = any(s.has_block_choice for s in space.stages)  # a column only for spaces with block choices
    rows = [("stage", "kind", "stride", "SE", "width", "depth", "kernel", "expand", "mlp", "windows", "block")]
    rows.append(("stem", "conv", str(space.stem.stride), "-", _list(space.stem.widths), "1", str(space.stem.kernel)))
    for s in space.stages:
        transformer = s.is_transformer
        rows.append(
            (
                s.name,
                s.kind.value,
                str(s.stride),
                "yes" if s.se else "no",
                _list(s.widths),
                _list(s.depths),
                _list(s.kernels),
                _list(s.expand_ratios),
                _list(s.mlp_ratios) if transformer else "-",
                _list(s.windows) if transformer else "-",
                _list(s.block_codes) if blocks else "",
            )
        )
    rows.append(("head", "mbpool", "-", "-", _list(space.head.widths), "-", "-", str(space.head.expand_ratio)))
    rows[0] = rows[0] if blocks else rows[0][:-1]
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"distinct subnets: {space.num_subnets:,}")
    for label, cfg in (("smallest", space.min_subnet()), ("largest", space.max_subnet())):
        cost = space.cost(cfg)
        print(
            f"{label}: {format_count(cost.macs)} MACs, {format_count(cost.params)} params, "
            f"{format_count(cost.activations)} activations  ({cfg})"
        )


def _list(values) -> str:
    return "{" + ",".join(str(v) for v in values) + "}"
