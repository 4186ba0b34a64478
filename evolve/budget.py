"""``Budget``: one upper limit on a cost metric, parsed from strings such as ``macs<=300M``.

Grammar: ``METRIC<=NUMBER[SUFFIX]``. Count metrics (``macs``, ``params``, ``activations``) take the
suffixes ``K`` (1e3), ``M`` (1e6) and ``G`` (1e9); ``latency_ms`` takes a plain number of milliseconds
(an optional trailing ``ms`` is accepted). Spaces around the parts are ignored.

Any metric also takes a share of the space's own range, ``METRIC<=NUMBER%``: ``latency_ms<=40%`` is 40% of the
way from the smallest subnet's value to the largest one's, as the search measures or predicts them on this
device. Such a budget means the same on a slow and a fast machine; the search resolves it to an absolute limit
(:meth:`Budget.resolved`) before it starts and records that figure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from evolve.errors import BudgetError
from search_space import COST_METRICS
from search_space.errors import did_you_mean

LATENCY_METRIC = "latency_ms"
BUDGET_METRICS = (*COST_METRICS, LATENCY_METRIC)
_SUFFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9}
_PATTERN = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*<=\s*(?P<number>[0-9]*\.?[0-9]+(?:[eE][+-]?\d+)?)"
    r"\s*(?P<suffix>[A-Za-z]*|%)\s*$"
)
_EXAMPLES = "macs<=300M, params<=6M, activations<=5.5M, latency_ms<=20, latency_ms<=40%"


@dataclass(frozen=True)
class Budget:
    """An inclusive upper limit ``metric <= limit`` (counts in units, latency in milliseconds).

    Attributes:
        metric: one of :data:`BUDGET_METRICS`.
        limit: the absolute limit; None for a relative budget not resolved yet.
        share: for a relative budget, the fraction (0 to 1) of the way from the smallest subnet's value of
            ``metric`` to the largest one's; None for an absolute budget.
    """

    metric: str
    limit: float | None
    share: float | None = None

    def __post_init__(self) -> None:
        if self.metric not in BUDGET_METRICS:
            raise BudgetError(_unknown_metric(self.metric))
        if self.share is None and self.limit is None:
            raise BudgetError(f"budget {self.metric}<=? has neither a limit nor a share of the space's range")
        if self.share is not None and not 0.0 <= self.share <= 1.0:
            raise BudgetError(f"budget {self.metric}<={self.share * 100:.12g}%: a share lies between 0% and 100%")
        if self.limit is not None and not self.limit > 0:
            raise BudgetError(f"budget limit must be positive, got {self.metric}<={self.limit}")

    @property
    def is_relative(self) -> bool:
        """Whether the budget is a share of the space's range (``latency_ms<=40%``)."""
        return self.share is not None

    def resolved(self, smallest: float, largest: float) -> Budget:
        """This budget with its absolute limit: ``smallest + share * (largest - smallest)`` for a relative budget
        (the values of the space's smallest and largest subnet); an absolute budget is returned as it is."""
        if self.share is None:
            return self
        return Budget(self.metric, smallest + self.share * (largest - smallest), self.share)

    def describe(self) -> str:
        """The label with the resolved limit of a relative budget: ``latency_ms<=40% (2.13 ms)``."""
        if self.share is None or self.limit is None:
            return self.label
        shown = f"{self.limit:.4g} ms" if self.metric == LATENCY_METRIC else _count(self.limit)
        return f"{self.label} ({shown})"

    @property
    def label(self) -> str:
        """Readable form that parses back to an equal budget: ``macs<=300M``, ``latency_ms<=20``; a relative
        budget keeps its share (``latency_ms<=40%``) whether resolved or not."""
        if self.share is not None:
            return f"{self.metric}<={self.share * 100:.12g}%"
        if self.metric == LATENCY_METRIC:
            return f"{self.metric}<={self.limit:.12g}"
        return f"{self.metric}<={_count(self.limit)}"

    @property
    def bounds(self) -> dict[str, tuple[None, float]]:
        """The budget as ``search_space`` cost bounds: ``{metric: (None, limit)}``."""
        return {self.metric: (None, self._limit())}

    @property
    def is_latency(self) -> bool:
        """Whether the budget needs a latency measurement (which the cost model cannot pre-check)."""
        return self.metric == LATENCY_METRIC

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``metrics[self.metric] <= limit``.

        Raises:
            KeyError: ``metrics`` has no value for the budget's metric.
            BudgetError: a relative budget that was not resolved.
        """
        return metrics[self.metric] <= self._limit()

    def excess(self, metrics: Mapping[str, float]) -> float:
        """Relative violation ``max(0, value / limit - 1)``: 0 when satisfied."""
        return max(0.0, metrics[self.metric] / self._limit() - 1.0)

    def _limit(self) -> float:
        if self.limit is None:
            raise BudgetError(
                f"budget {self.label} is a share of the space's range; resolve it first (Budget.resolved)"
            )
        return self.limit

    def __str__(self) -> str:
        return self.label


def describe_budget(label: str, limit: float | None) -> str:
    """A budget as written in a results file (its label and resolved ``limit``), as :meth:`Budget.describe` shows
    it: ``latency_ms<=40% (6.2 ms)`` for a relative budget, the label alone for an absolute one."""
    budget = parse_budget(label)
    if budget.is_relative and limit is not None:
        budget = Budget(budget.metric, limit, budget.share)
    return budget.describe()


def _count(value: float) -> str:
    """``300M``, ``5.5K``, ``12``: a count with the largest suffix it reaches."""
    for suffix in ("G", "M", "K"):
        if value >= _SUFFIXES[suffix]:
            return f"{value / _SUFFIXES[suffix]:.12g}{suffix}"
    return f"{value:.12g}"


def parse_budget(text: str) -> Budget:
    """Parse ``METRIC<=NUMBER[K|M|G|%]`` (see the module docstring).

    Raises:
        BudgetError: the string is malformed, the metric is unknown, or the suffix does not fit the metric.
    """
    if not isinstance(text, str):
        raise BudgetError(f"a budget is a string such as {_EXAMPLES}; got {text!r}")
    match = _PATTERN.match(text)
    if match is None:
        raise BudgetError(
            f"malformed budget {text!r}: expected METRIC<=NUMBER[K|M|G] or METRIC<=NUMBER%, e.g. {_EXAMPLES}"
        )
    metric, number, suffix = match["metric"], float(match["number"]), match["suffix"]
    if metric not in BUDGET_METRICS:
        raise BudgetError(f"budget {text!r}: " + _unknown_metric(metric))
    if suffix == "%":
        if number > 100:
            raise BudgetError(f"budget {text!r}: a share of the space's range lies between 0% and 100%")
        return Budget(metric, None, number / 100)
    if metric == LATENCY_METRIC:
        if suffix not in ("", "ms"):
            raise BudgetError(f"budget {text!r}: latency is a plain number of milliseconds, e.g. latency_ms<=20")
        return Budget(metric, number)
    if suffix not in _SUFFIXES:
        raise BudgetError(f"budget {text!r}: unknown suffix {suffix!r}; use K, M or G (e.g. {metric}<=300M)")
    return Budget(metric, number * _SUFFIXES[suffix])


def _unknown_metric(metric: str) -> str:
    return (
        f"unknown metric {metric!r}{did_you_mean(metric, BUDGET_METRICS)}; allowed metrics: {', '.join(BUDGET_METRICS)}"
    )
