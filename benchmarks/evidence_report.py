"""``report.md`` and the plots of an evidence run, drawn from its ``results.json`` alone, so every figure can be
made again from it: ``python benchmarks/evidence.py --out OUT --report-only``."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from evidence_plan import TRAININGS, VARIANTS
from evidence_search import METHODS
from evidence_training import run_name

LABELS = ["smallest", "largest", *(f"random {i + 1}" for i in range(5))]


def _figure(size: tuple[float, float] = (6.0, 4.0)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported here: matplotlib is slow to import
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _stage(results: dict, key: str) -> Any:
    return results["stages"].get(key)


def ablation_section(results: dict, out: Path) -> list[str]:
    """The ablation table (one row per training) and the two contrasts with their seed-to-seed spread."""
    lines = ["## Ablation (NASViT Tables 3-5 at this scale)", ""]
    lines += ["| training | " + " | ".join(LABELS) + " | mean | wall |", "|---" * (len(LABELS) + 3) + "|"]
    means: dict[str, list[float]] = {}
    for variant, seed in TRAININGS:
        name = run_name(variant, seed)
        top1, train = _stage(results, f"subnets/{name}"), _stage(results, f"train/{name}")
        if top1 is None or train is None:
            continue
        means.setdefault(variant, []).append(top1["mean"])
        cells = " | ".join(f"{value:.2f}" for value in top1["top1"])
        wall = train["wall_seconds"] / 60
        lines.append(f"| {VARIANTS[variant].label}, seed {seed} | {cells} | **{top1['mean']:.2f}** | {wall:.1f} min |")
    lines += ["", "Validation top-1 (%) after BN recalibration; the mean is over the 7 subnets.", ""]
    for first, second in (("full", "no_projection"), ("full", "cnn_only")):
        if len(means.get(first, [])) == 2 and len(means.get(second, [])) == 2:
            difference = statistics.mean(means[first]) - statistics.mean(means[second])
            spreads = [abs(means[v][0] - means[v][1]) for v in (first, second)]
            lines.append(
                f"- {VARIANTS[first].label} minus {VARIANTS[second].label}: {difference:+.2f} points (means of 2 "
                f"seeds); the seed-to-seed spread of each is {spreads[0]:.2f} and {spreads[1]:.2f} points."
            )
    _ablation_plot(results, out / "ablation.png")
    return [*lines, "", "![top-1 against MACs, seed 0](ablation.png)", ""]


def _ablation_plot(results: dict, path: Path) -> None:
    figure, axes = _figure()
    for variant in VARIANTS:
        top1 = _stage(results, f"subnets/{run_name(variant, 0)}")
        if top1 is not None:
            axes.scatter([m / 1e6 for m in top1["macs"]], top1["top1"], label=VARIANTS[variant].label, s=14)
    axes.set(xlabel="MACs (M)", ylabel="validation top-1 (%)", xscale="log", title="compared subnets, seed 0")
    axes.legend(fontsize=6)
    figure.savefig(path)


def conflict_section(results: dict, out: Path) -> list[str]:
    """Per stage, the share of layers whose dataset-level gradients conflict, hybrid against CNN-only."""
    measured = {variant: _stage(results, f"conflicts/{variant}") for variant in ("full", "cnn_only")}
    if any(value is None for value in measured.values()):
        return []
    stages = list(measured["full"]["mean_per_stage"])
    lines = ["## Gradient conflict over the dataset", ""]
    lines += ["| supernet | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for variant, value in measured.items():
        cells = " | ".join(f"{value['mean_per_stage'].get(stage, float('nan')):.2f}" for stage in stages)
        lines.append(f"| {VARIANTS[variant].label} | {cells} |")
    images = measured["full"]["images"]
    lines += [
        "",
        f"Share of layers (parameter tensors) per stage whose gradient of the largest subnet and of a smaller one, "
        f"each accumulated over {images} training images, have a negative cosine; mean over the smallest and 5 "
        "random subnets.",
    ]
    figure, axes = _figure()
    width = 0.4
    for offset, (variant, value) in zip((-width / 2, width / 2), measured.items()):
        shares = [value["mean_per_stage"].get(stage, float("nan")) for stage in stages]
        axes.bar([i + offset for i in range(len(stages))], shares, width, label=VARIANTS[variant].label)
    axes.set_xticks(range(len(stages)), stages)
    axes.set(ylabel="conflicting share of layers", ylim=(0, 1))
    axes.legend(fontsize=7)
    figure.savefig(out / "conflicts.png")
    return [*lines, "", "![conflict per stage](conflicts.png)", ""]


def search_section(results: dict, budgets: list[str], seeds: tuple[int, ...], out: Path) -> list[str]:
    """Best search-split and validation top-1 per budget and method, with the seeds' spread, and the curves."""
    lines = ["## Evolutionary search against random sampling", ""]
    lines += ["| budget | method | best search top-1 (seeds) | its validation top-1 (seeds) |", "|---|---|---|---|"]
    figure, axes = _figure()
    for budget in budgets:
        for method in METHODS:
            runs = [_stage(results, f"search/{budget}/{method}/{seed}") for seed in seeds]
            runs = [run for run in runs if run is not None]
            if not runs:
                continue
            best = ", ".join(f"{run['best_top1']:.2f}" for run in runs)
            val = ", ".join(f"{run['best_val_top1']:.2f}" for run in runs)
            lines.append(f"| {budget} | {method} | {best} | {val} |")
            curve = [statistics.median(values) for values in zip(*(run["curve"] for run in runs))]
            axes.plot(range(1, len(curve) + 1), curve, label=f"{budget} {method}")
    axes.set(xlabel="subnets evaluated", ylabel="best search-split top-1 (median of seeds)")
    axes.legend(fontsize=7)
    figure.savefig(out / "search.png")
    return [*lines, "", "![best so far](search.png)", ""]


def baseline_section(results: dict, budgets: list[str], out: Path) -> list[str]:
    """Found subnets (from the supernet and fine-tuned) against timm models of about their latency."""
    measured, chosen = _stage(results, "latency"), _stage(results, "timm_choice")
    if measured is None or chosen is None:
        return []
    lines = ["## Against hand-designed models", "", "| model | latency (ms) | params | validation top-1 | training |"]
    lines.append("|---|---|---|---|---|")
    supernet_wall = _stage(results, f"train/{run_name('full', 0)}")["wall_seconds"] / 60  # the search's supernet
    figure, axes = _figure()
    for index, budget in enumerate(budgets):
        name, tuned = f"found_{index}", _stage(results, f"finetune/{index}")
        found = _stage(results, f"search/{budget}/evolution/0")
        latency = measured[name]
        lines.append(_row(f"found under {budget}, from the supernet", latency, found["best_val_top1"], supernet_wall))
        lines.append(_row("the same, fine-tuned", latency, tuned["top1"], tuned["wall_seconds"] / 60, "+ "))
        axes.scatter([latency["median_ms"]] * 2, [found["best_val_top1"], tuned["top1"]], marker="o", color="C0")
    for model in chosen:
        trained, latency = _stage(results, f"timm/{model}"), measured[model]
        if trained is None:
            continue
        lines.append(_row(f"timm {model}, from scratch", latency, trained["top1"], trained["wall_seconds"] / 60))
        axes.scatter([latency["median_ms"]], [trained["top1"]], marker="s", color="C1")
        axes.annotate(model, (latency["median_ms"], trained["top1"]), fontsize=7)
    axes.set(xlabel="latency, batch 1, 1 thread (ms)", ylabel="validation top-1 (%)", title="nasvit (o) and timm (s)")
    figure.savefig(out / "baselines.png")
    return [*lines, "", "![top-1 against latency](baselines.png)", ""]


def _row(label: str, latency: dict, top1: float, minutes: float, prefix: str = "") -> str:
    return f"| {label} | {latency['median_ms']:.2f} | {latency['params']:,} | {top1:.2f} | {prefix}{minutes:.1f} min |"


def write_report(results: dict, out: Path) -> Path:
    """Write ``out/report.md`` and its plots from ``results``; returns the report's path."""
    seeds = tuple(results["plan"]["search_seeds"])
    budgets = list(dict.fromkeys(key.split("/")[1] for key in results["stages"] if key.startswith("search/")))
    lines = [f"# Evidence run ({results['plan']['name']}) on {results['data']}", ""]
    lines += ablation_section(results, out) + conflict_section(results, out)
    lines += search_section(results, budgets, seeds, out) + baseline_section(results, budgets, out)
    total = sum(results["wall_seconds"].values()) / 60
    lines += ["## Wall time", "", f"{total:.1f} min in all stages (`results.json` holds each stage's)."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
