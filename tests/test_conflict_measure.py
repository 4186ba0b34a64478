"""Dataset-level gradient conflict (``supernet.training.conflict_measure``) against a direct computation."""

from __future__ import annotations

import copy

import pytest
import torch

from search_space import load_space
from supernet import Supernet
from supernet.training.alpha_divergence import adaptive_alpha_divergence
from supernet.training.conflict_measure import dataset_conflicts
from supernet.training.losses import soft_cross_entropy
from supernet.training.sandwich import parameter_groups
from tests.supernet_helpers import randomize


def _batches(count: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    labels = [torch.randint(0, 10, (4,), generator=generator) for _ in range(count)]
    return [(torch.randn(4, 3, 32, 32, generator=generator), torch.eye(10)[y]) for y in labels]


def _accumulated(net: Supernet, cfg, batches, teacher=None) -> tuple[list, list]:
    """The mean gradient of ``cfg`` over ``batches`` per parameter (on the targets, or distilled from ``teacher``
    logits), and its logits per batch."""
    net.zero_grad(set_to_none=True)
    net.set_active_subnet(cfg)
    logits_per_batch = []
    for index, (images, targets) in enumerate(batches):
        logits = net(images)
        loss = (
            soft_cross_entropy(logits, targets)
            if teacher is None
            else adaptive_alpha_divergence(logits, teacher[index], -1.0, 1.0, 5.0)
        )
        (loss / len(batches)).backward()
        logits_per_batch.append(logits.detach())
    grads = [None if p.grad is None else p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return grads, logits_per_batch


def test_the_shares_are_those_of_the_accumulated_gradients_and_the_supernet_is_left_as_found():
    space = load_space("tiny")
    net = randomize(Supernet(space, 10), seed=1).train()
    subnet = space.min_subnet()
    batches = _batches(3)
    before = copy.deepcopy(net.state_dict())
    stats = dataset_conflicts(net, subnet, batches)
    for key, value in net.state_dict().items():  # BatchNorm statistics put back, weights untouched
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None for p in net.parameters()) and net.active_subnet == space.max_subnet()

    largest, teacher = _accumulated(net, space.max_subnet(), batches)
    smaller, _ = _accumulated(net, subnet, batches, teacher)
    counted, conflicting = {}, {}
    for group, a, b in zip(parameter_groups(net), largest, smaller):
        if a is None or b is None or not a.any() or not b.any():
            continue
        counted[group] = counted.get(group, 0) + 1
        conflicting[group] = conflicting.get(group, 0) + int(float((a * b).sum()) < 0)
    assert stats.num_tensors == sum(counted.values())
    assert stats.overall == pytest.approx(sum(conflicting.values()) / sum(counted.values()))
    assert {g: v for g, v in stats.per_group.items() if g in counted} == pytest.approx(
        {g: conflicting[g] / counted[g] for g in counted}
    )
    assert 0 < stats.overall < 1 and {"s1", "s4"} <= set(counted)


def test_a_non_finite_loss_is_refused():
    net = Supernet(load_space("tiny"), 10)
    images, targets = _batches(1)[0]
    with pytest.raises(ValueError, match="not finite"):
        dataset_conflicts(net, net.space.min_subnet(), [(images * float("nan"), targets)])
