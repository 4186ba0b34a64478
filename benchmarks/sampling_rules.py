"""Single Path One-Shot (``sampling.rule: spos``) against the sandwich rule at equal wall time, on the digits demo.

    python benchmarks/sampling_rules.py --out DIR

Stages, each done once and recorded in ``DIR/results.json`` (a rerun goes on from the first unfinished one; an
interrupted training resumes from its checkpoint):

1. ``probe``: seconds per optimiser step of each rule (data loading included, the first two left out), from fresh
   runs alternating between the rules (3 rounds; one epoch of the sandwich rule, four of the single path, whose
   step cost varies with the path); their median ratio r stretches the single-path schedule.
2. ``sandwich``: ``configs/train/demo.yaml`` as shipped (50 epochs of 15 steps).
3. ``spos``: the same recipe with ``sampling.rule=spos`` and its schedule (epochs, warm-up, evaluation interval)
   stretched by r, so that it trains for about as long. Both wall times are recorded.
4. ``supernets``: 8 fixed subnets (the smallest, the largest, 6 drawn with seed 0) evaluated in each supernet:
   validation top-1 after BN recalibration.
5. ``standalone``: each of the 8 trained alone from random initialisation (``nasvit finetune`` with
   ``pretrained=false``, the demo recipe and data split) for as many steps as the sandwich supernet.

It prints the top-1 of every subnet per rule, the mean over the smallest, the largest and the first 5 random ones,
and the Kendall tau between each supernet's ranking of the 8 and their standalone top-1.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from demo_supernets import DEMO, RANDOM_SUBNETS, ranked_subnets, results_file, supernet_top1, train
from scipy.stats import kendalltau

from nasvit.cli import main as nasvit
from nasvit.config.finetune import FinetuneConfig
from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.finetune import FinetuneRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SubnetConfig

PROBE_STEPS, PROBE_ROUNDS = {"sandwich": 15, "spos": 60}, 3  # one epoch and four: a path's cost varies with it


class TimedRecipe(TrainRecipe):
    """A training run that records when each optimiser step starts (its batches are loaded just before)."""

    def _optimizer_step(self, micro: list, epoch: int) -> str:
        self.step_starts.append(time.perf_counter())
        return super()._optimizer_step(micro, epoch)


def probe(out: Path) -> float:
    """Median over rounds of (sandwich seconds per step) / (single-path seconds per step): the mean interval
    between step starts after the first two, data loading included, in fresh runs that alternate between the rules
    (the single path's over more steps, since its cost varies with the path drawn)."""
    ratios = []
    for round_index in range(PROBE_ROUNDS):
        seconds = {}
        for rule in ("sandwich", "spos"):
            steps = PROBE_STEPS[rule]
            config = load_config(TrainConfig, DEMO, ["device=cpu", f"sampling.rule={rule}", f"max_steps={steps}"])
            recipe = TimedRecipe(config, out / f"probe-{rule}-{round_index}", overwrite=True)
            recipe.step_starts = []
            recipe.run()
            intervals = [b - a for a, b in zip(recipe.step_starts[2:], recipe.step_starts[3:])]
            seconds[rule] = statistics.mean(intervals)
        ratios.append(seconds["sandwich"] / seconds["spos"])
        print(f"probe round {round_index + 1}: sandwich {seconds['sandwich']:.3f} s/step, spos {seconds['spos']:.3f}")
    return statistics.median(ratios)


def standalone_top1(out: Path, sandwich_dir: Path, cfg: SubnetConfig, index: int) -> float:
    """``cfg`` trained alone from random initialisation with the demo recipe, for the sandwich run's steps."""
    export = out / f"export-{index}"
    if not (export / "subnet.json").is_file():
        ckpt = str(checkpoint.latest(sandwich_dir))
        assert nasvit(["export", "--checkpoint", ckpt, "--arch", str(cfg), "--out", str(export), "--overwrite"]) == 0
    demo = load_config(TrainConfig, DEMO)
    data = demo.data
    overrides = [
        f"model={export}",
        "pretrained=false",
        "device=cpu",
        f"channels_last={str(demo.channels_last).lower()}",
        f"data.image_size={data.image_size}",
        f"data.batch_size={data.batch_size}",
        f"data.search_fraction={data.search_fraction}",
        f"data.val_fraction={data.val_fraction}",
        f"data.label_smoothing={data.label_smoothing}",
        f"optim.lr={demo.optim.lr}",
        f"optim.weight_decay={demo.optim.weight_decay}",
        f"optim.epochs={demo.optim.epochs}",
        f"optim.warmup_epochs={demo.optim.warmup_epochs}",
        f"eval.every_epochs={demo.optim.epochs}",
        "export.torchscript=false",
    ]
    config = load_config(FinetuneConfig, "configs/finetune/default.yaml", overrides)
    run_dir = out / f"standalone-{index}"
    return FinetuneRecipe(config, run_dir, resume="auto" if checkpoint.latest(run_dir) else None).run()["top1"]


def report(results: dict, subnets: list[SubnetConfig]) -> None:
    labels = ["smallest", "largest", *(f"random {i + 1}" for i in range(RANDOM_SUBNETS))]
    alone = results["standalone"]
    print(f"\n{'subnet':<10} {'sandwich':>9} {'spos':>7} {'alone':>7}  config")
    for i, (label, cfg) in enumerate(zip(labels, subnets)):
        row = [results["supernets"][rule][i] for rule in ("sandwich", "spos")]
        print(f"{label:<10} {row[0]:>8.2f}% {row[1]:>6.2f}% {alone[i]:>6.2f}%  {cfg}")
    for rule in ("sandwich", "spos"):
        top1 = results["supernets"][rule]
        tau = kendalltau(top1, alone).statistic
        run = results[rule]
        print(
            f"{rule}: {run['steps']} steps in {run['wall_seconds']:.0f} s; mean top-1 of the smallest, largest and "
            f"5 random {statistics.mean(top1[:7]):.2f}%; Kendall tau with the standalone ranking {tau:.2f}"
        )


def main() -> None:
    path, results = results_file(__doc__.splitlines()[0], {})
    out = path.parent

    def done(key: str, value) -> None:
        results[key] = value
        write_json_atomic(path, results)

    if "probe" not in results:
        done("probe", probe(out))
    ratio = results["probe"]
    print(f"sandwich step / single-path step: {ratio:.2f}")
    if "sandwich" not in results:
        done("sandwich", train(out / "sandwich"))
    if "spos" not in results:
        demo = load_config(TrainConfig, DEMO)
        stretched = [
            "sampling.rule=spos",
            f"optim.epochs={round(demo.optim.epochs * ratio)}",
            f"optim.warmup_epochs={demo.optim.warmup_epochs * ratio:.2f}",
            f"eval.every_epochs={round(demo.eval.every_epochs * ratio)}",
        ]
        done("spos", train(out / "spos", *stretched))
    subnets = ranked_subnets()
    if "supernets" not in results:
        done("supernets", {rule: supernet_top1(out / rule, subnets) for rule in ("sandwich", "spos")})
    standalone = results.get("standalone", [])
    for index in range(len(standalone), len(subnets)):
        standalone.append(standalone_top1(out, out / "sandwich", subnets[index], index))
        done("standalone", standalone)
    report(results, subnets)


if __name__ == "__main__":
    main()
