"""``nasvit latency measure --runtime onnxruntime``: the ONNX graph timed in onnxruntime, an export's own
``model.onnx`` when it ships one, and the output naming the runtime it measured."""

from __future__ import annotations

import json

from nasvit.cli import main
from nasvit.export.directory import ExportOptions, export_subnet
from nasvit.runtime import checkpoint
from search_space import load_space

QUICK = ["--repeats", "3", "--warmup", "1", "--threads", "1", "--json"]


def test_a_subnet_is_exported_and_timed_in_onnxruntime(capsys):
    arch = str(load_space("tiny").min_subnet())
    assert main(["latency", "measure", "--space", "tiny", "--arch", arch, "--runtime", "onnxruntime", *QUICK]) == 0
    onnx = json.loads(capsys.readouterr().out)
    assert onnx["runtime"].startswith("onnxruntime ") and "exported now" in onnx["runtime"] and onnx["latency_ms"] > 0
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
