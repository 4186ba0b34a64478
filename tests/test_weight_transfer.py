"""Starting a scaled model from its base's supernet: every tensor the base covers is what the base supernet gives
a subnet of that size, so a model scaled by resolution alone computes exactly what the base supernet does."""

from __future__ import annotations

import pytest
import torch

from search_space import load_space
from search_space.scaling import scale_subnet
from supernet import Supernet
from supernet.weight_transfer import transfer_weights
from tests.supernet_helpers import randomize


@pytest.fixture(scope="module")
def base_net() -> Supernet:
    return randomize(Supernet(load_space("tiny"))).eval()


def test_a_resolution_scaled_model_computes_what_the_base_supernet_does(base_net):
    base = base_net.space.min_subnet().replace(resolution=16)
    scaled = scale_subnet(base, "r", 2)  # 24 px: inside the supernet's 32 px, so its position tables are crops
    target = Supernet(scaled.space).eval()
    transfer = transfer_weights(base_net.state_dict(), target)
    assert transfer.fresh == () and transfer.parameter_share == 1.0
    base_net.set_active_subnet(base.replace(resolution=scaled.cfg.resolution))
    x = torch.randn(2, 3, scaled.cfg.resolution, scaled.cfg.resolution)
    with torch.no_grad():
        assert torch.equal(target(x), base_net(x))


def test_layers_past_the_base_keep_their_own_initialisation(base_net):
    scaled = scale_subnet(base_net.space.max_subnet(), "d", 2)  # deeper than the supernet in every stage
    target = Supernet(scaled.space)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    transfer = transfer_weights(base_net.state_dict(), target)
    deepest = len(base_net.stages[0])
    assert any(key.startswith(f"stages.0.{deepest}.") for key in transfer.fresh)
    assert not any(key.startswith(f"stages.0.{deepest}.") for key in transfer.copied)
    assert 0.0 < transfer.parameter_share < 1.0
    state, source = target.state_dict(), base_net.state_dict()
    assert all(torch.equal(state[key], before[key]) for key in transfer.fresh)
    assert torch.equal(state["stages.0.0.depthwise.conv.weight"], source["stages.0.0.depthwise.conv.weight"])
