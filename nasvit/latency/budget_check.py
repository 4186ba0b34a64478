"""Latency budgets that hold: after a search, time each latency budget's winner and runners-up on this device.

A search under ``latency_ms<=B`` ranks candidates by a *predicted* latency (a lookup table, or one quick
measurement each). A prediction a few percent low lets a winner through that runs over its budget. So the
most accurate candidates predicted within each budget are timed again, together and interleaved (a drift of
the machine hits them alike), and the budget's subnet becomes the most accurate one whose *measured* median is
within it. When none is, the budget is reported as not met, with the figures.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve import Budget, Candidate
from nasvit.atomic_json import write_json_atomic
from nasvit.latency.measure import LatencyStats, inference_model, measure_modules_interleaved, warn_if_noisy
from nasvit.latency.settings import LatencySettings

logger = logging.getLogger(__name__)


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
class BudgetCheck:
    """The outcome for one latency budget.

    Attributes:
        budget: the budget checked.
        searched: the search's winner (by predicted latency).
        timed: the candidates timed, most accurate first (the winner and its runners-up).
        chosen: the most accurate timed candidate whose measured median is within the budget; None: not met.
    """

    budget: Budget
    searched: Candidate
    timed: tuple[TimedCandidate, ...]
    chosen: TimedCandidate | None

    @property
    def met(self) -> bool:
        return self.chosen is not None

    @property
    def replaced(self) -> bool:
        """Whether the measured winner differs from the search's (predicted) one."""
        return self.chosen is not None and self.chosen.candidate.key != self.searched.key

    def to_record(self, objective: str) -> dict[str, Any]:
        """JSON-ready summary for ``best.json``'s ``latency_check``."""
        chosen = self.chosen
        return {
            "met": self.met,
            "searched_subnet": self.searched.key,
            "replaced": self.replaced,
            "measured_ms": chosen.measured.median_ms if chosen else None,
            "p10_ms": chosen.measured.p10_ms if chosen else None,
            "p90_ms": chosen.measured.p90_ms if chosen else None,
            "predicted_ms": chosen.predicted_ms if chosen else None,
            "timed": [t.to_record(objective) for t in self.timed],
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
) -> list[BudgetCheck]:
    """Time the winner and ``runners_up`` runners-up of each latency budget in one interleaved measurement (a
    subnet shared by several budgets is timed once) and choose, per budget, the most accurate one measured
    within it.

    Args:
        winners: each latency budget's winner from the search.
        candidates: every candidate of the search (their ``costs["latency_ms"]`` are the predictions).
        settings: how to time (the lookup table's own settings, so the figures compare).
        objective: the metric the search maximised.
        runners_up: candidates timed after the winner, per budget.
    """
    lists = {
        budget: _with_winner(winner, contenders(candidates, budget, objective, runners_up + 1))
        for budget, winner in winners.items()
    }
    distinct = list({c.key: c for contending in lists.values() for c in contending}.values())
    if not distinct:
        return []
    logger.info("timing %d candidates of %d latency budgets on this device", len(distinct), len(lists))
    stats = _time(distinct, settings)
    warn_if_noisy(list(stats.values()), "candidate")
    checks = []
    for budget, contending in lists.items():
        timed = tuple(TimedCandidate(c, c.costs[budget.metric], stats[c.key]) for c in contending)
        chosen = next((t for t in timed if t.measured.median_ms <= budget.limit), None)
        checks.append(BudgetCheck(budget, winners[budget], timed, chosen))
    return checks


def _with_winner(winner: Candidate, contending: list[Candidate]) -> list[Candidate]:
    """``contending`` led by ``winner`` (the search may have chosen by another tie-break)."""
    return [winner, *(c for c in contending if c.key != winner.key)][: max(len(contending), 1)]


def _time(candidates: list[Candidate], settings: LatencySettings) -> dict[str, LatencyStats]:
    """Timings of each candidate's inference-form model, all in one interleaved measurement, each at its own
    resolution."""
    models = [inference_model(c.subnet) for c in candidates]
    shapes = [
        (settings.batch_size, c.subnet.space.in_channels, c.subnet.resolution, c.subnet.resolution) for c in candidates
    ]
    measured = measure_modules_interleaved(models, shapes, settings)
    return {c.key: stats for c, stats in zip(candidates, measured, strict=True)}


def describe_check(check: BudgetCheck) -> str:
    """One line: the budget, what was timed and what it chose."""
    label = check.budget.label
    if check.chosen is None:
        fastest = min(check.timed, key=lambda t: t.measured.median_ms)
        return (
            f"{label}: NOT MET on this device: none of the {len(check.timed)} most accurate candidates predicted "
            f"within it measures within it (fastest {fastest.measured.describe()}, predicted "
            f"{fastest.predicted_ms:.2f} ms); loosen the budget or rebuild the latency table on a quiet machine"
        )
    chosen = check.chosen
    line = f"{label}: measured {chosen.measured.describe()}, predicted {chosen.predicted_ms:.2f} ms"
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
