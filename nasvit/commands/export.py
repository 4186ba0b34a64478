"""``nasvit export``: a subnet of a trained supernet as a standalone, verified model."""

from __future__ import annotations

import argparse

from nasvit.commands import add_overwrite_argument, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("export", help="export a subnet as a standalone model (+ ONNX, TorchScript)")
    parser.add_argument("--checkpoint", required=True, help="a supernet checkpoint written by nasvit train")
    parser.add_argument(
        "--arch",
        required=True,
        help="a subnet string, a subnet JSON, or a search result entry: best.json#macs<=3M, pareto.json#0",
    )
    parser.add_argument("--out", required=True, help="export directory")
    parser.add_argument("--onnx", action="store_true", help="also write model.onnx (verified with onnxruntime)")
    parser.add_argument("--torchscript", action="store_true", help="also write model.ts (TorchScript)")
    parser.add_argument(
        "--onnx-dynamic-size",
        action="store_true",
        help="write model.onnx taking any image size (resized to the subnet's); implies --onnx",
    )
    parser.add_argument("--data", help="dataset for BN recalibration (default: the checkpoint's training data)")
    parser.add_argument("--root", help="data root for --data")
    parser.add_argument("--bn-batches", type=positive_int, default=8, help="training batches for BN recalibration")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights, not the EMA")
    add_overwrite_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from nasvit.commands.arch_argument import resolve_arch_entry
    from nasvit.data import DataConfig
    from nasvit.export.directory import ExportOptions, export_subnet
    from nasvit.runtime import checkpoint
    from search_space import parse_space

    state = checkpoint.load(args.checkpoint)
    space = parse_space(state["space"], source=f"{args.checkpoint} (space)")
    cfg, metrics = resolve_arch_entry(space, args.arch)
    data = None
    if args.data:
        data = DataConfig(dataset=args.data, root=args.root, image_size=max(space.resolutions))
    report = export_subnet(
        state,
        args.checkpoint,
        cfg,
        args.out,
        metrics,
        data,
        args.bn_batches,
        args.batch_size,
        use_ema=not args.no_ema,
        options=ExportOptions(
            onnx=args.onnx or args.onnx_dynamic_size,
            torchscript=args.torchscript,
            onnx_dynamic_size=args.onnx_dynamic_size,
            overwrite=args.overwrite,
        ),
    )
    print(f"exported {report.subnet}")
    for name, difference in report.differences.items():
        print(
            f"  largest |difference| against {'the supernet' if name == 'supernet' else 'PyTorch'} ({name}): "
            f"{difference:.2e}"
        )
    print(f"  wrote {', '.join(report.files)} to {report.out_dir}")
