"""Fast and Accurate Model Scaling's three tables on nasvit's models, measured on this machine.

    python benchmarks/scaling_rules.py [--out scaling.json] [--factors 2 4 8] [--repeats 10]

Bases: the smallest subnet of the ``nasvit`` space (hybrid), the same subnet with its transformer stages turned
into MBConv stages of the same widths and depths (CNN-only), and the smallest subnet of ``nasvit_official``
(hybrid, the reference code's switches). Each is scaled by every rule of :mod:`search_space.scaling` to each
factor.

1. Exponents: how MACs, params and activations grow under each rule (the paper, for convs: width alone grows
   activations as sqrt(s), depth or resolution alone as s).
2. Runtime against the three metrics: every scaled model and its base, in the inference form
   (:func:`~supernet.optimize_for_inference`), timed on this CPU at batch 1 and batch 8 in interleaved rounds
   (median of ``--repeats`` runs, with p10/p90), then Pearson and Spearman of runtime with MACs, params and
   activations over all models (the paper, on GPUs: 0.86 for FLOPs, 0.56 for params, strong for activations).
3. At equal MACs: ``fast`` (alpha 0.8) against ``dwr`` and ``efficientnet`` on the hybrid base, activations and
   measured latency at each factor.

Timings are cached in ``--out`` per model and batch size (written atomically after each batch size), so an
interrupted run resumes where it stopped. Run it on a quiet machine: a second process on two cores can make a
step read several times slower.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from nasvit.latency.measure import inference_model, measure_modules_interleaved
from nasvit.latency.report import pearson, spearman
from nasvit.latency.settings import LatencySettings
from nasvit.runtime.atomic_json import write_json_atomic
from search_space import StageKind, SubnetConfig, load_space, parse_space, space_to_dict
from search_space.scaling import RULES, ScaledSubnet, scale_subnet

METRICS = ("macs", "params", "activations")


def cnn_only(cfg: SubnetConfig) -> SubnetConfig:
    """``cfg`` with every transformer stage an MBConv stage of the same width, depth, kernel and expansion."""
    space = cfg.space
    stages = tuple(
        dataclasses.replace(spec, kind=StageKind.CONV, mlp_ratios=(1,), windows=(1,)) if spec.is_transformer else spec
        for spec in space.stages
    )
    converted = parse_space(space_to_dict(dataclasses.replace(space, name=f"{space.name}_cnn", stages=stages)))
    choices = [dataclasses.replace(choice, mlp_ratio=1, windows=1) for choice in cfg.stages]
    return SubnetConfig(converted, cfg.resolution, cfg.stem_width, tuple(choices), cfg.head_width)


def bases() -> dict[str, SubnetConfig]:
    nasvit_min = load_space("nasvit").min_subnet()
    return {
        "hybrid (nasvit min)": nasvit_min,
        "CNN-only (nasvit min, MBConv stages)": cnn_only(nasvit_min),
        "hybrid (nasvit_official min)": load_space("nasvit_official").min_subnet(),
    }


def print_exponents(scaled: dict[str, list[ScaledSubnet]], factors: list[float]) -> None:
    print("\n1. growth of MACs / params / activations by rule (ratios to the base)")
    for base, results in scaled.items():
        print(f"\n{base}")
        print(f"{'rule':12s} " + " ".join(f"{'s=' + format(f, 'g'):>20s}" for f in factors))
        for rule in RULES:
            cells = []
            for factor in factors:
                r = next(r for r in results if r.rule == rule and r.factor == factor)
                ratios = [getattr(r.cost, m) / getattr(r.base_cost, m) for m in METRICS]
                cells.append("{:>6.2f}{:>7.2f}{:>7.2f}".format(*ratios))
            print(f"{rule:12s} " + " ".join(f"{c:>20s}" for c in cells))


def timings(cfgs: dict[str, SubnetConfig], batch: int, repeats: int, cache: dict, out: Path) -> dict[str, dict]:
    """Median/p10/p90 ms of every subnet at ``batch``, reusing ``cache`` (keyed ``'<batch>|<subnet>'``)."""
    todo = [key for key in cfgs if f"{batch}|{key}" not in cache]
    if todo:
        print(f"timing {len(todo)} models at batch {batch} ({repeats} interleaved runs each)...", flush=True)
        models = [inference_model(cfgs[key]) for key in todo]
        shapes = [(batch, 3, cfgs[key].resolution, cfgs[key].resolution) for key in todo]
        settings = LatencySettings(batch_size=batch, warmup=2, repeats=repeats)
        layouts = [torch.channels_last] * len(models)
        for key, stats in zip(todo, measure_modules_interleaved(models, shapes, settings, layouts)):
            cache[f"{batch}|{key}"] = stats.to_dict()
        write_json_atomic(out, cache)
    return {key: cache[f"{batch}|{key}"] for key in cfgs}


def print_correlations(cfgs: dict[str, SubnetConfig], measured: dict[int, dict[str, dict]]) -> None:
    print(f"\n2. runtime against the metrics over {len(cfgs)} models")
    costs = {key: cfg.space.cost(cfg) for key, cfg in cfgs.items()}
    print(f"{'batch':>5s} {'metric':12s} {'Pearson':>8s} {'Spearman':>9s}")
    for batch, stats in measured.items():
        runtime = np.array([stats[key]["median_ms"] for key in cfgs])
        for metric in METRICS:
            values = np.array([getattr(costs[key], metric) for key in cfgs], dtype=float)
            print(f"{batch:>5d} {metric:12s} {pearson(values, runtime):8.3f} {spearman(values, runtime):9.3f}")


def print_equal_macs(results: list[ScaledSubnet], measured: dict[int, dict[str, dict]], factors: list[float]) -> None:
    print("\n3. at equal MACs on the hybrid base: activations ratio, latency ms at batch 1 and 8 (p10-p90)")
    print(f"{'rule':12s} {'s':>4s} {'x MACs':>7s} {'x acts':>7s} {'batch 1 ms':>22s} {'batch 8 ms':>24s}")
    for factor in factors:
        for rule in ("fast", "dwr", "efficientnet"):
            r = next(r for r in results if r.rule == rule and r.factor == factor)
            cells = []
            for batch in measured:
                s = measured[batch][str(r.cfg)]
                cells.append(f"{s['median_ms']:8.1f} ({s['p10_ms']:.1f}-{s['p90_ms']:.1f})")
            acts = r.cost.activations / r.base_cost.activations
            print(f"{rule:12s} {factor:4g} {r.macs_ratio:7.2f} {acts:7.2f} {cells[0]:>22s} {cells[1]:>24s}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("scaling.json"), help="timing cache and results (JSON)")
    parser.add_argument("--factors", type=float, nargs="+", default=[2.0, 4.0, 8.0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per model and batch size")
    args = parser.parse_args()
    base_cfgs = bases()
    scaled = {
        name: [scale_subnet(cfg, rule, f) for rule in RULES for f in args.factors] for name, cfg in base_cfgs.items()
    }
    print_exponents(scaled, args.factors)
    cfgs = {str(cfg): cfg for cfg in base_cfgs.values()}
    cfgs.update({str(r.cfg): r.cfg for results in scaled.values() for r in results})
    cache = json.loads(args.out.read_text()) if args.out.is_file() else {}
    measured = {batch: timings(cfgs, batch, args.repeats, cache, args.out) for batch in (1, 8)}
    print_correlations(cfgs, measured)
    print_equal_macs(next(iter(scaled.values())), measured, args.factors)


if __name__ == "__main__":
    main()
