"""Shared fixtures: small hand-made spaces and the shipped ones."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from search_space import available_spaces, load_space

SHIPPED_SPACES = available_spaces()

MINI_SPACE = {
    "name": "mini",
    "in_channels": 3,
    "num_classes": 10,
    "resolutions": [8, 16],
    "resize_mode": "bilinear",
    "activation": "swish",
    "channel_divisor": 8,
    "se_reduction": 4,
    "stem": {"kernel": 3, "stride": 2, "widths": [8, 16]},
    "stages": [
        {
            "name": "c1",
            "kind": "conv",
            "stride": 1,
            "se": True,
            "widths": [8, 16],
            "depths": [1, 2],
            "kernels": [3, 5],
            "expand_ratios": [1, 2],
        },
        {
            "name": "t1",
            "kind": "transformer",
            "stride": 2,
            "se": False,
            "widths": [16, 24],
            "depths": [1, 2, 3],
            "kernels": [3],
            "expand_ratios": [2],
            "mlp_ratios": [1, 2],
            "windows": [1, 2, 4],
        },
    ],
    "head": {"expand_ratio": 2, "widths": [32, 48], "dropout": 0.0},
    "transformer": {
        "head_dim": 8,
        "v_expansion": 4,
        "v_dwconv_kernel": 3,
        "mlp_dwconv": True,
        "norm": "channel",
        "scale_layout": "per_choice",
        "scale_init": 1.0e-5,
        "position_bias_size": None,
        "norm_eps": 1e-5,
    },
}


@pytest.fixture
def mini_space_dict() -> dict:
    """A fresh, mutable copy of a two-stage space description (one conv, one transformer stage)."""
    return copy.deepcopy(MINI_SPACE)


@pytest.fixture
def mini_space():
    from search_space import parse_space

    return parse_space(copy.deepcopy(MINI_SPACE), source="mini")


@pytest.fixture(params=SHIPPED_SPACES)
def shipped_space(request):
    return load_space(request.param)


@pytest.fixture(scope="session")
def briefly_trained(tmp_path_factory) -> Path:
    """The last checkpoint of the tiny supernet trained for 2 steps on digits (``configs/train/tiny.yaml``), shared
    by every test of the session that only reads it."""
    from nasvit.config.loading import load_config
    from nasvit.config.train import TrainConfig
    from nasvit.recipes.train import TrainRecipe
    from nasvit.runtime import checkpoint
    from tests.supernet_helpers import BRIEF_TRAINING

    run = tmp_path_factory.mktemp("briefly_trained")
    TrainRecipe(load_config(TrainConfig, "configs/train/tiny.yaml", BRIEF_TRAINING), run).run()
    return checkpoint.latest(run)


@pytest.fixture(scope="session")
def table_file(tmp_path_factory) -> Path:
    """A tiny-space latency table at 16 px, timed for real in PyTorch (3 runs per block). A calibration refused as
    too noisy (seen once in about 20 builds, on a cold first run) is redone as its error message tells a user to: the
    same build again, which keeps the block entries."""
    import torch

    from nasvit.errors import NasvitError
    from nasvit.latency.table_build import build_lut
    from tests.supernet_helpers import FAST_TIMING

    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    threads = torch.get_num_threads()
    try:
        build_lut(load_space("tiny"), [16], FAST_TIMING, path, progress=False)
    except NasvitError as error:
        assert "calibration" in str(error) and "refused" in str(error)
        build_lut(load_space("tiny"), [16], FAST_TIMING, path, progress=False)
    torch.set_num_threads(threads)
    return path
