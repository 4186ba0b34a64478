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

from nasvit import checkpoint, run_directory
from nasvit.data import DataConfig, build_data, fixed_batches
from nasvit.errors import NasvitError
from search_space import SubnetConfig, parse_space, space_to_dict
from supernet import NASViT, optimize_for_inference, recalibrate_bn

TOLERANCE = 1e-4
WEIGHTS_FILE, SUBNET_FILE, ONNX_FILE, TORCHSCRIPT_FILE = "model.safetensors", "subnet.json", "model.onnx", "model.ts"


@dataclass
class ExportReport:
    """What an export wrote and how closely each artefact matches the supernet (largest absolute difference)."""

    out_dir: Path
    subnet: str
    differences: dict[str, float] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


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
    onnx: bool = False,
    torchscript: bool = False,
    overwrite: bool = False,
) -> ExportReport:
    """Recalibrate BN for ``cfg`` on the training data, build its static model, verify and write it.

    Args:
        state: a loaded supernet checkpoint (:func:`nasvit.checkpoint.load`).
        checkpoint_path: where it came from (recorded as provenance).
        cfg: the subnet.
        out_dir: the export directory.
        metrics: accuracy already known for this subnet (for example from a search's ``best.json``).
        data: the data for BN recalibration (default: the checkpoint's training data).
        bn_batches, batch_size: size of the BN recalibration set.
        use_ema: export the EMA weights when the checkpoint has them.
        onnx, torchscript: also write and verify ``model.onnx`` / ``model.ts``.
        overwrite: replace an export (or another nasvit run) already in ``out_dir``.

    The files are written beside ``out_dir`` and swapped into place after verification, so the directory never
    holds files of two exports, and a failed export leaves it as it was.

    Raises:
        NasvitError: an artefact differs from the supernet by more than 1e-4, ONNX export needs onnxruntime, or
            ``out_dir`` holds a run and ``overwrite`` is not set.
    """
    if onnx:
        _require_onnxruntime()
    out = Path(out_dir)
    inputs = {"checkpoint_sha256": run_directory.file_digest(checkpoint_path), "subnet": str(cfg)}
    run_directory.check(out, "export", inputs, resume=False, overwrite=overwrite)  # refuse before the work
    net = checkpoint.supernet_from_state(state, use_ema).eval()
    data = data or checkpoint.data_config_of(state)
    calibration = fixed_batches(
        build_data(data).train_eval, bn_batches, batch_size, data.seed, size_keys=("--bn-batches", "--batch-size")
    )
    net.set_active_subnet(cfg)
    recalibrate_bn(net, calibration)
    static = net.export(cfg).eval()
    probe = torch.cat([calibration[0][0][:4], torch.randn(4, *calibration[0][0].shape[1:])])
    with torch.no_grad():
        reference = static(probe)
        report = ExportReport(Path(out_dir), str(cfg))
        report.differences["supernet"] = _max_difference(net(probe), reference)
        fast = optimize_for_inference(static)
        report.differences["inference"] = _max_difference(fast(probe), reference)
    artefacts: dict[str, bytes] = {}
    if torchscript:
        artefacts[TORCHSCRIPT_FILE], report.differences["torchscript"] = _torchscript(fast, probe, reference)
    if onnx:
        artefacts[ONNX_FILE], report.differences["onnx"] = _onnx(static, probe, reference)
    failed = {name: diff for name, diff in report.differences.items() if not diff <= TOLERANCE}
    if failed:
        raise NasvitError(f"export of {cfg} failed verification: largest differences {failed} exceed {TOLERANCE}")
    recalibration = {
        "dataset": data.dataset,
        "image_size": data.image_size,
        "batches": len(calibration),
        "batch_size": batch_size,
    }
    description = _description(static, cfg, state, checkpoint_path, metrics or {}, report, recalibration)

    def write(directory: Path) -> None:
        save_file(static.state_dict(), str(directory / WEIGHTS_FILE))
        for name, payload in artefacts.items():
            (directory / name).write_bytes(payload)
        (directory / SUBNET_FILE).write_text(json.dumps(description, indent=2) + "\n")

    run_directory.publish(out, "export", inputs, write, overwrite=overwrite)
    report.files = [WEIGHTS_FILE, SUBNET_FILE, *artefacts]
    return report


def load_model(directory: str | Path, inference: bool = False) -> torch.nn.Module:
    """The exported model in ``directory`` (eval mode, on the CPU): a :class:`~supernet.NASViT`, or with
    ``inference`` its inference form (:func:`~supernet.optimize_for_inference`; faster, not trainable).

    Raises:
        NasvitError: the directory is not an export (no ``subnet.json`` / ``model.safetensors``).
    """
    directory = Path(directory)
    description = read_description(directory)
    try:
        space = parse_space(description["space"], source=f"{directory / SUBNET_FILE} (space)")
        model = NASViT(SubnetConfig.from_string(description["subnet"], space), description["num_classes"])
    except (KeyError, TypeError) as error:
        raise NasvitError(f"{directory / SUBNET_FILE} lacks or mangles {error}; export the model again") from None
    weights = directory / WEIGHTS_FILE
    try:
        model.load_state_dict(load_file(str(weights)))
    except Exception as error:  # safetensors raises its own error type for truncated or foreign files
        first_line = (str(error).splitlines() or [""])[0][:200]
        raise NasvitError(
            f"{weights} is damaged or belongs to another model ({type(error).__name__}: {first_line}); "
            "export the model again"
        ) from None
    return optimize_for_inference(model) if inference else model.eval()


def read_description(directory: str | Path) -> dict[str, Any]:
    """The parsed ``subnet.json`` of an export directory."""
    directory = Path(directory)
    for name in (SUBNET_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise NasvitError(f"{directory} is not an exported model: {name} is missing (make one with nasvit export)")
    path = directory / SUBNET_FILE
    try:
        description = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NasvitError(f"{path} is not valid JSON ({error}); export the model again") from None
    if not isinstance(description, dict):
        raise NasvitError(f"{path} does not hold an export description (a JSON object); export the model again")
    return description


def _description(static, cfg, state, checkpoint_path, metrics, report, recalibration) -> dict[str, Any]:
    return {
        "subnet": str(cfg),
        "config": cfg.to_dict(),
        "space": space_to_dict(cfg.space),
        "num_classes": static.num_classes,
        "resolution": cfg.resolution,
        "costs": static.cost,
        "metrics": metrics,
        "verification": {"max_abs_difference": report.differences, "tolerance": TOLERANCE},
        "bn_recalibration": recalibration,
        "provenance": {
            "checkpoint": str(checkpoint_path),
            "checkpoint_step": state.get("step"),
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


def _onnx(static: NASViT, probe: torch.Tensor, reference: torch.Tensor) -> tuple[bytes, float]:
    import onnxruntime

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer warns about shape-dependent branches, which are static here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            static,
            (probe,),
            buffer,
            dynamo=False,
            opset_version=17,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
        )
    session = onnxruntime.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"images": probe.numpy()})
    return buffer.getvalue(), _max_difference(torch.from_numpy(output), reference)


def _require_onnxruntime() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise NasvitError("--onnx needs onnx and onnxruntime: pip install 'nasvit[onnx]'") from None


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
