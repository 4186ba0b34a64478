"""SIGTERM during the end-of-epoch evaluation: the resumed run makes that evaluation and logs what an
uninterrupted run logs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

import nasvit.recipes.train as train_recipe
from nasvit.cli import main

SETTINGS = [
    "data.batch_size=128",
    "data.search_fraction=0.65",  # 270 training images: 2 steps an epoch
    "sampling.rule=spos",  # one path a step, the cheapest rule: the interrupt and its resume do not depend on it
    "device=cpu",
    "eval.bn_batches=1",
    "eval.every_epochs=1",
    "max_steps=2",  # one epoch of 2 steps, ending in an evaluation (resuming training exactly is test_train.py's)
]


def train(out: Path, *extra: str) -> int:
    sets = [x for setting in SETTINGS for x in ("--set", setting)]
    return main(["train", "--config", "configs/train/tiny.yaml", "--out", str(out), *sets, *extra])


@pytest.fixture
def restore_sigterm():
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def test_sigterm_during_evaluation_resumes_with_the_same_metrics(tmp_path, monkeypatch, restore_sigterm):
    assert train(tmp_path / "straight") == 0
    evaluate = train_recipe.evaluate_subnet
    calls = []

    def terminated_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler turns it into KeyboardInterrupt here
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(train_recipe, "evaluate_subnet", terminated_once)
    assert train(tmp_path / "split") == 130
    assert not (tmp_path / "split" / "metrics.jsonl").exists()  # the interrupted evaluation logged nothing
    monkeypatch.setattr(train_recipe, "evaluate_subnet", evaluate)
    assert train(tmp_path / "split", "--resume", "auto") == 0
    straight = (tmp_path / "straight" / "metrics.jsonl").read_text()
    assert len(straight.splitlines()) == 1
    assert (tmp_path / "split" / "metrics.jsonl").read_text() == straight
