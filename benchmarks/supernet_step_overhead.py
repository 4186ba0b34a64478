"""Training-step time of the supernet running a subnet against the same step of its exported twin.

    python benchmarks/supernet_step_overhead.py [--repeats 15] [--threads 2]

For the max, min and a median-MACs random subnet of `tiny` (batch 64, largest resolution) and `nasvit`
(224 px, batch 8): one step = forward + backward in train mode. The two arms alternate within one process
so machine noise hits both alike; medians of the repeats are compared. Target ratio: at most 1.15.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import torch

from search_space import load_space
from supernet import Supernet


def step_seconds(model: torch.nn.Module, x: torch.Tensor) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    model(x).sum().backward()
    return time.perf_counter() - start


def median_subnet(space, rng: random.Random, samples: int = 101):
    cfgs = sorted((space.sample(rng) for _ in range(samples)), key=lambda c: space.cost(c).macs)
    return cfgs[samples // 2]


def compare(space_name: str, resolution: int, batch: int, repeats: int) -> list[tuple[str, float, float, float]]:
    space = load_space(space_name)
    net = Supernet(space, num_classes=space.num_classes).train()
    rng = random.Random(0)
    rows = []
    for label, cfg in (("max", space.max_subnet()), ("min", space.min_subnet()), ("median", median_subnet(space, rng))):
        cfg = cfg.replace(resolution=resolution)
        net.set_active_subnet(cfg)
        static = net.export(cfg).train()
        x = torch.randn(batch, 3, resolution, resolution)
        for _ in range(2):  # warm-up
            step_seconds(net, x), step_seconds(static, x)
        supernet_times, static_times = [], []
        for _ in range(repeats):
            supernet_times.append(step_seconds(net, x))
            static_times.append(step_seconds(static, x))
        s, t = statistics.median(supernet_times), statistics.median(static_times)
        rows.append((f"{space_name} {label} ({space.cost(cfg).macs / 1e6:.1f}M MACs)", s, t, s / t))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = compare("tiny", 32, 64, args.repeats) + compare("nasvit", 224, 8, args.repeats)
    print(f"{'subnet':<40} {'supernet ms':>12} {'static ms':>10} {'ratio':>7}")
    for label, s, t, ratio in rows:
        flag = "" if ratio <= 1.15 else "  (above 1.15)"
        print(f"{label:<40} {s * 1e3:>12.1f} {t * 1e3:>10.1f} {ratio:>7.3f}{flag}")


if __name__ == "__main__":
    main()
