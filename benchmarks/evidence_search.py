"""The search side of the evidence run: the evolutionary search against random sampling of the space under the same
MACs budgets and numbers of evaluated subnets, on the full-method supernet; then the found subnets exported and
fine-tuned with ``nasvit finetune``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from accuracy_predictor import Problem, search_run
from demo_supernets import supernet_top1
from evidence_plan import Plan

from evolve import parse_budget
from nasvit.cli import main as nasvit
from nasvit.config.finetune import FinetuneConfig
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig
from nasvit.errors import NasvitError
from nasvit.recipes.finetune import FinetuneRecipe
from nasvit.recipes.search import SearchRecipe
from nasvit.runtime import checkpoint
from search_space import SearchSpace, SubnetConfig

METHODS = ("evolution", "random")


def budget_labels(plan: Plan, space: SearchSpace) -> list[str]:
    """MACs budgets at ``plan.budget_shares`` of the way from the smallest to the largest subnet, in M."""
    low, high = space.cost(space.min_subnet()).macs, space.cost(space.max_subnet()).macs
    return [f"macs<={(low + share * (high - low)) / 1e6:.2f}M" for share in plan.budget_shares]


class LazyScorer:
    """Search-split top-1 of subnets of one supernet, as ``nasvit search`` measures it (BN recalibrated per subnet),
    each measured once; the supernet and its data are loaded at the first call."""

    def __init__(self, plan: Plan, run_dir: Path, out: Path, budgets: list[str]):
        self.plan, self.run_dir, self.out, self.budgets = plan, run_dir, out, budgets
        self.recipe: SearchRecipe | None = None
        self.cache: dict[str, float] = {}

    @property
    def space(self) -> SearchSpace:
        return self._setup().space

    def _setup(self) -> SearchRecipe:
        if self.recipe is None:
            plan = self.plan
            settings = ["device=cpu", f"evolve.budgets={self.budgets}", f"eval.bn_batches={plan.bn_batches}"]
            settings.append(f"eval.batch_size={plan.eval_batch}")
            config = load_config(SearchConfig, "configs/search/tiny.yaml", settings)
            self.recipe = SearchRecipe(config, checkpoint.latest(self.run_dir), self.out, overwrite=True)
            self.recipe.setup()
        return self.recipe

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[float]:
        todo = [cfg for cfg in dict.fromkeys(cfgs) if str(cfg) not in self.cache]
        for cfg, metrics in zip(todo, self._setup().local(todo)):
            self.cache[str(cfg)] = metrics["top1"]
        return [self.cache[str(cfg)] for cfg in cfgs]


def search(plan: Plan, scorer: LazyScorer, run_dir: Path, budget: str, method: str, seed: int) -> dict:
    """One search of ``plan.search_evaluations`` subnets: its best-so-far curve, its best subnet and that subnet's
    validation top-1 (after BN recalibration)."""
    space = scorer.space
    problem = Problem(f"{budget}", space, parse_budget(budget), scorer, plan.search_evaluations, None, METHODS)
    run = search_run(problem, "ga" if method == "evolution" else "random", seed, plan.search_evaluations)
    best = space.parse(run["best_subnet"])
    return {**run, "best_top1": run["curve"][-1], "best_val_top1": supernet_top1(run_dir, [best])[0]}


def finetune(plan: Plan, data: Path, out: Path, run_dir: Path, subnet: str, name: str) -> dict:
    """Export ``subnet`` from the supernet of ``run_dir`` and fine-tune it on the training images with the data
    settings of the supernet's training; the export's validation top-1 and the wall time."""
    export = out / "exports" / name
    started = time.perf_counter()
    ckpt = str(checkpoint.latest(run_dir))
    sizes = ["--bn-batches", str(plan.bn_batches), "--batch-size", str(plan.eval_batch)]
    if nasvit(["export", "--checkpoint", ckpt, "--arch", subnet, "--out", str(export), "--overwrite", *sizes]) != 0:
        raise NasvitError(f"nasvit export of {subnet} failed (its error is above)")
    overrides = [
        f"model={export}",
        f"data.dataset={data}",
        f"data.batch_size={plan.batch_size}",
        f"data.search_per_class={plan.search_per_class}",
        f"data.val_fraction={plan.val_fraction}",
        f"optim.epochs={plan.finetune_epochs}",
        f"eval.every_epochs={plan.finetune_epochs}",
        f"eval.batch_size={plan.eval_batch}",
        "device=cpu",
    ]
    config = load_config(FinetuneConfig, "configs/finetune/default.yaml", overrides)
    finetune_dir = out / "finetune" / name
    resume = "auto" if checkpoint.latest(finetune_dir) else None
    summary = FinetuneRecipe(config, finetune_dir, resume=resume).run()
    return {"top1": summary["top1"], "export": summary["export"], "wall_seconds": time.perf_counter() - started}
