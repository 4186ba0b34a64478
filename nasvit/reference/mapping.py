"""Name-by-name map from the NASViT reference supernet's tensors to a :class:`supernet.Supernet`'s state dict.

Facts of the reference code (facebookresearch/NASViT, commit 0472916) the map encodes:

- ``blocks.{g}`` numbers the blocks over all stages, each stage taking its largest depth (2, 5, 6, 6, 9, 8, 6 in
  ``nasvit_official``); the first block of a transformer stage is an MBConv.
- Its transformer block runs attention, then ``mlp2`` on ``norm3``, then ``mlp1`` on ``norm2``: its
  (norm3, mlp2) is nasvit's first MLP branch (norm2, mlp1), and its (norm2, mlp1) nasvit's second.
- Switchable scales are one (10, 8, C) tensor per branch (``rescale_attn``, ``rescale_mlp``) indexed by
  [active stage depth, tokens mod 8]; nasvit keeps one (C,) vector per reachable row.
- Talking heads ``proj_l`` (before the softmax) and ``proj_w`` (after) are nasvit's ``talk_pre`` / ``talk_post``.

Every reference tensor is used or dropped for one of :data:`DROP_REASONS`; every nasvit tensor is filled.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch
from torch import Tensor

from nasvit.errors import NasvitError
from search_space import SearchSpace, StageChoice
from search_space.plan import scale_key

_TOP = {
    "stem.conv.": "first_conv.conv.conv.",
    "stem.bn.": "first_conv.bn.bn.",
    "head.expand.conv.": "last_conv.final_expand_layer.conv.conv.",
    "head.expand.bn.": "last_conv.final_expand_layer.bn.bn.",
    "head.mix.": "last_conv.feature_mix_layer.conv.conv.",
    "head.classifier.": "classifier.linear.linear.",
}
_MBCONV = {
    "expand.conv.": "mobile_inverted_conv.inverted_bottleneck.conv.conv.",
    "expand.bn.": "mobile_inverted_conv.inverted_bottleneck.bn.bn.",
    "depthwise.conv.": "mobile_inverted_conv.depth_conv.conv.conv.",
    "depthwise.bn.": "mobile_inverted_conv.depth_conv.bn.bn.",
    "se.reduce.": "mobile_inverted_conv.depth_conv.se.fc.reduce.",
    "se.expand.": "mobile_inverted_conv.depth_conv.se.fc.expand.",
    "project.conv.": "mobile_inverted_conv.point_linear.conv.conv.",
    "project.bn.": "mobile_inverted_conv.point_linear.bn.bn.",
    "shortcut.conv.": "shortcut.conv.conv.",
}
_TRANSFORMER = {
    "norm1.": "norm1.",
    "norm2.": "norm3.",  # the reference's first MLP branch is (norm3, mlp2) ...
    "mlp1.fc1.": "mlp2.linear1.linear.",
    "mlp1.fc2.": "mlp2.linear2.linear.",
    "norm3.": "norm2.",  # ... and its second (norm2, mlp1)
    "mlp2.fc1.": "mlp1.linear1.linear.",
    "mlp2.fc2.": "mlp1.linear2.linear.",
    "attn.q.": "attn.q.linear.",
    "attn.k.": "attn.k.linear.",
    "attn.v.": "attn.v.linear.",
    "attn.v_conv.": "attn.vconv.",
    "attn.proj.": "attn.proj.linear.",
    "attn.talk_pre.": "attn.proj_l.linear.",
    "attn.talk_post.": "attn.proj_w.linear.",
    "attn.position_bias.table": "attn.relative_position_bias_table",
    "scale_attn.vectors.": "rescale_attn",
    "scale_mlp.vectors.": "rescale_mlp",
}
_SCALES = ("rescale_attn", "rescale_mlp")
CLASSIFIER = "classifier.linear.linear.weight"

DROP_REASONS = {
    "bn_tracking": "BN statistics the reference keeps for its largest and smallest subnets, never read to infer",
    "mbconv_rescale": "MBConv 'rescale' vectors, a constant the reference never multiplies by",
    "position_index": "relative-position index buffers, which nasvit computes (the reference's own loader replaces "
    "them too: timm's ModelEma averages these integers, so an EMA's copies are off by one in places)",
    "shortcut_conv": "shortcut convs of blocks whose input and output widths always match (never run)",
    "scale_rows": "switchable-scale rows (stage depth, tokens mod 8) that no subnet of the space reaches",
}
_DROP_PATTERNS = {
    "bn_tracking": re.compile(r"\.bn_tracking\.\d+\.(running_mean|running_var|num_batches_tracked)$"),
    "mbconv_rescale": re.compile(r"^blocks\.\d+\.mobile_inverted_conv\.rescale$"),
    "position_index": re.compile(r"^blocks\.\d+\.attn\.relative_position_index$"),
    "shortcut_conv": re.compile(r"^blocks\.\d+\.shortcut\.conv\.conv\.weight$"),
}


class ReferenceMappingError(NasvitError):
    """Reference weights that do not fit the nasvit supernet of the space."""


@dataclass(frozen=True)
class Source:
    """Where a nasvit tensor comes from: a reference tensor, or one (depth, tokens mod 8) row of a scale table."""

    key: str
    row: tuple[int, int] | None = None


@dataclass(frozen=True)
class MappedWeights:
    """The nasvit state dict and what the map did: reference tensors used, and dropped counts by kind."""

    state: dict[str, Tensor]
    used: int
    dropped: dict[str, int]


def reference_num_classes(reference: dict[str, Tensor]) -> int:
    """Classifier size of a reference state dict.

    Raises:
        ReferenceMappingError: it has no reference classifier (a checkpoint of another model).
    """
    if CLASSIFIER not in reference or reference[CLASSIFIER].dim() != 2:
        examples = ", ".join(sorted(reference)[:3])
        raise ReferenceMappingError(
            f"the weights have no reference classifier {CLASSIFIER} (they hold e.g. {examples}); this is a "
            "checkpoint of another model, not the NASViT reference supernet"
        )
    return int(reference[CLASSIFIER].shape[0])


def sources(space: SearchSpace, keys: list[str]) -> dict[str, Source]:
    """The reference source of each nasvit state-dict key of a supernet of ``space``."""
    first_block = [sum(max(s.depths) for s in space.stages[:i]) for i in range(len(space.stages))]
    rows = _scale_rows(space)
    found = {}
    for key in keys:
        parts = key.split(".")
        if parts[0] != "stages":
            found[key] = Source(_renamed(key, _TOP, ""))
            continue
        stage, position, rest = int(parts[1]), int(parts[2]), ".".join(parts[3:])
        block = f"blocks.{first_block[stage] + position}."
        is_transformer = space.stages[stage].is_transformer and position > 0
        name = _renamed(rest, _TRANSFORMER if is_transformer else _MBCONV, block)
        if name.removeprefix(block) in _SCALES:
            found[key] = Source(name, rows[(stage, rest.rpartition(".")[2])])
        else:
            found[key] = Source(name)
    return found


def _renamed(key: str, table: dict[str, str], block: str) -> str:
    for ours, theirs in table.items():
        if key == ours or (ours.endswith(".") and key.startswith(ours)):
            return block + theirs + ("" if theirs in _SCALES else key[len(ours) :])
    raise ValueError(f"nasvit tensor {key} has no rule in the reference map")


def _scale_rows(space: SearchSpace) -> dict[tuple[int, str], tuple[int, int]]:
    """(stage index, scale key) -> (stage depth, tokens mod 8), the reference's row of that scale vector."""
    rows = {}
    for index, spec in enumerate(space.stages):
        if not spec.is_transformer:
            continue
        for resolution in space.resolutions:
            size = space.stage_sizes(resolution)[index]
            for width in spec.widths:
                for depth in spec.depths:
                    choice = StageChoice(width, depth, spec.kernels[0], spec.expand_ratios[0])
                    rows[(index, scale_key(space, index, choice, size))] = (depth, (size * size) % 8)
    return rows


def map_reference(reference: dict[str, Tensor], target: dict[str, Tensor], space: SearchSpace) -> MappedWeights:
    """Fill ``target`` (a supernet's state dict, for its names, shapes and dtypes) from ``reference``, strictly.

    Raises:
        ReferenceMappingError: a needed reference tensor is missing, a shape differs (naming the key and both
            shapes), or a reference tensor has no counterpart and no stated reason to be dropped.
    """
    found = sources(space, list(target))
    _check_present(reference, found, space)
    state = {}
    for key, source in found.items():
        value = reference[source.key]
        if source.row is not None:
            value = _scale_row(value, source, target[key].shape)
        elif value.shape != target[key].shape:
            raise ReferenceMappingError(
                f"reference tensor {source.key} has shape {tuple(value.shape)} but {space.name}'s {key} needs "
                f"{tuple(target[key].shape)}; the checkpoint is not the released NASViT supernet (or was edited)"
            )
        state[key] = value.detach().to(target[key].dtype).clone()
    used = {source.key for source in found.values()}
    dropped = _dropped(reference, used)
    rows_used = len({(s.key, s.row) for s in found.values() if s.row is not None})
    rows_held = sum(reference[k].shape[0] * reference[k].shape[1] for k in used if k.rsplit(".", 1)[-1] in _SCALES)
    dropped["scale_rows"] = rows_held - rows_used
    return MappedWeights(state, len(used), {kind: n for kind, n in dropped.items() if n})


def _check_present(reference: dict[str, Tensor], found: dict[str, Source], space: SearchSpace) -> None:
    missing = sorted({source.key for source in found.values()} - set(reference))
    if not missing:
        return
    needed = len({source.key for source in found.values()})
    if len(missing) == needed:
        raise ReferenceMappingError(
            f"none of the {needed} reference tensors {space.name} needs is in the weights (they hold e.g. "
            f"{', '.join(sorted(reference)[:3])}); this is a checkpoint of another model"
        )
    raise ReferenceMappingError(
        f"the weights lack {len(missing)} of the {needed} reference tensors {space.name} needs (first: {missing[0]}); "
        "they are not a complete NASViT reference supernet"
    )


def _scale_row(table: Tensor, source: Source, shape: torch.Size) -> Tensor:
    """Row [depth, tokens mod 8] of a (10, 8, C) reference scale table, checked against the (C,) vector."""
    depth, remainder = source.row
    if table.dim() != 3 or table.shape[0] <= depth or table.shape[1] <= remainder or table.shape[2:] != shape:
        raise ReferenceMappingError(
            f"reference tensor {source.key} has shape {tuple(table.shape)} but needs (>{depth}, 8, {shape[0]}) "
            f"(rows of stage depth x tokens mod 8, {shape[0]} channels); the checkpoint is not the released supernet"
        )
    return table[depth, remainder]


def _dropped(reference: dict[str, Tensor], used: set[str]) -> dict[str, int]:
    """Count the unused reference tensors by drop kind; any without a reason is an error."""
    counts: Counter[str] = Counter()
    unexplained = []
    for key in sorted(set(reference) - used):
        kind = next((kind for kind, pattern in _DROP_PATTERNS.items() if pattern.search(key)), None)
        if kind is None:
            unexplained.append(key)
        else:
            counts[kind] += 1
    if unexplained:
        raise ReferenceMappingError(
            f"{len(unexplained)} reference tensors have no counterpart in nasvit (first: {unexplained[0]}); "
            "the checkpoint is not of the NASViT reference code at commit 0472916"
        )
    return dict(counts)
