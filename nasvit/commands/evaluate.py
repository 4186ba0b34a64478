"""``nasvit eval``: top-1/top-5 and throughput of an exported model (its inference form) on a dataset."""

from __future__ import annotations

import argparse
import time

from nasvit.commands import positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="accuracy and throughput of an exported model")
    parser.add_argument("--model", required=True, help="an export directory (nasvit export --out)")
    parser.add_argument("--data", default="digits", help="'digits', an ImageFolder path, or torch/<name>")
    parser.add_argument("--root", help="data root for folder and torch datasets")
    parser.add_argument("--split", default="val", choices=["val", "search", "train_eval"])
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--image-size", type=positive_int, help="load size (default: the one BN was recalibrated at)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    import torch

    from nasvit.data import DataConfig, build_data
    from nasvit.errors import NasvitError
    from nasvit.evaluation import accuracy
    from nasvit.export import load_model, read_description

    model = load_model(args.model, inference=True)
    recalibration = read_description(args.model).get("bn_recalibration", {})
    image_size = args.image_size or recalibration.get("image_size", model.resolution)
    data = build_data(DataConfig(dataset=args.data, root=args.root, image_size=image_size))
    if data.num_classes != model.num_classes:
        raise NasvitError(f"the data has {data.num_classes} classes but the model predicts {model.num_classes}")
    loader = data.loader(args.split, batch_size=args.batch_size, shuffle=False)
    start = time.perf_counter()
    with torch.inference_mode():
        result = accuracy(model, loader)
    seconds = time.perf_counter() - start
    print(
        f"{args.model}: top-1 {result['top1']:.2f}%, top-5 {result['top5']:.2f}% on {result['images']} "
        f"{args.split} images; {result['images'] / seconds:.0f} images/s (loading included)"
    )
