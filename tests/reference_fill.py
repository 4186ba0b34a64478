"""Deterministic, non-trivial weights for the NASViT reference supernet's tensors, from their names and shapes.

Shared by ``tools/reference_fixtures.py`` (which loads them into the reference code and records its logits) and
the parity test (which rebuilds them without the reference code). Every value comes from one seeded generator in
key order, so both sides get identical tensors. The fill is chosen so that a wrong mapping rule shows in the
logits: no zero BN gammas, switchable scales of order 1 (their rows all differ), talking-head mixes far from the
identity, relative-position tables and BN running statistics away from their initial values.
"""

from __future__ import annotations

import math

import torch

INTEGER_SUFFIXES = ("num_batches_tracked", "relative_position_index")


def reference_fill(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """One tensor per ``name -> shape`` entry (in order), drawn from ``torch.Generator().manual_seed(seed)``.

    Integer buffers (``num_batches_tracked``, ``relative_position_index``) are zeros; the reference's index buffer
    must keep the model's own value, so callers loading into the reference code skip it.
    """
    generator = torch.Generator().manual_seed(seed)
    return {name: _fill(name, torch.Size(shape), generator) for name, shape in shapes.items()}


def _fill(name: str, shape: torch.Size, generator: torch.Generator) -> torch.Tensor:
    if name.endswith(INTEGER_SUFFIXES):
        return torch.zeros(shape, dtype=torch.int64)
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("rescale_attn", "rescale_mlp"):  # (10, 8, C), used times 8 / C: every row different, of order 1
        return (0.5 + torch.rand(shape, generator=generator)) * shape[-1] / 8
    if leaf == "running_var" or (len(shape) == 1 and leaf in ("weight", "rescale")):  # variances, gammas: no zeros
        return 0.5 + torch.rand(shape, generator=generator)
    normal = torch.randn(shape, generator=generator)
    if leaf == "running_mean":
        return 0.2 * normal
    if leaf == "relative_position_bias_table":
        return 0.5 * normal
    if len(shape) == 1:  # biases
        return 0.1 * normal
    gain = 0.1 if name.startswith("classifier.") else 1.0  # logits of order 1: float rounding stays far below 1e-4
    return gain * normal / math.sqrt(math.prod(shape[1:]))  # convs, linears, talking-head mixes (far from identity)


def reference_input(batch: int, image_size: int, seed: int) -> torch.Tensor:
    """(batch, 3, image_size, image_size) smooth random images: noise on a coarse grid, upsampled bilinearly, so
    that pooled features (and the logits) differ from image to image far more than for white noise."""
    coarse = torch.randn(batch, 3, 7, 7, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
