"""A scaled subnet's starting weights: the supernet of its one-subnet space, taken from the base subnet's supernet
checkpoint where shapes allow (:mod:`supernet.weight_transfer`), written as a checkpoint that ``nasvit train --set
space=SPACE --set init_from=FILE`` starts from."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from nasvit.runtime import checkpoint
from search_space import SearchSpace, SubnetConfig, parse_space, space_to_dict
from search_space.scaling import ScaledSubnet
from supernet import Supernet
from supernet.weight_transfer import WeightTransfer, transfer_weights

INIT_SEED = 0  # the initialisation of the tensors the base cannot give, the same on every run


def base_weights(path: str | Path, space: SearchSpace) -> tuple[dict[str, Tensor], int, str]:
    """The weights a scaled model starts from: the checkpoint's EMA weights where it has them (those that search
    and export use), else its raw weights; with the class count and which of the two it was.

    Raises:
        CheckpointError: an unreadable or foreign file, or a supernet of another space than the base subnet's.
    """
    state = checkpoint.load(path)
    saved = parse_space(state["space"], source=f"{path} (space)")
    if saved != space:
        raise checkpoint.CheckpointError(
            f"--checkpoint {path} holds a '{saved.name}' supernet, but the base subnet is of space '{space.name}'; "
            "pass the checkpoint of the supernet the base subnet was searched in"
        )
    entry = "ema" if state.get("ema") is not None else "model"
    return state[entry], state["num_classes"], entry


def write_scaled_checkpoint(
    result: ScaledSubnet, base: SubnetConfig, weights: dict[str, Tensor], num_classes: int, source: str, out: Path
) -> WeightTransfer:
    """Write ``out``: the supernet of ``result`` (``base`` scaled) with every tensor ``weights`` (of checkpoint
    ``source``) covers taken from it, and the rest initialised as a new supernet is (seeded); returns what was
    taken."""
    with torch.random.fork_rng():
        torch.manual_seed(INIT_SEED)
        net = Supernet(result.space, num_classes)
    transfer = transfer_weights(weights, net)
    origin = {
        "checkpoint": source,
        "base_subnet": str(base),
        "rule": result.rule,
        "factor": result.factor,
        "parameter_share": transfer.parameter_share,
        "fresh_tensors": list(transfer.fresh),
    }
    state = checkpoint.TrainingState(
        model=net.state_dict(),
        config={},
        num_classes=num_classes,
        extras={"space": space_to_dict(result.space), "scaled_from": origin},
    )
    checkpoint.save_atomic(state.to_payload(), out)
    return transfer
