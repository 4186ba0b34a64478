"""``benchmarks/evidence.py --quick`` end to end on a small folder of 32 px images: every stage, the report and its
plots from results.json, a resumed run that does no finished stage again, and the refusals (slow: minutes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "evidence.py"
pytestmark = pytest.mark.slow


def _folder(root: Path, classes: int = 10, per_class: int = 40) -> Path:
    """``root/train/<class>/<i>.png``: 32x32 images whose mean colour depends on the class, so they can be learnt."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        folder = root / "train" / f"class{label}"
        folder.mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.normal(25 * label, 40, (32, 32, 3)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    return root


def _evidence(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=1800)


def test_quick_run_writes_every_stage_and_a_resumed_run_redoes_none(tmp_path):
    data, out = _folder(tmp_path / "images"), tmp_path / "out"
    first = _evidence("--data", str(data), "--out", str(out), "--quick")
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    stages = results["stages"]
    assert {"train/full-seed0", "subnets/cnn_only-seed1", "conflicts/full", "latency", "timm_choice"} <= set(stages)
    assert len([key for key in stages if key.startswith("search/")]) == 12 and "finetune/1" in stages
    assert all(0 <= value <= 100 for value in stages["subnets/full-seed0"]["top1"])
    for name in ("report.md", "ablation.png", "conflicts.png", "search.png", "baselines.png"):
        assert (out / name).is_file(), name
    assert "seed-to-seed spread" in (out / "report.md").read_text()

    del results["stages"]["finetune/1"], results["stages"]["timm_choice"]  # as if stopped before them
    (out / "results.json").write_text(json.dumps(results))
    second = _evidence("--data", str(data), "--out", str(out), "--quick")
    assert second.returncode == 0, second.stderr[-3000:]
    finished = [line for line in second.stdout.splitlines() if line.startswith("[evidence]")]
    redone = [line.removeprefix("[evidence] ").split(":")[0] for line in finished]
    assert redone == ["finetune/1", "timm_choice"]
    # the run's export is an ordinary export: nasvit eval on the folder works
    export = json.loads((out / "results.json").read_text())["stages"]["finetune/0"]["export"]
    evaluated = subprocess.run([sys.executable, "-m", "nasvit.cli", "eval", "--model", export, "--data", str(data)])
    assert evaluated.returncode == 0

    other = _evidence("--data", str(data), "--out", str(out))  # the full plan in the quick run's directory
    assert other.returncode == 2 and "another plan or dataset" in other.stderr and "Traceback" not in other.stderr
    missing = _evidence("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o2"), "--quick")
    assert missing.returncode == 2 and "has no train/ folder" in missing.stderr
