"""Starting a supernet from another's weights where shapes allow (a scaled subnet's one-subnet space from the
supernet its base subnet came from).

A tensor of the target takes the source's tensor of the same name when that is at least as large in every
dimension: the leading slice (conv kernels centre-cropped; a relative-position table cropped around its centre),
which is what the source supernet itself gives a subnet of the target's size. Where the source offers several blocks
at a position (:class:`~supernet.elastic.ElasticBlockChoice`), the target's block takes the tensors of the source's
block of the same kind (``stages.0.1.fused.conv.weight`` from ``stages.0.1.choices.fused.fused.conv.weight``). Every
other tensor (a wider layer than the source ever had, a block past the source's depth, a switchable-scale vector of
another choice) keeps the target's own initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from search_space.spec import BlockKind, block_code
from supernet.blocks import FusedMBConv, MBConv
from supernet.elastic import ElasticRelativePositionBias, renamed_prefix, slice_to
from supernet.layers import resize_position_table


@dataclass(frozen=True)
class WeightTransfer:
    """What :func:`transfer_weights` took from the source.

    Attributes:
        copied, fresh: names of the target's tensors (parameters and buffers) taken from the source, and kept.
        copied_parameters, total_parameters: parameter elements taken from the source, and the target's in all.
    """

    copied: tuple[str, ...]
    fresh: tuple[str, ...]
    copied_parameters: int
    total_parameters: int

    @property
    def parameter_share(self) -> float:
        return self.copied_parameters / max(self.total_parameters, 1)


@torch.no_grad()
def transfer_weights(source: Mapping[str, Tensor], target: nn.Module) -> WeightTransfer:
    """Copy into ``target`` (in place) every tensor of ``source`` (a state dict) that covers the target's of the
    same name; returns what was copied."""
    tables = {
        f"{name}.table": module.size
        for name, module in target.named_modules()
        if isinstance(module, ElasticRelativePositionBias)
    }
    chosen = _chosen_block_prefixes(target)
    parameters = dict(target.named_parameters())
    state = target.state_dict()
    copied, fresh = [], []
    for key, tensor in state.items():
        have = source.get(_source_key(key, source, chosen))
        value = None
        if have is not None and have.dim() == tensor.dim():
            value = _position_table(have, tensor, tables[key]) if key in tables else _leading(have, tensor)
        if value is None:
            fresh.append(key)
            continue
        tensor.copy_(value)
        copied.append(key)
    return WeightTransfer(
        tuple(copied),
        tuple(fresh),
        sum(parameters[key].numel() for key in copied if key in parameters),
        sum(p.numel() for p in parameters.values()),
    )


def _chosen_block_prefixes(target: nn.Module) -> dict[str, str]:
    """Prefix of each MBConv and Fused-MBConv block of ``target`` -> the prefix of the block of the same kind in an
    :class:`~supernet.elastic.ElasticBlockChoice` at its position: ``stages.0.1.`` -> ``stages.0.1.choices.fused.``."""
    prefixes = {}
    for name, module in target.named_modules():
        if isinstance(module, FusedMBConv):
            prefixes[f"{name}."] = f"{name}.choices.{block_code(BlockKind.FUSED)}."
        elif isinstance(module, MBConv):
            conv = module.depthwise.conv  # its group size: channels per group
            prefixes[f"{name}."] = f"{name}.choices.{block_code(BlockKind.MBCONV, conv.in_channels // conv.groups)}."
    return prefixes


def _source_key(key: str, source: Mapping[str, Tensor], chosen: dict[str, str]) -> str:
    """``key`` itself where the source has it, else its name inside the source's block choice (when it is a block's)."""
    return key if key in source else renamed_prefix(key, chosen)


def _leading(have: Tensor, want: Tensor) -> Tensor | None:
    """``have``'s slice of ``want``'s shape, or None where ``have`` is smaller in some dimension."""
    if any(h < w for h, w in zip(have.shape, want.shape)):
        return None
    return slice_to(have, want.shape)


def _position_table(have: Tensor, want: Tensor, size: int) -> Tensor | None:
    """The centre of a (2 S - 1)^2 x heads relative-position table for a ``size`` x ``size`` map, or None where the
    source's table is for a smaller map or fewer heads."""
    side = round(have.shape[0] ** 0.5)
    if side < 2 * size - 1 or have.shape[1] < want.shape[1]:
        return None
    source = (side + 1) // 2  # the side of the map the source's table covers
    return resize_position_table(have[:, : want.shape[1]], (source, source), (size, size))
