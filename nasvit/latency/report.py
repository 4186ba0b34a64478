"""How well cheap predictors track measured latency: MACs, parameters, activations and a lookup table.

:func:`latency_report` times random subnets of a space and scores each predictor against the measurements
with Pearson's r, Spearman's rho and the mean absolute percentage error (MAPE, in percent).

MAPE needs predictions in milliseconds. A cost count (MACs, params, activations) is not one, so it is mapped
to milliseconds by the least-squares line ``latency ~ a * cost + b`` fitted *on the same samples*: its MAPE
is an in-sample, best-case figure for that predictor. The table already predicts milliseconds: its ``mape``
is of its own prediction (the sum of block entries, with the in-network calibration the table made at build
time on other subnets), with no fit on these samples; ``mape_fit`` is of a line fitted here, for a
like-for-like comparison with the cost predictors. Subnets are timed in interleaved rounds.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
from tqdm import tqdm

from nasvit.errors import NasvitError
from nasvit.latency.measure import LatencySettings, inference_model, measure_models_interleaved, warn_if_noisy
from nasvit.latency.table import LatencyTable, device_name
from nasvit.latency.table_build import check_resolution
from search_space import COST_METRICS, SearchSpace

PREDICTORS = (*COST_METRICS, "lut")
DEFAULT_RESOLUTION = 224


# ------------------------------------------------------------------------------------------- statistics
def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of two (N,) arrays; NaN when either is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx, dy = x - x.mean(), y - y.mean()
    denominator = math.sqrt(float(dx @ dx) * float(dy @ dy))
    return float(dx @ dy) / denominator if denominator > 0 else math.nan


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of the (N,) values of ``x``; tied values share the mean of their ranks."""
    _, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each group of equal values
    return (last - (counts - 1) / 2)[inverse]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation of two (N,) arrays: Pearson's r of their average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def mape(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute percentage error of (N,) predictions against (N,) positive actual values, in percent."""
    predicted, actual = np.asarray(predicted, dtype=float), np.asarray(actual, dtype=float)
    return float(100 * np.mean(np.abs(predicted - actual) / actual))


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``(a, b)`` of ``y ~ a * x + b`` over (N,) arrays."""
    a, b = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(a), float(b)


def score(values: np.ndarray, measured: np.ndarray, raw_ms: bool) -> dict[str, float]:
    """Scores of one predictor: ``pearson``, ``spearman``, ``mape``, ``mape_fit``, ``fit_a``, ``fit_b``.

    ``mape`` is of the raw values when they are milliseconds already (``raw_ms``), else of the fitted line.
    """
    a, b = linear_fit(values, measured)
    fitted = mape(a * np.asarray(values, dtype=float) + b, measured)
    return {
        "pearson": pearson(values, measured),
        "spearman": spearman(values, measured),
        "mape": mape(values, measured) if raw_ms else fitted,
        "mape_fit": fitted,
        "fit_a": a,
        "fit_b": b,
    }


# ----------------------------------------------------------------------------------------------- report
def default_resolution(lut: LatencyTable) -> int:
    """224 when the table has it, else the table's largest resolution."""
    return DEFAULT_RESOLUTION if DEFAULT_RESOLUTION in lut.resolutions else max(lut.resolutions)


def latency_report(
    space: SearchSpace,
    lut: LatencyTable,
    samples: int,
    settings: LatencySettings,
    resolution: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Measure ``samples`` random subnets at one resolution and score every predictor against them.

    Args:
        space: the space to sample from (seeded by ``seed``); every subnet is forced to ``resolution``.
        lut: a latency table of ``space`` holding ``resolution``; ``samples``: number of subnets, at least 3.
        settings: how the inference form of each subnet (:func:`~nasvit.latency.inference_model`) is timed.
        resolution: input side; None: :func:`default_resolution`.

    Returns:
        ``{"space", "resolution", "samples", "seed", "settings", "device_name" (where it was measured),
        "predictors", "subnets", "measured_ms", "measured_spread", "values"}``: ``predictors`` maps ``macs``,
        ``params``, ``activations``, ``lut`` to their :func:`score`; ``subnets``, ``measured_ms`` (medians),
        ``measured_spread`` ((p90 - p10) / median of each subnet's runs) and ``values[predictor]`` are per sample.

    Raises:
        NasvitError: fewer than 3 samples, or a resolution the space or the table lacks (checked before
            anything is timed).
    """
    resolution = _checked_request(space, lut, samples, resolution)
    rng = random.Random(seed)
    cfgs = [space.sample(rng).replace(resolution=resolution) for _ in range(samples)]
    values = {metric: [space.cost(cfg).get(metric) for cfg in cfgs] for metric in COST_METRICS}
    values["lut"] = [lut.predict(cfg) for cfg in cfgs]
    models = [inference_model(cfg) for cfg in tqdm(cfgs, desc="building subnets", unit="subnet", disable=not progress)]
    stats = measure_models_interleaved(models, resolution, settings)
    warn_if_noisy(stats, "subnet")
    measured = [s.median_ms for s in stats]
    scores = {name: score(np.array(values[name]), np.array(measured), raw_ms=name == "lut") for name in PREDICTORS}
    return {
        "space": space.name,
        "resolution": resolution,
        "samples": samples,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "device_name": device_name(settings.device),
        "predictors": scores,
        "subnets": [str(cfg) for cfg in cfgs],
        "measured_ms": measured,
        "measured_spread": [s.spread for s in stats],
        "values": values,
    }


def _checked_request(space: SearchSpace, lut: LatencyTable, samples: int, resolution: int | None) -> int:
    """The resolution a report measures at; raises NasvitError for fewer than 3 samples or a resolution the space
    or the table lacks."""
    if samples < 3:
        raise NasvitError(f"a latency report needs at least 3 samples to correlate, got {samples}")
    resolution = default_resolution(lut) if resolution is None else resolution
    check_resolution(space, resolution)
    if resolution not in lut.resolutions:
        raise NasvitError(
            f"latency table {lut.path} has resolutions {list(lut.resolutions)}, not {resolution}; add it with: "
            f"nasvit latency build-lut --space {space.name} --out {lut.path} --resolutions {resolution}"
        )
    return resolution


def plot_report(report: dict, path: str) -> None:
    """Save a 2x2 scatter PNG: measured ms (y) against each predictor's ms (x; the fitted line for the cost
    counts, the table's own prediction for ``lut``), with the y = x diagonal and r / rho / MAPE in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = np.array(report["measured_ms"])
    figure, axes = plt.subplots(2, 2, figsize=(10, 9))
    for axis, name in zip(axes.flat, PREDICTORS):
        stats = report["predictors"][name]
        values = np.array(report["values"][name], dtype=float)
        predicted = values if name == "lut" else stats["fit_a"] * values + stats["fit_b"]
        low, high = min(predicted.min(), measured.min()), max(predicted.max(), measured.max())
        axis.plot([low, high], [low, high], "--", color="grey", linewidth=1)
        axis.scatter(predicted, measured, s=14)
        how = "table prediction" if name == "lut" else "linear fit"
        axis.set_title(
            f"{name} ({how}): r={stats['pearson']:.3f} rho={stats['spearman']:.3f} MAPE={stats['mape']:.1f}%",
            fontsize=9,
        )
        axis.set_xlabel("predicted latency (ms)")
        axis.set_ylabel("measured latency (ms)")
    figure.suptitle(
        f"{report['space']} at {report['resolution']} px, {report['samples']} subnets, "
        f"{report['settings']['runtime']}, batch {report['settings']['batch_size']}, "
        f"{report['settings']['threads']} threads, {report['device_name']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
