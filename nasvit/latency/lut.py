"""Per-block latency lookup tables: time every distinct block of a space once, predict a subnet by summing.

A *block* is one entry of a :class:`~search_space.SubnetPlan`: the stem, an MBConv or transformer block, or
the head. Its plan dataclass holds every shape that matters for its run time (channels, kernel, stride,
expand, SE, map side, windows, ...), so the plan *is* the identity of a table entry. The only field left
out is ``TransformerPlan.scale_key``: it names which switchable-scale vector a block uses, which changes
weights, not work. Keys are stable strings, ``ClassName(field=value, ...)`` with fields sorted by name.

The table file (JSON) records the space (name and a fingerprint of its definition), the resolutions timed,
the measurement settings and group size, the device, the torch version, the in-network calibration per
resolution, and ``entries`` (key -> milliseconds). It is rewritten atomically after every group of blocks
while building, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import platform
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from nasvit.atomic_json import write_json_atomic
from nasvit.errors import NasvitError
from nasvit.latency.measure import (
    LatencySettings,
    inference_model,
    measure_models_interleaved,
    measure_module_latency,
    measure_modules_interleaved,
    warn_if_noisy,
)
from search_space import SearchSpace, StageChoice, SubnetConfig, space_fingerprint
from search_space.arithmetic import conv_out_size
from search_space.plan import BlockPlan, HeadPlan, MBConvPlan, StemPlan, block_out_size, plan_stage
from search_space.spec import StageSpec
from supernet import optimize_for_inference
from supernet.builders import build_head, build_stem
from supernet.init import init_weights
from supernet.ops import StaticOps
from supernet.static_model import _build_block

TABLE_FORMAT_PREFIX = "nasvit-latency-table/"
TABLE_FORMAT = TABLE_FORMAT_PREFIX + "2"  # 2: blocks timed in their inference form, in interleaved groups
GROUP_SIZE = 24  # blocks timed together in interleaved rounds; the table file is rewritten after each group
CALIBRATION_RUNS = 5  # at least this many timed runs per calibration subnet: one run is too noisy to fit on
UNTIMED_FIELDS = frozenset({"scale_key"})  # plan fields that do not change the work a block does

AnyPlan = StemPlan | BlockPlan | HeadPlan


# ------------------------------------------------------------------------------------------------ keys
def block_key(plan: AnyPlan) -> str:
    """Stable table key of a block: ``MBConvPlan(expand=True, in_channels=16, ...)``, fields sorted by name."""
    fields = sorted(f.name for f in dataclasses.fields(plan) if f.name not in UNTIMED_FIELDS)
    return f"{type(plan).__name__}({', '.join(f'{name}={getattr(plan, name)}' for name in fields)})"


def enumerate_blocks(space: SearchSpace, resolutions: Iterable[int]) -> list[AnyPlan]:
    """Every distinct block configuration ``space`` can produce at ``resolutions``, one plan per key.

    Stages are laid out with :func:`~search_space.plan.plan_stage` for every combination of their choices
    and every (width, map side) the previous part can output, so the blocks are exactly those
    :func:`~search_space.plan_subnet` produces. Order: per resolution, stem, stages in order, head.
    """
    found: dict[str, AnyPlan] = {}
    for resolution in resolutions:
        check_resolution(space, resolution)
        for plan in dict.fromkeys(_resolution_blocks(space, resolution)):  # cheap dedupe before keying
            found.setdefault(block_key(plan), plan)
    return list(found.values())


def _resolution_blocks(space: SearchSpace, resolution: int) -> Iterator[AnyPlan]:
    stem_size = conv_out_size(resolution, space.stem.kernel, space.stem.stride)
    inputs = set()
    for width in space.stem.widths:
        yield _stem_plan(space, width, resolution)
        inputs.add((width, stem_size))
    for index, spec in enumerate(space.stages):
        outputs = set()
        for (channels, size), choice in itertools.product(sorted(inputs), _stage_choices(spec)):
            blocks = plan_stage(space, index, choice, channels, size)
            yield from blocks
            outputs.add((choice.width, block_out_size(blocks[-1])))
        inputs = outputs
    for (channels, size), width in itertools.product(sorted(inputs), space.head.widths):
        yield _head_plan(space, channels, width, size)


def _stage_choices(spec: StageSpec) -> Iterator[StageChoice]:
    lists = (spec.widths, spec.depths, spec.kernels, spec.expand_ratios, spec.mlp_ratios, spec.windows)
    return (StageChoice(*values) for values in itertools.product(*lists))


def _stem_plan(space: SearchSpace, width: int, resolution: int) -> StemPlan:
    out_size = conv_out_size(resolution, space.stem.kernel, space.stem.stride)
    return StemPlan(space.in_channels, width, space.stem.kernel, space.stem.stride, resolution, out_size)


def _head_plan(space: SearchSpace, channels: int, width: int, size: int) -> HeadPlan:
    return HeadPlan(channels, channels * space.head.expand_ratio, width, space.num_classes, size)


def check_resolution(space: SearchSpace, resolution: int) -> None:
    """Raise a clear error unless ``resolution`` is one of the space's input resolutions."""
    if resolution not in space.resolutions:
        raise NasvitError(
            f"resolution {resolution} is not an input resolution of space '{space.name}' ({list(space.resolutions)})"
        )


# ---------------------------------------------------------------------------------------------- timing
def block_module(space: SearchSpace, plan: AnyPlan) -> nn.Module:
    """The inference form (:func:`~supernet.optimize_for_inference`) of :func:`static_block`, the module a
    table entry times."""
    return optimize_for_inference(static_block(space, plan))


def static_block(space: SearchSpace, plan: AnyPlan) -> nn.Module:
    """The static (trainable-form) module of one block, initialised as :class:`~supernet.NASViT` initialises it."""
    if isinstance(plan, StemPlan):
        module = build_stem(StaticOps, space, plan.out_channels)
    elif isinstance(plan, HeadPlan):
        module = build_head(StaticOps, space, plan.in_channels, plan.width, plan.num_classes)
    else:
        module = _build_block(space, plan)
    init_weights(module)
    return module


def block_input_shape(plan: AnyPlan, batch_size: int) -> tuple[int, int, int, int]:
    """Shape (B, C, H, W) of the input of ``plan``'s module."""
    if isinstance(plan, (StemPlan, MBConvPlan)):
        return (batch_size, plan.in_channels, plan.in_size, plan.in_size)
    if isinstance(plan, HeadPlan):
        return (batch_size, plan.in_channels, plan.size, plan.size)
    return (batch_size, plan.channels, plan.size, plan.size)


def block_count(cfg: SubnetConfig) -> int:
    """Modules a subnet's forward pass runs: the stem, every block, the head."""
    return 2 + sum(choice.depth for choice in cfg.stages)


def calibrate(table: LatencyTable, resolution: int, settings: LatencySettings, subnets: int = 16) -> dict:
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
    stats = measure_models_interleaved([inference_model(cfg) for cfg in cfgs], resolution, steady)
    warn_if_noisy(stats, f"{resolution} px calibration subnet")
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
    }


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


def warm_up_process(space: SearchSpace, resolution: int, settings: LatencySettings) -> None:
    """Run the largest subnet a few times before timing blocks.

    A fresh process runs convolutions up to three times slower until a whole network has been through it
    (seen here: an MBConv block took 5.7 ms in a fresh process and 1.9 ms after one forward of the largest
    subnet, which is also what it takes inside the network), so blocks timed first would be overestimated.
    """
    model = inference_model(space.max_subnet().replace(resolution=resolution))
    measure_module_latency(
        model,
        (settings.batch_size, space.in_channels, resolution, resolution),
        dataclasses.replace(settings, warmup=3, repeats=3),
    )


def time_blocks(space: SearchSpace, plans: list[AnyPlan], settings: LatencySettings) -> list[float]:
    """Median milliseconds of each block of ``plans`` under ``settings``, timed in interleaved rounds
    (:func:`~nasvit.latency.measure_modules_interleaved`). Blocks after the stem get channels-last inputs, as
    they do inside an inference-form network."""
    shapes = [block_input_shape(plan, settings.batch_size) for plan in plans]
    layouts = [torch.contiguous_format if isinstance(p, StemPlan) else torch.channels_last for p in plans]
    stats = measure_modules_interleaved([block_module(space, plan) for plan in plans], shapes, settings, layouts)
    return [s.median_ms for s in stats]


# ----------------------------------------------------------------------------------------------- table
@dataclass(frozen=True)
class TableHeader:
    """What a table was measured for and with; two tables can share entries only if all but
    ``resolutions`` agree.

    Attributes:
        space, space_fingerprint: name of the space and a hash of its definition (description excluded).
        resolutions: input resolutions whose blocks the table holds.
        settings: measurement settings, ``threads`` resolved to the thread count actually used.
        group_size: blocks timed together in interleaved rounds (:data:`GROUP_SIZE`).
        device_name: CPU model or GPU name.
        torch: torch version.
    """

    space: str
    space_fingerprint: str
    resolutions: tuple[int, ...]
    settings: LatencySettings
    group_size: int
    device_name: str
    torch: str

    @classmethod
    def current(cls, space: SearchSpace, resolutions: Iterable[int], settings: LatencySettings) -> TableHeader:
        """The header of a table measured here, now, with ``settings``."""
        threads = settings.threads if settings.threads is not None else torch.get_num_threads()
        return cls(
            space=space.name,
            space_fingerprint=space_fingerprint(space),
            resolutions=tuple(sorted(set(resolutions))),
            settings=dataclasses.replace(settings, threads=threads),
            group_size=GROUP_SIZE,
            device_name=device_name(settings.device),
            torch=torch.__version__,
        )

    def to_dict(self) -> dict:
        return {"format": TABLE_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> TableHeader:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {name: data[name] for name in fields}
        values["settings"] = LatencySettings(**values["settings"])
        values["resolutions"] = tuple(values["resolutions"])
        return cls(**values)

    def differences(self, other: TableHeader) -> list[str]:
        """``name: mine != other's`` for every field but ``resolutions`` that differs."""
        mine = {**dataclasses.asdict(self), **dataclasses.asdict(self.settings)}
        theirs = {**dataclasses.asdict(other), **dataclasses.asdict(other.settings)}
        names = [n for n in mine if n not in ("resolutions", "settings")]
        return [f"{n}: {mine[n]!r} != {theirs[n]!r}" for n in names if mine[n] != theirs[n]]


def device_name(device: str) -> str:
    """CPU model (from /proc/cpuinfo where there is one) or CUDA device name."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


class LatencyTable:
    """Milliseconds of every block of a space on one device; :meth:`predict` sums a subnet's blocks.

    Attributes:
        space: the space the table belongs to.
        header: what it was measured for and with.
        entries: block key -> milliseconds.
        path: the file it was loaded from or is saved to (named in error messages).
    """

    def __init__(
        self,
        space: SearchSpace,
        header: TableHeader,
        entries: dict[str, float],
        path: Path | None = None,
        calibration: dict[int, dict[str, float]] | None = None,
    ):
        self.space, self.header, self.entries, self.path = space, header, entries, path
        self.calibration = calibration or {}  # resolution -> {"scale", "per_block_ms", "offset_ms", ...}
        self._parts: dict[tuple, tuple[float, int]] = {}  # memo: part of a subnet -> (ms, output side)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def resolutions(self) -> tuple[int, ...]:
        return self.header.resolutions

    @property
    def settings(self) -> LatencySettings:
        return self.header.settings

    # ------------------------------------------------------------------------------------------ files
    @classmethod
    def load(cls, path: str | Path, space: SearchSpace) -> LatencyTable:
        """Read a table written by :func:`build_lut` and check that it was made for ``space``.

        Raises:
            NasvitError: no such file, not a latency table, a table written by an older nasvit, or a table of
                another space (or of an older definition of this one).
        """
        path = Path(path)
        if not path.is_file():
            raise NasvitError(f"latency table {path} does not exist; make it with: nasvit latency build-lut")
        try:
            data = json.loads(path.read_text())
            found = data.get("format")
            if isinstance(found, str) and found.startswith(TABLE_FORMAT_PREFIX) and found != TABLE_FORMAT:
                raise NasvitError(
                    f"latency table {path} has format {found!r}, written by another version of nasvit (this one "
                    f"writes {TABLE_FORMAT!r}: blocks timed in their inference form); its entries cannot be reused. "
                    f"Rebuild it: nasvit latency build-lut --space {data.get('space', 'SPACE')} --out NEW_FILE "
                    "(or delete the old file first)"
                )
            if found != TABLE_FORMAT:
                raise ValueError(f"format is {data.get('format')!r}, expected {TABLE_FORMAT!r}")
            header = TableHeader.from_dict(data)
            entries = {str(k): float(v) for k, v in data["entries"].items()}
            calibration = {int(r): dict(c) for r, c in data.get("calibration", {}).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise NasvitError(f"{path} is not a latency table from nasvit latency build-lut ({error})") from None
        if header.space != space.name:
            raise NasvitError(
                f"latency table {path} was built for space '{header.space}', not '{space.name}'; "
                f"build one with: nasvit latency build-lut --space {space.name} --out FILE"
            )
        if header.space_fingerprint != space_fingerprint(space):
            raise NasvitError(
                f"latency table {path} was built for another definition of space '{space.name}' (its YAML "
                "changed since); rebuild it with nasvit latency build-lut"
            )
        return cls(space, header, entries, path, calibration)

    def save(self, path: str | Path) -> None:
        """Write the table to ``path`` atomically (a temporary file, then a rename)."""
        payload = {**self.header.to_dict(), "calibration": self.calibration, "entries": self.entries}
        self.path = write_json_atomic(path, payload, indent=1)

    # ------------------------------------------------------------------------------------- prediction
    def block_ms(self, plan: AnyPlan) -> float:
        """Table entry of one block.

        Raises:
            NasvitError: the table has no entry for it (names the block and the command that adds it).
        """
        key = block_key(plan)
        if key not in self.entries:
            raise NasvitError(
                f"latency table {self.path or '(unsaved)'} has no entry for {key} (resolutions in the table: "
                f"{list(self.resolutions)}); add the subnet's resolution with: nasvit latency build-lut "
                f"--space {self.space.name} --out {self.path or 'FILE'} --resolutions RESOLUTION"
            )
        return self.entries[key]

    def predict(self, cfg: SubnetConfig) -> float:
        """Predicted milliseconds of ``cfg``: :meth:`block_sum`, corrected by the in-network calibration of its
        resolution (``scale * sum + per_block_ms * blocks + offset_ms``).

        Raises:
            NasvitError: the table has no calibration at ``cfg``'s resolution (it was not built for it, or its
                calibration was refused), so it cannot say how its block sums map to a network's latency.
        """
        total = self.block_sum(cfg)
        fit = self.calibration.get(cfg.resolution)
        if fit is None:
            raise NasvitError(
                f"latency table {self.path} is not calibrated for {cfg.resolution} px (it has "
                f"{sorted(self.calibration) or 'no calibration'}); add it with: nasvit latency build-lut --space "
                f"{self.space.name} --out {self.path} --resolutions {cfg.resolution}"
            )
        return fit["scale"] * total + fit["per_block_ms"] * block_count(cfg) + fit["offset_ms"]

    def block_sum(self, cfg: SubnetConfig) -> float:
        """The sum of the entries of the stem, every block and the head of ``plan_subnet(cfg)``, memoised per
        (part, input width, choice, input side)."""
        if cfg.space_name != self.space.name:
            raise NasvitError(f"subnet of space '{cfg.space_name}' given to a latency table of '{self.space.name}'")
        total, size = self._stem_part(cfg.stem_width, cfg.resolution)
        channels = cfg.stem_width
        for index, choice in enumerate(cfg.stages):
            ms, size = self._stage_part(index, choice, channels, size)
            total, channels = total + ms, choice.width
        return total + self._head_part(channels, cfg.head_width, size)

    def _stem_part(self, width: int, resolution: int) -> tuple[float, int]:
        key = ("stem", width, resolution)
        if key not in self._parts:
            plan = _stem_plan(self.space, width, resolution)
            self._parts[key] = (self.block_ms(plan), plan.out_size)
        return self._parts[key]

    def _stage_part(self, index: int, choice: StageChoice, channels: int, size: int) -> tuple[float, int]:
        key = (index, choice, channels, size)
        if key not in self._parts:
            blocks = plan_stage(self.space, index, choice, channels, size)
            self._parts[key] = (sum(self.block_ms(b) for b in blocks), block_out_size(blocks[-1]))
        return self._parts[key]

    def _head_part(self, channels: int, width: int, size: int) -> float:
        key = ("head", channels, width, size)
        if key not in self._parts:
            self._parts[key] = (self.block_ms(_head_plan(self.space, channels, width, size)), size)
        return self._parts[key][0]


def build_lut(
    space: SearchSpace,
    resolutions: Iterable[int],
    settings: LatencySettings,
    out_path: str | Path,
    progress: bool = True,
) -> LatencyTable:
    """Time every block of ``space`` at ``resolutions`` once and write the table to ``out_path``.

    When ``out_path`` already holds a table of the same space measured with the same settings on the same
    device and torch version, its entries are kept and only missing blocks are timed (an interrupted
    build resumes; new resolutions are added).

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
    header = TableHeader.current(space, resolutions, settings)
    entries: dict[str, float] = {}
    calibration: dict[int, dict[str, float]] = {}
    if out_path.exists():
        existing = LatencyTable.load(out_path, space)
        differences = existing.header.differences(header)
        if differences:
            raise NasvitError(
                f"{out_path} holds a table measured differently ({'; '.join(differences)}); "
                "rerun with the same settings to resume it, or write to another --out file"
            )
        entries, calibration = existing.entries, existing.calibration
        header = dataclasses.replace(header, resolutions=tuple(sorted({*existing.resolutions, *resolutions})))
    table = LatencyTable(space, header, entries, out_path, calibration)
    table.save(out_path)  # fails now, not after minutes of timing, where out_path cannot be written
    todo = [plan for plan in plans if block_key(plan) not in entries]
    random.Random(f"latency-table:{space.name}").shuffle(todo)  # drift of the machine must not follow the stages
    if todo:
        warm_up_process(space, max(resolutions), header.settings)
    with tqdm(total=len(todo), desc="latency table", unit="block", disable=not progress) as bar:
        for start in range(0, len(todo), GROUP_SIZE):
            chunk = todo[start : start + GROUP_SIZE]
            entries.update(zip(map(block_key, chunk), time_blocks(space, chunk, header.settings), strict=True))
            table.save(out_path)
            bar.update(len(chunk))
    for resolution in resolutions:
        if todo or resolution not in table.calibration:
            table.calibration.pop(resolution, None)  # a refused calibration must not leave the old one in use
            table.calibration[resolution] = calibrate(table, resolution, header.settings)
            table.save(out_path)
    table.save(out_path)
    return table
