"""Export a subnet of a trained supernet as a standalone model, verified, and load it back.

An export directory holds ``model.safetensors`` (the static model's weights and BN statistics: the trainable
form, which timm and ``load_model`` read), ``subnet.json`` (subnet, search space, costs, known accuracy,
provenance, parity figures) and optionally ``model.onnx`` and ``model.ts`` (TorchScript of the inference form,
:func:`~supernet.optimize_for_inference`: BN folded, channels-last; for deployment, not for training).
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from timm.data import DEFAULT_CROP_PCT

from nasvit.config.loading import build, to_dict
from nasvit.data import DataConfig, build_data, fixed_batches
from nasvit.errors import NasvitError
from nasvit.export.onnx_graph import export_onnx
from nasvit.latency.onnx_runtime import require_onnxruntime
from nasvit.runtime import checkpoint, run_directory
from search_space import SubnetConfig, space_to_dict
from supernet import NASViT, optimize_for_inference, recalibrate_bn
from supernet.resolution import state_at_resolution
from supernet.timm_models import SUBNET_FILE, WEIGHTS_FILE, configs_at_resolution, read_export, read_export_description

TOLERANCE = 1e-4
ONNX_FILE, TORCHSCRIPT_FILE = "model.onnx", "model.ts"  # beside SUBNET_FILE and WEIGHTS_FILE (timm reads those)


@dataclass
class ExportReport:
    """What an export wrote and how closely each artefact matches the supernet (largest absolute difference)."""

    out_dir: Path
    subnet: str
    differences: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExportOptions:
    """What an export writes besides the weights and ``subnet.json``, and whether it may replace a directory.

    Attributes:
        onnx, torchscript: also write and verify ``model.onnx`` / ``model.ts``.
        onnx_dynamic_size: the ONNX graph takes any image size (it resizes to the subnet's resolution).
        overwrite: replace an export (or another nasvit run) already in the export directory.
    """

    onnx: bool = False
    torchscript: bool = False
    onnx_dynamic_size: bool = False
    overwrite: bool = False

    def check(self) -> None:
        """Refuse, before any work, what cannot be written here (ONNX without onnxruntime)."""
        if self.onnx:
            require_onnxruntime("--onnx")


def export_subnet(
    state: dict[str, Any],
    checkpoint_path: str,
    cfg: SubnetConfig,
    out_dir: str | Path,
    metrics: dict[str, Any] | None = None,
    data: DataConfig | None = None,
    bn_batches: int = 8,
    batch_size: int = 64,
    use_ema: bool = True,
    options: ExportOptions = ExportOptions(),
) -> ExportReport:
    """Recalibrate BN for ``cfg`` on the training data, build its static model, verify and write it.

    Args:
        state: a loaded supernet checkpoint (:func:`nasvit.runtime.checkpoint.load`); ``checkpoint_path`` is its file.
        cfg: the subnet; ``out_dir`` the export directory.
        metrics: accuracy already known for this subnet (for example from a search's ``best.json``).
        data: the data for BN recalibration (default: the checkpoint's training data).
        bn_batches, batch_size: size of the BN recalibration set.
        use_ema: export the EMA weights when the checkpoint has them.

    Raises:
        NasvitError: see :func:`write_export`.
    """
    options.check()
    inputs = {"checkpoint_sha256": run_directory.file_digest(checkpoint_path), "subnet": str(cfg)}
    run_directory.check(Path(out_dir), "export", inputs, resume=False, overwrite=options.overwrite)  # before work
    splits = build_data(data or checkpoint.data_config_of(state))
    data = splits.config  # resolved: a folder without a validation split records val_split null
    net = checkpoint.supernet_from_state(state, use_ema).eval()
    calibration = fixed_batches(
        splits.train_eval, bn_batches, batch_size, data.seed, size_keys=("--bn-batches", "--batch-size")
    )
    static, probe, difference = _recalibrated_static(net, cfg, calibration)
    recalibration = {"dataset": data.dataset, "image_size": data.image_size, "batches": len(calibration)}
    provenance = {"checkpoint": str(checkpoint_path), "checkpoint_step": state.get("step")}
    extra = {"bn_recalibration": {**recalibration, "batch_size": batch_size}}
    differences = {"supernet": difference}
    return write_export(static, out_dir, inputs, data, probe, provenance, metrics or {}, differences, extra, options)


def _recalibrated_static(net, cfg: SubnetConfig, calibration: list) -> tuple[NASViT, torch.Tensor, float]:
    """The static model of ``cfg`` after BN recalibration on ``calibration``, a probe batch (4 training images and
    4 random ones) and the largest difference of its logits from the supernet's on it."""
    net.set_active_subnet(cfg)
    recalibrate_bn(net, calibration)
    static = net.export(cfg).eval()
    probe = torch.cat([calibration[0][0][:4], torch.randn(4, *calibration[0][0].shape[1:])])
    with torch.no_grad():
        return static, probe, _max_difference(net(probe), static(probe))


def write_export(
    model: NASViT,
    out_dir: str | Path,
    inputs: dict[str, Any],
    data: DataConfig,
    probe: torch.Tensor,
    provenance: dict[str, Any],
    metrics: dict[str, Any],
    differences: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
    options: ExportOptions = ExportOptions(),
) -> ExportReport:
    """Verify a static model's artefacts against it and publish them as an export directory.

    The files are written beside ``out_dir`` and swapped into place after verification, so the directory never
    holds files of two exports, and a failed export leaves it as it was.

    Args:
        model: the static model (put in eval mode); ``out_dir`` the export directory.
        inputs: what defines the export (recorded in ``run.json``).
        data: the data settings it was calibrated or trained with (``subnet.json``'s ``data`` and
            ``pretrained_cfg``; ``nasvit eval`` and timm read them).
        probe: (B, 3, S, S) images the artefacts are compared on.
        provenance: where the weights came from (a checkpoint, a parent export); commit, date and torch added.
        metrics: accuracy already known for this model; ``extra``: more top-level entries of ``subnet.json``.
        differences: checks made before (e.g. against the supernet), kept in the verification figures.

    Raises:
        NasvitError: an artefact differs from the model by more than 1e-4, ONNX export needs onnxruntime, or
            ``out_dir`` holds a run and ``options.overwrite`` is not set.
    """
    options.check()
    model = model.eval()
    report = ExportReport(Path(out_dir), model.subnet, dict(differences or {}))
    preprocessing = pretrained_cfg(data, model.num_classes, model.in_chans)
    artefacts = _verified_artefacts(model, probe, preprocessing, options, report.differences)
    description = _description(model, data, preprocessing, provenance, metrics, report, extra or {})

    def write(directory: Path) -> None:
        # contiguous: a model trained with channels_last holds NHWC-strided conv weights, which safetensors refuses
        save_file({name: t.contiguous() for name, t in model.state_dict().items()}, str(directory / WEIGHTS_FILE))
        for name, payload in artefacts.items():
            (directory / name).write_bytes(payload)
        (directory / SUBNET_FILE).write_text(json.dumps(description, indent=2) + "\n")

    run_directory.publish(report.out_dir, "export", inputs, write, overwrite=options.overwrite)
    report.files = [WEIGHTS_FILE, SUBNET_FILE, *artefacts]
    return report


def _verified_artefacts(
    model: NASViT, probe: torch.Tensor, preprocessing: dict, options: ExportOptions, differences: dict[str, float]
) -> dict[str, bytes]:
    """The inference form's, TorchScript's and ONNX's largest differences from ``model`` on ``probe`` (added to
    ``differences``) and the artefact files by name.

    Raises:
        NasvitError: one of them differs by more than :data:`TOLERANCE`.
    """
    with torch.no_grad():
        reference = model(probe)
        fast = optimize_for_inference(model)
        differences["inference"] = _max_difference(fast(probe), reference)
    artefacts: dict[str, bytes] = {}
    if options.torchscript:
        artefacts[TORCHSCRIPT_FILE], differences["torchscript"] = _torchscript(fast, probe, reference)
    if options.onnx:
        artefacts[ONNX_FILE], differences["onnx"] = export_onnx(model, preprocessing, options.onnx_dynamic_size)
    failed = {name: diff for name, diff in differences.items() if not diff <= TOLERANCE}
    if failed:
        raise NasvitError(
            f"export of {model.subnet} failed verification: largest differences {failed} exceed {TOLERANCE}"
        )
    return artefacts


def pretrained_cfg(data: DataConfig, num_classes: int, in_chans: int = 3) -> dict[str, Any]:
    """timm's preprocessing entries for a model trained or calibrated on ``data``: what ``nasvit eval`` feeds it.

    Image folders are evaluated as timm does by default (resize to S / 0.875, centre crop S); the embedded digits
    are resized to S whole (``crop_pct`` 1). Either way ``timm.data.create_transform(**resolve_data_config({},
    model=m))`` reproduces the evaluation input.
    """
    return {
        "input_size": [in_chans, data.image_size, data.image_size],
        "interpolation": data.interpolation,
        "mean": list(data.mean),
        "std": list(data.std),
        "crop_pct": 1.0 if data.kind == "digits" else DEFAULT_CROP_PCT,
        "crop_mode": "center",
        "num_classes": num_classes,
    }


def load_model(directory: str | Path, inference: bool = False, resolution: int | None = None) -> torch.nn.Module:
    """The exported model in ``directory`` (eval mode, on the CPU): a :class:`~supernet.NASViT`, or with
    ``inference`` its inference form (:func:`~supernet.optimize_for_inference`; faster, not trainable). Either
    carries the export's timm ``pretrained_cfg`` (input size, mean, std, interpolation), so
    ``timm.data.resolve_data_config({}, model=model)`` preprocesses as the model was trained.

    With ``resolution`` the model runs at that input side instead of its own (:mod:`supernet.resolution`: the same
    subnet, its relative-position tables resized to the windows there) and its ``pretrained_cfg`` loads images at it.

    Raises:
        NasvitError: the directory is not an export (no ``subnet.json`` / ``model.safetensors``), or the subnet
            cannot run at ``resolution`` (the nearest resolutions that fit are named).
    """
    directory = Path(directory)
    description = read_description(directory)
    try:
        source, pretrained_cfg = read_export(directory)
        cfg = source
        if resolution is not None:
            cfg, pretrained_cfg = configs_at_resolution(source, pretrained_cfg, resolution)
        model = NASViT(cfg, description["num_classes"])
    except (KeyError, TypeError) as error:
        raise NasvitError(f"{directory / SUBNET_FILE} lacks or mangles {error}; export the model again") from None
    except ValueError as error:
        raise NasvitError(str(error)) from None
    model.pretrained_cfg = model.default_cfg = pretrained_cfg  # as timm's builder sets them
    weights = directory / WEIGHTS_FILE
    try:
        model.load_state_dict(state_at_resolution(load_file(str(weights)), source, cfg))
    except Exception as error:  # safetensors raises its own error type for truncated or foreign files
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise NasvitError(
            f"{weights} is damaged or belongs to another model ({type(error).__name__}: {first_line}); "
            "export the model again"
        ) from None
    return optimize_for_inference(model) if inference else model.eval()


def export_data_config(
    directory: str | Path, dataset: str | None = None, root: str | None = None, image_size: int | None = None
) -> DataConfig:
    """The data an export was calibrated or trained on (its ``subnet.json``); ``dataset`` (with ``root``) and
    ``image_size`` replace those entries and keep the recorded preprocessing (mean, std, interpolation).

    Exports written before ``data`` was recorded give their recalibration dataset and load size.

    Raises:
        NasvitError: the recorded settings are not usable here.
    """
    description = read_description(directory)
    if "data" in description:  # the recorded preprocessing (mean, std, interpolation) stays what it was
        problems: list[str] = []
        # another dataset: its own validation folder, if it has one (a recorded null would ignore it)
        replaced = {"dataset": dataset, "root": root, "val_split": DataConfig.val_split} if dataset is not None else {}
        recorded = {**description["data"], **replaced, **({"image_size": image_size} if image_size else {})}
        data = build(DataConfig, recorded, "data.", problems)
        if problems:
            raise NasvitError(f"{Path(directory) / SUBNET_FILE}: its data settings are not usable here ({problems})")
        return data
    recalibration = description.get("bn_recalibration", {})
    size = image_size or recalibration.get("image_size", description["resolution"])
    return DataConfig(dataset=dataset or recalibration.get("dataset", "digits"), root=root, image_size=size)


def read_description(directory: str | Path) -> dict[str, Any]:
    """The parsed ``subnet.json`` of an export directory that holds its weights too.

    Raises:
        NasvitError: a file is missing or ``subnet.json`` is not an export description.
    """
    try:
        return read_export_description(directory, need_weights=True)
    except ValueError as error:
        raise NasvitError(str(error)) from None


def _description(model, data, preprocessing, provenance, metrics, report, extra) -> dict[str, Any]:
    cfg = model.subnet_config
    return {
        "subnet": model.subnet,
        "config": cfg.to_dict(),
        "space": space_to_dict(cfg.space),
        "num_classes": model.num_classes,
        "resolution": model.resolution,
        "costs": model.cost,
        "metrics": metrics,
        "verification": {"max_abs_difference": report.differences, "tolerance": TOLERANCE},
        "data": to_dict(data),
        "pretrained_cfg": preprocessing,
        **extra,
        "provenance": {
            **provenance,
            "commit": _git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
        },
    }


def _torchscript(model: torch.nn.Module, probe: torch.Tensor, reference: torch.Tensor) -> tuple[bytes, float]:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export, but still supported
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(model), buffer)
        buffer.seek(0)
        loaded = torch.jit.load(buffer)
    with torch.no_grad():
        difference = _max_difference(loaded(probe), reference)
    return buffer.getvalue(), difference


def _max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).resolve().parent
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None
