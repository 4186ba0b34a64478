"""How many random subnets the analytical cost model costs per second (target: at least 20,000 on `nasvit`).

    python benchmarks/cost_model_rate.py [--space nasvit] [--subnets 20000]

"cold" is the first pass on a freshly loaded space (its per-stage memo empty); "warm" repeats the same
subnets. Sampling is timed separately and not included in either rate.
"""

from __future__ import annotations

import argparse
import random
import time

from search_space import parse_space
from search_space.loader import space_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="nasvit")
    parser.add_argument("--subnets", type=int, default=20_000)
    args = parser.parse_args()

    import yaml

    data = yaml.safe_load(space_file(args.space).read_text())
    space = parse_space(data, source=args.space)  # a fresh object: nothing memoised yet
    rng = random.Random(0)
    start = time.perf_counter()
    subnets = [space.sample(rng) for _ in range(args.subnets)]
    sample_rate = args.subnets / (time.perf_counter() - start)
    rates = {}
    for label in ("cold", "warm"):
        start = time.perf_counter()
        for cfg in subnets:
            space.cost(cfg)
        rates[label] = args.subnets / (time.perf_counter() - start)
    print(f"space {space.name}: {args.subnets} random subnets")
    verdict = "met" if rates["cold"] >= 20_000 else "MISSED"
    print(f"costing rate, cold: {rates['cold']:,.0f} subnets/s (target >= 20,000: {verdict})")
    print(f"costing rate, warm: {rates['warm']:,.0f} subnets/s")
    print(f"sampling rate:      {sample_rate:,.0f} subnets/s")


if __name__ == "__main__":
    main()
