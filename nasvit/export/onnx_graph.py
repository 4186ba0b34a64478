"""ONNX files of exported models: at the subnet's own resolution, dynamic batch, metadata, verified in onnxruntime.

The graph takes ``(batch, 3, R, R)`` images, R the subnet's resolution; with ``dynamic_size`` it takes any
``(batch, 3, H, W)`` and resizes to R first, as the PyTorch model does. ``metadata_props`` carry what a deployment
needs to preprocess: input size, mean, std, interpolation, class count and the subnet string.
"""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import torch

from nasvit.latency.onnx_runtime import ONNX_OPSET
from supernet import NASViT

ONNX_BATCHES = (1, 4)  # onnxruntime parity is checked at these batch sizes


def export_onnx(
    model: NASViT, pretrained_cfg: dict[str, Any], dynamic_size: bool = False, seed: int = 0
) -> tuple[bytes, float]:
    """Export ``model`` (eval mode) to ONNX and check it in onnxruntime against PyTorch.

    Args:
        model: the static model.
        pretrained_cfg: the export's preprocessing (``input_size``, ``mean``, ``std``, ``interpolation``,
            ``crop_pct``, ``num_classes``), stored as metadata.
        dynamic_size: also make height and width dynamic (the graph resizes to the subnet's resolution).
        seed: seed of the random probe images.

    Returns:
        ``(onnx bytes, largest |difference|)`` over batches of ``ONNX_BATCHES`` images at the subnet's resolution
        (and, with ``dynamic_size``, at the preprocessing's input size and the traced size too).
    """
    import onnx

    resolution, load_size = model.resolution, pretrained_cfg["input_size"][-1]
    if dynamic_size:  # traced at another size than the resolution, so the graph keeps the model's resize
        trace_size = load_size if load_size != resolution else resolution + 8
        sizes = sorted({resolution, load_size, trace_size})
        axes = {0: "batch", 2: "height", 3: "width"}
    else:
        trace_size, sizes, axes = resolution, [resolution], {0: "batch"}
    generator = torch.Generator().manual_seed(seed)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer warns about shape-dependent branches, which are static here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.randn(2, 3, trace_size, trace_size, generator=generator),),
            buffer,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": axes, "logits": {0: "batch"}},
        )
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, metadata(model, pretrained_cfg, dynamic_size))
    payload = graph.SerializeToString()
    probes = [torch.randn(batch, 3, size, size, generator=generator) for size in sizes for batch in ONNX_BATCHES]
    return payload, _largest_difference(model, payload, probes)


def metadata(model: NASViT, pretrained_cfg: dict[str, Any], dynamic_size: bool) -> dict[str, str]:
    """The ``metadata_props`` of a model's ONNX file (every value a string; lists as JSON)."""
    return {
        "subnet": model.subnet,
        "resolution": str(model.resolution),
        "input_size": json.dumps(list(pretrained_cfg["input_size"])),
        "mean": json.dumps(list(pretrained_cfg["mean"])),
        "std": json.dumps(list(pretrained_cfg["std"])),
        "interpolation": pretrained_cfg["interpolation"],
        "crop_pct": str(pretrained_cfg["crop_pct"]),
        "num_classes": str(model.num_classes),
        "dynamic_size": str(dynamic_size).lower(),
    }


def _largest_difference(model: NASViT, payload: bytes, probes: list[torch.Tensor]) -> float:
    """Largest |onnxruntime - PyTorch| logit difference over the probe batches."""
    import onnxruntime

    session = onnxruntime.InferenceSession(payload, providers=["CPUExecutionProvider"])
    largest = 0.0
    with torch.no_grad():
        for images in probes:
            (output,) = session.run(None, {"images": images.numpy()})
            largest = max(largest, float((torch.from_numpy(output) - model(images)).abs().max()))
    return largest
