"""A built wheel carries every file the commands read at run time, and an installed wheel finds them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nasvit.config.loading import ConfigError, load_config
from nasvit.config.train import TrainConfig
from search_space import available_spaces

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("nasvit", "search_space", "supernet", "evolve")
BUILD_FILES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the checkout's sources (no build/ or egg-info of the checkout leaks in)."""
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_FILES:
        shutil.copy2(REPO / name, source / name)
    for folder in (*PACKAGES, "configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out)]
    built = subprocess.run([*command, str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel_file,) = out.glob("nasvit-*.whl")
    return wheel_file


def test_wheel_holds_every_source_and_config_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = REPO / "configs"
    files = [p.relative_to(configs).as_posix() for p in configs.rglob("*") if p.is_file()]
    expected = {f"{'search_space' if f.startswith('space/') else 'nasvit'}/configs/{f}" for f in files}
    for package in PACKAGES:
        expected |= {p.relative_to(REPO).as_posix() for p in (REPO / package).rglob("*.py")}
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}"
    assert any(name.startswith("search_space/configs/space/") for name in names)
    assert any(name.startswith("nasvit/configs/train/") for name in names)
    assert not any(name.startswith(("search_space/configs/train/", "nasvit/configs/space/")) for name in names)


def test_installed_wheel_runs_outside_the_checkout(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    installed = subprocess.run(pip, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    program = (
        "import search_space, nasvit.config.loading as c, nasvit.config.train as t;"
        "print(search_space.__file__);"
        "print(search_space.load_space('tiny').name, search_space.available_spaces());"
        "print(c.load_config(t.TrainConfig, 'configs/train/tiny.yaml').space)"
    )
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    module_file, spaces, train_space = result.stdout.splitlines()
    assert module_file.startswith(str(target))
    assert spaces == f"tiny {available_spaces()}"  # the wheel carries every space of the checkout
    assert train_space == "tiny"


def test_shipped_config_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(TrainConfig, "configs/train/tiny.yaml").space == "tiny"
    assert load_config(TrainConfig, "train/nasvit_imagenet.yaml").space == "nasvit"
    with pytest.raises(ConfigError, match=r"configs/train/nope.yaml does not exist; shipped configs are \["):
        load_config(TrainConfig, "configs/train/nope.yaml")
