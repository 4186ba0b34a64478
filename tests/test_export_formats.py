"""What other tools read from an export: ONNX at the subnet's resolution with metadata, and timm preprocessing that
reproduces ``nasvit eval``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasvit.cli import main
from nasvit.data import build_data
from nasvit.data.digits import digit_pil_images
from nasvit.evaluation import accuracy
from nasvit.export.directory import ExportOptions, export_data_config, export_subnet, load_model
from nasvit.runtime import checkpoint
from search_space import load_space

onnx = pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
onnxruntime = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory: pytest.TempPathFactory, briefly_trained: Path) -> Path:
    """A digits export of a 24 px tiny subnet (loaded at 32 px, so the model resizes), with ONNX."""
    out = tmp_path_factory.mktemp("export") / "model"
    cfg = load_space("tiny").max_subnet().replace(resolution=24)
    state = checkpoint.load(briefly_trained)
    export_subnet(state, str(briefly_trained), cfg, out, bn_batches=2, options=ExportOptions(onnx=True))
    return out


def test_onnx_runs_at_the_subnet_resolution_with_metadata(export_dir: Path) -> None:
    description = json.loads((export_dir / "subnet.json").read_text())
    resolution = description["resolution"]
    graph = onnx.load(str(export_dir / "model.onnx"))
    metadata = {prop.key: prop.value for prop in graph.metadata_props}
    assert metadata["subnet"] == description["subnet"] and int(metadata["resolution"]) == resolution == 24
    assert json.loads(metadata["input_size"]) == description["pretrained_cfg"]["input_size"] == [3, 32, 32]
    assert json.loads(metadata["mean"]) == pytest.approx(description["pretrained_cfg"]["mean"])
    assert int(metadata["num_classes"]) == 10
    session = onnxruntime.InferenceSession(str(export_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    model = load_model(export_dir)
    for batch in (1, 4):
        images = torch.randn(batch, 3, resolution, resolution)
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            assert float((torch.from_numpy(logits) - model(images)).abs().max()) <= 1e-4
    assert description["verification"]["max_abs_difference"]["onnx"] <= 1e-4


def test_dynamic_size_onnx_takes_the_load_size_too(export_dir: Path, tmp_path: Path) -> None:
    state_path = json.loads((export_dir / "subnet.json").read_text())["provenance"]["checkpoint"]
    arch = json.loads((export_dir / "subnet.json").read_text())["subnet"]
    out = tmp_path / "dynamic"
    argv = ["export", "--checkpoint", state_path, "--arch", arch, "--out", str(out), "--onnx", "--onnx-dynamic-size"]
    assert main([*argv, "--bn-batches", "2"]) == 0
    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    model = load_model(out)
    for size in (24, 32):
        images = torch.randn(2, 3, size, size)
        (logits,) = session.run(None, {"images": images.numpy()})
        with torch.no_grad():
            assert float((torch.from_numpy(logits) - model(images)).abs().max()) <= 1e-4


def test_timm_preprocessing_gives_the_top1_of_nasvit_eval(export_dir: Path, capsys) -> None:
    import timm
    from timm.data import create_transform, resolve_data_config

    assert main(["eval", "--model", str(export_dir)]) == 0
    printed = capsys.readouterr().out
    data = build_data(export_data_config(export_dir))
    reference = accuracy(load_model(export_dir, inference=True), data.loader("val", batch_size=128, shuffle=False))
    assert f"top-1 {reference['top1']:.2f}%" in printed and "on digits" in printed
    model = timm.create_model("nasvit_subnet", export_dir=str(export_dir), pretrained=True).eval()
    transform = create_transform(**resolve_data_config({}, model=model))
    images, labels = digit_pil_images()
    indices = [int(i) for i in data.val.indices]
    batch = torch.stack([transform(images[i].convert("RGB")) for i in indices])
    with torch.no_grad():
        predicted = model(batch).argmax(-1)
    top1 = 100.0 * float((predicted == labels[indices]).double().mean())
    assert top1 == pytest.approx(reference["top1"], abs=1e-9)


def test_latency_measure_reads_the_space_from_an_export(export_dir: Path, capsys) -> None:
    fast = ["--threads", "1", "--warmup", "0", "--repeats", "3", "--json"]
    for target in (export_dir, export_dir / "subnet.json"):
        assert main(["latency", "measure", "--arch", str(target), *fast]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["arch"] == json.loads((export_dir / "subnet.json").read_text())["subnet"]
        assert payload["resolution"] == 24 and payload["runs"] == 3
        assert payload["p10_ms"] <= payload["latency_ms"] <= payload["p90_ms"]
    assert main(["latency", "measure", "--arch", str(export_dir), "--resolution", "32", *fast]) == 2
    assert "is an export at 24 px; drop --resolution 32" in capsys.readouterr().err
