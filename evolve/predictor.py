"""An accuracy predictor fitted on the candidates a search has evaluated, so that a generation evaluates only the
most promising of many bred children.

Features of a subnet: one indicator per (gene, choice) of every gene with more than one choice, and the logarithms
of its MACs, parameters and activations (and latency, when the search measures it), standardised on the training
candidates. Models (scikit-learn, deterministic for a given training set):

- ``ridge``: ridge regression (alpha 1) on those features; captures what each choice adds on its own.
- ``forest``: a random forest (200 trees, leaves of at least 2, fixed seed); captures interactions between genes.

The training set is sorted by subnet string first, so a resumed search fits exactly the model an uninterrupted
one fitted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from evolve.candidate import Candidate
from evolve.config import PREDICTORS
from search_space import SearchSpace, SubnetConfig

BETTER_THAN_CHANCE_P = 0.1  # one-sided p-value of Kendall's tau under which a ranking counts as better than chance


class AccuracyPredictor:
    """Predicts ``objective`` of subnets of ``space`` from their genes and costs.

    Args:
        space: the search space (its genes give the one-hot features).
        kind: ``ridge`` or ``forest``.
        objective: the metric predicted (the search's objective).
        seed: the forest's random state.
    """

    def __init__(self, space: SearchSpace, kind: str, objective: str, seed: int = 0):
        if kind not in PREDICTORS[1:]:
            raise ValueError(f"unknown predictor {kind!r}; use one of {list(PREDICTORS[1:])}")
        self.space, self.kind, self.objective, self.seed = space, kind, objective, seed
        self._choices = [(i, gene.choices) for i, gene in enumerate(space.genes) if len(gene.choices) > 1]
        self._model = None

    def fit(self, candidates: Sequence[Candidate]) -> AccuracyPredictor:
        """Fit on ``candidates`` (their objective against their genes and costs); returns self."""
        ordered = sorted(candidates, key=lambda c: c.key)
        x = self.features([c.subnet for c in ordered], [c.costs for c in ordered])
        y = np.array([c.metrics[self.objective] for c in ordered], dtype=float)
        if self.kind == "ridge":
            self._model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
        else:
            self._model = RandomForestRegressor(n_estimators=200, min_samples_leaf=2, random_state=self.seed, n_jobs=1)
        self._model.fit(x, y)
        return self

    def predict(self, cfgs: Sequence[SubnetConfig], costs: Sequence[Mapping[str, float]]) -> list[float]:
        """Predicted objective of each subnet (``costs`` as the search's scorer gives them)."""
        if self._model is None:
            raise RuntimeError("fit the predictor before predicting")
        return [float(value) for value in self._model.predict(self.features(cfgs, costs))]

    def features(self, cfgs: Sequence[SubnetConfig], costs: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(N, F) features: gene-choice indicators, then log costs in a fixed order."""
        rows = []
        for cfg, cost in zip(cfgs, costs, strict=True):
            genes = self.space.to_genes(cfg)
            row = [float(genes[i] == choice) for i, choices in self._choices for choice in choices]
            row += [math.log(max(float(cost[name]), 1e-12)) for name in sorted(cost)]
            rows.append(row)
        return np.array(rows, dtype=float)


@dataclass(frozen=True)
class RankAgreement:
    """Kendall's tau between predicted and measured values of one generation's candidates.

    Attributes:
        tau: the rank correlation (NaN when either side is constant).
        p_value: one-sided p-value of tau > 0.
        count: candidates compared.
    """

    tau: float
    p_value: float
    count: int


def rank_agreement(predicted: Sequence[float], measured: Sequence[float]) -> RankAgreement:
    """Kendall's tau of ``predicted`` against ``measured`` (at least 2 of each; NaN tau, p 1 otherwise)."""
    if len(predicted) < 2 or len(set(predicted)) < 2 or len(set(measured)) < 2:
        return RankAgreement(math.nan, 1.0, len(predicted))
    result = kendalltau(predicted, measured, alternative="greater")
    return RankAgreement(float(result.statistic), float(result.pvalue), len(predicted))
