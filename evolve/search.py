"""``run_search``: the generation loop shared by the constrained GA and NSGA-II, with logging and resume.

Why a resumed search ends exactly where an uninterrupted one would:

- generation ``g`` draws only from ``random.Random(f"evolve:{seed}:{g}")``, never from shared RNG state;
- what a generation does depends only on the searcher's population and the set of subnets seen so far,
  both rebuilt from the log: the population from the last completed generation's record, the seen set
  from the candidates of the completed generations;
- every evaluated candidate is in the log (metrics as JSON floats, which round-trip exactly), so rerunning
  an interrupted generation proposes the same subnets and finds the logged ones in the cache;
- the accuracy predictor (``EvolveConfig.predictor``) is refitted each generation from the candidates of the
  completed generations, and whether it may choose depends on the last completed generation's record.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from evolve.breeding import Breeder
from evolve.budget import Budget
from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.constrained import ConstrainedSearch
from evolve.errors import BudgetError, SearchError
from evolve.evaluator import CandidateScorer, Evaluator, LatencyFn
from evolve.guided_breeding import GuidedOffspring, PredictorGuide
from evolve.log import SearchLog
from evolve.nsga2 import NSGA2Search
from evolve.pareto import candidate_front
from evolve.ranking import best_per_budget, meets_any
from evolve.results import GenerationSummary, SearchResult, write_results
from search_space import SearchSpace, SpaceError, SubnetConfig

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
GenerationFn = Callable[[GenerationSummary], None]


class Strategy(Protocol):
    """What a searcher provides to the generation loop."""

    def initial(self, rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """New subnets of generation 0 (each added to ``seen``)."""
        ...

    def offspring(self, population: Sequence[Candidate], rng: random.Random, seen: set[str]) -> list[SubnetConfig]:
        """New subnets bred from ``population`` (each added to ``seen``)."""
        ...

    def survivors(self, population: Sequence[Candidate], children: Sequence[Candidate]) -> list[Candidate]:
        """The population the next generation breeds from."""
        ...

    def preselect(self, predicted: Sequence[Candidate], count: int) -> list[Candidate]:
        """The ``count`` most promising of children scored by the accuracy predictor."""
        ...


def generation_rng(seed: int, generation: int) -> random.Random:
    """The RNG of one generation: a function of (seed, generation) only, so any generation can be replayed."""
    return random.Random(f"evolve:{seed}:{generation}")


def run_search(
    space: SearchSpace,
    evaluator: Evaluator | CandidateScorer,
    config: EvolveConfig,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    on_generation: GenerationFn | None = None,
    latency_fn: LatencyFn | None = None,
) -> SearchResult:
    """Search ``space`` for the best subnets under ``config`` (constrained GA or NSGA-II).

    Args:
        space: the search space.
        evaluator: scores batches of subnets (see :class:`evolve.Evaluator`); a :class:`CandidateScorer` is
            used as is (its cache and counters carry over), anything else is wrapped in one.
        config: the search settings.
        out_dir: where the log and the results (``pareto.json``, ``best.json``, ``pareto.png``) go; None
            keeps everything in memory.
        resume: continue the log in ``out_dir``: completed generations are not redone and logged candidates
            are not evaluated again; the result equals that of an uninterrupted run.
        progress: called as ``progress(done, total)`` after each evaluator call with the subnets of the
            current generation evaluated so far.
        on_generation: called with a :class:`GenerationSummary` after each generation.
        latency_fn: ``cfg -> milliseconds``, needed when a budget or objective is ``latency_ms``.

    Raises:
        BudgetError: a budget that no subnet of the space meets (the smallest attainable value is named).
        SearchError: inconsistent settings, a bad evaluator result or a log that cannot be resumed.
    """
    if resume and out_dir is None:
        raise SearchError("resume=True needs the out_dir of the search to resume")
    scorer = _scorer(space, evaluator, config, latency_fn)
    budgets = resolve_budgets(space, config.parsed_budgets, scorer.costs)
    _check_attainable(space, budgets, scorer)
    strategy = _strategy(Breeder(space, scorer, config), config, budgets)
    guide = PredictorGuide(space, config, scorer, strategy)
    log = SearchLog(out_dir, space, config, resume) if out_dir is not None else None
    try:
        state = _Loop(config, budgets, scorer, strategy, guide, log, progress, on_generation)
        if log is not None:
            state.restore()
        state.run()
    finally:
        if log is not None:
            log.close()
    result = state.result(space)
    if out_dir is not None:
        write_results(out_dir, result)
    return result


class _Loop:
    """The generation loop and its state: population, archive (all candidates), history."""

    def __init__(
        self,
        config: EvolveConfig,
        budgets: tuple[Budget, ...],
        scorer: CandidateScorer,
        strategy: Strategy,
        guide: PredictorGuide,
        log: SearchLog | None,
        progress: ProgressFn | None,
        on_generation: GenerationFn | None,
    ):
        self.config, self.budgets, self.scorer, self.strategy = config, budgets, scorer, strategy
        self.guide = guide
        self.log, self.progress, self.on_generation = log, progress, on_generation
        self.next_generation = 0
        self.population: list[Candidate] = []
        self.archive: dict[str, Candidate] = {}
        self.history: list[GenerationSummary] = []

    def restore(self) -> None:
        """Rebuild the state after the last completed generation in the log (at most ``config.generations``)."""
        logged = self.log.logged
        self.scorer.preload(logged.candidates)
        lookup = {c.key: c for c in logged.candidates}
        records = logged.generations[: self.config.generations + 1]
        for expected, record in enumerate(records):
            if record.get("generation") != expected:
                raise SearchError(f"{self.log.out_dir}: generation records are out of order at {record}")
        if not records:
            return
        last = records[-1]["generation"]
        missing = [key for r in records for key in (*r["population"], *r["best"].values()) if key and key not in lookup]
        if missing:
            raise SearchError(
                f"{self.log.out_dir}: generation records name subnets missing from the log: {missing[:3]}"
            )
        self.archive = {c.key: c for c in logged.candidates if c.generation <= last}
        self.population = [lookup[key] for key in records[-1]["population"]]
        self.history = [GenerationSummary.from_record(r, lookup) for r in records]
        self.next_generation = last + 1

    def run(self) -> None:
        """Run the generations from ``next_generation`` to ``config.generations``, logging each one."""
        for generation in range(self.next_generation, self.config.generations + 1):
            rng = generation_rng(self.config.seed, generation)
            seen = set(self.archive)
            if generation == 0:
                guided = GuidedOffspring(self.strategy.initial(rng, seen))
            else:
                last = self.history[-1].predictor if self.history else None
                archive = list(self.archive.values())
                guided = self.guide.offspring(self.population, archive, last, rng, seen, generation)
            new = self._evaluate(guided.proposals, generation, guided.predictions or {})
            fresh = [c for c in new if c.key not in self.archive]
            self.archive.update((c.key, c) for c in new)
            self.population = self.strategy.survivors(self.population, new)
            summary = self._summary(generation, guided.record(fresh, self.config.objective))
            self.history.append(summary)
            if self.log is not None:
                self.log.end_generation(summary, self.population)
            logger.info(summary.describe(self.config.objective))
            if self.on_generation is not None:
                self.on_generation(summary)

    def result(self, space: SearchSpace) -> SearchResult:
        """The outcome so far: best per budget and the Pareto front over every candidate evaluated."""
        candidates = sorted(self.archive.values(), key=lambda c: (c.generation, c.key))
        return SearchResult(
            space=space,
            config=self.config,
            budgets=self.budgets,
            best=best_per_budget(candidates, self.config.objective, self.budgets),
            pareto=self._front(),
            population=list(self.population),
            candidates=candidates,
            history=list(self.history),
            evaluations=self.scorer.evaluations,
            cache_hits=self.scorer.cache_hits,
        )

    def _evaluate(
        self, proposals: list[SubnetConfig], generation: int, predictions: dict[str, float]
    ) -> list[Candidate]:
        """Candidates of ``proposals``, the new ones logged with their ``predictions`` (by subnet string)."""
        done = 0

        def with_prediction(candidate: Candidate) -> Candidate:
            predicted = predictions.get(candidate.key)
            return candidate if predicted is None else dataclasses.replace(candidate, predicted=predicted)

        def on_batch(fresh: list[Candidate]) -> None:
            nonlocal done
            if self.log is not None:
                self.log.append([with_prediction(c) for c in fresh])
            done += len(fresh)
            if self.progress is not None:
                self.progress(done, pending)

        pending = sum(1 for cfg in proposals if self.scorer.cached(str(cfg)) is None)
        evaluated = self.scorer.evaluate(proposals, generation, self.config.eval_batch_size, on_batch)
        return [with_prediction(c) for c in evaluated]

    def _front(self) -> list[Candidate]:
        feasible = [c for c in self.archive.values() if meets_any(c, self.budgets)]
        return candidate_front(feasible, self.config.objective, self.config.objectives)

    def _summary(self, generation: int, predictor: dict | None) -> GenerationSummary:
        return GenerationSummary(
            generation=generation,
            best=best_per_budget(list(self.archive.values()), self.config.objective, self.budgets),
            front_size=len(self._front()),
            population_size=len(self.population),
            candidates=len(self.archive),
            evaluations=self.scorer.evaluations,
            cache_hits=self.scorer.cache_hits,
            predictor=predictor,
        )


def _scorer(
    space: SearchSpace, evaluator: Evaluator | CandidateScorer, config: EvolveConfig, latency_fn: LatencyFn | None
) -> CandidateScorer:
    if not isinstance(evaluator, CandidateScorer):
        return CandidateScorer(space, evaluator, config.objective, latency_fn, config.needs_latency)
    if evaluator.space is not space or evaluator.objective != config.objective:
        raise SearchError("the CandidateScorer passed in was built for another space or objective than the search's")
    if config.needs_latency and evaluator.latency_fn is None:
        raise SearchError("a latency budget or objective needs a CandidateScorer built with measure_latency=True")
    return evaluator


def _strategy(breeder: Breeder, config: EvolveConfig, budgets: tuple[Budget, ...]) -> Strategy:
    if config.algorithm == "nsga2":
        return NSGA2Search(breeder, config, budgets)
    return ConstrainedSearch(breeder, config, budgets)


def resolve_budgets(
    space: SearchSpace, budgets: Sequence[Budget], costs: Callable[[SubnetConfig], dict[str, float]]
) -> tuple[Budget, ...]:
    """``budgets`` with each relative one (``latency_ms<=40%``) resolved to an absolute limit between the costs of
    the space's smallest and largest subnet, as ``costs`` gives them (the lookup table's predictions, for latency).
    """
    if not any(budget.is_relative for budget in budgets):
        return tuple(budgets)
    smallest, largest = {}, {}
    for budget in budgets:
        if budget.is_relative and not budget.is_latency:
            smallest[budget.metric] = costs(space.extreme_subnet(budget.metric))[budget.metric]
            largest[budget.metric] = costs(space.extreme_subnet(budget.metric, dearest=True))[budget.metric]
    if any(b.is_relative and b.is_latency for b in budgets):
        smallest["latency_ms"] = fastest_smallest_subnet(space, costs)[1]
        largest["latency_ms"] = costs(space.max_subnet())["latency_ms"]
    resolved = tuple(b.resolved(smallest[b.metric], largest[b.metric]) if b.is_relative else b for b in budgets)
    for budget in resolved:
        if budget.is_relative:
            logger.info("budget %s of space '%s'", budget.describe(), space.name)
    return resolved


def unattainable_cost_budgets(space: SearchSpace, budgets: Sequence[Budget]) -> tuple[list[str], list[str]]:
    """``(problems, labels)`` of the absolute cost budgets in ``budgets`` that are tighter than the smallest subnet
    (latency budgets need a latency function and relative ones are attainable by definition: both are skipped)."""
    problems, labels = [], []
    for budget in budgets:
        if budget.is_latency or budget.is_relative:
            continue
        try:
            space.check_attainable(budget.bounds)
        except SpaceError as err:
            problems.extend(f"budget {budget.label}: {p}; loosen the budget" for p in err.problems)
            labels.append(budget.label)
    return problems, labels


def fastest_smallest_subnet(
    space: SearchSpace, costs: Callable[[SubnetConfig], dict[str, float]]
) -> tuple[SubnetConfig, float]:
    """The smallest subnet at the resolution where ``costs`` gives it the lowest ``latency_ms``, and that latency;
    each stage's block is the code ``costs`` gives the lowest latency there.

    Latency need not grow with the resolution as MACs do: a table timed in noise, or a runtime whose kernels suit
    one size, can put the smallest subnet at 8 px under the one at 4 px. Nor need the first block code be the fastest
    (a fused block can run faster than a depthwise one of fewer MACs).
    """
    corners = space.min_subnets_per_resolution(lambda cfg: costs(cfg)["latency_ms"])
    timed = [(costs(cfg)["latency_ms"], index) for index, cfg in enumerate(corners)]
    latency, index = min(timed)
    return corners[index], latency


def _check_attainable(space: SearchSpace, budgets: Sequence[Budget], scorer: CandidateScorer) -> None:
    """Fail before any evaluation on a budget tighter than the smallest subnet's cost, naming every such budget."""
    problems, labels = unattainable_cost_budgets(space, budgets)
    latency_budgets = [b for b in budgets if b.is_latency]
    fastest, smallest = fastest_smallest_subnet(space, scorer.costs) if latency_budgets else (None, 0.0)
    for budget in latency_budgets:
        if smallest > budget.limit:
            problems.append(
                f"budget {budget.label} is unsatisfiable: the smallest subnet of space '{space.name}' "
                f"(at its fastest resolution, {fastest.resolution} px) takes {smallest:.4g} ms; loosen the budget "
                "or state it as a share of the space's range (e.g. latency_ms<=40%)"
            )
            labels.append(budget.label)
    if problems:
        raise BudgetError(problems, labels)
