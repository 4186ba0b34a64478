"""One optimiser step of the reference recipe (``configs/train/nasvit_reference.yaml``) equals the NASViT reference
code's step, before and after its epoch-100 switch.

The figures in ``tests/fixtures/reference_step/`` were recorded by ``tools/reference_step_fixture.py`` from the
reference's own ``train_one_epoch`` and ``Constraint`` optimiser (CPU, float64) on a reduced supernet with the
reference's rules (``fixtures/reference_step/space.yaml``), from the weights, batch, teacher logits and AdamW state of
``tests/reference_step_setup.py``. Here the same start is rebuilt without the reference code and our recipe's step
runs on it: its sandwich step built from the shipped config, the teacher ensemble, the engine's clip-and-step. The
recorded signature fails on a wrong rule (checked by hand: no clamp, eps 0, scale vectors as separate tensors, no
5x temperature, the largest-only gradient once, no clip of the subnets' gradient, the switch an epoch late: each
off by 0.05 to 2 relative, against about 7e-7 here).
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor

from supernet.training.sandwich import sample_subnets
from tests import reference_step_setup as setup

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def recorded():
    meta = json.loads((setup.FIXTURE_DIR / "step.json").read_text())
    payload = torch.load(setup.FIXTURE_DIR / "step.pt", weights_only=True)
    sq = {name: float(v) for name, v in zip(payload["names"], payload["exp_avg_sq"]) if v > 0}
    return meta, payload, sq


def _relative(actual: Tensor, expected: Tensor) -> float:
    return float((actual - expected).abs().max() / expected.abs().max())


def _compare(updates: dict[str, Tensor], payload: dict, case: dict, seed: int) -> dict[str, float]:
    """The largest relative differences of our update's signature from the recorded one."""
    names = payload["names"]
    ours = setup.update_signature(names, updates, seed)
    changed = case["norms"] > setup.NORM_FLOOR
    assert torch.equal(ours["norms"] > setup.NORM_FLOOR, changed), "another set of tensors changed"
    norms = (ours["norms"] - case["norms"]).abs() / case["norms"].clamp(min=setup.NORM_FLOOR)
    return {
        "norms": float(norms.max()),
        "projections": _relative(ours["projections"], case["projections"]),
        "small": max(_relative(updates[name], tensor) for name, tensor in case["small"].items()),
    }


@pytest.mark.parametrize("epoch", [100, 101])
def test_one_step_matches_the_reference_code(recorded, epoch):
    meta, payload, sq = recorded
    seed, step = meta["seed"], meta["step"]
    config = setup.reference_config(seed)
    net = setup.filled_supernet(seed)
    subnets = [cfg.to_dict() for _, cfg in sample_subnets(net, seed, step, config.sandwich.num_random)]
    assert subnets == meta["subnets"], "the recorded subnets are no longer those the recipe samples"
    images, *teachers = setup.batch(seed)
    updates = setup.run_our_step(net, images, teachers, epoch, sq, seed, step, config)
    differences = _compare(updates, payload, payload["cases"][str(epoch)], seed)
    assert max(differences.values()) < TOLERANCE, differences
