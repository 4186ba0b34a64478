"""Subcommands of the ``nasvit`` CLI; each module has ``add_parser(subparsers)`` and ``run(args)``."""

from __future__ import annotations

import argparse


def add_config_arguments(
    parser: argparse.ArgumentParser, example: str, out_help: str, default_config: str | None = None
) -> None:
    """``--config`` (required unless ``default_config``), ``--out`` and repeatable ``--set KEY=VALUE`` of a
    config-driven command."""
    if default_config is None:
        parser.add_argument("--config", required=True, help=f"a YAML file, e.g. {example}")
    else:
        parser.add_argument("--config", default=default_config, help=f"a YAML file (default: {default_config})")
    parser.add_argument("--out", help=out_help)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set optim.epochs=5 (repeatable)",
    )


def add_overwrite_argument(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: replace the nasvit run already in the output directory (it is cleared first)."""
    parser.add_argument(
        "--overwrite", action="store_true", help="clear and replace a nasvit run already in the output directory"
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (a count or a size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value
