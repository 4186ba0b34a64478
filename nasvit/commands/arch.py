"""``nasvit arch to-reference`` / ``from-reference``: subnets in the NASViT reference code's dict form and back."""

from __future__ import annotations

import argparse

REFERENCE_SPACE = "nasvit_official"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("arch", help="convert subnets to and from the NASViT reference code's form")
    actions = parser.add_subparsers(dest="arch_command", required=True)
    to_reference = actions.add_parser("to-reference", help="print a subnet as a reference dict (JSON)")
    to_reference.add_argument("arch", help="min | max | random | a subnet string | a subnet JSON (file or inline)")
    to_reference.add_argument("--space", default=REFERENCE_SPACE, help=f"its space (default: {REFERENCE_SPACE})")
    to_reference.add_argument("--seed", type=int, default=0, help="seed for random")
    to_reference.set_defaults(run=run_to_reference)
    from_reference = actions.add_parser("from-reference", help="print a reference dict as a nasvit subnet")
    from_reference.add_argument("reference", help="a reference subnet dict: a JSON file or inline JSON")
    from_reference.add_argument("--space", default=REFERENCE_SPACE, help=f"its space (default: {REFERENCE_SPACE})")
    from_reference.add_argument("--json", action="store_true", help="print the nasvit subnet dict, not its string")
    from_reference.set_defaults(run=run_from_reference)


def run_to_reference(args: argparse.Namespace) -> None:
    import json

    from nasvit.commands.arch_argument import resolve_arch
    from nasvit.reference.subnet import to_reference
    from search_space import load_space

    print(json.dumps(to_reference(resolve_arch(load_space(args.space), args.arch, args.seed))))


def run_from_reference(args: argparse.Namespace) -> None:
    from nasvit.commands.arch_argument import read_json_argument
    from nasvit.reference.subnet import from_reference
    from search_space import load_space

    data, source = read_json_argument(args.reference)
    cfg = from_reference(data, load_space(args.space), source)
    print(cfg.to_json() if args.json else cfg)
