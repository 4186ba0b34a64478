"""CPU latency of static `nasvit` subnets at about 200, 300 and 400 M MACs against timm models of similar MACs.

    python benchmarks/peer_latency.py [--lut lut.json] [--rounds 100] [--threads N]

Peers (random init, no download; MACs as published by timm / their papers): mobilenetv3_large_100 (217 M),
levit_128s (305 M), efficientnet_b0 (390 M), each paired with our subnet of the nearest target.

Choice of our subnets (deterministic, ``--seed``): for each target T, subnets are drawn at the input
resolution until ``--candidates`` of them have MACs within T * (1 +- ``--tolerance``); of those, the one
predicted fastest is kept: by the latency table given with ``--lut`` (recommended), else the one with the
fewest MACs (on this project's CPU, MACs rank latency better than activations or params; see the README).
Draws are biased: each draw picks a random size level in [0, 1] and every gene takes the choice nearest that
level (plus noise), so draws cover the whole MACs range; uniform draws pile up around 600 M at 224 px and
almost never reach 300 M. At 224 px the smallest subnet of the space has 251 M MACs, so a target with no
subnet within its window at ``--resolution`` falls back to the largest smaller resolution of the space that
has one (200 M: 192 px); the table shows the resolution each model runs at (peers: always ``--resolution``).

Models as deployed: ours in the inference form every latency figure of nasvit uses
(:func:`~supernet.optimize_for_inference`: BatchNorm folded, channels-last); the peers as timm builds them,
in eval mode, moved to channels-last (their faster layout on this CPU; timm has no generic BatchNorm fold,
so theirs stays unfused).

Timing: batch 1, one process, the same thread count for all, eval mode and ``torch.inference_mode()``.
Each round runs one forward pass of every model, in an order rotated every round; after
``--warmup-rounds`` untimed rounds, the median over ``--rounds`` rounds is reported (with the interquartile
range).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass

import timm
import torch
from torch import nn

from nasvit.errors import NasvitError
from nasvit.latency import inference_model
from nasvit.latency.table import LatencyTable, device_name
from search_space import SearchSpace, SubnetConfig, format_count, load_space

PEERS = (("mobilenetv3_large_100", 217e6, 200e6), ("levit_128s", 305e6, 300e6), ("efficientnet_b0", 390e6, 400e6))


@dataclass
class Entry:
    """One benchmarked model: its name, MACs, parameters, input side, module and the subnet (ours only)."""

    name: str
    macs: float
    params: int
    resolution: int
    module: nn.Module
    cfg: SubnetConfig | None = None
    predicted: float | None = None


# ------------------------------------------------------------------------------------- our subnets
def level_sample(space: SearchSpace, rng: random.Random, resolution: int) -> SubnetConfig:
    """A subnet at ``resolution`` whose genes cluster around one random size level (cheapest to dearest)."""
    level = rng.random()
    values = []
    for gene in space.genes:
        top = len(gene.choices) - 1
        index = min(top, max(0, round(level * top + rng.gauss(0.0, 0.5))))
        values.append(resolution if gene.label == "resolution" else gene.choices[index])
    return space.from_genes(values)


def target_resolution(space: SearchSpace, target: float, tolerance: float, resolution: int) -> int:
    """``resolution``, or the largest smaller one of the space at which the target window is attainable."""
    low, high = target * (1 - tolerance), target * (1 + tolerance)
    for candidate in sorted((r for r in space.resolutions if r <= resolution), reverse=True):
        smallest = space.cost(space.min_subnet().replace(resolution=candidate)).macs
        largest = space.cost(space.max_subnet().replace(resolution=candidate)).macs
        if smallest <= high and largest >= low:
            return candidate
    raise SystemExit(f"no resolution <= {resolution} of space '{space.name}' has subnets near {format_count(target)}")


def pick_subnet(space: SearchSpace, target: float, args: argparse.Namespace, predict) -> tuple[SubnetConfig, int]:
    """The candidate within ``target`` +- tolerance with the smallest ``predict(cfg)``, and the candidate count."""
    resolution = target_resolution(space, target, args.tolerance, args.resolution)
    rng = random.Random(f"{args.seed}-{target}")
    low, high = target * (1 - args.tolerance), target * (1 + args.tolerance)
    candidates: dict[SubnetConfig, None] = {}
    for _ in range(1000 * args.candidates):
        cfg = level_sample(space, rng, resolution)
        if low <= space.cost(cfg).macs <= high:
            candidates[cfg] = None
            if len(candidates) == args.candidates:
                break
    if not candidates:
        raise SystemExit(f"no subnet within {format_count(low)}-{format_count(high)} MACs found at {resolution} px")
    return min(candidates, key=predict), len(candidates)


# ------------------------------------------------------------------------------------------ timing
@torch.inference_mode()
def interleaved_latency(entries: list[Entry], rounds: int, warmup_rounds: int) -> dict[str, list[float]]:
    """Milliseconds of one batch-1 forward pass of every entry per timed round; models alternate in each
    round, starting one later every round."""
    inputs = {e.name: torch.randn(1, 3, e.resolution, e.resolution) for e in entries}
    times: dict[str, list[float]] = {e.name: [] for e in entries}
    for round_index in range(warmup_rounds + rounds):
        shift = round_index % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            start = time.perf_counter()
            entry.module(inputs[entry.name])
            elapsed = 1e3 * (time.perf_counter() - start)
            if round_index >= warmup_rounds:
                times[entry.name].append(elapsed)
    return times


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """25th, 50th and 75th percentiles."""
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


# -------------------------------------------------------------------------------------------- main
def build_entries(args: argparse.Namespace) -> tuple[list[Entry], str]:
    """Our subnet and its peer for every target, in table order, and a description of the selection."""
    space = load_space("nasvit")
    if args.lut:
        table = LatencyTable.load(args.lut, space)
        predict, how = table.predict, f"fastest by latency table {args.lut}"
    else:
        predict, how = (lambda cfg: space.cost(cfg).macs), "fewest MACs"
    entries = []
    for peer, peer_macs, target in PEERS:
        cfg, found = pick_subnet(space, target, args, predict)
        cost = space.cost(cfg)
        name = f"nasvit-{format_count(target)}"
        ours = Entry(name, cost.macs, cost.params, cfg.resolution, inference_model(cfg), cfg, predict(cfg))
        model = timm.create_model(peer, pretrained=False).eval().to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters())
        entries += [ours, Entry(peer, peer_macs, params, args.resolution, model)]
        how += f"; {name}: {found} candidates"
    return entries, how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lut", help="latency table of nasvit (nasvit latency build-lut) to pick our subnets")
    parser.add_argument("--rounds", type=int, default=100, help="timed rounds (one forward per model each)")
    parser.add_argument("--warmup-rounds", type=int, default=5, help="untimed rounds first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for every model")
    parser.add_argument("--resolution", type=int, default=224, help="input side of the peers and of our subnets")
    parser.add_argument("--candidates", type=int, default=200, help="subnets drawn within each MACs window")
    parser.add_argument("--tolerance", type=float, default=0.05, help="MACs window: target * (1 +- tolerance)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds must be at least 2")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    try:
        entries, how = build_entries(args)
    except NasvitError as error:
        raise SystemExit(f"error: {error}") from None
    times = interleaved_latency(entries, args.rounds, args.warmup_rounds)

    print(f"CPU {device_name('cpu')}, torch {torch.__version__}, timm {timm.__version__}, {args.threads} threads")
    print(f"batch 1, eval + inference_mode, {args.rounds} interleaved rounds after {args.warmup_rounds} warm-up")
    print(f"our subnets: random draws within {args.tolerance:.0%} of the target MACs, {how}")
    header = f"{'model':<24} {'res':>4} {'MACs':>8} {'params':>8} {'median ms':>10} {'IQR ms':>15} {'ours/peer':>10}"
    print(header)
    print("-" * len(header))
    for ours, peer in zip(entries[::2], entries[1::2]):
        ours_ms, peer_ms = quartiles(times[ours.name])[1], quartiles(times[peer.name])[1]
        for entry, ratio in ((ours, f"{ours_ms / peer_ms:.2f}"), (peer, "")):
            q1, median, q3 = quartiles(times[entry.name])
            macs = format_count(entry.macs) + ("" if entry.cfg else "*")
            print(
                f"{entry.name:<24} {entry.resolution:>4} {macs:>8} {format_count(entry.params):>8} "
                f"{median:>10.2f} {f'{q1:.2f}-{q3:.2f}':>15} {ratio:>10}"
            )
    print("MACs: analytical for ours; * as published for the timm models (not recomputed)")
    for entry in entries[::2]:
        if args.lut:
            print(f"{entry.name}: {entry.cfg} (predicted {entry.predicted:.2f} ms)")
        else:
            print(f"{entry.name}: {entry.cfg}")


if __name__ == "__main__":
    main()
