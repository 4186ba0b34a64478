"""Channel and feature-map arithmetic shared by the cost model and the torch modules."""

from __future__ import annotations

import math


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never dropping below 90% of it.

    The MobileNet/OFA rule used for expanded and squeeze-excite channel counts.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a square conv with 'same' padding ``kernel // 2``."""
    padding = kernel // 2
    return (size + 2 * padding - kernel) // stride + 1


def expanded_channels(in_channels: int, expand_ratio: float, divisor: int) -> int:
    """Hidden width of an MBConv block: ``make_divisible(round(c_in * t), divisor)``."""
    return make_divisible(round(in_channels * expand_ratio), divisor)


def spatial_channels(in_channels: int, expand_ratio: int, divisor: int, group_size: int = 1) -> int:
    """Width of an MBConv block's k x k conv: the input's for ratio 1, else :func:`expanded_channels` rounded to a
    multiple of ``lcm(divisor, group_size)`` so that groups of ``group_size`` channels tile it (``group_size`` 1, the
    depthwise case, gives :func:`expanded_channels` itself)."""
    if expand_ratio == 1:
        return in_channels
    return expanded_channels(in_channels, expand_ratio, math.lcm(divisor, group_size))


def squeeze_channels(channels: int, reduction: int, divisor: int) -> int:
    """Bottleneck width of a squeeze-excite module on ``channels`` channels."""
    return make_divisible(channels // reduction, divisor)


def window_grid(windows: int) -> tuple[int, int]:
    """Rows and columns of the window grid: 1 -> 1x1, 2 -> two halves (2x1), 4 -> 2x2."""
    grids = {1: (1, 1), 2: (2, 1), 4: (2, 2)}
    if windows not in grids:
        raise ValueError(f"windows={windows} is not supported; use one of {sorted(grids)}")
    return grids[windows]
