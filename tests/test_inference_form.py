"""The inference form of a static model computes the same function with BN folded and channels-last weights."""

from __future__ import annotations

import random

import pytest
import torch
from supernet_helpers import images, randomize

from nasvit.latency.lut import block_module, enumerate_blocks
from search_space import load_space
from supernet import NASViT, Supernet, optimize_for_inference
from supernet.inference import ConstantBias, PooledPointwise
from supernet.layers import LayerScale, RelativePositionBias


def subnets(space, count: int):
    rng = random.Random(0)
    return [space.min_subnet(), space.max_subnet(), *(space.sample(rng) for _ in range(count))]


@pytest.mark.parametrize("name", ["tiny", "nasvit_official"])
def test_inference_form_matches_the_static_model(name):
    space = load_space(name)
    count = 6 if name == "tiny" else 1
    for index, cfg in enumerate(subnets(space, count)):
        if name != "tiny":
            cfg = cfg.replace(resolution=min(space.resolutions))
        model = randomize(NASViT(cfg), seed=index).eval()
        x = images(cfg.resolution)
        with torch.inference_mode():
            expected, got = model(x), optimize_for_inference(model)(x)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-5 * expected.abs().max().item()), cfg


def test_inference_form_replaces_what_it_folds_and_leaves_the_original():
    space = load_space("tiny")
    model = randomize(NASViT(space.max_subnet())).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = optimize_for_inference(model)
    kinds = {type(m) for m in fast.modules()}
    assert not kinds & {torch.nn.BatchNorm2d, LayerScale, RelativePositionBias}
    assert {PooledPointwise, ConstantBias} <= kinds
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())
    spatial = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
    assert spatial and all(w.is_contiguous(memory_format=torch.channels_last) for w in spatial)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")  # torch.jit notices
def test_inference_form_scripts():
    space = load_space("tiny")
    model = randomize(NASViT(space.sample(random.Random(3)))).eval()
    fast = optimize_for_inference(model)
    x = images(model.resolution)
    with torch.inference_mode():
        assert torch.allclose(torch.jit.script(fast)(x), fast(x), atol=1e-6)


def test_inference_form_refuses_a_supernet():
    with pytest.raises(TypeError, match="export the subnet"):
        optimize_for_inference(Supernet(load_space("tiny")))


def test_latency_table_times_inference_form_blocks():
    space = load_space("tiny")
    for plan in enumerate_blocks(space, [space.resolutions[0]])[:6]:
        module = block_module(space, plan)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules()), plan
