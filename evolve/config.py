"""``EvolveConfig``: every knob of an evolutionary search, validated as a whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from evolve.budget import BUDGET_METRICS, Budget, parse_budget
from evolve.errors import BudgetError, SearchError
from search_space.errors import did_you_mean

ALGORITHMS = ("constrained", "nsga2")
PREDICTORS = ("none", "ridge", "forest")  # see evolve.predictor


@dataclass
class EvolveConfig:
    """Settings of :func:`evolve.run_search`.

    Attributes:
        population: subnets in the initial population and children bred per generation.
        generations: breeding rounds after the initial population (generation 0), so a full run
            evaluates about ``population * (generations + 1)`` subnets.
        mutation_prob: probability that a gene of a child changes to a different allowed value.
        crossover_prob: probability that a child is the uniform crossover of two parents (else a copy
            of one) before mutation.
        parents: constrained GA: how many of the best feasible candidates of each budget breed.
        seed: seeds every random choice; generation ``g`` draws from its own RNG seeded by ``(seed, g)``.
        algorithm: ``"constrained"`` (maximise the objective under each budget) or ``"nsga2"`` (Pareto front
            of the objective against the ``objectives`` costs).
        budgets: upper limits such as ``"macs<=300M"``; the constrained GA serves each one separately, NSGA-II
            treats a candidate that meets none of them as infeasible.
        objectives: cost metrics (one or two) that NSGA-II minimises and that ``pareto.json`` is computed on.
        objective: the evaluator metric to maximise (``top1``).
        init_max_tries: random draws allowed per initial subnet to find one within its budget.
        breed_max_tries: variation attempts per child to find a new subnet within budget before resampling.
        eval_batch_size: at most this many subnets per evaluator call (None: a generation in one call).
        predictor: ``none``, or the accuracy predictor (``ridge`` or ``forest``, :mod:`evolve.predictor`) that
            picks which bred children a generation evaluates, once ``predictor_warmup`` candidates are evaluated.
        predictor_warmup: evaluated candidates the predictor needs before it is fitted (None: ``population``,
            so it is fitted on the initial population and picks children from the second generation on).
        predictor_pool: children bred per child evaluated when the predictor picks them.
        predictor_explore: share of a generation's evaluations drawn at random from the children the predictor
            did not pick.
    """

    population: int = 50
    generations: int = 20
    mutation_prob: float = 0.1
    crossover_prob: float = 0.5
    parents: int = 10
    seed: int = 0
    algorithm: str = "constrained"
    budgets: list[str] = field(default_factory=list)
    objectives: list[str] = field(default_factory=lambda: ["macs"])
    objective: str = "top1"
    init_max_tries: int = 10_000
    breed_max_tries: int = 200
    eval_batch_size: int | None = None
    predictor: str = "none"
    predictor_warmup: int | None = None
    predictor_pool: int = 8
    predictor_explore: float = 0.25

    @property
    def predictor_warmup_size(self) -> int:
        """Evaluated candidates before the predictor is fitted (``predictor_warmup``, or ``population``)."""
        return self.population if self.predictor_warmup is None else self.predictor_warmup

    def __post_init__(self) -> None:
        self.budgets = [self.budgets] if isinstance(self.budgets, str) else list(self.budgets)
        self.objectives = [self.objectives] if isinstance(self.objectives, str) else list(self.objectives)
        problems = self._problems()
        if problems:
            raise SearchError(problems)

    @property
    def parsed_budgets(self) -> tuple[Budget, ...]:
        """The budgets as :class:`Budget` objects, in the given order."""
        return tuple(parse_budget(text) for text in self.budgets)

    @property
    def needs_latency(self) -> bool:
        """Whether a budget or an objective is ``latency_ms`` (so a latency function is required)."""
        return "latency_ms" in self.objectives or any(b.is_latency for b in self.parsed_budgets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvolveConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            SearchError: unknown keys (with a suggestion) or invalid values.
        """
        names = [f.name for f in fields(cls)]
        unknown = [key for key in data if key not in names]
        if unknown:
            raise SearchError([f"unknown search setting {key!r}{did_you_mean(key, names)}" for key in unknown])
        return cls(**data)

    def resume_mismatches(self, other: EvolveConfig) -> list[str]:
        """Settings that shape the search and differ in ``other``, as ``name: mine != theirs`` lines.

        ``generations`` and ``eval_batch_size`` may differ: a resumed search may run longer or shorter, and
        batching does not change which subnets are evaluated.
        """
        mine, theirs = self.to_dict(), other.to_dict()
        free = ("generations", "eval_batch_size")
        return [f"{k}: {mine[k]!r} != {theirs[k]!r}" for k in mine if k not in free and mine[k] != theirs[k]]

    def _problems(self) -> list[str]:
        problems = []
        for name in ("population", "parents", "init_max_tries", "breed_max_tries", "predictor_pool"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.generations, int) or self.generations < 0:
            problems.append(f"generations must be an integer >= 0, got {self.generations!r}")
        if self.eval_batch_size is not None and (not isinstance(self.eval_batch_size, int) or self.eval_batch_size < 1):
            problems.append(f"eval_batch_size must be a positive integer or None, got {self.eval_batch_size!r}")
        problems += self._predictor_problems()
        for name in ("mutation_prob", "crossover_prob", "predictor_explore"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                problems.append(f"{name} must lie in [0, 1], got {value!r}")
        if not isinstance(self.seed, int):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if self.algorithm not in ALGORITHMS:
            problems.append(
                f"unknown algorithm {self.algorithm!r}{did_you_mean(str(self.algorithm), ALGORITHMS)}; "
                f"use one of {list(ALGORITHMS)}"
            )
        for text in self.budgets:
            try:
                parse_budget(text)
            except BudgetError as err:
                problems.extend(err.problems)
        if len(set(self.budgets)) != len(self.budgets):
            problems.append(f"budgets repeat: {self.budgets}")
        if self.algorithm == "constrained" and not self.budgets:
            problems.append(
                "algorithm 'constrained' needs at least one budget, e.g. budgets=['macs<=300M']; "
                "for an accuracy/cost trade-off without budgets use algorithm='nsga2'"
            )
        if self.algorithm == "constrained" and len(self.budgets) > self.population:
            problems.append(f"population {self.population} is smaller than the {len(self.budgets)} budgets it serves")
        if not 1 <= len(self.objectives) <= 2 or len(set(self.objectives)) != len(self.objectives):
            problems.append(f"objectives must name one or two different cost metrics, got {self.objectives}")
        for name in self.objectives:
            if name not in BUDGET_METRICS:
                problems.append(
                    f"unknown cost objective {name!r}{did_you_mean(str(name), BUDGET_METRICS)}; "
                    f"use one or two of {list(BUDGET_METRICS)}"
                )
        if not isinstance(self.objective, str) or not self.objective or self.objective in BUDGET_METRICS:
            problems.append(f"objective must name an evaluator metric such as 'top1', got {self.objective!r}")
        return problems

    def _predictor_problems(self) -> list[str]:
        problems = []
        if self.predictor not in PREDICTORS:
            problems.append(
                f"unknown predictor {self.predictor!r}{did_you_mean(str(self.predictor), PREDICTORS)}; "
                f"use one of {list(PREDICTORS)}"
            )
        warmup = self.predictor_warmup
        if warmup is not None and (not isinstance(warmup, int) or warmup < 2):
            problems.append(f"predictor_warmup must be an integer >= 2 (candidates to fit on), got {warmup!r}")
        return problems
