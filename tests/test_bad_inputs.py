"""Bad input to every command: one line naming the problem and the fix, exit code 2, no traceback, nothing lost.

Each case is a command line (built from a few shared artefacts: a briefly trained tiny supernet, a second one, an
export and a search), the expected exit code, a fragment of the expected message, and the files it must leave as
they were.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nasvit.cli import main
from nasvit.config.loading import load_config
from nasvit.config.search import SearchConfig
from nasvit.config.train import TrainConfig
from nasvit.recipes.search import SearchRecipe
from nasvit.recipes.train import TrainRecipe
from nasvit.runtime import checkpoint
from search_space import load_space
from tests.supernet_helpers import BRIEF_TRAINING, SEARCH_FAST

TRAIN = "configs/train/tiny.yaml"
SEARCH = "configs/search/tiny.yaml"


@dataclass
class World:
    """The artefacts the cases point at, built once per module."""

    root: Path
    checkpoint: Path
    other_checkpoint: Path
    train_dir: Path
    export_dir: Path
    search_dir: Path

    def scratch(self, name: str) -> Path:
        """A fresh copy-free path under the module's root for one case's own files."""
        path = self.root / "cases" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, briefly_trained: Path) -> World:
    root = tmp_path_factory.mktemp("bad_inputs")
    train_dir, other_dir = briefly_trained.parents[1], root / "train_other"  # bad inputs must leave train_dir as is
    TrainRecipe(load_config(TrainConfig, TRAIN, [*BRIEF_TRAINING, "seed=1", "max_steps=1"]), other_dir).run()
    trained = briefly_trained
    export_dir = root / "export"
    arch = str(load_space("tiny").min_subnet())
    argv = ["export", "--checkpoint", str(trained), "--arch", arch, "--out", str(export_dir), "--bn-batches", "1"]
    assert main([*argv, "--onnx"]) == 0
    search_dir = root / "search"
    SearchRecipe(load_config(SearchConfig, SEARCH, SEARCH_FAST), trained, search_dir).run()
    return World(root, trained, checkpoint.latest(other_dir), train_dir, export_dir, search_dir)


def image_folder(root: Path, classes: int, per_class: int = 3, corrupt: bool = False) -> Path:
    """``root/{train,validation}/class{i}/img{j}.png``: 8x8 noise images, or files that are not images."""
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(per_class):
                path = folder / f"img{index}.png"
                if corrupt:
                    path.write_bytes(b"not a png")
                else:
                    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
    return root


def read_only_dir(world: World) -> Path:
    """A directory this process cannot create entries in (a chmod'ed one; as root, where modes do not bind, /sys)."""
    if os.geteuid() != 0:
        path = world.scratch("read_only")
        path.mkdir(exist_ok=True)
        path.chmod(0o555)
        return path / "out"
    probe = Path("/sys/nasvit-probe")
    try:
        probe.mkdir()
    except OSError:
        return probe / "out"
    probe.rmdir()
    pytest.skip("no read-only directory available to this user")


def a_file(world: World, name: str, content: bytes = b"keep me") -> Path:
    path = world.scratch(name)
    path.write_bytes(content)
    return path


def copy_of(source: Path, world: World, name: str) -> Path:
    target = world.scratch(name)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)
    return target


def checkpoint_variant(world: World, name: str, change: Callable[[dict], None]) -> Path:
    """A copy of the trained checkpoint with ``change`` applied to its payload."""
    state = torch.load(world.checkpoint, map_location="cpu", weights_only=True)
    change(state)
    path = world.scratch(name)
    torch.save(state, path)
    return path


def arch_json(world: World, name: str, change: Callable[[dict], None]) -> Path:
    cfg = load_space("tiny").min_subnet().to_dict()
    change(cfg)
    path = world.scratch(name)
    path.write_text(json.dumps(cfg))
    return path


def corrupted_search(world: World) -> Path:
    search = copy_of(world.search_dir, world, "search_corrupt")
    (search / "search.json").write_text("{ not json")
    return search


def damaged_export(world: World, name: str, file: str, content: bytes) -> Path:
    export = copy_of(world.export_dir, world, name)
    (export / file).write_bytes(content)
    return export


def train_argv(out: Path, *extra: str) -> list[str]:
    return ["train", "--config", TRAIN, "--out", str(out), *(x for o in BRIEF_TRAINING for x in ("--set", o)), *extra]


def search_argv(world: World, out: Path, *extra: str, ckpt: Path | None = None) -> list[str]:
    sets = [x for o in SEARCH_FAST for x in ("--set", o)]
    return [
        "search",
        "--config",
        SEARCH,
        "--checkpoint",
        str(ckpt or world.checkpoint),
        "--out",
        str(out),
        *sets,
        *extra,
    ]


def export_argv(world: World, out: Path, *extra: str, ckpt: Path | None = None, arch: str | None = None) -> list[str]:
    arch = arch or str(load_space("tiny").min_subnet())
    return ["export", "--checkpoint", str(ckpt or world.checkpoint), "--arch", arch, "--out", str(out), *extra]


def finetune_argv(world: World, out: Path, *extra: str) -> list[str]:
    source = ["--model", str(world.export_dir), "--data", "digits"]
    return ["finetune", *source, "--out", str(out), "--set", "device=cpu", *extra]


@dataclass
class Case:
    """One bad input: ``argv(world)``, the exit code, a fragment of stderr, and ``keep(world)`` the files it must
    leave untouched (the case's argv is built first, so ``keep`` sees the files it made)."""

    name: str
    argv: Callable[[World], list[str]]
    fragment: str
    keep: Callable[[World], list[Path]] = lambda w: []
    code: int = 2


CASES = [
    # ------------------------------------------------------------------------------------------------- train
    Case("train-out-is-file", lambda w: train_argv(a_file(w, "train_file")), "is a file, not a directory"),
    Case("train-out-read-only", lambda w: train_argv(read_only_dir(w)), "; choose"),
    Case(
        "train-into-existing-run",
        lambda w: train_argv(w.train_dir),
        "already holds a nasvit train run",
        lambda w: [*w.train_dir.rglob("*.pt"), w.train_dir / "metrics.jsonl", w.train_dir / "config.yaml"],
    ),
    Case(
        "train-resume-a-search-dir",
        lambda w: train_argv(w.search_dir, "--resume", "auto"),
        "holds a nasvit search run, not a train run",
        lambda w: [w.search_dir / "candidates.jsonl", w.search_dir / "best.json"],
    ),
    Case(
        "train-into-foreign-dir",
        lambda w: train_argv(a_file(w, "foreign/notes.txt").parent),
        "holds no nasvit run",
        lambda w: [w.root / "cases" / "foreign" / "notes.txt"],
    ),
    Case(
        "train-overwrite-folder-with-a-config",
        lambda w: train_argv(a_file(w, "mine/config.yaml", b"mine: 1").parent, "--overwrite"),
        "holds no nasvit run",
        lambda w: [w.root / "cases" / "mine" / "config.yaml"],
    ),
    Case("train-unknown-key", lambda w: train_argv(w.scratch("t1"), "--set", "optim.lrr=1"), "did you mean"),
    Case("train-missing-config", lambda w: ["train", "--config", "nope.yaml"], "shipped configs are"),
    Case("train-unknown-sampling-rule", lambda w: train_argv(w.scratch("t6"), "--set", "sampling.rule=spo"), "'spos'"),
    Case(
        "train-spos-bins-beyond-the-space",
        lambda w: train_argv(
            w.scratch("t7"),
            "--set",
            "sampling.rule=spos",
            "--set",
            "sampling.macs_bins=2",
            "--set",
            "sampling.macs_range=[1, 2]",
        ),
        "macs <= 2 is unsatisfiable",
    ),
    Case(
        "train-progressive-magnitude-on-digits",
        lambda w: train_argv(w.scratch("t8"), "--set", "progressive.stages=2", "--set", "progressive.magnitude=[1, 5]"),
        "progressive.magnitude schedules RandAugment",
    ),
    Case(
        "train-resume-empty-file",
        lambda w: train_argv(w.scratch("t2"), "--resume", str(a_file(w, "e.pt", b""))),
        "is empty",
    ),
    Case(
        "train-resume-directory", lambda w: train_argv(w.scratch("t3"), "--resume", str(w.train_dir)), "is a directory"
    ),
    Case(
        "train-one-class-folder",
        lambda w: train_argv(w.scratch("t4"), "--set", f"data.dataset={image_folder(w.scratch('one'), 1)}"),
        "at least 2",
    ),
    Case(
        "train-unreadable-images",
        lambda w: train_argv(
            w.scratch("t5"),
            "--set",
            f"data.dataset={image_folder(w.scratch('broken'), 2, corrupt=True)}",
            "--set",
            "data.search_per_class=1",
            "--set",
            "data.batch_size=2",
            "--set",
            "data.max_unreadable=3",
            "--set",
            "eval.batch_size=2",
        ),
        "could not be read",
    ),
    Case(
        "train-missing-folder",
        lambda w: train_argv(w.scratch("t6"), "--set", "data.dataset=./no/such"),
        "does not exist",
    ),
    Case(
        "train-bn-batches-too-many",
        lambda w: train_argv(w.scratch("t7"), "--set", "eval.bn_batches=99"),
        "eval.bn_batches",
    ),
    Case("train-negative-workers", lambda w: train_argv(w.scratch("t8"), "--set", "data.workers=-1"), "workers=-1"),
    # ------------------------------------------------------------------------------------------------ search
    Case(
        "search-resume-other-checkpoint",
        lambda w: search_argv(w, w.search_dir, "--resume", ckpt=w.other_checkpoint),
        "checkpoint_sha256",
        lambda w: [w.search_dir / "candidates.jsonl", w.search_dir / "best.json", w.search_dir / "search.json"],
    ),
    Case(
        "search-into-existing-run",
        lambda w: search_argv(w, w.search_dir),
        "already holds a nasvit search run",
        lambda w: [w.search_dir / "candidates.jsonl", w.search_dir / "best.json"],
    ),
    Case("search-out-is-file", lambda w: search_argv(w, a_file(w, "search_file")), "is a file"),
    Case("search-out-read-only", lambda w: search_argv(w, read_only_dir(w)), "; choose"),
    Case(
        "search-corrupt-settings",
        lambda w: search_argv(w, corrupted_search(w), "--resume"),
        "is corrupt",
        lambda w: [w.root / "cases" / "search_corrupt" / "candidates.jsonl"],
    ),
    Case(
        "search-checkpoint-without-model",
        lambda w: search_argv(w, w.scratch("s1"), ckpt=checkpoint_variant(w, "nomodel.pt", lambda s: s.pop("model"))),
        "lacks ['model']",
    ),
    Case(
        "search-checkpoint-weights-of-other-space",
        lambda w: search_argv(
            w,
            w.scratch("s2"),
            ckpt=checkpoint_variant(
                w, "shapes.pt", lambda s: s.update(model={k: v.flatten()[:1] for k, v in s["model"].items()}, ema=None)
            ),
        ),
        "do not fit its own search space",
    ),
    Case(
        "search-foreign-checkpoint",
        lambda w: search_argv(w, w.scratch("s3"), ckpt=checkpoint_variant(w, "foreign.pt", lambda s: s.pop("format"))),
        "is not a nasvit supernet checkpoint",
    ),
    Case(
        "search-bn-batches-too-many",
        lambda w: search_argv(w, w.scratch("s4"), "--set", "eval.bn_batches=99"),
        "eval.bn_batches",
    ),
    Case(
        "search-unknown-budget-metric",
        lambda w: search_argv(w, w.scratch("s5"), "--set", 'evolve.budgets=["flops<=3M"]'),
        "flops",
    ),
    # ------------------------------------------------------------------------------------------------ export
    Case(
        "export-into-existing-export",
        lambda w: export_argv(w, w.export_dir),
        "already holds a nasvit export run",
        lambda w: list(w.export_dir.iterdir()),
    ),
    Case("export-out-is-file", lambda w: export_argv(w, a_file(w, "export_file")), "is a file"),
    Case("export-out-read-only", lambda w: export_argv(w, read_only_dir(w)), "; choose"),
    Case(
        "export-float-width",
        lambda w: export_argv(
            w, w.scratch("x1"), arch=str(arch_json(w, "float.json", lambda c: c.update(stem_width=8.0)))
        ),
        "is not a whole number",
    ),
    Case("export-zero-bn-batches", lambda w: export_argv(w, w.scratch("x2"), "--bn-batches", "0"), "not at least 1"),
    Case(
        "export-too-many-bn-batches", lambda w: export_argv(w, w.scratch("x3"), "--bn-batches", "999"), "--bn-batches"
    ),
    Case(
        "export-truncated-checkpoint",
        lambda w: export_argv(w, w.scratch("x4"), ckpt=a_file(w, "cut.pt", w.checkpoint.read_bytes()[:5000])),
        "is corrupted",
    ),
    Case(
        "export-checkpoint-missing",
        lambda w: export_argv(w, w.scratch("x5"), ckpt=w.scratch("none.pt")),
        "does not exist",
    ),
    Case(
        "export-width-not-in-space",
        lambda w: export_argv(w, w.scratch("x6"), arch=str(arch_json(w, "w.json", lambda c: c.update(stem_width=9)))),
        "is not one of",
    ),
    # -------------------------------------------------------------------------------------------------- eval
    Case(
        "eval-truncated-weights",
        lambda w: ["eval", "--model", str(damaged_export(w, "cut_export", "model.safetensors", b"\x00" * 20))],
        "is damaged",
    ),
    Case(
        "eval-corrupt-description",
        lambda w: ["eval", "--model", str(damaged_export(w, "bad_json", "subnet.json", b"{ nope"))],
        "is not valid JSON",
    ),
    Case("eval-zero-batch", lambda w: ["eval", "--model", str(w.export_dir), "--batch-size", "0"], "not at least 1"),
    Case("eval-not-an-export", lambda w: ["eval", "--model", str(w.train_dir)], "is not an exported model"),
    Case(
        "eval-class-count-mismatch",
        lambda w: [
            "eval",
            "--model",
            str(w.export_dir),
            "--data",
            str(image_folder(w.scratch("three"), 3, per_class=8)),
        ],
        "3 classes but the model predicts 10",
    ),
    Case(
        "eval-resolution-zero", lambda w: ["eval", "--model", str(w.export_dir), "--resolution", "0"], "not at least 1"
    ),
    Case(
        "eval-resolution-windows-do-not-tile",
        lambda w: ["eval", "--model", str(w.export_dir), "--resolution", "20"],
        "20 px gives 5x5; use 16 or 21",
    ),
    Case(
        "eval-resolution-and-another-image-size",
        lambda w: ["eval", "--model", str(w.export_dir), "--resolution", "24", "--image-size", "32"],
        "--image-size 32 contradicts --resolution 24",
    ),
    # ---------------------------------------------------------------------------------------------- finetune
    Case(
        "finetune-resolution-windows-do-not-tile",
        lambda w: finetune_argv(w, w.scratch("f1"), "--resolution", "20"),
        "resolution 20 does not fit",
        lambda w: list(w.export_dir.iterdir()),
    ),
    Case(
        "finetune-resolution-and-another-image-size",
        lambda w: finetune_argv(w, w.scratch("f2"), "--resolution", "24", "--set", "data.image_size=32"),
        "set data.image_size=24 too",
    ),
    # ------------------------------------------------------------------------------------- flops, space, latency
    Case(
        "flops-negative-classes",
        lambda w: ["flops", "--space", "tiny", "--arch", "min", "--num-classes", "-10"],
        "not at least 1",
    ),
    Case(
        "flops-float-width",
        lambda w: [
            "flops",
            "--space",
            "tiny",
            "--arch",
            str(arch_json(w, "float2.json", lambda c: c.update(head_width=128.0))),
        ],
        "is not a whole number",
    ),
    Case("flops-unknown-space", lambda w: ["flops", "--space", "tinyy", "--arch", "min"], "unknown search space"),
    Case("flops-bad-arch", lambda w: ["flops", "--space", "tiny", "--arch", "tiny:r99"], "r99"),
    Case("space-unknown", lambda w: ["space", "show", "nasvitt"], "did you mean"),
    Case(
        "measure-onnxruntime-bfloat16",
        lambda w: [
            "latency",
            "measure",
            "--space",
            "tiny",
            "--arch",
            "min",
            "--runtime",
            "onnxruntime",
            "--dtype",
            "bfloat16",
        ],
        "times float32 on the CPU",
    ),
    # ------------------------------------------------------------------------------------------------- scale
    Case(
        "scale-factor-below-one", lambda w: ["scale", "--space", "tiny", "--arch", "min", "--factor", "0.5"], "below 1"
    ),
    Case(
        "scale-alpha-outside", lambda w: ["scale", "--space", "tiny", "--arch", "min", "--alpha", "2"], "outside [0, 1]"
    ),
    Case(
        "scale-phi-other-rule",
        lambda w: ["scale", "--space", "tiny", "--arch", "min", "--phi", "1"],
        "--rule efficientnet",
    ),
    Case(
        "scale-unknown-rule", lambda w: ["scale", "--space", "tiny", "--arch", "min", "--rule", "x"], "invalid choice"
    ),
    Case("scale-bad-arch", lambda w: ["scale", "--space", "tiny", "--arch", "tiny:r99"], "r99"),
    Case(
        "scale-out-is-file",
        lambda w: ["scale", "--space", "tiny", "--arch", "min", "--rule", "w", "--out", str(a_file(w, "scale_file"))],
        "; ",
    ),
    Case(
        "lut-out-is-directory",
        lambda w: ["latency", "build-lut", "--space", "tiny", "--resolutions", "16", "--out", str(w.export_dir)],
        "is a directory",
        lambda w: list(w.export_dir.iterdir()),
    ),
    Case(
        "lut-out-read-only",
        lambda w: [
            "latency",
            "build-lut",
            "--space",
            "tiny",
            "--resolutions",
            "16",
            "--out",
            str(read_only_dir(w) / "t.json"),
        ],
        "; choose",
    ),
    Case(
        "lut-resolution-not-in-space",
        lambda w: ["latency", "build-lut", "--space", "tiny", "--resolutions", "17", "--out", str(w.scratch("l.json"))],
        "17",
    ),
]


def run_cli(argv: list[str]) -> int:
    """``nasvit ARGV`` in this process; argparse's own refusals (SystemExit) give their exit code."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return int(exit_.code)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    argv = case.argv(world)
    kept = {path: path.read_bytes() for path in case.keep(world) if path.is_file()}
    capsys.readouterr()
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == case.code, err
    assert case.fragment in err, err
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.startswith("nasvit") or "error:" in line]
    assert message, err
    for path, content in kept.items():
        assert path.read_bytes() == content, f"{path} changed"


def test_export_overwrite_leaves_no_file_of_the_previous_export(world: World) -> None:
    export = copy_of(world.export_dir, world, "overwritten")
    assert (export / "model.onnx").is_file()
    arch = str(load_space("tiny").min_subnet().replace(resolution=24))
    assert run_cli(export_argv(world, export, "--overwrite", "--bn-batches", "1", "--torchscript", arch=arch)) == 0
    assert not (export / "model.onnx").exists()  # the old export's ONNX of another subnet is gone
    assert {p.name for p in export.iterdir()} == {"model.safetensors", "subnet.json", "model.ts", "run.json"}
    assert json.loads((export / "subnet.json").read_text())["subnet"] == arch
    assert not list(export.parent.glob(".overwritten.*"))  # no staging directory left behind


def test_failed_export_leaves_the_directory_as_it_was(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    export = copy_of(world.export_dir, world, "kept_on_failure")
    before = {p.name: p.read_bytes() for p in export.iterdir()}

    def broken(directory: Path) -> None:
        raise OSError(28, "No space left on device", str(directory / "model.safetensors"))

    monkeypatch.setattr("nasvit.export.directory.save_file", lambda *a, **k: broken(export))
    assert run_cli(export_argv(world, export, "--overwrite", "--bn-batches", "1")) == 2
    assert {p.name: p.read_bytes() for p in export.iterdir()} == before
    assert not list(export.parent.glob(".kept_on_failure.*"))


def test_debug_shows_the_traceback(world: World) -> None:
    with pytest.raises(Exception, match="already holds a nasvit train run"):
        main(["--debug", *train_argv(world.train_dir)])


def test_train_overwrite_replaces_the_run(world: World) -> None:
    run = copy_of(world.train_dir, world, "train_overwritten")
    (run / "stale.txt").write_text("from the old run")
    assert run_cli([*train_argv(run), "--overwrite", "--set", "max_steps=1"]) == 0
    assert not (run / "stale.txt").exists()
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == ["step00000001.pt"]


def test_closed_pipe_ends_quietly() -> None:
    """``nasvit space show nasvit | head -1``: no error when the reader has gone."""
    import subprocess
    import sys

    command = [sys.executable, "-c", "import sys; from nasvit.cli import main; sys.exit(main())", "space", "show"]
    process = subprocess.Popen([*command, "nasvit"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    process.stdout.close()  # before the command writes (it imports for seconds first), so its write fails
    err = process.stderr.read().decode()
    assert process.wait() == 0 and err == "", err


def test_a_run_that_failed_in_setup_can_be_started_again(world: World, capsys) -> None:
    out = world.scratch("failed_setup")
    assert run_cli(train_argv(out, "--set", "data.dataset=./no/such")) == 2
    assert run_cli([*train_argv(out), "--set", "max_steps=1"]) == 0, capsys.readouterr().err


def test_eval_on_other_data_keeps_the_recorded_preprocessing(world: World) -> None:
    from nasvit.export.directory import export_data_config, read_description

    recorded = read_description(world.export_dir)["data"]
    other = export_data_config(world.export_dir, dataset=str(image_folder(world.scratch("other_data"), 2)))
    assert other.dataset.endswith("other_data") and list(other.mean) == recorded["mean"]
    assert other.interpolation == recorded["interpolation"] and other.image_size == recorded["image_size"]


def test_budget_selector_as_written_in_the_config(world: World, tmp_path: Path) -> None:
    """``best.json#macs<=0.8M`` (the config's spelling) picks the entry labelled ``macs<=800K``."""
    best = world.search_dir / "best.json"
    written = export_argv(world, tmp_path / "as_written", "--bn-batches", "1", arch=f"{best}#macs<=0.8M")
    labelled = export_argv(world, tmp_path / "as_labelled", "--bn-batches", "1", arch=f"{best}#macs<=800K")
    assert run_cli(written) == 0 and run_cli(labelled) == 0
    subnets = [
        json.loads((tmp_path / name / "subnet.json").read_text())["subnet"] for name in ("as_written", "as_labelled")
    ]
    assert subnets[0] == subnets[1]


def test_written_files_follow_the_umask(world: World) -> None:
    from nasvit.runtime.run_directory import user_umask

    expected = 0o666 & ~user_umask()
    assert world.checkpoint.stat().st_mode & 0o777 == expected
    assert (world.export_dir / "model.safetensors").stat().st_mode & 0o777 == expected
    assert world.export_dir.stat().st_mode & 0o777 == 0o777 & ~user_umask()
