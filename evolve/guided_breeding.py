"""Breeding guided by the accuracy predictor (``EvolveConfig.predictor``).

Once ``predictor_warmup`` candidates are evaluated (by default the initial population), every generation fits the
predictor on all of them and predicts its children before they are evaluated; afterwards Kendall's tau between
prediction and measurement says how well it ranked them. A generation lets the predictor pick its children only
when it ranked the previous generation's better than chance (tau > 0 at a one-sided p of 0.1): then it breeds
``predictor_pool`` times the usual number of children, the strategy keeps the best predicted ones (each budget's
share for the constrained GA, NSGA-II order for NSGA-II) and a ``predictor_explore`` share is drawn at random from
the rest. Otherwise the generation breeds as without a predictor, so a useless predictor costs one plain
generation at a time.

Every decision depends on the evaluated candidates and the generation's RNG alone, so a resumed search (its
predictor refitted from the log) picks what an uninterrupted one picked; in a distributed search rank 0 decides.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evolve.candidate import Candidate
from evolve.config import EvolveConfig
from evolve.evaluator import CandidateScorer
from evolve.predictor import BETTER_THAN_CHANCE_P, AccuracyPredictor, rank_agreement
from search_space import SearchSpace, SubnetConfig


@dataclass(frozen=True)
class GuidedOffspring:
    """One generation's children and what the predictor said about them.

    Attributes:
        proposals: the children to evaluate.
        predictions: predicted objective by subnet string, None when no predictor was fitted.
        used: whether the predictor picked the children out of a larger pool.
        fitted_on: candidates the predictor was fitted on (0 when none was fitted).
    """

    proposals: list[SubnetConfig]
    predictions: dict[str, float] | None = None
    used: bool = False
    fitted_on: int = 0

    def record(self, evaluated: Sequence[Candidate], objective: str) -> dict[str, Any] | None:
        """The generation summary's ``predictor`` entry: tau of the predictions of ``evaluated`` (the children
        the generation evaluated) against their measured objective; None without predictions."""
        if self.predictions is None:
            return None
        compared = [c for c in evaluated if c.key in self.predictions]
        agreement = rank_agreement(
            [self.predictions[c.key] for c in compared], [c.metrics[objective] for c in compared]
        )
        tau = None if math.isnan(agreement.tau) else agreement.tau
        return {
            "used": self.used,
            "tau": tau,
            "p_value": agreement.p_value,
            "compared": agreement.count,
            "fitted_on": self.fitted_on,
        }


def ranked_better_than_chance(record: Mapping[str, Any] | None) -> bool:
    """Whether a generation's ``predictor`` entry shows a ranking better than chance."""
    return (
        record is not None
        and record["tau"] is not None
        and record["tau"] > 0
        and record["p_value"] <= BETTER_THAN_CHANCE_P
    )


class PredictorGuide:
    """Fits the predictor each generation and breeds through it when it has earned it.

    Args:
        space, config, scorer: the search's space, settings and scorer (costs of unevaluated children).
        strategy: the searcher; breeds children (``offspring``) and keeps the best predicted ones
            (``preselect``).
    """

    def __init__(self, space: SearchSpace, config: EvolveConfig, scorer: CandidateScorer, strategy: Any):
        self.space, self.config, self.scorer, self.strategy = space, config, scorer, strategy

    def offspring(
        self,
        population: Sequence[Candidate],
        archive: Sequence[Candidate],
        last: Mapping[str, Any] | None,
        rng: random.Random,
        seen: set[str],
        generation: int,
    ) -> GuidedOffspring:
        """The children of ``generation``: plain breeding before the warm-up ends or after a generation the
        predictor ranked no better than chance (``last``: the previous generation's ``predictor`` entry), else
        the predictor's pick from a larger pool."""
        config = self.config
        if config.predictor == "none" or len(archive) < config.predictor_warmup_size:
            return GuidedOffspring(self.strategy.offspring(population, rng, seen))
        predictor = AccuracyPredictor(self.space, config.predictor, config.objective, config.seed).fit(archive)
        if not ranked_better_than_chance(last):
            children = self.strategy.offspring(population, rng, seen)
            return GuidedOffspring(children, self._predict(predictor, children), False, len(archive))
        pool: list[SubnetConfig] = []
        for _ in range(config.predictor_pool):
            pool += self.strategy.offspring(population, rng, seen)
        predictions = self._predict(predictor, pool)
        scored = [
            Candidate(cfg, {config.objective: predictions[str(cfg)]}, self.scorer.costs(cfg), generation)
            for cfg in pool
        ]
        count = min(config.population, len(scored))
        chosen = self.strategy.preselect(scored, round(count * (1.0 - config.predictor_explore)))
        picked = {c.key for c in chosen}
        rest = [c for c in scored if c.key not in picked]
        chosen += rng.sample(rest, min(count - len(chosen), len(rest)))
        return GuidedOffspring([c.subnet for c in chosen], predictions, True, len(archive))

    def _predict(self, predictor: AccuracyPredictor, cfgs: Sequence[SubnetConfig]) -> dict[str, float]:
        values = predictor.predict(cfgs, [self.scorer.costs(cfg) for cfg in cfgs])
        return {str(cfg): value for cfg, value in zip(cfgs, values)}
