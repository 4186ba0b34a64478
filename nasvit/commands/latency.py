"""``nasvit latency``: per-block lookup tables (``build-lut``), how well predictors track measured latency
(``report``), and one subnet's measured latency (``measure``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from pathlib import Path

from nasvit.errors import NasvitError
from nasvit.latency.settings import RUNTIMES, LatencySettings
from search_space import format_count, load_space


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("latency", help="latency lookup tables, predictor report, measured latency")
    actions = parser.add_subparsers(dest="latency_command", required=True)

    build = actions.add_parser("build-lut", help="time every distinct block of a space into a lookup table")
    _add_space(build)
    build.add_argument("--out", required=True, help="table file (JSON); an existing one is resumed")
    build.add_argument("--resolutions", type=int, nargs="+", help="input resolutions (default: all of the space's)")
    _add_settings(build)
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(run=run_build)

    report = actions.add_parser("report", help="correlation of MACs, params, activations and a table with latency")
    _add_space(report)
    report.add_argument("--lut", required=True, help="a table from nasvit latency build-lut")
    report.add_argument("--samples", type=int, default=50, help="random subnets to measure")
    report.add_argument("--resolution", type=int, help="input resolution (default: 224 if the table has it)")
    report.add_argument("--seed", type=int, default=0, help="seed of the random subnets")
    report.add_argument("--repeats", type=int, help="timed runs per subnet (default: the table's)")
    report.add_argument(
        "--runtime",
        choices=RUNTIMES,
        help="runtime the subnets are timed in (default: the table's; another one shows how far the table is off)",
    )
    report.add_argument("--plot", help="save a 2x2 scatter plot (PNG) of measured against predicted latency")
    report.add_argument("--save", help="save the whole report (per-subnet measurements included) as JSON")
    report.add_argument("--json", action="store_true", help="print one JSON object keyed by predictor")
    report.add_argument("--no-progress", action="store_true", help="no progress bar")
    report.set_defaults(run=run_report)

    measure = actions.add_parser("measure", help="measured latency of one subnet or exported model")
    measure.add_argument(
        "--space", help="a name in configs/space/ or a YAML file (not needed for an export or a subnet.json)"
    )
    measure.add_argument(
        "--arch",
        default="max",
        help="min | max | random | a subnet string | a subnet JSON file | an export directory or its subnet.json",
    )
    measure.add_argument("--seed", type=int, default=0, help="seed for --arch random")
    measure.add_argument("--resolution", type=int, help="override the subnet's input resolution")
    _add_settings(measure)
    measure.add_argument("--lut", help="also print the prediction of this table")
    measure.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    measure.set_defaults(run=run_measure)


def _add_space(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", required=True, help="a name in configs/space/ or a path to a YAML file")


def _add_settings(parser: argparse.ArgumentParser) -> None:
    defaults = LatencySettings()
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="images per forward pass")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's current setting)")
    parser.add_argument(
        "--repeats", type=int, default=defaults.repeats, help="timed runs; the median and p10 / p90 are reported"
    )
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="untimed runs first")
    parser.add_argument("--dtype", default=defaults.dtype, choices=("float32", "bfloat16"))
    parser.add_argument("--device", default=defaults.device, choices=("cpu", "cuda"))
    parser.add_argument(
        "--runtime",
        default=defaults.runtime,
        choices=RUNTIMES,
        help="time PyTorch's inference form (torch) or its ONNX graph in onnxruntime (an export's own model.onnx "
        "where it has one); onnxruntime times float32 on the CPU",
    )


def settings_from_args(args: argparse.Namespace) -> LatencySettings:
    """Measurement settings from the command line, checked."""
    import torch

    for name in ("batch_size", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise NasvitError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.warmup < 0:
        raise NasvitError(f"--warmup must be at least 0, got {args.warmup}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise NasvitError("--device cuda, but torch sees no CUDA device here")
    return LatencySettings(
        args.batch_size, args.threads, args.dtype, args.warmup, args.repeats, args.device, args.runtime
    )


def _warn_if_busy(settings: LatencySettings) -> None:
    from nasvit.latency.measure import busy_machine_warning

    warning = busy_machine_warning(settings)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)


# -------------------------------------------------------------------------------------------- build-lut
def run_build(args: argparse.Namespace) -> None:
    from nasvit.latency.table_build import build_lut, enumerate_blocks

    space = load_space(args.space)
    resolutions = tuple(args.resolutions or space.resolutions)
    settings = settings_from_args(args)
    _warn_if_busy(settings)
    start = time.perf_counter()
    table = build_lut(space, resolutions, settings, args.out, progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    header = table.header
    print(f"latency table {args.out}: space {space.name}, {len(table)} entries, built in {elapsed:.1f} s")
    versions = f"torch {header.torch}" + (f", onnxruntime {header.onnxruntime}" if header.onnxruntime else "")
    print(f"device {header.device_name}, {versions}, {_describe_settings(header.settings)}")
    for resolution in resolutions:
        ms = [table.block_ms(plan) for plan in enumerate_blocks(space, [resolution])]
        smallest = table.predict(space.min_subnet().replace(resolution=resolution))
        largest = table.predict(space.max_subnet().replace(resolution=resolution))
        fit = table.calibration[resolution]
        print(
            f"resolution {resolution}: {len(ms)} blocks, {min(ms):.3f} / {statistics.median(ms):.3f} / "
            f"{max(ms):.3f} ms (min / median / max); predicted subnets: smallest {smallest:.2f} ms, "
            f"largest {largest:.2f} ms; in-network calibration on {fit['subnets']} subnets: "
            f"{fit['scale']:.3f} x sum + {fit['per_block_ms']:.3f} ms x blocks + {fit['offset_ms']:.2f} ms "
            f"(fit MAPE {fit['mape']:.2f}%)"
        )


# ----------------------------------------------------------------------------------------------- report
def run_report(args: argparse.Namespace) -> None:
    from nasvit.latency.report import PREDICTORS, latency_report, plot_report
    from nasvit.latency.table import LatencyTable, device_name

    space = load_space(args.space)
    lut = LatencyTable.load(args.lut, space)
    settings = _report_settings(args, lut)
    here = device_name(settings.device)
    if here != lut.header.device_name:
        print(f"warning: {args.lut} was measured on {lut.header.device_name}, this is {here}", file=sys.stderr)
    _warn_if_busy(settings)
    report = latency_report(space, lut, args.samples, settings, args.resolution, args.seed, not args.no_progress)
    if args.save:
        with open(args.save, "w") as file:
            json.dump(_json_ready(report), file, indent=1)
    if args.plot:
        plot_report(report, args.plot)
    if args.json:
        print(json.dumps(_json_ready(report["predictors"])))
        return
    measured = report["measured_ms"]
    print(
        f"space {space.name}, {args.samples} random subnets (seed {args.seed}) at {report['resolution']} px, "
        f"{_describe_settings(settings)}, {here}"
    )
    spreads = report["measured_spread"]
    print(
        f"measured latency: {min(measured):.2f} to {max(measured):.2f} ms (medians of {settings.repeats} runs; "
        f"spread (p90 - p10) / median: median {100 * statistics.median(spreads):.1f}%, worst {100 * max(spreads):.1f}%)"
    )
    print(f"{'predictor':<12} {'Pearson':>8} {'Spearman':>9} {'MAPE %':>8} {'MAPE fit %':>11}")
    for name in PREDICTORS:
        stats = report["predictors"][name]
        print(
            f"{name:<12} {stats['pearson']:>8.3f} {stats['spearman']:>9.3f} {stats['mape']:>8.2f} "
            f"{stats['mape_fit']:>11.2f}"
        )
    print(
        "MAPE: of the least-squares line latency ~ a * x + b fitted on these samples for macs, params and "
        "activations; of the table's own prediction for lut (no fit here). MAPE fit: of the fitted line for every "
        "predictor."
    )
    for path, what in ((args.plot, "plot"), (args.save, "report")):
        if path:
            print(f"{what} saved to {path}")


def _report_settings(args: argparse.Namespace, lut) -> LatencySettings:
    """The table's settings with the report's ``--repeats`` and ``--runtime`` (a note where the runtime differs)."""
    if args.repeats is not None and args.repeats < 1:
        raise NasvitError(f"--repeats must be at least 1, got {args.repeats}")
    settings = dataclasses.replace(
        lut.settings, repeats=args.repeats or lut.settings.repeats, runtime=args.runtime or lut.settings.runtime
    )
    if settings.runtime != lut.settings.runtime:
        print(
            f"note: {args.lut} was timed in {lut.settings.runtime}, the subnets are timed in {settings.runtime}: the "
            "table's MAPE shows how far a table of the one runtime is from the other",
            file=sys.stderr,
        )
    return settings


def _json_ready(value):
    """``value`` with NaN floats (a constant predictor's correlation) turned into None, so it is valid JSON."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


# ---------------------------------------------------------------------------------------------- measure
def run_measure(args: argparse.Namespace) -> None:
    from nasvit.latency.measure import warn_if_noisy
    from nasvit.latency.table import LatencyTable, device_name

    settings = settings_from_args(args)
    cfg, model, directory = _measured_subnet(args)
    table = LatencyTable.load(args.lut, cfg.space) if args.lut else None
    predicted = table.predict(cfg) if table is not None else None
    if table is not None and table.settings.runtime != settings.runtime:
        print(f"warning: {args.lut} was timed in {table.settings.runtime}, this is {settings.runtime}", file=sys.stderr)
    _warn_if_busy(settings)
    stats, runtime = _measure(cfg, model, directory, settings)
    warn_if_noisy([stats])
    cost = cfg.space.cost(cfg, getattr(model, "num_classes", None))
    if args.json:
        payload = {"arch": str(cfg), "resolution": cfg.resolution, "latency_ms": stats.median_ms, "lut_ms": predicted}
        payload.update(p10_ms=stats.p10_ms, p90_ms=stats.p90_ms, runs=stats.runs, macs=cost.macs, runtime=runtime)
        payload.update(settings=dataclasses.asdict(settings), device_name=device_name(settings.device))
        print(json.dumps(payload))
        return
    print(f"arch:       {cfg}")
    print(f"resolution: {cfg.resolution}, MACs {format_count(cost.macs)}")
    print(f"settings:   {_describe_settings(settings)}, {device_name(settings.device)}")
    print(f"runtime:    {runtime}")
    print(f"latency:    {stats.describe()}")
    if predicted is not None:
        print(f"table:      {predicted:.3f} ms predicted by {args.lut}")


def _measure(cfg, model, directory: Path | None, settings: LatencySettings):
    """Timings of ``model`` in ``settings.runtime`` and what was timed: PyTorch's inference form, or in onnxruntime an
    export's own ``model.onnx`` where it has one, else the inference form's ONNX graph made now."""
    from nasvit.latency.measure import measure_model_latency, measure_onnx_graphs, runtime_version
    from supernet import optimize_for_inference

    shipped = directory / "model.onnx" if directory is not None else None
    if settings.runtime == "onnxruntime" and shipped is not None and shipped.is_file():
        shape = (settings.batch_size, 3, cfg.resolution, cfg.resolution)
        stats, source = measure_onnx_graphs([shipped.read_bytes()], [shape], settings)[0], str(shipped)
    else:
        stats = measure_model_latency(optimize_for_inference(model), cfg.resolution, settings)
        source = "inference form" + (", exported to ONNX now" if settings.runtime == "onnxruntime" else "")
    return stats, f"{runtime_version(settings.runtime)} ({source})"


def _measured_subnet(args: argparse.Namespace):
    """The subnet ``--arch`` names, the static model to time and the export directory it came from (or None): an
    export's own model (its weights and classes) for an export directory, otherwise a randomly initialised static
    model of the subnet."""
    from nasvit.commands.arch_argument import resolve_arch, subnet_from_json
    from nasvit.export.directory import load_model, read_description
    from search_space import parse_space
    from supernet import NASViT

    path = Path(args.arch)
    if path.is_dir() or path.name == "subnet.json":
        directory = path if path.is_dir() else path.parent
        description = read_description(directory)
        space = parse_space(description["space"], source=f"{directory / 'subnet.json'} (space)")
        cfg = subnet_from_json(description, space, source=str(directory / "subnet.json"))
        if args.resolution is not None and args.resolution != cfg.resolution:
            raise NasvitError(
                f"{directory} is an export at {cfg.resolution} px; drop --resolution {args.resolution} "
                "(or pass the subnet string to time it at another resolution)"
            )
        return cfg, load_model(directory), directory
    if args.space is None:
        raise NasvitError(f"--arch {args.arch} needs --space SPACE (only an export or its subnet.json names its space)")
    cfg = resolve_arch(load_space(args.space), args.arch, args.seed)
    if args.resolution is not None:
        cfg = cfg.replace(resolution=args.resolution)
    return cfg, NASViT(cfg).eval(), None


def _describe_settings(settings: LatencySettings) -> str:
    import torch

    threads = settings.threads if settings.threads is not None else torch.get_num_threads()
    return (
        f"{settings.runtime}, batch {settings.batch_size}, {threads} threads, {settings.dtype}, {settings.device}, "
        f"{settings.warmup} warm-up + {settings.repeats} timed runs"
    )
