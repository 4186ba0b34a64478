"""Training throughput of sandwich steps, and the cost of gradient projection + conflict meter.

    python benchmarks/train_step_throughput.py [--repeats 8]

For `tiny` (batch 64, 32 px) and `nasvit` (batch 8 at 224 px): images per second of one sandwich step
(largest + smallest + 2 random subnets, forward and backward, AdamW step), with projection and conflict
meter on and off, alternating in one process (each round's subnets run once untimed first, since the first
use of new shapes pays for oneDNN's kernel setup). Target: on/off time ratio at most 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from search_space import load_space
from supernet import Supernet
from supernet.training.losses import smoothed_one_hot
from supernet.training.sandwich import SandwichStep, parameter_groups, sample_subnets


def timed_step(steps: dict[bool, SandwichStep], optimizer, batch, subnets, enabled: bool) -> float:
    """One step with projection and the conflict meter ``enabled`` (each has its own ``SandwichStep``)."""
    start = time.perf_counter()
    steps[enabled].run([batch], subnets, project=enabled)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def measure(space_name: str, resolution: int, batch_size: int, repeats: int) -> tuple[float, float]:
    space = load_space(space_name)
    net = Supernet(space, num_classes=10).train()
    steps = {on: SandwichStep(net, -1.0, 1.0, 5.0, parameter_groups(net), measure_conflicts=on) for on in (True, False)}
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    images = torch.randn(batch_size, 3, resolution, resolution)
    targets = smoothed_one_hot(torch.randint(0, 10, (batch_size,)), 10, 0.1)
    timings = {True: [], False: []}
    for index in range(repeats):
        subnets = sample_subnets(net, 0, index, 2)
        subnets = [(slot, cfg.replace(resolution=min(cfg.resolution, resolution))) for slot, cfg in subnets]
        timed_step(steps, optimizer, (images, targets), subnets, False)  # untimed: first use of new shapes
        for enabled in (True, False) if index % 2 else (False, True):
            timings[enabled].append(timed_step(steps, optimizer, (images, targets), subnets, enabled))
    on, off = statistics.median(timings[True]), statistics.median(timings[False])
    return batch_size / off, on / off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"{'space':<28} {'images/s per sandwich step':>28} {'projection+meter ratio':>24}")
    for name, resolution, batch in (("tiny", 32, 64), ("nasvit", 224, 8)):
        throughput, ratio = measure(name, resolution, batch, args.repeats)
        verdict = "" if ratio <= 1.10 else "  (above 1.10)"
        print(f"{name + f' ({resolution} px, batch {batch})':<28} {throughput:>28.1f} {ratio:>24.3f}{verdict}")


if __name__ == "__main__":
    main()
