"""``nasvit convert-reference CKPT --out OUT.pt``: the released NASViT supernet as a nasvit checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-reference",
        help="convert a NASViT reference-code checkpoint (the released supernet) into a nasvit checkpoint",
    )
    parser.add_argument("checkpoint", help="the reference checkpoint (.pth), e.g. the released supernet")
    parser.add_argument("--out", required=True, help="the nasvit checkpoint to write (.pt)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from nasvit.errors import NasvitError
    from nasvit.reference.convert import OFFICIAL_SPACE, convert_reference, write_converted
    from nasvit.reference.mapping import DROP_REASONS

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise NasvitError(f"{out} exists; pass --overwrite to replace it, or another --out")
    conversion = convert_reference(args.checkpoint)
    written = write_converted(conversion, out)
    weights = f"EMA weights ({conversion.ema_entry}) as 'ema', used by default; " if conversion.ema_entry else ""
    raw = "raw" if conversion.ema_entry else "the only"
    print(f"converted {args.checkpoint} (epoch {conversion.epoch}) to space {OFFICIAL_SPACE}")
    print(f"  weights: {weights}{raw} weights ({conversion.model_entry}) as 'model' (--no-ema / use_ema: false)")
    print(f"  used {conversion.used} reference tensors; dropped:")
    for kind, count in conversion.dropped.items():
        print(f"    {count} {DROP_REASONS[kind]}")
    print(f"  wrote {written}")
    print(
        "  no data settings converted: name the data (nasvit export --data DIR; nasvit search --set data.dataset=DIR)"
    )
