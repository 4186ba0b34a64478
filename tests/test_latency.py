"""Latency lookup tables (enumeration, build, resume, predict), predictor statistics and ``nasvit latency``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import shutil

import numpy as np
import pytest
import torch

from nasvit.commands import latency as latency_command
from nasvit.errors import NasvitError
from nasvit.latency import LatencyStats
from nasvit.latency import table_build as lut_build
from nasvit.latency.report import average_ranks, linear_fit, mape, pearson, score, spearman
from nasvit.latency.table import LatencyTable, block_count, block_key
from nasvit.latency.table_build import build_lut, enumerate_blocks, nonnegative_fit
from search_space import load_space, parse_space, plan_subnet, space_to_dict
from search_space.plan import TransformerPlan
from tests.supernet_helpers import FAST_TIMING as FAST

RESOLUTION = 16
ONE_MS = LatencyStats(1.0, 1.0, 1.0, 1)  # a steady 1 ms timing of a block


def subnet_blocks(cfg) -> list:
    """Stem, every block and head of ``cfg``, in order."""
    plan = plan_subnet(cfg)
    return [plan.stem, *(block for stage in plan.stages for block in stage), plan.head]


@pytest.fixture(autouse=True)
def keep_threads():
    """Timing sets torch's thread count; give other tests of the session the one they had."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return load_space("tiny")


@pytest.fixture
def counting_timer(monkeypatch):
    """Replace block timing by a constant 1 ms and record the blocks timed."""
    calls = []

    def fake(space, plans, settings):
        calls.extend(plans)
        return [ONE_MS] * len(plans)

    monkeypatch.setattr(lut_build, "time_blocks", fake)
    return calls


@pytest.fixture
def fixed_calibration(monkeypatch):
    """Replace the in-network calibration by a fixed fit: with some block entries faked, or timed once, real timings
    of whole subnets need not grow with the table's sums, and the fit would be refused by chance."""

    def fixed(table, resolution, settings, subnets=16, busy=None):
        return {"scale": 1.0, "per_block_ms": 0.0, "offset_ms": 0.0, "subnets": 16, "mape": 0.0}

    monkeypatch.setattr(lut_build, "fit_calibration", fixed)


# ------------------------------------------------------------------------------------------ enumeration
@pytest.mark.parametrize("name", ["nasvit", "tiny"])
def test_enumeration_covers_random_subnets(name):
    space = load_space(name)
    plans = enumerate_blocks(space, space.resolutions)
    keys = {block_key(p) for p in plans}
    assert len(keys) == len(plans)
    rng = random.Random(0)
    for _ in range(200):
        missing = [block_key(b) for b in subnet_blocks(space.sample(rng)) if block_key(b) not in keys]
        assert not missing


def test_keys_ignore_scale_key_only(tiny):
    block = next(p for p in enumerate_blocks(tiny, [RESOLUTION]) if isinstance(p, TransformerPlan))
    assert block_key(dataclasses.replace(block, scale_key="other")) == block_key(block)
    assert block_key(dataclasses.replace(block, windows=block.windows + 1)) != block_key(block)
    assert "scale_key" not in block_key(block) and block_key(block).startswith("TransformerPlan(")


def test_enumeration_is_per_resolution(tiny):
    assert len(enumerate_blocks(tiny, [16, 24])) == 2 * len(enumerate_blocks(tiny, [16]))


# ------------------------------------------------------------------------------------------ build, predict
def test_built_table_predicts_random_subnets(table_file, tiny):
    table = LatencyTable.load(table_file, tiny)
    assert len(table) == len(enumerate_blocks(tiny, [RESOLUTION]))
    assert all(ms > 0 for ms in table.entries.values())
    header = table.header
    assert (header.space, header.resolutions, header.torch) == ("tiny", (RESOLUTION,), torch.__version__)
    assert header.settings == FAST
    fit = table.calibration[RESOLUTION]  # fitted in-network at build time on 16 subnets
    assert (
        set(fit) == {"scale", "per_block_ms", "offset_ms", "subnets", "mape", "noisy", "worst_spread"}
        and fit["subnets"] == 16
    )
    rng = random.Random(1)
    for _ in range(20):
        cfg = tiny.sample(rng).replace(resolution=RESOLUTION)
        expected = sum(table.block_ms(b) for b in subnet_blocks(cfg))
        assert table.block_sum(cfg) == pytest.approx(expected) and expected > 0
        calibrated = fit["scale"] * expected + fit["per_block_ms"] * block_count(cfg) + fit["offset_ms"]
        assert table.predict(cfg) == pytest.approx(calibrated)


def test_resume_times_only_missing_entries(table_file, tiny, tmp_path, counting_timer, fixed_calibration):
    path = tmp_path / "partial.json"
    data = json.loads(table_file.read_text())
    kept = dict(list(data["entries"].items())[:-5])
    path.write_text(json.dumps({**data, "entries": kept}))
    table = build_lut(tiny, [RESOLUTION], FAST, path, progress=False)
    assert len(counting_timer) == 5
    assert len(LatencyTable.load(path, tiny)) == len(table) == len(data["entries"])
    assert all(table.entries[k] == v for k, v in kept.items())


def test_interrupted_build_resumes(tiny, tmp_path, monkeypatch):
    path = tmp_path / "table.json"
    groups = []

    def interrupted(space, plans, settings):
        groups.append(plans)
        if len(groups) > 1:
            raise KeyboardInterrupt
        return [ONE_MS] * len(plans)

    monkeypatch.setattr(lut_build, "time_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_lut(tiny, [RESOLUTION], FAST, path, progress=False)
    assert len(groups[0]) == lut_build.GROUP_SIZE < len(enumerate_blocks(tiny, [RESOLUTION]))
    assert set(LatencyTable.load(path, tiny).entries) == {block_key(plan) for plan in groups[0]}
    calls = []

    def counting(space, plans, settings):
        calls.extend(plans)
        return [ONE_MS] * len(plans)

    monkeypatch.setattr(lut_build, "time_blocks", counting)
    build_lut(tiny, [RESOLUTION], FAST, path, progress=False)
    assert len(calls) == len(enumerate_blocks(tiny, [RESOLUTION])) - lut_build.GROUP_SIZE
    assert not {block_key(plan) for plan in calls} & {block_key(plan) for plan in groups[0]}


def test_resume_adds_a_resolution(table_file, tiny, tmp_path, counting_timer, fixed_calibration):
    path = tmp_path / "table.json"
    shutil.copy(table_file, path)
    before = LatencyTable.load(path, tiny).calibration[RESOLUTION]
    table = build_lut(tiny, [24], FAST, path, progress=False)
    assert len(counting_timer) == len(enumerate_blocks(tiny, [24]))
    assert table.resolutions == (RESOLUTION, 24) and table.calibration[RESOLUTION] == before
    assert LatencyTable.load(path, tiny).predict(tiny.min_subnet().replace(resolution=24)) > 0


def test_resume_refuses_other_settings(table_file, tiny, tmp_path, counting_timer):
    path = tmp_path / "table.json"
    shutil.copy(table_file, path)
    with pytest.raises(NasvitError, match=r"measured differently \(batch_size: 1 != 2\)"):
        build_lut(tiny, [RESOLUTION], dataclasses.replace(FAST, batch_size=2), path, progress=False)
    assert not counting_timer


def test_load_checks_the_space(table_file, tiny, tmp_path):
    with pytest.raises(NasvitError, match="built for space 'tiny', not 'nasvit'"):
        LatencyTable.load(table_file, load_space("nasvit"))
    changed = parse_space({**space_to_dict(tiny), "activation": "relu"}, source="test")
    with pytest.raises(NasvitError, match="another definition of space 'tiny'"):
        LatencyTable.load(table_file, changed)
    with pytest.raises(NasvitError, match="does not exist"):
        LatencyTable.load(tmp_path / "none.json", tiny)
    (tmp_path / "bad.json").write_text('{"entries": {}}')
    with pytest.raises(NasvitError, match="is not a latency table"):
        LatencyTable.load(tmp_path / "bad.json", tiny)


def test_a_table_of_an_older_format_is_refused_with_the_rebuild_command(table_file, tiny, tmp_path, counting_timer):
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**json.loads(table_file.read_text()), "format": "nasvit-latency-table/1"}))
    fix = r"written by another version of nasvit .* nasvit latency build-lut --space tiny --out NEW_FILE"
    with pytest.raises(NasvitError, match=fix):
        LatencyTable.load(old, tiny)
    with pytest.raises(NasvitError, match=fix):
        build_lut(tiny, [RESOLUTION], FAST, old, progress=False)
    assert not counting_timer and json.loads(old.read_text())["format"] == "nasvit-latency-table/1"


def test_missing_entry_names_block_and_fix(table_file, tiny):
    table = LatencyTable.load(table_file, tiny)
    with pytest.raises(NasvitError, match=r"no entry for StemPlan\(.*in_size=32.*--resolutions"):
        table.predict(tiny.max_subnet().replace(resolution=32))


def test_build_refuses_a_resolution_outside_the_space(tiny, tmp_path):
    with pytest.raises(NasvitError, match="resolution 224 is not an input resolution of space 'tiny'"):
        build_lut(tiny, [224], FAST, tmp_path / "t.json", progress=False)


# ----------------------------------------------------------------------------------------------- statistics
def test_pearson_hand_computed():
    # x - mean = (-1, 0, 1), y - mean = (-7/3, -1/3, 8/3): r = 5 / sqrt(2 * 114/9)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(5 / math.sqrt(2 * 114 / 9))
    assert pearson([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))


def test_average_ranks_and_spearman_with_ties():
    np.testing.assert_allclose(average_ranks([10, 20, 10, 30, 20, 20]), [1.5, 4, 1.5, 6, 4, 4])
    # ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): centred (-1.5, 0, 0, 1.5), (-1.5, .5, -.5, 1.5) -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([1, 2, 3, 4], [1, 4, 9, 100]) == pytest.approx(1)


def test_mape_and_fit():
    assert mape([110, 90, 100], [100, 100, 100]) == pytest.approx(20 / 3)
    assert linear_fit([1, 2, 3], [3, 5, 7]) == pytest.approx((2, 1))
    raw = score(np.array([2.0, 4.0, 6.0]), np.array([3.0, 5.0, 7.0]), raw_ms=True)
    assert raw["mape"] == pytest.approx(100 * (1 / 3 + 1 / 5 + 1 / 7) / 3) and raw["mape_fit"] == pytest.approx(0)
    fitted = score(np.array([2.0, 4.0, 6.0]), np.array([3.0, 5.0, 7.0]), raw_ms=False)
    assert fitted["mape"] == pytest.approx(0) and fitted["pearson"] == pytest.approx(1)


# -------------------------------------------------------------------------------------------------- CLI
def run_latency(*argv: str) -> None:
    """Parse and run ``nasvit latency ...`` the way ``nasvit.cli`` does."""
    parser = argparse.ArgumentParser(prog="nasvit")
    latency_command.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["latency", *argv])
    args.run(args)


def test_cli_report_json(table_file, tmp_path, capsys):
    plot, saved = tmp_path / "scatter.png", tmp_path / "report.json"
    args = ["--space", "tiny", "--lut", str(table_file), "--samples", "5", "--repeats", "1", "--no-progress"]
    run_latency("report", *args, "--json", "--plot", str(plot), "--save", str(saved))
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"macs", "params", "activations", "lut"}
    for stats in payload.values():
        assert {"pearson", "spearman", "mape", "mape_fit"} <= set(stats) and stats["mape"] >= 0
    assert plot.read_bytes().startswith(b"\x89PNG")
    report = json.loads(saved.read_text())
    assert report["resolution"] == RESOLUTION and len(report["measured_ms"]) == len(report["subnets"]) == 5


def test_cli_build_and_measure_text(tmp_path, capsys, fixed_calibration):
    path = str(tmp_path / "t.json")
    fast = ["--threads", "1", "--warmup", "0", "--repeats", "1"]
    run_latency("build-lut", "--space", "tiny", "--out", path, "--resolutions", "24", *fast, "--no-progress")
    out = capsys.readouterr().out
    assert "66 entries" in out and "resolution 24: 66 blocks" in out
    run_latency("measure", "--space", "tiny", "--arch", "min", "--resolution", "24", "--lut", path, *fast)
    out = capsys.readouterr().out
    assert "latency:" in out and "predicted by" in out


def test_cli_bad_input_is_a_clear_error(table_file):
    with pytest.raises(NasvitError, match="built for space 'tiny'"):
        run_latency("report", "--space", "nasvit", "--lut", str(table_file))
    with pytest.raises(NasvitError, match="at least 3 samples"):
        run_latency("report", "--space", "tiny", "--lut", str(table_file), "--samples", "2")
    with pytest.raises(NasvitError, match="has resolutions \\[16\\], not 32"):
        run_latency("report", "--space", "tiny", "--lut", str(table_file), "--resolution", "32")
    with pytest.raises(NasvitError, match="--repeats must be at least 1"):
        run_latency("measure", "--space", "tiny", "--repeats", "0")


# ------------------------------------------------------------------------------- spread, calibration bounds
def test_latency_stats_report_percentiles_and_spread():
    stats = LatencyStats.of([s / 1e3 for s in range(1, 12)])  # 1 .. 11 ms
    assert (stats.median_ms, stats.p10_ms, stats.p90_ms, stats.runs) == pytest.approx((6, 2, 10, 11))
    assert stats.spread == pytest.approx(8 / 6) and "p10 2.00, p90 10.00, 11 runs" in stats.describe()
    assert LatencyStats.of([0.005]).spread == 0


def test_calibration_keeps_every_term_non_negative():
    sums = np.array([1.0, 2.0, 3.0, 4.0])
    features = np.stack([sums, [4.0, 4.0, 5.0, 5.0], np.ones(4)], axis=1)
    measured = 10 - sums + np.array([0.0, 0.1, -0.1, 0.0])  # slower as the table sum falls: unphysical
    (unconstrained, *_), *_ = np.linalg.lstsq(features, measured, rcond=None)
    assert unconstrained < 0
    fit = np.array(nonnegative_fit(features, measured))
    assert fit[0] == 0 and (fit >= 0).all()

    def residual(coefficients):
        return float(np.sum((features @ coefficients - measured) ** 2))

    grid = [  # feasible points: (scale, per_block) on a grid, with their best non-negative offset
        np.array([a, b, max(0.0, np.mean(measured - features[:, :2] @ [a, b]))])
        for a in np.linspace(0, 2, 41)
        for b in np.linspace(0, 2, 41)
    ]
    assert residual(fit) <= min(map(residual, grid)) + 1e-9
    exact = features @ np.array([0.8, 0.3, 0.5])
    assert nonnegative_fit(features, exact) == pytest.approx((0.8, 0.3, 0.5))


def test_a_calibration_with_no_physical_fit_is_refused(tiny, tmp_path, monkeypatch, counting_timer):
    """Measured latency that falls as the table's sums grow leaves a scale of 0: the calibration is refused with
    the reason, the block entries are kept, and the table refuses to predict at that resolution."""

    def table_sum(cfg):
        return float(sum(choice.depth * choice.width for choice in cfg.stages))

    def falling(cfgs, resolution, settings):
        return [LatencyStats(100.0 - 0.01 * table_sum(cfg), 0.0, 0.0, 1) for cfg in cfgs]

    monkeypatch.setattr(lut_build, "inference_model", lambda cfg: cfg)  # "time" the configs themselves
    monkeypatch.setattr(lut_build, "warm_up_process", lambda *args: None)
    monkeypatch.setattr(lut_build, "measure_models_interleaved", falling)
    monkeypatch.setattr(lut_build, "block_count", lambda cfg: 0)  # only the table sum and the offset are left
    monkeypatch.setattr(LatencyTable, "block_sum", lambda self, cfg: table_sum(cfg))
    path = tmp_path / "t.json"
    with pytest.raises(NasvitError, match=r"calibration at 16 px refused: .*\(the best scale is 0\).*--repeats"):
        build_lut(tiny, [RESOLUTION], FAST, path, progress=False)
    table = LatencyTable.load(path, tiny)
    assert len(table) == len(enumerate_blocks(tiny, [RESOLUTION])) and RESOLUTION not in table.calibration
    with pytest.raises(NasvitError, match="not calibrated for 16 px"):
        table.predict(tiny.min_subnet().replace(resolution=RESOLUTION))


def test_a_table_recorded_as_poor_is_timed_again_when_asked_and_says_so_when_loaded(
    table_file, tiny, tmp_path, caplog, counting_timer, fixed_calibration
):
    path = tmp_path / "poor.json"
    data = json.loads(table_file.read_text())
    assert data["quality"] is not None and set(data["spreads"]) == set(data["entries"])
    data["quality"]["busy_share"] = 0.9  # built while other programs held the cores
    path.write_text(json.dumps(data))
    with caplog.at_level("WARNING"):
        LatencyTable.load(path, tiny)
        LatencyTable.load(path, tiny)
    warnings = [r.message for r in caplog.records if "poor quality" in r.message]
    assert len(warnings) == 1 and "the machine was busy during 90% of the build" in warnings[0]
    build_lut(tiny, [RESOLUTION], FAST, path, progress=False)  # resumed: nothing is missing, nothing timed
    assert counting_timer == []
    table = build_lut(tiny, [RESOLUTION], FAST, path, progress=False, retime_poor=True)
    assert len(counting_timer) == len(data["entries"]) and set(table.entries.values()) == {1.0}
    assert table.quality.noisy_blocks == 0 and table.quality.blocks == len(data["entries"])
