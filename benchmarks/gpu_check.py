"""One short GPU check of training and inference: sandwich-step throughput, bf16 loss drift, export parity, latency.

    python benchmarks/gpu_check.py --out gpu_check.json                       # one GPU: under 6 min with compile
    python benchmarks/gpu_check.py --tiny --device cpu --out gpu_check.json   # the CPU smoke run: seconds

The parts, in the order they run (the JSON is rewritten atomically after each, so a killed run keeps its figures):

(a) images/s and peak memory of one ``nasvit train`` optimiser step (sandwich rule: largest, smallest and two
    random subnets; gradient projection and conflict meter on; AdamW with clipping) on synthetic ImageNet-shaped
    batches, in fp32, bf16 (autocast) and fp16 (autocast and a grad scaler), channels-last off and on. Every timed
    step runs the same subnets (the sandwich of step 0, resolutions capped at the image size), so settings compare
    like for like.
(b) 100 steps in fp32 and in bf16, interleaved, from the same weights on the same fixed batches and subnets: the
    largest subnet's loss per step (its loss is on the targets; the others' are against their own teacher) and
    the gap of the last 10.
(c) fp32 parity on the device (TF32 off) of the supernet running a subnet, ``net.export(cfg)`` and
    ``optimize_for_inference`` of the export, for the smallest, the largest and a random subnet, eval mode after
    BN recalibration of the supernet (which the export copies), on the weights (b) trained in fp32.
(d) latency (median, p10, p90) of the inference form of the smallest, a median-MACs and the largest subnet at
    batch 1 and 64, in fp32 and bf16 (weights and inputs cast, as ``nasvit.latency`` measures).
(e) Fast and Accurate Model Scaling's runtime table on this device: the space's smallest subnet scaled by every
    rule of ``nasvit scale`` to 2, 4 and 8 times its MACs, each in the inference form at batch 128 in bf16, and the
    Pearson and Spearman correlation of runtime with MACs, params and activations over the models (the paper, on
    GPUs: 0.86 for FLOPs, 0.56 for params; ``benchmarks/scaling_rules.py`` measures the same on a CPU).
(f) MBConv against Fused-MBConv and depthwise against grouped (8 and 16 channels per group, at equal MACs) spatial
    convs, one block shape per stage of the space at the image size, batches of part (d), in fp32 and bf16: the
    comparison ``benchmarks/block_kinds.py`` makes on a CPU, on this device.
(a') the fastest setting of (a) again with the supernet's forward compiled (``nn.Module.compile``). The Python
    step stays eager: its host reads (``.tolist()``, ``.item()``) and ``backward()`` would split a compiled step
    into fragments anyway. Compilation goes last, and starts only with ``compile_reserve_s`` of the budget left,
    because its duration is the least predictable; the JSON says "started" while it runs.

``--parts a,e,compile`` runs some parts only (the others are recorded as skipped): without (b), parts (c) and (d)
use the initial weights; without (a), compilation has no setting to start from and is skipped.

``--budget-s`` (counted from the start of ``main``) is a global time guard: what would not fit is recorded as
skipped with the reason, a part that runs out stops between steps, compilation is stopped by an alarm, and the JSON
is always written. ``--tiny`` runs every part on the ``tiny`` space with small sizes; on a CPU, fp16 (it needs a
CUDA grad scaler) is recorded as skipped and peak memory as null, each with the reason.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import logging
import math
import os
import platform
import random
import signal
import statistics
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from block_kinds import compare_block_kinds, format_rows
from timm.optim import create_optimizer_v2
from torch import Tensor, nn

from nasvit.config.train import OptimConfig, ProjectionConfig, SandwichConfig
from nasvit.data import DataConfig
from nasvit.latency.measure import inference_model
from nasvit.latency.report import pearson, spearman
from nasvit.latency.settings import LatencySettings
from search_space import SearchSpace, SubnetConfig, load_space
from search_space.scaling import RULES, scale_subnet
from supernet import Supernet, optimize_for_inference, recalibrate_bn
from supernet.bn_calibration import BatchNormSnapshot
from supernet.training.losses import smoothed_one_hot
from supernet.training.sandwich import SandwichStep, StepResult, parameter_groups, sample_subnets

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LATENCY_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
LOSS_GAP_LR = 1e-3  # high enough that the runs visibly fit their fixed batches, so the two curves can drift apart
LOSS_GAP_BATCHES = 4  # fixed batches the loss-gap runs cycle through
LOSS_GAP_TAIL = 10  # last losses averaged for the gap
SCALING_METRICS = ("macs", "params", "activations")
PARTS = ("a", "b", "c", "d", "e", "f", "compile")  # --parts; (c) and (d) use (b)'s weights, compile (a)'s best
MEDIAN_POOL = 101  # random subnets among which the median-MACs one is picked
NO_CUDA_MEMORY = "CUDA memory statistics need a CUDA device"


@dataclass(frozen=True)
class Sizes:
    """How large each part runs.

    Attributes:
        space: search space name.
        image_size: side of the synthetic training images; subnet resolutions are capped at it.
        num_classes: classifier size.
        batch_size: images per step in part (a).
        warmup_steps, timed_steps: untimed then timed steps per setting of part (a).
        loss_steps, loss_batch_size: length and batch of the fp32 / bf16 runs of part (b).
        parity_batch_size: images per batch of BN recalibration and comparison in part (c).
        latency_batches, latency_warmup, latency_repeats: part (d).
        scaling_factors, scaling_batch: MACs factors and batch size of part (e).
        tail_reserve_s: seconds of budget part (b) leaves for parts (c) and (d).
        compile_reserve_s: seconds of budget that must be left to start compilation.
    """

    space: str
    image_size: int
    num_classes: int
    batch_size: int
    warmup_steps: int
    timed_steps: int
    loss_steps: int
    loss_batch_size: int
    parity_batch_size: int
    latency_batches: tuple[int, ...]
    latency_warmup: int
    latency_repeats: int
    scaling_factors: tuple[float, ...]
    scaling_batch: int
    tail_reserve_s: float
    compile_reserve_s: float


GPU_SIZES = Sizes("nasvit", 224, 1000, 128, 3, 20, 100, 32, 8, (1, 64), 10, 50, (2.0, 4.0, 8.0), 128, 30.0, 150.0)
TINY_SIZES = Sizes("tiny", 32, 10, 8, 1, 3, 10, 8, 4, (1, 4), 1, 5, (2.0,), 4, 0.0, 0.0)


class Budget:
    """The global time guard: seconds left of ``seconds`` since construction."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def refuses(self, needed_s: float) -> str | None:
        """The reason to skip something expected to take ``needed_s``, or None when it fits."""
        if self.left() > needed_s:
            return None
        return f"budget: {self.left():.0f} s of {self.seconds:.0f} s left, about {needed_s:.0f} s needed"


class Report:
    """The JSON document, rewritten atomically (temporary file, then ``os.replace``) on every change."""

    def __init__(self, path: Path, budget: Budget, header: dict[str, Any]):
        self.path, self.budget = path, budget
        self.data: dict[str, Any] = {"finished": False, **header}
        path.parent.mkdir(parents=True, exist_ok=True)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.data["elapsed_s"] = round(self.budget.elapsed(), 2)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(_json_safe(self.data), indent=1, allow_nan=False))
        os.replace(temporary, self.path)


@dataclass
class Run:
    """What every part needs: sizes, device, seed, the time guard, the report and the initial supernet."""

    sizes: Sizes
    device: torch.device
    seed: int
    compile_backend: str
    budget: Budget
    report: Report
    template: Supernet  # initial weights; every part trains deep copies

    @property
    def space(self) -> SearchSpace:
        return self.template.space

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


class Trainer:
    """A supernet updated as ``nasvit train`` updates it: sandwich step, unscale (fp16), clip, AdamW step.

    Args:
        net: the supernet, on its device.
        precision: ``fp32``, ``bf16`` or ``fp16`` (fp16 adds a grad scaler).
        lr: AdamW learning rate.
    """

    def __init__(self, net: Supernet, precision: str, lr: float):
        sandwich, optim = SandwichConfig(), OptimConfig()
        self.net, self.dtype, self.clip = net, PRECISIONS[precision], optim.clip_grad
        self.device_type = next(net.parameters()).device.type
        alpha = (sandwich.alpha_min, sandwich.alpha_max, sandwich.alpha_clamp)
        self.projection = ProjectionConfig()
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == "fp16" else None
        self.sandwich = SandwichStep(
            net,
            *alpha,
            groups=parameter_groups(net),
            projection_mode=self.projection.mode,
            measure_conflicts=self.projection.conflict_meter,
            autocast=self.autocast,
            scale_loss=self.scaler.scale if self.scaler is not None else None,
        )
        self.optimizer = create_optimizer_v2(
            net, opt="adamw", lr=lr, weight_decay=optim.weight_decay, betas=optim.betas
        )
        self.batch_norms = BatchNormSnapshot(net)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def update(self, batch: tuple[Tensor, Tensor], subnets: list[tuple[str, SubnetConfig]]) -> StepResult:
        """One optimiser step on (images (B, 3, S, S), soft targets (B, K)); a non-finite step clears the grads and
        puts back the BatchNorm statistics its passes moved."""
        self.net.train()
        self.batch_norms.save()
        result = self.sandwich.run([batch], subnets, project=self.projection.enabled)
        if result.finite:
            self._step()
        else:
            self.batch_norms.restore()
        self.optimizer.zero_grad(set_to_none=True)
        return result

    def _step(self) -> None:
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.net.parameters() if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.clip if self.clip is not None else math.inf)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()


# ------------------------------------------------------------------------------------------------- data


def random_images(count: int, batch_size: int, resolution: int, seed: int, device: torch.device) -> list[Tensor]:
    """``count`` batches of (batch_size, 3, resolution, resolution) normal noise, drawn on the CPU from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch_size, 3, resolution, resolution)
    return [torch.randn(shape, generator=generator).to(device) for _ in range(count)]


def synthetic_batches(run: Run, count: int, batch_size: int, seed: int) -> list[tuple[Tensor, Tensor]]:
    """(images, smoothed one-hot targets (B, num_classes)) pairs at the image size, labels drawn from ``seed``."""
    sizes, generator = run.sizes, torch.Generator().manual_seed(seed)
    images = random_images(count, batch_size, sizes.image_size, seed, run.device)
    smoothing = DataConfig().label_smoothing
    labels = [torch.randint(0, sizes.num_classes, (batch_size,), generator=generator) for _ in range(count)]
    return [(x, smoothed_one_hot(y.to(run.device), sizes.num_classes, smoothing)) for x, y in zip(images, labels)]


def training_subnets(run: Run, step: int) -> list[tuple[str, SubnetConfig]]:
    """The sandwich of ``step`` with every resolution capped at the largest one of the space not above the image
    size (the supernet resizes inputs to the active resolution)."""
    fitting = [r for r in run.space.resolutions if r <= run.sizes.image_size]
    cap = max(fitting) if fitting else min(run.space.resolutions)
    subnets = sample_subnets(run.template, run.seed, step, SandwichConfig().num_random)
    return [(slot, cfg.replace(resolution=min(cfg.resolution, cap))) for slot, cfg in subnets]


# ------------------------------------------------------------------------------------- (a) throughput


def setting_name(precision: str, channels_last: bool, compiled: bool) -> str:
    return precision + ("+channels_last" if channels_last else "") + ("+compile" if compiled else "")


def time_setting(run: Run, precision: str, channels_last: bool, compiled: bool) -> dict[str, Any]:
    """Warm up, then time ``timed_steps`` optimiser steps (fewer when the budget runs out) of a fresh copy of the
    template in one setting; images/s, step times, warm-up (compilation) time and peak memory."""
    sizes, layout = run.sizes, torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(run.template).to(memory_format=layout)
    if compiled:
        net.compile(backend=run.compile_backend)
    images, targets = synthetic_batches(run, 1, sizes.batch_size, run.seed)[0]
    batch, subnets = (images.contiguous(memory_format=layout), targets), training_subnets(run, 0)
    trainer = Trainer(net, precision, lr=OptimConfig().lr * sizes.batch_size / 512)
    _reset_peak_memory(run.device)
    started = time.perf_counter()
    for _ in range(sizes.warmup_steps):
        trainer.update(batch, subnets)
    run.synchronize()
    warmup_s = time.perf_counter() - started
    seconds, nonfinite = timed_updates(run, trainer, batch, subnets)
    return {
        "images_per_s": sizes.batch_size * len(seconds) / sum(seconds),
        "step_ms_median": 1e3 * statistics.median(seconds),
        "step_ms_min": 1e3 * min(seconds),
        "timed_steps": len(seconds),
        "warmup_s": warmup_s,
        "nonfinite_steps": nonfinite,
        **_peak_memory(run.device),
    }


def timed_updates(
    run: Run, trainer: Trainer, batch: tuple[Tensor, Tensor], subnets: list[tuple[str, SubnetConfig]]
) -> tuple[list[float], int]:
    """Seconds of each of ``timed_steps`` updates (at least one, then only while the budget lasts), and how many
    had a non-finite loss."""
    seconds, nonfinite = [], 0
    for index in range(run.sizes.timed_steps):
        if index and run.budget.left() <= 0:
            break
        run.synchronize()
        start = time.perf_counter()
        nonfinite += not trainer.update(batch, subnets).finite
        run.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds, nonfinite


def part_throughput(run: Run) -> list[dict[str, Any]]:
    """Part (a) without compilation: every precision with channels-last off and on."""
    results: list[dict[str, Any]] = []
    last_duration = 0.0
    for precision in PRECISIONS:
        for channels_last in (False, True):
            started = time.perf_counter()
            reason = _cannot_run(run, precision) or run.budget.refuses(last_duration)
            entry = {"setting": setting_name(precision, channels_last, False), "precision": precision}
            entry.update(channels_last=channels_last, compile=False)
            entry.update(_guarded(reason, time_setting, run, precision, channels_last, False))
            if reason is None:
                last_duration = time.perf_counter() - started
            results.append(entry)
            run.report.set("throughput", results)
            print(_setting_line(entry), flush=True)
    return results


def part_compile(run: Run, eager: list[dict[str, Any]]) -> dict[str, Any]:
    """Part (a'): the fastest eager setting again with the supernet's forward compiled."""
    print("(a') the fastest eager setting with torch.compile", flush=True)
    ran = [entry for entry in eager if entry["status"] == "ran"]
    entry: dict[str, Any] = {"backend": run.compile_backend, "target": "Supernet.forward via nn.Module.compile"}
    reason = run.budget.refuses(run.sizes.compile_reserve_s) if ran else "no eager setting ran"
    if reason is None:
        best = max(ran, key=lambda e: e["images_per_s"])
        entry.update(setting=setting_name(best["precision"], best["channels_last"], True), eager=best["setting"])
        run.report.set("compile", {**entry, "status": "started: a run stopped here was stopped while compiling"})
        entry.update(compiled_figures(run, best))
    else:
        entry.update(status="skipped", reason=reason)
    run.report.set("compile", entry)
    print(_setting_line(entry), flush=True)
    return entry


def compiled_figures(run: Run, best: dict[str, Any]) -> dict[str, Any]:
    """The figures of ``best``'s setting compiled, the warnings compilation logged, and the speed-up."""
    with captured_warnings() as messages:
        figures = _guarded(None, time_compiled, run, best["precision"], best["channels_last"])
    figures["warnings"] = messages
    if figures["status"] == "ran":
        figures["speedup_vs_eager"] = figures["images_per_s"] / best["images_per_s"]
    return figures


def time_compiled(run: Run, precision: str, channels_last: bool) -> dict[str, Any]:
    """:func:`time_setting` with the forward compiled, stopped by :func:`deadline` when the budget ends (compilation
    is one long call that cannot check the budget itself)."""
    with deadline(run.budget.left()):
        return time_setting(run, precision, channels_last, True)


def _cannot_run(run: Run, precision: str) -> str | None:
    if precision == "fp16" and run.device.type != "cuda":
        return "fp16 needs a GPU: it trains with a CUDA grad scaler (nasvit train refuses it on the CPU)"
    return None


# -------------------------------------------------------------------------------------- (b) loss gap


def part_loss_gap(run: Run) -> tuple[dict[str, Any], Supernet]:
    """Part (b); returns its figures and the supernet trained in fp32 (the template's copy when nothing ran)."""
    sizes = run.sizes
    trainers = {p: Trainer(copy.deepcopy(run.template), p, LOSS_GAP_LR) for p in ("fp32", "bf16")}
    batches = synthetic_batches(run, LOSS_GAP_BATCHES, sizes.loss_batch_size, run.seed + 1)
    losses: dict[str, list[float]] = {precision: [] for precision in trainers}
    entry: dict[str, Any] = {"lr": LOSS_GAP_LR, "batch_size": sizes.loss_batch_size, "requested": sizes.loss_steps}
    for step in range(sizes.loss_steps):
        reason = run.budget.refuses(sizes.tail_reserve_s)
        if reason is not None:
            entry["stopped"] = f"after {step} steps; {reason}"
            break
        subnets = training_subnets(run, step)
        for precision, trainer in trainers.items():
            losses[precision].append(trainer.update(batches[step % LOSS_GAP_BATCHES], subnets).losses[subnets[0][0]])
    entry.update(_loss_gap(losses) if losses["fp32"] else {"status": "skipped", "reason": entry.get("stopped")})
    run.report.set("loss_gap", entry)
    print(_loss_gap_line(entry), flush=True)
    return entry, trainers["fp32"].net


def _loss_gap(losses: dict[str, list[float]]) -> dict[str, Any]:
    tail = {precision: statistics.fmean(values[-LOSS_GAP_TAIL:]) for precision, values in losses.items()}
    gap = abs(tail["bf16"] - tail["fp32"])
    return {
        "status": "ran",
        "steps": len(losses["fp32"]),
        "largest_subnet_losses": losses,
        f"mean_last_{LOSS_GAP_TAIL}": tail,
        "gap_abs": gap,
        "gap_rel": gap / abs(tail["fp32"]),
    }


# ---------------------------------------------------------------------------------------- (c) parity


@contextlib.contextmanager
def ieee_fp32() -> Iterator[None]:
    """Full-precision fp32 matmuls and convolutions (no TF32) inside the block."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    matmul.fp32_precision = conv.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision, conv.fp32_precision = saved


def subnet_parity(run: Run, net: Supernet, cfg: SubnetConfig, seed: int) -> dict[str, Any]:
    """Max |difference| of the logits of the supernet running ``cfg``, its export and the export's inference form."""
    batch = run.sizes.parity_batch_size
    net.eval()
    net.set_active_subnet(cfg)
    recalibrate_bn(net, random_images(2, batch, cfg.resolution, seed, run.device))
    static = net.export(cfg)
    fast = optimize_for_inference(static)
    x = random_images(1, batch, cfg.resolution, seed + 1, run.device)[0]
    with torch.inference_mode():
        supernet, export, inference = net(x), static(x), fast(x)
    return {
        "subnet": str(cfg),
        "max_abs_logit": supernet.abs().max().item(),
        "supernet_vs_export": (supernet - export).abs().max().item(),
        "export_vs_inference": (export - inference).abs().max().item(),
        "supernet_vs_inference": (supernet - inference).abs().max().item(),
    }


def part_parity(run: Run, net: Supernet, weights: str) -> dict[str, Any]:
    """Part (c) for the smallest, the largest and a random subnet, each at its own resolution."""
    space = run.space
    cfgs = {"min": space.min_subnet(), "max": space.max_subnet(), "random": space.sample(random.Random(run.seed))}
    subnets = {}
    with ieee_fp32():
        for index, (slot, cfg) in enumerate(cfgs.items()):
            subnets[slot] = _guarded(run.budget.refuses(0.0), subnet_parity, run, net, cfg, run.seed + 10 * index)
    ran = [entry for entry in subnets.values() if entry["status"] == "ran"]
    keys = ("supernet_vs_export", "export_vs_inference", "supernet_vs_inference")
    entry = {"weights": weights, "precision": "fp32, TF32 off", "subnets": subnets}
    entry["max_abs_diff"] = max((e[k] for e in ran for k in keys), default=None)
    run.report.set("parity", entry)
    print(_parity_line(entry), flush=True)
    return entry


# --------------------------------------------------------------------------------------- (d) latency


def latency_subnets(space: SearchSpace, seed: int) -> dict[str, SubnetConfig]:
    """The smallest subnet, the median-MACs one of ``MEDIAN_POOL`` random subnets, and the largest."""
    rng = random.Random(seed)
    pool = sorted((space.sample(rng) for _ in range(MEDIAN_POOL)), key=lambda cfg: space.cost(cfg).macs)
    return {"min": space.min_subnet(), "median_macs": pool[MEDIAN_POOL // 2], "max": space.max_subnet()}


@torch.inference_mode()
def latency_ms(run: Run, model: nn.Module, x: Tensor) -> list[float]:
    """Milliseconds of each of ``latency_repeats`` forward passes after ``latency_warmup`` untimed ones."""
    for _ in range(run.sizes.latency_warmup):
        model(x)
    samples = []
    for _ in range(run.sizes.latency_repeats):
        run.synchronize()
        start = time.perf_counter()
        model(x)
        run.synchronize()
        samples.append(1e3 * (time.perf_counter() - start))
    return samples


def measure_latency(run: Run, model: nn.Module, resolution: int, batch: int, dtype: torch.dtype) -> dict[str, Any]:
    """Median, p10 and p90 milliseconds of ``model`` on a contiguous (batch, 3, resolution, resolution) input."""
    x = random_images(1, batch, resolution, run.seed, run.device)[0].to(dtype)
    samples = latency_ms(run, model, x)
    deciles = statistics.quantiles(samples, n=10, method="inclusive")
    return {"median_ms": statistics.median(samples), "p10_ms": deciles[0], "p90_ms": deciles[-1]}


def part_latency(run: Run, net: Supernet) -> list[dict[str, Any]]:
    """Part (d): every subnet x batch x dtype, each with its own budget check."""
    results = []
    for slot, cfg in latency_subnets(run.space, run.seed).items():
        fast = optimize_for_inference(net.export(cfg))
        for dtype_name, dtype in LATENCY_DTYPES.items():
            model = copy.deepcopy(fast).to(dtype=dtype)
            for batch in run.sizes.latency_batches:
                entry = {"subnet": slot, "config": str(cfg), "macs": run.space.cost(cfg).macs, "dtype": dtype_name}
                entry.update(batch=batch, repeats=run.sizes.latency_repeats)
                skip = run.budget.refuses(0.0)
                entry.update(_guarded(skip, measure_latency, run, model, cfg.resolution, batch, dtype))
                results.append(entry)
                run.report.set("latency", results)
    print(_latency_lines(results), flush=True)
    return results


# ---------------------------------------------------------------------------------- (e) scaling rules


def scaled_models(space: SearchSpace, factors: tuple[float, ...]) -> dict[str, SubnetConfig]:
    """The smallest subnet of ``space`` and it scaled by every rule to each factor."""
    base = space.min_subnet()
    models = {"base": base}
    models.update({f"{rule} x{f:g}": scale_subnet(base, rule, f).cfg for rule in RULES for f in factors})
    return models


def part_scaling(run: Run) -> dict[str, Any]:
    """Part (e): runtime of every scaled model (random weights: they do not change the runtime) and its correlation
    with MACs, params and activations; each model leaves the compilation its budget reserve."""
    dtype = LATENCY_DTYPES["bf16"]
    entries = []
    section = {"dtype": "bf16", "batch": run.sizes.scaling_batch, "models": entries}
    for name, cfg in scaled_models(run.space, run.sizes.scaling_factors).items():
        cost = cfg.space.cost(cfg)
        entry = {"model": name, "config": str(cfg), "macs": cost.macs, "params": cost.params}
        entry["activations"] = cost.activations
        skip = run.budget.refuses(run.sizes.compile_reserve_s)
        model = None if skip else inference_model(cfg).to(device=run.device, dtype=dtype)
        entry.update(_guarded(skip, measure_latency, run, model, cfg.resolution, run.sizes.scaling_batch, dtype))
        entries.append(entry)
        run.report.set("scaling", section)
    section["correlations"] = scaling_correlations(entries)
    run.report.set("scaling", section)
    print(_scaling_lines(section), flush=True)
    return section


def scaling_correlations(entries: list[dict[str, Any]]) -> dict[str, dict[str, float]] | None:
    """Pearson and Spearman of median runtime with each metric over the models that ran (None under three)."""
    ran = [entry for entry in entries if entry["status"] == "ran"]
    if len(ran) < 3:
        return None
    runtime = [entry["median_ms"] for entry in ran]
    return {
        metric: {
            "pearson": pearson([entry[metric] for entry in ran], runtime),
            "spearman": spearman([entry[metric] for entry in ran], runtime),
        }
        for metric in SCALING_METRICS
    }


# ------------------------------------------------------------------------------------------ (f) block kinds


def part_block_kinds(run: Run) -> dict[str, Any]:
    """Part (f): block kinds and group sizes per stage shape (``benchmarks/block_kinds.py``), in fp32 and bf16; each
    dtype starts only while the compilation's reserve is left (a few seconds on a GPU, so it barely eats into it)."""
    section = {}
    for name, dtype in (("fp32", "float32"), ("bf16", "bfloat16")):
        settings = LatencySettings(
            dtype=dtype, warmup=run.sizes.latency_warmup, repeats=run.sizes.latency_repeats, device=str(run.device)
        )
        batches = list(run.sizes.latency_batches)
        skip = run.budget.refuses(run.sizes.compile_reserve_s)
        section[name] = _guarded(skip, _block_rows, run.space, run.sizes.image_size, batches, settings)
        run.report.set("block_kinds", section)
        if section[name]["status"] == "ran":
            print(f"(f) block kinds, {name}\n{format_rows(section[name]['rows'])}", flush=True)
        else:
            print(f"(f) block kinds, {name}: {section[name]['status']}", flush=True)
    return section


def _block_rows(space: SearchSpace, resolution: int, batches: list[int], settings: LatencySettings) -> dict[str, Any]:
    return {"rows": compare_block_kinds(space, resolution, batches, settings)}


# ------------------------------------------------------------------------------------------ plumbing


def _guarded(skip: str | None, work: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Status ``skipped`` with the reason ``skip`` when given; else ``work(*args)``'s figures with status ``ran``, or
    status ``failed`` and the error, so that one failure loses one entry only."""
    if skip is not None:
        return {"status": "skipped", "reason": skip}
    try:
        return {"status": "ran", **work(*args)}
    except Exception as error:  # a failure on a first GPU contact must not lose the other figures
        traceback.print_exc()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"status": "failed", "error": f"{type(error).__name__}: {str(error)[:2000]}"}


class BudgetExceeded(Exception):
    """The budget ended inside a part that cannot check it between steps (compilation)."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` in the main thread after ``seconds``, and every 2 s after that in case torch
    code swallows one (SIGALRM; without it, where the platform lacks it, only the between-step checks remain)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise BudgetExceeded(f"the budget ended {seconds:.0f} s into compilation and timing")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3), 2.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _ListHandler(logging.Handler):
    def __init__(self, messages: list[str]):
        super().__init__(logging.WARNING)
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def torch_log_roots() -> list[logging.Logger]:
    """``torch`` and the torch loggers whose records stop there: torch logs each component (the compiler's among
    them) on its own, without propagating to ``torch``."""
    names = [name for name in list(logging.root.manager.loggerDict) if name.split(".")[0] == "torch"]
    return [logging.getLogger(name) for name in names if name == "torch" or not logging.getLogger(name).propagate]


@contextlib.contextmanager
def captured_warnings(limit: int = 20) -> Iterator[list[str]]:
    """Collect Python warnings and torch's logged warnings (graph breaks, recompile limits) raised in the block;
    the list holds the first ``limit`` distinct messages, 500 characters each, once the block ends."""
    messages: list[str] = []
    handler, loggers = _ListHandler(messages), torch_log_roots()
    for logger in loggers:
        logger.addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield messages
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
            messages.extend(str(warning.message) for warning in caught)
            messages[:] = [message[:500] for message in dict.fromkeys(messages)][:limit]


def _reset_peak_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"peak_memory_gib": None, "peak_memory_note": NO_CUDA_MEMORY}
    return {"peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30}


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN) and tuples as lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def environment(device: torch.device) -> dict[str, Any]:
    """What ran the check: device, versions, threads and the fp32 precision settings in force."""
    cuda = device.type == "cuda"
    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
        "cpu_threads": torch.get_num_threads(),
        "matmul_fp32_precision": torch.backends.cuda.matmul.fp32_precision,
        "cudnn_conv_fp32_precision": torch.backends.cudnn.conv.fp32_precision,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


# ------------------------------------------------------------------------------------------- summary


def _setting_line(entry: dict[str, Any]) -> str:
    name = f"  {entry.get('setting', 'compile'):<28}"
    if entry["status"] != "ran":
        return f"{name} {entry['status']}: {entry.get('reason') or entry.get('error')}"
    memory = entry["peak_memory_gib"]
    memory_text = f"{memory:8.2f} GiB" if memory is not None else "       n/a"
    return f"{name} {entry['images_per_s']:10.1f} img/s {entry['step_ms_median']:9.1f} ms/step {memory_text}"


def _loss_gap_line(entry: dict[str, Any]) -> str:
    if entry["status"] != "ran":
        return f"(b) loss gap: skipped ({entry['reason']})"
    tail = entry[f"mean_last_{LOSS_GAP_TAIL}"]
    return (
        f"(b) largest-subnet loss after {entry['steps']} steps, mean of the last {LOSS_GAP_TAIL}: fp32 "
        f"{tail['fp32']:.4f}, bf16 {tail['bf16']:.4f}, gap {entry['gap_abs']:.4f} ({100 * entry['gap_rel']:.2f}%)"
    )


def _parity_line(entry: dict[str, Any]) -> str:
    parts = []
    for slot, subnet in entry["subnets"].items():
        if subnet["status"] != "ran":
            parts.append(f"{slot} {subnet['status']}")
            continue
        parts.append(
            f"{slot} {subnet['supernet_vs_export']:.1e} / {subnet['export_vs_inference']:.1e} "
            f"(|logit| <= {subnet['max_abs_logit']:.1f})"
        )
    return "(c) parity, max |diff| supernet-export / export-inference: " + "; ".join(parts)


def _latency_lines(results: list[dict[str, Any]]) -> str:
    lines = ["(d) latency of the inference form, ms: median [p10, p90]"]
    for entry in results:
        where = f"  {entry['subnet']:<12} {entry['dtype']} batch {entry['batch']:<4}"
        if entry["status"] != "ran":
            lines.append(f"{where} {entry['status']}: {entry.get('reason') or entry.get('error')}")
        else:
            lines.append(f"{where} {entry['median_ms']:9.3f} [{entry['p10_ms']:.3f}, {entry['p90_ms']:.3f}]")
    return "\n".join(lines)


def _scaling_lines(section: dict[str, Any]) -> str:
    lines = [f"(e) scaled models, {section['dtype']} batch {section['batch']}, ms: median [p10, p90]"]
    for entry in section["models"]:
        where = f"  {entry['model']:<16} {entry['macs'] / 1e6:9.1f} M MACs"
        if entry["status"] != "ran":
            lines.append(f"{where} {entry['status']}: {entry.get('reason') or entry.get('error')}")
        else:
            lines.append(f"{where} {entry['median_ms']:9.3f} [{entry['p10_ms']:.3f}, {entry['p90_ms']:.3f}]")
    for metric, values in (section["correlations"] or {}).items():
        lines.append(f"  runtime vs {metric}: Pearson {values['pearson']:.3f}, Spearman {values['spearman']:.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; the sizes left out come from the preset (see :func:`resolve_sizes`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON report")
    parser.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    parser.add_argument("--tiny", action="store_true", help="tiny space and sizes: the whole check in seconds")
    parser.add_argument("--budget-s", type=float, default=330.0, help="skip what would end after this many seconds")
    parser.add_argument("--batch-size", type=int, help="images per step of part (a) (default 128; tiny 8)")
    parser.add_argument("--steps", type=int, dest="timed_steps", help="timed steps per setting (default 20; tiny 3)")
    parser.add_argument("--loss-steps", type=int, help="steps of each part-(b) run (default 100; tiny 10)")
    parser.add_argument("--image-size", type=int, help="side of the synthetic images (default 224; tiny 32)")
    parser.add_argument("--compile-backend", default="inductor", help="torch.compile backend (e.g. aot_eager)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--parts",
        type=parse_parts,
        default=list(PARTS),
        help=f"the parts to run, e.g. a,e,compile (default: all of {','.join(PARTS)})",
    )
    return parser.parse_args(argv)


def parse_parts(text: str) -> list[str]:
    """``--parts``: a comma-separated subset of :data:`PARTS`."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"unknown parts {unknown or [text]}; pass a comma-separated subset of {PARTS}")
    return parts


def _not_asked(run: Run, key: str, value: Any = None) -> Any:
    """Record part ``key`` as skipped for ``--parts``; returns ``value`` (default: that record)."""
    entry = {"status": "skipped", "reason": "not among --parts"}
    run.report.set(key, entry)
    return entry if value is None else value


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when torch sees one), ``cuda`` or ``cpu``; exits naming the fix when CUDA is missing."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device; run on a GPU machine or pass --device cpu --tiny")
    return torch.device(name)


def resolve_sizes(args: argparse.Namespace) -> Sizes:
    """The preset (``--tiny`` or the GPU one) with the sizes given on the command line."""
    base = TINY_SIZES if args.tiny else GPU_SIZES
    given = {f.name: getattr(args, f.name) for f in fields(Sizes) if getattr(args, f.name, None) is not None}
    return replace(base, **given)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every part the budget allows, write ``--out`` and print the summary; returns the report."""
    args = parse_args(argv)
    budget, device, sizes = Budget(args.budget_s), resolve_device(args.device), resolve_sizes(args)
    torch.manual_seed(args.seed)
    template = Supernet(load_space(sizes.space), num_classes=sizes.num_classes).to(device)
    header = {"environment": environment(device), "settings": {**asdict(sizes), "seed": args.seed}}
    header["settings"].update(budget_s=args.budget_s, compile_backend=args.compile_backend)
    header["training_step"] = {**asdict(SandwichConfig()), **asdict(ProjectionConfig())}
    header["training_step"].update(optimizer="adamw (timm)", clip_grad=OptimConfig().clip_grad, accumulation=1)
    report = Report(args.out, budget, header)
    run = Run(sizes, device, args.seed, args.compile_backend, budget, report, template)
    report.set("timed_subnets", {slot: str(cfg) for slot, cfg in training_subnets(run, 0)})
    print(f"gpu_check on {header['environment']['device_name']} ({device}), torch {torch.__version__}", flush=True)
    print(f"(a) sandwich step, batch {sizes.batch_size} at {sizes.image_size} px", flush=True)
    asked = set(args.parts)
    eager = part_throughput(run) if "a" in asked else _not_asked(run, "throughput", [])
    loss_gap, trained = part_loss_gap(run) if "b" in asked else (_not_asked(run, "loss_gap"), run.template)
    weights = "after the fp32 run of part (b)" if loss_gap["status"] == "ran" else "initial"
    for part, key, work, args_ in (
        ("c", "parity", part_parity, (run, trained, weights)),
        ("d", "latency", part_latency, (run, trained)),
        ("e", "scaling", part_scaling, (run,)),
        ("f", "block_kinds", part_block_kinds, (run,)),
        ("compile", "compile", part_compile, (run, eager)),
    ):
        if part in asked:
            work(*args_)
        else:
            _not_asked(run, key)
    report.set("finished", True)
    print(f"wrote {args.out} after {budget.elapsed():.0f} s (budget {args.budget_s:.0f} s)", flush=True)
    return report.data


if __name__ == "__main__":
    main()
