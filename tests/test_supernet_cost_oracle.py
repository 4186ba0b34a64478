"""The analytical cost model against PyTorch's own FLOP counter and parameter count, on exported models."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from search_space import load_space
from supernet import NASViT, Supernet


def cases():
    for name in ("tiny", "nasvit", "nasvit_official", "cifar", "cifar_cnn"):  # cifar_cnn: conv stages only
        space = load_space(name)
        rng = random.Random(5)
        for cfg in [space.min_subnet(), space.max_subnet(), space.sample(rng), space.sample(rng)]:
            yield pytest.param(cfg.replace(resolution=space.resolutions[0]), id=f"{name}-{len(str(cfg)) % 97}")


@pytest.mark.parametrize("cfg", list(cases()))
def test_macs_match_flop_counter(cfg):
    model = NASViT(cfg).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, cfg.resolution, cfg.resolution))
    assert cfg.space.cost(cfg).macs == pytest.approx(counter.get_total_flops() / 2, rel=0.005)


@pytest.mark.parametrize("cfg", list(cases()))
def test_params_match_exported_model_exactly(cfg):
    model = NASViT(cfg)
    assert cfg.space.cost(cfg).params == sum(p.numel() for p in model.parameters())


def test_exported_model_carries_its_cost():
    space = load_space("tiny")
    cfg = space.sample(random.Random(2))
    static = Supernet(space, num_classes=10).export(cfg)
    cost = space.cost(cfg, num_classes=10)
    assert static.cost == {"macs": cost.macs, "params": cost.params, "activations": cost.activations}
