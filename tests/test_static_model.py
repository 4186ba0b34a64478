"""Exported static models: TorchScript, ONNX, timm registration, BN recalibration."""

from __future__ import annotations

import io
import random

import pytest
import timm
import torch

from search_space import load_space
from supernet import NASViT, Supernet, recalibrate_bn
from supernet.ops import ElasticOps, LayerOps, StaticOps
from tests.supernet_helpers import images, randomize


def exported_tiny(seed: int = 0) -> NASViT:
    space = load_space("tiny")
    net = randomize(Supernet(space, num_classes=10), seed=seed).eval()
    return net.export(space.sample(random.Random(seed)))


def test_torchscript_script_and_trace_match():
    model = exported_tiny()
    x = images(model.resolution)
    expected = model(x)
    assert torch.allclose(torch.jit.script(model)(x), expected, atol=1e-6)
    assert torch.allclose(torch.jit.trace(model, x)(x), expected, atol=1e-6)


def test_onnx_matches_pytorch():
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install '.[onnx]')")
    pytest.importorskip("onnx", reason="onnx not installed (pip install '.[onnx]')")
    model = exported_tiny(seed=1)
    x = images(model.resolution)
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17)
    session = ort.InferenceSession(buffer.getvalue())
    (output,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert abs(output - model(x).detach().numpy()).max() < 1e-5


def test_timm_create_model():
    cfg = load_space("tiny").max_subnet()
    model = timm.create_model("nasvit_subnet", subnet=str(cfg), num_classes=7)
    assert isinstance(model, NASViT) and model(images(32)).shape == (2, 7)
    assert model.forward_head(model.forward_features(images(32)), pre_logits=True).shape == (2, cfg.head_width)
    assert timm.create_model("nasvit_subnet").subnet == timm.create_model("nasvit_min").subnet  # a name alone builds


def test_bn_recalibration_is_a_cumulative_average_and_restores_modes():
    cfg = load_space("tiny").min_subnet()
    model = NASViT(cfg).eval()
    batches = [images(cfg.resolution, batch=8, seed=i) for i in range(3)]
    assert recalibrate_bn(model, [(b, torch.zeros(8)) for b in batches]) == 3
    assert not model.training and model.stem.bn.momentum == 0.1
    stem_out = [model.stem.conv(b) for b in batches]
    expected_mean = torch.stack([o.mean((0, 2, 3)) for o in stem_out]).mean(0)
    assert torch.allclose(model.stem.bn.running_mean, expected_mean, atol=1e-5)


def test_bn_recalibration_needs_batches():
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_bn(NASViT(load_space("tiny").min_subnet()), [])


def test_both_layer_factories_answer_every_request_of_the_builders():
    members = [name for name in vars(LayerOps) if not name.startswith("_")]
    assert len(members) == 10
    for ops in (StaticOps, ElasticOps):
        assert isinstance(ops, LayerOps) and all(callable(getattr(ops, name)) for name in members), ops
