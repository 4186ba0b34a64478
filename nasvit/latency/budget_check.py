"""Latency budgets that hold: after a search, time each latency budget's winner and runners-up on this device.

A search under ``latency_ms<=B`` ranks candidates by a *predicted* latency (a lookup table, or one quick
measurement each). A prediction a few percent low lets a winner through that runs over its budget. So the
most accurate candidates predicted within each budget are timed again, together and interleaved (a drift of
the machine hits them alike), and the budget's subnet becomes the most accurate one whose *measured* median is
within it.

The search maximises accuracy up to the budget, so the candidates it times all sit at its edge: a table that
reads 10% fast makes every one of them miss. Then the check corrects the prediction by what it measured (the
median measured/predicted ratio so far), asks for candidates predicted within the corrected limit (``search_within``:
a new search under it) and times those, for a bounded number of rounds. Only when every round misses is the
budget reported as not met, with every round's figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve import Budget, Candidate
from nasvit.latency.measure import LatencyStats, inference_model, measure_modules_interleaved, warn_if_noisy
from nasvit.latency.settings import LatencySettings
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SearchSpace, SubnetConfig

logger = logging.getLogger(__name__)

SearchWithin = Callable[[Budget, float], list[Candidate]]  # (budget, corrected predicted limit) -> candidates


@dataclass(frozen=True)
class TimedCandidate:
    """A candidate of a latency budget with its predicted and measured latency."""

    candidate: Candidate
    predicted_ms: float
    measured: LatencyStats

    def to_record(self, objective: str) -> dict[str, Any]:
        return {
            "subnet": self.candidate.key,
            objective: self.candidate.metrics[objective],
            "predicted_ms": self.predicted_ms,
            "measured_ms": self.measured.median_ms,
            "p10_ms": self.measured.p10_ms,
            "p90_ms": self.measured.p90_ms,
            "runs": self.measured.runs,
        }


@dataclass(frozen=True)
class CheckRound:
    """One round of timing for a latency budget.

    Attributes:
        predicted_limit_ms: the limit on *predicted* latency the round's candidates were chosen under: the budget
            itself in round 0, then the budget corrected by what the rounds before measured.
        timed: the candidates timed in the round, most accurate first.
    """

    predicted_limit_ms: float
    timed: tuple[TimedCandidate, ...]


@dataclass(frozen=True)
class BudgetCheck:
    """The outcome for one latency budget.

    Attributes:
        budget: the budget checked (a relative budget resolved to milliseconds on the predictions).
        limit_ms: what a measured median must stay within: the budget's limit, or for a relative budget the same
            share of the way between the space's smallest and largest subnet *as measured* with the candidates
            (so a table that reads uniformly fast or slow does not move a relative budget).
        searched: the search's winner (by predicted latency).
        rounds: the rounds of timing, the first one of the search's own candidates.
        chosen: the most accurate candidate of the first round that had one whose measured median is within the
            budget; None: not met.
        runtime: the runtime the candidates were timed in (``LatencySettings.runtime``).
    """

    budget: Budget
    limit_ms: float
    searched: Candidate
    rounds: tuple[CheckRound, ...]
    chosen: TimedCandidate | None
    runtime: str = "torch"

    @property
    def timed(self) -> tuple[TimedCandidate, ...]:
        """Every candidate timed, round by round."""
        return tuple(t for check_round in self.rounds for t in check_round.timed)

    @property
    def met(self) -> bool:
        return self.chosen is not None

    @property
    def replaced(self) -> bool:
        """Whether the measured winner differs from the search's (predicted) one."""
        return self.chosen is not None and self.chosen.candidate.key != self.searched.key

    def to_record(self, objective: str) -> dict[str, Any]:
        """JSON-ready summary for ``best.json``'s ``latency_check``: the chosen figures, then every round."""
        chosen = self.chosen
        return {
            "met": self.met,
            "runtime": self.runtime,
            "limit_ms": self.limit_ms,
            "searched_subnet": self.searched.key,
            "replaced": self.replaced,
            "measured_ms": chosen.measured.median_ms if chosen else None,
            "p10_ms": chosen.measured.p10_ms if chosen else None,
            "p90_ms": chosen.measured.p90_ms if chosen else None,
            "predicted_ms": chosen.predicted_ms if chosen else None,
            "timed": [t.to_record(objective) for t in self.timed],
            "rounds": [
                {"round": index, "predicted_limit_ms": r.predicted_limit_ms, "timed": len(r.timed)}
                for index, r in enumerate(self.rounds)
            ],
        }


def contenders(candidates: Iterable[Candidate], budget: Budget, objective: str, count: int) -> list[Candidate]:
    """The ``count`` candidates with the best ``objective`` among those predicted within ``budget``."""
    within = [c for c in candidates if budget.metric in c.costs and budget.satisfied(c.costs)]
    return sorted(within, key=lambda c: (-c.metrics[objective], c.costs[budget.metric], c.key))[:count]


def check_latency_budgets(
    winners: dict[Budget, Candidate],
    candidates: list[Candidate],
    settings: LatencySettings,
    objective: str = "top1",
    runners_up: int = 4,
    search_within: SearchWithin | None = None,
    correction_rounds: int = 0,
    corners: Sequence[SubnetConfig] | None = None,
) -> list[BudgetCheck]:
    """Time the winner and ``runners_up`` runners-up of each latency budget in one interleaved measurement (a
    subnet shared by several budgets is timed once) and choose, per budget, the most accurate one measured
    within it; a budget none of them meets gets up to ``correction_rounds`` more rounds (:func:`_correct`).

    Args:
        winners: each latency budget's winner from the search (relative budgets resolved).
        candidates: every candidate of the search (their ``costs["latency_ms"]`` are the predictions).
        settings: how to time (the lookup table's own settings, so the figures compare).
        objective: the metric the search maximised.
        runners_up: candidates timed after the winner, per budget and round.
        search_within: ``(budget, predicted limit) -> candidates``: a search under the corrected limit; None
            chooses among ``candidates`` alone.
        correction_rounds: rounds after the first for a budget none of whose timed candidates meets it.
        corners: the smallest subnets timed to resolve relative budgets (default: ``min_subnets_per_resolution()``).
    """
    lists = {
        budget: _with_winner(winner, contenders(candidates, budget, objective, runners_up + 1))
        for budget, winner in winners.items()
    }
    distinct = {c.key: c.subnet for contending in lists.values() for c in contending}
    if not distinct:
        return []
    space = next(iter(winners.values())).subnet.space
    extremes = _relative_budget_extremes(space, corners) if any(budget.is_relative for budget in lists) else {}
    logger.info("timing %d candidates of %d latency budgets on this device", len(distinct), len(lists))
    stats = _time({**distinct, **extremes}, settings)
    warn_if_noisy(list(stats.values()), "candidate")
    checks = []
    for budget, contending in lists.items():
        first = CheckRound(
            budget.limit, tuple(TimedCandidate(c, c.costs[budget.metric], stats[c.key]) for c in contending)
        )
        limit = _measured_limit(budget, [stats[key] for key in extremes])
        check = BudgetCheck(budget, limit, winners[budget], (first,), _within(first, limit), settings.runtime)
        for _ in range(correction_rounds if check.chosen is None else 0):
            check = _correct(check, candidates, settings, objective, runners_up, search_within)
            if check.chosen is not None or len(check.rounds[-1].timed) == 0:
                break
        checks.append(check)
    return checks


def _relative_budget_extremes(space: SearchSpace, corners: Sequence[SubnetConfig] | None) -> dict[str, SubnetConfig]:
    """The subnets timed to resolve relative budgets: the smallest at every resolution (``corners``), then the
    largest."""
    corners = space.min_subnets_per_resolution() if corners is None else corners
    return {str(cfg): cfg for cfg in [*corners, space.max_subnet()]}


def _measured_limit(budget: Budget, extremes: list[LatencyStats]) -> float:
    """The limit measured medians must meet: a relative budget resolved between the fastest of the smallest
    subnets and the largest (``extremes``: those, the largest last), an absolute one as it is."""
    if not budget.is_relative:
        return budget.limit
    smallest = min(stats.median_ms for stats in extremes[:-1])
    return budget.resolved(smallest, extremes[-1].median_ms).limit


def _within(check_round: CheckRound, limit_ms: float) -> TimedCandidate | None:
    """The most accurate candidate of the round whose measured median is within ``limit_ms``."""
    return next((t for t in check_round.timed if t.measured.median_ms <= limit_ms), None)


def corrected_limit(check: BudgetCheck) -> float:
    """The next round's limit on predicted latency: the budget divided by the median measured/predicted ratio of
    every candidate timed so far, and below the last round's limit (which all its candidates missed) in any case."""
    ratio = statistics.median(t.measured.median_ms / t.predicted_ms for t in check.timed)
    last = check.rounds[-1].predicted_limit_ms
    fastest = min(t.measured.median_ms for t in check.rounds[-1].timed)
    return min(check.limit_ms / ratio, last * check.limit_ms / fastest)


def _correct(
    check: BudgetCheck,
    candidates: list[Candidate],
    settings: LatencySettings,
    objective: str,
    runners_up: int,
    search_within: SearchWithin | None,
) -> BudgetCheck:
    """One more round for a budget not met yet: the most accurate candidates predicted within the corrected limit
    that were not timed before (from a new search under it where ``search_within`` is given), timed."""
    budget, limit = check.budget, corrected_limit(check)
    logger.info(
        "%s: none of the %d candidates timed measures within it; searching again under a predicted %.4g ms",
        budget.describe(),
        len(check.timed),
        limit,
    )
    pool = list(candidates) + (search_within(budget, limit) if search_within is not None else [])
    timed_keys = {t.candidate.key for t in check.timed}
    corrected = Budget(budget.metric, limit)
    fresh = [c for c in contenders(pool, corrected, objective, len(pool)) if c.key not in timed_keys]
    fresh = list({c.key: c for c in fresh}.values())[: runners_up + 1]
    stats = _time({c.key: c.subnet for c in fresh}, settings) if fresh else {}
    warn_if_noisy(list(stats.values()), "candidate")
    new_round = CheckRound(limit, tuple(TimedCandidate(c, c.costs[budget.metric], stats[c.key]) for c in fresh))
    rounds = (*check.rounds, new_round)
    return dataclasses.replace(check, rounds=rounds, chosen=_within(new_round, check.limit_ms))


def _with_winner(winner: Candidate, contending: list[Candidate]) -> list[Candidate]:
    """``contending`` led by ``winner`` (the search may have chosen by another tie-break)."""
    return [winner, *(c for c in contending if c.key != winner.key)][: max(len(contending), 1)]


def _time(subnets: dict[str, SubnetConfig], settings: LatencySettings) -> dict[str, LatencyStats]:
    """Timings of each subnet's inference-form model (by subnet string), all in one interleaved measurement, each at
    its own resolution."""
    models = [inference_model(cfg) for cfg in subnets.values()]
    shapes = [(settings.batch_size, cfg.space.in_channels, cfg.resolution, cfg.resolution) for cfg in subnets.values()]
    measured = measure_modules_interleaved(models, shapes, settings)
    return dict(zip(subnets, measured, strict=True))


def describe_check(check: BudgetCheck) -> str:
    """One line: the budget, what was timed and what it chose."""
    label = check.budget.describe()
    if check.chosen is None:
        fastest = min(check.timed, key=lambda t: t.measured.median_ms)
        return (
            f"{label}: NOT MET on this device in {check.runtime}: none of the {len(check.timed)} most accurate "
            "candidates timed in "
            f"{len(check.rounds)} round(s) measures within {check.limit_ms:.4g} ms (fastest "
            f"{fastest.measured.describe()}, predicted {fastest.predicted_ms:.2f} ms); loosen the budget or rebuild "
            "the latency table on a quiet machine"
        )
    chosen = check.chosen
    line = f"{label}: measured {chosen.measured.describe()} in {check.runtime}, predicted {chosen.predicted_ms:.2f} ms"
    if len(check.rounds) > 1:
        line += (
            f" (found in round {len(check.rounds) - 1}, under a corrected {check.rounds[-1].predicted_limit_ms:.4g} ms)"
        )
    if check.replaced:
        searched = next(t for t in check.timed if t.candidate.key == check.searched.key)
        line += (
            f"; the search's winner measured {searched.measured.describe()} (over budget, predicted "
            f"{searched.predicted_ms:.2f} ms) and was replaced by the most accurate candidate measured within it"
        )
    return line


def record_budget_checks(best_path: Path, checks: list[BudgetCheck], objective: str) -> None:
    """Rewrite ``best.json`` (atomically) with each checked budget's ``latency_check`` and, where the measured
    winner differs from the predicted one, that winner's subnet, metrics and costs."""
    best = json.loads(best_path.read_text())
    by_label = {check.budget.label: check for check in checks}
    for entry in best["budgets"]:
        check = by_label.get(entry["budget"])
        if check is None:
            continue
        entry["latency_check"] = check.to_record(objective)
        if check.replaced:
            chosen = check.chosen.candidate
            entry.update(subnet=chosen.key, metrics=dict(chosen.metrics), costs=dict(chosen.costs))
    write_json_atomic(best_path, best)
