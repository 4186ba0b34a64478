"""Two CPU processes with gloo, as torchrun would start them: identical weights on both ranks, falling loss, under
either sampling rule, the sandwich rule with progressive learning. (Not the weights of one process with the global
batch: BatchNorm normalises each rank's batch alone.)"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from nasvit.config.loading import load_config
from nasvit.config.train import TrainConfig
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint

OVERRIDES = [
    "device=cpu",
    "data.batch_size=32",  # per rank: global batch 64
    "sandwich.num_random=1",
    "optim.epochs=1",
    "optim.warmup_epochs=0",
    "eval.bn_batches=1",
    "eval.batch_size=64",
]


# 2 epochs of 4 global batches of 64 in 2 stages: 16-24 px with mixup 0, then 16-32 px with mixup 0.2
PROGRESSIVE = [
    "progressive.stages=2",
    "progressive.mixup=[0, 0.2]",
    "optim.epochs=2",
    "data.search_fraction=0.65",
    "eval.every_epochs=2",
]


def _worker(rank: int, world_size: int, port: int, out: str, rule: str, steps: int) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    overrides = [
        *OVERRIDES,
        f"sampling.rule={rule}",
        f"max_steps={steps}",
        *(PROGRESSIVE if rule == "sandwich" else []),
    ]
    config = load_config(TrainConfig, "configs/train/tiny.yaml", overrides)
    recipe = TrainRecipe(config, Path(out) / "run")
    recipe.run()
    torch.save({"state": recipe.net.state_dict(), "losses": recipe.main_losses}, Path(out) / f"rank{rank}.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the mean loss of the last `window` steps is below that of the first; one path a step learns slower
@pytest.mark.parametrize(("rule", "steps", "window"), [("sandwich", 8, 3), ("spos", 18, 6)])
def test_two_gloo_processes_agree_and_learn(tmp_path, rule, steps, window):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path), rule, steps), nprocs=2, start_method="fork")
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key, value in first["state"].items():
        assert torch.equal(value, second["state"][key]), key
    losses = first["losses"]
    assert len(losses) == steps and sum(losses[-window:]) < sum(losses[:window]), losses
    # only rank 0 wrote the run directory
    assert checkpoint.load(checkpoint.latest(tmp_path / "run"))["step"] == steps
    assert not list((tmp_path / "run").glob("*rank1*"))
    if rule == "sandwich":
        assert "progressive learning stage 2/2 from epoch 2" in (tmp_path / "run" / "train.log").read_text()
