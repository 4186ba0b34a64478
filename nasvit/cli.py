"""The ``nasvit`` command line: ``nasvit <command> --help`` for each command."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import signal
import sys

from nasvit.commands import (
    arch,
    convert_reference,
    demo,
    evaluate,
    export,
    finetune,
    flops,
    latency,
    scale,
    search,
    space,
    train,
)
from nasvit.errors import USER_ERRORS

COMMANDS = (demo, space, flops, arch, scale, train, search, export, evaluate, finetune, latency, convert_reference)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasvit", description="NAS of efficient hybrid CNN/ViT models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also NASVIT_DEBUG=1)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_output(args.verbose)
    signal.signal(signal.SIGTERM, _interrupt)
    debug = args.debug or os.environ.get("NASVIT_DEBUG", "") not in ("", "0")
    try:
        status = args.run(args)  # a command returns a non-zero status when it finished but fell short (demo)
    except BrokenPipeError:  # the reader went away (`nasvit ... | head`): stop quietly, as a pipeline expects
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (*USER_ERRORS, OSError) as error:
        if debug:
            raise
        message = describe_os_error(error) if isinstance(error, OSError) else str(error)
        print(f"nasvit {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nasvit {args.command}: interrupted", file=sys.stderr)
        return 130
    return status or 0


_OS_ERROR_FIXES = {
    errno.EACCES: "choose a path you can write to, or change its permissions",
    errno.EPERM: "choose a path you can write to, or change its permissions",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "the disk is full; free space or choose another path",
    errno.EISDIR: "it is a directory; pass a file path",
    errno.ENOTDIR: "a part of the path is a file, not a directory; pass another path",
    errno.ENOENT: "check the path",
}


def describe_os_error(error: OSError) -> str:
    """One line for a failed file operation: what failed, on which path, and what to do."""
    path = f": {error.filename}" if error.filename is not None else ""
    fix = _OS_ERROR_FIXES.get(error.errno, "check the path and try again")
    return f"{error.strerror or error}{path}; {fix}"


def _configure_output(verbose: bool) -> None:
    """Log INFO (DEBUG with -v) on rank 0; under torchrun the other ranks log only warnings and errors, prefixed
    with their rank, and print nothing on stdout (rank 0 prints the results)."""
    rank = int(os.environ.get("RANK", "0") or 0)
    level = logging.DEBUG if verbose else logging.INFO
    if rank == 0:
        logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
        return
    logging.basicConfig(level=logging.WARNING, format=f"[rank {rank}] %(levelname)s %(name)s: %(message)s")
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process


def _interrupt(signum, frame) -> None:
    """Turn SIGTERM (a scheduler or `kill`) into KeyboardInterrupt, so runs checkpoint before exiting."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
