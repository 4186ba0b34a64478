"""Scaling a subnet beyond its space: one dimension, compound (EfficientNet) and fast compound (dWr) scaling.

A rule gives depth, width and resolution multipliers as powers of one common multiplier t:

    depth x t^e_d, width x t^e_w, resolution x t^e_r

For the one-dimension rules and the compound rules of Dollar, Singh & Girshick ("Fast and Accurate Model
Scaling", CVPR 2021) t is the MACs factor s: ``w`` (0, 1/2, 0), ``d`` (1, 0, 0), ``r`` (0, 0, 1/2), and with
alpha in [0, 1] e_d = (1 - alpha)/2, e_w = alpha/2, e_r = (1 - alpha)/4 (``dwr``: alpha = 1/3; ``fast``:
alpha = 0.8, the paper's dWr). For EfficientNet's rule t = e^phi and the exponents are ln(alpha), ln(beta),
ln(gamma) (1.2, 1.1, 1.15: depth alpha^phi, width beta^phi, resolution gamma^phi).

Depths round to whole blocks (at least 1), widths to the space's channel divisor (transformer stages to multiples
of the head dimension too) and the resolution to a multiple of 4 (the paper's code) on which every attention window
still tiles its map; feature maps round up at each stride, as everywhere in nasvit. (Multiples of the total stride,
64 px in the ``nasvit`` space, are too coarse: resolution alone could not land within 3% of 2, 4 or 8 times.)
Rounding is coarse and attention grows with the square of the token count, so the nominal t rarely gives s times
the MACs: :func:`scale_subnet` solves t on the analytical cost model (a bisection on t for the first rounded subnet
that reaches the target, then a scan of t within a factor 1.3 of it for the closest). Depths step by whole blocks
in every stage at once, so for the rules that scale width the width multiplier then takes a correction within
1/1.15 to 1.15 (``ScaledSubnet.width_correction``). Where the MACs are still more than 1% off, single dimensions
(a stage's width or depth, the stem, the head, the resolution) round to their other neighbour instead of the
nearest, greedily, one or two at a time. Where a rule's rounding cannot come within 3%, ``ScaledSubnet.macs_ratio``
shows by how much it misses: resolution alone on a subnet with windowed attention, whose input sides that tile the
windows change the feature maps in coarse steps (``nasvit``'s smallest subnet: 256 px gives 1.85x the MACs, the
next tiling side, 276 px, 2.39x).

The scaled subnet lies outside the base space's choice lists, so it comes with a one-subnet space made from the
base space (same blocks and switches, one choice per list): an ordinary space a supernet, an export and timm take.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from search_space.arithmetic import make_divisible, window_grid
from search_space.cost import Cost
from search_space.errors import SpaceError
from search_space.loader import parse_space
from search_space.serialize import space_to_dict
from search_space.space import SearchSpace
from search_space.spec import FUSED_BLOCK, BlockKind, HeadSpec, SpaceDefinition, StemSpec, block_group_size
from search_space.subnet import StageChoice, SubnetConfig

RULES = ("w", "d", "r", "dwr", "fast", "efficientnet")
FAST_ALPHA = 0.8  # the paper's dWr
EFFICIENTNET_COEFFICIENTS = (1.2, 1.1, 1.15)  # depth alpha, width beta, resolution gamma (EfficientNet-B0's search)
RESOLUTION_STEP = 4  # the paper's code; multiples of the total stride (64 in `nasvit`) are too coarse to hit 3%
_BISECTION_STEPS = 40
_SCAN_SPAN, _SCAN_POINTS = 1.3, 60  # the scan after the bisection: t / 1.3 to t * 1.3 in 121 geometric steps
_CORRECTION_SPAN = 1.15  # the width correction's range, 1 / 1.15 to 1.15
_CLOSE = 0.01  # MACs within 1% of the target need no width correction


@dataclass(frozen=True)
class ScaledSubnet:
    """One scaled subnet: its rule, the target and reached MACs factor, the multipliers applied and the result.

    Attributes:
        rule, factor: the rule and the requested MACs factor s (for ``efficientnet`` with a given phi, the nominal
            (alpha beta^2 gamma^2)^phi).
        multiplier: the common multiplier t solved (or given through phi), and the per-dimension multipliers
            ``depth``, ``width``, ``resolution`` applied before rounding (``width`` includes the correction).
        width_correction: the factor on the rule's width multiplier that closed the gap the depth and resolution
            steps left (1.0 when none was needed or the rule does not scale width).
        space, cfg: the one-subnet space holding the scaled subnet, and that subnet.
        cost, base_cost: analytical cost of the scaled and of the base subnet.
    """

    rule: str
    factor: float
    multiplier: float
    width_correction: float
    depth: float
    width: float
    resolution: float
    space: SearchSpace
    cfg: SubnetConfig
    cost: Cost
    base_cost: Cost

    @property
    def macs_ratio(self) -> float:
        return self.cost.macs / self.base_cost.macs


def rule_exponents(rule: str, alpha: float = FAST_ALPHA) -> tuple[float, float, float]:
    """Exponents (e_d, e_w, e_r) of the common multiplier t for depth, width and resolution under ``rule``.

    ``alpha`` is the width share of ``fast`` (``dwr`` is alpha = 1/3; ignored by the other rules).

    Raises:
        ValueError: an unknown rule, or alpha outside [0, 1].
    """
    if rule not in RULES:
        raise ValueError(f"scaling rule {rule!r} is not one of {', '.join(RULES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha={alpha} is outside [0, 1]; the width share of the MACs growth is a fraction")
    if rule == "efficientnet":
        return tuple(math.log(c) for c in EFFICIENTNET_COEFFICIENTS)
    fixed = {"w": (0.0, 0.5, 0.0), "d": (1.0, 0.0, 0.0), "r": (0.0, 0.0, 0.5)}
    if rule in fixed:
        return fixed[rule]
    share = 1.0 / 3.0 if rule == "dwr" else alpha
    return (1.0 - share) / 2.0, share / 2.0, (1.0 - share) / 4.0


def scale_subnet(
    cfg: SubnetConfig, rule: str, factor: float | None = None, alpha: float = FAST_ALPHA, phi: float | None = None
) -> ScaledSubnet:
    """``cfg`` scaled by ``rule`` to ``factor`` times its MACs (or, for ``efficientnet``, by a given ``phi``).

    Raises:
        ValueError: an unknown rule, a factor below 1, neither or both of factor and phi, or phi for another rule.
    """
    exponents = rule_exponents(rule, alpha)
    if phi is not None and rule != "efficientnet":
        raise ValueError(f"phi sets EfficientNet's rule; rule {rule!r} takes a MACs factor instead")
    if (factor is None) == (phi is None):
        raise ValueError("give a MACs factor or (for the efficientnet rule) phi, not both and not neither")
    base_cost = cfg.space.cost(cfg)
    if phi is not None:
        t, correction = math.exp(phi), 1.0
        factor = math.prod(c**p for c, p in zip(EFFICIENTNET_COEFFICIENTS, (1, 2, 2))) ** phi
        space, scaled = _build(cfg, _exact(cfg, exponents, t))
    else:
        if factor < 1.0:
            raise ValueError(f"factor {factor} is below 1; scaling here grows a subnet (give 2, 4, 8, ...)")
        t, correction, space, scaled = _solve(cfg, exponents, factor * base_cost.macs)
    setting = f"phi{phi:g}" if phi is not None else f"x{factor:g}"
    named = {**space_to_dict(space), "name": f"{cfg.space.name}_{rule}_{setting}".replace(".", "p")}
    space = parse_space(named, source=f"{cfg.space.name} scaled")
    scaled = space.max_subnet()
    depth, width, resolution = (t**e for e in exponents)
    cost = space.cost(scaled)
    return ScaledSubnet(
        rule, factor, t, correction, depth, width * correction, resolution, space, scaled, cost, base_cost
    )


def _solve(
    cfg: SubnetConfig, exponents: tuple[float, ...], target: float
) -> tuple[float, float, SearchSpace, SubnetConfig]:
    """The multiplier t (and width correction) whose rounded subnet's MACs are closest to ``target``: bisection on
    the first t whose MACs reach it, a scan around it, for rules that scale width a width correction, then the
    rounding of single dimensions flipped to their other neighbour (:func:`_refine_rounding`)."""

    def macs(t: float, correction: float = 1.0) -> int:
        space, scaled = _build(cfg, _exact(cfg, exponents, t, correction))
        return space.cost(scaled).macs

    low, high = 1.0, 2.0
    while macs(high) < target:
        low, high = high, high * 2.0
        if high > 1e6:
            raise SpaceError(f"no multiplier reaches {target:.3g} MACs; the rule does not grow this subnet")
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2.0
        low, high = (middle, high) if macs(middle) < target else (low, middle)
    # Rounding makes MACs a step function of t that is not monotone where two dimensions round differently: scan a
    # geometric neighbourhood of the crossing for the closest rounded subnet.
    scan = [high * _SCAN_SPAN ** (i / _SCAN_POINTS) for i in range(-_SCAN_POINTS, _SCAN_POINTS + 1)]
    t = min([low, high, *scan], key=lambda value: (abs(macs(value) - target), abs(math.log(value / high))))
    correction = 1.0
    if exponents[1] > 0 and abs(macs(t) / target - 1.0) > _CLOSE:  # depth and resolution steps: width closes the gap
        grid = [_CORRECTION_SPAN ** (i / _SCAN_POINTS) for i in range(-_SCAN_POINTS, _SCAN_POINTS + 1)]
        correction = min(grid, key=lambda c: (abs(macs(t, c) - target), abs(math.log(c))))
    return (t, correction, *_refine_rounding(cfg, _exact(cfg, exponents, t, correction), target))


@dataclass(frozen=True)
class _Exact:
    """A scaled subnet's dimensions before rounding: input side, stem, stage widths and depths, head width."""

    resolution: float
    stem: float
    widths: tuple[float, ...]
    depths: tuple[float, ...]
    head: float


def _exact(cfg: SubnetConfig, exponents: tuple[float, ...], t: float, correction: float = 1.0) -> _Exact:
    """``cfg``'s dimensions multiplied by t^e (widths also by ``correction``)."""
    depth, width, resolution = (t**e for e in exponents)
    width *= correction
    return _Exact(
        cfg.resolution * resolution,
        cfg.stem_width * width,
        tuple(choice.width * width for choice in cfg.stages),
        tuple(choice.depth * depth for choice in cfg.stages),
        cfg.head_width * width,
    )


def _refine_rounding(cfg: SubnetConfig, exact: _Exact, target: float) -> tuple[SearchSpace, SubnetConfig]:
    """The rounded subnet of ``exact`` closest to ``target`` MACs when each dimension may round to its nearest
    allowed value or to its other neighbour: greedy, one flip at a time (the flip that brings the MACs closest; two
    at once where every single one overshoots), until within 1% or no flip helps. A dimension the rule leaves
    unscaled sits on an allowed value and stays."""
    dimensions = [("resolution", 0), ("stem", 0), ("head", 0)]
    dimensions += [(kind, i) for kind in ("width", "depth") for i in range(len(cfg.stages))]

    def error(flips: frozenset) -> float:
        space, scaled = _build(cfg, exact, flips)
        return abs(space.cost(scaled).macs / target - 1.0)

    singles = [frozenset([d]) for d in dimensions]
    pairs = [frozenset(pair) for pair in itertools.combinations(dimensions, 2)]
    flips: frozenset = frozenset()
    best = error(flips)
    while best > _CLOSE:
        trial, move = min(((error(flips ^ m), sorted(m)) for m in singles), default=(best, []))
        if trial >= best:  # one flip overshoots where two (one up, one down) may land
            trial, move = min((error(flips ^ m), sorted(m)) for m in pairs)
        if trial >= best:
            break
        flips, best = flips ^ frozenset(move), trial
    return _build(cfg, exact, flips)


def _build(cfg: SubnetConfig, exact: _Exact, flips: frozenset = frozenset()) -> tuple[SearchSpace, SubnetConfig]:
    """The one-subnet space and subnet of ``exact`` rounded: each dimension to its nearest allowed value, or to its
    other neighbour where ``flips`` names it (``("width", i)``, ``("depth", i)``, ``("stem", 0)``, ...)."""
    base = cfg.space
    head_dim = base.transformer.head_dim
    stages = []
    for i, (spec, choice) in enumerate(zip(base.stages, cfg.stages)):
        divisor = math.lcm(base.channel_divisor, head_dim) if spec.is_transformer else base.channel_divisor
        width = _width(exact.widths[i], math.lcm(divisor, _grouped_input(cfg, i)), ("width", i) in flips)
        stages.append(dataclasses.replace(choice, width=width, depth=_depth(exact.depths[i], ("depth", i) in flips)))
    space = one_subnet_space(
        base,
        name=f"{base.name}_scaled",
        description=f"one subnet scaled from {cfg}",
        resolution=_resolution(cfg, exact.resolution, ("resolution", 0) in flips),
        stem_width=_width(exact.stem, math.lcm(base.channel_divisor, _grouped_input(cfg, -1)), ("stem", 0) in flips),
        stages=tuple(stages),
        head_width=_width(exact.head, base.channel_divisor, ("head", 0) in flips),
    )
    return space, space.max_subnet()


def one_subnet_space(
    base: SpaceDefinition,
    *,
    name: str,
    description: str,
    resolution: int,
    stem_width: int,
    stages: tuple[StageChoice, ...],
    head_width: int,
) -> SearchSpace:
    """The space named ``name`` that holds one subnet: ``base``'s blocks and switches with one choice per list (these
    values, which need not be among ``base``'s), its relative-position tables sized for the subnet's own maps.

    Raises:
        SpaceError: the values do not make a valid space (a map the windows do not tile, a width that is not a
            multiple of the head dimension, ...).
    """
    specs = tuple(
        dataclasses.replace(
            spec,
            widths=(choice.width,),
            depths=(choice.depth,),
            kernels=(choice.kernel,),
            expand_ratios=(choice.expand_ratio,),
            mlp_ratios=(choice.mlp_ratio,),
            windows=(choice.windows,),
            block_kinds=(BlockKind.FUSED if choice.block == FUSED_BLOCK else BlockKind.MBCONV,),
            group_sizes=(block_group_size(choice.block),),
        )
        for spec, choice in zip(base.stages, stages)
    )
    definition = dataclasses.replace(
        base,
        name=name,
        description=description,
        resolutions=(resolution,),
        stem=StemSpec(base.stem.kernel, base.stem.stride, (stem_width,)),
        stages=specs,
        head=HeadSpec(base.head.expand_ratio, (head_width,), base.head.dropout),
        transformer=dataclasses.replace(base.transformer, position_bias_size=None),
    )
    return parse_space(space_to_dict(definition), source=f"{name} (one subnet of {base.name})")


def _grouped_input(cfg: SubnetConfig, index: int) -> int:
    """The group size the output width of stage ``index`` (-1: the stem) must be a multiple of: that of a grouped
    expand-ratio-1 block whose spatial conv runs on it (the next stage's first block, the stage's own later ones),
    else 1."""
    sizes = [
        block_group_size(choice.block)
        for j, choice in enumerate(cfg.stages)
        if choice.expand_ratio == 1 and j in (index, index + 1)
    ]
    return math.lcm(1, *sizes)


def _width(value: float, divisor: int, flipped: bool) -> int:
    """``value`` rounded to a multiple of ``divisor``: the nearest (:func:`make_divisible`), or the other neighbour."""
    nearest = make_divisible(value, divisor)
    if not flipped:
        return nearest
    low = max(divisor, math.floor(value / divisor) * divisor)
    return low if nearest != low else max(divisor, math.ceil(value / divisor) * divisor)


def _depth(value: float, flipped: bool) -> int:
    """``value`` rounded to whole blocks, at least 1: the nearest, or the other neighbour."""
    nearest = max(1, round(value))
    if not flipped:
        return nearest
    low = max(1, math.floor(value))
    return low if nearest != low else max(1, math.ceil(value))


def _resolution(cfg: SubnetConfig, target: float, flipped: bool = False) -> int:
    """The multiple of :data:`RESOLUTION_STEP` nearest ``target`` on which every stage's windows tile its map (with
    ``flipped``, the nearest such on the other side of ``target``, where there is one)."""
    space = cfg.space
    grids = [window_grid(choice.windows) for choice in cfg.stages]
    steps = max(1, round(target / RESOLUTION_STEP))
    candidates = sorted(range(1, 2 * steps + 8), key=lambda n: (abs(n * RESOLUTION_STEP - target), n))
    tiling = (
        n * RESOLUTION_STEP
        for n in candidates
        if all(
            size % rows == 0 and size % cols == 0
            for size, (rows, cols) in zip(space.stage_sizes(n * RESOLUTION_STEP), grids)
        )
    )
    nearest = next(tiling, None)
    if nearest is None:
        raise SpaceError(f"no resolution near {target:.0f} lets the windows of {cfg} tile their maps")
    if flipped:  # the nearest tiling resolution on the other side of the target, where there is one
        return next((r for r in tiling if (r - target) * (nearest - target) < 0), nearest)
    return nearest
