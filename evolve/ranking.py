"""Ranking candidates against budgets: feasibility, best-first order and the best candidate per budget."""

from __future__ import annotations

from collections.abc import Sequence

from evolve.budget import Budget
from evolve.candidate import Candidate


def meets_any(candidate: Candidate, budgets: Sequence[Budget]) -> bool:
    """Whether ``candidate`` meets at least one budget (always true for no budgets)."""
    return not budgets or any(budget.satisfied(candidate.costs) for budget in budgets)


def ranked(candidates: Sequence[Candidate], objective: str, budget: Budget | None = None) -> list[Candidate]:
    """Candidates within ``budget`` (all when None), best objective first; ties go to the lower cost of the
    budget's metric (equal accuracy for less MACs is the better subnet), then to the subnet string."""
    chosen = [c for c in candidates if budget is None or budget.satisfied(c.costs)]
    if budget is None:
        return sorted(chosen, key=lambda c: (-c.metrics[objective], c.key))
    return sorted(chosen, key=lambda c: (-c.metrics[objective], c.costs[budget.metric], c.key))


def best_per_budget(
    candidates: Sequence[Candidate], objective: str, budgets: Sequence[Budget]
) -> dict[str, Candidate | None]:
    """The best candidate within each budget, keyed by budget label (None where none fits)."""
    best: dict[str, Candidate | None] = {}
    for budget in budgets:
        fitting = ranked(candidates, objective, budget)
        best[budget.label] = fitting[0] if fitting else None
    return best
