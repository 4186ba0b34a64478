"""Single Path One-Shot sampling (Guo et al. 2019): one path of the space per training step.

Uniformly over the space, or, with MACs bins, a bin uniformly and then a path inside it by rejection (the paper's
refinement: seven bins of 10 M between 290 and 360 M), so that every size of model gets the same share of steps
whatever the space's size distribution. Each step's path comes from ``random.Random(f"{seed}:{step}:path")``, so
every rank and every resumed run trains the same path at the same step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from search_space import SearchSpace, SpaceError, SubnetConfig, format_count
from supernet.training.progressive import cap_resolution

MacsBin = tuple[float, float]


def macs_bins(
    space: SearchSpace, count: int, macs_range: Sequence[float] | None = None, tries: int = 10_000
) -> list[MacsBin]:
    """``count`` equal (low, high) MACs bins over ``macs_range`` (default: the smallest to the largest subnet's
    MACs), each checked to hold a subnet that rejection sampling finds within ``tries`` draws.

    Raises:
        SpaceError: the range lies outside the space, or a bin is empty or too rare to draw from (named).
    """
    extremes = (space.cost(space.extreme_subnet("macs")).macs, space.cost(space.extreme_subnet("macs", True)).macs)
    low, high = macs_range if macs_range is not None else extremes
    space.check_attainable({"macs": (low, high)})
    width = (high - low) / count
    bins = [(low + i * width, low + (i + 1) * width) for i in range(count)]
    probe = random.Random("macs-bins")
    for index, (bin_low, bin_high) in enumerate(bins):
        try:
            space.sample_within(probe, macs=(bin_low, bin_high), max_tries=tries)
        except SpaceError:
            macs = f"{format_count(bin_low)}-{format_count(bin_high)}"
            raise SpaceError(
                f"sampling.macs_bins: bin {index + 1} of {count} (MACs {macs}) held no subnet in {tries:,} random "
                f"draws of space '{space.name}'; narrow sampling.macs_range or use fewer bins"
            ) from None
    return bins


def sample_path(
    space: SearchSpace, seed: int, step: int, bins: Sequence[MacsBin] = (), resolution_cap: int | None = None
) -> SubnetConfig:
    """The path trained at ``step``: uniform over the space, or over ``bins`` first and then inside the bin drawn;
    with ``resolution_cap`` (progressive learning, without bins) a resolution above it is drawn again from those up
    to it (:func:`~supernet.training.progressive.cap_resolution`)."""
    rng = random.Random(f"{seed}:{step}:path")
    if bins:
        return space.sample_within(rng, macs=bins[rng.randrange(len(bins))], max_tries=100_000)
    path = space.sample(rng)
    return cap_resolution(path, resolution_cap, rng) if resolution_cap is not None else path
