"""What block choices cost a supernet's random subnets: the demo recipe on the digits, with 1, 2 or 3-4 block kinds
per conv stage, side by side.

    python benchmarks/block_choice_training.py --out DIR [--epochs 50] [--subnets 60]

Four supernets, each trained with ``configs/train/demo.yaml`` for ``--epochs`` (the demo's 50: 750 sandwich steps):

- ``demo``: the demo space, depthwise MBConv only;
- ``fused_only``: ``demo_v2`` with Fused-MBConv alone in s1 and s2;
- ``two_kinds``: ``demo_v2`` with {g1, fused} in s1 and s2;
- ``demo_v2``: {g1, g4, fused} in s1, {g1, g4, g8, fused} in s2.

Each is then scored as ``nasvit search`` ranks candidates: ``--subnets`` random subnets (seeded), BN recalibrated on 4
training batches, top-1 on the held-out search split. It prints, per supernet, its largest and smallest subnets'
top-1 and the random subnets' mean and quartiles, and for each space with block choices the mean top-1 of
the same random subnets with each stage's block set to each code in turn (whether one kind is at fault).

Resumable by stage: a supernet whose training finished is not trained again (an interrupted one resumes from its
last checkpoint), and ``DIR/results.json`` is rewritten after each supernet is scored.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import time
from pathlib import Path

import torch

from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.data import build_data, fixed_batches
from nasvit.recipes.search_evaluator import SupernetEvaluator
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SearchSpace, load_space, parse_space, space_to_dict

VARIANTS = ("demo", "fused_only", "two_kinds", "demo_v2")
CODES = {"fused_only": ([], ["fused"]), "two_kinds": ([1], ["mbconv", "fused"])}  # (group sizes, kinds) in s1, s2


def variant_space(name: str) -> dict:
    """The YAML mapping of variant ``name`` (see the module docstring)."""
    if name in ("demo", "demo_v2"):
        return space_to_dict(load_space(name))
    data = space_to_dict(load_space("demo_v2"))
    group_sizes, kinds = CODES[name]
    data["name"] = name
    for stage in data["stages"][:2]:
        stage.update(block_kinds=kinds, group_sizes=group_sizes or [1])
    return data


def train(name: str, out: Path, epochs: int) -> Path:
    """The last checkpoint of variant ``name``'s supernet, trained (or resumed) in ``out/name``."""
    import yaml

    run = out / name
    run.mkdir(parents=True, exist_ok=True)
    space_file = out / f"{name}.yaml"
    space_file.write_text(yaml.safe_dump(variant_space(name), sort_keys=False))
    settings = [f"space={space_file}", f"optim.epochs={epochs}", "device=cpu"]
    config = load_config(TrainConfig, "configs/train/demo.yaml", settings)
    resume = "auto" if any(run.glob("checkpoints/*.pt")) else None  # a finished run resumes to no more steps
    TrainRecipe(config, run, resume=resume).run()
    return checkpoint.latest(run)


def score(path: Path, subnets: int, seed: int = 7) -> dict:
    """Search-split top-1 of the checkpoint's largest and smallest subnets and of ``subnets`` random ones."""
    state = checkpoint.load(path)
    space = parse_space(state["space"])
    net = checkpoint.supernet_from_state(state, False, torch.device("cpu"))
    data_config = checkpoint.data_config_of(state)
    data = build_data(data_config)
    calibration = fixed_batches(data.train_eval, 4, 128, data_config.seed)
    evaluator = SupernetEvaluator(net, calibration, fixed_batches(data.dataset("search"), None, 128, data_config.seed))
    rng = random.Random(seed)
    drawn = [space.sample(rng) for _ in range(subnets)]
    top1 = [evaluator([cfg])[0]["top1"] for cfg in drawn]
    quartiles = statistics.quantiles(top1, n=4)
    result = {"space": space.name, "random_mean": statistics.mean(top1), "random_q1": quartiles[0]}
    result.update(random_q3=quartiles[2], largest=evaluator([space.max_subnet()])[0]["top1"])
    result.update(smallest=evaluator([space.min_subnet()])[0]["top1"])
    result["per_code"] = _per_code(space, evaluator, drawn)
    return result


def _per_code(space: SearchSpace, evaluator: SupernetEvaluator, drawn: list) -> dict[str, float]:
    """Mean top-1 of ``drawn`` with one stage's block set to each of its codes in turn (``s1=g4``: ...)."""
    means = {}
    for index, spec in enumerate(space.stages):
        for code in spec.block_codes if len(spec.block_codes) > 1 else ():
            changed = []
            for cfg in drawn:
                stages = list(cfg.stages)
                stages[index] = dataclasses.replace(stages[index], block=code)
                changed.append(evaluator([cfg.replace(stages=tuple(stages))])[0]["top1"])
            means[f"{spec.name}={code}"] = statistics.mean(changed)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--subnets", type=int, default=60)
    args = parser.parse_args()
    results_file = args.out / "results.json"
    results = {}
    for name in VARIANTS:
        start = time.perf_counter()
        results[name] = score(train(name, args.out, args.epochs), args.subnets)
        results[name]["seconds"] = round(time.perf_counter() - start)
        write_json_atomic(results_file, {"epochs": args.epochs, "subnets": args.subnets, "results": results})
        row = results[name]
        codes = ", ".join(f"{key} {value:.1f}" for key, value in row["per_code"].items())
        print(
            f"{name:11} largest {row['largest']:.2f}% smallest {row['smallest']:.2f}% "
            f"random {row['random_mean']:.2f}% ({row['random_q1']:.1f}-{row['random_q3']:.1f})"
            f"{'  per code: ' + codes if codes else ''}  [{row['seconds']} s]",
            flush=True,
        )


if __name__ == "__main__":
    main()
