"""What a search returns and writes: per-generation summaries, ``SearchResult``, ``pareto.json``, ``best.json``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evolve.budget import Budget, parse_budget
from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.plot import plot_pareto
from search_space import SearchSpace, format_count

PARETO_FILE = "pareto.json"
BEST_FILE = "best.json"
PLOT_FILE = "pareto.png"


@dataclass(frozen=True)
class GenerationSummary:
    """State of a search after one generation, for progress lines and tensorboard scalars.

    Attributes:
        generation: 0 for the initial population.
        best: best candidate within each budget (by label) among all evaluated so far; None if none fits.
        front_size: size of the Pareto front of all feasible candidates so far.
        population_size: candidates the searcher keeps to breed from.
        candidates: distinct subnets evaluated by the whole search so far (a resumed run included).
        evaluations: subnets scored by the evaluator in this process so far.
        cache_hits: requests answered from the cache (a resumed run's log) in this process so far.
        predictor: when the accuracy predictor was fitted for this generation: ``used`` (it picked the children),
            ``tau`` and ``p_value`` (Kendall's tau of its predictions against the measured values of the
            generation's new candidates; tau None when undefined), ``compared`` and ``fitted_on`` (candidates).
    """

    generation: int
    best: Mapping[str, Candidate | None]
    front_size: int
    population_size: int
    candidates: int
    evaluations: int
    cache_hits: int
    predictor: Mapping[str, Any] | None = None

    def describe(self, objective: str = "top1") -> str:
        """One readable line: ``gen 3 | macs<=300M: top1 0.7123 @ 289.1M macs | front 14 | ...``."""
        parts = [f"gen {self.generation}"]
        for label, candidate in self.best.items():
            if candidate is None:
                parts.append(f"{label}: none")
            else:
                metric = parse_budget(label).metric
                value = candidate.costs[metric]
                shown = f"{value:.4g}ms" if metric == "latency_ms" else format_count(value)
                parts.append(f"{label}: {objective} {candidate.metrics[objective]:.4f} @ {shown} {metric}")
        parts.append(f"front {self.front_size}")
        parts.append(f"{self.candidates} candidates, {self.evaluations} evaluated, {self.cache_hits} cached")
        if self.predictor is not None:
            tau = self.predictor["tau"]
            shown = "undefined" if tau is None else f"{tau:.3f}"
            parts.append(f"predictor tau {shown} ({'picked the children' if self.predictor['used'] else 'not used'})")
        return " | ".join(parts)

    def to_record(self) -> dict[str, Any]:
        """JSON-ready form (best candidates by subnet string)."""
        return {
            "generation": self.generation,
            "best": {label: (c.key if c is not None else None) for label, c in self.best.items()},
            "front_size": self.front_size,
            "population_size": self.population_size,
            "candidates": self.candidates,
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "predictor": None if self.predictor is None else dict(self.predictor),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], lookup: Mapping[str, Candidate]) -> GenerationSummary:
        """Inverse of :meth:`to_record`, finding the best candidates in ``lookup`` (subnet string -> candidate)."""
        best = {label: (lookup[key] if key is not None else None) for label, key in record["best"].items()}
        fields = ("front_size", "population_size", "candidates", "evaluations", "cache_hits")
        counts = {name: int(record[name]) for name in fields}
        return cls(int(record["generation"]), best, **counts, predictor=record.get("predictor"))


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`evolve.run_search`.

    Attributes:
        space: the search space searched.
        config: the settings used.
        budgets: the budgets searched, in config order, each relative one resolved to its absolute limit.
        best: best candidate within each budget (by label, in config order); None where none fits.
        pareto: Pareto front of all feasible candidates (objective against ``config.objectives``),
            ascending in the first cost.
        population: the searcher's population after the last generation.
        candidates: every candidate evaluated, ordered by generation then subnet string.
        history: one summary per generation.
        evaluations: subnets scored by the evaluator in this process (0 for a fully logged resume).
        cache_hits: requests answered from the cache in this process.
    """

    space: SearchSpace
    config: EvolveConfig
    budgets: tuple[Budget, ...]
    best: Mapping[str, Candidate | None]
    pareto: list[Candidate]
    population: list[Candidate]
    candidates: list[Candidate]
    history: list[GenerationSummary]
    evaluations: int
    cache_hits: int

    def best_for(self, budget: str) -> Candidate | None:
        """The best candidate within ``budget`` (any spelling that parses to a served budget).

        Raises:
            KeyError: the budget was not served by this search.
        """
        label = parse_budget(budget).label
        if label not in self.best:
            raise KeyError(f"budget {budget!r} was not searched; served budgets: {list(self.best)}")
        return self.best[label]


def write_results(out_dir: str | Path, result: SearchResult) -> dict[str, Path]:
    """Write ``pareto.json``, ``best.json`` and ``pareto.png`` into ``out_dir``.

    ``best.json`` is ``{"space", "objective", "budgets": [{"budget", "limit", "subnet", "metrics", "costs"}]}``;
    ``limit`` is the budget's absolute limit (a relative budget's as resolved), ``subnet`` the subnet string
    (``SubnetConfig.from_string`` reads it), null when no candidate fits.

    Returns:
        The written paths by kind: ``pareto``, ``best``, ``plot``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = result.config
    header = {"space": result.space.name, "objective": config.objective}
    pareto = {**header, "costs": list(config.objectives), "budgets": list(result.best)}
    pareto["front"] = [c.to_record() for c in result.pareto]
    limits = {budget.label: budget.limit for budget in result.budgets}
    best = {**header, "budgets": [_best_entry(label, limits[label], c) for label, c in result.best.items()]}
    paths = {"pareto": out / PARETO_FILE, "best": out / BEST_FILE, "plot": out / PLOT_FILE}
    paths["pareto"].write_text(json.dumps(pareto, indent=2) + "\n")
    paths["best"].write_text(json.dumps(best, indent=2) + "\n")
    plot_pareto(
        paths["plot"],
        result.candidates,
        result.pareto,
        objective=config.objective,
        cost=config.objectives[0],
        budgets=result.budgets,
    )
    return paths


def _best_entry(label: str, limit: float, candidate: Candidate | None) -> dict[str, Any]:
    if candidate is None:
        return {"budget": label, "limit": limit, "subnet": None, "metrics": {}, "costs": {}}
    return {
        "budget": label,
        "limit": limit,
        "subnet": candidate.key,
        "metrics": dict(candidate.metrics),
        "costs": dict(candidate.costs),
    }
