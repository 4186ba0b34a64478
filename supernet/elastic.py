"""Elastic ops: each holds its maximum-size weight and runs the active slice.

Leading channels are kept; smaller kernels are centre crops of the largest. Input widths are read from
the input tensor; output widths, kernel sizes and other choices are ``active_*`` attributes that only
:meth:`supernet.Supernet.set_active_subnet` writes. ``forward`` never changes them.

Each op has a standard twin used by exported models (``nn.Conv2d`` for :class:`ElasticConv2d`, ...);
:func:`exported_state` gives the tensors the twin should hold: the same slices the op runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from supernet.layers import ConvBnAct, HeadMix, mix_heads, relative_position_index


class ElasticConv2d(nn.Conv2d):
    """Conv with 'same' padding over the leading (active_out, in) channels and a centre-cropped kernel.

    (B, C_in <= max_in, H, W) -> (B, active_out_channels, H', W'). A grouped conv (``group_size`` G channels per
    group; 1 is depthwise) keeps C_in channels and runs C_in / G groups: its weight is (max_channels, G, k, k), and
    the leading C_in rows are the groups of the leading C_in channels, whatever C_in is.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        group_size: int | None = None,
        bias: bool = False,
    ):
        groups = 1 if group_size is None else in_channels // group_size
        super().__init__(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=bias)
        self.group_size = group_size
        self.active_out_channels = out_channels
        self.active_kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        in_channels = x.shape[1]
        grouped = self.group_size is not None
        out_channels = in_channels if grouped else self.active_out_channels
        kernel = self.active_kernel
        start = (self.kernel_size[0] - kernel) // 2
        weight = self.weight[
            :out_channels, : self.group_size if grouped else in_channels, start : start + kernel, start : start + kernel
        ]
        bias = self.bias[:out_channels] if self.bias is not None else None
        groups = in_channels // self.group_size if grouped else 1
        return F.conv2d(x, weight, bias, self.stride, kernel // 2, 1, groups)


class ElasticShortcutConv(ElasticConv2d):
    """1x1 conv of an MBConv residual path; the identity when the active widths already match."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] == self.active_out_channels:
            return x
        return super().forward(x)


class ElasticBlockChoice(nn.Module):
    """The blocks one block position of a supernet may be, keyed by block code (``g1``, ``g8``, ``fused``, ...; see
    :func:`search_space.spec.block_code`), each holding its own largest weights; runs the ``active`` one:
    (B, C_in, H, W) -> (B, C_out, H', W'). ``active`` is written by ``Supernet.set_active_subnet`` only.
    """

    def __init__(self, blocks: dict[str, nn.Module]):
        super().__init__()
        self.choices = nn.ModuleDict(blocks)
        self.active = next(iter(blocks))

    def forward(self, x: Tensor) -> Tensor:
        return self.choices[self.active](x)


class ElasticLinear(nn.Linear):
    """Linear over the leading (active_out, in) features: (..., in <= max_in) -> (..., active_out_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__(in_features, out_features, bias)
        self.active_out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        out = self.active_out_features
        bias = self.bias[:out] if self.bias is not None else None
        return F.linear(x, self.weight[:out, : x.shape[-1]], bias)


class ElasticHeadMix(HeadMix):
    """Talking-heads mix over the leading heads: (B, heads_in, n, m) -> (B, active_out_features, n, m)."""

    def __init__(self, heads_in: int, heads_out: int):
        super().__init__(heads_in, heads_out)
        self.active_out_features = heads_out

    def forward(self, x: Tensor) -> Tensor:
        out = self.active_out_features
        return mix_heads(x, self.weight[:out, : x.shape[1]], self.bias[:out])


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over the leading C channels of its statistics and affine parameters: (B, C, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.running_mean is not None else None,
            self.running_var[:channels] if self.running_var is not None else None,
            self.weight[:channels],
            self.bias[:channels],
            use_batch_stats,
            factor,
            self.eps,
        )


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the last dim with the leading C affine entries: (..., C) -> (..., C)."""

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[-1]
        return F.layer_norm(x, (channels,), self.weight[:channels], self.bias[:channels], self.eps)


class SkippableConvBnAct(ConvBnAct):
    """ConvBnAct that passes its input through while ``active`` is False (an MBConv expand with ratio 1)."""

    def __init__(self, conv: nn.Module, bn: nn.Module, act: nn.Module):
        super().__init__(conv, bn, act)
        self.active = True

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) if self.active else x


class SwitchableScale(nn.Module):
    """Switchable scaling layer: one learnable per-channel vector per key, the active one scales the branch.

    (..., C) -> (..., C). With ``reference_factor`` the vector is also multiplied by 8 / C (the NASViT
    reference code's rule). Each vector is its own parameter, so vectors of inactive settings get no gradient.
    """

    def __init__(self, channels: int, keys: list[str], init: float, reference_factor: bool):
        super().__init__()
        if not keys:
            raise ValueError("a switchable scale needs at least one key")
        self.vectors = nn.ParameterDict({key: nn.Parameter(torch.full((channels,), init)) for key in keys})
        self.reference_factor = reference_factor
        self.active_key = keys[0]

    def active_vector(self, channels: int) -> Tensor:
        vector = self.vectors[self.active_key][:channels]
        return vector * (8.0 / channels) if self.reference_factor else vector

    def forward(self, x: Tensor) -> Tensor:
        return x * self.active_vector(x.shape[-1])


class ElasticRelativePositionBias(nn.Module):
    """Relative-position table for a ``size`` x ``size`` token map, read for the active window: (heads, n, n).

    The table has (2 size - 1)^2 rows and ``heads`` columns; a smaller window reads its centre, which
    equals cropping the full map's index top-left.
    """

    def __init__(self, size: int, heads: int):
        super().__init__()
        self.size = size
        self.table = nn.Parameter(torch.zeros((2 * size - 1) ** 2, heads))
        self.active_heads = heads
        self.active_window = (size, size)
        self.register_buffer("active_index", relative_position_index(size, size, size, size), persistent=False)
        self._indices: dict[tuple[int, int, torch.device], Tensor] = {}  # built once per window shape and device

    def set_window(self, rows: int, cols: int, heads: int) -> None:
        """Select the window shape and head count; called by ``Supernet.set_active_subnet`` only."""
        if (rows, cols) != self.active_window:
            key = (rows, cols, self.table.device)
            if key not in self._indices:
                self._indices[key] = relative_position_index(rows, cols, self.size, self.size).to(self.table.device)
            self.active_index = self._indices[key]
        self.active_window, self.active_heads = (rows, cols), heads

    def forward(self) -> Tensor:
        n = self.active_index.shape[0]
        return self.table[self.active_index.view(-1), : self.active_heads].view(n, n, -1).permute(2, 0, 1)

    def cropped_table(self) -> Tensor:
        """The table of the active window alone, in the layout of a static ``RelativePositionBias``."""
        rows, cols = self.active_window
        side = 2 * self.size - 1
        grid = self.table.view(side, side, -1)
        crop = grid[
            self.size - rows : self.size + rows - 1, self.size - cols : self.size + cols - 1, : self.active_heads
        ]
        return crop.reshape(-1, self.active_heads)


def exported_state(supernet: nn.Module, static: nn.Module, keep_vars: bool = False) -> dict[str, Tensor]:
    """The static model's state dict filled from the supernet's active subnet: leading slices, centre-cropped
    kernels, the selected switchable scale, the position table cropped to the window, and where a block position
    offers several blocks (:class:`ElasticBlockChoice`) the weights of the active one.

    With ``keep_vars`` the values stay attached to the supernet's parameters (autograd can trace which
    entries of each supernet tensor a subnet uses); otherwise they are detached copies.
    """
    modules = dict(supernet.named_modules())
    source = supernet.state_dict(keep_vars=keep_vars)
    chosen = {
        f"{name}.": f"{name}.choices.{m.active}." for name, m in modules.items() if isinstance(m, ElasticBlockChoice)
    }
    state = {}
    for static_key, target in static.state_dict().items():
        key = renamed_prefix(static_key, chosen)
        module_name, _, _ = key.rpartition(".")
        module = modules[module_name]
        if isinstance(module, SwitchableScale):
            value = module.active_vector(target.shape[0])
        elif isinstance(module, ElasticRelativePositionBias):
            value = module.cropped_table()
        else:
            value = slice_to(source[key], target.shape)
        state[static_key] = value if keep_vars else value.detach().clone()
    return state


def renamed_prefix(key: str, prefixes: dict[str, str]) -> str:
    """``key`` with the first of ``prefixes`` it starts with replaced by that prefix's value; ``key`` itself when it
    starts with none (``stages.0.1.fused.conv.weight`` -> ``stages.0.1.choices.fused.fused.conv.weight``)."""
    return next((new + key[len(old) :] for old, new in prefixes.items() if key.startswith(old)), key)


def slice_to(tensor: Tensor, shape: torch.Size) -> Tensor:
    """Leading slice of ``tensor`` to ``shape``; the two kernel dims of a conv weight are centre-cropped."""
    index = []
    for dim, (have, want) in enumerate(zip(tensor.shape, shape)):
        start = (have - want) // 2 if tensor.dim() == 4 and dim >= 2 else 0
        index.append(slice(start, start + want))
    return tensor[tuple(index)]
