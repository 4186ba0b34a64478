"""``nasvit search``: evolutionary search over a trained supernet under cost and latency budgets.

Writes ``candidates.jsonl``, ``pareto.json``, ``best.json``, ``pareto.png`` and tensorboard scalars into the
output directory; ``resume=True`` continues an interrupted search without evaluating anything again.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from evolve import (
    BEST_FILE,
    Budget,
    BudgetError,
    Candidate,
    CandidateScorer,
    GenerationSummary,
    SearchResult,
    parse_budget,
    run_search,
    unattainable_cost_budgets,
)
from nasvit.config.loading import dump_yaml
from nasvit.config.search import SearchConfig
from nasvit.data import build_data, fixed_batches
from nasvit.errors import NasvitError
from nasvit.latency.budget_check import BudgetCheck, check_latency_budgets, describe_check, record_budget_checks
from nasvit.recipes.search_evaluator import DistributedEvaluator, SupernetEvaluator
from nasvit.runtime import checkpoint, distributed, run_directory
from search_space import SearchSpace, load_space, parse_space, space_fingerprint

logger = logging.getLogger(__name__)


class SearchRecipe:
    """Search as one object: :meth:`setup`, :meth:`search`, :meth:`cleanup` (or :meth:`run` for all three).

    Args:
        config: the search config.
        checkpoint_path: a supernet checkpoint written by ``nasvit train``.
        out_dir: where the search files go.
        resume: continue the search logged in ``out_dir`` (refused when it searched another checkpoint or data).
        overwrite: clear ``out_dir`` first when it holds a nasvit run (without it such a directory is refused).
    """

    def __init__(
        self,
        config: SearchConfig,
        checkpoint_path: str | Path,
        out_dir: str | Path,
        resume: bool = False,
        overwrite: bool = False,
    ):
        self.config, self.checkpoint_path, self.out_dir = config, Path(checkpoint_path), Path(out_dir)
        self.resume, self.overwrite = resume, overwrite

    def setup(self) -> None:
        config = self.config
        state = checkpoint.load(self.checkpoint_path)
        self.space = parse_space(state["space"], source=f"{self.checkpoint_path} (space)")
        _check_space(config.space, self.space, self.checkpoint_path)
        _check_budgets_attainable(config.evolve.budgets, self.space)
        self.ctx = distributed.init(config.device)
        data_config = config.data or checkpoint.data_config_of(state)
        if self.ctx.is_main:
            inputs = self._run_inputs(data_config)
            run_directory.claim(self.out_dir, "search", inputs, resume=self.resume, overwrite=self.overwrite)
        self.net = checkpoint.supernet_from_state(state, config.eval.use_ema, self.ctx.device)
        data = build_data(data_config)
        if data.num_classes != state["num_classes"]:
            raise NasvitError(
                f"the data has {data.num_classes} classes but the checkpoint's classifier has {state['num_classes']}"
            )
        calibration = fixed_batches(
            data.train_eval,
            config.eval.bn_batches,
            config.eval.batch_size,
            data_config.seed,
            size_keys=("eval.bn_batches", "eval.batch_size"),
        )
        held_out = fixed_batches(data.dataset(config.eval.split), None, config.eval.batch_size, data_config.seed)
        device = self.ctx.device
        calibration = [(x.to(device), y.to(device)) for x, y in calibration]  # moved once, not per candidate
        held_out = [(x.to(device), y.to(device)) for x, y in held_out]
        self.local = SupernetEvaluator(self.net, calibration, held_out, self._autocast)
        distributed_run = self.ctx.distributed
        self.evaluator = DistributedEvaluator(self.local, self.space) if distributed_run else self.local
        needs_latency = config.evolve.needs_latency and self.ctx.is_main
        self.latency_fn, self.latency_settings = latency_source(config, self.space) if needs_latency else (None, None)
        self.scorer = CandidateScorer(
            self.space, self.evaluator, config.evolve.objective, self.latency_fn, needs_latency
        )
        if self.ctx.is_main:
            (self.out_dir / "search_config.yaml").write_text(dump_yaml(config))
            logger.info(
                "searching %s (%s) with %s: budgets %s, %d held-out images, %d calibration batches",
                self.space.name,
                self.checkpoint_path,
                config.evolve.algorithm,
                config.evolve.budgets,
                sum(len(labels) for _, labels in held_out),
                len(calibration),
            )

    def _run_inputs(self, data_config) -> dict[str, Any]:
        """What defines this search (``run.json``): a resume with other inputs is refused."""
        config = self.config
        inputs = {
            "checkpoint_sha256": run_directory.file_digest(self.checkpoint_path),
            "space": space_fingerprint(self.space),
            "dataset": data_config.dataset,
            "root": data_config.root,
        }
        table = config.latency.lut if config.evolve.needs_latency and config.latency.source == "lut" else None
        if table is not None and Path(table).is_file():  # its predictions are the candidates' latencies
            inputs["latency_table_sha256"] = run_directory.file_digest(table)
        return inputs

    def search(self) -> dict[str, Any]:
        """Run the search (rank 0) or serve evaluations (other ranks); returns a summary on rank 0."""
        if not self.ctx.is_main:
            self.evaluator.serve()
            return {}
        writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        bar = tqdm(desc="generation 0", unit="subnet", dynamic_ncols=True, leave=False, disable=not sys.stderr.isatty())
        started = time.perf_counter()

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        def on_generation(summary: GenerationSummary) -> None:  # evolve logs the generation's line itself
            for label, candidate in summary.best.items():
                if candidate is not None:
                    writer.add_scalar(f"best_top1/{label}", candidate.metrics["top1"], summary.generation)
            writer.add_scalar("front_size", summary.front_size, summary.generation)
            writer.add_scalar("evaluations", summary.evaluations, summary.generation)
            if summary.predictor is not None:
                if summary.predictor["tau"] is not None:
                    writer.add_scalar("predictor/kendall_tau", summary.predictor["tau"], summary.generation)
                writer.add_scalar("predictor/picked_children", float(summary.predictor["used"]), summary.generation)
            bar.reset()
            bar.set_description(f"generation {summary.generation + 1}")

        try:
            try:
                result = run_search(
                    self.space,
                    self.scorer,
                    self.config.evolve,
                    out_dir=self.out_dir,
                    resume=self.resume,
                    progress=progress,
                    on_generation=on_generation,
                )
            finally:
                bar.close()
                writer.close()
            checks = self._check_latency_budgets(result)  # may search again: the evaluator stays open for it
        finally:
            if isinstance(self.evaluator, DistributedEvaluator):
                self.evaluator.close()
        return self._summary(result, checks, time.perf_counter() - started)

    def _check_latency_budgets(self, result: SearchResult) -> dict[str, BudgetCheck]:
        """Time each latency budget's winner and runners-up here; ``best.json`` gets the measured winner (or the
        budget marked not met) and the figures (:mod:`nasvit.latency.budget_check`)."""
        winners = {b: result.best[b.label] for b in result.budgets if b.is_latency and result.best[b.label] is not None}
        if not winners or not self.config.latency.verify:
            return {}
        objective, latency = result.config.objective, self.config.latency
        checks = check_latency_budgets(
            winners,
            result.candidates,
            self.latency_settings,
            objective,
            latency.runners_up,
            self._search_within,
            latency.correction_rounds,
            self.space.min_subnets_per_resolution(lambda cfg: self.scorer.costs(cfg)["latency_ms"]),
        )
        record_budget_checks(self.out_dir / BEST_FILE, checks, objective)
        for check in checks:
            logger.info("%s", describe_check(check))
        return {check.budget.label: check for check in checks}

    def _search_within(self, budget: Budget, predicted_limit_ms: float) -> list[Candidate]:
        """A search under ``latency_ms <= predicted_limit_ms`` with the search's own settings, in memory, with the
        scorer the search used, so only subnets it never scored are evaluated; returns every candidate it saw."""
        evolve = dataclasses.replace(
            self.config.evolve, algorithm="constrained", budgets=[f"{budget.metric}<={predicted_limit_ms:.6g}"]
        )
        try:
            return run_search(self.space, self.scorer, evolve).candidates
        except BudgetError as err:  # e.g. the space's smallest subnet is predicted over the corrected limit
            logger.info(
                "no new search under a predicted %.4g ms (%s); choosing among the candidates already scored",
                predicted_limit_ms,
                "; ".join(err.problems),
            )
            return []

    def _summary(self, result: SearchResult, checks: dict[str, BudgetCheck], seconds: float) -> dict[str, Any]:
        best = {}
        for budget in result.budgets:
            label, check, c = budget.label, checks.get(budget.label), result.best[budget.label]
            chosen = c if check is None else (check.chosen.candidate if check.chosen else None)
            best[label] = (
                None
                if chosen is None
                else {"subnet": chosen.key, "limit": budget.limit, "top1": chosen.metrics["top1"], **chosen.costs}
            )
            if check is not None:
                best[label] = {**(best[label] or {}), "latency_check": check.to_record(result.config.objective)}
        return {
            "best": best,
            "pareto_size": len(result.pareto),
            "evaluations": result.evaluations,
            "cache_hits": result.cache_hits,
            "seconds": seconds,
            "evaluations_per_minute": 60.0 * result.evaluations / max(seconds, 1e-9),
            "calibration_seconds": self.local.seconds["calibration"],
            "accuracy_seconds": self.local.seconds["accuracy"],
        }

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def cleanup(self) -> None:
        distributed.cleanup()

    def run(self) -> dict[str, Any]:
        try:
            self.setup()
            return self.search()
        finally:
            self.cleanup()


def latency_source(config: SearchConfig, space: SearchSpace):
    """``(cfg -> milliseconds, LatencySettings)``: the configured latency source and how it times (a lookup
    table's own settings), which the check of latency budgets after the search reuses."""
    from nasvit.latency import LatencySettings, measure_latency

    latency = config.latency
    if latency.source == "measure":
        settings = LatencySettings(
            batch_size=latency.batch_size, threads=latency.threads, repeats=latency.repeats, runtime=latency.runtime
        )
        return (lambda cfg: measure_latency(cfg, settings).median_ms), settings
    if latency.lut is None:
        raise NasvitError(
            "a latency_ms budget with latency.source=lut needs latency.lut=<table from nasvit latency build-lut>"
        )
    from nasvit.latency.table import LatencyTable

    table = LatencyTable.load(latency.lut, space)
    if table.settings.runtime != latency.runtime:
        raise NasvitError(
            f"latency table {latency.lut} was timed in {table.settings.runtime}, but latency.runtime is "
            f"{latency.runtime}: build a table in {latency.runtime} (nasvit latency build-lut --runtime "
            f"{latency.runtime}) or set latency.runtime={table.settings.runtime}"
        )
    missing = sorted(set(space.resolutions) - set(table.calibration))
    if missing:
        raise NasvitError(
            f"latency table {latency.lut} is not calibrated for {missing} px, which space '{space.name}' samples; "
            f"add them with: nasvit latency build-lut --space {space.name} --out {latency.lut} --resolutions "
            + " ".join(map(str, missing))
        )
    return table.predict, table.settings


def _check_space(expected: str | None, actual: SearchSpace, path: Path) -> None:
    if expected is None:
        return
    wanted = load_space(expected)
    if wanted != actual:
        raise checkpoint.CheckpointError(
            f"checkpoint {path} holds a supernet of space '{actual.name}', but the search config asks for "
            f"'{wanted.name}'; pass a checkpoint trained on '{wanted.name}' or drop the space setting"
        )


def _check_budgets_attainable(budgets: list[str], space: SearchSpace) -> None:
    """Fail before loading anything when a cost budget is tighter than the smallest subnet (every such one named)."""
    problems, labels = unattainable_cost_budgets(space, [parse_budget(text) for text in budgets])
    if problems:
        raise BudgetError(problems, labels)
