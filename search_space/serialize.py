"""A search space back to the plain dict of its YAML file (stored in checkpoints, re-read by ``parse_space``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from search_space.spec import SpaceDefinition


def space_to_dict(space: SpaceDefinition) -> dict[str, Any]:
    """The YAML mapping ``parse_space`` builds ``space`` from: ``parse_space(space_to_dict(s)) == s``."""
    stages = []
    for stage in space.stages:
        entry: dict[str, Any] = {
            "name": stage.name,
            "kind": stage.kind.value,
            "stride": stage.stride,
            "se": stage.se,
            "widths": list(stage.widths),
            "depths": list(stage.depths),
            "kernels": list(stage.kernels),
            "expand_ratios": list(stage.expand_ratios),
        }
        if stage.is_transformer:
            entry.update(mlp_ratios=list(stage.mlp_ratios), windows=list(stage.windows))
        if stage.has_block_choice:  # left out otherwise, so spaces without block choices keep their fingerprints
            entry.update(block_kinds=[k.value for k in stage.block_kinds], group_sizes=list(stage.group_sizes))
        stages.append(entry)
    options = space.transformer
    return {
        "name": space.name,
        "description": space.description,
        "in_channels": space.in_channels,
        "num_classes": space.num_classes,
        "resolutions": list(space.resolutions),
        "resize_mode": space.resize_mode,
        "activation": space.activation,
        "channel_divisor": space.channel_divisor,
        "se_reduction": space.se_reduction,
        "stem": {"kernel": space.stem.kernel, "stride": space.stem.stride, "widths": list(space.stem.widths)},
        "stages": stages,
        "head": {
            "expand_ratio": space.head.expand_ratio,
            "widths": list(space.head.widths),
            "dropout": space.head.dropout,
        },
        "transformer": {
            "head_dim": options.head_dim,
            "v_expansion": options.v_expansion,
            "v_dwconv_kernel": options.v_dwconv_kernel,
            "mlp_dwconv": options.mlp_dwconv,
            "norm": options.norm.value,
            "scale_layout": options.scale_layout.value,
            "scale_init": options.scale_init,
            "position_bias_size": options.position_bias_size,
            "norm_eps": options.norm_eps,
        },
    }


def space_fingerprint(space: SpaceDefinition) -> str:
    """Short hash of everything in a space's definition but its description."""
    definition = {k: v for k, v in space_to_dict(space).items() if k != "description"}
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
