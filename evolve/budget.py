"""``Budget``: one upper limit on a cost metric, parsed from strings such as ``macs<=300M``.

Grammar: ``METRIC<=NUMBER[SUFFIX]``. Count metrics (``macs``, ``params``, ``activations``) take the
suffixes ``K`` (1e3), ``M`` (1e6) and ``G`` (1e9); ``latency_ms`` takes a plain number of milliseconds
(an optional trailing ``ms`` is accepted). Spaces around the parts are ignored.
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
    r"\s*(?P<suffix>[A-Za-z]*)\s*$"
)
_EXAMPLES = "macs<=300M, params<=6M, activations<=5.5M, latency_ms<=20"


@dataclass(frozen=True)
class Budget:
    """An inclusive upper limit ``metric <= limit`` (counts in units, latency in milliseconds)."""

    metric: str
    limit: float

    def __post_init__(self) -> None:
        if self.metric not in BUDGET_METRICS:
            raise BudgetError(_unknown_metric(self.metric))
        if not self.limit > 0:
            raise BudgetError(f"budget limit must be positive, got {self.metric}<={self.limit}")

    @property
    def label(self) -> str:
        """Readable form that parses back to an equal budget: ``macs<=300M``, ``latency_ms<=20``."""
        if self.metric == LATENCY_METRIC:
            return f"{self.metric}<={self.limit:.12g}"
        for suffix in ("G", "M", "K"):
            if self.limit >= _SUFFIXES[suffix]:
                return f"{self.metric}<={self.limit / _SUFFIXES[suffix]:.12g}{suffix}"
        return f"{self.metric}<={self.limit:.12g}"

    @property
    def bounds(self) -> dict[str, tuple[None, float]]:
        """The budget as ``search_space`` cost bounds: ``{metric: (None, limit)}``."""
        return {self.metric: (None, self.limit)}

    @property
    def is_latency(self) -> bool:
        """Whether the budget needs a latency measurement (which the cost model cannot pre-check)."""
        return self.metric == LATENCY_METRIC

    def satisfied(self, metrics: Mapping[str, float]) -> bool:
        """Whether ``metrics[self.metric] <= limit``.

        Raises:
            KeyError: ``metrics`` has no value for the budget's metric.
        """
        return metrics[self.metric] <= self.limit

    def excess(self, metrics: Mapping[str, float]) -> float:
        """Relative violation ``max(0, value / limit - 1)``: 0 when satisfied."""
        return max(0.0, metrics[self.metric] / self.limit - 1.0)

    def __str__(self) -> str:
        return self.label


def parse_budget(text: str) -> Budget:
    """Parse ``METRIC<=NUMBER[K|M|G]`` (see the module docstring).

    Raises:
        BudgetError: the string is malformed, the metric is unknown, or the suffix does not fit the metric.
    """
    if not isinstance(text, str):
        raise BudgetError(f"a budget is a string such as {_EXAMPLES}; got {text!r}")
    match = _PATTERN.match(text)
    if match is None:
        raise BudgetError(f"malformed budget {text!r}: expected METRIC<=NUMBER[K|M|G], e.g. {_EXAMPLES}")
    metric, number, suffix = match["metric"], float(match["number"]), match["suffix"]
    if metric not in BUDGET_METRICS:
        raise BudgetError(f"budget {text!r}: " + _unknown_metric(metric))
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
