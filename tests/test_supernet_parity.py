"""The exported static model computes what the supernet computes for the same subnet (eval mode, fp32)."""

from __future__ import annotations

import random

import pytest
import torch

from search_space import SpaceError, load_space
from supernet import NASViT, Supernet, recalibrate_bn
from tests.supernet_helpers import images, randomize

# the `nasvit` space's blocks are those of `nasvit_official` at other widths: the default run checks one of the two
SPACES = ["tiny", pytest.param("nasvit", marks=pytest.mark.slow), "nasvit_official", "cifar_cnn"]  # conv stages only


def subnets_at_smallest_resolution(space, count: int = 20, seed: int = 0):
    rng = random.Random(seed)
    cfgs = [space.min_subnet(), space.max_subnet()] + [space.sample(rng) for _ in range(count)]
    return [cfg.replace(resolution=space.resolutions[0]) for cfg in cfgs]


@pytest.mark.parametrize("space_name", SPACES)
def test_export_parity_before_and_after_bn_recalibration(space_name):
    space = load_space(space_name)
    net = randomize(Supernet(space, num_classes=10)).eval()
    count = 10 if space_name == "tiny" else 0  # ImageNet size: the extremes only (seconds each); tiny covers breadth
    for index, cfg in enumerate(subnets_at_smallest_resolution(space, count)):
        net.set_active_subnet(cfg)
        x = images(cfg.resolution, batch=1, seed=index)
        with torch.no_grad():
            static = net.export()
            expected, actual = net(x), static(x)
        assert expected.std() > 1e-3, "logits must not be trivially constant"
        assert torch.allclose(actual, expected, rtol=0, atol=1e-5), f"{cfg}: {(actual - expected).abs().max()}"

        calibration = [images(cfg.resolution, batch=2, seed=100 + i) for i in range(2)]  # two: statistics accumulate
        recalibrate_bn(net, calibration)
        recalibrate_bn(static, calibration)
        with torch.no_grad():
            expected, recalibrated, exported_after = net(x), static(x), net.export()(x)
        assert torch.allclose(recalibrated, expected, rtol=0, atol=1e-5), cfg
        assert torch.allclose(exported_after, expected, rtol=0, atol=1e-5), cfg


def test_export_leaves_active_subnet_and_mode():
    space = load_space("tiny")
    net = Supernet(space)
    active = space.min_subnet()
    net.set_active_subnet(active)
    static = net.export(space.max_subnet())
    assert net.active_subnet == active
    assert static.training and static.subnet == str(space.max_subnet())
    assert not net.eval().export().training


def test_exported_model_is_standalone():
    space = load_space("tiny")
    net = Supernet(space)
    static = net.export(space.sample(random.Random(0)))
    supernet_params = {id(p) for p in net.parameters()}
    assert not any(id(p) in supernet_params for p in static.parameters())
    elastic = [type(m).__name__ for m in static.modules() if type(m).__module__ == "supernet.elastic"]
    assert not elastic  # no elastic op leaked into the export


def test_outputs_have_the_same_type_in_train_and_eval():
    space = load_space("tiny")
    net = Supernet(space, num_classes=5)
    x = images(32)
    assert net.train()(x).shape == net.eval()(x).shape == (2, 5)


def test_supernet_resizes_inputs_to_active_resolution():
    space = load_space("tiny")
    net = randomize(Supernet(space)).eval()
    cfg = space.max_subnet().replace(resolution=16)
    net.set_active_subnet(cfg)
    big = images(32)
    small = torch.nn.functional.interpolate(big, size=(16, 16), mode=space.resize_mode, align_corners=False)
    with torch.no_grad():
        assert torch.equal(net(big), net(small))


def test_config_of_another_space_is_rejected():
    net = Supernet(load_space("tiny"))
    with pytest.raises(SpaceError, match="subnet of space 'nasvit' does not fit this supernet of space 'tiny'"):
        net.set_active_subnet(load_space("nasvit").min_subnet())


def test_static_model_from_config_trains_from_scratch():
    cfg = load_space("tiny").sample(random.Random(1))
    model = NASViT(cfg, num_classes=3)
    logits = model(images(cfg.resolution, batch=4))
    logits.sum().backward()
    assert logits.shape == (4, 3)
    assert all(p.grad is not None for p in model.parameters())
    assert model.subnet_config == cfg


def test_a_shared_scale_layout_holds_one_vector_per_layer_and_exports_it(mini_space_dict):
    from search_space import parse_space
    from supernet.elastic import SwitchableScale

    mini_space_dict["transformer"]["scale_layout"] = "shared"  # the ablation without switchable scaling
    space = parse_space(mini_space_dict, source="mini-shared")
    net = randomize(Supernet(space, num_classes=10)).eval()
    scales = [module for module in net.modules() if isinstance(module, SwitchableScale)]
    assert scales and all(list(module.vectors) == ["shared"] for module in scales)
    for index, cfg in enumerate([space.min_subnet(), space.max_subnet(), space.sample(random.Random(0))]):
        net.set_active_subnet(cfg)
        x = images(cfg.resolution, batch=1, seed=index)
        with torch.no_grad():
            assert torch.allclose(net.export()(x), net(x), rtol=0, atol=1e-5), cfg
        assert sum(p.numel() for p in net.export().parameters()) == space.cost(cfg, num_classes=10).params
