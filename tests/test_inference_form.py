"""The inference form of a static model computes the same function with BN folded and channels-last weights."""

from __future__ import annotations

import random

import pytest
import torch
from supernet_helpers import images, randomize

from nasvit.latency import LatencySettings, LatencyStats, block_timing
from nasvit.latency.block_timing import block_input_shape, block_module, static_block
from nasvit.latency.table_build import enumerate_blocks
from search_space import load_space
from search_space.plan import HeadPlan, MBConvPlan, StemPlan, TransformerPlan
from supernet import NASViT, Supernet, optimize_for_inference
from supernet.inference import ConstantBias, PooledPointwise, fold_batch_norm
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


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
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


def test_fold_batch_norm_with_a_biased_grouped_strided_conv():
    conv = torch.nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4, bias=True)
    bn = randomize(torch.nn.BatchNorm2d(12, eps=1e-3), seed=1).eval()
    torch.nn.init.normal_(conv.bias)
    x = images(9, batch=2, seed=2).repeat(1, 3, 1, 1)[:, :8]
    with torch.no_grad():
        assert torch.allclose(fold_batch_norm(conv, bn)(x), bn(conv(x)), atol=1e-5)
    with pytest.raises(ValueError, match="affine BatchNorm with running statistics"):
        fold_batch_norm(conv, torch.nn.BatchNorm2d(12, affine=False))


def one_plan_of_each_kind(space):
    kinds = {}
    for plan in enumerate_blocks(space, [space.resolutions[0]]):
        kinds.setdefault(type(plan), plan)
    assert set(kinds) == {StemPlan, MBConvPlan, TransformerPlan, HeadPlan}
    return list(kinds.values())


def test_latency_table_blocks_are_the_inference_form_of_static_blocks():
    space = load_space("tiny")
    for index, plan in enumerate(one_plan_of_each_kind(space)):
        static = randomize(static_block(space, plan), seed=index).eval()
        x = torch.randn(block_input_shape(plan, 2))
        with torch.inference_mode():
            expected, got = static(x), optimize_for_inference(static)(x)
        assert torch.allclose(got, expected, atol=1e-5 * expected.abs().max().item()), plan
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in block_module(space, plan).modules())


def test_latency_table_feeds_blocks_channels_last_inputs_after_the_stem(monkeypatch):
    space = load_space("tiny")
    seen = []

    def spy(modules, shapes, settings, memory_formats):
        seen.extend(zip(modules, memory_formats, strict=True))
        return [LatencyStats(1.0, 1.0, 1.0, 1)] * len(modules)

    monkeypatch.setattr(block_timing, "measure_modules_interleaved", spy)
    plans = one_plan_of_each_kind(space)
    assert [s.median_ms for s in block_timing.time_blocks(space, plans, LatencySettings())] == [1.0] * 4
    assert [layout for _, layout in seen] == [torch.contiguous_format] + [torch.channels_last] * 3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for module, _ in seen for m in module.modules())
