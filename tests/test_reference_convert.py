"""``nasvit convert-reference``: a reference-format checkpoint converts strictly and safely; bad input gets one line.

The reference-format files are made here the way the reference code saves one (``model``, a differing
``model_ema``, ``optimizer``, ``lr_scheduler``, ``max_accuracy``, ``epoch`` and a pickled yacs ``CfgNode``),
with a stand-in ``yacs.config`` module that exists only while saving: yacs is not installed here.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from nasvit.cli import main
from nasvit.commands.arch_argument import resolve_arch
from nasvit.reference.loading import load_reference
from nasvit.reference.subnet import ReferenceSubnetError, from_reference, to_reference
from nasvit.runtime import checkpoint
from search_space import load_space
from tests.reference_fill import reference_fill

RECORD = json.loads((Path(__file__).parent / "fixtures" / "reference" / "parity.json").read_text())
EPOCH = 359


class CfgNode(dict):
    """Pickles like yacs' CfgNode: a dict subclass with attributes of its own (``__immutable__``)."""

    def __init__(self, entries: dict | None = None):
        super().__init__(entries or {})
        self.__dict__["__immutable__"] = True

    def __setstate__(self, state):  # the loader must never run this
        raise AssertionError("CfgNode code ran while loading")


def fake_yacs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``yacs.config.CfgNode`` importable (for pickling) as this module's stand-in."""
    package, module = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    module.CfgNode, package.config = CfgNode, module
    monkeypatch.setitem(sys.modules, "yacs", package)
    monkeypatch.setitem(sys.modules, "yacs.config", module)


def reference_config() -> CfgNode:
    stages = {
        f"mb{i}": CfgNode(
            {
                "c": s["widths"],
                "d": s["depths"],
                "k": s["kernels"],
                "t": s["expand_ratios"],
                "s": s["stride"],
                "se": s["se"],
            }
        )
        for i, s in enumerate(_space_stages(), start=1)
    }
    supernet = CfgNode(
        {
            "resolutions": [192, 224, 256, 288],
            "first_conv": CfgNode({"c": [16, 24], "s": 2}),
            "last_conv": CfgNode({"c": [1792, 1984]}),
            **stages,
        }
    )
    return CfgNode({"DATA": CfgNode({"IMG_SIZE": 224}), "TRAIN": CfgNode({"EPOCHS": 360}), "supernet_config": supernet})


def _space_stages() -> list[dict]:
    space = load_space("nasvit_official")
    return [
        {
            "widths": list(s.widths),
            "depths": list(s.depths),
            "kernels": list(s.kernels),
            "expand_ratios": list(s.expand_ratios),
            "stride": s.stride,
            "se": s.se,
        }
        for s in space.stages
    ]


@dataclass
class Files:
    root: Path
    reference: Path
    converted: Path
    ema: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    convert_output: str


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("reference")
    ema, raw = reference_fill(RECORD["shapes"], 0), reference_fill(RECORD["shapes"], 1)
    payload = {
        "model": raw,
        "model_ema": ema,
        "optimizer": {"state": {}, "param_groups": [{"lr": 3e-4, "params": []}]},
        "lr_scheduler": {"t_initial": 360, "base_values": [3e-4]},
        "max_accuracy": 82.79,
        "epoch": EPOCH,
    }
    with pytest.MonkeyPatch.context() as patch:
        fake_yacs(patch)
        torch.save({**payload, "config": reference_config()}, root / "ckpt.pth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", output := _Capture())
        assert main(["convert-reference", str(root / "ckpt.pth"), "--out", str(root / "converted.pt")]) == 0
    return Files(root, root / "ckpt.pth", root / "converted.pt", ema, raw, output.text)


class _Capture:
    def __init__(self):
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_conversion_reports_weights_drops_and_epoch(files):
    text = files.convert_output
    assert f"epoch {EPOCH}" in text and "EMA weights (model_ema)" in text and "raw weights (model)" in text
    assert "306 BN statistics" in text and "10 shortcut convs" in text and "25 relative-position index" in text


def test_converted_checkpoint_holds_ema_and_raw_weights_and_plain_provenance(files):
    state = checkpoint.load(files.converted)
    assert state["num_classes"] == 1000 and state["space"]["name"] == "nasvit_official"
    checkpoint.supernet_from_state(state, use_ema=False)  # loads strictly
    ours, theirs = "stages.3.1.mlp1.fc1.weight", "blocks.14.mlp2.linear1.linear.weight"
    assert torch.equal(state["ema"][ours], files.ema[theirs]) and torch.equal(state["model"][ours], files.raw[theirs])
    assert torch.equal(state["ema"]["stages.3.1.scale_mlp.vectors.d4_n4"], files.ema["blocks.14.rescale_mlp"][4, 4])
    provenance = state["provenance"]
    assert provenance["epoch"] == EPOCH and provenance["weights"] == {"model": "model", "ema": "model_ema"}
    config = provenance["reference_config"]
    assert type(config) is dict and type(config["supernet_config"]["mb4"]) is dict
    assert config["supernet_config"]["mb4"]["c"] == [64, 72]
    json.dumps(provenance)  # plain data


def test_loading_never_imports_or_runs_yacs(files, monkeypatch):
    assert "yacs" not in sys.modules
    first = load_reference(files.reference).config
    fake_yacs(monkeypatch)  # installed or not: the stand-in is used, CfgNode code never runs
    assert load_reference(files.reference).config == first


def test_state_dict_with_module_prefix_is_accepted(tmp_path):
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {"module.first_conv.conv.conv.weight": torch.ones(24, 3, 3, 3)}}, path)
    assert list(load_reference(path).weights["state_dict"]) == ["first_conv.conv.conv.weight"]


def test_export_of_a_converted_checkpoint_asks_for_the_data(files, capsys):
    assert main(["export", "--checkpoint", str(files.converted), "--arch", "min", "--out", str(files.root / "x")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--data FOLDER" in error and "data.dataset=FOLDER" in error


class Boom:
    """Unpickling this would call ``_explode``."""

    def __reduce__(self):
        return (_explode, ())


EXPLODED = []


def _explode():
    EXPLODED.append(True)


def _another_model(root: Path, files: Files) -> Path:
    torch.save(
        {"state_dict": {"conv1.weight": torch.ones(64, 3, 7, 7), "fc.weight": torch.ones(1000, 2048)}},
        path := root / "resnet.pth",
    )
    return path


def _truncated(root: Path, files: Files) -> Path:
    (path := root / "truncated.pth").write_bytes(files.reference.read_bytes()[:200_000])
    return path


def _wrong_shape(root: Path, files: Files) -> Path:
    weights = dict(files.ema)
    weights["blocks.14.attn.q.linear.weight"] = torch.ones(72, 64)
    torch.save({"model_ema": weights, "epoch": 1}, path := root / "wrong_shape.pth")
    return path


def _unknown_global(root: Path, files: Files) -> Path:
    torch.save({"model_ema": {"a": torch.ones(1)}, "extra": Boom()}, path := root / "unsafe.pth")
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_another_model, "checkpoint of another model"),
        (_truncated, "is truncated or not a PyTorch checkpoint"),
        (
            _wrong_shape,
            "blocks.14.attn.q.linear.weight has shape (72, 64) but nasvit_official's "
            "stages.3.1.attn.q.weight needs (72, 72)",
        ),
        (_unknown_global, f"needs the Python global {__name__}._explode"),
    ],
    ids=["another_model", "truncated", "wrong_shape", "unknown_global"],
)
def test_bad_reference_checkpoints_get_one_line(files, capsys, make, message):
    path = make(files.root, files)
    out = files.root / f"{path.stem}.pt"
    assert main(["convert-reference", str(path), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    print(error)
    assert len(error.splitlines()) == 1 and message in error
    assert not out.exists() and not EXPLODED


def test_reference_subnets_round_trip_and_work_as_arch(tmp_path):
    space = load_space("nasvit_official")
    for cfg in (space.min_subnet(), space.max_subnet(), resolve_arch(space, "random", seed=3)):
        reference = to_reference(cfg)
        assert from_reference(reference, space) == cfg
        assert resolve_arch(space, json.dumps(reference)) == cfg
        (path := tmp_path / "subnet.json").write_text(json.dumps(reference))
        assert resolve_arch(space, str(path)) == cfg
    with pytest.raises(ReferenceSubnetError, match="MLP ratio 2"):
        to_reference(load_space("nasvit").max_subnet())
    with pytest.raises(ReferenceSubnetError, match=r"depth=\[1, 2\] must be a list of 7 integers"):
        from_reference({**to_reference(space.min_subnet()), "depth": [1, 2]}, space)


def test_arch_commands_convert_both_ways(capsys):
    assert main(["arch", "to-reference", "min"]) == 0
    reference = capsys.readouterr().out.strip()
    assert json.loads(reference)["width"] == [16, 16, 24, 32, 64, 112, 160, 208, 1792]
    assert main(["arch", "from-reference", reference]) == 0
    assert capsys.readouterr().out.strip() == str(load_space("nasvit_official").min_subnet())
    assert main(["arch", "from-reference", "{not json"]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def _image_folder(root: Path, classes: int = 1000) -> Path:
    """A 1000-class ImageFolder (the converted classifier's size): six links per training class to a pool of 64
    random 16 px images (five are held out as the search split by default); a validation split of two classes,
    which the search ranks on. Distinct images keep the recalibrated BN variances away from zero."""
    import numpy as np
    from PIL import Image

    pool = root / "pool"
    pool.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = []
    for index in range(64):
        images.append(pool / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(images[-1])
    for split, count, per_class in (("train", classes, 6), ("validation", 2, 2)):
        for label in range(count):
            folder = root / split / f"n{label:04d}"
            folder.mkdir(parents=True)
            for index in range(per_class):
                (folder / f"{index}.png").hardlink_to(images[(label * per_class + index) % len(images)])
    return root


@pytest.mark.slow
def test_latency_budgeted_search_and_export_of_a_converted_checkpoint(files, capsys):
    """Latency is measured per candidate: a lookup table of nasvit_official (535 blocks and a calibration per
    resolution) takes minutes and its calibration refuses a busy machine's timings."""
    from nasvit.latency import LatencySettings, measure_latency

    space = load_space("nasvit_official")
    budget = round(2 * measure_latency(space.min_subnet(), LatencySettings(threads=1, repeats=3)).median_ms, 1)
    folder, search_dir = _image_folder(files.root / "images"), files.root / "search"
    overrides = [
        f"data.dataset={folder}",
        "data.image_size=32",
        "eval.split=val",
        "eval.bn_batches=1",
        "eval.batch_size=2",
        "device=cpu",
        "evolve.population=2",
        "evolve.generations=1",
        "evolve.parents=1",
        f'evolve.budgets=["latency_ms<={budget}"]',
        "latency.source=measure",
        "latency.threads=1",
        "latency.repeats=3",
    ]
    argv = [
        "search",
        "--config",
        "configs/search/tiny.yaml",
        "--checkpoint",
        str(files.converted),
        "--out",
        str(search_dir),
    ]
    assert main(argv + [arg for override in overrides for arg in ("--set", override)]) == 0
    best = json.loads((search_dir / "best.json").read_text())["budgets"][0]
    assert best["subnet"] and best["costs"]["latency_ms"] <= budget
    export_dir = files.root / "export"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(files.converted),
                "--arch",
                f"{search_dir}/best.json",
                "--out",
                str(export_dir),
                "--data",
                str(folder),
                "--bn-batches",
                "1",
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    assert "largest |difference| against the supernet" in capsys.readouterr().out
    assert main(["eval", "--model", str(export_dir), "--batch-size", "2"]) == 0
