"""``benchmarks/gpu_check.py --tiny`` end to end on the CPU: every part written with real figures, and its guards."""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
LOSS_STEPS = 4
EAGER_ON_CPU = ["fp32", "fp32+channels_last", "bf16", "bf16+channels_last"]
whole_script = pytest.mark.slow  # the tests that run the whole script: about a minute on a 2-core CPU


def run_check(directory: Path, *arguments: str) -> tuple[dict[str, Any], str]:
    """Run the script with ``--tiny`` on the CPU into ``directory``; the strict-JSON report and the printed summary."""
    out = directory / "check.json"
    command = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out), *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny ops: more threads only contend on a shared machine
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert not list(directory.glob("*.tmp")), "the atomic write left its temporary file"
    return json.loads(out.read_text(), parse_constant=_reject), completed.stdout


def _reject(constant: str) -> None:
    raise AssertionError(f"the report holds {constant}, which is not JSON")


def positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    directory = tmp_path_factory.mktemp("gpu_check")
    # the eager backend still traces the supernet's forward with dynamo; inductor's C++ build takes minutes on a CPU
    return run_check(directory, "--loss-steps", str(LOSS_STEPS), "--compile-backend", "eager")


@whole_script
def test_report_names_the_run(tiny_run):
    report, summary = tiny_run
    assert report["finished"] is True
    assert report["environment"]["device"] == "cpu" and report["environment"]["torch"]
    assert report["settings"]["space"] == "tiny" and report["settings"]["loss_steps"] == LOSS_STEPS
    assert set(report["timed_subnets"]) == {"max", "min", "random0", "random1"}
    assert all(f"({part})" in summary for part in ("a", "b", "c", "d", "a'"))


@whole_script
def test_every_cpu_setting_ran_with_a_positive_rate_and_fp16_is_skipped_with_the_reason(tiny_run):
    report, _ = tiny_run
    throughput = {entry["setting"]: entry for entry in report["throughput"]}
    assert list(throughput) == [*EAGER_ON_CPU, "fp16", "fp16+channels_last"]
    for name in EAGER_ON_CPU:
        entry = throughput[name]
        assert entry["status"] == "ran", entry
        assert positive(entry["images_per_s"]) and positive(entry["step_ms_median"]), entry
        assert entry["timed_steps"] == report["settings"]["timed_steps"] and entry["nonfinite_steps"] == 0
        assert entry["peak_memory_gib"] is None and "CUDA" in entry["peak_memory_note"]
    for name in ("fp16", "fp16+channels_last"):
        assert throughput[name]["status"] == "skipped" and "GPU" in throughput[name]["reason"]


@whole_script
def test_the_fastest_setting_ran_compiled(tiny_run):
    report, _ = tiny_run
    compiled = report["compile"]
    assert compiled["status"] == "ran", compiled
    assert compiled["setting"] == compiled["eager"] + "+compile" and compiled["eager"] in EAGER_ON_CPU
    assert positive(compiled["images_per_s"]) and positive(compiled["speedup_vs_eager"])
    assert isinstance(compiled["warnings"], list)


@whole_script
def test_fp32_and_bf16_losses_have_the_requested_length_and_a_finite_gap(tiny_run):
    report, _ = tiny_run
    gap = report["loss_gap"]
    assert gap["status"] == "ran" and gap["steps"] == LOSS_STEPS
    losses = gap["largest_subnet_losses"]
    assert set(losses) == {"fp32", "bf16"}
    assert all(len(values) == LOSS_STEPS and all(positive(v) for v in values) for values in losses.values())
    assert losses["fp32"] != losses["bf16"], "the bf16 run must really run in bf16"
    assert math.isfinite(gap["gap_abs"]) and gap["gap_abs"] >= 0 and math.isfinite(gap["gap_rel"])


@whole_script
def test_supernet_export_and_inference_form_agree_on_non_trivial_logits(tiny_run):
    report, _ = tiny_run
    parity = report["parity"]
    assert parity["weights"] == "after the fp32 run of part (b)"
    assert set(parity["subnets"]) == {"min", "max", "random"}
    for entry in parity["subnets"].values():
        assert entry["status"] == "ran", entry
        assert entry["max_abs_logit"] > 1e-3, "logits must not be trivially constant"
        for key in ("supernet_vs_export", "export_vs_inference", "supernet_vs_inference"):
            assert 0 <= entry[key] < 1e-4, (key, entry)
    assert parity["max_abs_diff"] < 1e-4


@whole_script
def test_latency_of_three_subnets_at_two_batches_and_two_dtypes(tiny_run):
    report, _ = tiny_run
    latency = report["latency"]
    keys = {(entry["subnet"], entry["batch"], entry["dtype"]) for entry in latency}
    assert keys == {(s, b, d) for s in ("min", "median_macs", "max") for b in (1, 4) for d in ("fp32", "bf16")}
    for entry in latency:
        assert entry["status"] == "ran", entry
        assert positive(entry["p10_ms"]) and entry["p10_ms"] <= entry["median_ms"] <= entry["p90_ms"], entry
    macs = {entry["subnet"]: entry["macs"] for entry in latency}
    assert macs["min"] <= macs["median_macs"] <= macs["max"]


@whole_script
def test_scaled_models_are_timed_and_correlated_with_their_costs(tiny_run):
    report, summary = tiny_run
    scaling = report["scaling"]
    assert scaling["dtype"] == "bf16" and scaling["batch"] == 4
    names = [entry["model"] for entry in scaling["models"]]
    assert names == ["base", *(f"{rule} x2" for rule in ("w", "d", "r", "dwr", "fast", "efficientnet"))]
    for entry in scaling["models"]:
        assert entry["status"] == "ran", entry
        assert positive(entry["p10_ms"]) and entry["p10_ms"] <= entry["median_ms"] <= entry["p90_ms"], entry
    base_macs = scaling["models"][0]["macs"]
    assert all(1.5 * base_macs < entry["macs"] < 2.5 * base_macs for entry in scaling["models"][1:])
    for values in scaling["correlations"].values():
        assert all(-1.0 <= value <= 1.0 for value in values.values())
    assert "(e) scaled models" in summary and "runtime vs activations" in summary


@whole_script
def test_block_kinds_part_times_every_kind_per_stage(tiny_run):
    report, summary = tiny_run
    for dtype in ("fp32", "bf16"):
        section = report["block_kinds"][dtype]
        assert section["status"] == "ran", section
        rows = section["rows"]
        assert {row["batch"] for row in rows} == {1, 4}
        assert {row["stage"] for row in rows} == {"s1", "s2", "s3", "s4"}
        assert {row["kind"] for row in rows} == {"g1", "fused", "g8", "g16"}
        for row in rows:
            assert positive(row["median_ms"]) and row["p10_ms"] <= row["median_ms"] <= row["p90_ms"], row
            if row["kind"] == "g1":
                assert row["time_ratio"] == 1.0 and row["macs_ratio"] == 1.0
    assert "(f) block kinds, bf16" in summary and "geometric mean" in summary


def test_scaling_correlations_need_three_timed_models(gpu_check):
    entries = [{"status": "ran", "median_ms": float(i), "macs": i, "params": 1, "activations": i} for i in (1, 2, 4)]
    correlations = gpu_check.scaling_correlations(entries)
    assert correlations["macs"] == pytest.approx({"pearson": 1.0, "spearman": 1.0})
    assert math.isnan(correlations["params"]["pearson"])  # a constant metric has no correlation
    assert gpu_check.scaling_correlations([*entries[:2], {"status": "skipped"}]) is None


@whole_script
def test_a_spent_budget_skips_every_part_and_still_writes_the_report(tmp_path):
    report, _ = run_check(tmp_path, "--budget-s", "0")
    assert report["finished"] is True
    entries = [*report["throughput"], report["loss_gap"], *report["parity"]["subnets"].values(), *report["latency"]]
    entries += report["scaling"]["models"]
    assert all(entry["status"] == "skipped" for entry in [*entries, report["compile"]])
    assert all("budget" in entry["reason"] or "GPU" in entry["reason"] for entry in entries)
    assert report["compile"]["reason"] == "no eager setting ran"
    assert report["parity"]["max_abs_diff"] is None


@pytest.fixture(scope="module")
def gpu_check():
    """The script imported as a module, for its guards (with ``benchmarks/`` importable, as when it runs)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]
        sys.path.remove(str(SCRIPT.parent))


def test_block_kind_variants_hold_the_reference_macs(gpu_check):
    """The grouped blocks part (f) and ``benchmarks/block_kinds.py`` time against the depthwise one have the expanded
    width, among the multiples of the group size, whose MACs come nearest the depthwise one's wherever the stage
    expands; the fused one costs more; expand-ratio-1 stages keep their width."""
    import dataclasses

    from block_kinds import block_variants, stage_shapes

    from search_space import load_space
    from search_space.cost import block_cost

    space = load_space("nasvit")
    shapes = stage_shapes(space, 224)
    assert list(shapes) == [stage.name for stage in space.stages]
    for stage, reference in shapes.items():
        variants = block_variants(space, reference)
        macs = {kind: block_cost(plan).macs for kind, plan in variants.items()}
        assert macs["fused"] > macs["g1"], stage
        for kind in ("g8", "g16"):
            if reference.expand:
                plan, group_size = variants[kind], int(kind[1:])
                assert plan.mid_channels % group_size == 0
                for mid in (plan.mid_channels - 16, plan.mid_channels + 16):  # the neighbours, 16 = lcm(8, 16)
                    neighbour = dataclasses.replace(plan, mid_channels=mid, se_channels=0)
                    if mid > 0 and not plan.se_channels:
                        assert abs(block_cost(neighbour).macs - macs["g1"]) >= abs(macs[kind] - macs["g1"]), stage
            elif kind in variants:
                assert variants[kind].mid_channels == reference.mid_channels


def test_the_deadline_interrupts_a_call_that_cannot_check_the_budget(gpu_check):
    started = time.perf_counter()
    with pytest.raises(gpu_check.BudgetExceeded), gpu_check.deadline(0.05):
        time.sleep(5)
    assert time.perf_counter() - started < 2
    with gpu_check.deadline(5):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "the alarm must be cancelled on exit"


def test_warnings_of_torch_loggers_that_do_not_propagate_are_captured(gpu_check):
    quiet = [logger for logger in gpu_check.torch_log_roots() if logger.name != "torch"]
    assert quiet and not any(logger.propagate for logger in quiet)
    with gpu_check.captured_warnings() as messages:
        logging.getLogger(f"{quiet[0].name}.child").warning("compiler says %s", "hello")
        warnings.warn("a Python warning", stacklevel=1)
        logging.getLogger(f"{quiet[0].name}.child").info("not a warning")
    assert messages == ["compiler says hello", "a Python warning"]


@whole_script
def test_parts_runs_the_parts_asked_and_records_the_others(tmp_path):
    report, summary = run_check(tmp_path, "--parts", "f,c")
    assert report["finished"] is True
    assert report["block_kinds"]["fp32"]["status"] == "ran" and report["parity"]["weights"] == "initial"
    for key in ("throughput", "loss_gap", "latency", "scaling", "compile"):
        assert report[key] == {"status": "skipped", "reason": "not among --parts"}, key
    assert "(f) block kinds" in summary and "(a')" not in summary


def test_unknown_parts_are_refused_with_the_list(tmp_path):
    command = [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--parts", "a,z", "--out", str(tmp_path / "x")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "unknown parts ['z']" in completed.stderr
    assert "Traceback" not in completed.stderr
