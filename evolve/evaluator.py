"""The evaluator protocol and ``CandidateScorer``, which turns subnets into candidates: costs, cached results, counts.

An evaluator scores a batch of subnets at once (so a distributed evaluator can split a population over
ranks) and returns one metrics dict per subnet holding at least the search objective (``top1`` by
default). Costs never come from the evaluator: the analytical cost model gives ``macs``, ``params`` and
``activations``, and an optional ``latency_fn`` gives ``latency_ms``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from evolve.candidate import Candidate
from evolve.errors import SearchError
from search_space import COST_METRICS, SearchSpace, SubnetConfig

logger = logging.getLogger(__name__)

LatencyFn = Callable[[SubnetConfig], float]


class Evaluator(Protocol):
    """Scores subnets; the searchers call it once per batch of new subnets."""

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        """Return one metrics dict per subnet, in order, each holding at least the objective (``top1``)."""
        ...


class CandidateScorer:
    """Turns subnets into :class:`Candidate` s: costs from the cost model, metrics from ``evaluator``.

    Results are cached by ``str(cfg)``, so a subnet is evaluated at most once; the cache can be preloaded
    from a candidate log to resume a search.

    Args:
        space: the search space (its cost model gives macs, params and activations).
        evaluator: the accuracy evaluator (see :class:`Evaluator`).
        objective: the metric the evaluator must return for every subnet.
        latency_fn: ``cfg -> milliseconds``; called only when ``measure_latency`` is set.
        measure_latency: add ``latency_ms`` to the costs (a latency budget or objective needs it).

    Attributes:
        evaluations: subnets scored by ``evaluator`` in this process.
        evaluator_calls: calls made to ``evaluator``.
        cache_hits: requests answered from the cache.

    Raises:
        SearchError: ``measure_latency`` without a ``latency_fn``.
    """

    def __init__(
        self,
        space: SearchSpace,
        evaluator: Evaluator,
        objective: str = "top1",
        latency_fn: LatencyFn | None = None,
        measure_latency: bool = False,
    ):
        if measure_latency and latency_fn is None:
            raise SearchError(
                "a latency budget or objective needs latency measurements: pass latency_fn "
                "(cfg -> milliseconds, measured on the target device or from a lookup table)"
            )
        self.space = space
        self.evaluator = evaluator
        self.objective = objective
        self.latency_fn = latency_fn if measure_latency else None
        self.evaluations = 0
        self.evaluator_calls = 0
        self.cache_hits = 0
        self._results: dict[str, Candidate] = {}
        self._costs: dict[SubnetConfig, dict[str, float]] = {}

    def __contains__(self, key: str) -> bool:
        return key in self._results

    def __len__(self) -> int:
        return len(self._results)

    def costs(self, cfg: SubnetConfig) -> dict[str, float]:
        """Cost metrics of ``cfg`` (memoised): macs, params, activations and, when measured, latency_ms."""
        cached = self._costs.get(cfg)
        if cached is None:
            cost = self.space.cost(cfg)
            cached = {metric: cost.get(metric) for metric in COST_METRICS}
            if self.latency_fn is not None:
                latency = float(self.latency_fn(cfg))
                if not math.isfinite(latency):
                    raise SearchError(f"latency_fn returned {latency} for {cfg}; it must be a finite number of ms")
                cached["latency_ms"] = latency
            self._costs[cfg] = cached
        return cached

    def preload(self, candidates: Iterable[Candidate]) -> None:
        """Put already evaluated candidates (e.g. from ``candidates.jsonl``) into the cache.

        Their logged costs are reused too, so a measured latency is not measured again.
        """
        for candidate in candidates:
            self._results.setdefault(candidate.key, candidate)
            self._costs.setdefault(candidate.subnet, dict(candidate.costs))

    def cached(self, key: str) -> Candidate | None:
        """The cached candidate for ``str(cfg)``, or None."""
        return self._results.get(key)

    def evaluate(
        self,
        cfgs: Sequence[SubnetConfig],
        generation: int,
        batch_size: int | None = None,
        on_batch: Callable[[list[Candidate]], None] | None = None,
    ) -> list[Candidate]:
        """Candidates for ``cfgs`` (in order), evaluating only the subnets not in the cache.

        Args:
            cfgs: subnets to score; duplicates are scored once.
            generation: recorded in the new candidates.
            batch_size: at most this many subnets per evaluator call (None: all new ones in one call).
            on_batch: called with the freshly evaluated candidates after each evaluator call.

        Raises:
            SearchError: the evaluator returned the wrong number of results, no objective, or a non-finite value.
        """
        keys = [str(cfg) for cfg in cfgs]
        todo: dict[str, SubnetConfig] = {}
        for key, cfg in zip(keys, cfgs):
            if key in self._results:
                self.cache_hits += 1
            elif key not in todo:
                todo[key] = cfg
        pending = list(todo.items())
        step = batch_size or max(1, len(pending))
        for start in range(0, len(pending), step):
            chunk = pending[start : start + step]
            fresh = self._score([cfg for _, cfg in chunk], [key for key, _ in chunk], generation)
            if on_batch is not None:
                on_batch(fresh)
        return [self._results[key] for key in keys]

    def __call__(self, cfgs: Sequence[SubnetConfig]) -> list[dict[str, float]]:
        """The :class:`Evaluator` protocol with costs merged in: ``{**costs, **metrics}`` per subnet."""
        return [{**c.costs, **c.metrics} for c in self.evaluate(cfgs, generation=0)]

    def _score(self, cfgs: list[SubnetConfig], keys: list[str], generation: int) -> list[Candidate]:
        results = self.evaluator(cfgs)
        self.evaluator_calls += 1
        if not isinstance(results, Sequence) or len(results) != len(cfgs):
            got = len(results) if isinstance(results, Sequence) else type(results).__name__
            raise SearchError(f"the evaluator returned {got} results for {len(cfgs)} subnets; return one dict each")
        fresh = []
        for cfg, key, metrics in zip(cfgs, keys, results):
            candidate = Candidate(cfg, self._check_metrics(metrics, key), self.costs(cfg), generation, key)
            self._results[key] = candidate
            fresh.append(candidate)
        self.evaluations += len(fresh)
        logger.debug("evaluated %d subnets (generation %d)", len(fresh), generation)
        return fresh

    def _check_metrics(self, metrics: Mapping[str, float], key: str) -> dict[str, float]:
        if not isinstance(metrics, Mapping) or self.objective not in metrics:
            raise SearchError(
                f"the evaluator returned {metrics!r} for {key}; each result must be a dict holding the "
                f"objective {self.objective!r} (set EvolveConfig.objective to the metric it returns)"
            )
        checked = {}
        for name, value in metrics.items():
            number = float(value)
            if not math.isfinite(number):
                raise SearchError(f"the evaluator returned {name}={value} for {key}; metrics must be finite")
            checked[str(name)] = number
        return checked
