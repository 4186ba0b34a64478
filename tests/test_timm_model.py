"""``nasvit_subnet`` as a timm model: creation from a subnet string or an export directory, pretrained loading and
adaptation, preprocessing, feature extraction and the training hooks timm's tools call."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config
from timm.layers import DropPath
from timm.models import group_parameters
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3

import supernet.static_model
from search_space import load_space
from supernet import NASViT, optimize_for_inference
from tests.supernet_helpers import images, randomize

CFG = load_space("tiny").max_subnet().replace(resolution=16)  # every stage two or three blocks deep
SUBNET = str(CFG)
PREPROCESSING = {
    "input_size": [3, 20, 20],
    "interpolation": "bilinear",
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "crop_pct": 1.0,
    "crop_mode": "center",
    "num_classes": 10,
}


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, NASViT]:
    """(directory, model): a hand-made export directory of a randomised 10-class model."""
    directory = tmp_path_factory.mktemp("export")
    model = randomize(NASViT(CFG, 10), seed=3).eval()
    save_file(model.state_dict(), str(directory / "model.safetensors"))
    description = {"subnet": SUBNET, "num_classes": 10, "pretrained_cfg": PREPROCESSING}
    (directory / "subnet.json").write_text(json.dumps(description))
    return directory, model


def create(**kwargs) -> torch.nn.Module:
    return timm.create_model("nasvit_subnet", **kwargs)


def test_import_nasvit_alone_registers_the_model():
    code = "import sys, timm, nasvit; sys.exit(0 if 'nasvit_subnet' in timm.list_models('nasvit*') else 1)"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_create_from_a_subnet_string():
    model = create(subnet=SUBNET, num_classes=7)
    assert isinstance(model, NASViT) and model.subnet == SUBNET and model(images(16)).shape == (2, 7)
    assert model.pretrained_cfg["first_conv"] == "stem.conv" and model.pretrained_cfg["classifier"] == "head.classifier"
    assert resolve_data_config({}, model=model)["input_size"] == (3, 16, 16)


def test_export_dir_with_pretrained_reproduces_the_export(export):
    directory, saved = export
    model = create(export_dir=directory, pretrained=True).eval()
    assert model.num_classes == 10 and model.pretrained_cfg["file"] == str(directory / "model.safetensors")
    x = images(16, batch=3)
    with torch.no_grad():
        assert torch.equal(model(x), saved(x))
    data = resolve_data_config({}, model=model)
    assert data == {
        "input_size": (3, 20, 20),
        "interpolation": "bilinear",
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "crop_pct": 1.0,
        "crop_mode": "center",
    }
    image = Image.fromarray(torch.full((32, 40, 3), 191, dtype=torch.uint8).numpy())
    tensor = create_transform(**data)(image)
    assert tensor.shape == (3, 20, 20) and torch.allclose(tensor, torch.full_like(tensor, (191 / 255 - 0.5) / 0.25))


def test_export_without_pretrained_cfg_is_preprocessed_like_imagenet_at_its_calibration_size(tmp_path):
    description = {"subnet": SUBNET, "num_classes": 4, "bn_recalibration": {"image_size": 24}}
    (tmp_path / "subnet.json").write_text(json.dumps(description))
    model = create(export_dir=tmp_path)
    data = resolve_data_config({}, model=model)
    assert model.num_classes == 4 and data["input_size"] == (3, 24, 24) and data["crop_pct"] == 0.875
    assert data["mean"] == timm.data.IMAGENET_DEFAULT_MEAN and data["interpolation"] == "bicubic"


def test_another_num_classes_loads_everything_but_the_classifier(export):
    directory, saved = export
    model = create(export_dir=directory, pretrained=True, num_classes=5)
    loaded, expected = model.state_dict(), saved.state_dict()
    assert set(loaded) == set(expected)
    for key, value in expected.items():
        if key.startswith("head.classifier."):
            assert loaded[key].shape[0] == 5 and not torch.equal(loaded[key][:5], value[:5])
        else:
            assert torch.equal(loaded[key], value), key


def test_num_classes_zero_returns_the_pooled_features(export):
    directory, saved = export
    model = create(export_dir=directory, pretrained=True, num_classes=0).eval()
    x = images(16)
    with torch.no_grad():
        features = model(x)
        assert features.shape == (2, model.head_hidden_size) and isinstance(model.get_classifier(), torch.nn.Identity)
        assert torch.equal(features, saved.forward_head(saved.forward_features(x), pre_logits=True))


def test_in_chans_adapts_the_pretrained_stem(export):
    directory, saved = export
    model = create(export_dir=directory, pretrained=True, in_chans=1).eval()
    assert torch.allclose(model.stem.conv.weight, saved.stem.conv.weight.sum(1, keepdim=True))
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_pretrained_cfg_overlay_is_honoured(export, tmp_path):
    directory, saved = export
    model = create(export_dir=directory, pretrained=True, pretrained_cfg_overlay={"mean": (0.1, 0.2, 0.3)})
    assert resolve_data_config({}, model=model)["mean"] == (0.1, 0.2, 0.3)
    weights = str(directory / "model.safetensors")
    from_file = create(subnet=SUBNET, num_classes=10, pretrained=True, pretrained_cfg_overlay={"file": weights})
    x = images(16)
    with torch.no_grad():
        assert torch.equal(from_file.eval()(x), saved(x)) and torch.equal(model.eval()(x), saved(x))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"subnet": SUBNET, "pretrained": True}, "no hub weights"),
        ({"subnet": SUBNET, "out_indices": (1,)}, "features_only=True"),
        ({"subnet": SUBNET, "features_only": True, "feature_cls": "list"}, "skip its input resize"),
        ({"subnet": SUBNET, "pretrained_cfg": "in1k"}, "no pretrained tags"),
        ({"subnet": SUBNET, "drop_path_rate": 1.5}, r"drop_path_rate=1.5 is not a probability"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create(**kwargs)


def test_an_argument_the_model_does_not_take_is_a_type_error():
    with pytest.raises(TypeError, match=r"does not take \['size'\]"):
        create(subnet=SUBNET, size=3)


def test_bad_export_directories_name_the_fix(export, tmp_path):
    with pytest.raises(ValueError, match="is not an exported model"):
        create(export_dir=tmp_path)
    with pytest.raises(ValueError, match="pass one"):
        create(export_dir=export[0], subnet=SUBNET)
    (tmp_path / "subnet.json").write_text(json.dumps({"subnet": SUBNET, "num_classes": 10}))
    with pytest.raises(ValueError, match=r"model\.safetensors does not exist"):
        create(export_dir=tmp_path, pretrained=True)
    (tmp_path / "subnet.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        create(export_dir=tmp_path)


def test_features_only_gives_one_map_per_stage_matching_feature_info(export):
    directory, saved = export
    features = create(export_dir=directory, pretrained=True, features_only=True).eval()
    info = saved.feature_info
    assert [f["module"] for f in info] == ["stem", *(f"stages.{i}" for i in range(len(CFG.stages)))]
    x = images(40)  # resized to the resolution first: reductions count from 16 px
    with torch.no_grad():
        maps = features(x)
        expected = saved.forward_intermediates(x, intermediates_only=True)
    assert len(maps) == len(info) == len(CFG.stages) + 1
    assert features.feature_info.channels() == [f["num_chs"] for f in info]
    assert features.feature_info.reduction() == [f["reduction"] for f in info] == [2, 2, 4, 4, 8]
    for feature, reference, entry in zip(maps, expected, info):
        side = math.ceil(CFG.resolution / entry["reduction"])
        assert feature.shape == (len(x), entry["num_chs"], side, side) and torch.equal(feature, reference)
    two = create(subnet=SUBNET, features_only=True, out_indices=(1, -1))
    assert [m.shape[1] for m in two(x)] == [info[1]["num_chs"], info[-1]["num_chs"]]


def test_forward_intermediates_and_pruning(export):
    saved = copy.deepcopy(export[1])
    x = images(16)
    with torch.no_grad():
        final, maps = saved.forward_intermediates(x)
        assert torch.equal(final, saved.forward_features(x)) and len(maps) == 5
        last_two = saved.forward_intermediates(x, indices=2, intermediates_only=True)
        assert all(torch.equal(a, b) for a, b in zip(last_two, maps[-2:]))
        early, (stem, second) = saved.forward_intermediates(x, indices=[0, -3], stop_early=True)
        assert torch.equal(early, maps[2]) and torch.equal(stem, maps[0]) and torch.equal(second, maps[2])
        with pytest.raises(ValueError, match="feature indices"):
            saved.forward_intermediates(x, indices=[5])
        with pytest.raises(ValueError, match="NCHW"):
            saved.forward_intermediates(x, output_fmt="NHWC")
        assert saved.prune_intermediate_layers([1, 2]) == [1, 2]
        assert (
            len(saved.stages) == 2 and saved.num_classes == 0 and saved.num_features == saved.feature_info[2]["num_chs"]
        )
        assert torch.allclose(saved(x), maps[2].mean((2, 3)), atol=1e-6)
        assert torch.allclose(optimize_for_inference(saved)(x), maps[2].mean((2, 3)), atol=1e-5)


def test_drop_path_changes_training_outputs_only():
    model = randomize(create(subnet=SUBNET, drop_path_rate=0.5), seed=1)
    plain = create(subnet=SUBNET)
    plain.load_state_dict(model.state_dict())
    rates = [m.drop_path.drop_prob for stage in model.stages for m in stage if isinstance(m.drop_path, DropPath)]
    assert rates == sorted(rates) and rates[0] > 0 and rates[-1] == 0.5
    later_mbconvs = [m for stage in model.stages for m in stage if hasattr(m, "shortcut")][1:]  # the first has rate 0
    assert all(
        isinstance(m.drop_path, DropPath) == (m.shortcut.stride == 1 and m.shortcut.conv is None) for m in later_mbconvs
    )
    x = images(16, batch=8)
    with torch.no_grad():
        expected = plain.eval()(x)
        assert torch.equal(model.eval()(x), expected)
        fast = optimize_for_inference(model)
        assert not any(isinstance(m, (DropPath, torch.nn.Dropout)) for m in fast.modules())
        assert torch.allclose(fast(x), expected, atol=1e-5 * expected.abs().max().item())
    torch.manual_seed(0)
    assert not torch.allclose(model.train()(x), plain.train()(x))  # some branches dropped


def test_reset_classifier():
    model = create(subnet=SUBNET).eval()
    x = images(16)
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model.num_classes == 3 and model(x).shape == (2, 3)
    model.reset_classifier(0)
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_head(model.forward_features(x), pre_logits=True))
    assert model.cost["params"] == CFG.space.cost(CFG, 0).params
    with pytest.raises(ValueError, match="average-pools"):
        model.reset_classifier(3, global_pool="max")


def test_no_weight_decay_and_group_matcher_cover_the_parameters():
    model = create(subnet=SUBNET)
    names = {name for name, _ in model.named_parameters()}
    skipped = model.no_weight_decay()
    tables = {n for n in names if n.endswith("position_bias.table")}
    scales = {n for n in names if re.search(r"scale_(attn|mlp)\.weight$", n)}
    assert tables and scales and skipped == tables | scales
    blocks = sum(len(stage) for stage in model.stages)
    for coarse, groups in ((False, blocks + 2), (True, len(model.stages) + 2)):
        matcher = model.group_matcher(coarse)
        assert all(any(re.match(p, n) for p in matcher.values()) for n in names)
        grouped = group_parameters(model, matcher)
        assert len(grouped) == groups and sorted(n for g in grouped.values() for n in g) == sorted(names)


def test_gradient_checkpointing_gives_the_same_gradients(monkeypatch):
    model = randomize(create(subnet=SUBNET), seed=2).train()
    checkpointed = copy.deepcopy(model)
    checkpointed.set_grad_checkpointing()
    calls = []
    original = supernet.static_model.checkpoint_seq

    def counted(stage: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        calls.append(stage)
        return original(stage, x)

    monkeypatch.setattr(supernet.static_model, "checkpoint_seq", counted)
    x = images(16, batch=4)
    model(x).square().sum().backward()
    checkpointed(x).square().sum().backward()
    assert len(calls) == len(model.stages)
    for (name, a), b in zip(model.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name


def test_timm_optimizer_and_ema_train_it():
    model = randomize(create(subnet=SUBNET, drop_path_rate=0.1), seed=4).train()
    optimizer = create_optimizer_v2(model, "adamw", lr=1e-2, weight_decay=0.05)
    decay_of = {id(p): group["weight_decay"] for group in optimizer.param_groups for p in group["params"]}
    parameters = dict(model.named_parameters())
    assert all(decay_of[id(parameters[name])] == 0.0 for name in model.no_weight_decay())
    assert decay_of[id(model.stem.conv.weight)] == 0.05
    ema = ModelEmaV3(model, decay=0.9)
    before = model.stem.conv.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(images(16, batch=4)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    ema.update(model)
    after = model.stem.conv.weight.detach()
    assert torch.isfinite(loss) and not torch.equal(after, before)
    assert torch.allclose(ema.module.stem.conv.weight, 0.9 * before + 0.1 * after, atol=1e-6)


def test_layer_decay_follows_the_group_matcher():
    model = create(subnet=SUBNET)
    optimizer = create_optimizer_v2(model, "adamw", weight_decay=0.05, layer_decay=0.5)
    scale_of = {id(p): group["lr_scale"] for group in optimizer.param_groups for p in group["params"]}
    blocks = sum(len(stage) for stage in model.stages)
    assert scale_of[id(model.stem.conv.weight)] == 0.5 ** (blocks + 1)
    assert scale_of[id(model.stages[0][0].depthwise.conv.weight)] == 0.5**blocks
    assert scale_of[id(model.get_classifier().weight)] == 1.0


@pytest.mark.parametrize("inference", [False, True])
def test_load_model_carries_the_exports_preprocessing(export, inference):
    """``nasvit.load_model`` preprocesses as the export was trained, like timm's ``export_dir`` path (without it,
    timm falls back to 224 px ImageNet statistics)."""
    import nasvit

    directory, _ = export
    model = nasvit.load_model(directory, inference=inference)
    through_timm = create(export_dir=directory, pretrained=True)
    assert resolve_data_config({}, model=model) == resolve_data_config({}, model=through_timm)
    assert resolve_data_config({}, model=model)["input_size"] == (3, 20, 20)
