"""MBConv against Fused-MBConv, and depthwise against grouped spatial convs, per stage shape, timed side by side.

    python benchmarks/block_kinds.py [--space nasvit] [--resolution 224] [--batches 1 32] [--threads 1]
    python benchmarks/block_kinds.py --device cuda --dtype bfloat16 --batches 1 32 256   # a GPU

For every stage of the space's largest subnet at ``--resolution``, one block shape: a conv stage's second block
(stride 1, its width in and out), a transformer stage's opening strided MBConv; kernel and expand ratio are the
largest of the stage. Each shape is built as

- ``g1``: the MBConv of the space (depthwise k x k conv), the reference;
- ``fused``: Fused-MBConv at the same expanded width (one dense k x k conv replaces the 1x1 expand and the
  depthwise conv: more MACs);
- ``g8``, ``g16``: MBConv whose k x k conv has 8 or 16 channels per group, its expanded width lowered to the
  multiple of lcm(channel divisor, G) whose MACs come nearest the reference's (the IPU paper's trade: a wider dot
  product for a narrower block). A stage with expand ratio 1 has no expansion to lower: its grouped blocks keep the
  width, and their MACs ratio says how much dearer they are.

Every block is timed in its inference form (:func:`~nasvit.latency.block_timing.block_module`: BN folded,
channels-last), all shapes and kinds of one batch size in one interleaved measurement
(:func:`~nasvit.latency.measure.measure_modules_interleaved`), so a drift of the machine hits all alike. It prints
per batch size one row per block: MACs and time relative to the stage's ``g1`` block, with the median and p10-p90
in ms; then the geometric mean of each kind's time ratio over the stages. ``--json`` writes every figure.
``benchmarks/gpu_check.py`` runs the same comparison on a GPU (its part f).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time

import torch

from nasvit.latency.block_timing import block_input_shape, block_module
from nasvit.latency.measure import measure_modules_interleaved
from nasvit.latency.settings import LatencySettings
from nasvit.latency.table import device_name
from search_space import SearchSpace, load_space, plan_subnet
from search_space.arithmetic import squeeze_channels
from search_space.cost import block_cost
from search_space.plan import ConvBlockPlan, FusedMBConvPlan, MBConvPlan, conv_block_plan

GROUP_SIZES = (8, 16)
REFERENCE = "g1"


def stage_shapes(space: SearchSpace, resolution: int) -> dict[str, MBConvPlan]:
    """One depthwise MBConv block per stage of the largest subnet at ``resolution`` (see the module docstring)."""
    largest = space.max_subnet().replace(resolution=resolution)
    shapes = {}
    for spec, choice, blocks in zip(space.stages, largest.stages, plan_subnet(largest).stages):
        block = blocks[0] if spec.is_transformer or len(blocks) == 1 else blocks[1]
        choice = dataclasses.replace(choice, block=REFERENCE)
        shapes[spec.name] = conv_block_plan(space, spec, choice, block.in_channels, block.in_size, block.stride)
    return shapes


def block_variants(space: SearchSpace, reference: MBConvPlan) -> dict[str, ConvBlockPlan]:
    """The reference block, its Fused-MBConv twin and its grouped twins (see the module docstring)."""
    fields = {f.name: getattr(reference, f.name) for f in dataclasses.fields(FusedMBConvPlan)}
    variants: dict[str, ConvBlockPlan] = {REFERENCE: reference, "fused": FusedMBConvPlan(**fields)}
    for group_size in GROUP_SIZES:
        plan = _equal_macs(space, reference, group_size)
        if plan is not None:
            variants[f"g{group_size}"] = plan
    return variants


def _equal_macs(space: SearchSpace, reference: MBConvPlan, group_size: int) -> MBConvPlan | None:
    """``reference`` with ``group_size`` channels per group and the expanded width whose MACs come nearest its own;
    at expand ratio 1 the width stays (None if the group size does not divide it)."""
    if not reference.expand:
        return (
            dataclasses.replace(reference, group_size=group_size) if reference.mid_channels % group_size == 0 else None
        )
    step = math.lcm(space.channel_divisor, group_size)
    target = block_cost(reference).macs

    def grouped(mid: int) -> MBConvPlan:
        se = squeeze_channels(mid, space.se_reduction, space.channel_divisor) if reference.se_channels else 0
        return dataclasses.replace(reference, mid_channels=mid, se_channels=se, group_size=group_size)

    widths = range(step, 2 * reference.mid_channels + step, step)
    return min((grouped(mid) for mid in widths), key=lambda plan: abs(block_cost(plan).macs - target))


def compare_block_kinds(
    space: SearchSpace, resolution: int, batches: list[int], settings: LatencySettings
) -> list[dict[str, object]]:
    """One row per (batch size, stage, block kind): shape, MACs, timing and both ratios to the stage's ``g1`` block.

    ``settings.batch_size`` is replaced by each of ``batches``; every block of one batch size is timed in one
    interleaved measurement.
    """
    blocks = [
        (stage, kind, plan)
        for stage, ref in stage_shapes(space, resolution).items()
        for kind, plan in block_variants(space, ref).items()
    ]
    rows = []
    for batch in batches:
        timing = dataclasses.replace(settings, batch_size=batch)
        modules = [block_module(space, plan) for _, _, plan in blocks]
        shapes = [block_input_shape(plan, batch) for _, _, plan in blocks]
        stats = measure_modules_interleaved(modules, shapes, timing, [torch.channels_last] * len(modules))
        reference = {stage: s for (stage, kind, _), s in zip(blocks, stats) if kind == REFERENCE}
        for (stage, kind, plan), s in zip(blocks, stats):
            base = next(p for st, k, p in blocks if st == stage and k == REFERENCE)
            rows.append(
                {
                    "batch": batch,
                    "stage": stage,
                    "kind": kind,
                    "shape": _shape(plan),
                    "mid_channels": plan.mid_channels,
                    "macs": block_cost(plan).macs,
                    "macs_ratio": block_cost(plan).macs / block_cost(base).macs,
                    **s.to_dict(),
                    "time_ratio": s.median_ms / reference[stage].median_ms,
                }
            )
    return rows


def _shape(plan: ConvBlockPlan) -> str:
    """``24->24 @112 k5 s1``: widths in and out, input side, kernel, stride."""
    return f"{plan.in_channels}->{plan.out_channels} @{plan.in_size} k{plan.kernel} s{plan.stride}"


def format_rows(rows: list[dict[str, object]]) -> str:
    """The table the script prints: per batch size, a row per block and the geometric-mean time ratio per kind."""
    lines = []
    for batch in sorted({row["batch"] for row in rows}):
        lines.append(f"batch {batch}")
        lines.append(
            f"{'stage':6}{'block (in->out @side k s)':27}{'kind':7}{'mid':>5}{'MACs':>9}{'xMACs':>7}"
            f"{'median ms (p10-p90)':>28}{'x time':>8}"
        )
        chosen = [row for row in rows if row["batch"] == batch]
        for row in chosen:
            timing = f"{row['median_ms']:.3f} ({row['p10_ms']:.3f}-{row['p90_ms']:.3f})"
            lines.append(
                f"{row['stage']:6}{row['shape']:27}{row['kind']:7}{row['mid_channels']:>5}{row['macs'] / 1e6:>8.2f}M"
                f"{row['macs_ratio']:>7.2f}{timing:>28}{row['time_ratio']:>8.2f}"
            )
        for kind in dict.fromkeys(row["kind"] for row in chosen):
            ratios = [row["time_ratio"] for row in chosen if row["kind"] == kind]
            mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
            lines.append(f"  {kind}: time / g1 over {len(ratios)} stages, geometric mean {mean:.2f}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="nasvit")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (ignored on a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write every figure to this JSON file")
    return parser


def main() -> None:
    args = _parser().parse_args()
    space = load_space(args.space)
    settings = LatencySettings(
        threads=args.threads if args.device == "cpu" else None,
        dtype=args.dtype,
        warmup=args.warmup,
        repeats=args.repeats,
        device=args.device,
    )
    start = time.perf_counter()
    rows = compare_block_kinds(space, args.resolution, args.batches, settings)
    threads = settings.threads or "default"
    print(f"{space.name} at {args.resolution} px on {device_name(args.device)}, {args.dtype}, {threads} threads")
    print(format_rows(rows))
    print(f"{time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {"space": space.name, "resolution": args.resolution, "device": device_name(args.device), "rows": rows},
                handle,
                indent=1,
            )


if __name__ == "__main__":
    main()
