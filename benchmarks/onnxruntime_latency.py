"""Latency of `nasvit` subnets in PyTorch (the inference form) and in onnxruntime (its ONNX graph), side by side.

    python benchmarks/onnxruntime_latency.py [--subnets 12] [--resolutions 192 224 256 288] [--threads 1]

The smallest and the largest subnet of the space at the smallest and the largest resolution, and ``--subnets``
random ones (seeded) spread over ``--resolutions``, each built once in its inference form
(:func:`~nasvit.latency.inference_model`) and exported to ONNX from it. Every model is timed in both runtimes in one
interleaved measurement (:func:`~nasvit.latency.measure.measure_callables_interleaved`: rounds that visit every
model in both runtimes in turn, so a drift of the machine hits both alike), batch ``--batch-size``, ``--threads``
threads for both (onnxruntime: intra-op threads, one inter-op thread), ``--repeats`` timed runs after ``--warmup``.
It prints one line per subnet (MACs, both medians with p10-p90, onnxruntime / PyTorch) and the spread of the ratio,
with its Spearman correlation to MACs: whether a PyTorch latency table could simply be rescaled to onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import numpy as np
import torch

from nasvit.latency.measure import inference_model, measure_callables_interleaved, runtime_version
from nasvit.latency.onnx_runtime import module_to_onnx, onnx_runner
from nasvit.latency.report import spearman
from nasvit.latency.settings import LatencySettings
from nasvit.latency.table import device_name
from search_space import SpaceError, SubnetConfig, load_space


def subnets(space_name: str, count: int, resolutions: list[int], seed: int) -> list[tuple[str, SubnetConfig]]:
    """``(label, subnet)``: the extremes at the smallest and largest of ``resolutions``, then ``count`` random ones."""
    space = load_space(space_name)
    low, high = min(resolutions), max(resolutions)
    chosen = [("smallest", space.min_subnet().replace(resolution=low))]
    chosen.append(("largest", space.max_subnet().replace(resolution=high)))
    rng = random.Random(seed)
    chosen += [(f"random {i}", space.sample(rng).replace(resolution=rng.choice(resolutions))) for i in range(count)]
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="nasvit")
    parser.add_argument("--subnets", type=int, default=12, help="random subnets besides the smallest and largest")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[192, 224, 256, 288])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    settings = LatencySettings(args.batch_size, args.threads, warmup=args.warmup, repeats=args.repeats)
    start = time.perf_counter()
    try:
        chosen = subnets(args.space, args.subnets, args.resolutions, args.seed)
    except SpaceError as error:
        parser.error(str(error))
    callables, inputs = _both_runtimes(chosen, args.batch_size, args.threads)
    built = time.perf_counter() - start
    stats = measure_callables_interleaved(callables, inputs, settings)
    rows = []
    for index, (label, cfg) in enumerate(chosen):
        torch_stats, onnx_stats = stats[2 * index], stats[2 * index + 1]
        rows.append(
            {
                "label": label,
                "subnet": str(cfg),
                "resolution": cfg.resolution,
                "macs": cfg.space.cost(cfg).macs,
                "torch": torch_stats.to_dict(),
                "onnxruntime": onnx_stats.to_dict(),
                "ratio": onnx_stats.median_ms / torch_stats.median_ms,
            }
        )
    print(
        f"{args.space}: {len(rows)} subnets, batch {args.batch_size}, {args.threads} threads, {device_name('cpu')}; "
        f"{runtime_version('torch')} (inference form) against {runtime_version('onnxruntime')}; interleaved, "
        f"{args.warmup} warm-up + {args.repeats} timed runs each; built and exported in {built:.0f} s, timed in "
        f"{time.perf_counter() - start - built:.0f} s"
    )
    print(f"{'subnet':<10} {'res':>4} {'MACs':>7} {'PyTorch ms (p10-p90)':>23} {'onnxruntime ms (p10-p90)':>25} ratio")
    for row in sorted(rows, key=lambda r: r["macs"]):
        cells = [_cell(row[runtime]) for runtime in ("torch", "onnxruntime")]
        print(
            f"{row['label']:<10} {row['resolution']:>4} {row['macs'] / 1e6:>6.0f}M {cells[0]:>23} {cells[1]:>25} "
            f"{row['ratio']:.2f}"
        )
    _print_ratio_spread(rows)
    if args.json:
        with open(args.json, "w") as file:
            json.dump({"settings": vars(args), "rows": rows}, file, indent=1)


def _both_runtimes(chosen, batch_size: int, threads: int) -> tuple[list, list]:
    """Per subnet its inference form and the ONNX runner of it, with a contiguous (B, 3, R, R) input each."""
    callables, inputs = [], []
    for _, cfg in chosen:
        model, shape = inference_model(cfg), (batch_size, 3, cfg.resolution, cfg.resolution)
        callables += [model, onnx_runner(module_to_onnx(model, shape), threads)]
        inputs += [torch.randn(shape), torch.randn(shape)]  # contiguous, as nasvit latency measure times a model
    return callables, inputs


def _print_ratio_spread(rows: list[dict]) -> None:
    """The range of onnxruntime / PyTorch and its Spearman correlation with MACs."""
    ratios = np.array([row["ratio"] for row in rows])
    rho = spearman(np.array([row["macs"] for row in rows], dtype=float), ratios)
    print(
        f"onnxruntime / PyTorch: {ratios.min():.2f} to {ratios.max():.2f} (median {statistics.median(ratios):.2f}); "
        f"Spearman of the ratio with MACs {rho:.2f}"
    )


def _cell(stats: dict) -> str:
    return f"{stats['median_ms']:.2f} ({stats['p10_ms']:.2f}-{stats['p90_ms']:.2f})"


if __name__ == "__main__":
    main()
