"""``nasvit eval``: top-1/top-5 and throughput of an exported model (its inference form) on a dataset, at the
export's own resolution or, with ``--resolution``, at another (:mod:`supernet.resolution`)."""

from __future__ import annotations

import argparse
import time

from nasvit.commands import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="accuracy and throughput of an exported model")
    parser.add_argument("--model", required=True, help="an export directory (nasvit export --out)")
    parser.add_argument(
        "--data", help="'digits', an ImageFolder path, or torch/<name> (default: the data the export records)"
    )
    parser.add_argument("--root", help="data root for folder and torch datasets given with --data")
    parser.add_argument("--split", default="val", choices=["val", "search", "train_eval"])
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--image-size", type=positive_int, help="load size (default: the export's)")
    parser.add_argument(
        "--resolution",
        type=positive_int,
        help="run the model at this input side instead of its own, data loaded at it (its position tables resized)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import torch

    from nasvit.data import build_data
    from nasvit.errors import NasvitError
    from nasvit.evaluation import accuracy
    from nasvit.export.directory import export_data_config, load_model

    if args.resolution and args.image_size and args.image_size != args.resolution:
        raise NasvitError(
            f"--image-size {args.image_size} contradicts --resolution {args.resolution}: the data is loaded at the "
            "resolution the model runs at; drop --image-size"
        )
    model = load_model(args.model, inference=True, resolution=args.resolution)
    data_config = export_data_config(args.model, args.data, args.root, args.resolution or args.image_size)
    data = build_data(data_config)
    if data.num_classes != model.num_classes:
        raise NasvitError(
            f"the data ({data_config.dataset}) has {data.num_classes} classes but the model predicts "
            f"{model.num_classes}; pass --data with a dataset of {model.num_classes} classes"
        )
    loader = data.loader(args.split, batch_size=args.batch_size, shuffle=False)
    start = time.perf_counter()
    with torch.inference_mode():
        result = accuracy(model, loader)
    seconds = time.perf_counter() - start
    print(
        f"{args.model} at {model.resolution} px on {data_config.dataset}: top-1 {result['top1']:.2f}%, "
        f"top-5 {result['top5']:.2f}% on {result['images']} {args.split} images; "
        f"{result['images'] / seconds:.0f} images/s (loading included)"
    )
