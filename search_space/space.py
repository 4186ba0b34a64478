"""``SearchSpace``: the choice lists of a network family, sampling, mutation, crossover and costing.

A subnet is a vector of genes (resolution, stem width, per stage width/depth/kernel/expand ratio, for
transformer stages MLP ratio and windows, and for stages with several block choices the block, then head
width). Every random function takes an
explicit ``random.Random``; the same seed gives the same subnets.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from search_space.cost import COST_METRICS, Cost, cost_model, part_cost
from search_space.errors import SpaceError
from search_space.plan import walk_parts
from search_space.spec import SpaceDefinition
from search_space.subnet import StageChoice, SubnetConfig

CostBounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Gene:
    """One searchable value: where it lives and its choices ordered from cheapest to dearest (integers, or block
    codes such as ``g1`` and ``fused`` for a ``.block`` gene)."""

    label: str
    choices: tuple[int | str, ...]


@dataclass(frozen=True)
class SearchSpace(SpaceDefinition):
    """A search space loaded from ``configs/space/*.yaml`` (see :func:`search_space.load_space`): its definition
    (:class:`~search_space.spec.SpaceDefinition`) and what a search does with it."""

    # ----------------------------------------------------------------------------------- genes
    @property
    def genes(self) -> tuple[Gene, ...]:
        """All genes in a fixed order; windows are ordered dearest-last (fewer windows cost more). A stage has a
        ``.block`` gene only when it offers more than one block, so spaces without block choices keep their genes."""
        genes = [Gene("resolution", self.resolutions), Gene("stem_width", self.stem.widths)]
        for stage in self.stages:
            genes += [
                Gene(f"{stage.name}.width", stage.widths),
                Gene(f"{stage.name}.depth", stage.depths),
                Gene(f"{stage.name}.kernel", stage.kernels),
                Gene(f"{stage.name}.expand_ratio", stage.expand_ratios),
            ]
            if stage.is_transformer:
                genes += [
                    Gene(f"{stage.name}.mlp_ratio", stage.mlp_ratios),
                    Gene(f"{stage.name}.windows", tuple(sorted(stage.windows, reverse=True))),
                ]
            if len(stage.block_codes) > 1:
                genes.append(Gene(f"{stage.name}.block", stage.block_codes))
        genes.append(Gene("head_width", self.head.widths))
        return tuple(genes)

    def to_genes(self, cfg: SubnetConfig) -> tuple[int | str, ...]:
        """Flatten ``cfg`` into gene values, in :attr:`genes` order."""
        values: list[int | str] = [cfg.resolution, cfg.stem_width]
        for spec, choice in zip(self.stages, cfg.stages):
            values += [choice.width, choice.depth, choice.kernel, choice.expand_ratio]
            if spec.is_transformer:
                values += [choice.mlp_ratio, choice.windows]
            if len(spec.block_codes) > 1:
                values.append(choice.block)
        values.append(cfg.head_width)
        return tuple(values)

    def from_genes(self, values: tuple[int | str, ...] | list[int | str]) -> SubnetConfig:
        """Inverse of :meth:`to_genes`."""
        if len(values) != len(self.genes):
            raise SpaceError(f"space '{self.name}' has {len(self.genes)} genes, got {len(values)} values")
        it = iter(values)
        resolution, stem_width = next(it), next(it)
        stages = []
        for spec in self.stages:
            width, depth, kernel, expand = next(it), next(it), next(it), next(it)
            mlp, windows = (next(it), next(it)) if spec.is_transformer else (1, 1)
            block = next(it) if len(spec.block_codes) > 1 else spec.block_codes[0]
            stages.append(StageChoice(width, depth, kernel, expand, mlp, windows, block))
        return SubnetConfig(self, resolution, stem_width, tuple(stages), next(it))

    @property
    def num_subnets(self) -> int:
        """Number of distinct subnet configs."""
        return math.prod(len(g.choices) for g in self.genes)

    # -------------------------------------------------------------------------------- sampling
    def max_subnet(self) -> SubnetConfig:
        """The last choice of every gene (largest widths, depths, ...; one window; the last block code): the
        sandwich rule's largest subnet, and the dearest in every metric where no stage has a block choice (see
        :meth:`extreme_subnet`)."""
        return self.from_genes([g.choices[-1] for g in self.genes])

    def min_subnet(self) -> SubnetConfig:
        """The first choice of every gene (smallest widths, depths, ...; most windows; the first block code): the
        sandwich rule's smallest subnet, and the cheapest in every metric where no stage has a block choice."""
        return self.from_genes([g.choices[0] for g in self.genes])

    def extreme_subnet(self, metric: str, dearest: bool = False) -> SubnetConfig:
        """The subnet of lowest (``dearest``: highest) ``metric`` cost: every other gene at its first (last)
        choice, and each stage's block the code that costs least (most) there. Block codes need not rank alike in
        every metric (a fused block has fewer activations than a depthwise one of more MACs); a code leaves the
        stage's output alone, so choosing it stage by stage is exact."""
        cfg = self.max_subnet() if dearest else self.min_subnet()
        return self.best_blocks(cfg, lambda c: self.cost(c).get(metric), dearest)

    def best_blocks(
        self, cfg: SubnetConfig, value: Callable[[SubnetConfig], float], largest: bool = False
    ) -> SubnetConfig:
        """``cfg`` with each stage's block code chosen, one stage after another, to minimise (``largest``: maximise)
        ``value(subnet)``; exact for a value that adds up over stages, as costs and table latencies do."""
        pick = max if largest else min
        for index, spec in enumerate(self.stages):
            if len(spec.block_codes) > 1:
                options = [_with_block(cfg, index, code) for code in spec.block_codes]
                cfg = pick(options, key=value)
        return cfg

    def min_subnets_per_resolution(self, latency: Callable[[SubnetConfig], float] | None = None) -> list[SubnetConfig]:
        """:meth:`min_subnet` at every resolution of the space, lowest first: the candidates for the fastest subnet,
        since measured latency need not grow with the resolution as MACs do. With ``latency`` (a prediction), each
        stage's block is the code it predicts fastest there (:meth:`best_blocks`): the first code need not be."""
        corners = [self.min_subnet().replace(resolution=r) for r in self.resolutions]
        return corners if latency is None else [self.best_blocks(cfg, latency) for cfg in corners]

    def sample(self, rng: random.Random) -> SubnetConfig:
        """A uniformly random subnet."""
        return self.from_genes([rng.choice(g.choices) for g in self.genes])

    def sample_within(
        self,
        rng: random.Random,
        macs: CostBounds | None = None,
        params: CostBounds | None = None,
        activations: CostBounds | None = None,
        max_tries: int = 10_000,
    ) -> SubnetConfig:
        """A random subnet whose costs lie in the given inclusive ``(low, high)`` bounds (None = open).

        Raises:
            SpaceError: the bounds exclude every subnet (the attainable range is named), or no subnet
                inside them was drawn in ``max_tries`` attempts.
        """
        bounds = {m: b for m, b in zip(COST_METRICS, (macs, params, activations)) if b is not None}
        self.check_attainable(bounds)
        for _ in range(max_tries):
            cfg = self.sample(rng)
            if within(self.cost(cfg), bounds):
                return cfg
        raise SpaceError(
            f"no subnet of space '{self.name}' within {_describe(bounds)} found in {max_tries} random draws; "
            "widen the bounds or raise max_tries"
        )

    def check_attainable(self, bounds: dict[str, CostBounds]) -> None:
        """Raise a clear error when ``bounds`` lie outside [min subnet cost, max subnet cost] of a metric."""
        problems = []
        for metric, (low, high) in bounds.items():
            smallest = self.cost(self.extreme_subnet(metric)).get(metric)
            largest = self.cost(self.extreme_subnet(metric, dearest=True)).get(metric)
            if high is not None and high < smallest:
                problems.append(
                    f"{metric} <= {_fmt(high)} is unsatisfiable: the smallest attainable {metric} in space "
                    f"'{self.name}' is {_fmt(smallest)} ({smallest})"
                )
            if low is not None and low > largest:
                problems.append(
                    f"{metric} >= {_fmt(low)} is unsatisfiable: the largest attainable {metric} in space "
                    f"'{self.name}' is {_fmt(largest)} ({largest})"
                )
        if problems:
            raise SpaceError(problems)

    def mutate(self, cfg: SubnetConfig, rng: random.Random, prob: float) -> SubnetConfig:
        """Change each gene with probability ``prob`` to a different allowed value."""
        values = list(self.to_genes(cfg))
        for i, gene in enumerate(self.genes):
            if len(gene.choices) > 1 and rng.random() < prob:
                values[i] = rng.choice([v for v in gene.choices if v != values[i]])
        return self.from_genes(values)

    def crossover(self, first: SubnetConfig, second: SubnetConfig, rng: random.Random) -> SubnetConfig:
        """Take each gene from either parent with equal probability."""
        pairs = zip(self.to_genes(first), self.to_genes(second))
        return self.from_genes([a if rng.random() < 0.5 else b for a, b in pairs])

    def parse(self, text: str) -> SubnetConfig:
        """Parse a subnet string of this space."""
        return SubnetConfig.from_string(text, self)

    # ----------------------------------------------------------------------------------- costs
    def cost(self, cfg: SubnetConfig, num_classes: int | None = None) -> Cost:
        """MACs, parameters and activations of ``cfg`` per image (see :mod:`search_space.cost`).

        Each part (the stem, a stage, the head) is costed once per signature and memoised, so costing many
        subnets is fast.
        """
        return cost_model(cfg.space).cost(cfg, num_classes)

    def cost_breakdown(self, cfg: SubnetConfig, num_classes: int | None = None) -> dict[str, Cost]:
        """Cost per part: ``stem``, each stage name, ``head``; the values add up to :meth:`cost`."""
        stem, *stages, head = walk_parts(cfg, part_cost, {}, num_classes)
        return {"stem": stem, **{spec.name: cost for spec, cost in zip(self.stages, stages)}, "head": head}


def _with_block(cfg: SubnetConfig, index: int, code: str) -> SubnetConfig:
    stages = list(cfg.stages)
    stages[index] = dataclasses.replace(stages[index], block=code)
    return cfg.replace(stages=tuple(stages))


def within(cost: Cost, bounds: dict[str, CostBounds]) -> bool:
    """Whether ``cost`` satisfies every inclusive ``(low, high)`` bound."""
    for metric, (low, high) in bounds.items():
        value = cost.get(metric)
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _fmt(value: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.4g}{unit}"
    return f"{value:g}"


def _describe(bounds: dict[str, CostBounds]) -> str:
    parts = []
    for metric, (low, high) in bounds.items():
        parts.append(
            f"{_fmt(low) if low is not None else '-inf'} <= {metric} <= {_fmt(high) if high is not None else 'inf'}"
        )
    return ", ".join(parts)


def format_count(value: float) -> str:
    """Human-readable count: 189.8M, 5.3G, 12.1K."""
    return _fmt(value)
