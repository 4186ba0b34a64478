"""``nasvit demo``: the whole pipeline on the embedded digits with the tiny space, on a laptop CPU.

Train the supernet, search two MACs budgets, export the best subnet of each (verified), then measure each
export's CPU latency and validation top-1. Everything goes under one run directory; a rerun reuses the
stages that finished (training resumes from its checkpoints, the search from its log, exports are kept).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch

from nasvit import checkpoint, run_directory
from nasvit.config import load_config
from nasvit.data import build_data
from nasvit.errors import NasvitError
from nasvit.evaluation import accuracy
from nasvit.export import export_subnet, load_model, read_description
from nasvit.latency import LatencySettings, measure_model_latency
from nasvit.recipes.search import SearchRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.search_config import SearchRunConfig
from nasvit.train_config import TrainConfig
from search_space import parse_space

logger = logging.getLogger(__name__)

SUMMARY_KEYS = ("subnet", "macs", "params", "activations", "latency_ms", "top1", "export_dir")


class DemoRecipe:
    """Train, search, export and measure under ``out_dir`` (``train/``, ``search/``, ``export/<budget>/``).

    Args:
        out_dir: the run directory.
        train_config, search_config: the YAML files of the two stages.
        train_overrides, search_overrides: ``key=value`` overrides of each.
    """

    def __init__(
        self,
        out_dir: str | Path = "runs/demo",
        train_config: str = "configs/train/demo.yaml",
        search_config: str = "configs/search/demo.yaml",
        train_overrides: tuple[str, ...] = (),
        search_overrides: tuple[str, ...] = (),
    ):
        self.out = Path(out_dir)
        self.train_config = load_config(TrainConfig, train_config, train_overrides)
        self.search_config = load_config(SearchRunConfig, search_config, search_overrides)

    def run(self) -> list[dict[str, Any]]:
        """Run (or reuse) every stage; returns the summary rows, also written to ``summary.json``."""
        train_dir, search_dir = self.out / "train", self.out / "search"
        _stage("1/4 train the supernet", train_dir)
        TrainRecipe(self.train_config, train_dir, resume="auto").run()
        latest = checkpoint.latest(train_dir)
        _stage("2/4 search two budgets", search_dir)
        resume = (search_dir / run_directory.MANIFEST).exists() or (search_dir / "candidates.jsonl").exists()
        SearchRecipe(self.search_config, latest, search_dir, resume=resume).run()
        _stage("3/4 export the best subnet of each budget", self.out / "export")
        state = checkpoint.load(latest)
        space = parse_space(state["space"])
        best = json.loads((search_dir / "best.json").read_text())["budgets"]
        infeasible = [entry["budget"] for entry in best if not entry.get("subnet")]
        if infeasible:
            raise NasvitError(f"the search found no subnet within {infeasible}; loosen those budgets")
        exports = [self._export(state, latest, space, entry) for entry in best]
        _stage("4/4 measure latency and validation accuracy", self.out)
        data = build_data(self.train_config.data)
        rows = [self._measure(entry["budget"], directory, data) for entry, directory in zip(best, exports)]
        (self.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
        return rows

    def _export(self, state: dict[str, Any], path: Path, space, entry: dict[str, Any]) -> Path:
        directory = self.out / "export" / _slug(entry["budget"])
        if _current_export(directory, entry["subnet"]):
            logger.info("reusing the export in %s", directory)
            return directory
        cfg = space.parse(entry["subnet"])
        report = export_subnet(state, str(path), cfg, directory, entry.get("metrics"), torchscript=True, overwrite=True)
        logger.info("exported %s: largest differences %s", directory, report.differences)
        return directory

    def _measure(self, budget: str, directory: Path, data) -> dict[str, Any]:
        model = load_model(directory, inference=True)
        description = read_description(directory)
        with torch.inference_mode():
            result = accuracy(model, data.loader("val", batch_size=256, shuffle=False))
        latency = measure_model_latency(model, model.resolution, LatencySettings(repeats=50))
        costs = description["costs"]
        return {
            "budget": budget,
            "subnet": description["subnet"],
            "macs": costs["macs"],
            "params": costs["params"],
            "activations": costs["activations"],
            "latency_ms": latency,
            "top1": result["top1"],
            "export_dir": str(directory),
        }


def _current_export(directory: Path, subnet: str) -> bool:
    """Whether ``directory`` holds an export of ``subnet`` made by this version (one whose ``model.ts`` is the
    inference form, so its verification lists ``inference``)."""
    if not (directory / "subnet.json").exists():
        return False
    description = read_description(directory)
    return description["subnet"] == subnet and "inference" in description["verification"]["max_abs_difference"]


def format_table(rows: list[dict[str, Any]]) -> str:
    """The demo's result table: one line per budget, then the subnets in full."""
    header = f"{'budget':<12} {'MACs':>8} {'params':>9} {'activations':>12} {'CPU latency':>12} {'val top-1':>10}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row['budget']:<12} {row['macs'] / 1e6:>7.2f}M {row['params'] / 1e6:>8.3f}M "
            f"{row['activations'] / 1e3:>11.1f}K {row['latency_ms']:>10.2f}ms {row['top1']:>9.2f}%"
        )
    lines += [f"{row['budget']}: {row['subnet']}  ({row['export_dir']})" for row in rows]
    return "\n".join(lines)


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", label.replace("<=", "_le_")).strip("_")


def _stage(title: str, where: Path) -> None:
    logger.info("== %s (%s)", title, where)
