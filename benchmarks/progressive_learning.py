"""Progressive learning (``progressive:``) against the same training without it, at equal epochs, on the digits demo.

    python benchmarks/progressive_learning.py --out DIR

Every run is ``configs/train/demo.yaml`` (50 epochs of 15 steps) with one change:

- ``fixed``: as shipped; every step samples the whole space (4-24 px).
- ``progressive``: 4 stages with the resolution cap rising from half the largest (caps 8, 16, 16, 24 px).
- ``fixed_mixup``: mixup alpha 0.2 throughout.
- ``progressive_mixup``: the 4 stages with mixup rising 0 -> 0.2 (EfficientNetV2-M's range).

``fixed`` and ``progressive`` run with seeds 0 and 1 (the seed of initialisation, data order and subnet draws), the
mixup pair with seed 0. Each run is done once and recorded in ``DIR/results.json`` with its wall time; a rerun
goes on from the first unfinished one, and an interrupted training resumes from its checkpoint. Time nothing else
while it runs. It then evaluates 8 fixed subnets of each supernet (the smallest, the largest, 6 drawn with seed 0;
validation top-1 after BN recalibration) and prints per run the wall time, the steps' time and the mean top-1 of
the smallest, the largest and the first 5 random ones, and per pair the wall time saved and the top-1 lost.
"""

from __future__ import annotations

import statistics

from demo_supernets import ranked_subnets, results_file, supernet_top1, train

from nasvit.runtime.atomic_json import write_json_atomic

STAGES = ["progressive.stages=4", "progressive.min_resolution=0.5"]
VARIANTS = {
    "fixed": [],
    "progressive": STAGES,
    "fixed_mixup": ["data.mixup=0.2"],
    "progressive_mixup": [*STAGES, "progressive.mixup=[0, 0.2]"],
}
RUNS = [
    ("fixed", 0),
    ("progressive", 0),
    ("fixed", 1),
    ("progressive", 1),
    ("fixed_mixup", 0),
    ("progressive_mixup", 0),
]
PAIRS = [("fixed", "progressive"), ("fixed_mixup", "progressive_mixup")]


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-seed{seed}"


def report(results: dict) -> None:
    print(f"\n{'run':<24} {'wall':>7} {'steps':>7} {'smallest':>9} {'largest':>8} {'mean of 7':>10}")
    for variant, seed in RUNS:
        name = run_name(variant, seed)
        run, top1 = results[name], results["top1"][name]
        print(
            f"{name:<24} {run['wall_seconds']:>6.0f}s {run['seconds']:>6.0f}s {top1[0]:>8.2f}% {top1[1]:>7.2f}% "
            f"{statistics.mean(top1[:7]):>9.2f}%"
        )
    print()
    for fixed, progressive in PAIRS:
        for seed in sorted({s for v, s in RUNS if v == progressive}):
            before, after = (results[run_name(variant, seed)] for variant in (fixed, progressive))
            change = statistics.mean(results["top1"][run_name(progressive, seed)][:7]) - statistics.mean(
                results["top1"][run_name(fixed, seed)][:7]
            )
            ratio, saved = (
                after["wall_seconds"] / before["wall_seconds"],
                before["wall_seconds"] - after["wall_seconds"],
            )
            print(
                f"{progressive} against {fixed}, seed {seed}: wall time x{ratio:.2f} ({saved:.0f} s saved), "
                f"mean top-1 {change:+.2f} points"
            )
    fixed_means = [statistics.mean(results["top1"][run_name("fixed", seed)][:7]) for seed in (0, 1)]
    print(f"seed-to-seed spread of fixed's mean top-1: {abs(fixed_means[0] - fixed_means[1]):.2f} points")


def main() -> None:
    path, results = results_file(__doc__.splitlines()[0], {"top1": {}})
    subnets = ranked_subnets()
    for variant, seed in RUNS:
        name = run_name(variant, seed)
        if name not in results:
            results[name] = train(path.parent / name, f"seed={seed}", *VARIANTS[variant])
            write_json_atomic(path, results)
        if name not in results["top1"]:
            results["top1"][name] = supernet_top1(path.parent / name, subnets)
            write_json_atomic(path, results)
        print(f"{name}: {results[name]['wall_seconds']:.0f} s, top-1 {results['top1'][name]}")
    report(results)


if __name__ == "__main__":
    main()
