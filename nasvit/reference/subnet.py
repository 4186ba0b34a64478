"""Subnets in the NASViT reference code's dict form and back.

The reference writes a subnet as ``{"resolution": R, "width": [stem, s1..s7, head], "depth": [7],
"kernel_size": [7], "expand_ratio": [7]}``: one entry per stage, the stem's and head's widths around the stage
widths, and a transformer stage's depth counting its leading MBConv (as nasvit's does). It has no MLP-ratio or
window choice, so only subnets with MLP ratio 1 and one window have a reference form.
"""

from __future__ import annotations

from typing import Any

from nasvit.errors import NasvitError
from search_space import SearchSpace, StageChoice, SubnetConfig

REFERENCE_KEYS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")


class ReferenceSubnetError(NasvitError):
    """A subnet that has no reference form, or a reference dict that is malformed."""


def is_reference_subnet(data: Any) -> bool:
    """Whether ``data`` looks like a reference subnet dict (has every key of :data:`REFERENCE_KEYS`)."""
    return isinstance(data, dict) and all(key in data for key in REFERENCE_KEYS)


def to_reference(cfg: SubnetConfig) -> dict[str, Any]:
    """The reference dict of ``cfg``.

    Raises:
        ReferenceSubnetError: a transformer stage uses an MLP ratio or window count the reference cannot express.
    """
    for spec, choice in zip(cfg.space.stages, cfg.stages):
        if spec.is_transformer and (choice.mlp_ratio, choice.windows) != (1, 1):
            raise ReferenceSubnetError(
                f"stage {spec.name} of {cfg} has MLP ratio {choice.mlp_ratio} and {choice.windows} window(s); the "
                "reference code has only ratio 1 and one window: choose such a subnet (e.g. of space nasvit_official)"
            )
    return {
        "resolution": cfg.resolution,
        "width": [cfg.stem_width, *(choice.width for choice in cfg.stages), cfg.head_width],
        "depth": [choice.depth for choice in cfg.stages],
        "kernel_size": [choice.kernel for choice in cfg.stages],
        "expand_ratio": [choice.expand_ratio for choice in cfg.stages],
    }


def from_reference(data: Any, space: SearchSpace, source: str = "reference subnet") -> SubnetConfig:
    """The subnet of ``space`` a reference dict describes (MLP ratio 1 and one window in transformer stages).

    Raises:
        ReferenceSubnetError: a key is missing, or a list has the wrong length or non-integer entries.
        SpaceError: a value is not allowed by ``space``.
    """
    if not is_reference_subnet(data):
        missing = [key for key in REFERENCE_KEYS if not isinstance(data, dict) or key not in data]
        raise ReferenceSubnetError(f"{source} lacks {missing}; a reference subnet has the keys {list(REFERENCE_KEYS)}")
    stages = len(space.stages)
    lengths = {"width": stages + 2, "depth": stages, "kernel_size": stages, "expand_ratio": stages}
    for key, length in lengths.items():
        values = data[key]
        if not isinstance(values, list) or len(values) != length or not all(_is_int(v) for v in values):
            raise ReferenceSubnetError(
                f"{source}: {key}={values!r} must be a list of {length} integers for space {space.name} "
                f"({'stem, ' if key == 'width' else ''}{stages} stages{', head' if key == 'width' else ''})"
            )
    if not _is_int(data["resolution"]):
        raise ReferenceSubnetError(f"{source}: resolution={data['resolution']!r} must be an integer, e.g. 224")
    widths = data["width"]
    choices = [
        StageChoice(width, depth, kernel, expand)
        for width, depth, kernel, expand in zip(widths[1:-1], data["depth"], data["kernel_size"], data["expand_ratio"])
    ]
    return SubnetConfig(space, data["resolution"], widths[0], tuple(choices), widths[-1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
