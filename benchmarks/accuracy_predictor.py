"""Does the accuracy predictor make a search cheaper? Random sampling, the plain constrained GA and the GA with
each predictor (``evolve.predictor``), at equal numbers of evaluations, over several seeds.

    python benchmarks/accuracy_predictor.py --out predictor.json [--seeds 6] [--evaluations 600]
        [--demo-checkpoint runs/demo/train/checkpoints/step00000750.pt --demo-evaluations 600]

Problems:

- ``synthetic`` (``nasvit`` space, ``macs<=400M``, :mod:`evolve.objectives`): additive in the genes; its optimum
  is exact (exhaustive), the reference.
- ``interacting`` (the same): pairwise interactions, interior optima and 0.3 points of evaluation noise; the
  reference is the best that 6 plain GA runs with 5 times the evaluations found.
- ``demo macs<=40K`` and ``demo params<=60K`` (with ``--demo-checkpoint``): the demo supernet's real top-1 on its
  search split, as ``nasvit search --config configs/search/demo.yaml`` measures it (BN recalibrated per subnet);
  reference as for ``interacting`` (2 runs). A subnet's accuracy is measured once and cached (in ``--out``) for
  every run.

For each method: evaluations until the best value so far within the budget comes within 0.5% of the reference
(synthetic; and the optimum itself) or 0.5 points (the others), and the best found after 150, 300 and 600
evaluations, as medians over the seeds; for the predictors also the median Kendall tau of their generations. Each
(problem, method, seed) run is kept in ``--out`` as it finishes (atomically), so an interrupted benchmark resumes
where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evolve import Budget, EvolveConfig, parse_budget, run_search
from evolve.objectives import exhaustive_optimum, interacting_top1, synthetic_top1
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SearchSpace, SubnetConfig, load_space

POPULATION, PARENTS, MUTATION = 40, 5, 0.05  # the constrained GA setting the evolve tests use
CHECKPOINTS = (150, 300, 600)
METHODS = ("random", "ga", "ga+ridge", "ga+forest")
DEMO_METHODS = ("random", "ga", "ga+ridge")  # the forest lost to ridge on both synthetic problems
REFERENCE_FACTOR = 5


@dataclass
class Problem:
    """A space, a budget and how subnets are scored; ``optimum`` when it is known exactly."""

    name: str
    space: SearchSpace
    budget: Budget
    score: Callable[[Sequence[SubnetConfig]], list[float]]
    evaluations: int
    optimum: float | None = None
    methods: tuple[str, ...] = METHODS
    reference_seeds: int = 6

    def targets(self, reference: float) -> dict[str, float]:
        if self.optimum is not None:
            return {"optimum": self.optimum, "within 0.5%": self.optimum * 0.995}
        return {"within 0.5 points": reference - 0.5}


class RecordingEvaluator:
    """Scores subnets for a search and records, in evaluation order, each one's value (None outside the budget)."""

    def __init__(self, problem: Problem):
        self.problem = problem
        self.values: list[float | None] = []
        self.subnets: list[SubnetConfig] = []

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        values = self.problem.score(cfgs)
        for cfg, value in zip(cfgs, values):
            cost = self.problem.space.cost(cfg)
            within = self.problem.budget.satisfied({self.problem.budget.metric: cost.get(self.problem.budget.metric)})
            self.values.append(value if within else None)
            self.subnets.append(cfg)
        return [{"top1": value} for value in values]


def search_run(problem: Problem, method: str, seed: int, evaluations: int) -> dict:
    """One run of exactly ``evaluations`` (a GA runs whole generations; the excess is cut): the best value within
    the budget after each evaluation, the subnet that scored it, and the predictor's taus."""
    evaluator = RecordingEvaluator(problem)
    taus: list[float] = []
    if method == "random":
        rng = random.Random(f"random:{seed}")
        evaluator([problem.space.sample_within(rng, **problem.budget.bounds) for _ in range(evaluations)])
    else:
        config = EvolveConfig(
            population=POPULATION,
            generations=math.ceil(evaluations / POPULATION) - 1,
            parents=PARENTS,
            mutation_prob=MUTATION,
            seed=seed,
            budgets=[problem.budget.label],
            predictor=method.split("+")[1] if "+" in method else "none",
        )
        result = run_search(problem.space, evaluator, config)
        taus = [h.predictor["tau"] for h in result.history if h.predictor and h.predictor["tau"] is not None]
    best, best_subnet, curve = float("-inf"), None, []
    for value, cfg in zip(evaluator.values[:evaluations], evaluator.subnets):
        if value is not None and value > best:
            best, best_subnet = value, str(cfg)
        curve.append(best)
    return {"curve": curve, "taus": taus, "best_subnet": best_subnet}


def reference(problem: Problem, runs: dict, save: Callable[[], None]) -> float:
    """The exact optimum, or the best of the problem's plain GA runs with 5 times the evaluations."""
    if problem.optimum is not None:
        return problem.optimum
    best = []
    for seed in range(problem.reference_seeds):
        key = f"{problem.name}|reference|{seed}"
        if key not in runs:
            runs[key] = search_run(problem, "ga", 1000 + seed, REFERENCE_FACTOR * problem.evaluations)
            save()
        best.append(runs[key]["curve"][-1])
    return max(best)


def summarise(curves: list[list[float]], targets: dict[str, float], taus: list[float]) -> dict:
    """Per target, the median evaluations to reach it (None when half the seeds or more never do) and how many
    seeds never did; the median best at the checkpoints; the median tau."""
    best_at = {n: statistics.median(c[n - 1] for c in curves) for n in CHECKPOINTS if n <= len(curves[0])}
    row: dict = {"best_at": best_at}
    for label, target in targets.items():
        reached = [next((i + 1 for i, v in enumerate(curve) if v >= target), None) for curve in curves]
        never = sum(r is None for r in reached)
        needed = None if 2 * never >= len(reached) else statistics.median(r or float("inf") for r in reached)
        row[label] = {"evaluations": needed, "seeds_never": never}
    row["median_tau"] = statistics.median(taus) if taus else None
    return row


def synthetic_problems(evaluations: int) -> list[Problem]:
    space = load_space("nasvit")
    budget = parse_budget("macs<=400M")
    optimum = exhaustive_optimum(space, budget.limit)
    return [
        Problem(
            "synthetic", space, budget, lambda cfgs: [synthetic_top1(space, c) for c in cfgs], evaluations, optimum
        ),
        Problem("interacting", space, budget, lambda cfgs: [interacting_top1(space, c) for c in cfgs], evaluations),
    ]


def demo_problems(checkpoint: Path, evaluations: int, reference_seeds: int, cache: dict[str, float]) -> list[Problem]:
    """The demo supernet's search-split top-1 under the demo search's MACs and params budgets (cached per subnet)."""
    from nasvit.config.loading import load_config
    from nasvit.config.search import SearchConfig
    from nasvit.recipes.search import SearchRecipe

    settings = ["device=cpu", 'evolve.budgets=["macs<=40K", "params<=60K"]']  # the latency budget needs a table
    config = load_config(SearchConfig, "configs/search/demo.yaml", settings)
    recipe = SearchRecipe(config, checkpoint, Path(tempfile.mkdtemp(prefix="predictor-demo-")))
    recipe.setup()

    def score(cfgs: Sequence[SubnetConfig]) -> list[float]:
        todo = [cfg for cfg in cfgs if str(cfg) not in cache]
        for cfg, metrics in zip(todo, recipe.local(todo)):
            cache[str(cfg)] = metrics["top1"]
        return [cache[str(cfg)] for cfg in cfgs]

    return [
        Problem(
            f"demo {label}", recipe.space, parse_budget(label), score, evaluations, None, DEMO_METHODS, reference_seeds
        )
        for label in ("macs<=40K", "params<=60K")
    ]


def print_table(problem: Problem, best: float, targets: dict[str, float], rows: dict[str, dict]) -> None:
    print(f"\n{problem.name}: reference {best:.4f}; evaluations to reach each target, best at 150/300/600 evaluations")
    header = " ".join(f"{label:>20s}" for label in targets) + " " + " ".join(f"{'@' + str(n):>9s}" for n in CHECKPOINTS)
    print(f"{'method':10s} {header} {'tau':>6s}")
    for method, row in rows.items():
        reached = []
        for label in targets:
            entry = row[label]
            needed = entry["evaluations"]
            reached.append(
                f"median never ({entry['seeds_never']})"
                if needed is None
                else f"{needed:g} ({entry['seeds_never']} never)"
            )
        tau = "" if row["median_tau"] is None else f"{row['median_tau']:.2f}"
        best = [f"{row['best_at'][n]:9.4f}" if n in row["best_at"] else f"{'':9s}" for n in CHECKPOINTS]
        cells = " ".join(f"{c:>20s}" for c in reached) + " " + " ".join(best)
        print(f"{method:10s} {cells} {tau:>6s}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("predictor.json"), help="runs, cache and summary (JSON)")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--evaluations", type=int, default=600, help="per run on the synthetic problems")
    parser.add_argument("--demo-checkpoint", type=Path, help="the demo supernet: adds its two budgets")
    parser.add_argument("--demo-evaluations", type=int, default=600, help="per run on the demo supernet")
    parser.add_argument("--demo-reference-seeds", type=int, default=2, help="its plain GA runs with 5x the evaluations")
    args = parser.parse_args()
    saved = json.loads(args.out.read_text()) if args.out.is_file() else {}
    runs, cache, summary = saved.get("runs", {}), saved.get("demo_cache", {}), {}

    def save() -> None:
        write_json_atomic(args.out, {"runs": runs, "demo_cache": cache, "summary": summary})

    problems = synthetic_problems(args.evaluations)
    if args.demo_checkpoint is not None:
        problems += demo_problems(args.demo_checkpoint, args.demo_evaluations, args.demo_reference_seeds, cache)
    started = time.perf_counter()
    for problem in problems:
        best = reference(problem, runs, save)
        targets = problem.targets(best)
        rows = {}
        for method in problem.methods:
            for seed in range(args.seeds):
                key = f"{problem.name}|{method}|{seed}"
                if key not in runs:
                    runs[key] = search_run(problem, method, seed, problem.evaluations)
                    save()
            keys = [f"{problem.name}|{method}|{seed}" for seed in range(args.seeds)]
            taus = [t for key in keys for t in runs[key]["taus"]]
            rows[method] = summarise([runs[key]["curve"] for key in keys], targets, taus)
        summary[problem.name] = {"reference": best, "targets": targets, "methods": rows}
        save()
        print_table(problem, best, targets, rows)
    print(f"\n{time.perf_counter() - started:.0f} s; runs and summary in {args.out}")


if __name__ == "__main__":
    main()
