"""Building a latency table: every distinct block of a space timed once, then an in-network calibration per
resolution. The file is rewritten atomically after every group of blocks, so an interrupted build resumes where it
stopped. Noisy timings are re-timed before they are kept, and the table records its quality
(:mod:`nasvit.latency.table_quality`)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import random
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nasvit.errors import NasvitError
from nasvit.latency.block_timing import time_blocks, warm_up_process
from nasvit.latency.measure import (
    WIDE_SPREAD,
    LatencySettings,
    LatencyStats,
    inference_model,
    measure_models_interleaved,
    warn_if_noisy,
)
from nasvit.latency.table import GROUP_SIZE, LatencyTable, TableHeader, block_count, block_key
from nasvit.latency.table_quality import BusyChecks, TableQuality, retime_noisy
from search_space import SearchSpace, StageChoice, SubnetConfig
from search_space.plan import PartPlan, head_plan, part_output, plan_stage, stem_plan
from search_space.spec import StageSpec

logger = logging.getLogger(__name__)

CALIBRATION_RUNS = 5  # at least this many timed runs per calibration subnet: one run is too noisy to fit on
CALIBRATION_SUBNETS = 16  # random subnets each resolution's in-network calibration is fitted on


def enumerate_blocks(space: SearchSpace, resolutions: Iterable[int]) -> list[PartPlan]:
    """Every distinct block configuration ``space`` can produce at ``resolutions``, one plan per key.

    Stages are laid out with :func:`~search_space.plan.plan_stage` for every combination of their choices
    and every (width, map side) the previous part can output, so the blocks are exactly those
    :func:`~search_space.plan_subnet` produces. Order: per resolution, stem, stages in order, head.
    """
    found: dict[str, PartPlan] = {}
    for resolution in resolutions:
        check_resolution(space, resolution)
        for plan in dict.fromkeys(_resolution_blocks(space, resolution)):  # cheap dedupe before keying
            found.setdefault(block_key(plan), plan)
    return list(found.values())


def _resolution_blocks(space: SearchSpace, resolution: int) -> Iterator[PartPlan]:
    inputs = set()
    for width in space.stem.widths:
        stem = stem_plan(space, width, resolution)
        yield stem
        inputs.add(part_output(stem))
    for index, spec in enumerate(space.stages):
        outputs = set()
        for (channels, size), choice in itertools.product(sorted(inputs), _stage_choices(spec)):
            blocks = plan_stage(space, index, choice, channels, size)
            yield from blocks
            outputs.add(part_output(blocks[-1]))
        inputs = outputs
    for (channels, size), width in itertools.product(sorted(inputs), space.head.widths):
        yield head_plan(space, channels, width, size, space.num_classes)


def _stage_choices(spec: StageSpec) -> Iterator[StageChoice]:
    lists = (
        spec.widths,
        spec.depths,
        spec.kernels,
        spec.expand_ratios,
        spec.mlp_ratios,
        spec.windows,
        spec.block_codes,
    )
    return (StageChoice(*values) for values in itertools.product(*lists))


def check_resolution(space: SearchSpace, resolution: int) -> None:
    """Raise a clear error unless ``resolution`` is one of the space's input resolutions."""
    if resolution not in space.resolutions:
        raise NasvitError(
            f"resolution {resolution} is not an input resolution of space '{space.name}' ({list(space.resolutions)})"
        )


def fit_calibration(
    table: LatencyTable,
    resolution: int,
    settings: LatencySettings,
    subnets: int = CALIBRATION_SUBNETS,
    busy: BusyChecks | None = None,
) -> dict:
    """Fit how table sums map to whole-network latency at ``resolution``, on ``subnets`` random subnets.

    Blocks timed alone run with their weights hot in cache; inside a network they run a little slower (seen
    here: about 14% and 2 ms for a whole ``nasvit`` subnet at 224 px). A least-squares fit of measured
    milliseconds on (table sum, block count, 1) over subnets drawn with their own seed (not those a report
    samples) captures that; each subnet is timed at least :data:`CALIBRATION_RUNS` times. All three terms are
    kept non-negative: a network with more or slower blocks never runs faster, and nothing runs in negative time.

    Returns:
        ``{"scale", "per_block_ms", "offset_ms", "subnets", "mape"}`` (MAPE % of the fit on its subnets).

    Raises:
        NasvitError: the constrained fit leaves the table's sums out (a scale of 0): measured latency does not
            grow with them, so the timings are too noisy to calibrate on; the reason and the fix are in the message.
    """
    rng = random.Random(f"latency-calibration:{table.space.name}:{resolution}")
    cfgs = [table.space.sample(rng).replace(resolution=resolution) for _ in range(subnets)]
    steady = dataclasses.replace(
        settings, warmup=max(settings.warmup, 1), repeats=max(settings.repeats, CALIBRATION_RUNS)
    )
    stats = _time_calibration(cfgs, resolution, steady, busy)
    measured = np.array([s.median_ms for s in stats])
    features = np.array([[table.block_sum(cfg), block_count(cfg), 1.0] for cfg in cfgs])
    scale, per_block, offset = nonnegative_fit(features, measured)
    fitted = features @ np.array([scale, per_block, offset])
    if scale <= 0:
        raise NasvitError(
            f"latency calibration at {resolution} px refused: measured latency does not grow with the table's block "
            "sums (the best scale is 0); the timings are too noisy "
            f"(measured {measured.min():.2f} to {measured.max():.2f} ms). Rebuild on a quiet machine or with more "
            "--repeats; the block entries are kept, only the calibration is redone"
        )
    mape = float(np.mean(np.abs(fitted - measured) / measured) * 100)
    return {
        "scale": float(scale),
        "per_block_ms": float(per_block),
        "offset_ms": float(offset),
        "subnets": subnets,
        "mape": mape,
        "noisy": sum(s.spread > WIDE_SPREAD for s in stats),
        "worst_spread": max(s.spread for s in stats),
    }


def _time_calibration(
    cfgs: list[SubnetConfig], resolution: int, settings: LatencySettings, busy: BusyChecks | None
) -> list[LatencyStats]:
    """Timings of the calibration subnets, interleaved, the noisy ones again."""
    models = [inference_model(cfg) for cfg in cfgs]
    if busy is not None:
        busy.check(settings)
    stats = measure_models_interleaved(models, resolution, settings)
    stats = retime_noisy(models, stats, lambda subset: measure_models_interleaved(subset, resolution, settings))
    warn_if_noisy(stats, f"{resolution} px calibration subnet")
    return stats


def nonnegative_fit(features: np.ndarray, measured: np.ndarray) -> tuple[float, float, float]:
    """Least squares of (N,) ``measured`` on (N, 3) ``features`` (table sum, block count, 1) with every coefficient
    kept at or above 0: the best of the unconstrained fits on each subset of free coefficients that obeys the
    bounds (for three coefficients, an exact active-set search), so the fit never predicts a negative latency."""
    best_residual, best = math.inf, np.zeros(3)
    for size in (3, 2, 1):
        for free in map(list, itertools.combinations(range(3), size)):
            coefficients = np.zeros(3)
            coefficients[free], *_ = np.linalg.lstsq(features[:, free], measured, rcond=None)
            if (coefficients < 0).any():
                continue
            residual = float(np.sum((features @ coefficients - measured) ** 2))
            if residual < best_residual:
                best_residual, best = residual, coefficients
    return float(best[0]), float(best[1]), float(best[2])


def build_lut(
    space: SearchSpace,
    resolutions: Iterable[int],
    settings: LatencySettings,
    out_path: str | Path,
    progress: bool = True,
    retime_poor: bool = False,
    calibration_subnets: int = CALIBRATION_SUBNETS,
) -> LatencyTable:
    """Time every block of ``space`` at ``resolutions`` once, calibrate each resolution on ``calibration_subnets``
    random subnets (:func:`fit_calibration`) and write the table to ``out_path``.

    When ``out_path`` already holds a table of the same space measured with the same settings (runtime included) on
    the same device and versions, its entries are kept and only missing blocks are timed (an interrupted build
    resumes; new resolutions are added); with ``retime_poor`` a poor finished table is timed again from scratch.

    Blocks are timed in a seeded random order, :data:`GROUP_SIZE` at a time in interleaved rounds, so a slow
    drift of a shared machine spreads as noise over all stages instead of biasing whichever stage was timed
    during it (seen here: two sequential builds disagreed by 25-30% on every block of one stage). The file is
    rewritten atomically after each group and at the end.

    Raises:
        NasvitError: a resolution the space does not have, an existing table made differently, or an ``out_path``
            that is a directory.
        OSError: ``out_path`` cannot be written (raised before anything is timed).
    """
    out_path = Path(out_path)
    if out_path.is_dir():
        raise NasvitError(f"--out {out_path} is a directory; pass a file path such as {out_path / 'lut.json'}")
    resolutions = tuple(resolutions)
    plans = enumerate_blocks(space, resolutions)
    table = _start_table(space, resolutions, settings, out_path, retime_poor)
    table.save(out_path)  # fails now, not after minutes of timing, where out_path cannot be written
    todo = [plan for plan in plans if block_key(plan) not in table.entries]
    random.Random(f"latency-table:{space.name}").shuffle(todo)  # drift of the machine must not follow the stages
    busy = BusyChecks()
    _time_missing_blocks(table, todo, progress, busy)
    calibrate = [r for r in resolutions if todo or r not in table.calibration]
    for resolution in calibrate:
        table.calibration.pop(resolution, None)  # a refused calibration must not leave the old one in use
        table.calibration[resolution] = fit_calibration(
            table, resolution, table.settings, calibration_subnets, busy=busy
        )
        table.save(out_path)
    if todo or calibrate or table.quality is None:
        table.quality = TableQuality.of(table.spreads, table.calibration, busy.share)
        log = logger.warning if table.quality.poor else logger.info
        log("latency table %s: %s", out_path, table.quality.describe())
    table.save(out_path)
    return table


def _start_table(
    space: SearchSpace, resolutions: tuple[int, ...], settings: LatencySettings, out_path: Path, retime_poor: bool
) -> LatencyTable:
    """A new table measured here with ``settings``, or the one at ``out_path`` to resume (with ``resolutions`` added;
    with ``retime_poor``, a new one in place of a table recorded as poor).

    Raises:
        NasvitError: ``out_path`` holds a table measured with other settings, on another device or torch.
    """
    header = TableHeader.current(space, resolutions, settings)
    if not out_path.exists():
        return LatencyTable(space, header, {}, out_path, {})
    existing = LatencyTable.load(out_path, space)
    differences = existing.header.differences(header)
    if differences:
        raise NasvitError(
            f"{out_path} holds a table measured differently ({'; '.join(differences)}); "
            "rerun with the same settings to resume it, or write to another --out file"
        )
    if retime_poor and existing.quality is not None and existing.quality.poor:
        logger.warning("timing the poor latency table %s again from scratch", out_path)
        return LatencyTable(space, header, {}, out_path, {})
    header = dataclasses.replace(header, resolutions=tuple(sorted({*existing.resolutions, *resolutions})))
    return LatencyTable(
        space, header, existing.entries, out_path, existing.calibration, existing.spreads, existing.quality
    )


def _time_missing_blocks(table: LatencyTable, todo: list[PartPlan], progress: bool, busy: BusyChecks) -> None:
    """Time ``todo`` :data:`GROUP_SIZE` blocks at a time into ``table`` (noisy ones again), saving it after each
    group."""
    if not todo:
        return
    space, settings = table.space, table.settings
    warm_up_process(space, max(table.resolutions), settings)
    with tqdm(total=len(todo), desc="latency table", unit="block", disable=not progress) as bar:
        for start in range(0, len(todo), GROUP_SIZE):
            chunk = todo[start : start + GROUP_SIZE]
            busy.check(settings)
            stats = time_blocks(space, chunk, settings)
            stats = retime_noisy(chunk, stats, lambda plans: time_blocks(space, plans, settings))
            for plan, timing in zip(chunk, stats, strict=True):
                table.entries[block_key(plan)] = timing.median_ms
                table.spreads[block_key(plan)] = timing.spread
            table.save(table.path)
            bar.update(len(chunk))
