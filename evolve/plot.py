"""Pareto plot: every candidate in grey, the front highlighted, budgets as vertical lines (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from evolve.budget import Budget
from evolve.candidate import Candidate

_SCALES = {"macs": (1e6, "M"), "params": (1e6, "M"), "activations": (1e6, "M"), "latency_ms": (1.0, "ms")}


def plot_pareto(
    path: str | Path,
    candidates: Sequence[Candidate],
    front: Sequence[Candidate],
    objective: str,
    cost: str,
    budgets: Sequence[Budget] = (),
) -> Path:
    """Draw ``objective`` against ``cost`` for all candidates and the front; write a PNG to ``path``.

    Only budgets on ``cost`` can be drawn (as vertical lines); others are listed in the title.
    Uses an Agg canvas directly, so no global pyplot state or display is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: matplotlib is slow to import
    from matplotlib.figure import Figure

    scale, unit = _SCALES.get(cost, (1.0, ""))
    figure = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.scatter(
        [c.costs[cost] / scale for c in candidates],
        [c.metrics[objective] for c in candidates],
        s=8,
        color="0.7",
        label=f"candidates ({len(candidates)})",
    )
    ordered = sorted(front, key=lambda c: c.costs[cost])
    axes.plot(
        [c.costs[cost] / scale for c in ordered],
        [c.metrics[objective] for c in ordered],
        "o-",
        color="tab:red",
        markersize=4,
        drawstyle="steps-post",
        label=f"Pareto front ({len(front)})",
    )
    others = _draw_budgets(axes, budgets, cost, scale)
    axes.set_xlabel(f"{cost} ({unit})" if unit else cost)
    axes.set_ylabel(f"{objective} on the search split (%)" if objective.startswith("top") else objective)
    axes.set_title(f"{objective} against {cost}" + (f" (also budgets: {', '.join(others)})" if others else ""))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def _draw_budgets(axes, budgets: Sequence[Budget], cost: str, scale: float) -> list[str]:
    """A dashed vertical line per budget on ``cost``; returns the labels of the budgets on other metrics."""
    others = []
    for index, budget in enumerate(budgets):
        if budget.metric == cost:
            axes.axvline(budget.limit / scale, linestyle="--", color=f"C{index % 10}", label=budget.describe())
        else:
            others.append(budget.describe())
    return others
