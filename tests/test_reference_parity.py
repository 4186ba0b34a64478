"""Parity with the NASViT reference code without its code: recorded logits of its own static subnets.

``tools/reference_fixtures.py`` filled the reference supernet from a seed (``tests/reference_fill.py``) and
recorded the logits of six subnets in ``tests/fixtures/reference/``. Here the same weights are rebuilt from the
seed and the recorded tensor names, mapped onto nasvit's supernet, and run on the same input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nasvit.reference.convert import official_space
from nasvit.reference.mapping import map_reference
from nasvit.reference.subnet import from_reference, to_reference
from supernet import Supernet
from tests.reference_fill import reference_fill, reference_input

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
RECORD = json.loads((FIXTURES / "parity.json").read_text())
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def reference_weights() -> dict[str, torch.Tensor]:
    return reference_fill(RECORD["shapes"], RECORD["seed"])


@pytest.fixture(scope="module")
def net(reference_weights) -> Supernet:
    space = official_space()
    net = Supernet(space, num_classes=1000)
    net.load_state_dict(map_reference(reference_weights, net.state_dict(), space).state)
    return net.eval()


@pytest.fixture(scope="module")
def expected() -> torch.Tensor:
    return torch.load(FIXTURES / "logits.pt", weights_only=True)  # (subnets, batch, classes)


def images() -> torch.Tensor:
    settings = RECORD["input"]
    return reference_input(settings["batch"], settings["image_size"], settings["seed"])


@pytest.mark.parametrize("index", range(len(RECORD["subnets"])), ids=["min", "max", "r1", "r2", "r3", "r4"])
def test_logits_match_the_reference_code(net, expected, index):
    reference_subnet = RECORD["subnets"][index]
    cfg = from_reference(reference_subnet, net.space)
    assert to_reference(cfg) == reference_subnet
    net.set_active_subnet(cfg)
    with torch.no_grad():
        logits = net(images())
    difference = (logits - expected[index]).abs().max().item()
    print(f"{cfg}: max |logit difference| {difference:.2e}")
    assert difference <= TOLERANCE, f"{cfg}: max |logit difference| {difference:.2e} > {TOLERANCE}"


def _swap_mlp_branches(state: dict[str, torch.Tensor]) -> None:
    for key in [k for k in state if ".mlp1." in k or ".norm2." in k]:
        other = key.replace(".mlp1.", ".mlp2.").replace(".norm2.", ".norm3.")
        state[key], state[other] = state[other], state[key]


def _shift_scale_rows(state: dict[str, torch.Tensor]) -> None:
    for key in [k for k in state if ".vectors.d" in k]:
        state[key] = state[key].roll(1)


def _transpose_head_mix(state: dict[str, torch.Tensor]) -> None:
    for key in [k for k in state if k.endswith("talk_pre.weight")]:
        state[key] = state[key].t().contiguous()


@pytest.mark.parametrize("wrong_rule", [_swap_mlp_branches, _shift_scale_rows, _transpose_head_mix])
def test_the_fill_exposes_a_wrong_rule(net, expected, wrong_rule):
    """The recorded logits are sensitive: a plausible mistake in the map moves them far beyond the tolerance."""
    right = {key: value.clone() for key, value in net.state_dict().items()}
    wrong = dict(right)
    wrong_rule(wrong)
    net.load_state_dict(wrong)
    try:
        net.set_active_subnet(from_reference(RECORD["subnets"][0], net.space))
        with torch.no_grad():
            difference = (net(images()) - expected[0]).abs().max().item()
    finally:
        net.load_state_dict(right)
    assert difference > 50 * TOLERANCE
