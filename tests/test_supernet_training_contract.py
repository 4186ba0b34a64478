"""Gradients of a subnet step: finite, non-zero on what the subnet uses, exactly zero on sliced-away parts,
and absent on tensors the subnet never touches."""

from __future__ import annotations

import random

import pytest
import torch

from search_space import load_space
from supernet import NASViT, Supernet
from supernet.elastic import exported_state
from tests.supernet_helpers import images, randomize


def used_regions(net: Supernet) -> dict[str, torch.Tensor]:
    """Per supernet parameter, a 0/1 mask of the entries the active subnet reads (traced through the export)."""
    static = NASViT(net.active_subnet, net.num_classes)
    state = exported_state(net, static, keep_vars=True)
    params = dict(net.named_parameters())
    total = sum(value.sum() for value in state.values() if value.requires_grad)
    grads = torch.autograd.grad(total, list(params.values()), allow_unused=True)
    return {name: (grad != 0).float() for name, grad in zip(params, grads) if grad is not None}


@pytest.mark.parametrize("space_name", ["tiny", "nasvit"])
def test_gradient_contract(space_name):
    space = load_space(space_name)
    net = randomize(Supernet(space, num_classes=10)).train()
    rng = random.Random(0)
    randoms = 2 if space_name == "tiny" else 0  # ImageNet size: the extremes only (seconds each); tiny covers breadth
    for cfg in [space.min_subnet(), space.max_subnet(), *(space.sample(rng) for _ in range(randoms))]:
        cfg = cfg.replace(resolution=space.resolutions[0])
        net.set_active_subnet(cfg)
        regions = used_regions(net)
        net.zero_grad(set_to_none=True)
        logits = net(images(cfg.resolution, batch=4))
        (logits * torch.randn_like(logits)).sum().backward()
        untouched = 0
        for name, parameter in net.named_parameters():
            if name not in regions:
                assert parameter.grad is None, f"{cfg}: {name} is not used but got a gradient"
                untouched += 1
                continue
            grad, mask = parameter.grad, regions[name]
            assert grad is not None, f"{cfg}: {name} is used but got no gradient"
            assert torch.isfinite(grad).all(), name
            assert (grad * mask).abs().sum() > 0, f"{cfg}: {name} got an all-zero gradient"
            assert torch.equal(grad * (1 - mask), torch.zeros_like(grad)), f"{cfg}: sliced-away part of {name}"
        if cfg != space.max_subnet().replace(resolution=cfg.resolution):
            assert untouched > 0  # shallower subnets leave blocks and scales untouched


def test_inactive_switchable_scales_get_no_gradient():
    space = load_space("tiny")
    net = randomize(Supernet(space)).train()
    cfg = space.max_subnet()
    net.set_active_subnet(cfg)
    net(images(cfg.resolution)).sum().backward()
    scale = net.stages[2][1].scale_attn
    with_grad = [key for key, vector in scale.vectors.items() if vector.grad is not None]
    assert with_grad == [scale.active_key] == ["d3_w40"]
