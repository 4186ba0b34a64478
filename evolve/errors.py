"""Errors raised by the searchers: each names the bad value, what is allowed and the fix."""

from __future__ import annotations

from collections.abc import Iterable


class SearchError(ValueError):
    """Invalid search configuration, budget, evaluator output or search log.

    Holds every problem found, so a user fixes them all in one go.

    Attributes:
        problems: one human-readable line per problem.
    """

    def __init__(self, problems: str | Iterable[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class BudgetError(SearchError):
    """A budget string that does not parse, names an unknown metric, or no subnet can satisfy.

    Attributes:
        labels: the budgets no subnet of the space can satisfy (empty for a budget that does not parse), so a
            caller serving several budgets can report these and go on with the others.
    """

    def __init__(self, problems: str | Iterable[str], labels: Iterable[str] = ()):
        super().__init__(problems)
        self.labels = list(labels)
