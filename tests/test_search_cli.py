"""``nasvit search`` on a (briefly) trained tiny supernet: files, resume, bad inputs, distributed evaluation."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from evolve import parse_budget
from nasvit.cli import main
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig
from nasvit.config.train import TrainConfig
from nasvit.recipes.search import SearchRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import load_subnet

SEARCH = "configs/search/tiny.yaml"
SMALL = ["evolve.population=6", "evolve.generations=2", "evolve.parents=3", "eval.bn_batches=1", "device=cpu"]
PREDICTOR = ["evolve.predictor=ridge", "evolve.predictor_pool=2", "evolve.generations=3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("train")
    overrides = ["data.batch_size=128", "sandwich.num_random=1", "max_steps=2", "device=cpu"]
    TrainRecipe(load_config(TrainConfig, "configs/train/tiny.yaml", overrides), run).run()
    return checkpoint.latest(run)


def search(trained: Path, out: Path, *overrides: str, resume: bool = False) -> dict:
    config = load_config(SearchConfig, SEARCH, [*SMALL, *overrides])
    return SearchRecipe(config, trained, out, resume=resume).run()


def test_search_writes_every_file(trained, tmp_path):
    summary = search(trained, tmp_path)
    assert sorted(parse_budget(label).limit for label in summary["best"]) == [0.8e6, 3e6]
    for label, best in summary["best"].items():
        assert best is not None and best["macs"] <= parse_budget(label).limit
    lines = (tmp_path / "candidates.jsonl").read_text().splitlines()
    assert len(lines) == summary["evaluations"] > 0
    assert {"subnet", "metrics", "costs", "generation"} <= set(json.loads(lines[0]))
    assert json.loads((tmp_path / "pareto.json").read_text())
    best = json.loads((tmp_path / "best.json").read_text())
    assert load_subnet(best["budgets"][0]["subnet"]).space_name == "tiny"
    assert (tmp_path / "pareto.png").stat().st_size > 1000
    assert list((tmp_path / "tensorboard").glob("events.*"))
    assert summary["calibration_seconds"] > 0 and summary["accuracy_seconds"] > 0


def test_resumed_search_ends_like_an_uninterrupted_one(trained, tmp_path):
    straight = search(trained, tmp_path / "straight")
    search(trained, tmp_path / "split", "evolve.generations=1")
    resumed = search(trained, tmp_path / "split", resume=True)
    assert resumed["best"] == straight["best"]
    assert (tmp_path / "split" / "best.json").read_text() == (tmp_path / "straight" / "best.json").read_text()
    assert resumed["evaluations"] < straight["evaluations"]  # nothing logged was evaluated again


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            'evolve.budgets=["macs<=100K"]',
            "macs <= 100K is unsatisfiable: the smallest attainable macs in space 'tiny' is 715K",
        ),
        ('evolve.budgets=["flops<=3M"]', "unknown metric 'flops'"),
        ('evolve.budgets=["macs<3M"]', "macs<3M"),
        ('evolve.budgets=["latency_ms<=140%"]', "a share of the space's range lies between 0% and 100%"),
        ("latency.correction_rounds=-1", "latency.correction_rounds must be 0 or more, got -1"),
        ("space=nasvit", "holds a supernet of space 'tiny', but the search config asks for 'nasvit'"),
    ],
)
def test_bad_inputs_fail_in_one_line_before_evaluating(trained, tmp_path, capsys, override, message):
    argv = ["search", "--config", SEARCH, "--checkpoint", str(trained), "--out", str(tmp_path), "--set", override]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "candidates.jsonl").exists()


def _worker(rank: int, port: int, trained: str, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    summary = search(Path(trained), Path(out), *PREDICTOR)
    if rank == 0:
        (Path(out) / "summary.json").write_text(json.dumps(summary["best"]))


def test_distributed_evaluation_matches_single_process(trained, tmp_path):
    """With the accuracy predictor fitted from generation 1: the same candidates, predictions and choices."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_worker, args=(port, str(trained), str(tmp_path / "two")), nprocs=2, start_method="fork")
    single = search(trained, tmp_path / "one", *PREDICTOR)
    assert json.loads((tmp_path / "two" / "summary.json").read_text()) == single["best"]
    for name in ("best.json", "candidates.jsonl", "generations.jsonl"):
        assert (tmp_path / "two" / name).read_text() == (tmp_path / "one" / name).read_text()
    assert '"predicted"' in (tmp_path / "one" / "candidates.jsonl").read_text()
