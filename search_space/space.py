"""``SearchSpace``: the choice lists of a network family, sampling, mutation, crossover and costing.

A subnet is a vector of genes (resolution, stem width, per stage width/depth/kernel/expand ratio and,
for transformer stages, MLP ratio and windows, then head width). Every random function takes an
explicit ``random.Random``; the same seed gives the same subnets.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from search_space.arithmetic import conv_out_size
from search_space.cost import COST_METRICS, ZERO, Cost, block_cost, head_cost, stem_cost
from search_space.errors import SpaceError
from search_space.plan import HeadPlan, StemPlan, block_out_size, plan_stage, plan_subnet
from search_space.spec import HeadSpec, StageSpec, StemSpec, TransformerSpec
from search_space.subnet import StageChoice, SubnetConfig

CostBounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Gene:
    """One searchable value: where it lives and its choices ordered from cheapest to dearest."""

    label: str
    choices: tuple[int, ...]


@dataclass(frozen=True)
class SearchSpace:
    """A search space loaded from ``configs/space/*.yaml`` (see :func:`search_space.load_space`)."""

    name: str
    description: str = field(compare=False)  # prose: two spaces that differ only here are the same space
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    resize_mode: str
    activation: str
    channel_divisor: int
    se_reduction: int
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    transformer: TransformerSpec
    source: str = field(default="", compare=False)
    _part_costs: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    # ----------------------------------------------------------------------------------- genes
    @property
    def genes(self) -> tuple[Gene, ...]:
        """All genes in a fixed order; windows are ordered dearest-last (fewer windows cost more)."""
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
        genes.append(Gene("head_width", self.head.widths))
        return tuple(genes)

    def to_genes(self, cfg: SubnetConfig) -> tuple[int, ...]:
        """Flatten ``cfg`` into gene values, in :attr:`genes` order."""
        values = [cfg.resolution, cfg.stem_width]
        for spec, choice in zip(self.stages, cfg.stages):
            values += [choice.width, choice.depth, choice.kernel, choice.expand_ratio]
            if spec.is_transformer:
                values += [choice.mlp_ratio, choice.windows]
        values.append(cfg.head_width)
        return tuple(values)

    def from_genes(self, values: tuple[int, ...] | list[int]) -> SubnetConfig:
        """Inverse of :meth:`to_genes`."""
        if len(values) != len(self.genes):
            raise SpaceError(f"space '{self.name}' has {len(self.genes)} genes, got {len(values)} values")
        it = iter(values)
        resolution, stem_width = next(it), next(it)
        stages = []
        for spec in self.stages:
            width, depth, kernel, expand = next(it), next(it), next(it), next(it)
            mlp, windows = (next(it), next(it)) if spec.is_transformer else (1, 1)
            stages.append(StageChoice(width, depth, kernel, expand, mlp, windows))
        return SubnetConfig(self, resolution, stem_width, tuple(stages), next(it))

    @property
    def num_subnets(self) -> int:
        """Number of distinct subnet configs."""
        return math.prod(len(g.choices) for g in self.genes)

    # -------------------------------------------------------------------------------- sampling
    def max_subnet(self) -> SubnetConfig:
        """The dearest choice of every gene (largest widths, depths, ...; one window)."""
        return self.from_genes([g.choices[-1] for g in self.genes])

    def min_subnet(self) -> SubnetConfig:
        """The cheapest choice of every gene (smallest widths, depths, ...; most windows)."""
        return self.from_genes([g.choices[0] for g in self.genes])

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
        low_cost, high_cost = self.cost(self.min_subnet()), self.cost(self.max_subnet())
        problems = []
        for metric, (low, high) in bounds.items():
            smallest, largest = low_cost.get(metric), high_cost.get(metric)
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

    # ---------------------------------------------------------------------------------- checks
    def check(self, cfg: SubnetConfig) -> list[str]:
        """Every value of ``cfg`` that this space does not allow, as messages (empty when valid)."""
        problems = []
        _check_value(problems, "resolution", cfg.resolution, self.resolutions)
        _check_value(problems, "stem: width", cfg.stem_width, self.stem.widths)
        if len(cfg.stages) != len(self.stages):
            names = [s.name for s in self.stages]
            return [*problems, f"expected {len(self.stages)} stages {names}, got {len(cfg.stages)}"]
        for spec, choice in zip(self.stages, cfg.stages):
            where = f"stage {spec.name}"
            _check_value(problems, f"{where}: width", choice.width, spec.widths)
            _check_value(problems, f"{where}: depth", choice.depth, spec.depths)
            _check_value(problems, f"{where}: kernel", choice.kernel, spec.kernels)
            _check_value(problems, f"{where}: expand ratio", choice.expand_ratio, spec.expand_ratios)
            _check_value(problems, f"{where}: mlp ratio", choice.mlp_ratio, spec.mlp_ratios)
            _check_value(problems, f"{where}: windows", choice.windows, spec.windows)
        _check_value(problems, "head: width", cfg.head_width, self.head.widths)
        return problems

    # ------------------------------------------------------------------------------- geometry
    def stage_sizes(self, resolution: int) -> tuple[int, ...]:
        """Output side of each stage at ``resolution`` (independent of the kernel choice)."""
        size = conv_out_size(resolution, self.stem.kernel, self.stem.stride)
        sizes = []
        for stage in self.stages:
            size = conv_out_size(size, stage.kernels[0], stage.stride)
            sizes.append(size)
        return tuple(sizes)

    def position_bias_size(self, index: int) -> int:
        """Side R of the relative-position table of stage ``index``: fixed by the file or the largest map."""
        fixed = self.transformer.position_bias_size
        return fixed if fixed is not None else max(self.stage_sizes(r)[index] for r in self.resolutions)

    # ----------------------------------------------------------------------------------- costs
    def cost(self, cfg: SubnetConfig, num_classes: int | None = None) -> Cost:
        """MACs, parameters and activations of ``cfg`` per image (see :mod:`search_space.cost`).

        The stem, each stage and the head are costed once per distinct (part, input width, choice,
        input size) and memoised, so costing many subnets is fast.
        """
        memo = self._part_costs
        key = ("stem", cfg.stem_width, cfg.resolution)
        part = memo.get(key) or memo.setdefault(key, self._stem_part(cfg.stem_width, cfg.resolution))
        macs, params, activations, size = part
        channels = cfg.stem_width
        for index, choice in enumerate(cfg.stages):
            key = (index, choice, channels, size)
            part = memo.get(key) or memo.setdefault(key, self._stage_part(index, choice, channels, size))
            macs, params, activations, size = macs + part[0], params + part[1], activations + part[2], part[3]
            channels = choice.width
        classes = self.num_classes if num_classes is None else num_classes
        key = ("head", channels, cfg.head_width, size, classes)
        part = memo.get(key) or memo.setdefault(key, self._head_part(channels, cfg.head_width, size, classes))
        return Cost(macs + part[0], params + part[1], activations + part[2])

    def cost_breakdown(self, cfg: SubnetConfig, num_classes: int | None = None) -> dict[str, Cost]:
        """Cost per part: ``stem``, each stage name, ``head``; the values add up to :meth:`cost`."""
        plan = plan_subnet(cfg, num_classes)
        parts = {"stem": stem_cost(plan.stem)}
        for spec, blocks in zip(self.stages, plan.stages):
            parts[spec.name] = sum((block_cost(b) for b in blocks), ZERO)
        parts["head"] = head_cost(plan.head)
        return parts

    def _stem_part(self, width: int, resolution: int) -> tuple[int, int, int, int]:
        out_size = conv_out_size(resolution, self.stem.kernel, self.stem.stride)
        cost = stem_cost(StemPlan(self.in_channels, width, self.stem.kernel, self.stem.stride, resolution, out_size))
        return cost.macs, cost.params, cost.activations, out_size

    def _stage_part(self, index: int, choice: StageChoice, channels: int, size: int) -> tuple[int, int, int, int]:
        blocks = plan_stage(self, index, choice, channels, size)
        cost = sum((block_cost(b) for b in blocks), ZERO)
        return cost.macs, cost.params, cost.activations, block_out_size(blocks[-1])

    def _head_part(self, channels: int, width: int, size: int, classes: int) -> tuple[int, int, int, int]:
        cost = head_cost(HeadPlan(channels, channels * self.head.expand_ratio, width, classes, size))
        return cost.macs, cost.params, cost.activations, size


def within(cost: Cost, bounds: dict[str, CostBounds]) -> bool:
    """Whether ``cost`` satisfies every inclusive ``(low, high)`` bound."""
    for metric, (low, high) in bounds.items():
        value = cost.get(metric)
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def _check_value(problems: list[str], where: str, value, allowed) -> None:
    if type(value) is not int:  # 32.0 == 32 and True == 1 would pass the membership test
        problems.append(f"{where} {value!r} is not a whole number; use one of {list(allowed)}")
    elif value not in allowed:
        problems.append(f"{where} {value} is not one of {list(allowed)}")


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
