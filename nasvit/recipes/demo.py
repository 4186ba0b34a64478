"""``nasvit demo``: the whole pipeline on the embedded digits with the demo space, on a laptop CPU.

Train the supernet, build a latency table of the space on this machine, search three budgets (MACs and
parameters in one search, latency in another, so that the cost budgets' subnets do not depend on the
machine's timings), export the best subnet of each (verified), then measure each distinct export's CPU
latency (interleaved, with its spread) and validation top-1. Everything goes under one run directory; a rerun
reuses the stages that finished (training resumes from its checkpoints, the table and the search from their
files, exports are kept).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import torch

from evolve import BudgetError, describe_budget, parse_budget
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig
from nasvit.config.train import TrainConfig
from nasvit.data import build_data
from nasvit.evaluation import accuracy
from nasvit.export.directory import ExportOptions, export_subnet, load_model, read_description
from nasvit.latency.measure import LatencyStats, measure_modules_interleaved, measure_onnx_graphs, warn_if_noisy
from nasvit.latency.onnx_runtime import onnxruntime_available
from nasvit.latency.settings import LatencySettings
from nasvit.latency.table import LatencyTable
from nasvit.latency.table_build import build_lut
from nasvit.recipes.search import SearchRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint, run_directory
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import load_space, parse_space

logger = logging.getLogger(__name__)

SUMMARY_KEYS = ("subnet", "macs", "params", "activations", "latency_ms", "latency_p10_ms", "latency_p90_ms")
SUMMARY_KEYS += ("onnxruntime_ms", "onnxruntime_p10_ms", "onnxruntime_p90_ms", "top1", "export_dir")
LUT_FILE = "latency_table.json"
# One thread: on a small shared CPU a single-threaded model times steadily; the table and every check use it.
DEMO_LATENCY = LatencySettings(threads=1, warmup=5, repeats=20)


class DemoRecipe:
    """Train, build a latency table, search, export and measure under ``out_dir`` (``train/``,
    ``latency_table.json``, ``search/``, ``search-latency/``, ``export/<budget>/``, ``summary.json``).

    Args:
        out_dir: the run directory.
        train_config, search_config: the YAML files of the two stages.
        train_overrides, search_overrides: ``key=value`` overrides of each.
        latency: how the table, the search's check of latency budgets and the final table time models.
    """

    def __init__(
        self,
        out_dir: str | Path = "runs/demo",
        train_config: str = "configs/train/demo.yaml",
        search_config: str = "configs/search/demo.yaml",
        train_overrides: tuple[str, ...] = (),
        search_overrides: tuple[str, ...] = (),
        latency: LatencySettings = DEMO_LATENCY,
    ):
        self.out = Path(out_dir)
        self.latency = latency
        self.train_config = load_config(TrainConfig, train_config, train_overrides)
        lut = ("latency.source=lut", f"latency.lut={self.out / LUT_FILE}")
        self.search_config = load_config(SearchConfig, search_config, (*lut, *search_overrides))

    def run(self) -> list[dict[str, Any]]:
        """Run (or reuse) every stage; returns the summary rows (one per budget, in config order, a budget that was
        not met included), also written to ``summary.json``."""
        self._started = time.perf_counter()
        train_dir, search_dir = self.out / "train", self.out / "search"
        self._stage("1/5 train the supernet", train_dir)
        TrainRecipe(self.train_config, train_dir, resume="auto").run()
        latest = checkpoint.latest(train_dir)
        self._build_table()
        self._stage("3/5 search the budgets", search_dir)
        best_by_label: dict[str, dict[str, Any]] = {}
        for directory, config, timed in self._searches(search_dir):
            table = self.out / LUT_FILE if timed else None
            labels = [parse_budget(b).label for b in config.evolve.budgets]
            finished = _finished_search(directory, labels, latest, table)
            if finished is None:
                finished = self._search(directory, config, latest, overwrite=_made_with_another_table(directory, table))
            best_by_label.update(finished)
        best = [best_by_label[parse_budget(b).label] for b in self.search_config.evolve.budgets]
        self._stage("4/5 export the best subnet of each budget", self.out / "export")
        state = checkpoint.load(latest)
        space = parse_space(state["space"])
        exports = {e["budget"]: self._export(state, latest, space, e) for e in best if _met(e)}
        self._stage("5/5 measure latency and validation accuracy", self.out)
        table = LatencyTable.load(self.out / LUT_FILE, space)
        rows = self._measure(best, exports, build_data(self.train_config.data), table)
        write_json_atomic(self.out / "summary.json", rows, indent=2)
        return rows

    def _stage(self, title: str, where: Path) -> None:
        logger.info("== %s (%s; %.0f s so far)", title, where, time.perf_counter() - self._started)

    def _build_table(self) -> None:
        """Build (or reuse, or re-time when recorded as poor) the latency table."""
        path = self.out / LUT_FILE
        self._stage("2/5 time the blocks of the space into a latency table", path)
        space = load_space(self.train_config.space)
        build_lut(space, space.resolutions, self.latency, path, progress=False, retime_poor=True)

    def _searches(self, search_dir: Path) -> list[tuple[Path, SearchConfig, bool]]:
        """The cost budgets' search in ``search/`` and the latency budgets' in ``search-latency/`` (with True: it
        uses the latency table): a latency budget samples by timings of this machine, so sharing a search with it
        would make the cost budgets' subnets depend on the machine too."""
        config = self.search_config
        budgets = [parse_budget(b) for b in config.evolve.budgets]
        groups = [
            (search_dir, [b.label for b in budgets if not b.is_latency], False),
            (search_dir.with_name(f"{search_dir.name}-latency"), [b.label for b in budgets if b.is_latency], True),
        ]
        return [
            (directory, dataclasses.replace(config, evolve=dataclasses.replace(config.evolve, budgets=labels)), timed)
            for directory, labels, timed in groups
            if labels
        ]

    def _search(self, directory: Path, config: SearchConfig, latest: Path, overwrite: bool) -> dict[str, dict]:
        """``best.json``'s entries of one search by budget label. A budget no subnet of the space can meet is not
        searched: its entry says why (``not_met``), and the search goes on with the other budgets."""
        unsatisfiable: dict[str, str] = {}
        while True:
            budgets = [b for b in config.evolve.budgets if parse_budget(b).label not in unsatisfiable]
            if not budgets:
                break
            searched = dataclasses.replace(config, evolve=dataclasses.replace(config.evolve, budgets=budgets))
            resume = not overwrite and _search_started(directory)
            try:
                SearchRecipe(searched, latest, directory, resume=resume, overwrite=overwrite or not resume).run()
                break
            except BudgetError as error:
                if not set(error.labels) & {parse_budget(b).label for b in budgets}:  # none of ours: nothing to drop
                    raise
                for label in error.labels:
                    unsatisfiable[label] = "; ".join(p for p in error.problems if p.startswith(f"budget {label}"))
                logger.warning("%s", error)
        found = (
            {e["budget"]: e for e in json.loads((directory / "best.json").read_text())["budgets"]} if budgets else {}
        )
        found.update({label: {"budget": label, "subnet": None, "not_met": why} for label, why in unsatisfiable.items()})
        return found

    def _export(self, state: dict[str, Any], path: Path, space, entry: dict[str, Any]) -> Path:
        directory = self.out / "export" / _slug(entry["budget"])
        if _current_export(directory, entry["subnet"]):
            logger.info("reusing the export in %s", directory)
            return directory
        cfg = space.parse(entry["subnet"])
        report = export_subnet(
            state,
            str(path),
            cfg,
            directory,
            entry.get("metrics"),
            options=ExportOptions(torchscript=True, onnx=onnxruntime_available(), overwrite=True),
        )
        logger.info("exported %s: largest differences %s", directory, report.differences)
        return directory

    def _measure(
        self, best: list[dict[str, Any]], exports: dict[str, Path], data, table: LatencyTable
    ) -> list[dict[str, Any]]:
        """One row per budget; each distinct exported subnet is timed once (all of them interleaved, at one
        thread as the table was) in PyTorch and, where the export has its ``model.onnx``, in onnxruntime, and
        evaluated once, so a subnet two budgets share shows one latency."""
        descriptions = {budget: read_description(directory) for budget, directory in exports.items()}
        distinct: dict[str, Path] = {}
        for budget, directory in exports.items():
            distinct.setdefault(descriptions[budget]["subnet"], directory)
        models = {subnet: load_model(directory, inference=True) for subnet, directory in distinct.items()}
        predicted = {subnet: table.predict(model.subnet_config) for subnet, model in models.items()}
        shapes = [(self.latency.batch_size, 3, m.resolution, m.resolution) for m in models.values()]
        timings = dict(zip(models, measure_modules_interleaved(list(models.values()), shapes, self.latency)))
        warn_if_noisy(list(timings.values()), "exported model")
        onnx_timings = self._time_onnx_graphs(distinct, shapes)
        loader = data.loader("val", batch_size=256, shuffle=False)
        with torch.inference_mode():
            top1 = {subnet: accuracy(model, loader)["top1"] for subnet, model in models.items()}
        rows = []
        for entry in best:
            if entry["budget"] not in exports:
                rows.append(_not_met_row(entry))
                continue
            directory = exports[entry["budget"]]
            description = descriptions[entry["budget"]]
            subnet, costs, timing = description["subnet"], description["costs"], timings[description["subnet"]]
            rows.append(
                {
                    "budget": entry["budget"],
                    "limit": _held_limit(entry),
                    "met": True,
                    "subnet": subnet,
                    **{name: costs[name] for name in ("macs", "params", "activations")},
                    "latency_ms": timing.median_ms,
                    "latency_p10_ms": timing.p10_ms,
                    "latency_p90_ms": timing.p90_ms,
                    "predicted_latency_ms": predicted[subnet],
                    **_onnx_figures(onnx_timings.get(subnet)),
                    "top1": top1[subnet],
                    "export_dir": str(directory),
                }
            )
        return rows

    def _time_onnx_graphs(self, distinct: dict[str, Path], shapes: list[tuple[int, ...]]) -> dict[str, LatencyStats]:
        """Timings in onnxruntime of the exports' ``model.onnx`` files, interleaved, by subnet (those exported
        without onnxruntime installed have none)."""
        graphs = {subnet: d / "model.onnx" for subnet, d in distinct.items() if (d / "model.onnx").is_file()}
        if not graphs:
            return {}
        shape_of = dict(zip(distinct, shapes))
        settings = dataclasses.replace(self.latency, runtime="onnxruntime")
        stats = measure_onnx_graphs([p.read_bytes() for p in graphs.values()], [shape_of[s] for s in graphs], settings)
        warn_if_noisy(stats, "exported ONNX model")
        return dict(zip(graphs, stats))


def _onnx_figures(timing: LatencyStats | None) -> dict[str, float | None]:
    """The summary row's onnxruntime latency (None where the export has no ``model.onnx``)."""
    figures = (timing.median_ms, timing.p10_ms, timing.p90_ms) if timing is not None else (None,) * 3
    return dict(zip(("onnxruntime_ms", "onnxruntime_p10_ms", "onnxruntime_p90_ms"), figures))


def _not_met_row(entry: dict[str, Any]) -> dict[str, Any]:
    """The summary row of a budget without a subnet: why, with the figures (``best.json``'s ``latency_check``)."""
    check = entry.get("latency_check")
    if "not_met" in entry:
        reason = entry["not_met"]
    elif check is not None:
        fastest = min(check["timed"], key=lambda t: t["measured_ms"])
        reason = (
            f"none of the {len(check['timed'])} candidates timed in {len(check.get('rounds', [0]))} round(s) measured "
            f"within {check['limit_ms']:.3g} ms (fastest {fastest['measured_ms']:.2f} ms, predicted "
            f"{fastest['predicted_ms']:.2f} ms)"
        )
    else:
        reason = "the search found no subnet within it"
    return {
        "budget": entry["budget"],
        "limit": _held_limit(entry),
        "met": False,
        "reason": reason,
        "latency_check": check,
    }


def _held_limit(entry: dict[str, Any]) -> float | None:
    """The limit a budget's subnet was held to: for a checked latency budget the one its measured latency was
    checked against (a relative budget resolved on the measured extremes), else the search's."""
    return (entry.get("latency_check") or {}).get("limit_ms", entry.get("limit"))


def _met(entry: dict[str, Any]) -> bool:
    """Whether a ``best.json`` entry has a subnet that meets its budget (a latency budget measured here)."""
    return bool(entry.get("subnet")) and entry.get("latency_check", {}).get("met", True)


def _finished_search(directory: Path, labels: list[str], latest: Path, table: Path | None) -> dict[str, dict] | None:
    """``best.json``'s entries by budget of a search in ``directory`` that finished on this checkpoint (and latency
    table) with its latency budgets checked; None when it has to run. A finished search is not resumed, because its
    latency check would time the candidates again and might choose another of two equally fast subnets."""
    manifest, best = run_directory.read_manifest(directory), directory / "best.json"
    if manifest is None or not best.is_file():
        return None
    inputs = manifest.get("inputs", {})
    if inputs.get("checkpoint_sha256") != run_directory.file_digest(latest):
        return None
    if table is not None and inputs.get("latency_table_sha256") != run_directory.file_digest(table):
        return None
    entries = json.loads(best.read_text())["budgets"]
    checked = table is None or all("latency_check" in e for e in entries if e.get("subnet"))
    return {e["budget"]: e for e in entries} if [e["budget"] for e in entries] == labels and checked else None


def _made_with_another_table(directory: Path, table: Path | None) -> bool:
    """Whether the search in ``directory`` predicted latencies with another table than ``table`` (a poor one timed
    again since): it cannot be resumed, it is started again."""
    manifest = run_directory.read_manifest(directory)
    recorded = (manifest or {}).get("inputs", {}).get("latency_table_sha256")
    return table is not None and recorded is not None and recorded != run_directory.file_digest(table)


def _search_started(directory: Path) -> bool:
    """Whether ``directory`` holds a search that logged candidates (one that failed before any is started afresh)."""
    return (directory / "candidates.jsonl").exists()


def _current_export(directory: Path, subnet: str) -> bool:
    """Whether ``directory`` holds an export of ``subnet`` made by this version (one whose ``model.ts`` is the
    inference form, so its verification lists ``inference``), with its ``model.onnx`` where onnxruntime is here."""
    onnx_missing = onnxruntime_available() and not (directory / "model.onnx").exists()
    if not (directory / "subnet.json").exists() or onnx_missing:
        return False
    description = read_description(directory)
    return description["subnet"] == subnet and "inference" in description["verification"]["max_abs_difference"]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The demo's result table: one line per budget (a relative budget with its resolved limit, a budget that was
    not met with the reason), then the subnets in full."""
    names = [describe_budget(row["budget"], row.get("limit")) for row in rows]
    width = max([16, *map(len, names)])
    header = (
        f"{'budget':<{width}} {'MACs':>8} {'params':>8} {'activations':>11} {'torch latency (p10-p90)':>23} "
        f"{'onnxruntime (p10-p90)':>23} {'val top-1':>9}"
    )
    lines = [header, "-" * len(header)]
    for name, row in zip(names, rows):
        if not row["met"]:
            lines.append(f"{name:<{width}} NOT MET: {row['reason']}")
            continue
        latency = _latency_cell(row["latency_ms"], row["latency_p10_ms"], row["latency_p90_ms"])
        onnx = _latency_cell(row.get("onnxruntime_ms"), row.get("onnxruntime_p10_ms"), row.get("onnxruntime_p90_ms"))
        lines.append(
            f"{name:<{width}} {row['macs'] / 1e6:>7.3f}M {row['params'] / 1e3:>7.1f}K "
            f"{row['activations'] / 1e3:>10.1f}K {latency:>23} {onnx:>23} {row['top1']:>8.2f}%"
        )
    lines += [f"{row['budget']}: {row['subnet']}" for row in rows if row["met"]]
    return "\n".join(lines)


def _latency_cell(median: float | None, p10: float | None, p90: float | None) -> str:
    """``'2.36ms (1.82-3.08)'``, or ``'-'`` where there is no figure."""
    return "-" if median is None else f"{median:.2f}ms ({p10:.2f}-{p90:.2f})"


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", label.replace("<=", "_le_")).strip("_")
