"""The timm conventions nasvit's models follow, each checked here (timm's own ``tests/test_models.py`` runs them on
the named models: ``tools/run_timm_model_tests.sh``): named models with complete default configs, a fixed input size,
``num_features`` / ``head_hidden_size``, ``global_pool=''``, a TypeError for unknown arguments, and torch.fx tracing."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models import get_notrace_functions, get_notrace_modules
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from search_space import load_space
from tests.supernet_helpers import images, randomize

DEFAULT_CFG_KEYS = {
    "input_size",
    "fixed_input_size",
    "pool_size",
    "mean",
    "std",
    "interpolation",
    "crop_pct",
    "num_classes",
    "first_conv",
    "classifier",
}
TINY = str(load_space("tiny").max_subnet().replace(resolution=32))


@pytest.mark.parametrize(("name", "which"), [("nasvit_min", "min"), ("nasvit_max", "max")])
def test_named_models_are_the_nasvit_space_s_extremes_with_complete_default_configs(name, which):
    space = load_space("nasvit")
    subnet = space.min_subnet() if which == "min" else space.max_subnet()
    assert name in timm.list_models("nasvit*") and timm.get_pretrained_cfg(name) is not None
    cfg = timm.get_pretrained_cfg(name).to_dict()
    assert {key for key, value in cfg.items() if value is not None} >= DEFAULT_CFG_KEYS
    side = space.stage_sizes(subnet.resolution)[-1]
    assert cfg["input_size"] == (3, subnet.resolution, subnet.resolution) and cfg["pool_size"] == (side, side)
    assert cfg["fixed_input_size"] and cfg["num_classes"] == 1000
    model = timm.create_model(name, num_classes=0)
    assert model.subnet == str(subnet) and model.default_cfg["pool_size"] == (side, side)
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state
    assert cfg["classifier"] + ".weight" in timm.create_model(name).state_dict()


def test_features_have_the_configured_size_and_widths():
    model = timm.create_model("nasvit_min").eval()
    size = model.default_cfg["input_size"]
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, *size))
        pre_logits = model.forward_head(features, pre_logits=True)
    assert features.shape == (1, model.num_features, *model.default_cfg["pool_size"])
    assert model.num_features == model.feature_info[-1]["num_chs"] and pre_logits.shape == (1, model.head_hidden_size)


def test_an_export_of_the_same_subnet_loads_into_the_named_model(tmp_path):
    space = load_space("nasvit")
    source = randomize(timm.create_model("nasvit_subnet", subnet=str(space.min_subnet())), seed=3).eval()
    weights = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(weights))
    named = timm.create_model("nasvit_min", pretrained=True, pretrained_cfg_overlay={"file": str(weights)}).eval()
    x = torch.randn(1, 3, 192, 192)
    with torch.no_grad():
        assert torch.equal(named(x), source(x))


def test_without_pooling_the_head_acts_at_every_position():
    model = randomize(timm.create_model("nasvit_subnet", subnet=TINY), seed=1).eval()
    x = images(32)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model(x)
        model.reset_classifier(model.num_classes, global_pool="")
        maps = model(x)
    head = model.head
    expected = head.classifier(head.act(head.mix(head.expand(features))).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert maps.shape == (2, model.num_classes, *features.shape[-2:]) and torch.allclose(maps, expected, atol=1e-5)
    assert not torch.allclose(maps.mean((2, 3)), pooled)  # the activation sits between the 1x1 convs and the pool
    unpooled = timm.create_model("nasvit_subnet", subnet=TINY, num_classes=0, global_pool="")
    assert unpooled.eval()(x).shape == (2, unpooled.head_hidden_size, *features.shape[-2:])
    with pytest.raises(ValueError, match="pass 'avg' or ''"):
        model.reset_classifier(0, global_pool="max")


def test_unknown_arguments_are_type_errors_as_timm_expects():
    for name in ("nasvit_min", "nasvit_subnet"):
        with pytest.raises(TypeError, match="does not take"):
            timm.create_model(name, not_a_model_arg=1)


def test_fx_feature_extraction_traces_the_model_with_timm_s_leaves():
    model = randomize(timm.create_model("nasvit_subnet", subnet=TINY), seed=2).eval()
    tracer_kwargs = {"leaf_modules": list(get_notrace_modules()), "autowrap_functions": list(get_notrace_functions())}
    _, nodes = get_graph_node_names(model, tracer_kwargs=tracer_kwargs)
    extractor = create_feature_extractor(model, return_nodes=[nodes[-1]], tracer_kwargs=tracer_kwargs)
    for size in (32, 40):  # the resize is a leaf of the graph, so another input size still runs
        x = images(size)
        with torch.no_grad():
            (traced,) = extractor(x).values()
            assert torch.allclose(traced, model(x), atol=1e-6)


@pytest.mark.slow  # downloads timm's source distribution and runs 20 of its model tests: about two minutes
def test_timm_s_own_model_tests_pass_on_the_named_models():
    script = ["bash", "tools/run_timm_model_tests.sh", "-q"]
    result = subprocess.run(script, capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert int(re.search(r"(\d+) passed", summary).group(1)) >= 8 and "failed" not in summary, summary
