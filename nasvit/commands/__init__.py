"""Subcommands of the ``nasvit`` CLI; each module has ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser, example: str, out_help: str) -> None:
    """``--config``, ``--out`` and repeatable ``--set KEY=VALUE`` of a config-driven command."""
    parser.add_argument("--config", required=True, help=f"a YAML file, e.g. {example}")
    parser.add_argument("--out", help=out_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.epochs=5 (repeatable)",
    )
