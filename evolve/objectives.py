"""Synthetic objectives for measuring searchers without training anything (as ``deap.benchmarks`` does for
continuous ones): a search scores subnets with them as it would with an evaluator.

- :func:`synthetic_top1`: a weighted sum of a few genes' choice positions, every other gene slightly penalised.
  Its best value under a MACs budget is exact (:func:`exhaustive_optimum`).
- :func:`interacting_top1`: an accuracy-like score (percent) with interactions between genes, an interior optimum
  for some genes and evaluation noise, the harder case; its best value is known only by searching long.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from functools import lru_cache

from search_space import SearchSpace, SubnetConfig

REWARDS = {"resolution": 3.0, "s4.windows": 1.0, "s5.depth": 2.0, "s6.depth": 2.0, "s6.mlp_ratio": 1.0, "s7.width": 1.0}
PENALTY = 0.02


def positions(space: SearchSpace, cfg: SubnetConfig) -> dict[str, float]:
    """Each multi-choice gene's choice position in [0, 1] (0: its first choice), by gene label."""
    found = {}
    for gene, value in zip(space.genes, space.to_genes(cfg)):
        if len(gene.choices) > 1:
            found[gene.label] = gene.choices.index(value) / (len(gene.choices) - 1)
    return found


def synthetic_top1(space: SearchSpace, cfg: SubnetConfig) -> float:
    """Weighted sum of normalised gene positions: rewarded genes count positively, the rest slightly negatively."""
    return sum(
        REWARDS[label] * position if label in REWARDS else -PENALTY * position
        for label, position in positions(space, cfg).items()
    )


def exhaustive_optimum(space: SearchSpace, macs_limit: float) -> float:
    """Best :func:`synthetic_top1` with macs <= ``macs_limit``.

    MACs never decrease when a gene moves to a dearer choice (in the shipped spaces), so for any choice of the
    rewarded genes the cheapest and best completion sets every other gene to its cheapest choice: the optimum
    is the best rewarded-gene combination whose cheapest completion fits.
    """
    labels = [gene.label for gene in space.genes]
    cheapest = [gene.choices[0] for gene in space.genes]
    rewarded = [space.genes[labels.index(label)] for label in REWARDS]
    best = float("-inf")
    for combo in itertools.product(*(gene.choices for gene in rewarded)):
        values = list(cheapest)
        for gene, value in zip(rewarded, combo):
            values[labels.index(gene.label)] = value
        cfg = space.from_genes(values)
        if space.cost(cfg).macs <= macs_limit:
            best = max(best, synthetic_top1(space, cfg))
    return best


@lru_cache(maxsize=8)
def _interaction_terms(labels: tuple[str, ...], seed: int) -> tuple[dict, list, dict]:
    """Seeded weights: per gene, per gene pair (a third of all pairs) and interior optima of a quarter of genes."""
    rng = random.Random(f"interacting:{seed}")
    linear = {label: rng.uniform(-0.5, 2.0) for label in labels}
    pairs = [(a, b, rng.uniform(-1.5, 1.5)) for a, b in itertools.combinations(labels, 2) if rng.random() < 1 / 3]
    peaks = {label: rng.uniform(0.3, 0.7) for label in labels if rng.random() < 0.25}
    return linear, pairs, peaks


def interacting_top1(space: SearchSpace, cfg: SubnetConfig, seed: int = 0, noise: float = 0.3) -> float:
    """An accuracy in percent: 60 plus seeded linear, pairwise and peaked terms of the genes' positions, plus
    Gaussian noise of ``noise`` points that is fixed per subnet (like a fixed evaluation split's)."""
    found = positions(space, cfg)
    linear, pairs, peaks = _interaction_terms(tuple(sorted(found)), seed)
    score = sum(weight * found[label] for label, weight in linear.items())
    score += sum(weight * found[a] * found[b] for a, b, weight in pairs)
    score -= sum(4.0 * (found[label] - peak) ** 2 for label, peak in peaks.items())
    digest = hashlib.sha256(f"{seed}:{cfg}".encode()).digest()
    return 60.0 + score + noise * random.Random(digest).gauss(0.0, 1.0)
