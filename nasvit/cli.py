"""The ``nasvit`` command line: ``nasvit <command> --help`` for each command."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from nasvit.commands import demo, evaluate, export, flops, latency, search, space, train
from nasvit.errors import USER_ERRORS

COMMANDS = (demo, space, flops, train, search, export, evaluate, latency)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasvit", description="NAS of efficient hybrid CNN/ViT models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        args.run(args)
    except USER_ERRORS as error:
        print(f"nasvit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nasvit {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _interrupt(signum, frame) -> None:
    """Turn SIGTERM (a scheduler or `kill`) into KeyboardInterrupt, so runs checkpoint before exiting."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
