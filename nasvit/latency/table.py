"""Per-block latency lookup tables: the table file, its keys, and predicting a subnet by summing its blocks.

A *block* is one entry of a :class:`~search_space.SubnetPlan`: the stem, an MBConv or transformer block, or
the head. Its plan dataclass holds every shape that matters for its run time (channels, kernel, stride,
expand, SE, map side, windows, ...), so the plan *is* the identity of a table entry. The only field left
out is ``TransformerPlan.scale_key``: it names which switchable-scale vector a block uses, which changes
weights, not work. Keys are stable strings, ``ClassName(field=value, ...)`` with fields sorted by name.

The table file (JSON) records the space (name and a fingerprint of its definition), the resolutions timed,
the measurement settings and group size, the device, the torch version, the in-network calibration per
resolution, ``entries`` (key -> milliseconds), ``spreads`` (key -> (p90 - p10) / median of the entry's runs) and
``quality`` (:class:`~nasvit.latency.table_quality.TableQuality`). :mod:`nasvit.latency.table_build` measures and
writes it. Loading a table of poor quality logs one warning per file and process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from nasvit.errors import NasvitError
from nasvit.latency.onnx_runtime import onnxruntime_version
from nasvit.latency.settings import LatencySettings
from nasvit.latency.table_quality import TableQuality
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import SearchSpace, SubnetConfig, space_fingerprint
from search_space.plan import PartPlan, walk_parts

logger = logging.getLogger(__name__)

TABLE_FORMAT_PREFIX = "nasvit-latency-table/"
TABLE_FORMAT = TABLE_FORMAT_PREFIX + "2"  # 2: blocks timed in their inference form, in interleaved groups
GROUP_SIZE = 24  # blocks timed together in interleaved rounds; the table file is rewritten after each group
UNTIMED_FIELDS = frozenset({"scale_key"})  # plan fields that do not change the work a block does
DEPTHWISE_KEY_FIELDS = {"group_size": 1}  # left out of keys at this value: blocks of tables made before group sizes
_WARNED_POOR: set[Path] = set()  # tables whose poor quality was already reported in this process


def block_key(plan: PartPlan) -> str:
    """Stable table key of a block: ``MBConvPlan(expand=True, in_channels=16, ...)``, fields sorted by name; the key
    of a depthwise MBConv leaves its ``group_size=1`` out, so it is the key tables timed before group sizes hold."""
    fields = sorted(
        f.name
        for f in dataclasses.fields(plan)
        if f.name not in UNTIMED_FIELDS and DEPTHWISE_KEY_FIELDS.get(f.name, object()) != getattr(plan, f.name)
    )
    return f"{type(plan).__name__}({', '.join(f'{name}={getattr(plan, name)}' for name in fields)})"


def block_count(cfg: SubnetConfig) -> int:
    """Modules a subnet's forward pass runs: the stem, every block, the head."""
    return 2 + sum(choice.depth for choice in cfg.stages)


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
        onnxruntime: onnxruntime version for a table timed in onnxruntime (``settings.runtime``); empty otherwise.
    """

    space: str
    space_fingerprint: str
    resolutions: tuple[int, ...]
    settings: LatencySettings
    group_size: int
    device_name: str
    torch: str
    onnxruntime: str = ""

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
            onnxruntime=onnxruntime_version() if settings.runtime == "onnxruntime" else "",
        )

    def to_dict(self) -> dict:
        return {"format": TABLE_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict) -> TableHeader:
        values = {  # fields with a default (added after format 2 began) may be missing from older tables
            f.name: data[f.name] if f.default is dataclasses.MISSING else data.get(f.name, f.default)
            for f in dataclasses.fields(cls)
        }
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
        calibration: resolution -> ``{"scale", "per_block_ms", "offset_ms", "subnets", "mape", ...}``.
        spreads: block key -> (p90 - p10) / median of the entry's timed runs (tables before 2026-12 have none).
        quality: what the build recorded of its noise; None for a table still being built or an older one.
    """

    def __init__(
        self,
        space: SearchSpace,
        header: TableHeader,
        entries: dict[str, float],
        path: Path | None = None,
        calibration: dict[int, dict[str, float]] | None = None,
        spreads: dict[str, float] | None = None,
        quality: TableQuality | None = None,
    ):
        self.space, self.header, self.entries, self.path = space, header, entries, path
        self.calibration = calibration or {}
        self.spreads = spreads or {}
        self.quality = quality
        self._parts: dict = {}  # memo of walk_parts: part signature -> (ms, output width, output side)

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
            spreads = {str(k): float(v) for k, v in data.get("spreads", {}).items()}
            quality = TableQuality.from_dict(data["quality"]) if data.get("quality") else None
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
        table = cls(space, header, entries, path, calibration, spreads, quality)
        table.warn_if_poor()
        return table

    def warn_if_poor(self) -> None:
        """Log once per file and process that the table's timings are not to be trusted, and why."""
        if self.quality is None or not self.quality.poor or self.path in _WARNED_POOR:
            return
        _WARNED_POOR.add(self.path)
        logger.warning(
            "latency table %s is of poor quality: %s (%s); its predictions may be off. Rebuild it on a quiet machine "
            "(nasvit latency build-lut --space %s --out NEW_FILE)",
            self.path,
            "; ".join(self.quality.reasons),
            self.quality.figures(),
            self.space.name,
        )

    def save(self, path: str | Path) -> None:
        """Write the table to ``path`` atomically (a temporary file, then a rename)."""
        payload = {
            **self.header.to_dict(),
            "quality": self.quality.to_dict() if self.quality is not None else None,
            "calibration": self.calibration,
            "spreads": self.spreads,
            "entries": self.entries,
        }
        self.path = write_json_atomic(path, payload, indent=1)

    # ------------------------------------------------------------------------------------- prediction
    def block_ms(self, plan: PartPlan) -> float:
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
        """The sum of the entries of the stem, every block and the head of ``plan_subnet(cfg)``, each part summed
        once per signature (:func:`~search_space.plan.walk_parts`)."""
        if cfg.space_name != self.space.name:
            raise NasvitError(f"subnet of space '{cfg.space_name}' given to a latency table of '{self.space.name}'")
        return sum(walk_parts(cfg, self._part_ms, self._parts))

    def _part_ms(self, plans: tuple[PartPlan, ...]) -> float:
        return sum(self.block_ms(plan) for plan in plans)
