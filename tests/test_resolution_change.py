"""A static subnet at another resolution: its position tables resized against a direct computation (centre crop for a
smaller window, BEiT's geometric rule for a larger one), the resolutions it runs at, and its config there."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import timm
import torch

from search_space import load_space, parse_space, space_to_dict
from supernet import NASViT
from supernet.layers import resize_position_table
from supernet.resolution import position_windows, subnet_at_resolution

HEADS = 3


def offset_table(window: tuple[int, int], along_rows: torch.Tensor, along_cols: torch.Tensor) -> torch.Tensor:
    """A ((2 rows - 1) (2 cols - 1), heads) table whose entry for offset (dy, dx) is along_rows[dy] + along_cols[dx]
    (both (2 side - 1, heads), offset -side + 1 first)."""
    rows, cols = window
    return (along_rows[:, None, :] + along_cols[None, :, :]).reshape((2 * rows - 1) * (2 * cols - 1), HEADS)


def test_a_table_resized_to_its_own_window_is_unchanged():
    for window in ((3, 3), (2, 4), (1, 1)):
        table = torch.randn((2 * window[0] - 1) * (2 * window[1] - 1), HEADS)
        assert torch.equal(resize_position_table(table, window, window), table)


def test_a_smaller_window_takes_the_entries_of_its_own_offsets():
    generator = torch.Generator().manual_seed(0)
    for window, smaller in (((4, 4), (2, 2)), ((3, 6), (2, 4)), ((3, 3), (1, 1))):
        along_rows = torch.randn(2 * window[0] - 1, HEADS, generator=generator)
        along_cols = torch.randn(2 * window[1] - 1, HEADS, generator=generator)
        table = offset_table(window, along_rows, along_cols)
        rows = along_rows[window[0] - smaller[0] : window[0] + smaller[0] - 1]  # offsets -smaller + 1 .. smaller - 1
        cols = along_cols[window[1] - smaller[1] : window[1] + smaller[1] - 1]
        assert torch.equal(resize_position_table(table, window, smaller), offset_table(smaller, rows, cols))


def test_a_larger_window_spreads_the_offsets_geometrically():
    """Window 5 -> 6: the source offsets 1, 1 + q, 1 + q + q^2, 1 + q + q^2 + q^3 with the last at 5 (BEiT's rule),
    linear in between, computed here with numpy for a table that is a sum of a row and a column term."""
    generator = torch.Generator().manual_seed(1)
    along_rows, along_cols = torch.randn(9, HEADS, generator=generator), torch.randn(9, HEADS, generator=generator)
    resized = resize_position_table(offset_table((5, 5), along_rows, along_cols), (5, 5), (6, 6))
    q = max(root.real for root in np.roots([1, 1, 1, 1 - 5]) if abs(root.imag) < 1e-9)  # 1 + q + q^2 + q^3 = 5
    outward = np.cumsum([1.0, q, q**2, q**3])
    positions = np.concatenate([-outward[::-1], [0.0], outward])  # where the 9 source offsets sit
    offsets = np.arange(-5, 6)
    rows = np.stack([np.interp(offsets, positions, along_rows[:, h].numpy()) for h in range(HEADS)], axis=1)
    cols = np.stack([np.interp(offsets, positions, along_cols[:, h].numpy()) for h in range(HEADS)], axis=1)
    expected = offset_table((6, 6), torch.from_numpy(rows).float(), torch.from_numpy(cols).float())
    assert torch.allclose(resized, expected, atol=1e-4)
    grid, source = resized.view(11, 11, HEADS), offset_table((5, 5), along_rows, along_cols).view(9, 9, HEADS)
    assert torch.equal(grid[4:7, 4:7], source[3:6, 3:6])  # offsets 0 and +-1 keep their trained values


def test_resolutions_the_subnet_runs_at_and_its_config_there(caplog):
    cfg = load_space("tiny").min_subnet()  # 16 px; its stage s3 has 4 windows (2x2) on a 4x4 map
    with caplog.at_level(logging.WARNING, logger="supernet.resolution"):
        listed, other = subnet_at_resolution(cfg, 24), subnet_at_resolution(cfg, 40)
    assert not caplog.records  # 24 and 40 are 16 modulo the total stride 8
    assert listed == cfg.replace(resolution=24) and listed.space == cfg.space
    assert other.space.name == "tiny_r40" and str(other).replace("tiny_r40:r40", "tiny:r16") == str(cfg)
    assert parse_space(space_to_dict(other.space)) == other.space
    with pytest.raises(ValueError, match=r"20 px gives 5x5; use 16 or 21"):
        subnet_at_resolution(cfg, 20)
    with pytest.raises(ValueError, match="at least 1"):
        subnet_at_resolution(cfg, 0)
    with caplog.at_level(logging.WARNING, logger="supernet.resolution"):
        subnet_at_resolution(cfg, 14)
    assert "another phase" in caplog.text and "16 + a multiple of 8" in caplog.text


def test_position_windows_name_the_tables_of_the_model():
    cfg = load_space("tiny").min_subnet()
    for resolution in (16, 40):
        model = NASViT(subnet_at_resolution(cfg, resolution))
        tables = {name: tuple(p.shape) for name, p in model.named_parameters() if name.endswith("position_bias.table")}
        windows = position_windows(model.subnet_config)
        assert set(windows) == set(tables)
        assert all(tables[key][0] == (2 * rows - 1) * (2 * cols - 1) for key, (rows, cols) in windows.items())


def test_timm_builds_pretrained_weights_at_another_resolution(tmp_path):
    from safetensors.torch import save_file

    cfg = load_space("tiny").min_subnet()
    source = NASViT(cfg).eval()
    with torch.no_grad():
        for parameter in source.parameters():
            parameter.normal_()
    weights = tmp_path / "model.safetensors"
    save_file(source.state_dict(), str(weights))
    model = timm.create_model(
        "nasvit_subnet", subnet=str(cfg), pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, img_size=40
    )
    assert model.resolution == 40 and model.pretrained_cfg["input_size"] == (3, 40, 40)
    state, loaded = source.state_dict(), model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if not k.endswith("table"))
    table = "stages.2.1.attn.position_bias.table"  # a 2x2 window at 16 px, 5x5 at 40 px
    assert torch.equal(loaded[table].view(9, 9, -1)[3:6, 3:6], state[table].view(3, 3, -1))
    with pytest.raises(ValueError, match="square"):
        timm.create_model("nasvit_subnet", subnet=str(cfg), img_size=(40, 32))
