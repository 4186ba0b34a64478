"""How far a latency table can be trusted: noisy timings are re-timed before they are kept, and what is left of the
noise (with the calibration's fit error and how busy the machine was) is recorded in the table as its quality.

A table built while other programs compete for the cores reads slow and noisy; a search on it then sizes its
subnets for a machine that does not exist. The build cannot make a busy machine quiet, but it can retry the
timings that spread widely, and it can say what it got: :class:`TableQuality` is written into the file, and every
load of a table of poor quality logs one warning naming the reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from nasvit.latency.measure import WIDE_SPREAD, LatencySettings, LatencyStats, busy_machine_warning

logger = logging.getLogger(__name__)
T = TypeVar("T")

RETIME_ROUNDS = 2  # extra timings of a block or calibration subnet whose runs spread over WIDE_SPREAD
# Thresholds set from a quiet build of the demo space on the project's 2-core machine, whose sub-millisecond
# blocks jitter most: 14% noisy block timings left, 8% noisy calibration subnets, fit errors 11-15%.
POOR_NOISY_SHARE = 0.25  # more noisy timings than this share (after re-timing) make a table poor
POOR_MAPE = 25.0  # a calibration fit error (% of measured latency) above this makes a table poor
POOR_BUSY_SHARE = 0.25  # a table is poor when the machine was busy at more than this share of the build's checks


def retime_noisy(
    items: Sequence[T],
    stats: Sequence[LatencyStats],
    measure: Callable[[list[T]], list[LatencyStats]],
    rounds: int = RETIME_ROUNDS,
) -> list[LatencyStats]:
    """``stats`` with each timing that spreads over :data:`WIDE_SPREAD` of its median timed again (the noisy items
    together, interleaved), up to ``rounds`` times; of two timings of the same item the steadier one (smaller
    spread) is kept.

    Args:
        items: what was timed (blocks, models).
        stats: their first timings, in the same order.
        measure: times a list of items (all of them together, interleaved).
        rounds: the most re-timings of one item.
    """
    kept = list(stats)
    for _ in range(rounds):
        noisy = [index for index, s in enumerate(kept) if s.spread > WIDE_SPREAD]
        if not noisy:
            break
        logger.info("re-timing %d of %d timings that spread over %.0f%%", len(noisy), len(kept), 100 * WIDE_SPREAD)
        for index, again in zip(noisy, measure([items[i] for i in noisy]), strict=True):
            if again.spread < kept[index].spread:
                kept[index] = again
    return kept


class BusyChecks:
    """Whether the machine was busy (:func:`~nasvit.latency.measure.busy_machine_warning`), checked before each group
    of timings of a build."""

    def __init__(self) -> None:
        self.checks: list[bool] = []

    def check(self, settings: LatencySettings) -> None:
        self.checks.append(busy_machine_warning(settings) is not None)

    @property
    def share(self) -> float:
        """Share of the checks that found the machine busy (0 before any check)."""
        return sum(self.checks) / len(self.checks) if self.checks else 0.0


@dataclass(frozen=True)
class TableQuality:
    """What is left of the noise in a latency table after re-timing.

    Attributes:
        noisy_blocks: block entries whose runs still spread over :data:`WIDE_SPREAD` of their median.
        blocks: block entries whose spread is known.
        noisy_calibration: calibration subnets whose runs still spread over :data:`WIDE_SPREAD`.
        calibration_subnets: calibration subnets timed, all resolutions together.
        worst_spread: the largest (p90 - p10) / median of any entry or calibration subnet.
        worst_mape: the largest calibration fit error over the resolutions (% of measured latency).
        busy_share: share of the build's checks that found other processes on the cores the timing needs.
    """

    noisy_blocks: int
    blocks: int
    noisy_calibration: int
    calibration_subnets: int
    worst_spread: float
    worst_mape: float
    busy_share: float

    @property
    def reasons(self) -> list[str]:
        """Why the table is poor (empty when it is not)."""
        reasons = []
        if self.blocks and self.noisy_blocks / self.blocks > POOR_NOISY_SHARE:
            reasons.append(f"{self.noisy_blocks} of {self.blocks} block timings are noisy")
        if self.calibration_subnets and self.noisy_calibration / self.calibration_subnets > POOR_NOISY_SHARE:
            reasons.append(f"{self.noisy_calibration} of {self.calibration_subnets} calibration timings are noisy")
        if self.worst_mape > POOR_MAPE:
            reasons.append(f"the calibration misses its own subnets by {self.worst_mape:.1f}% on average")
        if self.busy_share > POOR_BUSY_SHARE:
            reasons.append(f"the machine was busy during {100 * self.busy_share:.0f}% of the build")
        return reasons

    @property
    def poor(self) -> bool:
        return bool(self.reasons)

    def to_dict(self) -> dict:
        return {**asdict(self), "poor": self.poor}

    @classmethod
    def from_dict(cls, data: dict) -> TableQuality:
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})

    @classmethod
    def of(cls, spreads: dict[str, float], calibration: dict[int, dict], busy_share: float) -> TableQuality:
        """The quality of a table with entry ``spreads`` and ``calibration`` records (each with ``noisy``,
        ``worst_spread``, ``subnets`` and ``mape``), built with ``busy_share`` of its checks busy."""
        fits = list(calibration.values())
        return cls(
            noisy_blocks=sum(spread > WIDE_SPREAD for spread in spreads.values()),
            blocks=len(spreads),
            noisy_calibration=sum(fit.get("noisy", 0) for fit in fits),
            calibration_subnets=sum(fit["subnets"] for fit in fits),
            worst_spread=max([*spreads.values(), *(fit.get("worst_spread", 0.0) for fit in fits)], default=0.0),
            worst_mape=max((fit["mape"] for fit in fits), default=0.0),
            busy_share=busy_share,
        )

    def figures(self) -> str:
        """``'12/156 noisy blocks, 2/64 noisy calibration subnets, worst spread 80%, fit error 9.1%, busy 0% ...'``."""
        return (
            f"{self.noisy_blocks}/{self.blocks} noisy blocks, {self.noisy_calibration}/{self.calibration_subnets} "
            f"noisy calibration subnets, worst spread {100 * self.worst_spread:.0f}%, fit error "
            f"{self.worst_mape:.1f}%, busy {100 * self.busy_share:.0f}% of the build"
        )

    def describe(self) -> str:
        """``'poor (12 of 156 block timings are noisy): <figures>'`` or ``'good: <figures>'``."""
        return f"poor ({'; '.join(self.reasons)}): {self.figures()}" if self.poor else f"good: {self.figures()}"
