"""Latency in onnxruntime: ``nasvit latency measure --runtime onnxruntime`` (the ONNX graph timed in onnxruntime, an
export's own ``model.onnx`` when it ships one, the output naming the runtime), tables timed in onnxruntime, the report
in either runtime, and ``latency.runtime`` in a search (a table of another runtime refused, budgets checked in
onnxruntime)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnxruntime
import pytest
import yaml

from nasvit.cli import main
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig
from nasvit.errors import NasvitError
from nasvit.export.directory import ExportOptions, export_subnet
from nasvit.latency.table import LatencyTable
from nasvit.latency.table_build import build_lut
from nasvit.recipes.search import SearchRecipe
from nasvit.runtime import checkpoint
from search_space import load_space, space_to_dict
from tests.supernet_helpers import FAST_TIMING, SEARCH_FAST

QUICK = ["--repeats", "3", "--warmup", "1", "--threads", "1", "--json"]


def test_a_subnet_is_exported_and_timed_in_onnxruntime(table_file, capsys):
    arch = str(load_space("tiny").min_subnet())  # at 16 px, the resolution of table_file (timed in torch)
    measure = ["latency", "measure", "--space", "tiny", "--arch", arch, "--lut", str(table_file)]
    assert main([*measure, "--runtime", "onnxruntime", *QUICK]) == 0
    out, err = capsys.readouterr()
    onnx = json.loads(out)
    assert f"{table_file} was timed in torch, this is onnxruntime" in err and onnx["lut_ms"] > 0
    assert onnx["runtime"].startswith("onnxruntime ") and "exported to ONNX now" in onnx["runtime"]
    assert onnx["latency_ms"] > 0
    assert main(["latency", "measure", "--space", "tiny", "--arch", arch, *QUICK]) == 0
    assert json.loads(capsys.readouterr().out)["runtime"].startswith("torch ")


def test_an_export_is_timed_through_its_own_onnx_file(briefly_trained, tmp_path, capsys):
    cfg = load_space("tiny").min_subnet()
    state = checkpoint.load(briefly_trained)
    out = tmp_path / "export"
    export_subnet(state, str(briefly_trained), cfg, out, bn_batches=1, options=ExportOptions(onnx=True))
    assert main(["latency", "measure", "--arch", str(out), "--runtime", "onnxruntime", *QUICK]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert str(out / "model.onnx") in measured["runtime"] and measured["arch"] == str(cfg)


def micro_space() -> dict:
    """The tiny space at 16 px with only its width and depth choices (one kernel, expansion, MLP ratio and window per
    stage, one stem width): 26 blocks, and subnets whose block sums and counts both vary, so a table of it builds and
    calibrates in seconds."""
    data = space_to_dict(load_space("tiny"))
    data["name"], data["resolutions"], data["stem"]["widths"] = "micro", [16], [8]
    for stage in data["stages"]:
        for key in ("kernels", "expand_ratios", "mlp_ratios", "windows"):
            if key in stage:
                stage[key] = stage[key][:1]
    return data


@pytest.fixture(scope="module")
def micro_table(tmp_path_factory) -> tuple[Path, Path]:
    """``(space YAML, its table timed in onnxruntime)`` (3 runs per block; calibrated on 6 subnets)."""
    root = tmp_path_factory.mktemp("micro")
    space_file, table = root / "micro.yaml", root / "onnxruntime.json"
    space_file.write_text(yaml.safe_dump(micro_space()))
    settings = dataclasses.replace(FAST_TIMING, runtime="onnxruntime")
    build_lut(load_space(space_file), [16], settings, table, progress=False, calibration_subnets=6)
    return space_file, table


def test_a_table_timed_in_onnxruntime_records_it_and_is_not_resumed_in_torch(micro_table):
    space_file, path = micro_table
    data = json.loads(path.read_text())
    assert data["settings"]["runtime"] == "onnxruntime" and data["onnxruntime"] == onnxruntime.__version__
    space = load_space(space_file)
    assert LatencyTable.load(path, space).predict(space.max_subnet()) > 0
    with pytest.raises(NasvitError, match="runtime: 'onnxruntime' != 'torch'"):
        build_lut(space, [16], FAST_TIMING, path, progress=False)


def test_the_report_times_in_the_table_runtime_or_the_one_asked_for(micro_table, capsys):
    space_file, path = micro_table
    report = ["latency", "report", "--space", str(space_file), "--lut", str(path), "--samples", "3", "--repeats", "3"]
    assert main([*report, "--json", "--no-progress"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"macs", "params", "activations", "lut"}
    assert main([*report, "--runtime", "torch", "--json", "--no-progress"]) == 0
    assert "was timed in onnxruntime, the subnets are timed in torch" in capsys.readouterr().err


def test_a_search_refuses_a_table_of_another_runtime(table_file, briefly_trained, tmp_path, capsys):
    sets = ["latency.source=lut", f"latency.lut={table_file}", "latency.runtime=onnxruntime"]
    sets.append('evolve.budgets=["latency_ms<=50%"]')
    argv = ["search", "--config", "configs/search/tiny.yaml", "--checkpoint", str(briefly_trained)]
    assert main([*argv, "--out", str(tmp_path), *(x for s in sets for x in ("--set", s))]) == 2
    err = capsys.readouterr().err
    assert f"{table_file} was timed in torch, but latency.runtime is onnxruntime" in err and "Traceback" not in err


def test_a_latency_budget_in_onnxruntime_is_searched_and_checked_there(briefly_trained, tmp_path):
    overrides = [*SEARCH_FAST, "evolve.generations=0", 'evolve.budgets=["latency_ms<=1000"]', "latency.source=measure"]
    overrides += ["latency.runtime=onnxruntime", "latency.threads=1", "latency.repeats=3", "latency.runners_up=0"]
    SearchRecipe(load_config(SearchConfig, "configs/search/tiny.yaml", overrides), briefly_trained, tmp_path).run()
    check = json.loads((tmp_path / "best.json").read_text())["budgets"][0]["latency_check"]
    assert check["runtime"] == "onnxruntime" and check["met"] and check["measured_ms"] <= check["limit_ms"]
