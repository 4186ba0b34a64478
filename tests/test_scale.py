"""``nasvit scale``: subnets scaled past their space by each rule land on their MACs target, keep what the rule
keeps, and are ordinary nasvit models (a one-subnet space that trains, exports with ONNX and loads in timm)."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from nasvit.cli import main
from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.export.directory import ExportOptions, export_subnet, load_model
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import load_space, parse_space, space_to_dict
from search_space.scaling import rule_exponents, scale_subnet
from supernet.elastic import slice_to


@pytest.mark.parametrize("rule", ["w", "d", "fast", "dwr", "efficientnet"])
@pytest.mark.parametrize("factor", [2, 4, 8])
def test_scaled_macs_land_within_three_percent_of_the_target(rule, factor):
    base = load_space("nasvit").min_subnet()
    scaled = scale_subnet(base, rule, factor)
    assert abs(scaled.macs_ratio / factor - 1) <= 0.03, (rule, factor, scaled.macs_ratio)
    width_kept = [c.width for c in scaled.cfg.stages] == [c.width for c in base.stages]
    depth_kept = [c.depth for c in scaled.cfg.stages] == [c.depth for c in base.stages]
    resolution_kept = scaled.cfg.resolution == base.resolution
    kept = {"w": depth_kept and resolution_kept, "d": width_kept and resolution_kept}
    assert kept.get(rule, not width_kept)


def test_resolution_alone_takes_the_closer_tiling_side_where_none_lands_within_three_percent():
    base = load_space("nasvit").min_subnet()  # 2x2 windows in stage s4: its map must be even
    scaled = scale_subnet(base, "r", 2)
    assert scaled.cfg.resolution == 256 and scaled.macs_ratio == pytest.approx(1.848, abs=1e-3)
    over = scaled.space.stage_sizes(276)  # the next side on which the windows tile
    assert over[3] % 2 == 0 and all(size % 2 for size in (scaled.space.stage_sizes(r)[3] for r in (260, 268, 272)))


def test_width_scaling_grows_activations_slower_than_depth_scaling():
    base = load_space("nasvit").max_subnet()
    by_width, by_depth = scale_subnet(base, "w", 4), scale_subnet(base, "d", 4)
    width_acts = by_width.cost.activations / by_width.base_cost.activations
    depth_acts = by_depth.cost.activations / by_depth.base_cost.activations
    assert width_acts < 0.6 * depth_acts and depth_acts > 3.0  # the paper: sqrt(s) against s for convs


def test_rule_exponents_follow_the_paper_and_refuse_bad_values():
    assert rule_exponents("dwr") == pytest.approx((1 / 3, 1 / 6, 1 / 6))
    assert rule_exponents("fast") == pytest.approx((0.1, 0.4, 0.05))  # the paper's code: depth s^0.1, width s^0.4
    with pytest.raises(ValueError, match="not one of"):
        rule_exponents("x")
    with pytest.raises(ValueError, match="outside"):
        rule_exponents("fast", alpha=1.5)
    with pytest.raises(ValueError, match="below 1"):
        scale_subnet(load_space("tiny").min_subnet(), "w", 0.5)


def test_the_one_subnet_space_round_trips_and_holds_only_the_scaled_subnet():
    scaled = scale_subnet(load_space("demo").max_subnet(), "fast", 2)
    again = parse_space(space_to_dict(scaled.space))
    assert again == scaled.space and again.min_subnet() == again.max_subnet() == scaled.cfg


def test_cli_writes_spaces_prints_json_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "scaled"
    assert (
        main(
            [
                "scale",
                "--space",
                "demo",
                "--arch",
                "max",
                "--rule",
                "w",
                "fast",
                "--factor",
                "2",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    payload = json.loads(capsys.readouterr().out)
    assert [entry["rule"] for entry in payload["scaled"]] == ["w", "fast"]
    for entry in payload["scaled"]:
        space = load_space(entry["space_file"])
        assert str(space.max_subnet()) == entry["subnet"] and space.cost(space.max_subnet()).macs == entry["macs"]
    assert main(["scale", "--space", "demo", "--arch", "max", "--factor", "0.5"]) == 2
    assert "below 1" in capsys.readouterr().err
    assert main(["scale", "--space", "demo", "--arch", "max", "--rule", "w", "--phi", "1"]) == 2
    assert "--rule efficientnet" in capsys.readouterr().err


def test_a_scaled_model_starts_from_its_base_trains_exports_with_onnx_and_loads_in_timm(
    tmp_path, capsys, briefly_trained
):
    base = load_space("tiny").min_subnet().replace(resolution=16)
    arguments = ["scale", "--space", "tiny", "--arch", str(base), "--rule", "fast", "--factor", "2"]
    assert main([*arguments, "--out", str(tmp_path), "--checkpoint", str(briefly_trained), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["scaled"]
    foreign = ["scale", "--space", "demo", "--arch", "max", "--out", str(tmp_path / "d"), "--checkpoint"]
    assert main([*foreign, str(briefly_trained)]) == 2
    assert "holds a 'tiny' supernet" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert main([*arguments, "--checkpoint", str(briefly_trained)]) == 2
    assert "add --out DIR" in capsys.readouterr().err
    assert 0.3 < entry["init_parameter_share"] < 1.0  # some layers wider than the supernet ever was
    start, trained = checkpoint.load(entry["init_from"]), checkpoint.load(briefly_trained)
    key = "stages.0.0.depthwise.conv.weight"  # 16 channels, within the supernet's: its slice, kernel centre-cropped
    assert torch.equal(start["model"][key], slice_to(trained[entry["init_weights"]][key], start["model"][key].shape))
    space_file = entry["space_file"]
    scaled = scale_subnet(base, "fast", 2)
    settings = [
        f"space={space_file}",
        f"init_from={entry['init_from']}",
        "data.batch_size=64",
        "data.search_fraction=0.65",
        "data.image_size=16",
        "optim.epochs=1",
        "eval.bn_batches=1",
        "sandwich.num_random=0",
    ]
    summary = TrainRecipe(load_config(TrainConfig, "configs/train/tiny.yaml", settings), tmp_path / "run").run()
    assert summary["steps"] == 4
    latest = checkpoint.latest(tmp_path / "run")
    options = ExportOptions(onnx=True)
    report = export_subnet(
        checkpoint.load(latest), str(latest), scaled.cfg, tmp_path / "x", bn_batches=1, options=options
    )
    assert (report.out_dir / "model.onnx").is_file()
    model = load_model(report.out_dir)
    via_timm = timm.create_model("nasvit_subnet", export_dir=str(report.out_dir), pretrained=True).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert model.subnet == str(scaled.cfg) and torch.equal(via_timm(x), model(x))
    timing = ["latency", "measure", "--arch", str(report.out_dir), "--repeats", "3", "--warmup", "1", "--json"]
    assert main([*timing, "--runtime", "onnxruntime"]) == 0  # the export's own model.onnx
    measured = json.loads(capsys.readouterr().out)
    assert measured["runtime"].startswith("onnxruntime") and "model.onnx" in measured["runtime"]
    assert measured["latency_ms"] > 0 and measured["settings"]["runtime"] == "onnxruntime"
